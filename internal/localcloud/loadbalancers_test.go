package localcloud

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/amifleet/amifleet/internal/userdata"
)

// servingFleet provisions a base instance with amifleet's user data, images it, and
// launches n instances from the image: the data plane's fleet, through the gateway.
func servingFleet(t *testing.T, lc *localCloud, n int32, securityGroups ...string) []string {
	t.Helper()
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	image, script := baseImageAndScript(t, lc, "<h1>Hola desde el EC2: {hostname}</h1>")
	base, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: ec2types.InstanceTypeT2Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(script)))})
	if err != nil {
		t.Fatal(err)
	}
	baseID := aws.ToString(base.Instances[0].InstanceId)
	eventually(t, "the base instance's page", func() bool {
		_, err := os.Stat(filepath.Join(lc.gw.InstanceDisk(baseID), "var/www/html/index.html"))
		return err == nil
	})
	img, err := ec2c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(baseID), Name: aws.String("fleet-" + baseID)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: img.ImageId, InstanceType: ec2types.InstanceTypeT2Micro, MinCount: aws.Int32(n), MaxCount: aws.Int32(n),
		SecurityGroupIds: securityGroups})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range out.Instances {
		id := aws.ToString(in.InstanceId)
		eventually(t, id+" serving", func() bool { return lc.gw.InstanceAddress(id) != "" })
		ids = append(ids, id)
	}
	return ids
}

// baseImageAndScript are the latest Amazon Linux 2023 AMI (moto's public parameter)
// and amifleet's user data for pageTemplate: what a base instance is launched with.
func baseImageAndScript(t *testing.T, lc *localCloud, pageTemplate string) (string, string) {
	t.Helper()
	param, err := ssm.NewFromConfig(lc.cfg).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")})
	if err != nil {
		t.Fatal(err)
	}
	script, err := userdata.Render(pageTemplate)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(param.Parameter.Value), script
}

// eventually waits, bounded, for ok.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("not within 15 s: %s", what)
}

