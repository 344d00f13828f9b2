package stages

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// PruneGenerations ends every refresh, on success and on failure alike: it removes
// every generational resource of the run (instances, images, snapshots) whose
// generation is not the one the run's record says serves, read consistently on each
// call. Before CommitGeneration, that is the refresh's own new generation (and
// anything a stale lock's holder left); after it, the old one. So a failed refresh
// leaves the old generation serving and nothing of the new, and a successful one
// leaves only the new.
//
// No request fails on the way: a registered target of a generation that does not
// serve is deregistered first, and its instance is terminated only once the target
// group no longer lists it (its connections drained, for the group's deregistration
// delay); the serving generation stays registered and healthy throughout. Images go
// with their snapshots, once available. Like Cleanup it never waits: the state
// machine calls it in a Wait loop (GenerationsPruned) until it is ready, and it is
// ready after two clean looks in a row (a create's timeout apart when it took over a
// stale lock, whose holder's last call may still be creating). Then it frees the
// run's lock and, when the new generation did not commit, records the refresh's
// failure in doc.error, saying which generation still serves.
func (s *Stages) PruneGenerations(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	if err := refuseBadRunID(doc.RunID); err != nil {
		return doc, err
	}
	if doc.Refresh == nil || doc.Refresh.ExecutionID == "" {
		return doc, notYet("refresh.executionId", pipeline.PrepareRefresh)
	}
	lb := doc.Resources.LoadBalancer
	if lb == nil || lb.TargetGroupARN == "" {
		return doc, notYet("resources.loadBalancer.targetGroupArn", pipeline.PrepareRefresh)
	}
	rec, err := s.getRun(ctx, doc.RunID)
	if err != nil {
		return doc, err
	}
	serving := doc.Refresh.From.Generation
	if rec != nil {
		serving = rec.Serving
	}
	doc.Refresh.Committed = serving == doc.Gen()

	remaining, errs := s.pruneInstances(ctx, doc.RunID, lb.TargetGroupARN, serving)
	left, err := s.deleteImages(ctx, doc.RunID, serving)
	remaining = append(remaining, left...)
	if err != nil {
		errs = append(errs, fmt.Errorf("images: %w", err))
	}

	prev := doc.Polls.Of(pipeline.WaitGenerationsPruned)
	poll := &pipeline.PollResult{State: cleanupDeleting, Reason: cleanupReason(remaining), Attempts: attemptAfter(prev)}
	if len(remaining) == 0 && len(errs) == 0 {
		span := time.Duration(0)
		if doc.Refresh.TookOverFrom != "" {
			span = s.createTimeout()
		}
		s.settle(prev, poll, span)
	}
	poll.WaitSeconds = doc.Config.Poll.WaitAfter(pipeline.WaitGenerationsPruned, poll.Attempts)
	if doc.Polls == nil {
		doc.Polls = &pipeline.Polls{}
	}
	doc.Polls.GenerationsPruned = poll
	Log(ctx).Info("prune poll", "serving", serving, "generation", doc.Gen(), "committed", doc.Refresh.Committed,
		"ready", poll.Ready, "remaining", len(remaining), "attempts", poll.Attempts, "errors", len(errs))

	if len(errs) > 0 {
		err := fmt.Errorf("generation %d serves; the others are not all removed yet (the next refresh or Teardown removes them): %w",
			serving, errors.Join(errs...))
		if anyRetryable(errs) {
			return doc, &pipeline.RetryableError{Stage: pipeline.PruneGenerations, Err: err}
		}
		return doc, &pipeline.StageError{Stage: pipeline.PruneGenerations, Err: err}
	}
	if !poll.Ready {
		return doc, nil
	}
	if err := s.unlockRun(ctx, doc.RunID, doc.Refresh.ExecutionID); err != nil {
		return doc, err
	}
	doc.Error = nil
	if !doc.Refresh.Committed {
		f := &pipeline.Failure{Stage: pipeline.CommitGeneration, Type: pipeline.ErrStage, Message: "the new generation was not committed"}
		if len(doc.Errors) > 0 {
			f = normaliseErrors(doc.Errors)
		}
		f.Cause = fmt.Sprintf("%s; generation %d still serves, and nothing of generation %d is left", f.Cause, serving, doc.Gen())
		doc.Error = f
	}
	return doc, nil
}

// pruneInstances deregisters, then (once the target group no longer lists them)
// terminates, the run's instances of every generation but serving, and lists in
// words what is still on its way out.
func (s *Stages) pruneInstances(ctx context.Context, runID, tgARN string, serving int) (remaining []string, errs []error) {
	all, err := s.findInstances(ctx, runID, "", allGenerations, notTerminatedStates...)
	if err != nil {
		return nil, []error{err}
	}
	var old []string
	gens := map[string]int{}
	states := map[string]string{}
	for _, in := range all {
		id := aws.ToString(in.InstanceId)
		if g := generationOf(in.Tags); g != serving {
			old = append(old, id)
			gens[id], states[id] = g, stateOf(in)
		}
	}
	if len(old) == 0 {
		return nil, nil
	}
	health, err := s.ELB.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tgARN)})
	if err != nil {
		return nil, []error{fmt.Errorf("describe target health of %s: %w", tgARN, err)}
	}
	listed := map[string]elbtypes.TargetHealthStateEnum{}
	for _, d := range health.TargetHealthDescriptions {
		if d.Target != nil && d.TargetHealth != nil && d.TargetHealth.State != elbtypes.TargetHealthStateEnumUnused {
			listed[aws.ToString(d.Target.Id)] = d.TargetHealth.State
		}
	}
	var deregister []elbtypes.TargetDescription
	var terminate []string
	for _, id := range old {
		state, registered := listed[id]
		switch {
		case registered && state != elbtypes.TargetHealthStateEnumDraining:
			deregister = append(deregister, elbtypes.TargetDescription{Id: aws.String(id)})
			remaining = append(remaining, fmt.Sprintf("target %s (generation %d) deregistering", id, gens[id]))
		case registered:
			remaining = append(remaining, fmt.Sprintf("target %s (generation %d) draining", id, gens[id]))
		case states[id] == "shutting-down":
			remaining = append(remaining, fmt.Sprintf("instance %s (generation %d) shutting-down", id, gens[id]))
		default:
			terminate = append(terminate, id)
		}
	}
	if len(deregister) > 0 {
		_, err := s.ELB.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(tgARN), Targets: deregister})
		if err != nil {
			errs = append(errs, fmt.Errorf("deregister targets of generations other than %d: %w", serving, err))
		} else {
			Log(ctx).Info("deregistered targets", "count", len(deregister), "serving", serving)
		}
	}
	if len(terminate) > 0 {
		after, err := s.terminate(ctx, terminate, "serving", serving)
		if err != nil {
			errs = append(errs, fmt.Errorf("terminate instances %v of generations other than %d: %w", terminate, serving, err))
		}
		for _, id := range terminate {
			if st, ok := after[id]; ok && st != "terminated" {
				remaining = append(remaining, fmt.Sprintf("instance %s (generation %d) %s", id, gens[id], st))
			}
		}
	}
	return remaining, errs
}
