package stages

// The fake cloud's ELBv2: target groups, load balancers, listeners, tags, targets
// (see fake_test.go).

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// --- ELBv2 -------------------------------------------------------------------------------

func fakeELBTags(m map[string]string) []elbtypes.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]elbtypes.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, elbtypes.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

func fakeTagMap(tags []elbtypes.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func (c *fakeCloud) elbARN(kind, name string) string {
	c.seq++
	return fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:%s/%s/%016x", fakeRegion, fakeAccount, kind, name, c.seq)
}

func (f *fakeELB) CreateTargetGroup(_ context.Context, in *elb.CreateTargetGroupInput, _ ...func(*elb.Options)) (*elb.CreateTargetGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateTargetGroup", in); err != nil {
		return nil, err
	}
	name := aws.ToString(in.Name)
	if name == "" || len(name) > 32 {
		return nil, fakeErr("ValidationError", "target group name %q must be 1 to 32 characters", name)
	}
	for _, tg := range c.tgs {
		if tg.Name == name {
			return nil, fakeErr("DuplicateTargetGroupName", "A target group with the same name '%s' exists", name)
		}
	}
	if c.vpcs[aws.ToString(in.VpcId)] == nil {
		return nil, fakeErr("ValidationError", "The VPC ID '%s' is not found", aws.ToString(in.VpcId))
	}
	tg := &fakeTG{ARN: c.elbARN("targetgroup", name), Name: name, Input: in, Tags: fakeTagMap(in.Tags),
		Attributes: fakeTargetGroupAttributes()}
	c.tgs[tg.ARN] = tg
	c.order = append(c.order, tg.ARN)
	return &elb.CreateTargetGroupOutput{TargetGroups: []elbtypes.TargetGroup{c.describeTG(tg)}}, nil
}

// fakeTargetGroupAttributes are the attributes AWS gives an instance target group of
// an Application Load Balancer that the fake knows, at their defaults.
func fakeTargetGroupAttributes() map[string]string {
	return map[string]string{
		"deregistration_delay.timeout_seconds": "300",
		"stickiness.enabled":                   "false",
		"load_balancing.algorithm.type":        "round_robin",
		"slow_start.duration_seconds":          "0",
	}
}

func (f *fakeELB) DescribeTargetGroupAttributes(_ context.Context, in *elb.DescribeTargetGroupAttributesInput, _ ...func(*elb.Options)) (*elb.DescribeTargetGroupAttributesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeTargetGroupAttributes", in); err != nil {
		return nil, err
	}
	tg := c.tgs[aws.ToString(in.TargetGroupArn)]
	if tg == nil {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	return &elb.DescribeTargetGroupAttributesOutput{Attributes: fakeTGAttributes(tg.Attributes)}, nil
}

