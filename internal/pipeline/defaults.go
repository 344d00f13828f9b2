package pipeline

// Defaults of the pipeline's input. docs/input.md lists them beside the rules that
// Validate applies; change both together.
const (
	DefaultInstanceType = "t2.micro"
	DefaultReplicaCount = 2
	DefaultMaxReplicas  = 20
	// DefaultImageParameter names the latest Amazon Linux 2023 AMI for x86_64, which
	// matches the default (x86) instance type.
	DefaultImageParameter = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
	// DefaultPageTemplate reproduces the page of the original manual exercise.
	DefaultPageTemplate = "<h1>Hola desde el EC2: {hostname}</h1>"
	// HostnamePlaceholder is replaced, at every boot, by the instance's own hostname.
	HostnamePlaceholder = "{hostname}"

	// DefaultPollIntervalSeconds is the wait between a loop's checks after its first
	// wait: a resource's change is noticed 2.5 s after it at the median.
	DefaultPollIntervalSeconds = 5
	DefaultVerifyRequests      = 12
	DefaultVerifyTimeout       = 5

	// DefaultKeptTeardownMinutes is how long the resources of a failed run with
	// keepOnFailure stay when teardownAfterMinutes is not given: long enough to
	// look at them, short enough that a forgotten run costs little. The Pipeline's
	// KeptTeardownDefault state writes the same number.
	DefaultKeptTeardownMinutes = 180
)

// DefaultConfig is the configuration of a run whose input is empty. Every call
// returns fresh slices and pointers, so a caller may change what it gets.
func DefaultConfig() Config {
	keepBase := true
	return Config{
		InstanceType:   DefaultInstanceType,
		ReplicaCount:   DefaultReplicaCount,
		MaxReplicas:    DefaultMaxReplicas,
		ImageParameter: DefaultImageParameter,
		HTTPCIDRs:      []string{"0.0.0.0/0"},
		// SSHCIDRs nil: SSH closed. Empty lists are nil throughout, as they are
		// after the document's JSON trip (omitempty) to the next stage.
		SSHCIDRs:         nil,
		KeepBaseInstance: &keepBase,
		PageTemplate:     DefaultPageTemplate,
		Poll: PollConfig{
			// Each first wait is a little under the soonest AWS is usually done
			// (docs/latency-model.md: the base instance's boot, user data and
			// poweroff; the image's snapshot; the load balancer's provisioning; the
			// replicas' start; their boot and two health checks; Cleanup's
			// terminations), so that the checks every IntervalSeconds after it
			// notice the change within 5 s, without a poll spent in the minutes
			// before it could have happened.
			FirstWaitSeconds: PerWait{
				BaseStopped:        45,
				ImageAvailable:     150,
				LoadBalancerActive: 120,
				InstancesRunning:   5,
				TargetsHealthy:     15,
				CleanupDone:        30,
				GenerationsPruned:  30,
			},
			IntervalSeconds: DefaultPollIntervalSeconds,
			// With those: the base instance stopped within 15 min, the image
			// within 30 min, the load balancer within 15 min, the instances running
			// within 10 min, the targets healthy within 15 min, Cleanup's deletes
			// within 20 min, a refresh's prune (its old targets' 30 s drain, then their
			// terminations) within 15 min (PollConfig.WaitBound; a test holds them to
			// these).
			MaxPolls: PerWait{
				BaseStopped:        173,
				ImageAvailable:     332,
				LoadBalancerActive: 158,
				InstancesRunning:   121,
				TargetsHealthy:     179,
				CleanupDone:        236,
				GenerationsPruned:  176,
			},
		},
		Verify: VerifyConfig{
			Requests:       DefaultVerifyRequests,
			TimeoutSeconds: DefaultVerifyTimeout,
		},
	}
}

// KeepBase reports config.keepBaseInstance, true when unset.
func (c Config) KeepBase() bool {
	return c.KeepBaseInstance == nil || *c.KeepBaseInstance
}

// FleetSize is how many instances serve behind the load balancer: the replicas,
// plus the base instance when it is kept.
func (c Config) FleetSize() int {
	if c.KeepBase() {
		return c.ReplicaCount + 1
	}
	return c.ReplicaCount
}
