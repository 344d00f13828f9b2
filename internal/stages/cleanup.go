package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Cleanup poll states.
const (
	cleanupDeleting = "deleting"
	cleanupDeleted  = "deleted"
	// cleanupSettling is a first clean look; the next one, if clean too, is done.
	cleanupSettling = "settling"
)

// Bounds of what Cleanup writes into the document, which Step Functions caps at
// 256 KB and a Fail state's cause at 32 KB.
const (
	maxFailureMessage = 8 << 10
	maxCleanupReason  = 1000
)

// Cleanup deletes everything the run created, found by its run tag, in reverse
// pipeline order: listeners, load balancer and target group; replicas; the AMI and
// its snapshots; the base instance; and, once nothing that uses them remains, the
// security groups. It never waits: the state machine calls it in a Wait loop until
// polls.cleanup.ready. It also turns the errors that the Catch rules recorded
// (doc.errors) into doc.error, which the final Fail state reports. A failed run
// marked kept (doc.kept, for config.keepOnFailure) is only recorded and listed,
// never deleted: see keep.
//
// It runs both at the end of a failed Pipeline and alone in Teardown, whose input
// is only {runId}: a document without config gets the defaults, so that the
// Teardown's Wait and Choice have an interval and a bound to read.
func (s *Stages) Cleanup(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	// The run id selects what is deleted: anything but a well-formed one (an empty
	// id above all) must never reach a tag filter.
	if err := refuseBadRunID(doc.RunID); err != nil {
		return doc, err
	}
	if doc.Config.Poll.IntervalSeconds == 0 {
		doc.Config = pipeline.DefaultConfig()
	}
	if doc.Kept != nil {
		return s.keep(ctx, doc)
	}
	if doc.Error == nil && len(doc.Errors) > 0 {
		doc.Error = normaliseErrors(doc.Errors)
	}
	// First of all (on the first poll), no refresh may start on a run on its way out.
	if doc.Polls.Of(pipeline.WaitCleanupDone) == nil {
		if err := s.endRun(ctx, doc.RunID, false); err != nil {
			return doc, &pipeline.RetryableError{Stage: pipeline.Cleanup, Err: err}
		}
	}

	undos := []struct {
		what string
		undo func(context.Context, string) ([]string, error)
	}{
		{"load balancer", s.undoLoadBalancer},
		{"replicas", s.undoReplicas},
		{"image", s.undoImage},
		{"base instance", s.undoBase},
	}
	var (
		remaining []string
		errs      []error
	)
	for _, u := range undos {
		left, err := u.undo(ctx, doc.RunID)
		remaining = append(remaining, left...)
		if err != nil {
			// The other undos still run: whatever they can delete now is less to
			// wait for on the next poll.
			errs = append(errs, fmt.Errorf("%s: %w", u.what, err))
		}
	}
	// Security groups are deleted last: an instance, a load balancer or the other
	// group's rule that still uses one answers DependencyViolation.
	if len(remaining) == 0 && len(errs) == 0 {
		left, err := s.undoSecurityGroups(ctx, doc.RunID)
		remaining = append(remaining, left...)
		if err != nil {
			errs = append(errs, fmt.Errorf("security groups: %w", err))
		}
	}

	prev := doc.Polls.Of(pipeline.WaitCleanupDone)
	poll := &pipeline.PollResult{
		State:    cleanupDeleting,
		Reason:   cleanupReason(remaining),
		Attempts: attemptAfter(prev),
	}
	if len(remaining) == 0 && len(errs) == 0 {
		span := time.Duration(0)
		if branchStopped(doc.Errors) {
			span = s.createTimeout()
		}
		s.settle(prev, poll, span)
	}
	if poll.Ready {
		// Last, the run's record: the run is gone.
		if err := s.endRun(ctx, doc.RunID, true); err != nil {
			errs = append(errs, err)
			poll.Ready, poll.State = false, cleanupSettling
		}
	}
	poll.WaitSeconds = doc.Config.Poll.WaitAfter(pipeline.WaitCleanupDone, poll.Attempts)
	if doc.Polls == nil {
		doc.Polls = &pipeline.Polls{}
	}
	doc.Polls.CleanupDone = poll
	Log(ctx).Info("cleanup poll", "ready", poll.Ready, "remaining", len(remaining), "attempts", poll.Attempts, "errors", len(errs))

	if len(errs) > 0 {
		err := errors.Join(errs...)
		if anyRetryable(errs) {
			return doc, &pipeline.RetryableError{Stage: pipeline.Cleanup, Err: err}
		}
		return doc, &pipeline.StageError{Stage: pipeline.Cleanup, Err: err}
	}
	return doc, nil
}

// refuseBadRunID accepts only a run id of the form RunIDFromExecutionName makes,
// the name's own (demo) or derived (demo-x8a2cc067).
func refuseBadRunID(runID string) error {
	if !pipeline.IsRunID(runID) {
		return &pipeline.BadInputError{Field: "runId", Message: fmt.Sprintf(
			"%q is not a run id (%s)", runID, pipeline.RunIDForm)}
	}
	return nil
}

