package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Tag keys every resource the pipeline creates carries.
const (
	TagRunID = "amifleet:run-id"
	TagRole  = "amifleet:role"
	TagName  = "Name"
)

// Roles, the values of the amifleet:role tag. A stage finds what it made before
// (when it runs twice) by run id and role.
const (
	RoleALBSecurityGroup      = "sg-alb"
	RoleInstanceSecurityGroup = "sg-instance"
	RoleBase                  = "base"
	RoleImage                 = "image"
	RoleReplica               = "replica"
	RoleTargetGroup           = "tg"
	RoleLoadBalancer          = "alb"
)

// NamePrefix starts every resource name: amifleet-<runId>-<role>.
const NamePrefix = "amifleet-"

// MaxRunIDLength keeps amifleet-<runId>-alb within the 32 characters ELBv2 allows
// for load balancer and target group names.
const MaxRunIDLength = 32 - len(NamePrefix) - len("-alb")

// ResourceName is the Name tag (and, for ELBv2, the name) of a run's resource.
func ResourceName(runID, role string) string {
	return NamePrefix + runID + "-" + role
}

// RunIDFromExecutionName derives the run id from a Step Functions execution name:
// lowercase, every character outside [a-z0-9-] turned into '-', runs of '-' folded,
// and, when longer than MaxRunIDLength, cut and ended with a short hash of the whole
// name so that two long names still differ.
func RunIDFromExecutionName(name string) (string, error) {
	var b strings.Builder
	dash := true // drops leading dashes
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	id := strings.TrimRight(b.String(), "-")
	if id == "" {
		return "", &BadInputError{Field: "executionName", Message: fmt.Sprintf("%q has no letters or digits to make a run id from", name)}
	}
	if len(id) > MaxRunIDLength {
		sum := sha256.Sum256([]byte(name))
		suffix := hex.EncodeToString(sum[:])[:6]
		id = strings.TrimRight(id[:MaxRunIDLength-len(suffix)-1], "-") + "-" + suffix
	}
	return id, nil
}
