package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Page sizes of GetExecutionHistory: the first read takes the history in big
// pages; later reads want only the few newest events, newest first.
const (
	firstPageSize = 1000
	nextPageSize  = 100
)

// history reads an execution's history incrementally and prints, for people, the
// stages as they start, succeed, retry or fail.
type history struct {
	sfn SFN
	arn string
	w   io.Writer
	loc *time.Location
	// jsonl writes each line as a JSON object ({"type":"event",...}), for machines.
	jsonl bool

	lastID int64
	// names maps an event to the state it belongs to: entered and exited events
	// name their state, and every other event follows previousEventId back to one.
	names   map[int64]string
	entered map[string]time.Time
	entries map[string]int
	// input is the document a state was entered with, to tell what it changed.
	input map[string]string
	// pending is a task's failure not yet resolved: a retry if the task is
	// scheduled again, a failure if the state exits (caught) or the execution fails.
	pending map[string]failure
	started time.Time
}

type failure struct{ err, cause string }

func newHistory(client SFN, arn string, w io.Writer, loc *time.Location) *history {
	return &history{
		sfn: client, arn: arn, w: w, loc: loc,
		names: map[int64]string{}, entered: map[string]time.Time{}, entries: map[string]int{},
		input: map[string]string{}, pending: map[string]failure{},
	}
}

// poll prints the events that arrived since the last poll.
func (h *history) poll(ctx context.Context) error {
	events, err := h.newEvents(ctx)
	if err != nil {
		return err
	}
	for _, e := range events {
		h.handle(e)
		h.lastID = e.Id
	}
	return nil
}

// newEvents reads the history newest first, page by page, until it reaches an
// event it has seen: one small page per poll however long the history grows.
// (Sorting by id keeps this right with an emulator that ignores reverseOrder.)
func (h *history) newEvents(ctx context.Context) ([]types.HistoryEvent, error) {
	size := int32(nextPageSize)
	if h.lastID == 0 {
		size = firstPageSize
	}
	var (
		events []types.HistoryEvent
		seen   = map[int64]bool{}
		token  *string
	)
	for {
		out, err := h.sfn.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{
			ExecutionArn:         aws.String(h.arn),
			ReverseOrder:         true,
			MaxResults:           size,
			NextToken:            token,
			IncludeExecutionData: aws.Bool(true),
		})
		if err != nil {
			return nil, fmt.Errorf("read the history of %s: %w", executionName(h.arn), err)
		}
		reached := false
		for _, e := range out.Events {
			if e.Id <= h.lastID {
				reached = true
				continue
			}
			if !seen[e.Id] {
				seen[e.Id] = true
				events = append(events, e)
			}
		}
		if reached || out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Id < events[j].Id })
	return events, nil
}

// shownStates are the state types whose entry and exit are printed. Wait and
// Choice states only pace and steer the poll loops, whose checks are shown.
var shownStates = []string{"Task", "Pass", "Parallel", "Map"}

func stateType(t types.HistoryEventType, suffix string) (string, bool) {
	s, ok := strings.CutSuffix(string(t), suffix)
	if !ok {
		return "", false
	}
	for _, shown := range shownStates {
		if s == shown {
			return s, true
		}
	}
	return "", false
}

func (h *history) handle(e types.HistoryEvent) {
	name := h.names[e.PreviousEventId]
	switch {
	case e.StateEnteredEventDetails != nil:
		name = aws.ToString(e.StateEnteredEventDetails.Name)
	case e.StateExitedEventDetails != nil:
		name = aws.ToString(e.StateExitedEventDetails.Name)
	}
	h.names[e.Id] = name
	at := aws.ToTime(e.Timestamp)

	switch t := e.Type; t {
	case types.HistoryEventTypeExecutionStarted:
		h.started = at
		h.line(at, "execution", "started")
	case types.HistoryEventTypeExecutionSucceeded:
		h.line(at, "execution", "succeeded"+h.total(at))
	case types.HistoryEventTypeExecutionFailed:
		h.flush(at)
		msg := "failed"
		if d := e.ExecutionFailedEventDetails; d != nil {
			msg += ": " + describeFailure(aws.ToString(d.Error), aws.ToString(d.Cause))
		}
		h.line(at, "execution", msg)
	case types.HistoryEventTypeExecutionAborted:
		h.flush(at)
		h.line(at, "execution", "aborted"+h.total(at))
	case types.HistoryEventTypeExecutionTimedOut:
		h.flush(at)
		h.line(at, "execution", "timed out (the state machine's TimeoutSeconds)"+h.total(at))

	case types.HistoryEventTypeTaskScheduled, types.HistoryEventTypeLambdaFunctionScheduled:
		if f, ok := h.pending[name]; ok {
			delete(h.pending, name)
			h.line(at, name, "retry ("+f.err+")")
		}
	case types.HistoryEventTypeTaskFailed, types.HistoryEventTypeTaskTimedOut,
		types.HistoryEventTypeTaskStartFailed, types.HistoryEventTypeTaskSubmitFailed,
		types.HistoryEventTypeLambdaFunctionFailed, types.HistoryEventTypeLambdaFunctionTimedOut,
		types.HistoryEventTypeLambdaFunctionStartFailed, types.HistoryEventTypeLambdaFunctionScheduleFailed:
		h.pending[name] = taskFailure(e)

	default:
		if _, ok := stateType(t, "StateEntered"); ok {
			h.entered[name] = at
			h.entries[name]++
			h.input[name] = aws.ToString(e.StateEnteredEventDetails.Input)
			// A state entered again (a poll loop's check) shows only its exits.
			if h.entries[name] == 1 {
				h.line(at, name, "started")
			}
			return
		}
		if _, ok := stateType(t, "StateExited"); ok {
			h.line(at, name, h.exited(name, at, aws.ToString(e.StateExitedEventDetails.Output)))
		}
	}
}

