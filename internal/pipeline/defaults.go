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

	DefaultPollIntervalSeconds = 15
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
			IntervalSeconds: DefaultPollIntervalSeconds,
			// With 15 s between polls: base provisioned within 15 min, image within
			// 30 min, ALB within 15 min, instances running within 10 min, targets
			// healthy within 15 min, cleanup's deletes within 20 min.
			MaxPolls: MaxPolls{
				BaseStopped:        60,
				ImageAvailable:     120,
				LoadBalancerActive: 60,
				InstancesRunning:   40,
				TargetsHealthy:     60,
				CleanupDone:        80,
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
