package localcloud

// AWS's timing. moto changes every state at once (an instance is running at its first
// describe, an image available, a load balancer active), so a local run shows nothing
// of where a real one spends its minutes, nor how long amifleet waits on its own polls.
// A LatencyModel gives each state change the time AWS takes for it, drawn from a
// distribution taken from public measurements (docs/latency-model.md has the table,
// its sources and their dates), and the gateway makes the change visible only then,
// on the time scale of the data plane (GatewayOptions.TimeScale): a 170 s image at
// 0.1 is pending for 17 s. Draws are repeatable: the same seed gives the same
// duration for the same operation on the same resource, whatever the order of calls.
//
// The model is off unless GatewayOptions.Latency (Options.Latency) sets it: `make
// local` and most tests keep moto's instant changes; the benchmarks and the tests of
// the model turn it on. The gateway records each modelled change (LatencyRecord), so
// that a run's critical path and each wait's slack can be told in AWS seconds.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// LatencyOp names one modelled state change.
type LatencyOp string

// The modelled operations. Each is timed from the event named first to the one named
// second, in AWS time.
const (
	// RunInstances: the call to its answer.
	OpRunInstancesAnswer LatencyOp = "ec2:RunInstances answer"
	// An instance: launched (the answer) to running.
	OpInstanceRunning LatencyOp = "instance pending to running"
	// An instance with amifleet's user data: running to the end of the user data
	// (kernel, cloud-init, dnf install httpd, the page); per instance type.
	OpUserDataDone LatencyOp = "instance running to user data done"
	// An instance launched from a baked image (nothing to install): running to its
	// services up (kernel, cloud-init, httpd).
	OpBooted LatencyOp = "instance running to booted"
	// An instance: the in-guest poweroff (or StopInstances) to stopped.
	OpInstanceStopped LatencyOp = "instance stopping to stopped"
	// An instance: TerminateInstances to terminated.
	OpInstanceTerminated LatencyOp = "instance shutting-down to terminated"
	// An image: CreateImage of a stopped instance to available (the first snapshot of
	// the root volume is a full copy).
	OpImageAvailable LatencyOp = "image pending to available"
	// CreateTargetGroup: the call to its answer.
	OpCreateTargetGroupAnswer LatencyOp = "elasticloadbalancing:CreateTargetGroup answer"
	// CreateListener: the call to its answer.
	OpCreateListenerAnswer LatencyOp = "elasticloadbalancing:CreateListener answer"
	// A load balancer: CreateLoadBalancer to active.
	OpLoadBalancerActive LatencyOp = "load balancer provisioning to active"
	// A load balancer: DeleteLoadBalancer to its network interfaces gone (until then
	// its security groups are in use).
	OpLoadBalancerENIsGone LatencyOp = "load balancer deleted to network interfaces gone"
	// A new resource: created to visible to describes by its id (eventual consistency).
	OpVisible LatencyOp = "resource created to visible by id"
	// A target: registered to healthy. Not drawn: the data plane's health checks
	// measure it (recorded with Modelled false), keyed "<target group ARN> <id>".
	OpTargetHealthy LatencyOp = "target registered to healthy"
)

// Dist is a duration's distribution: log-normal with the given median, its spread
// set by P90, and every draw kept within [Min, Max] (the measured range).
type Dist struct {
	Median time.Duration
	P90    time.Duration
	Min    time.Duration
	Max    time.Duration
}

// Fixed is a distribution of one value.
func Fixed(d time.Duration) Dist { return Dist{Median: d, P90: d, Min: d, Max: d} }

// quantile is the duration at probability u (0 < u < 1).
func (d Dist) quantile(u float64) time.Duration {
	if d.Median <= 0 {
		return 0
	}
	sigma := 0.0
	if d.P90 > d.Median {
		// P90 of a log-normal is median × e^(σ × z90), z90 = Φ⁻¹(0.9).
		sigma = math.Log(float64(d.P90)/float64(d.Median)) / z90
	}
	z := math.Sqrt2 * math.Erfinv(2*u-1)
	v := time.Duration(float64(d.Median) * math.Exp(sigma*z))
	if d.Min > 0 && v < d.Min {
		v = d.Min
	}
	if d.Max > 0 && v > d.Max {
		v = d.Max
	}
	return v
}

