package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Tag keys every resource the pipeline creates carries. TagGeneration only goes on
// what a generation makes (its base instance, image, snapshots and replicas; see
// Document.Gen), not on what the run keeps across refreshes (its security groups,
// load balancer, target group and listener).
const (
	TagRunID      = "amifleet:run-id"
	TagRole       = "amifleet:role"
	TagGeneration = "amifleet:generation"
	TagName       = "Name"
)

// PipelineGeneration is the generation the Pipeline state machine builds: a run's
// first image and fleet. A later refresh of the live run builds generation 2, 3, ...
const PipelineGeneration = 1

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

// GenerationName is the Name tag (and, for an AMI, the name) of a resource that one
// generation of a run makes: ResourceName for generation 1 (and 0, read as 1), so
// that the names of the runs made before generations existed stay as they were, and
// amifleet-<runId>-<role>-g<n> for a later generation n. Only EC2 resources have
// generations: the ELBv2 names, bound to 32 characters, never take the suffix.
func GenerationName(runID, role string, generation int) string {
	if generation <= PipelineGeneration {
		return ResourceName(runID, role)
	}
	return ResourceName(runID, role) + "-g" + strconv.Itoa(generation)
}

// RunIDHashLength is the number of hex digits of the hash that ends a derived run id.
const RunIDHashLength = 8

// runIDHashMark comes between a derived run id's slug and its hash: demo-x8a2cc067.
// No other run id ends in "-x" and RunIDHashLength hex digits: a name that does is
// derived too, never its own run id.
const runIDHashMark = "-x"

// maxRunIDSlug is the longest slug a derived run id keeps before "-x<hash>".
const maxRunIDSlug = MaxRunIDLength - len(runIDHashMark) - RunIDHashLength

// RunIDForm says what a run id looks like, for messages that refuse one.
var RunIDForm = fmt.Sprintf("lowercase letters and digits in groups joined by single dashes, at most %d characters", MaxRunIDLength)

// RunIDFromExecutionName derives the run id from a Step Functions execution name,
// one to one (up to a collision of a 32-bit hash), so that two executions never
// share resources, tags or idempotency tokens:
//
//   - a name that is already a run id (IsRunID: lowercase letters and digits, single
//     dashes between them, at most MaxRunIDLength characters, as the CLI's
//     yymmdd-hhmmss-xxxx names are) is its own run id, unless it ends in "-x" and
//     RunIDHashLength hex digits, the mark of the other kind;
//   - any other name (Demo, de_mo, a console UUID, a long CI name) becomes a slug of
//     it (lowercased, every character outside [a-z0-9] turned into '-', runs of '-'
//     folded, cut to fit), "-x" and the first RunIDHashLength hex digits of the
//     SHA-256 of the exact name: "Demo" gives demo-x8a2cc067, never demo.
//
// The two kinds never meet: only the second ends in -x<hash>. Both keep ELBv2's rules
// for amifleet-<runId>-tg: letters, digits and single dashes (a target group name
// may not hold "--"). A name with no ASCII letter or digit is refused: it leaves
// nothing to read in the resources' names.
func RunIDFromExecutionName(name string) (string, error) {
	if IsRunID(name) && !hasHashMark(name) {
		return name, nil
	}
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
	slug := strings.TrimRight(b.String(), "-")
	if slug == "" {
		return "", &BadInputError{Field: "executionName", Message: fmt.Sprintf("%q has no letters or digits to make a run id from", name)}
	}
	if len(slug) > maxRunIDSlug {
		slug = strings.TrimRight(slug[:maxRunIDSlug], "-")
	}
	sum := sha256.Sum256([]byte(name))
	return slug + runIDHashMark + hex.EncodeToString(sum[:])[:RunIDHashLength], nil
}

// IsRunID reports whether id has the form of every run id RunIDFromExecutionName
// makes: one or more groups of lowercase letters and digits joined by single dashes,
// at most MaxRunIDLength characters (demo, 261127-110304-0a0b, demo-x8a2cc067).
// Whatever takes a run id from outside (Teardown's input, the CLI's --run-id)
// checks it with this before using it in a tag filter.
func IsRunID(id string) bool {
	if id == "" || len(id) > MaxRunIDLength {
		return false
	}
	dash := true // a leading dash is refused as a double one
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'):
			dash = false
		case c == '-' && !dash:
			dash = true
		default:
			return false
		}
	}
	return !dash
}

// hasHashMark reports whether id ends as a derived run id does: "-x" and
// RunIDHashLength lowercase hex digits.
func hasHashMark(id string) bool {
	n := len(id) - RunIDHashLength
	if n < len(runIDHashMark)+1 || id[n-len(runIDHashMark):n] != runIDHashMark {
		return false
	}
	for i := n; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
