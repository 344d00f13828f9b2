package localcloud

// The load balancers' data plane. Each load balancer with a listener gets an HTTP
// stand-in on loopback that forwards requests round-robin to the healthy targets of the
// listener's target group (503 when none is healthy, as an ALB answers). It is reachable
// on its own local port (LoadBalancerLocalURL) and by its AWS DNS name through the
// gateway used as an HTTP proxy (function processes get HTTP_PROXY). Each registered
// target is health-checked with real GETs using its target group's own settings, on
// the gateway's time scale, and DescribeTargetHealth answers from those checks with
// AWS's states and reason codes.

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// lbPlane is the load balancers' state; the zero value is ready.
type lbPlane struct {
	mu     sync.Mutex
	byARN  map[string]*albStandIn
	groups map[string]*targetGroup
	// violations are the data-plane violations (checkDataPlane), by the load
	// balancer's DNS name in lower case: kept after the load balancer is deleted, so
	// that a test reads them after its teardown too.
	violations map[string][]string
}

// albStandIn is one load balancer's listener on loopback.
type albStandIn struct {
	arn, dnsName, targetGroupARN string
	region                       string
	port                         int32    // the listener's
	securityGroups               []string // the load balancer's
	srv                          *http.Server
	addr                         string
	next                         int
	// inflight counts, per instance, the requests this load balancer has forwarded
	// to it that have not ended. Unlike targetHealth.inflight, it outlives the
	// target's record (a drain cut short at 2 × the delay): a termination then
	// still fails those requests.
	inflight map[string]int
}

// The sources the data plane tells apart. A request to a load balancer's local port,
// or through the proxy without credentials, comes from the person running the local
// cloud (GatewayOptions.UserAddress). A function's request through the proxy comes from
// a Lambda outside any VPC: an address in AWS's public ranges that no customer CIDR
// contains short of 0.0.0.0/0. Function processes carry lambdaProxyUser in their
// HTTP_PROXY, which the proxy reads back from Proxy-Authorization.
const (
	DefaultUserAddress = "203.0.113.10"
	lambdaAddress      = "52.94.76.10"
	lambdaProxyUser    = "lambda"
)

// targetGroup is a target group's health check settings and its targets' health.
type targetGroup struct {
	arn, region                  string
	port                         int32
	path, matcher                string
	interval, timeout            time.Duration // on the gateway's time scale
	healthyThreshold, unhealthyN int
	targets                      map[string]*targetHealth
}

type targetHealth struct {
	state, reason, description string
	ok, failed                 int // consecutive results
	stop                       context.CancelFunc
	registered                 time.Time
	// inflight is the requests forward sent to the target that have not ended; a
	// draining target stays listed until it is 0 (or 2 × the delay has passed).
	inflight int
	// drainEnds is when a draining target's deregistration delay ends (scaled);
	// zero until deregister.
	drainEnds time.Time
}

// scaled turns an AWS duration into local time (GatewayOptions.TimeScale).
func (g *Gateway) scaled(d time.Duration) time.Duration {
	return max(time.Duration(float64(d)*g.opts.TimeScale), 10*time.Millisecond)
}

// LoadBalancerLocalURL is the local URL of the load balancer whose DNS name is dnsName
// ("" when it has no listener here).
func (g *Gateway) LoadBalancerLocalURL(dnsName string) string {
	if a := g.loadBalancerNamed(dnsName); a != nil {
		return "http://" + a.addr + "/"
	}
	return ""
}

// loadBalancerNamed is the listening load balancer whose DNS name is dnsName, or nil.
func (g *Gateway) loadBalancerNamed(dnsName string) *albStandIn {
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	for _, a := range g.lbs.byARN {
		if strings.EqualFold(a.dnsName, dnsName) {
			return a
		}
	}
	return nil
}

