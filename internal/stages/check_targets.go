package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// CheckTargets is one poll of the "targetsHealthy" wait: ready when every fleet
// instance is a healthy target. The Reason names each instance that is not, with
// its state and reason code ("i-1 initial (Elb.InitialHealthChecking)"), so that a
// timed-out wait says which instance failed its health checks and why.
func (s *Stages) CheckTargets(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	lb := doc.Resources.LoadBalancer
	if lb == nil || lb.TargetGroupARN == "" {
		return doc, &pipeline.StageError{Err: errors.New("resources.loadBalancer.targetGroupArn is empty: CreateLoadBalancer has not run")}
	}
	fleet := doc.Resources.Fleet
	if fleet == nil || len(fleet.InstanceIDs) == 0 {
		return doc, &pipeline.StageError{Err: errors.New("resources.fleet.instanceIds is empty: LaunchReplicas has not run")}
	}
	out, err := s.ELB.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(lb.TargetGroupARN)})
	if err != nil {
		return doc, fmt.Errorf("describe target health of %s: %w", lb.TargetGroupARN, err)
	}
	health := make(map[string]*elbtypes.TargetHealth, len(out.TargetHealthDescriptions))
	for _, d := range out.TargetHealthDescriptions {
		if d.Target != nil && d.TargetHealth != nil {
			health[aws.ToString(d.Target.Id)] = d.TargetHealth
		}
	}
	var waiting []string
	for _, id := range fleet.InstanceIDs {
		h, ok := health[id]
		switch {
		case !ok:
			waiting = append(waiting, id+" not registered")
		case h.State != elbtypes.TargetHealthStateEnumHealthy:
			w := id + " " + string(h.State)
			if h.Reason != "" {
				w += " (" + string(h.Reason) + ")"
			}
			waiting = append(waiting, w)
		}
	}

	polls := pipeline.Polls{}
	if doc.Polls != nil {
		polls = *doc.Polls // a copy: the caller's document stays as it was
	}
	poll := pipeline.PollResult{Attempts: attemptAfter(polls.TargetsHealthy)}
	healthy := len(fleet.InstanceIDs) - len(waiting)
	poll.State = fmt.Sprintf("%d/%d healthy", healthy, len(fleet.InstanceIDs))
	if len(waiting) == 0 {
		poll.Ready = true
		poll.Reason = "every target is healthy"
	} else {
		poll.Reason = "waiting for " + strings.Join(waiting, ", ")
	}
	polls.TargetsHealthy = &poll
	doc.Polls = &polls
	return doc, nil
}