// exited says how a state ended: failed (a failure then a Catch), a poll's
// answer for the check states, or succeeded, with the time it took.
func (h *history) exited(name string, at time.Time, output string) string {
	took := " (" + duration(at.Sub(h.entered[name])) + ")"
	if f, ok := h.pending[name]; ok {
		delete(h.pending, name)
		return "failed: " + describeFailure(f.err, f.cause)
	}
	// The pipeline's Catch rules, and a wait's timed-out Pass state, write the error
	// at $.errors.<their own state name>: this state's line says it.
	if c, ok := newError(name, h.input[name], output); ok {
		return "failed: " + describeFailure(c.Error, c.Cause)
	}
	if p := pollAnswer(name, h.input[name], output); p != "" {
		return p + took
	}
	if v := verifyAnswer(h.input[name], output); v != "" {
		return v + took
	}
	return "succeeded" + took
}

// flush prints the failures still pending when the execution ends: a task that
// failed and was neither retried nor caught.
func (h *history) flush(at time.Time) {
	for _, n := range slices.Sorted(maps.Keys(h.pending)) {
		f := h.pending[n]
		h.line(at, n, "failed: "+describeFailure(f.err, f.cause))
		delete(h.pending, n)
	}
}

func (h *history) total(at time.Time) string {
	if h.started.IsZero() {
		return ""
	}
	return " (" + duration(at.Sub(h.started)) + ")"
}

func (h *history) line(at time.Time, name, msg string) {
	if h.jsonl {
		b, _ := json.Marshal(struct {
			Type    string    `json:"type"`
			Time    time.Time `json:"time"`
			State   string    `json:"state"`
			Message string    `json:"message"`
		}{"event", at.UTC(), name, msg}) // cannot fail
		fmt.Fprintf(h.w, "%s\n", b)
		return
	}
	fmt.Fprintf(h.w, "%s  %-25s  %s\n", at.In(h.loc).Format("15:04:05"), name, msg)
}

func taskFailure(e types.HistoryEvent) failure {
	var f failure
	switch {
	case e.TaskFailedEventDetails != nil:
		f = failure{aws.ToString(e.TaskFailedEventDetails.Error), aws.ToString(e.TaskFailedEventDetails.Cause)}
	case e.TaskTimedOutEventDetails != nil:
		f = failure{aws.ToString(e.TaskTimedOutEventDetails.Error), aws.ToString(e.TaskTimedOutEventDetails.Cause)}
	case e.TaskStartFailedEventDetails != nil:
		f = failure{aws.ToString(e.TaskStartFailedEventDetails.Error), aws.ToString(e.TaskStartFailedEventDetails.Cause)}
	case e.TaskSubmitFailedEventDetails != nil:
		f = failure{aws.ToString(e.TaskSubmitFailedEventDetails.Error), aws.ToString(e.TaskSubmitFailedEventDetails.Cause)}
	case e.LambdaFunctionFailedEventDetails != nil:
		f = failure{aws.ToString(e.LambdaFunctionFailedEventDetails.Error), aws.ToString(e.LambdaFunctionFailedEventDetails.Cause)}
	case e.LambdaFunctionTimedOutEventDetails != nil:
		f = failure{aws.ToString(e.LambdaFunctionTimedOutEventDetails.Error), aws.ToString(e.LambdaFunctionTimedOutEventDetails.Cause)}
	case e.LambdaFunctionStartFailedEventDetails != nil:
		f = failure{aws.ToString(e.LambdaFunctionStartFailedEventDetails.Error), aws.ToString(e.LambdaFunctionStartFailedEventDetails.Cause)}
	case e.LambdaFunctionScheduleFailedEventDetails != nil:
		f = failure{aws.ToString(e.LambdaFunctionScheduleFailedEventDetails.Error), aws.ToString(e.LambdaFunctionScheduleFailedEventDetails.Cause)}
	}
	if f.err == "" {
		f.err = strings.TrimSuffix(string(e.Type), "Failed")
	}
	return f
}

