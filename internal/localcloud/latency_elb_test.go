package localcloud

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// lbStates are the states DescribeLoadBalancers shows, by ARN.
func lbStates(t *testing.T, elbc *elb.Client) map[string]elbtypes.LoadBalancerStateEnum {
	t.Helper()
	out, err := elbc.DescribeLoadBalancers(context.Background(), &elb.DescribeLoadBalancersInput{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]elbtypes.LoadBalancerStateEnum{}
	for _, lb := range out.LoadBalancers {
		m[aws.ToString(lb.LoadBalancerArn)] = lb.State.Code
	}
	return m
}

// TestLatencyELBModelled: with a model, a load balancer provisions for its modelled
// time (DescribeLoadBalancers, its local port, its DNS name through the proxy),
// CreateTargetGroup and CreateListener take theirs without holding other calls, and a
// deleted load balancer's group stays in use until its network interfaces are gone.
func TestLatencyELBModelled(t *testing.T) {
	const scale = 0.05
	const (
		active   = 160 * time.Second // 8 s local
		tgAnswer = 60 * time.Second  // 3 s
		lAnswer  = 30 * time.Second  // 1.5 s
		enisGone = 40 * time.Second  // 2 s
	)
	local := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	model := &LatencyModel{Seed: 1, Ops: map[LatencyOp]Dist{OpLoadBalancerActive: Fixed(active), OpCreateTargetGroupAnswer: Fixed(tgAnswer),
		OpCreateListenerAnswer: Fixed(lAnswer), OpLoadBalancerENIsGone: Fixed(enisGone)}}
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: 100 * time.Millisecond, TimeScale: scale, Latency: model})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	elbc := elb.NewFromConfig(lc.cfg)
	ids := servingFleet(t, lc, 1)
	subnets, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v", err)
	}
	twoSubnets := []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}

	// CreateTargetGroup answers after its time; a call made meanwhile answers first.
	type created struct {
		out *elb.CreateTargetGroupOutput
		err error
		at  time.Time
	}
	tgDone := make(chan created, 1)
	tgStart := time.Now()
	go func() {
		out, err := elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("lat-tg"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
			VpcId: subnets.Subnets[0].VpcId, HealthCheckIntervalSeconds: aws.Int32(5), HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2)})
		tgDone <- created{out, err, time.Now()}
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := elbc.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{}); err != nil {
		t.Fatal(err)
	}
	otherDone := time.Now()
	tg := <-tgDone
	if tg.err != nil {
		t.Fatal(tg.err)
	}
	if took := tg.at.Sub(tgStart); took < local(tgAnswer) {
		t.Errorf("CreateTargetGroup answered in %s, before its modelled %s", took, local(tgAnswer))
	}
	if !otherDone.Before(tg.at) {
		t.Error("a DescribeTargetGroups made during CreateTargetGroup answered after it: the model held it")
	}
	tgARN := tg.out.TargetGroups[0].TargetGroupArn
	if _, err := elbc.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String(ids[0])}}}); err != nil {
		t.Fatal(err)
	}

	createdAt := time.Now()
	lb, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("lat-alb"), Subnets: twoSubnets})
	if err != nil {
		t.Fatal(err)
	}
	lbARN, dnsName := aws.ToString(lb.LoadBalancers[0].LoadBalancerArn), aws.ToString(lb.LoadBalancers[0].DNSName)
	listenerStart := time.Now()
	if _, err := elbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(lbARN), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgARN}}}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(listenerStart); took < local(lAnswer) {
		t.Errorf("CreateListener answered in %s, before its modelled %s", took, local(lAnswer))
	}
	localURL := lc.gw.LoadBalancerLocalURL(dnsName)
	if localURL == "" {
		t.Fatal("no local URL for the load balancer")
	}

	// Provisioning until its time: then active, and serving once its target passes
	// the checks that start then.
	proxy, _ := url.Parse(lc.gw.URL())
	plain := &http.Client{Timeout: 2 * time.Second}
	viaProxy := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	readyAt := createdAt.Add(local(active))
	var sawProvisioning, sawRefused, sawUnresolved bool
	var activeAt, servedAt, proxiedAt time.Time
	for deadline := readyAt.Add(20 * time.Second); time.Now().Before(deadline) && (activeAt.IsZero() || servedAt.IsZero() || proxiedAt.IsZero()); time.Sleep(50 * time.Millisecond) {
		if activeAt.IsZero() {
			switch state := lbStates(t, elbc)[lbARN]; state {
			case elbtypes.LoadBalancerStateEnumProvisioning:
				sawProvisioning = true
				th, err := elbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN})
				if err != nil || len(th.TargetHealthDescriptions) != 1 {
					t.Fatalf("DescribeTargetHealth: %v", err)
				}
				// Not checked until the load balancer is active: neither healthy nor
				// unhealthy (unused until the data plane sees the listener, then initial).
				h := th.TargetHealthDescriptions[0].TargetHealth
				if checked := h.State == elbtypes.TargetHealthStateEnumHealthy || h.State == elbtypes.TargetHealthStateEnumUnhealthy; checked &&
					lbStates(t, elbc)[lbARN] == elbtypes.LoadBalancerStateEnumProvisioning {
					t.Errorf("the target while its load balancer provisions: %s, want it not checked yet", h.State)
				}
			case elbtypes.LoadBalancerStateEnumActive:
				activeAt = time.Now()
			default:
				t.Fatalf("load balancer state %q", state)
			}
		}
		if servedAt.IsZero() {
			resp, err := plain.Get(localURL)
			switch {
			case err != nil && errors.Is(err, syscall.ECONNREFUSED):
				sawRefused = true
			case err != nil:
				t.Fatalf("GET %s: %v, want refused or an answer", localURL, err)
			default:
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					servedAt = time.Now()
				} else if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("GET %s: %d, want 503 or 200", localURL, resp.StatusCode)
				}
			}
		}
		if proxiedAt.IsZero() {
			resp, err := viaProxy.Get("http://" + dnsName + "/")
			if err != nil {
				t.Fatalf("GET %s through the proxy: %v", dnsName, err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusBadGateway:
				sawUnresolved = true
			case http.StatusOK:
				proxiedAt = time.Now()
			case http.StatusServiceUnavailable:
			default:
				t.Errorf("GET %s through the proxy: %d", dnsName, resp.StatusCode)
			}
		}
	}
	if !sawProvisioning || !sawRefused || !sawUnresolved {
		t.Errorf("before its time: provisioning %v, local port refused %v, DNS name unresolved %v; want all", sawProvisioning, sawRefused, sawUnresolved)
	}
	for what, at := range map[string]time.Time{"active": activeAt, "serving on its port": servedAt, "serving by its DNS name": proxiedAt} {
		if at.IsZero() {
			t.Errorf("not %s within 20 s of its modelled time", what)
		} else if at.Before(readyAt) {
			t.Errorf("%s %s after its creation, before its modelled %s", what, at.Sub(createdAt), local(active))
		}
	}

	// A deleted load balancer's group is in use until its interfaces are gone; the
	// other load balancer's state is its own.
	sg, err := ec2c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("lat-alb-sg"), Description: aws.String("x"), VpcId: subnets.Subnets[0].VpcId})
	if err != nil {
		t.Fatal(err)
	}
	lb2, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("lat-alb-2"), Subnets: twoSubnets, SecurityGroups: []string{aws.ToString(sg.GroupId)}})
	if err != nil {
		t.Fatal(err)
	}
	lb2ARN := aws.ToString(lb2.LoadBalancers[0].LoadBalancerArn)
	if s := lbStates(t, elbc); s[lbARN] != elbtypes.LoadBalancerStateEnumActive || s[lb2ARN] != elbtypes.LoadBalancerStateEnumProvisioning {
		t.Errorf("the first load balancer %q (want active), the new one %q (want provisioning)", s[lbARN], s[lb2ARN])
	}
	deleted := time.Now()
	if _, err := elbc.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lb2ARN)}); err != nil {
		t.Fatal(err)
	}
	_, err = ec2c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
	wantCode(t, "the deleted load balancer's group at once", err, "DependencyViolation", "has a dependent object")
	var goneAt time.Time
	for deadline := deleted.Add(local(enisGone) + 15*time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, err := ec2c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId})
		if err == nil {
			goneAt = time.Now()
			break
		}
		wantCode(t, "the deleted load balancer's group", err, "DependencyViolation", "")
	}
	if goneAt.IsZero() {
		t.Errorf("the group still in use 15 s after the interfaces' modelled %s", local(enisGone))
	} else if took := goneAt.Sub(deleted); took < local(enisGone) {
		t.Errorf("the group deleted %s after its load balancer, before the interfaces' modelled %s", took, local(enisGone))
	}

	// The record has each modelled change, in AWS time.
	want := map[LatencyOp]string{OpCreateTargetGroupAnswer: "lat-tg", OpCreateListenerAnswer: lbARN + ":80", OpLoadBalancerActive: lbARN, OpLoadBalancerENIsGone: lb2ARN}
	for _, e := range lc.gw.LatencyRecord() {
		if key, ok := want[e.Op]; ok && e.Key == key {
			if d := model.Ops[e.Op].Median; e.AWS != d || !e.Modelled {
				t.Errorf("record of %s: %s, want %s modelled", e.Op, e.AWS, d)
			}
			delete(want, e.Op)
		}
	}
	if len(want) > 0 {
		t.Errorf("not recorded: %v", want)
	}
	// The target's turn to healthy is measured, not drawn: after the load balancer
	// became active, since nothing checks it before.
	healthy := 0
	for _, e := range lc.gw.LatencyRecord() {
		if e.Op != OpTargetHealthy {
			continue
		}
		healthy++
		if e.Modelled || !strings.HasPrefix(e.Key, aws.ToString(tgARN)+" ") || e.Ready.Before(readyAt) || e.AWS != time.Duration(float64(e.Ready.Sub(e.Start))/scale) {
			t.Errorf("target healthy %+v: want measured, keyed by its group, after the load balancer's active at %s, in AWS time", e, readyAt)
		}
	}
	if healthy != 1 {
		t.Errorf("%d targets recorded healthy, want the one", healthy)
	}
}

