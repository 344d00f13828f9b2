package pricing

import (
	"fmt"
	"math"
)

// DefaultRootVolumeGiB is the root volume of the default image (the latest Amazon
// Linux 2023 AMI): 8 GiB. The instances keep their AMI's root size, so the
// estimate uses it where the image is not read before the run (imageParameter).
const DefaultRootVolumeGiB = 8

// How long one run takes until Verify, from the public figures collected for the
// latency model (AWS's own timings, Terraform and Packer logs): each is the
// typical time of the step, not its worst case.
const (
	// baseProvisionSeconds: the base instance from RunInstances to stopped: about
	// 23 s until SSH is up (AL2023), 34–60 s of user data that installs httpd, and
	// about 25 s from the in-guest poweroff to stopped.
	baseProvisionSeconds = 120
	// imageSeconds: CreateImage of a stopped, small AL2023 instance until the image
	// is available: 2m45–3m00 in Packer logs.
	imageSeconds = 180
	// replicasHealthySeconds: the replicas from RunInstances to healthy targets:
	// about 5 s pending → running, 23 s of boot, and 12–45 s of health checks
	// (interval 5 s, threshold 2) after registration.
	replicasHealthySeconds = 60
	// verifySeconds: the Verify stage's requests through the load balancer.
	verifySeconds = 15
	// waitsBeforeVerify are the polled waits on the run's critical path: base
	// stopped, image available, instances running, targets healthy (the load
	// balancer's wait runs beside the image's, which is longer). Each loses half a
	// poll interval on average.
	waitsBeforeVerify = 4
	// billingMinimumSeconds: EC2 Linux instances and EBS volumes are billed by the
	// second, at least 60 s each time an instance starts.
	billingMinimumSeconds = 60
)

// Fleet is what a run creates that AWS bills, as the estimate needs it.
type Fleet struct {
	// Region is where the run creates its resources.
	Region string
	// InstanceType of every instance.
	InstanceType string
	// Replicas is config.replicaCount.
	Replicas int
	// KeepBase is config.keepBaseInstance: the base instance runs again after
	// imaging and serves; otherwise it stays stopped (its volume still billed).
	KeepBase bool
	// PublicReplicas: the replicas get a public IPv4 address (config.sshCidrs set).
	PublicReplicas bool
	// PublicBase: the base instance gets one (its subnet maps public IPv4 addresses
	// on launch, as a default subnet does).
	PublicBase bool
	// LoadBalancerZones is how many zones the load balancer spans: an
	// internet-facing ALB has (at least) one node, and one public IPv4 address, in each.
	LoadBalancerZones int
	// RootVolumeGiB is each instance's root volume, and the size of the AMI's
	// snapshot; 0 means DefaultRootVolumeGiB.
	RootVolumeGiB int
	// PollIntervalSeconds is config.poll.intervalSeconds.
	PollIntervalSeconds int
}

// Line is one item of an estimate.
type Line struct {
	// Item says what is billed, for people: "instance t2.micro (replicas)".
	Item string `json:"item"`
	// Count of the item: instances, volumes, addresses, load balancers, LCUs.
	Count int `json:"count"`
	// Size of each, in Unit's measure (GB for storage), or 1.
	Size float64 `json:"size,omitempty"`
	// Unit is what UnitPrice is the price of: "hour", "GB-month".
	Unit string `json:"unit"`
	// UnitPrice is the table's price, in USD per Unit.
	UnitPrice float64 `json:"unitPrice"`
	// PerHour is what the item costs per hour while the fleet lives, in USD.
	PerHour float64 `json:"perHour"`
	// Run is what the item costs in one run until Verify, in USD.
	Run float64 `json:"run"`
}

// Estimate is what a run is expected to cost: on-demand list prices in USD.
type Estimate struct {
	// Region whose prices were used.
	Region string `json:"region"`
	// PricesAsOf is the table's date (AsOf).
	PricesAsOf string `json:"pricesAsOf"`
	// Currency is USD.
	Currency string `json:"currency"`
	// Complete is false when some price is not in the table (Unknown says which):
	// then PerHour and Run count only the lines that are priced.
	Complete bool     `json:"complete"`
	Unknown  []string `json:"unknown,omitempty"`
	// Lines are the items, each priced.
	Lines []Line `json:"lines"`
	// PerHour is what the fleet costs per hour while it lives: the instances that
	// serve, their volumes, the AMI's snapshot, the load balancer with one LCU, and
	// the public IPv4 addresses. Traffic (LCUs past the first, data transfer out)
	// is not in it.
	PerHour float64 `json:"perHour"`
	// PerMonth is PerHour over HoursPerMonth.
	PerMonth float64 `json:"perMonth"`
	// Run is what one run costs until Verify (RunMinutes long).
	Run        float64 `json:"run"`
	RunMinutes float64 `json:"runMinutes"`
}

// timeline is when, in seconds from the start of the run, each thing happens.
type timeline struct {
	baseStopped, imageAvailable, verified float64
}

func timelineOf(pollSeconds int) timeline {
	half := float64(pollSeconds) / 2
	var t timeline
	t.baseStopped = baseProvisionSeconds + half
	t.imageAvailable = t.baseStopped + imageSeconds + half
	t.verified = t.imageAvailable + replicasHealthySeconds + float64(waitsBeforeVerify-2)*half + verifySeconds
	return t
}

