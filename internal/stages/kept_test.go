package stages

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// A failed run marked kept: Cleanup records the failure and lists the run's
// resources, and deletes nothing; the same run without the mark is deleted.
func TestCleanupKeepsAKeptRun(t *testing.T) {
	c := newFakeCloud(t)
	doc := buildFleet(t, c, "run-1")
	before := c.tagged("run-1")
	doc.Errors = map[string]pipeline.CaughtError{
		"Verify": {Error: "StageError", Cause: lambdaCause("StageError", "Verify: 3 of 12 requests failed")},
	}
	doc.Kept = &pipeline.Kept{Teardown: "teardown-run-1-ttl-abc", TeardownAfterMinutes: 180}
	start := c.mark()
	doc, err := c.stages().Cleanup(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.methodsSince(start) {
		if !strings.HasPrefix(m, "Describe") {
			t.Errorf("a kept run's Cleanup called %s; want reads only", m)
		}
	}
	if after := c.tagged("run-1"); !slices.Equal(after, before) {
		t.Errorf("tagged after %v; want %v (nothing deleted)", after, before)
	}
	p := doc.Polls.CleanupDone
	if p == nil || !p.Ready || p.State != cleanupKept {
		t.Fatalf("poll %+v; want ready, state %q", p, cleanupKept)
	}
	if doc.Error == nil || doc.Error.Stage != "Verify" || doc.Error.Type != "StageError" {
		t.Fatalf("error %+v; want Verify's StageError", doc.Error)
	}
	at := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC) // the fake clock plus 180 minutes
	if doc.Kept.TeardownAt == nil || !doc.Kept.TeardownAt.Equal(at) {
		t.Errorf("teardownAt %v; want %v", doc.Kept.TeardownAt, at)
	}
	for _, want := range []string{"Verify failed: StageError: 3 of 12 requests failed", "resources kept", "teardown-run-1-ttl-abc", "2026-11-27T15:00:00Z", "runId run-1"} {
		if !strings.Contains(doc.Error.Cause, want) {
			t.Errorf("cause %q does not say %q", doc.Error.Cause, want)
		}
	}
	// Every instance, image, load balancer, target group and security group of the
	// fleet is listed, by the ids the fake knows them by.
	listed := strings.Join(doc.Kept.Resources, "\n")
	for id := range idsOf(before) {
		if strings.HasPrefix(id, "snap-") || strings.Contains(id, ":listener/") {
			continue // snapshots go with their image, the listener with its load balancer
		}
		if !strings.Contains(listed, id) {
			t.Errorf("kept resources %q lack %s", doc.Kept.Resources, id)
		}
	}

	// A second poll answers the same (Step Functions may retry the call).
	again, err := c.stages().Cleanup(context.Background(), doc)
	if err != nil || !again.Polls.CleanupDone.Ready || !again.Kept.TeardownAt.Equal(at) {
		t.Fatalf("second call: %v, %+v", err, again.Kept)
	}

	// Teardown's document never carries the mark: it deletes.
	cleanupUntilReady(t, c, pipeline.Document{RunID: "run-1", Config: doc.Config})
	if left := c.tagged("run-1"); len(left) != 0 {
		t.Errorf("left with the run tag after Teardown: %v", left)
	}
}

// The failure of the kept run's Teardown start comes after the stage's own.
func TestCleanupReportsTheStageBeforeScheduleKeptTeardown(t *testing.T) {
	f := normaliseErrors(map[string]pipeline.CaughtError{
		scheduleKeptTeardown: {Error: "States.TaskFailed", Cause: "access denied"},
		"Verify":             {Error: "StageError", Cause: lambdaCause("StageError", "Verify: no answer")},
	})
	if f.Stage != "Verify" || f.Type != "StageError" {
		t.Errorf("failure %+v; want Verify's StageError", f)
	}
}
