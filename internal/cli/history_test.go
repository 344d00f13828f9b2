package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

const execARN = "arn:aws:states:us-east-1:123456789012:execution:Pipeline:run-1"

// lines runs the history printer over events and returns what it printed, with
// the times and the padding of the name column folded to single spaces.
func lines(t *testing.T, events []types.HistoryEvent) []string {
	t.Helper()
	f := newFakeSFN()
	f.add(execARN, sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded}, events)
	var buf bytes.Buffer
	h := newHistory(f, execARN, &buf, time.UTC)
	if _, err := f.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(execARN)}); err != nil {
		t.Fatal(err)
	}
	if err := h.poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func TestHistoryLines(t *testing.T) {
	const (
		entered   = types.HistoryEventTypeTaskStateEntered
		exited    = types.HistoryEventTypeTaskStateExited
		scheduled = types.HistoryEventTypeTaskScheduled
		started   = types.HistoryEventTypeTaskStarted
		succeeded = types.HistoryEventTypeTaskSucceeded
		failed    = types.HistoryEventTypeTaskFailed
	)
	lambdaCause := `{"errorType":"RetryableError","errorMessage":"LaunchBase: RequestLimitExceeded: slow down"}`
	tests := []struct {
		name   string
		events []ev
		want   []string
	}{
		{
			name: "pass states in order, execution succeeded",
			events: []ev{
				{typ: types.HistoryEventTypeExecutionStarted},
				{typ: types.HistoryEventTypePassStateEntered, name: "Validate", doc: "{}"},
				{typ: types.HistoryEventTypePassStateExited, name: "Validate", doc: "{}", offset: 200 * time.Millisecond},
				{typ: types.HistoryEventTypeWaitStateEntered, name: "WaitABit"},
				{typ: types.HistoryEventTypeWaitStateExited, name: "WaitABit"},
				{typ: types.HistoryEventTypeSucceedStateEntered, name: "Done"},
				{typ: types.HistoryEventTypeExecutionSucceeded, doc: "{}"},
			},
			want: []string{
				"12:00:00 execution started",
				"12:00:01 Validate started",
				"12:00:02 Validate succeeded (1.2s)",
				"12:00:06 execution succeeded (6.0s)",
			},
		},
		{
			name: "a task retried, then succeeded",
			events: []ev{
				{typ: entered, name: "LaunchBase", doc: "{}"},
				{typ: scheduled}, {typ: started},
				{typ: failed, err: "RetryableError", cause: lambdaCause},
				{typ: scheduled}, {typ: started}, {typ: succeeded},
				{typ: exited, name: "LaunchBase", doc: "{}"},
			},
			want: []string{
				"12:00:00 LaunchBase started",
				"12:00:04 LaunchBase retry (RetryableError)",
				"12:00:07 LaunchBase succeeded (7.0s)",
			},
		},
		{
			name: "a task failed, caught, then the execution failed",
			events: []ev{
				{typ: entered, name: "CreateImage", doc: "{}"},
				{typ: scheduled}, {typ: started},
				{typ: failed, err: "StageError", cause: `{"errorType":"StageError","errorMessage":"CreateImage: UnauthorizedOperation: no"}`},
				{typ: exited, name: "CreateImage", doc: `{"errors":{"CreateImage":{"Error":"StageError","Cause":"x"}}}`},
				{typ: entered, name: "Cleanup", doc: "{}"},
				{typ: exited, name: "Cleanup", doc: "{}"},
				{typ: types.HistoryEventTypeFailStateEntered, name: "Failed"},
				{typ: types.HistoryEventTypeExecutionFailed, err: "StageError", cause: "CreateImage failed: StageError: CreateImage: UnauthorizedOperation: no"},
			},
			want: []string{
				"12:00:00 CreateImage started",
				"12:00:04 CreateImage failed: StageError: CreateImage: UnauthorizedOperation: no",
				"12:00:05 Cleanup started",
				"12:00:06 Cleanup succeeded (1.0s)",
				"12:00:08 execution failed: CreateImage failed: StageError: CreateImage: UnauthorizedOperation: no",
			},
		},
		{
			name: "a parallel's branch failed, caught: the error from $.errors",
			events: []ev{
				{typ: types.HistoryEventTypeParallelStateEntered, name: "ImageAndLoadBalancer", doc: "{}"},
				{typ: types.HistoryEventTypeParallelStateFailed},
				{typ: types.HistoryEventTypeParallelStateExited, name: "ImageAndLoadBalancer",
					doc: `{"errors":{"ImageAndLoadBalancer":{"Error":"BranchFailed","Cause":"{\"CreateImage\":{\"Error\":\"ResourceFailedError\",\"Cause\":\"{\\\"errorType\\\":\\\"ResourceFailedError\\\",\\\"errorMessage\\\":\\\"image ami-1 is failed\\\"}\"}}"}}}`},
			},
			want: []string{
				"12:00:00 ImageAndLoadBalancer started",
				"12:00:02 ImageAndLoadBalancer failed: CreateImage: ResourceFailedError: image ami-1 is failed",
			},
		},
		{
			name: "a wait ran out of polls: the Pass state that records it failed",
			events: []ev{
				{typ: types.HistoryEventTypePassStateEntered, name: "BaseStoppedTimedOut", doc: `{"errors":{"Old":{"Error":"x"}}}`},
				{typ: types.HistoryEventTypePassStateExited, name: "BaseStoppedTimedOut",
					doc: `{"errors":{"Old":{"Error":"x"},"BaseStoppedTimedOut":{"Error":"WaitTimedOutError","Cause":"not done after 30 polls (config.poll.maxPolls.baseStopped); last check: {}"}}}`},
			},
			want: []string{
				"12:00:00 BaseStoppedTimedOut started",
				`12:00:01 BaseStoppedTimedOut failed: WaitTimedOutError: not done after 30 polls (config.poll.maxPolls.baseStopped); last check: {}`,
			},
		},
		{
			name: "a check's polls: started once, then each answer",
			events: []ev{
				{typ: entered, name: "CheckImageAvailable", doc: `{"config":{"poll":{"maxPolls":{"imageAvailable":120}}}}`},
				{typ: exited, name: "CheckImageAvailable", doc: `{"config":{"poll":{"maxPolls":{"imageAvailable":120}}},"polls":{"imageAvailable":{"ready":false,"state":"pending","reason":"snapshot 40%","attempts":1}}}`},
				{typ: entered, name: "CheckImageAvailable", doc: `{"polls":{"imageAvailable":{"ready":false,"state":"pending","attempts":1}}}`},
				{typ: exited, name: "CheckImageAvailable", doc: `{"config":{"poll":{"maxPolls":{"imageAvailable":120}}},"polls":{"imageAvailable":{"ready":true,"state":"available","attempts":2}}}`},
			},
			want: []string{
				"12:00:00 CheckImageAvailable started",
				"12:00:01 CheckImageAvailable pending, not ready (poll 1 of 120): snapshot 40% (1.0s)",
				"12:00:03 CheckImageAvailable available, ready (poll 2 of 120) (1.0s)",
			},
		},
		{
			name: "Verify says what it saw",
			events: []ev{
				{typ: entered, name: "Verify", doc: `{"resources":{}}`},
				{typ: exited, name: "Verify", doc: `{"resources":{"verify":{"status":"skipped","reason":"the local cloud has no data plane","requests":0}}}`},
				{typ: entered, name: "Verify", doc: `{"resources":{}}`},
				{typ: exited, name: "Verify", doc: `{"resources":{"verify":{"status":"passed","requests":12,"hostnames":["a","b","c"]}}}`},
			},
			want: []string{
				"12:00:00 Verify started",
				"12:00:01 Verify skipped: the local cloud has no data plane (1.0s)",
				"12:00:03 Verify passed: 12 requests, 3 hostnames (1.0s)",
			},
		},
		{
			name: "a legacy Lambda task failed, not caught",
			events: []ev{
				{typ: entered, name: "Verify", doc: "{}"},
				{typ: types.HistoryEventTypeLambdaFunctionScheduled},
				{typ: types.HistoryEventTypeLambdaFunctionFailed, err: "StageError", cause: `{"errorType":"StageError","errorMessage":"Verify: 3 of 12 requests failed"}`},
				{typ: types.HistoryEventTypeExecutionFailed, err: "StageError", cause: ""},
			},
			want: []string{
				"12:00:00 Verify started",
				"12:00:03 Verify failed: StageError: Verify: 3 of 12 requests failed",
				"12:00:03 execution failed: StageError",
			},
		},
		{
			name: "aborted",
			events: []ev{
				{typ: types.HistoryEventTypeExecutionStarted},
				{typ: types.HistoryEventTypeExecutionAborted, offset: 90 * time.Second},
			},
			want: []string{"12:00:00 execution started", "12:01:31 execution aborted (1m31s)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lines(t, makeHistory(tt.events...))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// The history is read incrementally: every event printed once, in order, and
// after the first read only the newest page is asked for, newest first.
func TestFollowReadsOnlyNewEvents(t *testing.T) {
	events := makeHistory(
		ev{typ: types.HistoryEventTypeExecutionStarted},
		ev{typ: types.HistoryEventTypePassStateEntered, name: "A", doc: "{}"},
		ev{typ: types.HistoryEventTypePassStateExited, name: "A", doc: "{}"},
		ev{typ: types.HistoryEventTypePassStateEntered, name: "B", doc: "{}"},
		ev{typ: types.HistoryEventTypePassStateExited, name: "B", doc: "{}"},
		ev{typ: types.HistoryEventTypePassStateEntered, name: "C", doc: "{}"},
		ev{typ: types.HistoryEventTypePassStateExited, name: "C", doc: "{}"},
		ev{typ: types.HistoryEventTypeExecutionSucceeded, doc: "{}"},
	)
	f := newFakeSFN()
	f.pageSize = 2
	running := types.ExecutionStatusRunning
	f.add(execARN, sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded, StartDate: aws.Time(time.Now())}, events,
		fakeStep{running, 5}, fakeStep{running, 5}, fakeStep{running, 6}, fakeStep{types.ExecutionStatusSucceeded, 8})
	var out bytes.Buffer
	r := &Runner{SFN: f, Stdout: &out, Stderr: &out, PollInterval: time.Millisecond, Location: time.UTC}
	desc, err := r.follow(context.Background(), execARN)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Status != types.ExecutionStatusSucceeded {
		t.Errorf("status %s", desc.Status)
	}
	for _, want := range []string{"A  ", "B  ", "C  "} {
		if n := strings.Count(out.String(), want); n != 2 {
			t.Errorf("%q printed %d times, want 2 (started, succeeded):\n%s", want, n, out.String())
		}
	}
	if a, c := strings.Index(out.String(), "A  "), strings.Index(out.String(), "C  "); a > c {
		t.Errorf("out of order:\n%s", out.String())
	}

	// First read: 5 events in pages of 2 = 3 requests. Second poll: nothing new,
	// one request whose first page holds a seen event. Third: 1 new event, one
	// request. Fourth: 2 new events, the first page is all new, then one more.
	var tokens []string
	for _, h := range f.histories {
		if !h.ReverseOrder {
			t.Errorf("history read in forward order: %+v", h)
		}
		if !aws.ToBool(h.IncludeExecutionData) {
			t.Errorf("history read without execution data")
		}
		tokens = append(tokens, aws.ToString(h.NextToken))
	}
	want := []string{"", "2", "4", "", "", "", "2"}
	if strings.Join(tokens, ",") != strings.Join(want, ",") {
		t.Errorf("history requests' tokens %q, want %q", tokens, want)
	}
	if f.histories[0].MaxResults != firstPageSize || f.histories[3].MaxResults != nextPageSize {
		t.Errorf("page sizes %d then %d, want %d then %d", f.histories[0].MaxResults, f.histories[3].MaxResults, firstPageSize, nextPageSize)
	}
}

func TestDescribeFailure(t *testing.T) {
	tests := []struct{ err, cause, want string }{
		{"States.Timeout", "", "States.Timeout"},
		{"StageError", "CreateImage failed: StageError: boom", "CreateImage failed: StageError: boom"},
		{"Lambda.Unknown", `{"errorType":"BadInputError","errorMessage":"bad input: replicaCount: too many"}`, "BadInputError: bad input: replicaCount: too many"},
		{"States.TaskFailed", "line one\nline two", "States.TaskFailed: line one"},
		{"BranchFailed", `{"LaunchBase":{"Error":"StageError","Cause":"no subnet"}}`, "LaunchBase: StageError: no subnet"},
	}
	for _, tt := range tests {
		if got := describeFailure(tt.err, tt.cause); got != tt.want {
			t.Errorf("describeFailure(%q, %q) = %q, want %q", tt.err, tt.cause, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3200 * time.Millisecond:  "3.2s",
		-time.Second:             "0.0s",
		61500 * time.Millisecond: "1m2s",
		2 * time.Hour:            "2h0m0s",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%s) = %q, want %q", d, got, want)
		}
	}
}