func TestLoadBalancerDataPlane(t *testing.T) {
	const scale = 0.05 // a 10 s health check interval runs every 0.5 s
	told := make(chan [2]string, 1)
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: 100 * time.Millisecond, TimeScale: scale,
		OnLoadBalancer: func(dnsName, localURL string) { told <- [2]string{dnsName, localURL} }})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	elbc := elb.NewFromConfig(lc.cfg)
	ids := servingFleet(t, lc, 3)

	subnets, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v", err)
	}
	tg, err := elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("dp-tg"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		VpcId: subnets.Subnets[0].VpcId, HealthCheckPath: aws.String("/"), HealthCheckIntervalSeconds: aws.Int32(10), HealthCheckTimeoutSeconds: aws.Int32(5),
		HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2), Matcher: &elbtypes.Matcher{HttpCode: aws.String("200")}})
	if err != nil {
		t.Fatal(err)
	}
	tgARN := tg.TargetGroups[0].TargetGroupArn
	lb, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("dp-alb"),
		Subnets: []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}})
	if err != nil {
		t.Fatal(err)
	}
	dnsName := aws.ToString(lb.LoadBalancers[0].DNSName)
	if _, err := elbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgARN}}}); err != nil {
		t.Fatal(err)
	}
	local := lc.gw.LoadBalancerLocalURL(dnsName)
	if local == "" {
		t.Fatal("no local URL for the load balancer")
	}
	select {
	case got := <-told:
		if got != [2]string{dnsName, local} {
			t.Errorf("OnLoadBalancer told %v, want %s at %s", got, dnsName, local)
		}
	default:
		t.Error("OnLoadBalancer was not told of the new load balancer")
	}
	get := func(client *http.Client, u string) (int, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if code, _ := get(plain, local); code != http.StatusServiceUnavailable {
		t.Errorf("no targets: %d, want 503", code)
	}

	// One serves no page: httpd answers 403 at "/", which the 200 matcher refuses.
	if err := os.Remove(filepath.Join(lc.gw.InstanceDisk(ids[2]), "var/www/html/index.html")); err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	var targets []elbtypes.TargetDescription
	for _, id := range ids {
		targets = append(targets, elbtypes.TargetDescription{Id: aws.String(id)})
	}
	if _, err := elbc.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgARN, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	health := func() map[string]elbtypes.TargetHealth {
		out, err := elbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]elbtypes.TargetHealth{}
		for _, d := range out.TargetHealthDescriptions {
			m[aws.ToString(d.Target.Id)] = *d.TargetHealth
		}
		return m
	}
	if h := health()[ids[0]]; h.State != elbtypes.TargetHealthStateEnumInitial {
		t.Errorf("right after registration: %+v, want initial", h)
	}
	eventually(t, "two healthy targets", func() bool {
		h := health()
		return h[ids[0]].State == elbtypes.TargetHealthStateEnumHealthy && h[ids[1]].State == elbtypes.TargetHealthStateEnumHealthy
	})
	// Healthy after healthy-threshold × interval, on the time scale: never at once.
	if took, least := time.Since(registered), time.Duration(2*10*scale*float64(time.Second)); took < least {
		t.Errorf("healthy %s after registration, before 2 × the scaled interval (%s)", took, least)
	}
	eventually(t, "the target without a page unhealthy", func() bool { return health()[ids[2]].State == elbtypes.TargetHealthStateEnumUnhealthy })
	if h := health()[ids[2]]; h.Reason != elbtypes.TargetHealthReasonEnumResponseCodeMismatch || !strings.Contains(aws.ToString(h.Description), "[403]") {
		t.Errorf("target without a page: %+v, want Target.ResponseCodeMismatch naming 403", h)
	}

	// Round robin over the healthy targets, each page its own instance's.
	hosts := map[string]bool{}
	for range 6 {
		code, body := get(plain, local)
		if code != 200 || !strings.HasPrefix(body, "<h1>Hola desde el EC2: ") {
			t.Fatalf("GET through the load balancer: %d %q", code, body)
		}
		hosts[body] = true
	}
	if len(hosts) != 2 {
		t.Errorf("6 GETs saw %d distinct pages, want the 2 healthy instances': %v", len(hosts), hosts)
	}

	// By its DNS name, through the gateway as an HTTP proxy, as Verify reaches it.
	proxy, _ := url.Parse(lc.gw.URL())
	viaProxy := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	if code, body := get(viaProxy, "http://"+dnsName+"/"); code != 200 || !hosts[body] {
		t.Errorf("through the proxy: %d %q", code, body)
	}

	// A target that stops behind the load balancer's back turns unhealthy, and gets no
	// more requests.
	if _, err := ec2c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ids[0]+" unhealthy after it stopped", func() bool { return health()[ids[0]].State == elbtypes.TargetHealthStateEnumUnhealthy })
	if h := health()[ids[0]]; h.Reason != elbtypes.TargetHealthReasonEnumTimeout {
		t.Errorf("stopped target: %+v, want Target.Timeout", h)
	}
	_, only := get(plain, local)
	for range 4 {
		if code, body := get(plain, local); code != 200 || body != only {
			t.Errorf("after one target stopped: %d %q, want only the one healthy instance's page %q", code, body, only)
		}
	}
	// Deregistered targets drain for the group's deregistration delay (20 s, 1 s
	// scaled): listed as draining, sent no new request, then gone.
	if _, err := elbc.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: tgARN,
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("20")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := elbc.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: tgARN, Targets: targets}); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(plain, local); code != http.StatusServiceUnavailable {
		t.Errorf("every target deregistered: %d, want 503", code)
	}
	for _, id := range ids {
		if h := health()[id]; h.State != elbtypes.TargetHealthStateEnumDraining || h.Reason != elbtypes.TargetHealthReasonEnumDeregistrationInProgress {
			t.Errorf("%s right after deregistration: %+v, want draining (Target.DeregistrationInProgress)", id, h)
		}
	}
	eventually(t, "the drained targets gone", func() bool { return len(health()) == 0 })
}