// requestHost is the host a request is for, without its port: the absolute URL's for
// a proxied request, else the Host header's.
func requestHost(r *http.Request) string {
	host := r.Host
	if r.URL.IsAbs() {
		host = r.URL.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// isLoadBalancerRequest reports whether r is an HTTP request for a load balancer's DNS
// name (the gateway used as an HTTP proxy).
func isLoadBalancerRequest(r *http.Request) bool {
	return strings.HasSuffix(strings.ToLower(requestHost(r)), ".elb.amazonaws.com")
}

// serveLoadBalancer answers a proxied request for a load balancer's DNS name.
func (g *Gateway) serveLoadBalancer(w http.ResponseWriter, r *http.Request) {
	host := requestHost(r)
	a := g.loadBalancerNamed(host)
	if a == nil || !g.loadBalancerActive(a.arn) { // a provisioning one's name does not resolve yet
		http.Error(w, "amifleet gateway: no load balancer listens at "+host, http.StatusBadGateway)
		return
	}
	src := g.opts.UserAddress
	if user, _, ok := proxyUser(r); ok && user == lambdaProxyUser {
		src = lambdaAddress
	}
	g.admitAndForward(a, src, w, r)
}

// proxyUser is the user in a request's Proxy-Authorization (Basic).
func proxyUser(r *http.Request) (string, string, bool) {
	auth := r.Header.Get("Proxy-Authorization")
	if auth == "" {
		return "", "", false
	}
	fake := &http.Request{Header: http.Header{"Authorization": {auth}}}
	return fake.BasicAuth()
}

// admitAndForward forwards r when the load balancer's security groups admit src on
// the listener's port; otherwise the request is dropped: no answer, until the client
// gives up (as a packet a security group drops), or the gateway closes.
func (g *Gateway) admitAndForward(a *albStandIn, src string, w http.ResponseWriter, r *http.Request) {
	if !g.admits(r.Context(), a, src) {
		g.log.Info("data plane: security group drops the request", "loadBalancer", a.dnsName, "source", src)
		select {
		case <-r.Context().Done():
		case <-g.ctx.Done():
		}
		return
	}
	g.forward(a, w, r)
}

// admits reports whether one of the load balancer's security groups lets src in on
// the listener's port.
func (g *Gateway) admits(ctx context.Context, a *albStandIn, src string) bool {
	ip := net.ParseIP(src)
	if len(a.securityGroups) == 0 || ip == nil {
		return ip != nil // created without groups (only tests do): nothing to hold the request to
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := g.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: a.securityGroups}, func(o *ec2.Options) { o.Region = a.region })
	if err != nil {
		g.log.Error("data plane: the load balancer's security groups", "error", err.Error())
		return false
	}
	for _, sg := range out.SecurityGroups {
		for _, p := range sg.IpPermissions {
			if !permitsPort(p, a.port) {
				continue
			}
			for _, rng := range p.IpRanges {
				if _, n, err := net.ParseCIDR(aws.ToString(rng.CidrIp)); err == nil && n.Contains(ip) {
					return true
				}
			}
		}
	}
	return false
}

// permitsPort reports whether an ingress rule covers TCP port.
func permitsPort(p ec2types.IpPermission, port int32) bool {
	switch aws.ToString(p.IpProtocol) {
	case "-1", "all":
		return true
	case "tcp", "6":
		return aws.ToInt32(p.FromPort) <= port && port <= aws.ToInt32(p.ToPort)
	}
	return false
}

// forward sends r to the next healthy target of a's target group. The request counts
// as in flight to the target from the moment it is picked until the target's answer
// has been copied to the client: a draining target is not removed meanwhile, and
// terminating it is a violation (checkDataPlane).
func (g *Gateway) forward(a *albStandIn, w http.ResponseWriter, r *http.Request) {
	g.lbs.mu.Lock()
	tg := g.lbs.groups[a.targetGroupARN]
	var healthy []string
	if tg != nil {
		for id, th := range tg.targets {
			if th.state == string(elbtypes.TargetHealthStateEnumHealthy) {
				healthy = append(healthy, id)
			}
		}
	}
	var target string
	if len(healthy) > 0 {
		slices.Sort(healthy)
		target = healthy[a.next%len(healthy)]
		a.next++
		th := tg.targets[target]
		th.inflight++
		if a.inflight == nil {
			a.inflight = map[string]int{}
		}
		a.inflight[target]++
		defer g.requestEnded(a, tg, target, th)
	}
	g.lbs.mu.Unlock()
	addr := ""
	if target != "" {
		addr = g.InstanceAddress(target)
	}
	if addr == "" {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n")
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", addr
			pr.Out.Host = a.dnsName
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway) // an ALB's answer when the target does not
		},
	}
	rp.ServeHTTP(w, r)
}