// ModifyTargetGroupAttributes changes attributes the fake knows, within AWS's bounds
// for the deregistration delay (0 to 3600 s); it refuses any other key, as AWS does
// (ValidationError).
func (f *fakeELB) ModifyTargetGroupAttributes(_ context.Context, in *elb.ModifyTargetGroupAttributesInput, _ ...func(*elb.Options)) (*elb.ModifyTargetGroupAttributesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("ModifyTargetGroupAttributes", in); err != nil {
		return nil, err
	}
	tg := c.tgs[aws.ToString(in.TargetGroupArn)]
	if tg == nil {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	if len(in.Attributes) == 0 {
		return nil, fakeErr("ValidationError", "Attributes must hold at least one attribute")
	}
	for _, a := range in.Attributes {
		k, v := aws.ToString(a.Key), aws.ToString(a.Value)
		if _, known := tg.Attributes[k]; !known {
			return nil, fakeErr("ValidationError", "Target group attribute key '%s' is not recognized", k)
		}
		if k == "deregistration_delay.timeout_seconds" {
			if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 3600 {
				return nil, fakeErr("ValidationError", "'%s' must be an integer from 0 to 3600, not '%s'", k, v)
			}
		}
	}
	for _, a := range in.Attributes {
		tg.Attributes[aws.ToString(a.Key)] = aws.ToString(a.Value)
	}
	return &elb.ModifyTargetGroupAttributesOutput{Attributes: fakeTGAttributes(tg.Attributes)}, nil
}

func fakeTGAttributes(m map[string]string) []elbtypes.TargetGroupAttribute {
	out := make([]elbtypes.TargetGroupAttribute, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, elbtypes.TargetGroupAttribute{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

func fakeTGAttributeMap(attrs []elbtypes.TargetGroupAttribute) map[string]string {
	m := map[string]string{}
	for _, a := range attrs {
		m[aws.ToString(a.Key)] = aws.ToString(a.Value)
	}
	return m
}

func (c *fakeCloud) describeTG(tg *fakeTG) elbtypes.TargetGroup {
	in := tg.Input
	out := elbtypes.TargetGroup{TargetGroupArn: aws.String(tg.ARN), TargetGroupName: aws.String(tg.Name),
		Protocol: in.Protocol, Port: in.Port, VpcId: in.VpcId, TargetType: in.TargetType,
		HealthCheckEnabled: in.HealthCheckEnabled, HealthCheckIntervalSeconds: in.HealthCheckIntervalSeconds,
		HealthCheckPath: in.HealthCheckPath, HealthCheckPort: in.HealthCheckPort, HealthCheckProtocol: in.HealthCheckProtocol,
		HealthCheckTimeoutSeconds: in.HealthCheckTimeoutSeconds, HealthyThresholdCount: in.HealthyThresholdCount,
		UnhealthyThresholdCount: in.UnhealthyThresholdCount, Matcher: in.Matcher}
	if out.TargetType == "" {
		out.TargetType = elbtypes.TargetTypeEnumInstance
	}
	for _, id := range c.order {
		if l, ok := c.listeners[id]; ok && l.forwardsTo(tg.ARN) && !slices.Contains(out.LoadBalancerArns, l.LBARN) {
			out.LoadBalancerArns = append(out.LoadBalancerArns, l.LBARN)
		}
	}
	return out
}

func (l *fakeListener) forwardsTo(tgARN string) bool {
	for _, a := range l.Actions {
		if aws.ToString(a.TargetGroupArn) == tgARN {
			return true
		}
		if a.ForwardConfig != nil {
			for _, t := range a.ForwardConfig.TargetGroups {
				if aws.ToString(t.TargetGroupArn) == tgARN {
					return true
				}
			}
		}
	}
	return false
}

func (f *fakeELB) DescribeTargetGroups(_ context.Context, in *elb.DescribeTargetGroupsInput, _ ...func(*elb.Options)) (*elb.DescribeTargetGroupsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeTargetGroups", in); err != nil {
		return nil, err
	}
	for _, arn := range in.TargetGroupArns {
		if c.tgs[arn] == nil {
			return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
		}
	}
	var out elb.DescribeTargetGroupsOutput
	found := map[string]bool{}
	for _, id := range c.order {
		tg, ok := c.tgs[id]
		if !ok || (len(in.TargetGroupArns) > 0 && !slices.Contains(in.TargetGroupArns, id)) ||
			(len(in.Names) > 0 && !slices.Contains(in.Names, tg.Name)) {
			continue
		}
		d := c.describeTG(tg)
		if in.LoadBalancerArn != nil && !slices.Contains(d.LoadBalancerArns, *in.LoadBalancerArn) {
			continue
		}
		found[tg.Name] = true
		out.TargetGroups = append(out.TargetGroups, d)
	}
	for _, n := range in.Names {
		if !found[n] {
			return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
		}
	}
	return &out, nil
}

func (f *fakeELB) DeleteTargetGroup(_ context.Context, in *elb.DeleteTargetGroupInput, _ ...func(*elb.Options)) (*elb.DeleteTargetGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteTargetGroup", in); err != nil {
		return nil, err
	}
	arn := aws.ToString(in.TargetGroupArn)
	for _, l := range c.listeners {
		if l.forwardsTo(arn) {
			return nil, fakeErr("ResourceInUse", "Target group '%s' is currently in use by a listener or a rule", arn)
		}
	}
	// AWS answers success for a target group that is already gone.
	delete(c.tgs, arn)
	return &elb.DeleteTargetGroupOutput{}, nil
}

func (f *fakeELB) CreateLoadBalancer(_ context.Context, in *elb.CreateLoadBalancerInput, _ ...func(*elb.Options)) (*elb.CreateLoadBalancerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateLoadBalancer", in); err != nil {
		return nil, err
	}
	name := aws.ToString(in.Name)
	if name == "" || len(name) > 32 {
		return nil, fakeErr("ValidationError", "load balancer name %q must be 1 to 32 characters", name)
	}
	for _, lb := range c.lbs {
		if lb.Name == name {
			return nil, fakeErr("DuplicateLoadBalancerName", "A load balancer with the same name '%s' exists", name)
		}
	}
	subnets := slices.Clone(in.Subnets)
	for _, m := range in.SubnetMappings {
		subnets = append(subnets, aws.ToString(m.SubnetId))
	}
	zones := map[string]bool{}
	vpc := ""
	for _, s := range subnets {
		sn := c.subnets[s]
		if sn == nil {
			return nil, fakeErr("SubnetNotFound", "The subnet ID '%s' is not valid", s)
		}
		if zones[sn.AZ] {
			return nil, fakeErr("InvalidConfigurationRequest", "A load balancer cannot be attached to multiple subnets in the same Availability Zone")
		}
		zones[sn.AZ], vpc = true, sn.VPCID
	}
	lbType := in.Type
	if lbType == "" {
		lbType = elbtypes.LoadBalancerTypeEnumApplication
	}
	if lbType == elbtypes.LoadBalancerTypeEnumApplication && len(zones) < 2 {
		return nil, fakeErr("ValidationError", "At least two subnets in two different Availability Zones must be specified")
	}
	for _, g := range in.SecurityGroups {
		if c.sgs[g] == nil {
			return nil, fakeErr("InvalidConfigurationRequest", "One or more security groups are invalid")
		}
	}
	scheme := in.Scheme
	if scheme == "" {
		scheme = elbtypes.LoadBalancerSchemeEnumInternetFacing
	}
	lb := &fakeLB{ARN: c.elbARN("loadbalancer/app", name), Name: name, State: "provisioning", Scheme: string(scheme),
		Type: string(lbType), VPCID: vpc, Subnets: subnets, SecurityGroups: slices.Clone(in.SecurityGroups),
		Tags: fakeTagMap(in.Tags)}
	lb.DNS = fmt.Sprintf("%s-%d.%s.elb.amazonaws.com", name, c.seq, fakeRegion)
	c.lbs[lb.ARN] = lb
	c.order = append(c.order, lb.ARN)
	return &elb.CreateLoadBalancerOutput{LoadBalancers: []elbtypes.LoadBalancer{c.describeLB(lb)}}, nil
}

func (c *fakeCloud) describeLB(lb *fakeLB) elbtypes.LoadBalancer {
	out := elbtypes.LoadBalancer{LoadBalancerArn: aws.String(lb.ARN), LoadBalancerName: aws.String(lb.Name),
		DNSName: aws.String(lb.DNS), Scheme: elbtypes.LoadBalancerSchemeEnum(lb.Scheme),
		Type: elbtypes.LoadBalancerTypeEnum(lb.Type), VpcId: aws.String(lb.VPCID),
		SecurityGroups: slices.Clone(lb.SecurityGroups),
		State:          &elbtypes.LoadBalancerState{Code: elbtypes.LoadBalancerStateEnum(lb.State)}}
	for _, s := range lb.Subnets {
		out.AvailabilityZones = append(out.AvailabilityZones, elbtypes.AvailabilityZone{SubnetId: aws.String(s),
			ZoneName: aws.String(c.subnets[s].AZ)})
	}
	return out
}

func (f *fakeELB) DescribeLoadBalancers(_ context.Context, in *elb.DescribeLoadBalancersInput, _ ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeLoadBalancers", in); err != nil {
		return nil, err
	}
	c.maybeSettle()
	var out elb.DescribeLoadBalancersOutput
	found := map[string]bool{}
	for _, id := range c.order {
		lb, ok := c.lbs[id]
		if !ok || (len(in.LoadBalancerArns) > 0 && !slices.Contains(in.LoadBalancerArns, id)) ||
			(len(in.Names) > 0 && !slices.Contains(in.Names, lb.Name)) {
			continue
		}
		found[lb.ARN], found[lb.Name] = true, true
		out.LoadBalancers = append(out.LoadBalancers, c.describeLB(lb))
	}
	for _, k := range append(slices.Clone(in.LoadBalancerArns), in.Names...) {
		if !found[k] {
			return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
		}
	}
	return &out, nil
}

