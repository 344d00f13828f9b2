package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

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
		"ServiceUnavailable":  true,
		"InternalError":       true,
		"InternalFailure":     true,
		"InternalServerError": true, // SSM's
		"Unavailable":         true,
		codeInstanceNotFound:  true,
		codeAMINotFound:       true,
		codeGroupNotFound:     true,
		codeSnapshotNotFound:  true,
		// ELBv2 is eventually consistent too: a load balancer or target group just
		// created may be NotFound to the next call for a moment (the strict cloud
		// showed CreateLoadBalancer's DescribeListeners and Cleanup's DescribeTags).
		codeLoadBalancerNotFound: true,
		codeTargetGroupNotFound:  true,
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

// firstVisibleWait is untilVisible's first wait (tests shorten it).
var firstVisibleWait = 250 * time.Millisecond

// notVisibleTries bounds untilVisible: about 7 s of waiting in all, well inside a
// create function's timeout, and past the second or two that AWS usually takes.
const notVisibleTries = 6

// untilVisible calls call until it does not answer one of codes (the NotFound that a
// resource created a moment before gets while it propagates), waiting 250 ms, then
// twice as long each time; after notVisibleTries the last error is the answer (a
// RetryableError for the state machine, as IsRetryable says). Only for a resource
// this stage has just created or found: for anything else NotFound is an answer.
func untilVisible(ctx context.Context, call func() error, codes ...string) error {
	wait := firstVisibleWait
	for try := 1; ; try++ {
		err := call()
		if err == nil || try == notVisibleTries || !slices.Contains(codes, ErrorCode(err)) {
			return err
		}
		Log(ctx).Info("not visible yet; calling again", "code", ErrorCode(err), "try", try, "wait", wait.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}