// requestEnded ends a request forward counted as in flight to the target id. The
// last one to end on a target whose deregistration delay has passed removes it: the
// drain (deregister) left it listed for that request.
func (g *Gateway) requestEnded(a *albStandIn, tg *targetGroup, id string, th *targetHealth) {
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	th.inflight--
	if a.inflight[id]--; a.inflight[id] <= 0 {
		delete(a.inflight, id)
	}
	if th.inflight == 0 && th.state == string(elbtypes.TargetHealthStateEnumDraining) && !th.drainEnds.IsZero() &&
		!time.Now().Before(th.drainEnds) && tg.targets[id] == th {
		delete(tg.targets, id)
		g.log.Info("data plane: drained target removed after its last request", "targetGroup", tg.arn, "target", id)
	}
}

// loadBalancersChanged follows the ELBv2 calls that change what serves.
func (g *Gateway) loadBalancersChanged(call apiCall, body []byte) []byte {
	inRegion := func(o *elb.Options) { o.Region = call.Region }
	switch call.Action {
	case "CreateLoadBalancer":
		g.loadBalancerCreated(call, body)
	case "DescribeLoadBalancers":
		return g.rewriteLoadBalancerStates(body)
	case "CreateListener":
		tg := call.Form.Get("DefaultActions.member.1.TargetGroupArn")
		if tg == "" {
			tg = call.Form.Get("DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn")
		}
		port, _ := strconv.Atoi(call.Form.Get("Port"))
		g.listen(call.Form.Get("LoadBalancerArn"), tg, call.Region, int32(port), inRegion)
	case "DeleteLoadBalancer":
		g.lbs.mu.Lock()
		a := g.lbs.byARN[call.Form.Get("LoadBalancerArn")]
		delete(g.lbs.byARN, call.Form.Get("LoadBalancerArn"))
		g.lbs.mu.Unlock()
		if a != nil {
			_ = a.srv.Close()
		}
		g.loadBalancerDeleted(call)
	case "RegisterTargets":
		g.register(call.Form.Get("TargetGroupArn"), formMembers(call, "Targets", "Id"), inRegion)
	case "DeregisterTargets":
		g.deregister(call.Form.Get("TargetGroupArn"), call.Region, formMembers(call, "Targets", "Id"))
	case "DeleteTargetGroup":
		g.lbs.mu.Lock()
		tg := g.lbs.groups[call.Form.Get("TargetGroupArn")]
		delete(g.lbs.groups, call.Form.Get("TargetGroupArn"))
		g.lbs.mu.Unlock()
		if tg != nil {
			for _, th := range tg.targets {
				th.stop()
			}
		}
	case "DescribeTargetHealth":
		return g.rewriteTargetHealth(call.Form.Get("TargetGroupArn"), body)
	}
	return nil
}