// TestLoadBalancerSecurityGroups: the load balancer admits only the sources its
// security groups allow on the listener's port (a dropped request gets no answer), and a
// target only passes its checks when its own groups admit the load balancer. A target
// group no listener uses does not check its targets: unused.
func TestLoadBalancerSecurityGroups(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: 100 * time.Millisecond, TimeScale: 0.05})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	elbc := elb.NewFromConfig(lc.cfg)
	subnets, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v", err)
	}
	vpc := subnets.Subnets[0].VpcId
	sg, err := ec2c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("dp-alb-sg"), Description: aws.String("x"), VpcId: vpc})
	if err != nil {
		t.Fatal(err)
	}
	instanceSG, err := ec2c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("dp-instance-sg"), Description: aws.String("x"), VpcId: vpc})
	if err != nil {
		t.Fatal(err)
	}
	ids := servingFleet(t, lc, 1, aws.ToString(instanceSG.GroupId))
	// The local user's /24 only (DefaultUserAddress is in it; a Lambda's address is not).
	if _, err := ec2c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("203.0.113.0/24")}}}}}); err != nil {
		t.Fatal(err)
	}
	tg, err := elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("sg-tg"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80), VpcId: vpc,
		HealthCheckIntervalSeconds: aws.Int32(10), HealthyThresholdCount: aws.Int32(2), UnhealthyThresholdCount: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	tgARN := tg.TargetGroups[0].TargetGroupArn
	if _, err := elbc.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String(ids[0])}}}); err != nil {
		t.Fatal(err)
	}
	health := func() elbtypes.TargetHealth {
		out, err := elbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN})
		if err != nil || len(out.TargetHealthDescriptions) != 1 {
			t.Fatalf("DescribeTargetHealth: %v", err)
		}
		return *out.TargetHealthDescriptions[0].TargetHealth
	}
	eventually(t, "the target unused (no listener)", func() bool {
		h := health()
		return h.State == elbtypes.TargetHealthStateEnumUnused && h.Reason == elbtypes.TargetHealthReasonEnumNotInUse
	})

	lb, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("sg-alb"), SecurityGroups: []string{aws.ToString(sg.GroupId)},
		Subnets: []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := elbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn, Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tgARN}}}); err != nil {
		t.Fatal(err)
	}
	// The instance's own group does not admit the load balancer yet.
	eventually(t, "the target unhealthy: its groups drop the checks", func() bool {
		h := health()
		return h.State == elbtypes.TargetHealthStateEnumUnhealthy && h.Reason == elbtypes.TargetHealthReasonEnumTimeout
	})
	if _, err := ec2c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: instanceSG.GroupId, IpPermissions: []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80), UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: sg.GroupId}}}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the target healthy once its group admits the load balancer's", func() bool { return health().State == elbtypes.TargetHealthStateEnumHealthy })

	dnsName := aws.ToString(lb.LoadBalancers[0].DNSName)
	local := lc.gw.LoadBalancerLocalURL(dnsName)
	status := func(client *http.Client, u string) (int, error) {
		resp, err := client.Get(u)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	user := &http.Client{Timeout: 3 * time.Second}
	if code, err := status(user, local); err != nil || code != 200 {
		t.Errorf("the user's GET: %d %v, want 200", code, err)
	}
	proxy, _ := url.Parse(lc.gw.URL())
	asUser := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	if code, err := status(asUser, "http://"+dnsName+"/"); err != nil || code != 200 {
		t.Errorf("the user through the proxy: %d %v, want 200", code, err)
	}
	lambdaProxy, _ := url.Parse(LambdaProxyURL(lc.gw.URL()))
	asLambda := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{Proxy: http.ProxyURL(lambdaProxy)}}
	start := time.Now()
	code, err := status(asLambda, "http://"+dnsName+"/")
	if err == nil {
		t.Errorf("a Lambda's GET answered %d; want it dropped by the security group", code)
	} else if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("a dropped GET failed after %s (%v); want it to hang until the client's timeout", took, err)
	}
}
