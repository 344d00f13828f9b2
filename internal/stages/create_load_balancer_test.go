package stages

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

const lbTestRun = "run1"

// lbFixture is a fake cloud with the ALB security group that CreateSecurityGroups
// would have made, and a document that names it.
func lbFixture(t *testing.T) (*fakeCloud, pipeline.Document) {
	t.Helper()
	c := newFakeCloud(t)
	c.mu.Lock()
	// Not tagged with the run: the undo tests count only what this stage makes.
	c.sgs["sg-0alb"] = &fakeSG{ID: "sg-0alb", Name: "amifleet-run1-sg-alb", VPCID: fakeDefaultVPC, Tags: map[string]string{}}
	c.mu.Unlock()
	doc := pipeline.Document{
		RunID:  lbTestRun,
		Config: pipeline.Config{Tags: map[string]string{"team": "web", pipeline.TagRole: "spoofed"}},
		Resources: pipeline.Resources{Network: &pipeline.Network{
			VPCID:              fakeDefaultVPC,
			SubnetIDs:          []string{fakeDefaultSubnets[0], fakeDefaultSubnets[1]},
			ALBSecurityGroupID: "sg-0alb",
		}},
	}
	return c, doc
}

// createdLB runs CreateLoadBalancer and fails the test on error.
func createdLB(t *testing.T, c *fakeCloud, doc pipeline.Document) pipeline.Document {
	t.Helper()
	out, err := c.stages().CreateLoadBalancer(context.Background(), doc)
	if err != nil {
		t.Fatalf("CreateLoadBalancer: %v", err)
	}
	return out
}

// withFleet launches n running instances and records them as the fleet.
func withFleet(t *testing.T, c *fakeCloud, doc *pipeline.Document, n int) []string {
	t.Helper()
	c.vcpuLimit = max(c.vcpuLimit, n) // the account's quota holds the fleet (t2.micro: 1 vCPU each)
	out, err := c.EC2.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(fakeBaseImage),
		InstanceType: ec2types.InstanceTypeT2Micro, MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n))})
	if err != nil {
		t.Fatal(err)
	}
	c.settle()
	ids := make([]string, len(out.Instances))
	for i, in := range out.Instances {
		ids[i] = aws.ToString(in.InstanceId)
	}
	doc.Resources.Fleet = &pipeline.Fleet{ReplicaInstanceIDs: ids, InstanceIDs: ids}
	return ids
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func wantRunTags(t *testing.T, what string, tags []elbtypes.Tag, role string) {
	t.Helper()
	got := fakeTagMap(tags)
	want := map[string]string{
		pipeline.TagRunID: lbTestRun,
		pipeline.TagRole:  role,
		pipeline.TagName:  pipeline.ResourceName(lbTestRun, role),
		"team":            "web",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s tags = %v, want %v", what, got, want)
	}
}