func (g *Gateway) listen(lbARN, tgARN, region string, port int32, optFns ...func(*elb.Options)) {
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	out, err := g.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{lbARN}}, optFns...)
	if err != nil || len(out.LoadBalancers) == 0 {
		g.log.Error("data plane: load balancer", "arn", lbARN, "error", fmt.Sprint(err))
		return
	}
	ln, err := g.standInListener(lbARN) // refuses while the load balancer provisions
	if err != nil {
		g.log.Error("data plane: load balancer listener", "error", err.Error())
		return
	}
	a := &albStandIn{arn: lbARN, dnsName: aws.ToString(out.LoadBalancers[0].DNSName), targetGroupARN: tgARN, addr: ln.Addr().String(),
		region: region, port: port, securityGroups: out.LoadBalancers[0].SecurityGroups}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.admitAndForward(a, g.opts.UserAddress, w, r) }),
		ReadHeaderTimeout: 10 * time.Second}
	g.lbs.mu.Lock()
	if g.lbs.byARN == nil {
		g.lbs.byARN = map[string]*albStandIn{}
	}
	if old := g.lbs.byARN[lbARN]; old != nil {
		_ = old.srv.Close()
	}
	g.lbs.byARN[lbARN] = a
	g.lbs.mu.Unlock()
	go func() { _ = a.srv.Serve(ln) }()
	g.log.Info("data plane: load balancer listening", "dnsName", a.dnsName, "local", a.addr)
	if g.opts.OnLoadBalancer != nil {
		g.opts.OnLoadBalancer(a.dnsName, "http://"+a.addr+"/")
	}
}

// register starts health-checking the targets with their group's settings.
func (g *Gateway) register(tgARN string, ids []string, optFns ...func(*elb.Options)) {
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	out, err := g.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{tgARN}}, optFns...)
	if err != nil || len(out.TargetGroups) == 0 {
		g.log.Error("data plane: target group", "arn", tgARN, "error", fmt.Sprint(err))
		return
	}
	s := out.TargetGroups[0]
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	if g.lbs.groups == nil {
		g.lbs.groups = map[string]*targetGroup{}
	}
	tg := g.lbs.groups[tgARN]
	if tg == nil {
		tg = &targetGroup{arn: tgARN, region: aws.ToString(optRegion(optFns)), port: aws.ToInt32(s.Port), path: aws.ToString(s.HealthCheckPath), matcher: "200",
			interval:         g.scaled(time.Duration(aws.ToInt32(s.HealthCheckIntervalSeconds)) * time.Second),
			timeout:          g.scaled(time.Duration(aws.ToInt32(s.HealthCheckTimeoutSeconds)) * time.Second),
			healthyThreshold: int(aws.ToInt32(s.HealthyThresholdCount)), unhealthyN: int(aws.ToInt32(s.UnhealthyThresholdCount)),
			targets: map[string]*targetHealth{}}
		if s.Matcher != nil && aws.ToString(s.Matcher.HttpCode) != "" {
			tg.matcher = aws.ToString(s.Matcher.HttpCode)
		}
		if tg.path == "" {
			tg.path = "/"
		}
		if d := g.PageDelay(); d >= tg.timeout {
			g.log.Warn("data plane: pages take longer than the target group's health check timeout: its targets will not pass their checks",
				"targetGroup", tgARN, "pageDelay", d.String(), "timeout", tg.timeout.String())
		}
		g.lbs.groups[tgARN] = tg
	}
	for _, id := range ids {
		if th := tg.targets[id]; th != nil && th.state != string(elbtypes.TargetHealthStateEnumDraining) {
			continue // registering again changes nothing
		}
		cctx, stop := context.WithCancel(g.ctx)
		th := &targetHealth{state: string(elbtypes.TargetHealthStateEnumInitial),
			reason: string(elbtypes.TargetHealthReasonEnumRegistrationInProgress), description: "Target registration is in progress", stop: stop,
			registered: time.Now()}
		tg.targets[id] = th
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			g.healthCheck(cctx, tg, id, th)
		}()
	}
}

