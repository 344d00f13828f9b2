package localcloud

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// The model's draws: repeatable for a seed, an op and a key whatever the order;
// another seed or key gives another duration; over many keys the median and the
// 90th percentile are the table's, and every draw stays within [Min, Max].
func TestLatencyModelDraws(t *testing.T) {
	m := AWSLatency(1)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	a := m.Draw(OpImageAvailable, "ami-1", "")
	if b := AWSLatency(1).Draw(OpImageAvailable, "ami-1", ""); a != b {
		t.Errorf("seed 1 drew %s then %s for one image", a, b)
	}
	differs := 0
	for seed := int64(2); seed < 12; seed++ {
		if AWSLatency(seed).Draw(OpImageAvailable, "ami-1", "") != a {
			differs++
		}
	}
	if differs < 9 {
		t.Errorf("only %d of 10 other seeds drew another duration than %s", differs, a)
	}

	for _, tc := range []struct {
		op  LatencyOp
		typ string
	}{{OpLoadBalancerActive, ""}, {OpInstanceRunning, ""}, {OpUserDataDone, "t2.micro"}, {OpUserDataDone, "t3.micro"}, {OpUserDataDone, "m5.large"}} {
		t.Run(fmt.Sprint(tc.op, tc.typ), func(t *testing.T) {
			want, _ := m.Dist(tc.op, tc.typ)
			var draws []time.Duration
			for i := range 4000 {
				d := m.Draw(tc.op, fmt.Sprintf("key-%d", i), tc.typ)
				if d < want.Min || d > want.Max {
					t.Fatalf("draw %s outside [%s, %s]", d, want.Min, want.Max)
				}
				draws = append(draws, d)
			}
			slices.Sort(draws)
			near := func(got, want time.Duration) bool {
				return float64(got) > 0.95*float64(want) && float64(got) < 1.05*float64(want)
			}
			if med := draws[len(draws)/2]; !near(med, want.Median) {
				t.Errorf("median of 4000 draws %s, want about %s", med, want.Median)
			}
			if p90 := draws[len(draws)*9/10]; !near(p90, min(want.P90, want.Max)) {
				t.Errorf("90th percentile %s, want about %s", p90, want.P90)
			}
		})
	}

	// The instance type's own figure, where the table has one.
	if t2, t3 := m.Draw(OpUserDataDone, "i-1", "t2.micro"), m.Draw(OpUserDataDone, "i-1", "t3.micro"); t2 <= t3 {
		t.Errorf("t2.micro's user data took %s, t3.micro's %s: the table says t2.micro is the slower", t2, t3)
	}
	if d := (&LatencyModel{}).Draw(OpImageAvailable, "ami-1", ""); d != 0 {
		t.Errorf("an empty model drew %s", d)
	}
	if d := Fixed(3 * time.Second).quantile(0.99); d != 3*time.Second {
		t.Errorf("Fixed(3s) drew %s", d)
	}
}

// A model with a wrong distribution is refused, naming the operation.
func TestLatencyModelValidate(t *testing.T) {
	for _, d := range []Dist{
		{Median: time.Second, P90: time.Millisecond},
		{Median: time.Second, Min: 2 * time.Second},
		{Median: time.Second, Max: time.Millisecond},
		{Median: -time.Second},
	} {
		m := &LatencyModel{Ops: map[LatencyOp]Dist{OpImageAvailable: d}}
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), string(OpImageAvailable)) {
			t.Errorf("%+v: %v, want an error naming %q", d, err, OpImageAvailable)
		}
		if _, err := NewGateway(GatewayOptions{Upstream: "http://127.0.0.1:1", Latency: m}); err == nil {
			t.Errorf("NewGateway took the model with %+v", d)
		}
	}
}