// Estimate prices the fleet in its region. An instance type or region the table
// does not know leaves the estimate incomplete, naming what it lacks; it never
// guesses a price.
func (f Fleet) Estimate() Estimate {
	e := Estimate{Region: f.Region, PricesAsOf: AsOf, Currency: "USD", Complete: true}
	r, ok := Lookup(f.Region)
	if !ok {
		e.Complete = false
		e.Unknown = []string{fmt.Sprintf("region %s: no prices in amifleet's table (it has %v)", f.Region, Regions())}
		return e
	}
	t := timelineOf(f.PollIntervalSeconds)
	gib := f.RootVolumeGiB
	if gib <= 0 {
		gib = DefaultRootVolumeGiB
	}
	hours := func(seconds float64) float64 { return seconds / 3600 }
	billed := func(seconds float64) float64 { return hours(math.Max(seconds, billingMinimumSeconds)) }
	// The replicas run from the image on; the base instance until it stops, and
	// again from the image on when kept.
	replicaRun := billed(t.verified - t.imageAvailable)
	baseRun := billed(t.baseStopped)
	if f.KeepBase {
		baseRun += billed(t.verified - t.imageAvailable)
	}

	if price, ok := r.Instances[f.InstanceType]; ok {
		e.add(Line{Item: "instance " + f.InstanceType + " (replicas)", Count: f.Replicas, Unit: "hour", UnitPrice: price,
			PerHour: float64(f.Replicas) * price, Run: float64(f.Replicas) * price * replicaRun})
		base := Line{Item: "instance " + f.InstanceType + " (base instance, stopped after imaging)", Count: 1, Unit: "hour",
			UnitPrice: price, Run: price * baseRun}
		if f.KeepBase {
			base.Item = "instance " + f.InstanceType + " (base instance, kept)"
			base.PerHour = price
		}
		e.add(base)
	} else {
		e.Complete = false
		e.Unknown = append(e.Unknown, fmt.Sprintf("instanceType %s: no on-demand price in amifleet's table for %s", f.InstanceType, f.Region))
	}

	// Every instance keeps its root volume, the stopped base instance's too.
	volumes := f.Replicas + 1
	gbHour := r.GP3GBMonth / HoursPerMonth
	e.add(Line{Item: "EBS gp3 root volumes", Count: volumes, Size: float64(gib), Unit: "GB-month", UnitPrice: r.GP3GBMonth,
		PerHour: float64(volumes*gib) * gbHour,
		Run:     float64(gib) * gbHour * (float64(f.Replicas)*replicaRun + hours(t.verified))})
	// The AMI's snapshot: billed for the blocks it stores, at most the volume's size.
	snapHour := r.SnapshotGBMonth / HoursPerMonth
	e.add(Line{Item: "EBS snapshot of the AMI (at most the volume's size)", Count: 1, Size: float64(gib), Unit: "GB-month",
		UnitPrice: r.SnapshotGBMonth, PerHour: float64(gib) * snapHour,
		Run: float64(gib) * snapHour * hours(t.verified-t.baseStopped)})
	// ELB bills the load balancer and its LCUs by the hour or partial hour: one run
	// pays a full hour of each. One LCU (25 new connections a second, 3,000 active
	// connections, 1 GB an hour) is assumed while it lives.
	e.add(Line{Item: "Application Load Balancer", Count: 1, Unit: "hour", UnitPrice: r.ALBHour, PerHour: r.ALBHour,
		Run: r.ALBHour * math.Ceil(hours(t.verified))})
	e.add(Line{Item: "ALB capacity units (1 LCU assumed)", Count: 1, Unit: "hour", UnitPrice: r.LCUHour, PerHour: r.LCUHour,
		Run: r.LCUHour * math.Ceil(hours(t.verified))})

	// Public IPv4 addresses, billed while they are assigned: the load balancer's,
	// one per zone, from its creation; the replicas' with sshCidrs; the base
	// instance's while it runs (a stopped instance gives its address back).
	if f.LoadBalancerZones > 0 {
		e.add(Line{Item: "public IPv4 (load balancer, one per zone)", Count: f.LoadBalancerZones, Unit: "hour",
			UnitPrice: r.PublicIPv4Hour, PerHour: float64(f.LoadBalancerZones) * r.PublicIPv4Hour,
			Run: float64(f.LoadBalancerZones) * r.PublicIPv4Hour * hours(t.verified)})
	}
	if f.PublicReplicas {
		e.add(Line{Item: "public IPv4 (replicas, for sshCidrs)", Count: f.Replicas, Unit: "hour", UnitPrice: r.PublicIPv4Hour,
			PerHour: float64(f.Replicas) * r.PublicIPv4Hour, Run: float64(f.Replicas) * r.PublicIPv4Hour * replicaRun})
	}
	if f.PublicBase {
		l := Line{Item: "public IPv4 (base instance, while it runs)", Count: 1, Unit: "hour", UnitPrice: r.PublicIPv4Hour,
			Run: r.PublicIPv4Hour * baseRun}
		if f.KeepBase {
			l.PerHour = r.PublicIPv4Hour
		}
		e.add(l)
	}
	e.RunMinutes = math.Round(t.verified/6) / 10
	e.PerMonth = e.PerHour * HoursPerMonth
	return e
}

func (e *Estimate) add(l Line) {
	e.Lines = append(e.Lines, l)
	e.PerHour += l.PerHour
	e.Run += l.Run
}

// USD formats an amount of US dollars for people: four decimals under a dollar
// (a fleet of small instances costs cents an hour), two above.
func USD(v float64) string {
	if math.Abs(v) < 1 {
		return fmt.Sprintf("$%.4f", v)
	}
	return fmt.Sprintf("$%.2f", v)
}
