package stages_test

// The fake's ELBv2 claims, one row each: target groups, load balancers, listeners,
// tags and targets (see contract_test.go).

import (
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

var elbContractRows = []contractRow{
	{
		name:  "DuplicateTargetGroupName",
		claim: "CreateTargetGroup of a name in use, with other settings, answers DuplicateTargetGroupName",
		run: func(e *contractEnv) {
			name := e.name + "-tg"
			e.targetGroup(name, 80)
			_, err := e.createTargetGroup(name, 8080)
			e.wantCode("the second CreateTargetGroup", err, "DuplicateTargetGroupName")
		},
	},
	{
		name:  "ValidationError/target-group-name",
		claim: "a target group name of more than 32 characters answers ValidationError",
		run: func(e *contractEnv) {
			_, err := e.createTargetGroup(e.name+"-"+strings.Repeat("x", 32), 80)
			e.wantCode("CreateTargetGroup", err, "ValidationError")
		},
	},
	{
		name:  "DuplicateLoadBalancerName",
		claim: "CreateLoadBalancer of a name in use, with other settings, answers DuplicateLoadBalancerName",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-alb")
			name := e.name + "-lb"
			e.loadBalancer(name, g)
			_, err := e.createLoadBalancer(&elb.CreateLoadBalancerInput{Name: aws.String(name),
				Scheme: elbtypes.LoadBalancerSchemeEnumInternal, SecurityGroups: []string{g}})
			e.wantCode("the second CreateLoadBalancer", err, "DuplicateLoadBalancerName")
		},
		motoSkip: "moto 5.2.1 creates a second load balancer of a name in use (its duplicate check compares a newly generated ARN); AWS answers DuplicateLoadBalancerName (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html)",
	},
	{
		name:  "ValidationError/one-zone",
		claim: "an Application Load Balancer in one subnet (one zone) answers ValidationError",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-alb")
			_, err := e.createLoadBalancer(&elb.CreateLoadBalancerInput{Name: aws.String(e.name + "-lb"),
				Subnets: e.subnets[:1], SecurityGroups: []string{g}})
			e.wantCode("CreateLoadBalancer", err, "ValidationError")
		},
		motoSkip: "moto 5.2.1 creates an Application Load Balancer in one subnet; AWS requires subnets in at least two Availability Zones (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html) and answers ValidationError",
	},
	{
		name:  "ResourceInUse",
		claim: "DeleteTargetGroup of a group a listener forwards to answers ResourceInUse",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			lb := e.loadBalancer(e.name+"-lb", e.group(e.name+"-alb"))
			e.listener(lb, tg, 80)
			_, err := e.elb.DeleteTargetGroup(e.ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tg)})
			e.wantCode("DeleteTargetGroup", err, "ResourceInUse")
		},
	},
	{
		name:  "DescribeTargetGroups/LoadBalancerArns",
		claim: "DescribeTargetGroups names the load balancers whose listeners forward to the group",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			lb := e.loadBalancer(e.name+"-lb", e.group(e.name+"-alb"))
			e.listener(lb, tg, 80)
			out, err := e.elb.DescribeTargetGroups(e.ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{tg}})
			e.must("DescribeTargetGroups", err)
			if len(out.TargetGroups) != 1 || !slices.Equal(out.TargetGroups[0].LoadBalancerArns, []string{lb}) {
				e.t.Errorf("DescribeTargetGroups: %+v, want the group with LoadBalancerArns [%s]", out.TargetGroups, lb)
			}
		},
	},
	{
		name:  "DeleteTargetGroup/gone",
		claim: "DeleteTargetGroup of a group that is already gone succeeds",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			for i := 1; i <= 2; i++ {
				_, err := e.elb.DeleteTargetGroup(e.ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tg)})
				e.must("DeleteTargetGroup", err)
			}
		},
		motoSkip: "moto 5.2.1 answers TargetGroupNotFound; AWS lists no such error for DeleteTargetGroup, only ResourceInUse (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DeleteTargetGroup.html); the stages accept both answers",
	},
	{
		name:  "DeleteLoadBalancer/listeners",
		claim: "DeleteLoadBalancer deletes its listeners (ListenerNotFound after), which frees the target group",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			lb := e.loadBalancer(e.name+"-lb", e.group(e.name+"-alb"))
			l := e.listener(lb, tg, 80)
			_, err := e.elb.DeleteLoadBalancer(e.ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lb)})
			e.must("DeleteLoadBalancer", err)
			_, err = e.elb.DescribeListeners(e.ctx, &elb.DescribeListenersInput{ListenerArns: []string{l}})
			e.wantCode("DescribeListeners", err, "ListenerNotFound")
			_, err = e.elb.DeleteTargetGroup(e.ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tg)})
			e.must("DeleteTargetGroup after DeleteLoadBalancer", err)
		},
	},
	{
		name:  "DeleteLoadBalancer/gone",
		claim: "DeleteLoadBalancer of a load balancer that is already gone succeeds",
		run: func(e *contractEnv) {
			lb := e.loadBalancer(e.name+"-lb", e.group(e.name+"-alb"))
			for i := 1; i <= 2; i++ {
				_, err := e.elb.DeleteLoadBalancer(e.ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lb)})
				e.must("DeleteLoadBalancer", err)
			}
		},
	},
	{
		name:  "LoadBalancerNotFound",
		claim: "DescribeLoadBalancers (by name or ARN) and DescribeListeners of a load balancer that is gone answer LoadBalancerNotFound",
		run: func(e *contractEnv) {
			name := e.name + "-lb"
			_, err := e.elb.DescribeLoadBalancers(e.ctx, &elb.DescribeLoadBalancersInput{Names: []string{name}})
			e.wantCode("DescribeLoadBalancers by a name never used", err, "LoadBalancerNotFound")
			lb := e.loadBalancer(name, e.group(e.name+"-alb"))
			_, err = e.elb.DeleteLoadBalancer(e.ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lb)})
			e.must("DeleteLoadBalancer", err)
			_, err = e.elb.DescribeLoadBalancers(e.ctx, &elb.DescribeLoadBalancersInput{Names: []string{name}})
			e.wantCode("DescribeLoadBalancers by name", err, "LoadBalancerNotFound")
			_, err = e.elb.DescribeLoadBalancers(e.ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{lb}})
			e.wantCode("DescribeLoadBalancers by ARN", err, "LoadBalancerNotFound")
			_, err = e.elb.DescribeListeners(e.ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lb)})
			e.wantCode("DescribeListeners", err, "LoadBalancerNotFound")
		},
	},
	{
		name:  "TargetGroupNotFound/DescribeTargetGroups",
		claim: "DescribeTargetGroups by a name never used, and by the name or ARN of a group that is gone, answers TargetGroupNotFound",
		run: func(e *contractEnv) {
			name := e.name + "-tg"
			_, err := e.elb.DescribeTargetGroups(e.ctx, &elb.DescribeTargetGroupsInput{Names: []string{name}})
			e.wantCode("DescribeTargetGroups by a name never used", err, "TargetGroupNotFound")
			tg := e.goneTargetGroup(name)
			_, err = e.elb.DescribeTargetGroups(e.ctx, &elb.DescribeTargetGroupsInput{Names: []string{name}})
			e.wantCode("DescribeTargetGroups by name", err, "TargetGroupNotFound")
			_, err = e.elb.DescribeTargetGroups(e.ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{tg}})
			e.wantCode("DescribeTargetGroups by ARN", err, "TargetGroupNotFound")
		},
	},
	{
		name:  "TargetGroupNotFound/DescribeTags",
		claim: "DescribeTags of a target group that is gone answers TargetGroupNotFound",
		run: func(e *contractEnv) {
			tg := e.goneTargetGroup(e.name + "-tg")
			_, err := e.elb.DescribeTags(e.ctx, &elb.DescribeTagsInput{ResourceArns: []string{tg}})
			e.wantCode("DescribeTags", err, "TargetGroupNotFound")
		},
		motoSkip: "moto 5.2.1 answers no tags for an ARN that names nothing; AWS answers TargetGroupNotFound (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DescribeTags.html)",
	},
	{
		name:  "TargetGroupNotFound/targets",
		claim: "DescribeTargetHealth and RegisterTargets of a target group that is gone answer TargetGroupNotFound",
		run: func(e *contractEnv) {
			id := e.instance()
			tg := e.goneTargetGroup(e.name + "-tg")
			_, err := e.elb.DescribeTargetHealth(e.ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
			e.wantCode("DescribeTargetHealth", err, "TargetGroupNotFound")
			_, err = e.elb.RegisterTargets(e.ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(tg),
				Targets: []elbtypes.TargetDescription{{Id: aws.String(id)}}})
			e.wantCode("RegisterTargets", err, "TargetGroupNotFound")
		},
	},
	{
		name:  "TargetGroupNotFound/CreateListener",
		claim: "CreateListener forwarding to a target group that is gone answers TargetGroupNotFound",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			lb := e.loadBalancer(e.name+"-lb", e.group(e.name+"-alb"))
			_, err := e.elb.DeleteTargetGroup(e.ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tg)})
			e.must("DeleteTargetGroup", err)
			_, err = e.createListener(lb, tg, 80)
			e.wantCode("CreateListener", err, "TargetGroupNotFound")
		},
	},
	{
		name:  "ListenerNotFound",
		claim: "DeleteListener of a listener that is gone answers ListenerNotFound",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			lb := e.loadBalancer(e.name+"-lb", e.group(e.name+"-alb"))
			l := e.listener(lb, tg, 80)
			_, err := e.elb.DeleteListener(e.ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(l)})
			e.must("the first DeleteListener", err)
			_, err = e.elb.DeleteListener(e.ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(l)})
			e.wantCode("the second DeleteListener", err, "ListenerNotFound")
		},
	},
	{
		name:  "DuplicateListener",
		claim: "a second listener on a load balancer's port answers DuplicateListener",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			lb := e.loadBalancer(e.name+"-lb", e.group(e.name+"-alb"))
			e.listener(lb, tg, 80)
			_, err := e.createListener(lb, tg, 80)
			e.wantCode("the second CreateListener", err, "DuplicateListener")
		},
		motoSkip: "moto 5.2.1 creates a second listener on a port in use (its check looks the port up among listener ARNs); AWS answers DuplicateListener (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateListener.html)",
	},
	{
		name:  "DescribeTags/20",
		claim: "DescribeTags takes at most 20 ARNs: 21 answer ValidationError",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			_, err := e.elb.DescribeTags(e.ctx, &elb.DescribeTagsInput{ResourceArns: slices.Repeat([]string{tg}, 20)})
			e.must("DescribeTags of 20 ARNs", err)
			_, err = e.elb.DescribeTags(e.ctx, &elb.DescribeTagsInput{ResourceArns: slices.Repeat([]string{tg}, 21)})
			e.wantCode("DescribeTags of 21 ARNs", err, "ValidationError")
		},
		motoSkip: "moto 5.2.1 accepts 21 ARNs; AWS takes up to 20 (https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_DescribeTags.html) and refuses more with ValidationError",
	},
	{
		name:  "InvalidTarget",
		claim: "RegisterTargets of an instance that is not running (terminated) answers InvalidTarget",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			id := e.instance()
			e.terminate(id)
			_, err := e.elb.RegisterTargets(e.ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(tg),
				Targets: []elbtypes.TargetDescription{{Id: aws.String(id)}}})
			e.wantCode("RegisterTargets", err, "InvalidTarget")
		},
	},
	{
		name:  "Target.NotRegistered",
		claim: "DescribeTargetHealth of a target that is not registered answers it unused, Target.NotRegistered",
		run: func(e *contractEnv) {
			tg := e.targetGroup(e.name+"-tg", 80)
			id := e.instance()
			out, err := e.elb.DescribeTargetHealth(e.ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg),
				Targets: []elbtypes.TargetDescription{{Id: aws.String(id)}}})
			e.must("DescribeTargetHealth", err)
			if len(out.TargetHealthDescriptions) != 1 {
				e.t.Fatalf("DescribeTargetHealth: %d descriptions, want 1", len(out.TargetHealthDescriptions))
			}
			h := out.TargetHealthDescriptions[0].TargetHealth
			if h == nil || h.State != elbtypes.TargetHealthStateEnumUnused || h.Reason != elbtypes.TargetHealthReasonEnumNotRegistered {
				e.t.Errorf("DescribeTargetHealth of an unregistered target: %+v, want unused, Target.NotRegistered", h)
			}
		},
	},
}