// newError is the error that the state added to the document at $.errors.<state>.
func newError(state, input, output string) (pipeline.CaughtError, bool) {
	type errorsOnly struct {
		Errors map[string]pipeline.CaughtError `json:"errors"`
	}
	var in, out errorsOnly
	if output == "" || json.Unmarshal([]byte(output), &out) != nil {
		return pipeline.CaughtError{}, false
	}
	_ = json.Unmarshal([]byte(input), &in) // no input: every error is new
	c, added := out.Errors[state]
	if _, had := in.Errors[state]; had || !added {
		return pipeline.CaughtError{}, false
	}
	return c, true
}

// pollAnswer describes the answer of a wait's check state (pipeline.WaitOf): "pending,
// not ready (poll 3 of 120): image ami-1 is pending". Empty when the state is not a
// check, or its answer did not change the poll.
func pollAnswer(state, input, output string) string {
	w, ok := pipeline.WaitOf(state)
	if !ok {
		return ""
	}
	var in, out pipeline.Document
	if json.Unmarshal([]byte(output), &out) != nil {
		return ""
	}
	_ = json.Unmarshal([]byte(input), &in)
	p, before := out.Polls.Of(w.Name), in.Polls.Of(w.Name)
	if p == nil || (before != nil && before.Attempts == p.Attempts) {
		return ""
	}
	ready := "not ready"
	if p.Ready {
		ready = "ready"
	}
	s := ""
	if p.State != "" {
		s += p.State + ", "
	}
	s += ready + " (poll " + fmt.Sprint(p.Attempts)
	if max := out.Config.Poll.MaxPolls.Of(w.Name); max > 0 {
		s += fmt.Sprintf(" of %d", max)
	}
	s += ")"
	if !p.Ready && p.Reason != "" {
		s += ": " + firstLine(p.Reason)
	}
	return s
}

// verifyAnswer says what Verify saw, when the state added resources.verify:
// "passed: 12 requests, 3 hostnames", or "skipped: <reason>".
func verifyAnswer(input, output string) string {
	var in, out pipeline.Document
	if json.Unmarshal([]byte(output), &out) != nil || out.Resources.Verify == nil {
		return ""
	}
	if json.Unmarshal([]byte(input), &in) == nil && in.Resources.Verify != nil {
		return ""
	}
	v := out.Resources.Verify
	switch {
	case v.Reason != "":
		return v.Status + ": " + firstLine(v.Reason)
	case v.Status == pipeline.VerifyPassed:
		return fmt.Sprintf("%s: %d requests, %d hostnames", v.Status, v.Requests, len(v.Hostnames))
	}
	return v.Status
}

// describeFailure makes one line of a Step Functions error and cause. A Lambda's
// cause is JSON {"errorType","errorMessage"}; a Parallel branch's (BranchFailed)
// is the branch's $.errors as JSON; both are unwrapped to their messages.
func describeFailure(errName, cause string) string {
	cause = strings.TrimSpace(cause)
	if lambdaErr, ok := pipeline.ParseLambdaError([]byte(cause)); ok && lambdaErr.ErrorMessage != "" {
		if lambdaErr.ErrorType != "" {
			errName = lambdaErr.ErrorType
		}
		cause = lambdaErr.ErrorMessage
	} else {
		var branch map[string]pipeline.CaughtError
		if json.Unmarshal([]byte(cause), &branch) == nil && len(branch) > 0 {
			var parts []string
			for _, n := range slices.Sorted(maps.Keys(branch)) {
				parts = append(parts, n+": "+describeFailure(branch[n].Error, branch[n].Cause))
			}
			return strings.Join(parts, "; ")
		}
	}
	switch {
	case cause == "":
		return errName
	case errName == "" || strings.Contains(cause, errName):
		return firstLine(cause)
	}
	return errName + ": " + firstLine(cause)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// duration is d for people: 3.2s under a minute, 4m12s above.
func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