func (f *fakeELB) DeleteLoadBalancer(_ context.Context, in *elb.DeleteLoadBalancerInput, _ ...func(*elb.Options)) (*elb.DeleteLoadBalancerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteLoadBalancer", in); err != nil {
		return nil, err
	}
	arn := aws.ToString(in.LoadBalancerArn)
	// AWS deletes the listeners with the load balancer, and answers success for
	// one that is already gone.
	for id, l := range c.listeners {
		if l.LBARN == arn {
			delete(c.listeners, id)
		}
	}
	delete(c.lbs, arn)
	return &elb.DeleteLoadBalancerOutput{}, nil
}

func (f *fakeELB) CreateListener(_ context.Context, in *elb.CreateListenerInput, _ ...func(*elb.Options)) (*elb.CreateListenerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateListener", in); err != nil {
		return nil, err
	}
	lbARN := aws.ToString(in.LoadBalancerArn)
	if c.lbs[lbARN] == nil {
		return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
	}
	for _, l := range c.listeners {
		if l.LBARN == lbARN && l.Port == aws.ToInt32(in.Port) {
			return nil, fakeErr("DuplicateListener", "A listener already exists on this port for this load balancer")
		}
	}
	l := &fakeListener{LBARN: lbARN, Port: aws.ToInt32(in.Port), Protocol: in.Protocol,
		Actions: slices.Clone(in.DefaultActions), Tags: fakeTagMap(in.Tags)}
	if !l.forwardsToKnown(c) {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	l.ARN = c.elbARN("listener/app", c.lbs[lbARN].Name)
	c.listeners[l.ARN] = l
	c.order = append(c.order, l.ARN)
	return &elb.CreateListenerOutput{Listeners: []elbtypes.Listener{l.describe()}}, nil
}

