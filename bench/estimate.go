package main

// Estimates for a real run on AWS: its duration stage by stage (the original
// exercise's sequential plan against amifleet's parallel one) and its cost from list
// prices. Every latency and price is an assumption written down here, with its
// source where one exists; the measured figures (transitions, invocations, memory)
// come from the bench.

import "math"

// Latency is one stage's assumed duration on AWS, low to high, in seconds.
type Latency struct {
	Stage      string // key
	Name       string // for people
	Low, High  float64
	Assumption string
	Source     string
}

// Stage keys of the estimate.
const (
	stSetup    = "setup"
	stBase     = "base"
	stImage    = "image"
	stALB      = "alb"
	stReplicas = "replicas"
	stHealthy  = "healthy"
	stVerify   = "verify"
)

// Latencies are the assumptions of the duration estimate.
var Latencies = []Latency{
	{stSetup, "Validate + security groups", 2, 6, "Validate and CreateSecurityGroups: two Lambda cold starts (each under 50 ms here, a few hundred ms on AWS with the SDK's first TLS handshakes) and five or six EC2 API calls",
		"assumption; the cold-start figures above"},
	{stBase, "base instance provisioned and stopped", 60, 120, "base instance: RunInstances, AL2023 boot, user data (dnf install httpd, the boot-time page unit), poweroff, until EC2 says stopped",
		"assumption (typical observed AL2023 boot plus a small dnf install); AWS documents no figure"},
	{stImage, "AMI available", 180, 600, "CreateImage of the stopped instance (8 GiB gp3 root) until the AMI is available: its snapshot must reach completed, and a volume's first snapshot copies every written block",
		"https://docs.aws.amazon.com/ebs/latest/userguide/ebs-creating-snapshot.html (a snapshot stays pending until its data is transferred; \"several hours\" at worst for large changes); 3–10 min is the usual range for an 8 GiB root"},
	{stALB, "load balancer active", 120, 300, "CreateLoadBalancer (target group, ALB, listener) until the ALB is active",
		"https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_LoadBalancerState.html (provisioning, then active; no duration documented); 2–5 min is the usual range"},
	{stReplicas, "instances running", 20, 60, "LaunchReplicas (and the base restarted) until every instance is running",
		"assumption: pending to running for an EBS-backed t2.micro"},
	{stHealthy, "targets healthy", 50, 120, "RegisterTargets until every target is healthy: the replicas finish booting and start httpd (30–60 s after running), then 2 consecutive successful checks 5 s apart (amifleet's target group: HealthyThresholdCount 2, interval 5 s), plus the initial check delay",
		"https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html (HealthyThresholdCount, HealthCheckIntervalSeconds); internal/stages/create_load_balancer.go"},
	{stVerify, "Verify", 1, 5, "Verify: 12 HTTP requests through the ALB, 5 s timeout each", "config default verify.requests 12"},
}

// PollSlack is the time a wait loop can overshoot a ready resource: up to one poll
// interval (15 s by default) per wait; on average half.
const PollSlack = 15.0

// Duration is one plan's estimate in seconds.
type Duration struct{ Low, High float64 }

// Minutes formats a duration range.
func (d Duration) Minutes() (float64, float64) { return d.Low / 60, d.High / 60 }

func latency(stage string) Latency {
	for _, l := range Latencies {
		if l.Stage == stage {
			return l
		}
	}
	return Latency{}
}

// SequentialPlan is the original exercise's order: security groups, base instance,
// image, replicas, then the target group and ALB, then registration and health.
// Its waits are done by a person watching the console; no poll slack is added.
func SequentialPlan() Duration {
	var d Duration
	for _, s := range []string{stSetup, stBase, stImage, stReplicas, stALB, stHealthy, stVerify} {
		l := latency(s)
		d.Low += l.Low
		d.High += l.High
	}
	return d
}

// ParallelPlan is amifleet's: the ALB branch beside the base-and-image branch, so
// only the longer of the two counts; each of the four waits on the critical path
// (base stopped, image, instances running, targets healthy) may overshoot by up to
// one poll interval.
func ParallelPlan() Duration {
	img := Duration{latency(stBase).Low + latency(stImage).Low, latency(stBase).High + latency(stImage).High}
	alb := latency(stALB)
	d := Duration{math.Max(img.Low, alb.Low), math.Max(img.High, alb.High)}
	for _, s := range []string{stSetup, stReplicas, stHealthy, stVerify} {
		d.Low += latency(s).Low
		d.High += latency(s).High
	}
	// A wait may find its resource ready at the first poll (no slack) or just
	// after a poll (a whole interval).
	d.High += 4 * PollSlack
	return d
}

