package localcloud

// The data plane during a refresh (docs/refresh.md, "The local data plane"): draining targets stay listed
// while requests to them are in flight, and stopping or terminating an instance a load
// balancer still uses is recorded as a violation, per load balancer.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// drainScale runs a 10 s health check interval every 0.5 s and a 20 s deregistration
// delay in 1 s.
const drainScale = 0.05

// testALB is a load balancer with a listener forwarding to its own target group.
type testALB struct {
	elbc                  *elb.Client
	tgARN, dnsName, local string
}

// newTestALB creates a target group (checked every 10 s, timing out after 9 s,
// healthy after 2 checks; deregistration delay delaySeconds), a load balancer and its
// listener, registers ids and waits until they are all healthy.
func newTestALB(t *testing.T, lc *localCloud, name string, delaySeconds int, ids ...string) testALB {
	t.Helper()
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	f := testALB{elbc: elb.NewFromConfig(lc.cfg)}
	subnets, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v", err)
	}
	tg, err := f.elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String(name + "-tg"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		VpcId: subnets.Subnets[0].VpcId, HealthCheckPath: aws.String("/"), HealthCheckIntervalSeconds: aws.Int32(10), HealthCheckTimeoutSeconds: aws.Int32(9),
		HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2), Matcher: &elbtypes.Matcher{HttpCode: aws.String("200")}})
	if err != nil {
		t.Fatal(err)
	}
	f.tgARN = aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	if _, err := f.elbc.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(f.tgARN),
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String(strconv.Itoa(delaySeconds))}}}); err != nil {
		t.Fatal(err)
	}
	lb, err := f.elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String(name),
		Subnets: []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}})
	if err != nil {
		t.Fatal(err)
	}
	f.dnsName = aws.ToString(lb.LoadBalancers[0].DNSName)
	if _, err := f.elbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(f.tgARN)}}}); err != nil {
		t.Fatal(err)
	}
	if f.local = lc.gw.LoadBalancerLocalURL(f.dnsName); f.local == "" {
		t.Fatal("no local URL for the load balancer")
	}
	f.register(t, ids...)
	eventually(t, name+"'s targets healthy", func() bool {
		h := f.health(t)
		for _, id := range ids {
			if h[id].State != elbtypes.TargetHealthStateEnumHealthy {
				return false
			}
		}
		return true
	})
	return f
}

func (f testALB) targets(ids []string) []elbtypes.TargetDescription {
	var out []elbtypes.TargetDescription
	for _, id := range ids {
		out = append(out, elbtypes.TargetDescription{Id: aws.String(id)})
	}
	return out
}

func (f testALB) register(t *testing.T, ids ...string) {
	t.Helper()
	if _, err := f.elbc.RegisterTargets(context.Background(), &elb.RegisterTargetsInput{TargetGroupArn: aws.String(f.tgARN), Targets: f.targets(ids)}); err != nil {
		t.Fatal(err)
	}
}

func (f testALB) deregister(t *testing.T, ids ...string) {
	t.Helper()
	if _, err := f.elbc.DeregisterTargets(context.Background(), &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(f.tgARN), Targets: f.targets(ids)}); err != nil {
		t.Fatal(err)
	}
}

// health is DescribeTargetHealth's answer, by target.
func (f testALB) health(t *testing.T) map[string]elbtypes.TargetHealth {
	t.Helper()
	out, err := f.elbc.DescribeTargetHealth(context.Background(), &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(f.tgARN)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]elbtypes.TargetHealth{}
	for _, d := range out.TargetHealthDescriptions {
		m[aws.ToString(d.Target.Id)] = *d.TargetHealth
	}
	return m
}

// inflight is the number of requests the data plane counts in flight to the target.
func (f testALB) inflight(gw *Gateway, id string) int {
	gw.lbs.mu.Lock()
	defer gw.lbs.mu.Unlock()
	if tg := gw.lbs.groups[f.tgARN]; tg != nil && tg.targets[id] != nil {
		return tg.targets[id].inflight
	}
	return 0
}

// getResult is one GET through a load balancer.
type getResult struct {
	start, end time.Time
	code       int
	body       string
	err        error
}

