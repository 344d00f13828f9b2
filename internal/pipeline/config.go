package pipeline

// Config is the pipeline's input, as a user writes it (console, schedule, CI), and,
// once Validate has run, with every default filled in. A field left out (or null)
// takes its default; a field given is checked as given, so "replicaCount": 0 is
// refused rather than replaced. DefaultConfig (defaults.go) and ParseConfig and
// Validate (validate.go) are the single place defaults and rules live.
type Config struct {
	// InstanceType is the EC2 instance type of every instance, family.size.
	InstanceType string `json:"instanceType,omitempty"`
	// ReplicaCount is how many instances are launched from the AMI.
	ReplicaCount int `json:"replicaCount,omitempty"`
	// MaxReplicas caps ReplicaCount, so a typo cannot launch a thousand instances.
	MaxReplicas int `json:"maxReplicas,omitempty"`
	// ImageID is the base AMI; empty means the latest Amazon Linux 2023 from
	// ImageParameter.
	ImageID string `json:"imageId,omitempty"`
	// ImageParameter is the SSM public parameter that names the base AMI.
	ImageParameter string `json:"imageParameter,omitempty"`
	// HTTPCIDRs may reach the load balancer on port 80.
	HTTPCIDRs []string `json:"httpCidrs,omitempty"`
	// SSHCIDRs may reach the instances on port 22; empty keeps SSH closed.
	SSHCIDRs []string `json:"sshCidrs,omitempty"`
	// AllowSSHFromAnywhere must be set for SSHCIDRs to contain 0.0.0.0/0 or ::/0.
	AllowSSHFromAnywhere bool `json:"allowSshFromAnywhere,omitempty"`
	// KeepBaseInstance starts the base instance again after imaging and registers it
	// as a target (pointer: default true).
	KeepBaseInstance *bool `json:"keepBaseInstance,omitempty"`
	// SubnetIDs to spread instances and the ALB over; empty means the default VPC's
	// default subnets. At least two availability zones are needed for an ALB.
	SubnetIDs []string `json:"subnetIds,omitempty"`
	// KeyName is an optional EC2 key pair for SSH.
	KeyName string `json:"keyName,omitempty"`
	// Tags are added to every resource the run creates.
	Tags map[string]string `json:"tags,omitempty"`
	// PageTemplate is the HTML each instance serves; {hostname} is replaced by the
	// instance's own hostname at every boot.
	PageTemplate string `json:"pageTemplate,omitempty"`
	// Poll sets the wait loops.
	Poll PollConfig `json:"poll"`
	// Verify sets the HTTP check through the load balancer.
	Verify VerifyConfig `json:"verify"`
	// TeardownAfterMinutes, when set, deletes the fleet that long after it is up.
	TeardownAfterMinutes int `json:"teardownAfterMinutes,omitempty"`
	// MaxHourlyCost, when set, is the most the fleet may cost per hour while it
	// lives, in USD: Validate refuses a run whose estimate (Document.Estimate) is
	// higher, or that it cannot price.
	MaxHourlyCost *float64 `json:"maxHourlyCost,omitempty"`
	// KeepOnFailure skips Cleanup when the run fails: its resources stay, tagged,
	// for debugging, and Teardown deletes them TeardownAfterMinutes later (when
	// unset, DefaultKeptTeardownMinutes).
	KeepOnFailure bool `json:"keepOnFailure,omitempty"`
}

// PollConfig sets every check + Choice + Wait loop. A loop checks at once, when the
// stage before it has started the change, then waits FirstWaitSeconds (near the
// soonest AWS is usually done), then checks every IntervalSeconds until the
// resource is ready or MaxPolls checks have said no. Each check writes the wait
// before the next one into its answer ($.polls.<key>.waitSeconds, the Wait
// state's SecondsPath): see WaitAfter.
type PollConfig struct {
	// FirstWaitSeconds is each loop's wait after its first check.
	FirstWaitSeconds PerWait `json:"firstWaitSeconds"`
	// IntervalSeconds is the wait between the later checks.
	IntervalSeconds int `json:"intervalSeconds,omitempty"`
	// MaxPolls bounds each loop; a wait that is not ready after that many checks fails
	// with WaitTimedOutError.
	MaxPolls PerWait `json:"maxPolls"`
}

// WaitAfter is how long the named wait waits after its attempts-th check: its first
// wait after the first check, the interval after the others.
func (p PollConfig) WaitAfter(wait string, attempts int) int {
	if first := p.FirstWaitSeconds.Of(wait); attempts <= 1 && first > 0 {
		return first
	}
	return p.IntervalSeconds
}

// WaitBound is the longest the named wait can take, in seconds: from its first check
// to its last (the MaxPolls-th), the waits between them.
func (p PollConfig) WaitBound(wait string) int {
	n := p.MaxPolls.Of(wait)
	if n <= 1 {
		return 0
	}
	return p.WaitAfter(wait, 1) + (n-2)*p.IntervalSeconds
}

// PerWait is one number for each wait loop: one field per entry of Waits, named after
// the wait, its JSON name the wait's Key.
type PerWait struct {
	BaseStopped        int `json:"baseStopped,omitempty"`
	ImageAvailable     int `json:"imageAvailable,omitempty"`
	LoadBalancerActive int `json:"loadBalancerActive,omitempty"`
	InstancesRunning   int `json:"instancesRunning,omitempty"`
	TargetsHealthy     int `json:"targetsHealthy,omitempty"`
	CleanupDone        int `json:"cleanupDone,omitempty"`
	GenerationsPruned  int `json:"generationsPruned,omitempty"`
}

// Of is the named wait's number (0 for an unknown wait).
func (m PerWait) Of(wait string) int {
	switch wait {
	case WaitBaseStopped:
		return m.BaseStopped
	case WaitImageAvailable:
		return m.ImageAvailable
	case WaitLoadBalancerActive:
		return m.LoadBalancerActive
	case WaitInstancesRunning:
		return m.InstancesRunning
	case WaitTargetsHealthy:
		return m.TargetsHealthy
	case WaitCleanupDone:
		return m.CleanupDone
	case WaitGenerationsPruned:
		return m.GenerationsPruned
	}
	return 0
}

// VerifyConfig sets Verify.
type VerifyConfig struct {
	// Skip reports "skipped" instead of sending requests (the local cloud has no data
	// plane); SkipReason says why.
	Skip       bool   `json:"skip,omitempty"`
	SkipReason string `json:"skipReason,omitempty"`
	// Requests is how many GETs to send through the load balancer.
	Requests int `json:"requests,omitempty"`
	// TimeoutSeconds bounds each request.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}