func (l *fakeListener) forwardsToKnown(c *fakeCloud) bool {
	for _, a := range l.Actions {
		if a.TargetGroupArn != nil && c.tgs[*a.TargetGroupArn] == nil {
			return false
		}
		if a.ForwardConfig != nil {
			for _, t := range a.ForwardConfig.TargetGroups {
				if c.tgs[aws.ToString(t.TargetGroupArn)] == nil {
					return false
				}
			}
		}
	}
	return true
}

func (l *fakeListener) describe() elbtypes.Listener {
	return elbtypes.Listener{ListenerArn: aws.String(l.ARN), LoadBalancerArn: aws.String(l.LBARN),
		Port: aws.Int32(l.Port), Protocol: l.Protocol, DefaultActions: slices.Clone(l.Actions)}
}

func (f *fakeELB) DescribeListeners(_ context.Context, in *elb.DescribeListenersInput, _ ...func(*elb.Options)) (*elb.DescribeListenersOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeListeners", in); err != nil {
		return nil, err
	}
	if in.LoadBalancerArn != nil && c.lbs[*in.LoadBalancerArn] == nil {
		return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
	}
	for _, arn := range in.ListenerArns {
		if c.listeners[arn] == nil {
			return nil, fakeErr("ListenerNotFound", "One or more listeners not found")
		}
	}
	var out elb.DescribeListenersOutput
	for _, id := range c.order {
		l, ok := c.listeners[id]
		if !ok || (len(in.ListenerArns) > 0 && !slices.Contains(in.ListenerArns, id)) ||
			(in.LoadBalancerArn != nil && l.LBARN != *in.LoadBalancerArn) {
			continue
		}
		out.Listeners = append(out.Listeners, l.describe())
	}
	return &out, nil
}

func (f *fakeELB) DeleteListener(_ context.Context, in *elb.DeleteListenerInput, _ ...func(*elb.Options)) (*elb.DeleteListenerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteListener", in); err != nil {
		return nil, err
	}
	arn := aws.ToString(in.ListenerArn)
	if c.listeners[arn] == nil {
		return nil, fakeErr("ListenerNotFound", "One or more listeners not found")
	}
	delete(c.listeners, arn)
	return &elb.DeleteListenerOutput{}, nil
}