func TestCreateLoadBalancerRequests(t *testing.T) {
	c, doc := lbFixture(t)
	doc = createdLB(t, c, doc)

	wantCalls := []string{"DescribeTargetGroups", "DescribeLoadBalancers", "CreateTargetGroup", "ModifyTargetGroupAttributes",
		"CreateLoadBalancer", "DescribeListeners", "CreateListener"}
	if got := c.methods(); !slices.Equal(got, wantCalls) {
		t.Errorf("calls = %v, want %v", got, wantCalls)
	}

	tgs := fakeInputs[elb.CreateTargetGroupInput](c, "CreateTargetGroup")
	if len(tgs) != 1 {
		t.Fatalf("CreateTargetGroup called %d times", len(tgs))
	}
	tg := tgs[0]
	checks := []struct {
		field     string
		got, want any
	}{
		{"tg name", aws.ToString(tg.Name), "amifleet-run1-tg"},
		{"tg protocol", tg.Protocol, elbtypes.ProtocolEnumHttp},
		{"tg port", aws.ToInt32(tg.Port), int32(80)},
		{"tg vpc", aws.ToString(tg.VpcId), fakeDefaultVPC},
		{"tg target type", tg.TargetType, elbtypes.TargetTypeEnumInstance},
		{"health check path", aws.ToString(tg.HealthCheckPath), "/"},
		{"health check protocol", tg.HealthCheckProtocol, elbtypes.ProtocolEnumHttp},
		{"health check interval", aws.ToInt32(tg.HealthCheckIntervalSeconds), int32(5)},
		{"health check timeout", aws.ToInt32(tg.HealthCheckTimeoutSeconds), int32(4)},
		{"healthy threshold", aws.ToInt32(tg.HealthyThresholdCount), int32(2)},
		{"unhealthy threshold", aws.ToInt32(tg.UnhealthyThresholdCount), int32(2)},
		{"matcher", aws.ToString(tg.Matcher.HttpCode), "200"},
	}
	// The deregistration delay, set right after the create, on the new target group.
	mods := fakeInputs[elb.ModifyTargetGroupAttributesInput](c, "ModifyTargetGroupAttributes")
	if len(mods) != 1 {
		t.Fatalf("ModifyTargetGroupAttributes called %d times, want once", len(mods))
	}
	if got := aws.ToString(mods[0].TargetGroupArn); got != doc.Resources.LoadBalancer.TargetGroupARN {
		t.Errorf("ModifyTargetGroupAttributes on %s, want the run's target group %s", got, doc.Resources.LoadBalancer.TargetGroupARN)
	}
	if a := mods[0].Attributes; len(a) != 1 || aws.ToString(a[0].Key) != "deregistration_delay.timeout_seconds" || aws.ToString(a[0].Value) != "30" {
		t.Errorf("ModifyTargetGroupAttributes attributes %v, want only deregistration_delay.timeout_seconds=30", fakeTGAttributeMap(a))
	}
	c.mu.Lock()
	delay := c.tgs[doc.Resources.LoadBalancer.TargetGroupARN].Attributes["deregistration_delay.timeout_seconds"]
	c.mu.Unlock()
	if delay != "30" {
		t.Errorf("the target group's deregistration delay is %s s, want 30", delay)
	}

	lbs := fakeInputs[elb.CreateLoadBalancerInput](c, "CreateLoadBalancer")
	if len(lbs) != 1 {
		t.Fatalf("CreateLoadBalancer called %d times", len(lbs))
	}
	lb := lbs[0]
	checks = append(checks, []struct {
		field     string
		got, want any
	}{
		{"alb name", aws.ToString(lb.Name), "amifleet-run1-alb"},
		{"alb type", lb.Type, elbtypes.LoadBalancerTypeEnumApplication},
		{"alb scheme", lb.Scheme, elbtypes.LoadBalancerSchemeEnumInternetFacing},
		{"alb ip address type", lb.IpAddressType, elbtypes.IpAddressTypeIpv4},
		{"alb subnets", lb.Subnets, []string{fakeDefaultSubnets[0], fakeDefaultSubnets[1]}},
		{"alb security groups", lb.SecurityGroups, []string{"sg-0alb"}},
	}...)
	ls := fakeInputs[elb.CreateListenerInput](c, "CreateListener")
	if len(ls) != 1 {
		t.Fatalf("CreateListener called %d times", len(ls))
	}
	l := ls[0]
	res := doc.Resources.LoadBalancer
	if res == nil {
		t.Fatal("resources.loadBalancer not set")
	}
	checks = append(checks, []struct {
		field     string
		got, want any
	}{
		{"listener load balancer", aws.ToString(l.LoadBalancerArn), res.LoadBalancerARN},
		{"listener port", aws.ToInt32(l.Port), int32(80)},
		{"listener protocol", l.Protocol, elbtypes.ProtocolEnumHttp},
		{"listener actions", len(l.DefaultActions), 1},
	}...)
	if len(l.DefaultActions) == 1 {
		a := l.DefaultActions[0]
		checks = append(checks, []struct {
			field     string
			got, want any
		}{
			{"listener action type", a.Type, elbtypes.ActionTypeEnumForward},
			{"listener forwards to", aws.ToString(a.TargetGroupArn), res.TargetGroupARN},
		}...)
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.field, ch.got, ch.want)
		}
	}
	wantRunTags(t, "target group", tg.Tags, pipeline.RoleTargetGroup)
	wantRunTags(t, "load balancer", lb.Tags, pipeline.RoleLoadBalancer)
	wantRunTags(t, "listener", l.Tags, pipeline.RoleLoadBalancer)

	// The document names what the fake made.
	c.mu.Lock()
	defer c.mu.Unlock()
	flb := c.lbs[res.LoadBalancerARN]
	switch {
	case flb == nil:
		t.Errorf("resources.loadBalancer.loadBalancerArn %q is not a load balancer", res.LoadBalancerARN)
	case res.DNSName != flb.DNS || res.URL != "http://"+flb.DNS+"/":
		t.Errorf("dnsName, url = %q, %q; want %q and its http URL", res.DNSName, res.URL, flb.DNS)
	}
	if c.tgs[res.TargetGroupARN] == nil || c.listeners[res.ListenerARN] == nil {
		t.Errorf("resources.loadBalancer = %+v names no target group or listener of the fake", res)
	}
}

