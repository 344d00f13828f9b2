package stages

import (
	"context"
	"fmt"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// CheckLoadBalancerActive is one poll of the LoadBalancerActive wait: ready once the ALB is
// active. A failed ALB will never become active: ResourceFailedError. The state
// machine's Choice bounds the loop; this check never times out by itself.
func (s *Stages) CheckLoadBalancerActive(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	lb := doc.Resources.LoadBalancer
	if lb == nil || lb.LoadBalancerARN == "" {
		return doc, notYet("resources.loadBalancer.loadBalancerArn", pipeline.CreateLoadBalancer)
	}
	return poll(doc, pipeline.WaitLoadBalancerActive, func(_ *pipeline.Document, poll *pipeline.PollResult) error {
		return s.checkLoadBalancerActive(ctx, lb, poll)
	})
}

func (s *Stages) checkLoadBalancerActive(ctx context.Context, lb *pipeline.LoadBalancer, poll *pipeline.PollResult) error {
	out, err := s.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{lb.LoadBalancerARN}})
	if ErrorCode(err) == codeLoadBalancerNotFound {
		// Right after CreateLoadBalancer a describe may not see it yet; if it is
		// really gone, the Task's bounded retries end the run.
		return &pipeline.RetryableError{Err: fmt.Errorf("load balancer %s not found: %w", lb.LoadBalancerARN, err)}
	}
	if err != nil {
		return fmt.Errorf("describe load balancer %s: %w", lb.LoadBalancerARN, err)
	}
	if len(out.LoadBalancers) == 0 || out.LoadBalancers[0].State == nil {
		return &pipeline.RetryableError{Err: fmt.Errorf("load balancer %s: describe answered no state", lb.LoadBalancerARN)}
	}
	state := out.LoadBalancers[0].State
	reason := aws.ToString(state.Reason)
	poll.State = string(state.Code)
	switch state.Code {
	case elbtypes.LoadBalancerStateEnumActive:
		poll.Ready = true
		poll.Reason = "load balancer is active"
	case elbtypes.LoadBalancerStateEnumFailed:
		if reason == "" {
			reason = "no reason given"
		}
		return &pipeline.ResourceFailedError{Resource: "load balancer " + lb.LoadBalancerARN, State: string(state.Code), Reason: reason}
	default: // provisioning, active_impaired
		poll.Reason = "load balancer is " + string(state.Code)
		if reason != "" {
			poll.Reason += ": " + reason
		}
	}
	return nil
}
