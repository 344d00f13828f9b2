package stages

import (
	"context"
	"fmt"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// maxTargetsPerRegister bounds one RegisterTargets request. The ELBv2 API reference
// sets no maximum on Targets.member.N; the limit that binds is the quota of 1,000
// targets per target group (Application Load Balancer, instance targets). Batches
// of 100 keep each request small while a whole default fleet (at most 21
// instances) still goes in one call.
const maxTargetsPerRegister = 100

// RegisterTargets registers every fleet instance with the target group on port 80,
// in one call per maxTargetsPerRegister instances. Registering a target that is
// already registered is a no-op, so a second run changes nothing. There is no undo:
// deleting the target group (undoLoadBalancer) deregisters its targets.
func (s *Stages) RegisterTargets(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	lb := doc.Resources.LoadBalancer
	if lb == nil || lb.TargetGroupARN == "" {
		return doc, notYet("resources.loadBalancer.targetGroupArn", pipeline.CreateLoadBalancer)
	}
	fleet := doc.Resources.Fleet
	if fleet == nil || len(fleet.InstanceIDs) == 0 {
		return doc, notYet("resources.fleet.instanceIds", pipeline.LaunchReplicas)
	}
	ids := fleet.InstanceIDs
	for start := 0; start < len(ids); start += maxTargetsPerRegister {
		batch := ids[start:min(start+maxTargetsPerRegister, len(ids))]
		targets := make([]elbtypes.TargetDescription, len(batch))
		for i, id := range batch {
			targets[i] = elbtypes.TargetDescription{Id: aws.String(id), Port: aws.Int32(httpPort)}
		}
		if _, err := s.ELB.RegisterTargets(ctx, &elb.RegisterTargetsInput{
			TargetGroupArn: aws.String(lb.TargetGroupARN),
			Targets:        targets,
		}); err != nil {
			return doc, fmt.Errorf("register %d targets with %s: %w", len(batch), lb.TargetGroupARN, err)
		}
	}
	Log(ctx).Info("registered targets", "targetGroupArn", lb.TargetGroupARN, "instanceIds", ids)
	return doc, nil
}
