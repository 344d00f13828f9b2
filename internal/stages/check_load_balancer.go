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

// CheckLoadBalancer is one poll of the "loadBalancer" wait: ready once the ALB is
// active. A failed ALB will never become active: ResourceFailedError. The state
// machine's Choice bounds the loop; this check never times out by itself.
func (s *Stages) CheckLoadBalancer(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	lb := doc.Resources.LoadBalancer
	if lb == nil || lb.LoadBalancerARN == "" {
		return doc, &pipeline.StageError{Err: errors.New("resources.loadBalancer.loadBalancerArn is empty: CreateLoadBalancer has not run")}
	}
	out, err := s.ELB.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{lb.LoadBalancerARN}})
	if ErrorCode(err) == codeLoadBalancerNotFound {
		// Right after CreateLoadBalancer a describe may not see it yet; if it is
		// really gone, the Task's bounded retries end the run.
		return doc, &pipeline.RetryableError{Err: fmt.Errorf("load balancer %s not found: %w", lb.LoadBalancerARN, err)}
	}
	if err != nil {
		return doc, fmt.Errorf("describe load balancer %s: %w", lb.LoadBalancerARN, err)
	}
	if len(out.LoadBalancers) == 0 || out.LoadBalancers[0].State == nil {
		return doc, &pipeline.RetryableError{Err: fmt.Errorf("load balancer %s: describe answered no state", lb.LoadBalancerARN)}
	}
	state := out.LoadBalancers[0].State
	reason := aws.ToString(state.Reason)
	polls := pipeline.Polls{}
	if doc.Polls != nil {
		polls = *doc.Polls // a copy: the caller's document stays as it was
	}
	doc.Polls = &polls
	poll := pipeline.PollResult{State: string(state.Code), Attempts: attemptAfter(polls.LoadBalancer)}
	switch state.Code {
	case elbtypes.LoadBalancerStateEnumActive:
		poll.Ready = true
		poll.Reason = "load balancer is active"
	case elbtypes.LoadBalancerStateEnumFailed:
		if reason == "" {
			reason = "no reason given"
		}
		return doc, &pipeline.ResourceFailedError{Resource: "load balancer " + lb.LoadBalancerARN, State: string(state.Code), Reason: reason}
	default: // provisioning, active_impaired
		poll.Reason = "load balancer is " + string(state.Code)
		if reason != "" {
			poll.Reason += ": " + reason
		}
	}
	doc.Polls.LoadBalancer = &poll
	return doc, nil
}
