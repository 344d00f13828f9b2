// Package pipeline holds the pipeline document that flows through the amifleet state
// machine: the validated configuration, the resources created so far, the results of
// the polls, and, where a run failed, the error. It also holds the names and tags that
// every stage gives what it creates, and the named error types that the state machine's
// Retry and Catch rules match on.
//
// Field names are lowerCamelCase JSON; the README documents them. The document is a
// contract between the Go stages and stepfunctions/*.asl.json: a field renamed here
// must be renamed there.
package pipeline

import (
	"encoding/json"
	"time"

	"github.com/amifleet/amifleet/internal/pricing"
)

// Document is the one JSON document that flows through the Pipeline state machine.
// Each stage takes it and returns it with its own part of Resources filled in.
type Document struct {
	// RunID names the run; every resource carries it in the amifleet:run-id tag.
	RunID string `json:"runId"`
	// Config is the validated input, with every default filled in.
	Config Config `json:"config"`
	// TokenSeed is what every idempotency token (RunInstances' ClientToken) of the
	// run is derived from: Validate makes it from the execution's id and start time,
	// so it is the same for every retry within one execution, and differs between
	// any two executions (even two of the same name, or two run ids that look alike).
	TokenSeed string `json:"tokenSeed,omitempty"`
	// Generation is the generation this document builds: the Pipeline's is 1
	// (PipelineGeneration), a later refresh of the live run's 2, 3, ... Every instance,
	// image and snapshot it makes carries it in the amifleet:generation tag, and the
	// stages find what they made before only within it. 0 (absent, as in the documents
	// of runs made before generations existed) means 1: read it through Gen.
	Generation int `json:"generation,omitempty"`
	// Placement is where the run's instances may go, as Validate found it.
	Placement *Placement `json:"placement,omitempty"`
	// Estimate is what the run costs, as Validate priced it from the dated table of
	// internal/pricing: per hour while the fleet lives, and for one run until Verify.
	Estimate *pricing.Estimate `json:"estimate,omitempty"`
	// Resources is what the run has created so far.
	Resources Resources `json:"resources"`
	// Polls holds the latest answer of each check Lambda (Task ResultPath $.polls.<key>).
	Polls *Polls `json:"polls,omitempty"`
	// Errors is written by the state machine's Catch rules: one key per failed state
	// (ResultPath $.errors.<StateName>), holding Step Functions' {Error, Cause}; a wait
	// whose polls ran out is recorded under its TimedOutState.
	Errors map[string]CaughtError `json:"errors,omitempty"`
	// Error is the run's failure, normalised by Cleanup from Errors, and read by the
	// final Fail state (ErrorPath $.error.type, CausePath $.error.cause).
	Error *Failure `json:"error,omitempty"`
	// Kept is set on a failed run's way to Cleanup when config.keepOnFailure holds:
	// Cleanup then records the failure and what exists, and deletes nothing.
	Kept *Kept `json:"kept,omitempty"`
	// Refresh is set on the Refresh state machine's document (PrepareRefresh): the
	// generation it replaces, and whether the new one has been committed.
	Refresh *Refresh `json:"refresh,omitempty"`
}

// Gen is the generation the document builds: Generation, or PipelineGeneration when
// it is unset (0, or a nonsense negative).
func (d Document) Gen() int {
	if d.Generation < PipelineGeneration {
		return PipelineGeneration
	}
	return d.Generation
}

// Kept is a failed run whose resources were kept for debugging: the Teardown
// execution that deletes them later, and (filled in by Cleanup) what is there.
type Kept struct {
	// Teardown is the name of the Teardown execution the Pipeline started.
	Teardown string `json:"teardown"`
	// TeardownAfterMinutes is that execution's delay.
	TeardownAfterMinutes int `json:"teardownAfterMinutes"`
	// TeardownAt is about when it deletes them (Cleanup's clock plus the delay).
	TeardownAt *time.Time `json:"teardownAt,omitempty"`
	// Resources lists what carries the run's tag, one "kind id" a line.
	Resources []string `json:"resources,omitempty"`
}