// The gateway's record: a change is drawn once (a second look gets the first times),
// scaled by the time scale, and listed in the order the changes started.
func TestGatewayModelled(t *testing.T) {
	g := &Gateway{opts: GatewayOptions{TimeScale: 0.1}}
	g.lat.model = &LatencyModel{Ops: map[LatencyOp]Dist{OpImageAvailable: Fixed(170 * time.Second), OpInstanceRunning: Fixed(5 * time.Second)}}
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	local, ready := g.modelled(OpImageAvailable, "ami-1", "", t0.Add(time.Second))
	if local != 17*time.Second || !ready.Equal(t0.Add(18*time.Second)) {
		t.Errorf("image: %s, ready %s; want 17 s (170 s × 0.1), ready at t0+18 s", local, ready)
	}
	if _, again := g.modelled(OpImageAvailable, "ami-1", "", t0.Add(time.Hour)); !again.Equal(ready) {
		t.Errorf("a second look moved the image's time from %s to %s", ready, again)
	}
	g.modelled(OpInstanceRunning, "i-1", "", t0)
	if local, at := g.modelled(OpLoadBalancerActive, "lb-1", "", t0); local != 0 || !at.Equal(t0) {
		t.Errorf("an op the model does not have took %s", local)
	}
	rec := g.LatencyRecord()
	if len(rec) != 2 || rec[0].Key != "i-1" || rec[1].Key != "ami-1" || rec[1].AWS != 170*time.Second {
		t.Errorf("record %+v; want the instance, then the image with 170 s", rec)
	}
	if at, ok := g.readyAt(OpImageAvailable, "ami-1"); !ok || !at.Equal(ready) {
		t.Errorf("readyAt %s %v", at, ok)
	}
}

// A run's base instance, image and load balancer draw their times by role: every run
// of a seed gets the same ones, whatever its other resources; the record keeps the
// real keys; a replica draws by its own id.
func TestDrawByRole(t *testing.T) {
	g := &Gateway{opts: GatewayOptions{TimeScale: 0.1}}
	g.lat.model = AWSLatency(7)
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	ec2Form := url.Values{
		"TagSpecification.1.ResourceType": {"instance"},
		"TagSpecification.1.Tag.1.Key":    {"trigger"}, "TagSpecification.1.Tag.1.Value": {"local"},
		"TagSpecification.1.Tag.2.Key": {pipeline.TagRole}, "TagSpecification.1.Tag.2.Value": {pipeline.RoleBase},
	}
	if role, gen := requestRole(ec2Form); role != pipeline.RoleBase || gen != "" {
		t.Fatalf("EC2 form: role %q, generation %q; want base and none", role, gen)
	}
	elbForm := url.Values{"Tags.member.1.Key": {pipeline.TagGeneration}, "Tags.member.1.Value": {"2"},
		"Tags.member.2.Key": {pipeline.TagRole}, "Tags.member.2.Value": {pipeline.RoleLoadBalancer}}
	if role, gen := requestRole(elbForm); role != pipeline.RoleLoadBalancer || gen != "2" {
		t.Fatalf("ELBv2 form: role %q, generation %q; want alb and 2", role, gen)
	}

	// Two runs' base instances: the same user data time, and the same restart.
	g.drawByRole("i-run1base", pipeline.RoleBase, "")
	g.drawByRole("i-run2base", pipeline.RoleBase, "")
	a, _ := g.modelled(OpUserDataDone, "i-run1base", "t2.micro", t0)
	b, _ := g.modelled(OpUserDataDone, "i-run2base", "t2.micro", t0)
	ra, _ := g.modelled(OpInstanceRunning, "i-run1base#start2", "", t0)
	rb, _ := g.modelled(OpInstanceRunning, "i-run2base#start2", "", t0)
	if a != b || ra != rb {
		t.Errorf("base instances of two runs: user data %s and %s, restart %s and %s; want the same", a, b, ra, rb)
	}
	// A replica, and another generation's base, draw their own.
	c, _ := g.modelled(OpUserDataDone, "i-replica", "t2.micro", t0)
	g.drawByRole("i-run1base-g2", pipeline.RoleBase, "2")
	d, _ := g.modelled(OpUserDataDone, "i-run1base-g2", "t2.micro", t0)
	if c == a || d == a {
		t.Errorf("user data %s (replica) and %s (generation 2) equal the base's %s: want their own draws", c, d, a)
	}
	if rec := g.LatencyRecord(); rec[0].Key != "i-run1base" || rec[1].Key != "i-run2base" {
		t.Errorf("record keys %q, %q; want the instances' own", rec[0].Key, rec[1].Key)
	}
	g.ResetLatencyRecord()
	g.lat.mu.Lock()
	kept := g.drawKey("i-run1base")
	g.lat.mu.Unlock()
	if kept != "i-run1base" {
		t.Errorf("after ResetLatencyRecord, i-run1base draws as %q; want its own key", kept)
	}
}