// deregister stops checking the targets and drains them: the load balancer sends them
// no new requests, and they are listed as draining for the group's deregistration
// delay (deregistration_delay.timeout_seconds, AWS's default 300 s), on the time scale,
// and after it for as long as a request forwarded to them has not ended (the last one
// to end removes the target: requestEnded). AWS lets in-flight requests complete
// within the delay and ends the drain early when none are left; the local drain is
// never shorter than the delay, the conservative case for a caller that must wait
// for it. AWS closes the connections that remain when the delay ends; the local
// drain waits for them up to 2 × the delay, then removes the target anyway (and logs
// it), so that a page that never ends cannot keep it listed for ever.
func (g *Gateway) deregister(tgARN, region string, ids []string) {
	delay := 300 * time.Second
	ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
	defer cancel()
	if out, err := g.elb.DescribeTargetGroupAttributes(ctx, &elb.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(tgARN)},
		func(o *elb.Options) { o.Region = region }); err == nil {
		for _, a := range out.Attributes {
			if aws.ToString(a.Key) == "deregistration_delay.timeout_seconds" {
				if n, err := strconv.Atoi(aws.ToString(a.Value)); err == nil {
					delay = time.Duration(n) * time.Second
				}
			}
		}
	}
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	tg := g.lbs.groups[tgARN]
	if tg == nil {
		return
	}
	scaled := g.scaled(delay)
	for _, id := range ids {
		th := tg.targets[id]
		if th == nil || th.state == string(elbtypes.TargetHealthStateEnumDraining) {
			continue // deregistering again does not restart the drain
		}
		th.stop()
		th.state, th.reason, th.description = string(elbtypes.TargetHealthStateEnumDraining),
			string(elbtypes.TargetHealthReasonEnumDeregistrationInProgress), "Target deregistration is in progress"
		th.drainEnds = time.Now().Add(scaled)
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			g.drain(tg, id, th, scaled)
		}()
	}
}

// drain removes a draining target once its delay has passed, unless requests to it
// are still in flight: then the last of them removes it (requestEnded), or, past
// 2 × the delay, drain does whatever is left.
func (g *Gateway) drain(tg *targetGroup, id string, th *targetHealth, delay time.Duration) {
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-g.ctx.Done():
			return false
		}
	}
	if !wait(time.Until(th.drainEnds)) {
		return
	}
	g.lbs.mu.Lock()
	if tg.targets[id] != th { // registered again meanwhile
		g.lbs.mu.Unlock()
		return
	}
	if th.inflight == 0 {
		delete(tg.targets, id)
		g.lbs.mu.Unlock()
		return
	}
	g.lbs.mu.Unlock()
	if !wait(time.Until(th.drainEnds.Add(delay))) {
		return
	}
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	if tg.targets[id] == th {
		delete(tg.targets, id)
		g.log.Warn("data plane: drained target removed at 2 × its deregistration delay with requests in flight",
			"targetGroup", tg.arn, "target", id, "inflight", th.inflight, "delay", delay.String())
	}
}

// checkDataPlane is called as action (StopInstances or TerminateInstances, as moto
// accepted it) takes the instance id down. It records a data-plane violation for
// each load balancer still using the instance: a target of the load balancer's group
// in any state but unused (initial, healthy, unhealthy or draining), or one the load
// balancer has requests in flight to. Those requests, or the ones it is still sent,
// fail: a refresh must never do this (docs/refresh.md §4). Violations are kept per
// load balancer, as several scenarios may share a gateway, and one's teardown may
// legitimately terminate targets of its own.
func (g *Gateway) checkDataPlane(action, id string) {
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	for _, arn := range slices.Sorted(maps.Keys(g.lbs.byARN)) {
		a := g.lbs.byARN[arn]
		state := "not registered"
		if tg := g.lbs.groups[a.targetGroupARN]; tg != nil && tg.targets[id] != nil {
			state = tg.targets[id].state
		}
		inflight := a.inflight[id]
		if inflight == 0 && (state == "not registered" || state == string(elbtypes.TargetHealthStateEnumUnused)) {
			continue
		}
		v := fmt.Sprintf("%s %s: a target of %s (%s, %d requests in flight)", action, id, a.targetGroupARN, state, inflight)
		if g.lbs.violations == nil {
			g.lbs.violations = map[string][]string{}
		}
		key := strings.ToLower(a.dnsName)
		g.lbs.violations[key] = append(g.lbs.violations[key], v)
		g.log.Error("data plane violation", "loadBalancer", a.dnsName, "violation", v)
	}
}