func getPage(client *http.Client, u string) getResult {
	r := getResult{start: time.Now()}
	resp, err := client.Get(u)
	if err != nil {
		r.err, r.end = err, time.Now()
		return r
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.code, r.body, r.err, r.end = resp.StatusCode, string(b), err, time.Now()
	return r
}

// pagesOf maps each instance's page to its id.
func pagesOf(t *testing.T, lc *localCloud, ids []string) map[string]string {
	t.Helper()
	out, err := ec2.NewFromConfig(lc.cfg).DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			pages["<h1>Hola desde el EC2: "+aws.ToString(in.PrivateDnsName)+"</h1>"] = aws.ToString(in.InstanceId)
		}
	}
	return pages
}

// TestLoadBalancerDrainDuringLoad: a refresh's last steps under load, with pages that
// take 450 ms. While concurrent GETs run through the load balancer, one of its two
// targets is deregistered just as a request to it starts, and terminated as soon as
// DescribeTargetHealth no longer lists it. No request fails, none is sent to the
// target after its deregistration, the target stays listed past its delay (300 ms)
// until the request in flight ends, and the termination is no violation. (The page
// takes between 1 and 2 × the delay: past 2 × the delay the target would go anyway.
// The default time scale, 0.1, leaves the health checks' 900 ms timeout well above
// the page delay.)
func TestLoadBalancerDrainDuringLoad(t *testing.T) {
	const pageDelay = 450 * time.Millisecond
	log := &syncBuffer{}
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: 100 * time.Millisecond, PageDelay: pageDelay, LogWriter: log})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", log.String())
		}
	})
	ids := servingFleet(t, lc, 2)
	pages := pagesOf(t, lc, ids)
	alb := newTestALB(t, lc, "drain-alb", 3, ids...) // 3 s: 300 ms scaled
	old := ids[0]

	const workers, perWorker = 4, 10
	results := make([][]getResult, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for range perWorker {
				results[w] = append(results[w], getPage(client, alb.local))
			}
		}()
	}
	// Deregister just after a request to the old target starts: it is in flight for
	// about pageDelay, well past the delay.
	for prev, deadline := alb.inflight(lc.gw, old), time.Now().Add(5*time.Second); ; time.Sleep(time.Millisecond) {
		n := alb.inflight(lc.gw, old)
		if n > prev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no request reached the old target within 5 s")
		}
		prev = n
	}
	deregistering := time.Now()
	alb.deregister(t, old)
	deregistered := time.Now()
	var gone time.Time
	for deadline := time.Now().Add(10 * time.Second); gone.IsZero(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the old target still listed 10 s after its deregistration")
		}
		if _, listed := alb.health(t)[old]; !listed {
			gone = time.Now()
		}
	}
	if _, err := ec2.NewFromConfig(lc.cfg).TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{old}}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	var failed, toOld int
	for _, rs := range results {
		for _, r := range rs {
			if r.err != nil || r.code != http.StatusOK || pages[r.body] == "" {
				failed++
				t.Errorf("GET at %s: %d %q %v", r.start.Format("15:04:05.000"), r.code, r.body, r.err)
				continue
			}
			if pages[r.body] == old {
				toOld++
				if r.start.After(deregistered) {
					t.Errorf("a GET started after the deregistration was served by the old target")
				}
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d GETs failed, want none", failed, workers*perWorker)
	}
	if toOld == 0 {
		t.Error("no GET was served by the old target")
	}
	// The target was deregistered as a request to it started: that request, not the
	// 300 ms delay, kept it listed.
	if listed := gone.Sub(deregistering); listed < pageDelay*3/4 {
		t.Errorf("the old target was listed for %s after its deregistration, want about the page delay (%s): the request in flight", listed, pageDelay)
	}
	if !logged(log, "data plane: drained target removed after its last request", map[string]any{"targetGroup": alb.tgARN, "target": old}) {
		t.Error("the gateway did not log the old target's removal by its last request")
	}
	if v := lc.gw.DataPlaneViolations(alb.dnsName); len(v) != 0 {
		t.Errorf("violations %q, want none: the old target was terminated once drained", v)
	}
}

// TestLoadBalancerViolations: terminating an instance that is still draining from a
// load balancer's target group is recorded once, for that load balancer only; the
// record outlives the load balancer. Terminating an instance no load balancer uses
// records nothing.
func TestLoadBalancerViolations(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: 100 * time.Millisecond, TimeScale: drainScale})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	ids := servingFleet(t, lc, 3)
	a := newTestALB(t, lc, "viol-a", 300, ids[0]) // 15 s scaled: draining throughout
	b := newTestALB(t, lc, "viol-b", 300, ids[1])

	a.deregister(t, ids[0])
	if h := a.health(t)[ids[0]]; h.State != elbtypes.TargetHealthStateEnumDraining {
		t.Fatalf("%s after its deregistration: %+v, want draining", ids[0], h)
	}
	for _, id := range []string{ids[0], ids[2]} { // draining from a; no load balancer's
		if _, err := ec2c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
	}
	want := "TerminateInstances " + ids[0] + ": a target of " + a.tgARN + " (draining, 0 requests in flight)"
	if v := lc.gw.DataPlaneViolations(a.dnsName); len(v) != 1 || v[0] != want {
		t.Errorf("violations for %s: %q, want [%q]", a.dnsName, v, want)
	}
	if v := lc.gw.DataPlaneViolations(strings.ToUpper(a.dnsName)); len(v) != 1 {
		t.Errorf("violations by the DNS name in upper case: %q, want the same one", v)
	}
	if v := lc.gw.DataPlaneViolations(b.dnsName); len(v) != 0 {
		t.Errorf("violations for %s, which never used %s: %q, want none", b.dnsName, ids[0], v)
	}
	if v := lc.gw.DataPlaneViolations("nowhere.elb.amazonaws.com"); v != nil {
		t.Errorf("violations for an unknown load balancer: %q", v)
	}
	lbs, err := a.elbc.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{"viol-a"}})
	if err != nil || len(lbs.LoadBalancers) != 1 {
		t.Fatalf("DescribeLoadBalancers: %v", err)
	}
	if _, err := a.elbc.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: lbs.LoadBalancers[0].LoadBalancerArn}); err != nil {
		t.Fatal(err)
	}
	if v := lc.gw.DataPlaneViolations(a.dnsName); len(v) != 1 {
		t.Errorf("violations after the load balancer's deletion: %q, want the one recorded", v)
	}
}