// z90 is Φ⁻¹(0.9), the standard normal's 90th percentile.
var z90 = math.Sqrt2 * math.Erfinv(0.8)

// Validate says what is wrong with a distribution, if anything.
func (d Dist) Validate() error {
	switch {
	case d.Median < 0 || d.P90 < 0 || d.Min < 0 || d.Max < 0:
		return fmt.Errorf("negative duration in %+v", d)
	case d.P90 != 0 && d.P90 < d.Median:
		return fmt.Errorf("P90 %s below the median %s", d.P90, d.Median)
	case d.Min > d.Median || (d.Max > 0 && d.Max < d.Median):
		return fmt.Errorf("median %s outside [%s, %s]", d.Median, d.Min, d.Max)
	}
	return nil
}

// LatencyModel is how long AWS takes for each modelled operation. The zero value
// models nothing (moto's instant changes).
type LatencyModel struct {
	// Seed makes a run's draws repeatable: the same seed, the same durations.
	Seed int64
	// Ops gives each operation its distribution; an operation not here takes no time.
	Ops map[LatencyOp]Dist
	// PerInstanceType overrides Ops for OpUserDataDone by instance type (how fast the
	// instance runs dnf and writes the page).
	PerInstanceType map[string]Dist
}

// Enabled reports whether the model models anything.
func (m *LatencyModel) Enabled() bool {
	return m != nil && (len(m.Ops) > 0 || len(m.PerInstanceType) > 0)
}

// Dist is the distribution of op for an instance type ("" for any).
func (m *LatencyModel) Dist(op LatencyOp, instanceType string) (Dist, bool) {
	if m == nil {
		return Dist{}, false
	}
	if op == OpUserDataDone && instanceType != "" {
		if d, ok := m.PerInstanceType[instanceType]; ok {
			return d, true
		}
	}
	d, ok := m.Ops[op]
	return d, ok
}

// Draw is how long op takes, in AWS time, for the resource named key (an instance,
// image or load balancer id; the instance type, for OpUserDataDone, goes in
// instanceType). The same seed, op and key always give the same duration.
func (m *LatencyModel) Draw(op LatencyOp, key, instanceType string) time.Duration {
	d, ok := m.Dist(op, instanceType)
	if !ok {
		return 0
	}
	return d.quantile(m.uniform(op, key))
}

// uniform is a number in (0, 1) from the seed, op and key alone.
func (m *LatencyModel) uniform(op LatencyOp, key string) float64 {
	h := sha256.New()
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], uint64(m.Seed))
	h.Write(seed[:])
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write([]byte(key))
	n := binary.BigEndian.Uint64(h.Sum(nil)[:8]) >> 11 // 53 bits
	return (float64(n) + 0.5) / (1 << 53)
}

// Validate says what is wrong with the model, naming the operation.
func (m *LatencyModel) Validate() error {
	if m == nil {
		return nil
	}
	for op, d := range m.Ops {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("latency of %s: %w", op, err)
		}
	}
	for typ, d := range m.PerInstanceType {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("latency of %s on %s: %w", OpUserDataDone, typ, err)
		}
	}
	return nil
}