// Prices are us-east-1 list prices, in US dollars.
type Prices struct {
	Date                 string
	TransitionPer1000    float64 // Step Functions Standard
	LambdaGBSecondARM    float64
	LambdaGBSecondX86    float64
	LambdaPerMillionReqs float64
	T2MicroHour          float64
	ALBHour              float64
	LCUHour              float64
	EBSSnapshotGBMonth   float64
	GP3GBMonth           float64
	PublicIPv4Hour       float64
}

// ListPrices are the prices the estimate uses. Not fetched here (this machine has
// no internet); check them on the AWS pricing pages.
var ListPrices = Prices{
	Date:                 "2026-11-27",
	TransitionPer1000:    0.025,
	LambdaGBSecondARM:    0.0000133334,
	LambdaGBSecondX86:    0.0000166667,
	LambdaPerMillionReqs: 0.20,
	T2MicroHour:          0.0116,
	ALBHour:              0.0225,
	LCUHour:              0.008,
	EBSSnapshotGBMonth:   0.05,
	GP3GBMonth:           0.08,
	PublicIPv4Hour:       0.005,
}

// hoursPerMonth is AWS's billing month for GB-month prices.
const hoursPerMonth = 730

// CostInput is what one run uses.
type CostInput struct {
	Transitions int
	// Invocations and MemoryMB per function (measured locally; memory from the
	// synthesized template).
	Invocations map[string]int
	MemoryMB    map[string]int
	// BilledSecondsPerInvocation is the assumed billed duration of one invocation
	// on AWS.
	BilledSecondsPerInvocation float64
	// Instances serving (base + replicas), and the root volume size.
	Instances  int
	RootGiB    float64
	RunMinutes float64 // the run's duration on AWS (the parallel plan's high end)
	// PublicIPv4s: one per instance plus one per ALB node (one per subnet used).
	PublicIPv4s int
}

// Cost is one run's estimated cost, per part, in US dollars.
type Cost struct {
	Transitions, LambdaRequests, LambdaCompute float64
	// Resources while the run itself is going (RunMinutes): instances, volumes,
	// the ALB (billed by the started hour), public IPv4 addresses.
	Instances, Volumes, ALB, IPv4 float64
	// Snapshot is one month of the AMI's snapshot, at most RootGiB.
	SnapshotMonth float64
	// FleetHour is what every further hour of the fleet costs.
	FleetHour float64
	GBSeconds float64
}

// Pipeline is the state machine's and the functions' part.
func (c Cost) Pipeline() float64 { return c.Transitions + c.LambdaRequests + c.LambdaCompute }

// Run is everything until the run has succeeded.
func (c Cost) Run() float64 {
	return c.Pipeline() + c.Instances + c.Volumes + c.ALB + c.IPv4
}

// EstimateCost prices one run with p.
func EstimateCost(in CostInput, p Prices) Cost {
	var c Cost
	c.Transitions = float64(in.Transitions) / 1000 * p.TransitionPer1000
	reqs := 0
	for fn, n := range in.Invocations {
		reqs += n
		c.GBSeconds += float64(n) * in.BilledSecondsPerInvocation * float64(in.MemoryMB[fn]) / 1024
	}
	c.LambdaRequests = float64(reqs) / 1e6 * p.LambdaPerMillionReqs
	c.LambdaCompute = c.GBSeconds * p.LambdaGBSecondARM
	hours := in.RunMinutes / 60
	c.Instances = float64(in.Instances) * p.T2MicroHour * hours
	c.Volumes = float64(in.Instances) * in.RootGiB * p.GP3GBMonth / hoursPerMonth * hours
	// A partial load balancer hour is billed as a full one, with at least a
	// fraction of an LCU; one LCU-hour is the bound for a run's light traffic.
	c.ALB = p.ALBHour + p.LCUHour
	c.IPv4 = float64(in.PublicIPv4s) * p.PublicIPv4Hour * hours
	c.SnapshotMonth = in.RootGiB * p.EBSSnapshotGBMonth
	c.FleetHour = float64(in.Instances)*p.T2MicroHour + p.ALBHour + p.LCUHour +
		float64(in.Instances)*in.RootGiB*p.GP3GBMonth/hoursPerMonth +
		float64(in.PublicIPv4s)*p.PublicIPv4Hour
	return c
}