// DataPlaneViolations are the data-plane violations recorded for the load balancer
// whose DNS name is dnsName, oldest first: each a StopInstances or TerminateInstances
// of an instance the load balancer was still using (checkDataPlane), in one line
// naming the call, the instance, the target group, the target's state and its
// requests in flight. None is nil.
func (g *Gateway) DataPlaneViolations(dnsName string) []string {
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	return slices.Clone(g.lbs.violations[strings.ToLower(dnsName)])
}

// healthCheck checks one target every interval until it is deregistered.
func (g *Gateway) healthCheck(ctx context.Context, tg *targetGroup, id string, th *targetHealth) {
	client := &http.Client{Timeout: tg.timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	// Whether the instance's groups admit the load balancer is read again every 5
	// checks, not at each: two describes per target per check would swamp moto with a
	// large fleet, and a rule change still takes effect within a few intervals.
	var (
		admitted  bool
		admitRead time.Time
	)
	admits := func(a *albStandIn) bool {
		if admitRead.IsZero() || time.Since(admitRead) >= 5*tg.interval {
			admitted, admitRead = g.instanceAdmits(ctx, id, a, tg), time.Now()
		}
		return admitted
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(tg.interval):
		}
		a := g.loadBalancerOf(tg.arn)
		if g.awaitingLoadBalancer(a, th) {
			continue
		}
		if a == nil {
			// No listener forwards to the group: AWS does not check its targets.
			g.lbs.mu.Lock()
			th.state, th.reason, th.description = string(elbtypes.TargetHealthStateEnumUnused),
				string(elbtypes.TargetHealthReasonEnumNotInUse), "Target group is not configured to receive traffic from the load balancer"
			th.ok, th.failed = 0, 0
			g.lbs.mu.Unlock()
			continue
		}
		reason, description := g.checkOnce(ctx, client, tg, admits(a), id)
		g.lbs.mu.Lock()
		if ctx.Err() != nil {
			g.lbs.mu.Unlock()
			return // deregistered meanwhile: the check's answer no longer counts
		}
		if th.state == string(elbtypes.TargetHealthStateEnumUnused) {
			th.state = string(elbtypes.TargetHealthStateEnumInitial)
		}
		if reason == "" {
			th.ok, th.failed = th.ok+1, 0
			if th.ok >= tg.healthyThreshold {
				if th.state != string(elbtypes.TargetHealthStateEnumHealthy) {
					g.measured(OpTargetHealthy, tg.arn+" "+id, th.registered, time.Now())
				}
				th.state, th.reason, th.description = string(elbtypes.TargetHealthStateEnumHealthy), "", ""
			} else if th.state == string(elbtypes.TargetHealthStateEnumInitial) {
				th.reason, th.description = string(elbtypes.TargetHealthReasonEnumInitialHealthChecking), "Initial health checks in progress"
			}
		} else {
			th.ok, th.failed = 0, th.failed+1
			if th.failed >= tg.unhealthyN {
				th.state, th.reason, th.description = string(elbtypes.TargetHealthStateEnumUnhealthy), reason, description
			} else if th.state == string(elbtypes.TargetHealthStateEnumInitial) {
				th.reason, th.description = string(elbtypes.TargetHealthReasonEnumInitialHealthChecking), "Initial health checks in progress"
			}
		}
		g.lbs.mu.Unlock()
	}
}