// AWSLatency is the model of docs/latency-model.md: AWS's timing as published
// measurements show it (figures and sources there, and in notes beside each line).
func AWSLatency(seed int64) *LatencyModel {
	s := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	return &LatencyModel{
		Seed: seed,
		Ops: map[LatencyOp]Dist{
			// daemonology.net "EC2 boot time benchmarking" (2021): 1.5 s typical, up to 4.8 s.
			OpRunInstancesAnswer: {Median: s(1.5), P90: s(2.5), Min: s(1), Max: s(4.8)},
			// daemonology.net: "pending to running took 4.9 s" (c5.xlarge).
			OpInstanceRunning: {Median: s(5), P90: s(8), Min: s(3), Max: s(15)},
			// Instance types without their own figure: between t3.micro's and t2.micro's.
			OpUserDataDone: {Median: s(45), P90: s(60), Min: s(30), Max: s(90)},
			// brevdev ec2-coldboot-research: AL2023 launch to SSH 22.6-25.8 s, less the
			// answer and pending (about 6.5 s).
			OpBooted: {Median: s(16.5), P90: s(18.5), Min: s(15), Max: s(25)},
			// No published measurement: an engineering estimate.
			OpInstanceStopped: {Median: s(25), P90: s(35), Min: s(15), Max: s(45)},
			// Terraform and Packer logs: 30 to 70 s.
			OpInstanceTerminated: {Median: s(45), P90: s(62), Min: s(30), Max: s(70)},
			// Packer logs: 2 min 45 s to 3 min for a small AL2023 root volume.
			OpImageAvailable: {Median: s(170), P90: s(180), Min: s(160), Max: s(330)},
			// Terraform apply logs: 1 to 3 s.
			OpCreateTargetGroupAnswer: {Median: s(1.5), P90: s(2.5), Min: s(1), Max: s(3)},
			OpCreateListenerAnswer:    {Median: s(1.5), P90: s(2.5), Min: s(1), Max: s(3)},
			// Terraform apply logs: 2 min 15 s to 2 min 30 s, with a long tail.
			OpLoadBalancerActive: {Median: s(142), P90: s(175), Min: s(120), Max: s(600)},
			// Terraform destroy logs: 1 to 2.5 min; 20 s to 5 min seen.
			OpLoadBalancerENIsGone: {Median: s(90), P90: s(150), Min: s(20), Max: s(300)},
			// Eventual consistency: about a second (AWS does not publish a figure).
			OpVisible: {Median: s(1), P90: s(2), Min: s(0.2), Max: s(5)},
		},
		PerInstanceType: map[string]Dist{
			// cloud-init logs ("finished ... Up 59.68 seconds" on t2.micro, 34 s on t3.micro), n=1 each.
			"t2.micro": {Median: s(60), P90: s(72), Min: s(45), Max: s(90)},
			"t3.micro": {Median: s(34), P90: s(42), Min: s(28), Max: s(60)},
		},
	}
}

// LatencyEvent is one modelled change as the gateway made it: the operation, the
// resource, when it started and when the change became visible (local time), and the
// duration drawn, in AWS time.
type LatencyEvent struct {
	Op       LatencyOp     `json:"op"`
	Key      string        `json:"key"`
	Start    time.Time     `json:"start"`
	Ready    time.Time     `json:"ready"`
	AWS      time.Duration `json:"aws"`
	Modelled bool          `json:"modelled"`
}

// latencyState is the gateway's model and its record.
type latencyState struct {
	mu     sync.Mutex
	model  *LatencyModel
	events []LatencyEvent
	index  map[string]int // op + "\x00" + key → events index
	// drawAs names, for a resource key, the key its durations are drawn by (see
	// drawByRole).
	drawAs map[string]string
}

// drawByRole makes the durations of a run's one-of-a-kind resource (its base
// instance, its image, its load balancer: role, of generation gen) drawn by that role
// rather than by the resource's own id: the same seed then gives every run the same
// base, image and load balancer times, whatever else differs (its replica count
// above all), so that two runs compare like with like. The record keeps the real key.
// A key with a suffix ("i-1#start2") is drawn by the role with the same suffix.
func (g *Gateway) drawByRole(key, role, gen string) {
	if role == "" {
		return
	}
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	if g.lat.drawAs == nil {
		g.lat.drawAs = map[string]string{}
	}
	as := "role:" + role
	if gen != "" {
		as += "/g" + gen
	}
	g.lat.drawAs[key] = as
}

// drawKey is the key key's durations are drawn by: its role's (drawByRole), or its own.
// Callers hold g.lat.mu.
func (g *Gateway) drawKey(key string) string {
	base, suffix, _ := strings.Cut(key, "#")
	if as, ok := g.lat.drawAs[base]; ok {
		if suffix != "" {
			return as + "#" + suffix
		}
		return as
	}
	return key
}