// TestLatencyELBOff: without a model the load balancer side is moto's, at once.
func TestLatencyELBOff(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{TimeScale: 0.05})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	elbc := elb.NewFromConfig(lc.cfg)
	subnets, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v", err)
	}
	sg, err := ec2c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("off-alb-sg"), Description: aws.String("x"), VpcId: subnets.Subnets[0].VpcId})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec2c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}}}); err != nil {
		t.Fatal(err)
	}
	tg, err := elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("off-tg"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80), VpcId: subnets.Subnets[0].VpcId})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("off-alb"), SecurityGroups: []string{aws.ToString(sg.GroupId)},
		Subnets: []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}})
	if err != nil {
		t.Fatal(err)
	}
	lbARN, dnsName := aws.ToString(lb.LoadBalancers[0].LoadBalancerArn), aws.ToString(lb.LoadBalancers[0].DNSName)
	if state := lbStates(t, elbc)[lbARN]; state != elbtypes.LoadBalancerStateEnumActive {
		t.Errorf("right after its creation: %q, want moto's active", state)
	}
	if _, err := elbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(lbARN), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tg.TargetGroups[0].TargetGroupArn}}}); err != nil {
		t.Fatal(err)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	resp, err := plain.Get(lc.gw.LoadBalancerLocalURL(dnsName))
	if err != nil {
		t.Fatalf("the load balancer's port right after its listener: %v, want an answer", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("no healthy target: %d, want 503", resp.StatusCode)
	}
	proxy, _ := url.Parse(lc.gw.URL())
	viaProxy := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	if resp, err := viaProxy.Get("http://" + dnsName + "/"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("through the proxy: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	if _, err := elbc.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lbARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec2c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); err != nil {
		t.Errorf("the deleted load balancer's group: %v, want moto's delete at once", err)
	}
	if rec := lc.gw.LatencyRecord(); len(rec) != 0 {
		t.Errorf("recorded without a model: %+v", rec)
	}
}