// A second run, or a run after one that failed halfway, creates only what is missing.
func TestCreateLoadBalancerIsIdempotent(t *testing.T) {
	tests := []struct {
		name      string
		failFirst string // the first run fails at this call
		wantNew   []string
		wantTags  int // DescribeTags calls of the second run: one per reused resource
	}{
		{name: "second run creates nothing", wantTags: 2},
		{name: "after a failed load balancer create", failFirst: "CreateLoadBalancer", wantNew: []string{"CreateLoadBalancer", "CreateListener"}, wantTags: 1},
		{name: "after a failed listener create", failFirst: "CreateListener", wantNew: []string{"CreateListener"}, wantTags: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, doc := lbFixture(t)
			var first pipeline.Document
			if tc.failFirst != "" {
				c.failOnce(tc.failFirst, fakeErr("Throttling", "slow down"))
				if _, err := c.stages().CreateLoadBalancer(context.Background(), doc); ErrorCode(err) != "Throttling" {
					t.Fatalf("first run: err = %v, want the injected Throttling", err)
				}
			} else {
				first = createdLB(t, c, doc)
			}
			mark := c.mark()
			second := createdLB(t, c, doc)
			if got := c.mutations(mark); !slices.Equal(got, tc.wantNew) {
				t.Errorf("second run's changes = %v, want %v", got, tc.wantNew)
			}
			if first.Resources.LoadBalancer != nil && !reflect.DeepEqual(first.Resources.LoadBalancer, second.Resources.LoadBalancer) {
				t.Errorf("second run answered %+v, first %+v", second.Resources.LoadBalancer, first.Resources.LoadBalancer)
			}
			// Reuse was decided by the run tag.
			if got := countOf(c.methodsSince(mark), "DescribeTags"); got != tc.wantTags {
				t.Errorf("second run's calls = %v: DescribeTags %d times, want once per reused resource (%d)", c.methodsSince(mark), got, tc.wantTags)
			}
			c.mu.Lock()
			n := len(c.tgs) + len(c.lbs) + len(c.listeners)
			c.mu.Unlock()
			if n != 3 {
				t.Errorf("the fake holds %d ELB resources, want 3", n)
			}
		})
	}
}

// A run that created the target group and failed before its deregistration delay was
// set sets it on the next run; one that set it changes nothing more.
func TestCreateLoadBalancerSetsTheDelayOnAReusedTargetGroup(t *testing.T) {
	c, doc := lbFixture(t)
	c.failOnce("ModifyTargetGroupAttributes", fakeErr("Throttling", "slow down"))
	if _, err := c.stages().CreateLoadBalancer(context.Background(), doc); ErrorCode(err) != "Throttling" {
		t.Fatalf("first run: err = %v, want the injected Throttling", err)
	}
	mark := c.mark()
	doc = createdLB(t, c, doc)
	want := []string{"ModifyTargetGroupAttributes", "CreateLoadBalancer", "CreateListener"}
	if got := c.mutations(mark); !slices.Equal(got, want) {
		t.Errorf("second run's changes = %v, want %v", got, want)
	}
	if n := countOf(c.methodsSince(mark), "DescribeTargetGroupAttributes"); n != 1 {
		t.Errorf("second run read the reused target group's attributes %d times, want once", n)
	}
	c.mu.Lock()
	delay := c.tgs[doc.Resources.LoadBalancer.TargetGroupARN].Attributes["deregistration_delay.timeout_seconds"]
	c.mu.Unlock()
	if delay != "30" {
		t.Errorf("deregistration delay %s s after the second run, want 30", delay)
	}
	mark = c.mark()
	createdLB(t, c, doc)
	if got := c.mutations(mark); len(got) != 0 {
		t.Errorf("third run's changes = %v, want none", got)
	}
}

