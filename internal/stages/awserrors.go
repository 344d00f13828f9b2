package stages

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// The AWS error codes amifleet tells apart, in one place. A stage that meets one of
// these treats it as an answer (already gone, already there, not visible yet), not as a
// failure; IsRetryable decides about the rest.
const (
	// EC2
	codeInstanceNotFound      = "InvalidInstanceID.NotFound"
	codeAMINotFound           = "InvalidAMIID.NotFound"
	codeAMIMalformed          = "InvalidAMIID.Malformed"
	codeAMIUnavailable        = "InvalidAMIID.Unavailable"
	codeAMINameDuplicate      = "InvalidAMIName.Duplicate"
	codeSnapshotNotFound      = "InvalidSnapshot.NotFound"
	codeSnapshotInUse         = "InvalidSnapshot.InUse"
	codeGroupNotFound         = "InvalidGroup.NotFound"
	codeGroupDuplicate        = "InvalidGroup.Duplicate"
	codePermissionDuplicate   = "InvalidPermission.Duplicate"
	codeSubnetNotFound        = "InvalidSubnetID.NotFound"
	codeDependencyViolation   = "DependencyViolation"
	codeInvalidParameterValue = "InvalidParameterValue"
	codeInvalidInstanceType   = "InvalidInstanceType"
	// Quota and capacity (capacity.go): never retried by the state machine.
	codeVCPULimitExceeded     = "VcpuLimitExceeded"
	codeInstanceLimitExceeded = "InstanceLimitExceeded"
	// codeInsufficientCapacity is retried by the EC2 client itself (clients.go).
	codeInsufficientCapacity = "InsufficientInstanceCapacity"
	// ELBv2
	codeLoadBalancerNotFound = "LoadBalancerNotFound"
	codeTargetGroupNotFound  = "TargetGroupNotFound"
	codeListenerNotFound     = "ListenerNotFound"
	codeResourceInUse        = "ResourceInUse"
	// SSM
	codeParameterNotFound = "ParameterNotFound"
)

// retryableCodes are AWS error codes that the same call may cure later: the SDK's own
// throttling and timeout codes (retry.DefaultThrottleErrorCodes and
// retry.DefaultRetryableErrorCodes, which the SDK's retryer has already retried a few
// times by the time a stage sees them), the services' transient faults, and eventual
// consistency right after a create.
var retryableCodes = func() map[string]bool {
	codes := map[string]bool{
		"ServiceUnavailable":     true,
		"InternalError":          true,
		"InternalFailure":        true,
		"InternalServerError":    true, // SSM's
		"Unavailable":            true,
		codeInstanceNotFound:     true,
		codeAMINotFound:          true,
		codeGroupNotFound:        true,
		codeSnapshotNotFound:     true,
		"IncorrectInstanceState": true,
		codeDependencyViolation:  true,
		codeResourceInUse:        true,
	}
	for c := range retry.DefaultThrottleErrorCodes {
		codes[c] = true
	}
	for c := range retry.DefaultRetryableErrorCodes {
		codes[c] = true
	}
	return codes
}()

// IsRetryable reports whether err is an AWS error that a later call may cure, or a
// deadline that ran out.
func IsRetryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return retryableCodes[ErrorCode(err)]
}

// ErrorCode is the AWS error code in err, or "".
func ErrorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// isArchitectureMismatch reports whether RunInstances refused an instance type and
// an AMI of different architectures (an arm64 Graviton type with an x86_64 AMI, or
// the reverse). EC2 says so only in the message of an InvalidParameterValue.
func isArchitectureMismatch(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == codeInvalidParameterValue &&
		strings.Contains(strings.ToLower(api.ErrorMessage()), "architecture")
}

// awsMessage is an AWS error's code and own message (which names the offending
// id), without the SDK's operation name and request id around them.
func awsMessage(err error) string {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err.Error()
	}
	if api.ErrorMessage() == "" {
		return api.ErrorCode()
	}
	return api.ErrorCode() + ": " + api.ErrorMessage()
}