// checkOnce is one health check: "" when it passed, else AWS's reason code and words.
func (g *Gateway) checkOnce(ctx context.Context, client *http.Client, tg *targetGroup, admitted bool, id string) (reason, description string) {
	addr := g.InstanceAddress(id)
	if addr == "" || !admitted {
		// Nothing listens, or the instance's security groups drop the load
		// balancer's packets: the check is not answered in time.
		return string(elbtypes.TargetHealthReasonEnumTimeout), "Request timed out"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+tg.path, nil)
	req.Header.Set("User-Agent", "ELB-HealthChecker/2.0")
	resp, err := client.Do(req)
	if err != nil {
		return string(elbtypes.TargetHealthReasonEnumTimeout), "Request timed out"
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if !matches(tg.matcher, resp.StatusCode) {
		return string(elbtypes.TargetHealthReasonEnumResponseCodeMismatch), fmt.Sprintf("Health checks failed with these codes: [%d]", resp.StatusCode)
	}
	return "", ""
}

// loadBalancerOf is the load balancer whose listener forwards to the target group.
func (g *Gateway) loadBalancerOf(tgARN string) *albStandIn {
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	for _, a := range g.lbs.byARN {
		if a.targetGroupARN == tgARN {
			return a
		}
	}
	return nil
}

// albPrivateAddress is where the load balancer's own packets come from, inside the
// default VPC (172.31.0.0/16): a rule for a CIDR must contain it to admit them.
const albPrivateAddress = "172.31.255.10"

// instanceGroups are an instance's security groups: its own, and those on its network
// interfaces (moto lists the groups of an instance launched with them on an interface
// there only; on AWS the instance's groups are its primary interface's).
func instanceGroups(inst ec2types.Instance) []string {
	var groups []string
	for _, sg := range inst.SecurityGroups {
		groups = append(groups, aws.ToString(sg.GroupId))
	}
	for _, ni := range inst.NetworkInterfaces {
		for _, sg := range ni.Groups {
			if id := aws.ToString(sg.GroupId); !slices.Contains(groups, id) {
				groups = append(groups, id)
			}
		}
	}
	return groups
}

// instanceAdmits reports whether the instance's security groups let the load balancer
// in on the target group's port: a rule naming one of its security groups, or a CIDR
// that contains its private address.
func (g *Gateway) instanceAdmits(ctx context.Context, instanceID string, a *albStandIn, tg *targetGroup) bool {
	if len(a.securityGroups) == 0 {
		return true // a load balancer created without groups (only tests do)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	inRegion := func(o *ec2.Options) { o.Region = tg.region }
	out, err := g.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instanceID}}, inRegion)
	if err != nil || len(out.Reservations) == 0 || len(out.Reservations[0].Instances) == 0 {
		return false
	}
	groups := instanceGroups(out.Reservations[0].Instances[0])
	if len(groups) == 0 {
		// moto lists none for an instance launched without groups; on AWS it has the
		// VPC's default group, which admits only its own members.
		return false
	}
	sgs, err := g.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: groups}, inRegion)
	if err != nil {
		return false
	}
	albIP := net.ParseIP(albPrivateAddress)
	for _, sg := range sgs.SecurityGroups {
		for _, p := range sg.IpPermissions {
			if !permitsPort(p, tg.port) {
				continue
			}
			for _, pair := range p.UserIdGroupPairs {
				if slices.Contains(a.securityGroups, aws.ToString(pair.GroupId)) {
					return true
				}
			}
			for _, rng := range p.IpRanges {
				if _, n, err := net.ParseCIDR(aws.ToString(rng.CidrIp)); err == nil && n.Contains(albIP) {
					return true
				}
			}
		}
	}
	return false
}

// optRegion is the region the ELB options set, or nil.
func optRegion(optFns []func(*elb.Options)) *string {
	var o elb.Options
	for _, f := range optFns {
		f(&o)
	}
	if o.Region == "" {
		return nil
	}
	return &o.Region
}

