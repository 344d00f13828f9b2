package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

const keptTeardown = "teardown-ci-1-ttl-0123456789abcdef0123456789abcdef01234567"

// keptRun registers a failed run that kept its resources, and (unless teardown is
// "") its Teardown, started at 12:00:05 with a delay of 180 minutes.
func keptRun(f *fakeSFN, teardownStatus types.ExecutionStatus) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	doc := `{"runId":"ci-1","config":{"keepOnFailure":true,"teardownAfterMinutes":180},"resources":{"fleet":{"instanceIds":["i-1","i-2"]}},` +
		`"error":{"stage":"Verify","type":"StageError","message":"no answer","cause":"Verify failed: StageError: no answer (resources kept)"},` +
		`"kept":{"teardown":"` + keptTeardown + `","teardownAfterMinutes":180,"teardownAt":"2026-11-27T15:00:09Z",` +
		`"resources":["security group sg-1 (amifleet-ci-1-sg-alb)","instance i-1 (base, running)","instance i-2 (replica, running)"]}}`
	events := makeHistory(
		ev{typ: types.HistoryEventTypeExecutionStarted},
		ev{typ: types.HistoryEventTypeTaskStateEntered, name: "Cleanup", doc: doc},
		ev{typ: types.HistoryEventTypeTaskStateExited, name: "Cleanup", doc: doc},
		ev{typ: types.HistoryEventTypeChoiceStateEntered, name: "CleanupDone?", doc: doc},
		ev{typ: types.HistoryEventTypeChoiceStateExited, name: "CleanupDone?", doc: doc},
		ev{typ: types.HistoryEventTypeFailStateEntered, name: keptState, doc: doc},
		ev{typ: types.HistoryEventTypeExecutionFailed, err: "StageError", cause: "Verify failed: StageError: no answer (resources kept)"},
	)
	f.add(executionARN(testPipelineARN, "ci-1"), sfn.DescribeExecutionOutput{Status: types.ExecutionStatusFailed, StartDate: &start, StopDate: aws.Time(start.Add(10 * time.Second)),
		Input: aws.String(`{"keepOnFailure":true}`), Error: aws.String("StageError"), Cause: aws.String("Verify failed: StageError: no answer (resources kept)")}, events)
	if teardownStatus != "" {
		f.add(executionARN(testTeardownARN, keptTeardown), sfn.DescribeExecutionOutput{Status: teardownStatus,
			StartDate: aws.Time(start.Add(5 * time.Second)), Input: aws.String(`{"runId":"ci-1","delaySeconds":10800}`)}, nil)
	}
}

func TestStatusListsKeptResources(t *testing.T) {
	f := newFakeSFN()
	keptRun(f, types.ExecutionStatusRunning)
	r, stdout, _ := newRunner(f, FormatText)
	if err := r.Status(context.Background(), "ci-1"); ExitCode(err) != ExitFailed {
		t.Fatalf("exit %d (%v); want %d", ExitCode(err), err, ExitFailed)
	}
	out := stdout.String()
	for _, want := range []string{
		"kept        3 resources with the tag amifleet:run-id=ci-1",
		"instance i-2 (replica, running)",
		"security group sg-1",
		// The Teardown's own start plus its delay, not Cleanup's estimate; the runner's clock is 13:00.
		"deleted at  2026-11-27 15:00:05 UTC (in 2h0m5s) by " + keptTeardown + ", running",
		"delete now  amifleet teardown --run-id ci-1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusJSONHasKeptResources(t *testing.T) {
	f := newFakeSFN()
	keptRun(f, types.ExecutionStatusSucceeded)
	r, stdout, _ := newRunner(f, FormatJSON)
	_ = r.Status(context.Background(), "ci-1")
	var res Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	k := res.Kept
	if k == nil || len(k.Resources) != 3 || k.Teardown != keptTeardown || k.TeardownStatus != "SUCCEEDED" || k.TeardownAfterMinutes != 180 {
		t.Fatalf("kept = %+v; want 3 resources, %s SUCCEEDED after 180 minutes", k, keptTeardown)
	}
	if want := time.Date(2026, 11, 27, 15, 0, 5, 0, time.UTC); k.TeardownAt == nil || !k.TeardownAt.Equal(want) {
		t.Errorf("teardownAt %v; want %v", k.TeardownAt, want)
	}
	if res.Resources == nil || res.Resources.Fleet == nil {
		t.Errorf("resources %+v; want the failed run's document's", res.Resources)
	}
}

func TestWatchOfAKeptRunWithoutItsTeardown(t *testing.T) {
	f := newFakeSFN()
	keptRun(f, "")
	r, stdout, stderr := newRunner(f, FormatJSON)
	if err := r.Watch(context.Background(), "ci-1", time.Minute); ExitCode(err) != ExitFailed {
		t.Fatalf("exit %d (%v); want %d", ExitCode(err), err, ExitFailed)
	}
	if !strings.Contains(stderr.String(), "instance i-1 (base, running)") {
		t.Errorf("watch's summary lacks the kept instance:\n%s", stderr.String())
	}
	var res Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if res.Kept == nil || res.Kept.TeardownStatus != "NOT FOUND" {
		t.Fatalf("kept %+v; want its Teardown NOT FOUND", res.Kept)
	}
	// Cleanup's estimate stands when the Teardown cannot be read.
	if want := time.Date(2026, 11, 27, 15, 0, 9, 0, time.UTC); !res.Kept.TeardownAt.Equal(want) {
		t.Errorf("teardownAt %v; want %v", res.Kept.TeardownAt, want)
	}
}

func TestFailedRunNotKeptHasNoKept(t *testing.T) {
	f := newFakeSFN()
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.add(executionARN(testPipelineARN, "ci-1"), sfn.DescribeExecutionOutput{Status: types.ExecutionStatusFailed, StartDate: &start, StopDate: &start,
		Error: aws.String("StageError"), Cause: aws.String("Verify failed: StageError: x")},
		makeHistory(ev{typ: types.HistoryEventTypeExecutionStarted}, ev{typ: types.HistoryEventTypeFailStateEntered, name: "Failed", doc: `{"runId":"ci-1"}`}))
	r, stdout, _ := newRunner(f, FormatText)
	_ = r.Status(context.Background(), "ci-1")
	if strings.Contains(stdout.String(), "kept") {
		t.Errorf("a run cleaned up says kept:\n%s", stdout.String())
	}
}