// logged reports whether the gateway's log has a line with msg and attrs (numbers as
// JSON reads them: float64).
func logged(log *syncBuffer, msg string, attrs map[string]any) bool {
	for _, line := range strings.Split(log.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
			continue
		}
		all := true
		for k, v := range attrs {
			all = all && m[k] == v
		}
		if all {
			return true
		}
	}
	return false
}

// pageGate replaces instances' httpd stand-ins with ones that hold each page request
// (not the health checks) until the test releases the instance's requests.
type pageGate struct {
	arrived chan string // an instance's id, as a request to it arrives
	mu      sync.Mutex
	release map[string]chan struct{}
}

func holdPages(t *testing.T, gw *Gateway, ids ...string) *pageGate {
	t.Helper()
	p := &pageGate{arrived: make(chan string, 16), release: map[string]chan struct{}{}}
	for _, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rel := make(chan struct{})
		p.release[id] = rel
		page := httpdHandler(filepath.Join(gw.InstanceDisk(id), "var/www/html"), gw.PageDelay)
		h := &httpdStandIn{addr: ln.Addr().String(), srv: &http.Server{ReadHeaderTimeout: 10 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.UserAgent() != "ELB-HealthChecker/2.0" {
					p.arrived <- id
					select {
					case <-rel:
					case <-r.Context().Done(): // the instance stopped
						return
					}
				}
				page.ServeHTTP(w, r)
			})}}
		gw.instances.mu.Lock()
		old := gw.instances.serving[id]
		gw.instances.serving[id] = h // the gateway's Close closes it
		gw.instances.mu.Unlock()
		if old != nil {
			_ = old.srv.Close()
		}
		go func() { _ = h.srv.Serve(ln) }()
	}
	t.Cleanup(func() {
		for _, id := range ids {
			p.open(id)
		}
	})
	return p
}

// open lets the instance's requests through, held and to come.
func (p *pageGate) open(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rel := p.release[id]; rel != nil {
		close(rel)
		delete(p.release, id)
	}
}