// matches reports whether code satisfies a matcher such as "200", "200,302" or "200-299".
func matches(matcher string, code int) bool {
	for _, part := range strings.Split(matcher, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		l, err1 := strconv.Atoi(lo)
		h := l
		var err2 error
		if isRange {
			h, err2 = strconv.Atoi(hi)
		}
		if err1 == nil && err2 == nil && code >= l && code <= h {
			return true
		}
	}
	return false
}

// describeTargetHealthResponse is ELBv2's DescribeTargetHealth answer, as much as the
// rewrite needs.
type describeTargetHealthResponse struct {
	XMLName   xml.Name             `xml:"DescribeTargetHealthResponse"`
	Xmlns     string               `xml:"xmlns,attr,omitempty"`
	Members   []targetHealthMember `xml:"DescribeTargetHealthResult>TargetHealthDescriptions>member"`
	RequestID string               `xml:"ResponseMetadata>RequestId"`
}

type targetHealthMember struct {
	HealthCheckPort string `xml:"HealthCheckPort,omitempty"`
	Target          struct {
		ID   string `xml:"Id"`
		Port string `xml:"Port,omitempty"`
	} `xml:"Target"`
	TargetHealth struct {
		State       string `xml:"State"`
		Reason      string `xml:"Reason,omitempty"`
		Description string `xml:"Description,omitempty"`
	} `xml:"TargetHealth"`
}

// rewriteTargetHealth answers DescribeTargetHealth from the health checks, for the
// targets the data plane checks; nil leaves moto's answer as it is.
func (g *Gateway) rewriteTargetHealth(tgARN string, body []byte) []byte {
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	tg := g.lbs.groups[tgARN]
	if tg == nil {
		return nil
	}
	var resp describeTargetHealthResponse
	if err := xml.Unmarshal(body, &resp); err != nil {
		g.log.Error("data plane: unreadable DescribeTargetHealth answer", "error", err.Error())
		return nil
	}
	listed := map[string]bool{}
	for i := range resp.Members {
		m := &resp.Members[i]
		listed[m.Target.ID] = true
		if th := tg.targets[m.Target.ID]; th != nil {
			m.TargetHealth.State, m.TargetHealth.Reason, m.TargetHealth.Description = th.state, th.reason, th.description
		}
	}
	// moto forgets a target when it is deregistered; AWS lists it as draining for the
	// group's deregistration delay.
	for _, id := range slices.Sorted(maps.Keys(tg.targets)) {
		if th := tg.targets[id]; !listed[id] && th.state == string(elbtypes.TargetHealthStateEnumDraining) {
			var m targetHealthMember
			m.Target.ID, m.Target.Port = id, strconv.Itoa(int(tg.port))
			m.TargetHealth.State, m.TargetHealth.Reason, m.TargetHealth.Description = th.state, th.reason, th.description
			resp.Members = append(resp.Members, m)
		}
	}
	out, err := xml.Marshal(resp)
	if err != nil {
		return nil
	}
	return append([]byte(xml.Header), out...)
}

// closeLoadBalancers stops every stand-in and health check (Close).
func (g *Gateway) closeLoadBalancers() {
	g.lbs.mu.Lock()
	defer g.lbs.mu.Unlock()
	for _, a := range g.lbs.byARN {
		_ = a.srv.Close()
	}
	for _, tg := range g.lbs.groups {
		for _, th := range tg.targets {
			th.stop()
		}
	}
}

// formMembers are the field values of a query-protocol member list:
// Name.member.N.Field.
func formMembers(call apiCall, name, field string) []string {
	var out []string
	for k, v := range call.Form {
		if strings.HasPrefix(k, name+".member.") && strings.HasSuffix(k, "."+field) && len(v) > 0 {
			out = append(out, v[0])
		}
	}
	return out
}