// oneOfAKind reports whether a run has one resource of role per generation: those
// drawn by role (drawByRole). Replicas are many, and their slowest is the point.
func oneOfAKind(role string) bool {
	switch role {
	case pipeline.RoleBase, pipeline.RoleImage, pipeline.RoleLoadBalancer:
		return true
	}
	return false
}

// requestRole reads amifleet's role and generation tags from a query request's
// parameters, in EC2's spelling (TagSpecification.N.Tag.M.Key) or ELBv2's
// (Tags.member.N.Key).
func requestRole(form url.Values) (role, gen string) {
	for k, v := range form {
		if !strings.HasSuffix(k, ".Key") || len(v) == 0 {
			continue
		}
		value := form.Get(strings.TrimSuffix(k, ".Key") + ".Value")
		switch v[0] {
		case pipeline.TagRole:
			role = value
		case pipeline.TagGeneration:
			gen = value
		}
	}
	return role, gen
}

// latency is the gateway's model (nil when none).
func (g *Gateway) latency() *LatencyModel {
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	if !g.lat.model.Enabled() {
		return nil
	}
	return g.lat.model
}

// SetLatency replaces the latency model (nil: moto's instant changes); what is
// already scheduled keeps its times.
func (g *Gateway) SetLatency(m *LatencyModel) error {
	if err := m.Validate(); err != nil {
		return err
	}
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	g.lat.model = m
	return nil
}

// modelled draws op for key and records it as starting at start: it returns the
// local duration (the AWS one × TimeScale) and when the change becomes visible. A
// second call for the same op and key returns the first one's times. Without a model
// it returns 0 and start.
func (g *Gateway) modelled(op LatencyOp, key, instanceType string, start time.Time) (time.Duration, time.Time) {
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	id := string(op) + "\x00" + key
	if i, ok := g.lat.index[id]; ok {
		e := g.lat.events[i]
		return e.Ready.Sub(e.Start), e.Ready
	}
	if !g.lat.model.Enabled() {
		return 0, start
	}
	if _, ok := g.lat.model.Dist(op, instanceType); !ok {
		return 0, start
	}
	aws := g.lat.model.Draw(op, g.drawKey(key), instanceType)
	local := time.Duration(float64(aws) * g.opts.TimeScale)
	e := LatencyEvent{Op: op, Key: key, Start: start, Ready: start.Add(local), AWS: aws, Modelled: true}
	if g.lat.index == nil {
		g.lat.index = map[string]int{}
	}
	g.lat.index[id] = len(g.lat.events)
	g.lat.events = append(g.lat.events, e)
	return local, e.Ready
}

// measured records a change the data plane measured rather than drew (a target
// turning healthy), while a model is on; the first record of op and key stays.
func (g *Gateway) measured(op LatencyOp, key string, start, ready time.Time) {
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	id := string(op) + "\x00" + key
	if _, ok := g.lat.index[id]; ok || !g.lat.model.Enabled() {
		return
	}
	if g.lat.index == nil {
		g.lat.index = map[string]int{}
	}
	g.lat.index[id] = len(g.lat.events)
	aws := time.Duration(float64(ready.Sub(start)) / g.opts.TimeScale)
	g.lat.events = append(g.lat.events, LatencyEvent{Op: op, Key: key, Start: start, Ready: ready, AWS: aws})
}

// readyAt is when the modelled op on key becomes visible, if it was modelled.
func (g *Gateway) readyAt(op LatencyOp, key string) (time.Time, bool) {
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	i, ok := g.lat.index[string(op)+"\x00"+key]
	if !ok {
		return time.Time{}, false
	}
	return g.lat.events[i].Ready, true
}

// LatencyRecord is every modelled change so far, in the order they started.
func (g *Gateway) LatencyRecord() []LatencyEvent {
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	out := slices.Clone(g.lat.events)
	slices.SortStableFunc(out, func(a, b LatencyEvent) int { return a.Start.Compare(b.Start) })
	return out
}

// ResetLatencyRecord forgets the record (not the model).
func (g *Gateway) ResetLatencyRecord() {
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	g.lat.events, g.lat.index, g.lat.drawAs = nil, nil, nil
}
