package stages

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// cleanupKept is the Cleanup poll state of a failed run whose resources are kept
// (config.keepOnFailure): nothing was deleted, and nothing will be until the
// Teardown the Pipeline started runs.
const cleanupKept = "kept"

// keep answers Cleanup for a failed run with config.keepOnFailure, which the
// Pipeline marks with doc.kept on its way here (Teardown never does): it records
// the run's failure, as Cleanup does, with what was kept and when Teardown deletes
// it, lists what carries the run's tag, and deletes nothing.
func (s *Stages) keep(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	if doc.Error == nil && len(doc.Errors) > 0 {
		doc.Error = normaliseErrors(doc.Errors)
	}
	kept := *doc.Kept
	if kept.TeardownAt == nil {
		at := s.clock().UTC().Add(time.Duration(kept.TeardownAfterMinutes) * time.Minute).Truncate(time.Second)
		kept.TeardownAt = &at
	}
	listed, err := s.listRun(ctx, doc.RunID)
	if err != nil {
		if IsRetryable(err) {
			return doc, &pipeline.RetryableError{Stage: pipeline.Cleanup, Err: err}
		}
		return doc, &pipeline.StageError{Stage: pipeline.Cleanup, Err: err}
	}
	kept.Resources = listed
	doc.Kept = &kept
	if doc.Error != nil {
		doc.Error.Cause = truncateUTF8(fmt.Sprintf("%s (resources kept for debugging: %d with the tag %s=%s; Teardown %s deletes them at %s, or run Teardown with runId %s now)",
			doc.Error.Cause, len(listed), pipeline.TagRunID, doc.RunID, kept.Teardown, kept.TeardownAt.Format(time.RFC3339), doc.RunID), maxFailureMessage+1000)
	}
	if doc.Polls == nil {
		doc.Polls = &pipeline.Polls{}
	}
	prev := doc.Polls.Of(pipeline.WaitCleanupDone)
	doc.Polls.CleanupDone = &pipeline.PollResult{
		Ready: true, State: cleanupKept, Attempts: attemptAfter(prev),
		Reason: truncateUTF8(fmt.Sprintf("kept %d resources until %s", len(listed), kept.TeardownAt.Format(time.RFC3339)), maxCleanupReason),
	}
	Log(ctx).Info("resources kept", "resources", len(listed), "teardown", kept.Teardown, "teardownAt", kept.TeardownAt.Format(time.RFC3339))
	return doc, nil
}

// listRun lists what carries the run's tag, as "kind id (role, state)" lines, in
// the pipeline's order: security groups, base instance, image, load balancer,
// target group, replicas. It only reads.
func (s *Stages) listRun(ctx context.Context, runID string) ([]string, error) {
	var out []string
	groups, err := s.findSecurityGroups(ctx, runID, "")
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		out = append(out, fmt.Sprintf("security group %s (%s)", aws.ToString(g.GroupId), aws.ToString(g.GroupName)))
	}
	for _, role := range []string{pipeline.RoleBase, pipeline.RoleReplica} {
		instances, err := s.findInstances(ctx, runID, role, allGenerations, notTerminatedStates...)
		if err != nil {
			return nil, err
		}
		for _, in := range instances {
			out = append(out, fmt.Sprintf("instance %s (%s, %s)", aws.ToString(in.InstanceId), role, stateOf(in)))
		}
	}
	images, err := s.findImages(ctx, runID, allGenerations)
	if err != nil {
		return nil, err
	}
	for _, im := range images {
		out = append(out, fmt.Sprintf("image %s (%s)", aws.ToString(im.ImageId), im.State))
	}
	lb, err := s.findLoadBalancer(ctx, runID)
	if err != nil {
		return nil, err
	}
	if lb != nil {
		out = append(out, fmt.Sprintf("load balancer %s (%s)", aws.ToString(lb.LoadBalancerArn), aws.ToString(lb.DNSName)))
	}
	tg, err := s.findTargetGroup(ctx, runID)
	if err != nil {
		return nil, err
	}
	if tg != nil {
		out = append(out, "target group "+aws.ToString(tg.TargetGroupArn))
	}
	return out, nil
}
