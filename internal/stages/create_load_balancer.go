package stages

import (
	"context"
	"errors"
	"fmt"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// Target group health check at its fastest valid settings: a fresh instance is
// "healthy" 5 to 10 s after httpd answers (2 checks 5 s apart, the least interval
// and threshold ELB takes), instead of the defaults' minutes. The timeout must be
// below the interval; a page this small answers in milliseconds.
const (
	healthCheckPath                  = "/"
	healthCheckIntervalSeconds       = 5
	healthCheckTimeoutSeconds        = 4
	healthyThresholdCount            = 2
	unhealthyThresholdCount          = 2
	healthCheckSuccessCode           = "200"
	httpPort                   int32 = 80
)

// The target group's deregistration delay: how long ELB keeps sending a deregistered
// (or draining) target's open requests to it before it lets it go. AWS's default is
// 300 s, sized for long uploads and downloads; these pages are a few hundred bytes and
// answer in milliseconds, so every request in flight is done within a second. 30 s
// keeps a wide margin for a slow client, while a refresh that rolls the fleet onto a
// new generation (deregistering the old generation's targets, which stay "draining"
// for the whole delay before they may be terminated) does not sit out five idle
// minutes. CreateTargetGroup takes no attributes: ModifyTargetGroupAttributes sets it
// right after.
const (
	deregistrationDelayAttribute = "deregistration_delay.timeout_seconds"
	deregistrationDelaySeconds   = "30"
)

// CreateLoadBalancer creates the run's target group, its internet-facing Application
// Load Balancer over the network's subnets, and an HTTP:80 listener forwarding to the
// target group. ELBv2 has no client token, so a second run finds what the first made
// by name and reuses it once its amifleet:run-id tag proves it is this run's.
func (s *Stages) CreateLoadBalancer(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	net := doc.Resources.Network
	switch {
	case net == nil:
		return doc, notYet("resources.network", pipeline.CreateSecurityGroups)
	case net.VPCID == "":
		return doc, notYet("resources.network.vpcId", pipeline.CreateSecurityGroups)
	case len(net.SubnetIDs) < 2:
		return doc, &pipeline.StageError{Err: fmt.Errorf("an Application Load Balancer needs subnets in at least two availability zones, resources.network.subnetIds has %d", len(net.SubnetIDs))}
	case net.ALBSecurityGroupID == "":
		return doc, notYet("resources.network.albSecurityGroupId", pipeline.CreateSecurityGroups)
	}
	log := Log(ctx)

	// Both look-ups come before any create, so that a foreign same-named resource
	// stops the stage before it has made anything.
	tg, err := s.findTargetGroup(ctx, doc.RunID)
	if err != nil {
		return doc, err
	}
	lb, err := s.findLoadBalancer(ctx, doc.RunID)
	if err != nil {
		return doc, err
	}
	reused := tg != nil
	if tg, err = s.ensureTargetGroup(ctx, doc, tg); err != nil {
		return doc, err
	}
	if err := s.ensureDeregistrationDelay(ctx, aws.ToString(tg.TargetGroupArn), reused); err != nil {
		return doc, err
	}
	if lb, err = s.ensureLoadBalancer(ctx, doc, lb); err != nil {
		return doc, err
	}
	listenerARN, err := s.ensureListener(ctx, doc, aws.ToString(lb.LoadBalancerArn), aws.ToString(tg.TargetGroupArn))
	if err != nil {
		return doc, err
	}

	dns := aws.ToString(lb.DNSName)
	doc.Resources.LoadBalancer = &pipeline.LoadBalancer{
		TargetGroupARN:  aws.ToString(tg.TargetGroupArn),
		LoadBalancerARN: aws.ToString(lb.LoadBalancerArn),
		ListenerARN:     listenerARN,
		DNSName:         dns,
		URL:             "http://" + dns + "/",
	}
	log.Info("load balancer ready to provision", "loadBalancerArn", aws.ToString(lb.LoadBalancerArn), "dnsName", dns)
	return doc, nil
}

// ensureTargetGroup is found, the run's existing target group, or a new one.
func (s *Stages) ensureTargetGroup(ctx context.Context, doc pipeline.Document, found *elbtypes.TargetGroup) (*elbtypes.TargetGroup, error) {
	name := pipeline.ResourceName(doc.RunID, pipeline.RoleTargetGroup)
	if found != nil {
		Log(ctx).Info("reusing target group", "name", name, "targetGroupArn", aws.ToString(found.TargetGroupArn))
		return found, nil
	}
	out, err := s.ELB.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{
		Name:                       aws.String(name),
		Protocol:                   elbtypes.ProtocolEnumHttp,
		Port:                       aws.Int32(httpPort),
		VpcId:                      aws.String(doc.Resources.Network.VPCID),
		TargetType:                 elbtypes.TargetTypeEnumInstance,
		HealthCheckEnabled:         aws.Bool(true),
		HealthCheckProtocol:        elbtypes.ProtocolEnumHttp,
		HealthCheckPath:            aws.String(healthCheckPath),
		HealthCheckIntervalSeconds: aws.Int32(healthCheckIntervalSeconds),
		HealthCheckTimeoutSeconds:  aws.Int32(healthCheckTimeoutSeconds),
		HealthyThresholdCount:      aws.Int32(healthyThresholdCount),
		UnhealthyThresholdCount:    aws.Int32(unhealthyThresholdCount),
		Matcher:                    &elbtypes.Matcher{HttpCode: aws.String(healthCheckSuccessCode)},
		Tags:                       elbTags(doc.RunID, pipeline.RoleTargetGroup, doc.Config.Tags),
	})
	if err != nil {
		return nil, fmt.Errorf("create target group %s: %w", name, err)
	}
	if len(out.TargetGroups) == 0 {
		return nil, fmt.Errorf("create target group %s: the answer holds no target group", name)
	}
	Log(ctx).Info("created target group", "name", name, "targetGroupArn", aws.ToString(out.TargetGroups[0].TargetGroupArn))
	return &out.TargetGroups[0], nil
}