// A same-named target group or load balancer that is not this run's is refused,
// never adopted nor changed.
func TestCreateLoadBalancerRefusesForeignResources(t *testing.T) {
	tests := []struct {
		name    string
		foreign func(t *testing.T, c *fakeCloud, tags []elbtypes.Tag)
	}{
		{"target group", func(t *testing.T, c *fakeCloud, tags []elbtypes.Tag) {
			if _, err := c.ELB.CreateTargetGroup(context.Background(), &elb.CreateTargetGroupInput{
				Name: aws.String("amifleet-run1-tg"), VpcId: aws.String(fakeDefaultVPC), Tags: tags}); err != nil {
				t.Fatal(err)
			}
		}},
		{"load balancer", func(t *testing.T, c *fakeCloud, tags []elbtypes.Tag) {
			if _, err := c.ELB.CreateLoadBalancer(context.Background(), &elb.CreateLoadBalancerInput{
				Name: aws.String("amifleet-run1-alb"), Subnets: fakeDefaultSubnets[:2], Tags: tags}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	owners := map[string][]elbtypes.Tag{
		"untagged":         nil,
		"another run's":    {{Key: aws.String(pipeline.TagRunID), Value: aws.String("run2")}},
		"run id elsewhere": {{Key: aws.String("owner"), Value: aws.String(lbTestRun)}},
	}
	for _, tc := range tests {
		for owner, tags := range owners {
			t.Run(owner+" "+tc.name, func(t *testing.T) {
				c, doc := lbFixture(t)
				tc.foreign(t, c, tags)
				mark := c.mark()
				out, err := c.stages().CreateLoadBalancer(context.Background(), doc)
				var se *pipeline.StageError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), "refusing to adopt") {
					t.Fatalf("err = %v, want a StageError refusing the foreign %s", err, tc.name)
				}
				if out.Resources.LoadBalancer != nil {
					t.Errorf("resources.loadBalancer = %+v, want unset", out.Resources.LoadBalancer)
				}
				if got := c.mutations(mark); len(got) != 0 {
					t.Errorf("the refused run made changes: %v", got)
				}
			})
		}
	}
}

func TestCreateLoadBalancerNeedsTheNetwork(t *testing.T) {
	tests := []struct {
		name string
		edit func(*pipeline.Network) *pipeline.Network
		want string
	}{
		{"no network", func(*pipeline.Network) *pipeline.Network { return nil }, "resources.network is not set: CreateSecurityGroups has not run"},
		{"one subnet", func(n *pipeline.Network) *pipeline.Network { n.SubnetIDs = n.SubnetIDs[:1]; return n }, "at least two availability zones"},
		{"no vpc", func(n *pipeline.Network) *pipeline.Network { n.VPCID = ""; return n }, "vpcId"},
		{"no security group", func(n *pipeline.Network) *pipeline.Network { n.ALBSecurityGroupID = ""; return n }, "albSecurityGroupId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, doc := lbFixture(t)
			doc.Resources.Network = tc.edit(doc.Resources.Network)
			_, err := c.stages().CreateLoadBalancer(context.Background(), doc)
			var se *pipeline.StageError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a StageError saying %q", err, tc.want)
			}
			if calls := c.methods(); len(calls) != 0 {
				t.Errorf("calls = %v, want none", calls)
			}
		})
	}
}

func TestELBTagsKeepTheRunsOwn(t *testing.T) {
	got := fakeTagMap(elbTags("r", pipeline.RoleTargetGroup, map[string]string{
		pipeline.TagRunID: "other", pipeline.TagName: "mine", "cost-center": "42"}))
	want := map[string]string{pipeline.TagRunID: "r", pipeline.TagRole: "tg", pipeline.TagName: "amifleet-r-tg", "cost-center": "42"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("elbTags = %v, want %v", got, want)
	}
}