// Placement is what Validate learnt of config.instanceType in this region: the
// zones, among those of the run's subnets, that offer it, and its vCPUs.
type Placement struct {
	// Zones offer config.instanceType; the base instance and the replicas go only to
	// the run's subnets in these zones (the load balancer keeps all of them).
	Zones []string `json:"zones"`
	// VCPUs is the instance type's default vCPU count; 0 when unknown.
	VCPUs int32 `json:"vcpus,omitempty"`
}

// Resources records what a run created. Parallel branches write disjoint parts
// (Image in one, LoadBalancer in the other), merged back by the Parallel state's
// ResultSelector.
type Resources struct {
	Network      *Network      `json:"network,omitempty"`
	Image        *Image        `json:"image,omitempty"`
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	Fleet        *Fleet        `json:"fleet,omitempty"`
	Verify       *VerifyResult `json:"verify,omitempty"`
}

// Network is what CreateSecurityGroups resolved and created.
type Network struct {
	VPCID                   string   `json:"vpcId"`
	SubnetIDs               []string `json:"subnetIds"`
	AvailabilityZones       []string `json:"availabilityZones,omitempty"`
	ALBSecurityGroupID      string   `json:"albSecurityGroupId"`
	InstanceSecurityGroupID string   `json:"instanceSecurityGroupId"`
}

// Image is the base instance and the AMI made from it.
type Image struct {
	SourceImageID  string   `json:"sourceImageId,omitempty"`
	BaseInstanceID string   `json:"baseInstanceId"`
	ImageID        string   `json:"imageId,omitempty"`
	SnapshotIDs    []string `json:"snapshotIds,omitempty"`
}

// LoadBalancer is the target group, the ALB and its listener.
type LoadBalancer struct {
	TargetGroupARN  string `json:"targetGroupArn"`
	LoadBalancerARN string `json:"loadBalancerArn"`
	ListenerARN     string `json:"listenerArn,omitempty"`
	DNSName         string `json:"dnsName"`
	URL             string `json:"url,omitempty"`
}

// Address is the fleet's URL: URL, or one made from DNSName; "" when there is no
// load balancer yet (lb may be nil).
func (lb *LoadBalancer) Address() string {
	switch {
	case lb == nil:
		return ""
	case lb.URL != "":
		return lb.URL
	case lb.DNSName != "":
		return "http://" + lb.DNSName + "/"
	}
	return ""
}

// Fleet is the set of instances that serve: the replicas, plus the base instance
// when config.keepBaseInstance is set.
type Fleet struct {
	ReplicaInstanceIDs []string `json:"replicaInstanceIds"`
	// InstanceIDs are all the instances registered as targets.
	InstanceIDs []string `json:"instanceIds"`
}

// VerifyResult is what Verify saw through the load balancer.
type VerifyResult struct {
	// Status is "passed" or "skipped" (a failure is an error, not a result).
	Status    string   `json:"status"`
	Reason    string   `json:"reason,omitempty"`
	Requests  int      `json:"requests"`
	Hostnames []string `json:"hostnames,omitempty"`
	// LookFromHere is set when the function could not reach the load balancer (its
	// httpCidrs admit no Lambda): `amifleet run --wait` and `amifleet verify` look from
	// where the user stands instead.
	LookFromHere bool `json:"lookFromHere,omitempty"`
}

// Verify statuses.
const (
	VerifyPassed  = "passed"
	VerifySkipped = "skipped"
)

// Polls holds the latest answer of each wait loop's check.
// One field per entry of Waits, named after the wait, its JSON name the wait's Key.
type Polls struct {
	BaseStopped        *PollResult `json:"baseStopped,omitempty"`
	ImageAvailable     *PollResult `json:"imageAvailable,omitempty"`
	LoadBalancerActive *PollResult `json:"loadBalancerActive,omitempty"`
	InstancesRunning   *PollResult `json:"instancesRunning,omitempty"`
	TargetsHealthy     *PollResult `json:"targetsHealthy,omitempty"`
	CleanupDone        *PollResult `json:"cleanupDone,omitempty"`
	GenerationsPruned  *PollResult `json:"generationsPruned,omitempty"`
}