// ensureDeregistrationDelay sets the target group's deregistration delay to
// deregistrationDelaySeconds. A target group the stage reused is read first and
// changed only when its delay differs (a first run may have created it, then failed
// before or at the change), so that a second run of a whole stage changes nothing.
func (s *Stages) ensureDeregistrationDelay(ctx context.Context, tgARN string, reused bool) error {
	if reused {
		var out *elb.DescribeTargetGroupAttributesOutput
		err := untilVisible(ctx, func() (err error) {
			out, err = s.ELB.DescribeTargetGroupAttributes(ctx, &elb.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(tgARN)})
			return err
		}, codeTargetGroupNotFound)
		if err != nil {
			return fmt.Errorf("describe the attributes of target group %s: %w", tgARN, err)
		}
		for _, a := range out.Attributes {
			if aws.ToString(a.Key) == deregistrationDelayAttribute && aws.ToString(a.Value) == deregistrationDelaySeconds {
				return nil
			}
		}
	}
	// A target group created a moment before may not be visible yet.
	err := untilVisible(ctx, func() error {
		_, err := s.ELB.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{
			TargetGroupArn: aws.String(tgARN),
			Attributes: []elbtypes.TargetGroupAttribute{{
				Key: aws.String(deregistrationDelayAttribute), Value: aws.String(deregistrationDelaySeconds)}},
		})
		return err
	}, codeTargetGroupNotFound)
	if err != nil {
		return fmt.Errorf("set the deregistration delay of target group %s: %w", tgARN, err)
	}
	Log(ctx).Info("set the deregistration delay", "targetGroupArn", tgARN, "seconds", deregistrationDelaySeconds)
	return nil
}