// TestLoadBalancerDrainWaitsForInFlight: a draining target with a request in flight
// stays listed as draining past its deregistration delay until the request ends, and
// then goes at once; one whose request does not end goes at 2 × the delay, with a log
// line. That request still counts for the load balancer: terminating its instance then
// is a violation.
func TestLoadBalancerDrainWaitsForInFlight(t *testing.T) {
	log := &syncBuffer{}
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: 100 * time.Millisecond, TimeScale: drainScale, LogWriter: log})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", log.String())
		}
	})
	ids := servingFleet(t, lc, 2)
	gate := holdPages(t, lc.gw, ids...)
	alb := newTestALB(t, lc, "held-alb", 20, ids...)
	delay := time.Duration(20 * drainScale * float64(time.Second)) // 1 s

	// One request held at each target (round robin).
	answers := make(chan getResult, 2)
	client := &http.Client{Timeout: 10 * time.Second}
	held := map[string]bool{}
	for range 2 {
		go func() {
			answers <- getPage(client, alb.local)
		}()
		select {
		case id := <-gate.arrived:
			held[id] = true
		case <-time.After(5 * time.Second):
			t.Fatal("a GET did not reach a target within 5 s")
		}
	}
	if len(held) != 2 {
		t.Fatalf("requests held at %v, want one at each target", held)
	}
	deregistering := time.Now()
	alb.deregister(t, ids...)
	listedAt := func(id string, at time.Duration) {
		t.Helper()
		time.Sleep(time.Until(deregistering.Add(at)))
		if h, ok := alb.health(t)[id]; !ok || h.State != elbtypes.TargetHealthStateEnumDraining {
			t.Errorf("%s at %.2f × the delay, a request in flight: %+v (listed %t), want draining", id, float64(at)/float64(delay), h, ok)
		}
	}
	goneWithin := func(id string, from time.Time, within time.Duration) time.Time {
		t.Helper()
		for deadline := from.Add(within); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, ok := alb.health(t)[id]; !ok {
				return time.Now()
			}
		}
		t.Fatalf("%s still listed %s after %s", id, within, from.Format("15:04:05.000"))
		return time.Time{}
	}

	// ids[0]: its request ends at 1.3 × the delay, and the target goes with it.
	listedAt(ids[0], delay*13/10)
	if n := alb.inflight(lc.gw, ids[0]); n != 1 {
		t.Errorf("%s's requests in flight: %d, want 1", ids[0], n)
	}
	released := time.Now()
	gate.open(ids[0])
	if r := <-answers; r.err != nil || r.code != http.StatusOK || !strings.HasPrefix(r.body, "<h1>Hola desde el EC2: ") {
		t.Errorf("the released request: %d %q %v, want the page", r.code, r.body, r.err)
	}
	goneWithin(ids[0], released, delay/2)

	// ids[1]: its request outlasts 2 × the delay; the target goes anyway.
	listedAt(ids[1], delay*17/10)
	gone := goneWithin(ids[1], deregistering, 2*delay+delay/2)
	if gone.Sub(deregistering) < 2*delay {
		t.Errorf("%s went %s after its deregistration, before 2 × the delay (%s)", ids[1], gone.Sub(deregistering), 2*delay)
	}
	if !logged(log, "data plane: drained target removed at 2 × its deregistration delay with requests in flight",
		map[string]any{"targetGroup": alb.tgARN, "target": ids[1], "inflight": 1.0}) {
		t.Error("the gateway did not log the forced removal")
	}
	if v := lc.gw.DataPlaneViolations(alb.dnsName); len(v) != 0 {
		t.Errorf("violations before any termination: %q", v)
	}
	// Its request is still in flight: terminating the instance fails it.
	if _, err := ec2.NewFromConfig(lc.cfg).TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{ids[1]}}); err != nil {
		t.Fatal(err)
	}
	want := "TerminateInstances " + ids[1] + ": a target of " + alb.tgARN + " (not registered, 1 requests in flight)"
	if v := lc.gw.DataPlaneViolations(alb.dnsName); len(v) != 1 || v[0] != want {
		t.Errorf("violations: %q, want [%q]", v, want)
	}
	if r := <-answers; r.err == nil && r.code == http.StatusOK {
		t.Errorf("the request to the terminated instance: %d %q, want it failed", r.code, r.body)
	}
}
