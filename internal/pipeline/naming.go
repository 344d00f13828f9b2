package pipeline

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
