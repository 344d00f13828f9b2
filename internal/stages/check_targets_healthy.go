package stages

import (
	"context"
	"fmt"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// CheckTargetsHealthy is one poll of the TargetsHealthy wait: ready when every fleet
// instance is a healthy target. The Reason names each instance that is not, with
// its state and reason code ("i-1 initial (Elb.InitialHealthChecking)"), so that a
// timed-out wait says which instance failed its health checks and why.
func (s *Stages) CheckTargetsHealthy(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	lb := doc.Resources.LoadBalancer
	if lb == nil || lb.TargetGroupARN == "" {
		return doc, notYet("resources.loadBalancer.targetGroupArn", pipeline.CreateLoadBalancer)
	}
	fleet := doc.Resources.Fleet
	if fleet == nil || len(fleet.InstanceIDs) == 0 {
		return doc, notYet("resources.fleet.instanceIds", pipeline.LaunchReplicas)
	}
	return poll(doc, pipeline.WaitTargetsHealthy, func(_ *pipeline.Document, poll *pipeline.PollResult) error {
		return s.checkTargetsHealthy(ctx, lb.TargetGroupARN, fleet.InstanceIDs, poll)
	})
}

func (s *Stages) checkTargetsHealthy(ctx context.Context, targetGroupARN string, instanceIDs []string, poll *pipeline.PollResult) error {
	out, err := s.ELB.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(targetGroupARN)})
	if err != nil {
		return fmt.Errorf("describe target health of %s: %w", targetGroupARN, err)
	}
	health := make(map[string]*elbtypes.TargetHealth, len(out.TargetHealthDescriptions))
	for _, d := range out.TargetHealthDescriptions {
		if d.Target != nil && d.TargetHealth != nil {
			health[aws.ToString(d.Target.Id)] = d.TargetHealth
		}
	}
	var waiting []string
	for _, id := range instanceIDs {
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
	healthy := len(instanceIDs) - len(waiting)
	poll.State = fmt.Sprintf("%d/%d healthy", healthy, len(instanceIDs))
	if len(waiting) == 0 {
		poll.Ready = true
		poll.Reason = "every target is healthy"
	} else {
		poll.Reason = "waiting for " + strings.Join(waiting, ", ")
	}
	return nil
}