func TestUndoLoadBalancer(t *testing.T) {
	ctx := context.Background()

	t.Run("deletes listener, load balancer, then target group", func(t *testing.T) {
		c, doc := lbFixture(t)
		createdLB(t, c, doc)
		mark := c.mark()
		remaining, err := c.stages().undoLoadBalancer(ctx, lbTestRun)
		if err != nil || len(remaining) != 0 {
			t.Fatalf("undo = %v, %v; want nothing remaining", remaining, err)
		}
		want := []string{"DeleteListener", "DeleteLoadBalancer", "DeleteTargetGroup"}
		if got := c.mutations(mark); !slices.Equal(got, want) {
			t.Errorf("deletes = %v, want %v", got, want)
		}
		if left := c.tagged(lbTestRun); len(left) != 0 {
			t.Errorf("left with the run tag: %v", left)
		}
		// Again: nothing to do, no error.
		mark = c.mark()
		remaining, err = c.stages().undoLoadBalancer(ctx, lbTestRun)
		if err != nil || len(remaining) != 0 || len(c.mutations(mark)) != 0 {
			t.Errorf("second undo = %v, %v, changes %v; want nothing", remaining, err, c.mutations(mark))
		}
	})

	t.Run("target group still in use is remaining", func(t *testing.T) {
		c, doc := lbFixture(t)
		createdLB(t, c, doc)
		c.failOnce("DeleteTargetGroup", fakeErr("ResourceInUse", "in use"))
		remaining, err := c.stages().undoLoadBalancer(ctx, lbTestRun)
		if err != nil || len(remaining) != 1 || !strings.Contains(remaining[0], "target group amifleet-run1-tg") {
			t.Fatalf("undo = %q, %v; want the target group remaining", remaining, err)
		}
		remaining, err = c.stages().undoLoadBalancer(ctx, lbTestRun)
		if err != nil || len(remaining) != 0 {
			t.Fatalf("next undo = %q, %v; want nothing remaining", remaining, err)
		}
		if left := c.tagged(lbTestRun); len(left) != 0 {
			t.Errorf("left with the run tag: %v", left)
		}
	})

	t.Run("only a target group left", func(t *testing.T) {
		c, doc := lbFixture(t)
		c.failOnce("CreateLoadBalancer", fakeErr("Throttling", "slow down"))
		if _, err := c.stages().CreateLoadBalancer(ctx, doc); err == nil {
			t.Fatal("want the injected error")
		}
		remaining, err := c.stages().undoLoadBalancer(ctx, lbTestRun)
		if err != nil || len(remaining) != 0 || len(c.tagged(lbTestRun)) != 0 {
			t.Errorf("undo = %v, %v, left %v", remaining, err, c.tagged(lbTestRun))
		}
	})

	t.Run("nothing to delete", func(t *testing.T) {
		c, _ := lbFixture(t)
		remaining, err := c.stages().undoLoadBalancer(ctx, lbTestRun)
		if err != nil || len(remaining) != 0 || len(c.mutations(0)) != 0 {
			t.Errorf("undo = %v, %v, changes %v", remaining, err, c.mutations(0))
		}
	})

	t.Run("another run's same-named resources are left alone", func(t *testing.T) {
		c, _ := lbFixture(t)
		other := []elbtypes.Tag{{Key: aws.String(pipeline.TagRunID), Value: aws.String("run2")}}
		tg, err := c.ELB.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("amifleet-run1-tg"),
			VpcId: aws.String(fakeDefaultVPC), Tags: other})
		if err != nil {
			t.Fatal(err)
		}
		lb, err := c.ELB.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("amifleet-run1-alb"),
			Subnets: fakeDefaultSubnets[:2], Tags: other})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ELB.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn,
			Port: aws.Int32(80), DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward,
				TargetGroupArn: tg.TargetGroups[0].TargetGroupArn}}}); err != nil {
			t.Fatal(err)
		}
		mark := c.mark()
		remaining, err := c.stages().undoLoadBalancer(ctx, lbTestRun)
		if err != nil || len(remaining) != 0 {
			t.Errorf("undo = %v, %v; want nothing (none of it is this run's)", remaining, err)
		}
		if got := c.mutations(mark); len(got) != 0 {
			t.Errorf("undo changed another run's resources: %v", got)
		}
	})

	t.Run("an error other than not found is returned", func(t *testing.T) {
		c, doc := lbFixture(t)
		createdLB(t, c, doc)
		c.failOnce("DeleteLoadBalancer", fakeErr("AccessDenied", "no"))
		if _, err := c.stages().undoLoadBalancer(ctx, lbTestRun); ErrorCode(err) != "AccessDenied" {
			t.Errorf("err = %v, want AccessDenied", err)
		}
	})

	t.Run("already gone between describe and delete", func(t *testing.T) {
		c, doc := lbFixture(t)
		createdLB(t, c, doc)
		c.failOnce("DeleteListener", fakeErr("ListenerNotFound", "gone"))
		c.failOnce("DeleteLoadBalancer", fakeErr("LoadBalancerNotFound", "gone"))
		c.failOnce("DeleteTargetGroup", fakeErr("TargetGroupNotFound", "gone"))
		if remaining, err := c.stages().undoLoadBalancer(ctx, lbTestRun); err != nil || len(remaining) != 0 {
			t.Errorf("undo = %v, %v; want not-found answers tolerated", remaining, err)
		}
	})
}