// ensureLoadBalancer is found, the run's existing load balancer, or a new one.
func (s *Stages) ensureLoadBalancer(ctx context.Context, doc pipeline.Document, found *elbtypes.LoadBalancer) (*elbtypes.LoadBalancer, error) {
	name := pipeline.ResourceName(doc.RunID, pipeline.RoleLoadBalancer)
	if found != nil {
		Log(ctx).Info("reusing load balancer", "name", name, "loadBalancerArn", aws.ToString(found.LoadBalancerArn))
		return found, nil
	}
	net := doc.Resources.Network
	out, err := s.ELB.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{
		Name:           aws.String(name),
		Type:           elbtypes.LoadBalancerTypeEnumApplication,
		Scheme:         elbtypes.LoadBalancerSchemeEnumInternetFacing,
		IpAddressType:  elbtypes.IpAddressTypeIpv4,
		Subnets:        append([]string(nil), net.SubnetIDs...),
		SecurityGroups: []string{net.ALBSecurityGroupID},
		Tags:           elbTags(doc.RunID, pipeline.RoleLoadBalancer, doc.Config.Tags),
	})
	if err != nil {
		return nil, fmt.Errorf("create load balancer %s: %w", name, err)
	}
	if len(out.LoadBalancers) == 0 {
		return nil, fmt.Errorf("create load balancer %s: the answer holds no load balancer", name)
	}
	Log(ctx).Info("created load balancer", "name", name, "loadBalancerArn", aws.ToString(out.LoadBalancers[0].LoadBalancerArn))
	return &out.LoadBalancers[0], nil
}

// ensureListener reuses the load balancer's port-80 listener, if it has one (only
// this run's load balancer gets here, so its listener is this run's too).
func (s *Stages) ensureListener(ctx context.Context, doc pipeline.Document, lbARN, tgARN string) (string, error) {
	// The load balancer may have been created a moment before: not visible yet.
	var listeners *elb.DescribeListenersOutput
	err := untilVisible(ctx, func() (err error) {
		listeners, err = s.ELB.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
		return err
	}, codeLoadBalancerNotFound)
	if err != nil {
		return "", fmt.Errorf("describe listeners of %s: %w", lbARN, err)
	}
	for _, l := range listeners.Listeners {
		if aws.ToInt32(l.Port) == httpPort {
			Log(ctx).Info("reusing listener", "listenerArn", aws.ToString(l.ListenerArn))
			return aws.ToString(l.ListenerArn), nil
		}
	}
	var out *elb.CreateListenerOutput
	err = untilVisible(ctx, func() (err error) {
		out, err = s.ELB.CreateListener(ctx, &elb.CreateListenerInput{
			LoadBalancerArn: aws.String(lbARN),
			Protocol:        elbtypes.ProtocolEnumHttp,
			Port:            aws.Int32(httpPort),
			DefaultActions: []elbtypes.Action{{
				Type:           elbtypes.ActionTypeEnumForward,
				TargetGroupArn: aws.String(tgARN),
			}},
			// The listener is part of the load balancer: same role, so the run tag finds it.
			Tags: elbTags(doc.RunID, pipeline.RoleLoadBalancer, doc.Config.Tags),
		})
		return err
	}, codeLoadBalancerNotFound, codeTargetGroupNotFound)
	if err != nil {
		return "", fmt.Errorf("create listener on %s: %w", lbARN, err)
	}
	if len(out.Listeners) == 0 {
		return "", fmt.Errorf("create listener on %s: the answer holds no listener", lbARN)
	}
	Log(ctx).Info("created listener", "listenerArn", aws.ToString(out.Listeners[0].ListenerArn))
	return aws.ToString(out.Listeners[0].ListenerArn), nil
}

// findTargetGroup is the run's target group, or nil when there is none. A target
// group of the run's name that is not tagged with the run id is a StageError: ELBv2
// names are unique per account and region, so it blocks the run, and it is someone
// else's to keep.
func (s *Stages) findTargetGroup(ctx context.Context, runID string) (*elbtypes.TargetGroup, error) {
	name := pipeline.ResourceName(runID, pipeline.RoleTargetGroup)
	out, err := s.ELB.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{Names: []string{name}})
	if ErrorCode(err) == codeTargetGroupNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe target group %s: %w", name, err)
	}
	if len(out.TargetGroups) == 0 {
		return nil, nil
	}
	tg := &out.TargetGroups[0]
	if err := s.checkRunTag(ctx, "target group "+name, aws.ToString(tg.TargetGroupArn), runID); err != nil {
		return nil, err
	}
	return tg, nil
}

// findLoadBalancer is the run's load balancer, or nil; see findTargetGroup.
func (s *Stages) findLoadBalancer(ctx context.Context, runID string) (*elbtypes.LoadBalancer, error) {
	name := pipeline.ResourceName(runID, pipeline.RoleLoadBalancer)
	out, err := s.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{Names: []string{name}})
	if ErrorCode(err) == codeLoadBalancerNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe load balancer %s: %w", name, err)
	}
	if len(out.LoadBalancers) == 0 {
		return nil, nil
	}
	lb := &out.LoadBalancers[0]
	if err := s.checkRunTag(ctx, "load balancer "+name, aws.ToString(lb.LoadBalancerArn), runID); err != nil {
		return nil, err
	}
	return lb, nil
}