// Of is the latest answer of the named wait (nil when none yet, for an unknown
// wait, or when p is nil).
func (p *Polls) Of(wait string) *PollResult {
	if p == nil {
		return nil
	}
	if f := p.field(wait); f != nil {
		return *f
	}
	return nil
}

// Set records the answer of the named wait; it panics on an unknown wait (a
// programming error: the names come from Waits).
func (p *Polls) Set(wait string, r *PollResult) {
	f := p.field(wait)
	if f == nil {
		panic("pipeline: no wait " + wait)
	}
	*f = r
}

func (p *Polls) field(wait string) **PollResult {
	switch wait {
	case WaitBaseStopped:
		return &p.BaseStopped
	case WaitImageAvailable:
		return &p.ImageAvailable
	case WaitLoadBalancerActive:
		return &p.LoadBalancerActive
	case WaitInstancesRunning:
		return &p.InstancesRunning
	case WaitTargetsHealthy:
		return &p.TargetsHealthy
	case WaitCleanupDone:
		return &p.CleanupDone
	case WaitGenerationsPruned:
		return &p.GenerationsPruned
	}
	return nil
}

// PollResult is what a check Lambda answers. The state machine's Choice goes on
// when Ready, fails the wait when Attempts reaches the configured maximum, and
// otherwise waits config.poll.intervalSeconds and checks again.
type PollResult struct {
	Ready bool `json:"ready"`
	// State is the resource's state as AWS names it ("stopped", "available", ...).
	State string `json:"state"`
	// Reason says, in words, what the check is waiting for or why it is ready.
	Reason string `json:"reason,omitempty"`
	// Attempts counts the polls so far, this one included. Cleanup does not count
	// the clean looks that only wait out a create still in flight (CleanSince).
	Attempts int `json:"attempts"`
	// WaitSeconds is how long the loop waits before its next check
	// (config.poll.WaitAfter): the Wait state's SecondsPath.
	WaitSeconds int `json:"waitSeconds"`
	// CleanSince is Cleanup's: when the first of its clean looks in a row was made.
	// It is done once a clean look comes late enough after it.
	CleanSince *time.Time `json:"cleanSince,omitempty"`
}

// CaughtError is what a Step Functions Catch rule writes: the error name and cause.
// For a Lambda error the cause is itself JSON: {"errorType","errorMessage",...}.
type CaughtError struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

// Failure is a run's failure in one place: which stage failed, with what error.
type Failure struct {
	// Stage is the state that failed, as the console graph names it (for example
	// "CreateImage", or "ImageAvailableTimedOut").
	Stage string `json:"stage"`
	// Type is the error name Step Functions matched on (for example "WaitTimedOutError").
	Type string `json:"type"`
	// Message is the error's own message.
	Message string `json:"message"`
	// Cause is one line for people: "<stage> failed: <type>: <message>".
	Cause string `json:"cause"`
}

// ValidateInput is what the Validate task passes its Lambda: the execution's raw
// input, the execution name that the run id is derived from, and the execution's
// id and start time that the run's idempotency tokens are derived from.
type ValidateInput struct {
	ExecutionName string `json:"executionName"`
	// ExecutionID is the execution's ARN ($$.Execution.Id).
	ExecutionID string `json:"executionId"`
	// StartTime is when the execution started ($$.Execution.StartTime, ISO 8601).
	StartTime string `json:"startTime"`
	// Input is the user's input, kept raw so that unknown fields and wrong types are
	// reported by name.
	Input json.RawMessage `json:"input"`
}

// TeardownInput is the input of the Teardown state machine.
type TeardownInput struct {
	RunID string `json:"runId"`
	// DelaySeconds, when set, waits that long before deleting (a run's time to live).
	DelaySeconds int `json:"delaySeconds,omitempty"`
	// Config, when set, carries the poll settings of the cleanup loop (the CLI and the
	// local tests pass short polls); Cleanup fills the defaults otherwise.
	Config *Config `json:"config,omitempty"`
}