// settle answers a clean look (nothing left, no error), span after the first clean
// look in a row (see below). Cleanup is done only after
// two clean looks in a row, far enough apart for whatever may still be created: when
// a Parallel branch fails, Step Functions stops the other branch, but a Lambda it had
// already invoked (LaunchBase in the middle of RunInstances) runs to its end, up to
// s.CreateTimeout (the stack's create timeout), and may create something after a look listed the
// run. So after a stopped branch the two looks are that far apart; otherwise one poll
// interval apart (nothing else of the run is running). The looks in between only
// wait: they do not count as attempts, so config.poll.maxPolls.cleanupDone bounds
// the deleting, not this wait.
func (s *Stages) settle(prev, poll *pipeline.PollResult, span time.Duration) {
	now := s.clock().UTC()
	since := now
	cleanBefore := prev != nil && (prev.State == cleanupSettling || prev.State == cleanupDeleted)
	if cleanBefore && prev.CleanSince != nil {
		since = *prev.CleanSince
	}
	poll.CleanSince = &since
	switch {
	case cleanBefore && now.Sub(since) >= span:
		poll.Ready, poll.State = true, cleanupDeleted
	case cleanBefore:
		poll.State, poll.Attempts = cleanupSettling, prev.Attempts
		poll.Reason = fmt.Sprintf("nothing left since %s; looking again until %s, when a create still in flight "+
			"in the stopped branch has ended", since.Format(time.RFC3339), since.Add(span).Format(time.RFC3339))
	default:
		poll.State = cleanupSettling
		poll.Reason = "nothing left; one more look after a poll interval, for a create still in flight"
		if span > 0 {
			poll.Reason = fmt.Sprintf("nothing left; looking again until %s (%d s, the longest create's timeout), "+
				"for a create still in flight in the stopped branch", since.Add(span).Format(time.RFC3339), int(span.Seconds()))
		}
	}
}

// branchStopped reports whether the run failed in a Parallel state, whose other
// branch Step Functions then stopped.
func branchStopped(errs map[string]pipeline.CaughtError) bool {
	for _, e := range errs {
		if e.Error == branchFailed {
			return true
		}
	}
	return false
}

func anyRetryable(errs []error) bool {
	for _, err := range errs {
		var retry *pipeline.RetryableError
		if errors.As(err, &retry) || IsRetryable(err) {
			return true
		}
	}
	return false
}

// cleanupReason lists what is still being deleted, within maxCleanupReason.
func cleanupReason(remaining []string) string {
	if len(remaining) == 0 {
		return "nothing with the run tag remains"
	}
	var b strings.Builder
	b.WriteString("waiting for: ")
	for i, r := range remaining {
		sep := ""
		if i > 0 {
			sep = "; "
		}
		more := fmt.Sprintf("; and %d more", len(remaining)-i)
		if b.Len()+len(sep)+len(r)+len(more) > maxCleanupReason && i > 0 {
			b.WriteString(more)
			break
		}
		b.WriteString(sep + r)
	}
	return truncateUTF8(b.String(), maxCleanupReason)
}

// normaliseErrors turns what the Catch rules recorded, one entry per failed state,
// into the run's one failure. A Parallel branch reports its own doc.errors as the
// cause of a "BranchFailed" error, which is unwrapped to the state that really
// failed. When several states failed (rare: both branches of the Parallel), the
// choice is stable: the first by name, Cleanup's own entry last.
func normaliseErrors(errs map[string]pipeline.CaughtError) *pipeline.Failure {
	stage, caught := firstCaught(errs)
	for depth := 0; caught.Error == branchFailed && depth < 4; depth++ {
		var inner map[string]pipeline.CaughtError
		if json.Unmarshal([]byte(caught.Cause), &inner) != nil || len(inner) == 0 {
			break // not what a branch's Fail state writes: report it as it is
		}
		stage, caught = firstCaught(inner)
	}
	f := &pipeline.Failure{Stage: stage, Type: caught.Error, Message: causeMessage(caught.Cause)}
	if f.Type == "" {
		f.Type = "UnknownError"
	}
	// A stage's own errors start with its name, which Stage already says.
	f.Message = truncateUTF8(strings.TrimPrefix(f.Message, stage+": "), maxFailureMessage)
	f.Cause = fmt.Sprintf("%s failed: %s: %s", f.Stage, f.Type, f.Message)
	return f
}

// branchFailed is the Error of the Fail state that ends a failed Parallel branch,
// with the branch's doc.errors as its cause.
const branchFailed = "BranchFailed"

func firstCaught(errs map[string]pipeline.CaughtError) (string, pipeline.CaughtError) {
	names := make([]string, 0, len(errs))
	for name := range errs {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if last(names[i]) != last(names[j]) {
			return last(names[j])
		}
		return names[i] < names[j]
	})
	return names[0], errs[names[0]]
}

// last reports whether a state's error comes after the stage's own: Cleanup's,
// and that of the start of a kept run's Teardown.
func last(state string) bool {
	return state == pipeline.Cleanup || state == scheduleKeptTeardown
}

// scheduleKeptTeardown is the Pipeline state that starts the Teardown of a failed
// run whose resources are kept.
const scheduleKeptTeardown = "ScheduleKeptTeardown"

// causeMessage is the message in a Catch's cause: a Lambda error's cause is JSON
// {"errorType","errorMessage",...}; a Pass state's or the service's is plain text.
func causeMessage(cause string) string {
	if e, ok := pipeline.ParseLambdaError([]byte(cause)); ok {
		return e.ErrorMessage
	}
	return cause
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