// errNotThisRun marks a same-named resource that belongs to someone else.
var errNotThisRun = errors.New("not tagged with this run id")

// checkRunTag returns nil when the resource at arn carries amifleet:run-id=runID,
// and a StageError wrapping errNotThisRun when it does not.
func (s *Stages) checkRunTag(ctx context.Context, what, arn, runID string) error {
	out, err := s.ELB.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{arn}})
	if err != nil {
		return fmt.Errorf("describe tags of %s: %w", what, err)
	}
	for _, d := range out.TagDescriptions {
		if aws.ToString(d.ResourceArn) != arn {
			continue
		}
		for _, t := range d.Tags {
			if aws.ToString(t.Key) == pipeline.TagRunID && aws.ToString(t.Value) == runID {
				return nil
			}
		}
	}
	return &pipeline.StageError{Err: fmt.Errorf("%s (%s) exists but is %w %q; refusing to adopt it: delete or rename it, or start the run under another name", what, arn, errNotThisRun, runID)}
}

// elbTags are runTags for ELBv2. What ELBv2 holds (load balancer, listener, target
// group) serves every generation of the run: it carries no generation.
func elbTags(runID, role string, userTags map[string]string) []elbtypes.Tag {
	var tags []elbtypes.Tag
	for _, kv := range runTags(runID, role, 0, userTags) {
		tags = append(tags, elbtypes.Tag{Key: aws.String(kv[0]), Value: aws.String(kv[1])})
	}
	return tags
}

// undoLoadBalancer deletes the run's listeners, load balancer and target group, in
// that order, found by name and run tag. A target group is in use until its load
// balancer is gone (ResourceInUse): it is then reported in remaining for the next
// poll. Same-named resources of another run are left alone.
func (s *Stages) undoLoadBalancer(ctx context.Context, runID string) (remaining []string, err error) {
	log := Log(ctx)
	lb, err := s.findLoadBalancer(ctx, runID)
	if err != nil && !errors.Is(err, errNotThisRun) {
		return nil, err
	}
	if lb != nil {
		lbARN := aws.ToString(lb.LoadBalancerArn)
		listeners, err := s.ELB.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(lbARN)})
		switch {
		case ErrorCode(err) == codeLoadBalancerNotFound:
			lb = nil
		case err != nil:
			return nil, fmt.Errorf("describe listeners of %s: %w", lbARN, err)
		}
		if lb != nil {
			for _, l := range listeners.Listeners {
				_, err := s.ELB.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: l.ListenerArn})
				switch {
				case err == nil:
					log.Info("deleted listener", "listenerArn", aws.ToString(l.ListenerArn))
				case ErrorCode(err) != codeListenerNotFound:
					return nil, fmt.Errorf("delete listener %s: %w", aws.ToString(l.ListenerArn), err)
				}
			}
			_, err = s.ELB.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(lbARN)})
			switch {
			case err == nil:
				log.Info("deleted load balancer", "loadBalancerArn", lbARN)
			case ErrorCode(err) != codeLoadBalancerNotFound:
				return nil, fmt.Errorf("delete load balancer %s: %w", lbARN, err)
			}
		}
	}

	tg, err := s.findTargetGroup(ctx, runID)
	if err != nil && !errors.Is(err, errNotThisRun) {
		return nil, err
	}
	if tg != nil {
		tgARN := aws.ToString(tg.TargetGroupArn)
		_, err := s.ELB.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(tgARN)})
		switch {
		case err == nil:
			log.Info("deleted target group", "targetGroupArn", tgARN)
		case ErrorCode(err) == codeTargetGroupNotFound:
		case ErrorCode(err) == codeResourceInUse:
			remaining = append(remaining, fmt.Sprintf("target group %s (in use until its load balancer is deleted)", pipeline.ResourceName(runID, pipeline.RoleTargetGroup)))
		default:
			return remaining, fmt.Errorf("delete target group %s: %w", tgARN, err)
		}
	}
	return remaining, nil
}