func (f *fakeELB) DescribeTags(_ context.Context, in *elb.DescribeTagsInput, _ ...func(*elb.Options)) (*elb.DescribeTagsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeTags", in); err != nil {
		return nil, err
	}
	if len(in.ResourceArns) == 0 || len(in.ResourceArns) > 20 {
		return nil, fakeErr("ValidationError", "ResourceArns must hold 1 to 20 ARNs, got %d", len(in.ResourceArns))
	}
	var out elb.DescribeTagsOutput
	for _, arn := range in.ResourceArns {
		var tags map[string]string
		switch {
		case c.tgs[arn] != nil:
			tags = c.tgs[arn].Tags
		case c.lbs[arn] != nil:
			tags = c.lbs[arn].Tags
		case c.listeners[arn] != nil:
			tags = c.listeners[arn].Tags
		case strings.Contains(arn, ":targetgroup/"):
			return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
		case strings.Contains(arn, ":listener/"):
			return nil, fakeErr("ListenerNotFound", "One or more listeners not found")
		default:
			return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
		}
		out.TagDescriptions = append(out.TagDescriptions, elbtypes.TagDescription{ResourceArn: aws.String(arn), Tags: fakeELBTags(tags)})
	}
	return &out, nil
}

func (f *fakeELB) RegisterTargets(_ context.Context, in *elb.RegisterTargetsInput, _ ...func(*elb.Options)) (*elb.RegisterTargetsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("RegisterTargets", in); err != nil {
		return nil, err
	}
	tg := c.tgs[aws.ToString(in.TargetGroupArn)]
	if tg == nil {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	for _, t := range in.Targets {
		inst := c.instances[aws.ToString(t.Id)]
		if inst == nil || (inst.State != "running" && inst.State != "pending" && inst.State != "stopped") {
			return nil, fakeErr("InvalidTarget", "The following targets are not in a running state and cannot be registered: '%s'", aws.ToString(t.Id))
		}
	}
	for _, t := range in.Targets {
		id := aws.ToString(t.Id)
		if !slices.ContainsFunc(tg.Targets, func(x *fakeTarget) bool { return x.ID == id }) {
			tg.Targets = append(tg.Targets, &fakeTarget{ID: id, State: c.newTargetState, Reason: "Elb.RegistrationInProgress"})
		}
	}
	return &elb.RegisterTargetsOutput{}, nil
}

func (f *fakeELB) DescribeTargetHealth(_ context.Context, in *elb.DescribeTargetHealthInput, _ ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeTargetHealth", in); err != nil {
		return nil, err
	}
	tg := c.tgs[aws.ToString(in.TargetGroupArn)]
	if tg == nil {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	var out elb.DescribeTargetHealthOutput
	desc := func(id, state, reason string) elbtypes.TargetHealthDescription {
		d := elbtypes.TargetHealthDescription{Target: &elbtypes.TargetDescription{Id: aws.String(id), Port: tg.Input.Port},
			TargetHealth: &elbtypes.TargetHealth{State: elbtypes.TargetHealthStateEnum(state)}}
		if reason != "" {
			d.TargetHealth.Reason = elbtypes.TargetHealthReasonEnum(reason)
		}
		return d
	}
	if len(in.Targets) > 0 {
		for _, t := range in.Targets {
			id := aws.ToString(t.Id)
			i := slices.IndexFunc(tg.Targets, func(x *fakeTarget) bool { return x.ID == id })
			if i < 0 {
				out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, desc(id, "unused", "Target.NotRegistered"))
				continue
			}
			out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, desc(id, tg.Targets[i].State, tg.Targets[i].Reason))
		}
		return &out, nil
	}
	for _, t := range tg.Targets {
		out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, desc(t.ID, t.State, t.Reason))
	}
	// A draining target is listed once, then gone: its drain is over.
	tg.Targets = slices.DeleteFunc(tg.Targets, func(t *fakeTarget) bool { return t.State == "draining" })
	return &out, nil
}

// DeregisterTargets starts the targets' drain: they are listed as draining (by the
// next DescribeTargetHealth of the whole group) and then gone.
func (f *fakeELB) DeregisterTargets(_ context.Context, in *elb.DeregisterTargetsInput, _ ...func(*elb.Options)) (*elb.DeregisterTargetsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeregisterTargets", in); err != nil {
		return nil, err
	}
	tg := c.tgs[aws.ToString(in.TargetGroupArn)]
	if tg == nil {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	for _, t := range in.Targets {
		for _, x := range tg.Targets {
			if x.ID == aws.ToString(t.Id) {
				x.State, x.Reason = "draining", "Target.DeregistrationInProgress"
			}
		}
	}
	return &elb.DeregisterTargetsOutput{}, nil
}
