package cli

import (
	"context"
	"encoding/json"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

// Runs reads the runs table: what serves now.
type Runs = stages.RunReader

// Refresh starts the Refresh state machine for a live run, with input (JSON, may be
// empty) whose runId, if it has one, must be runID; with wait it follows the
// refresh to its end. Bad input exits 2, naming the field, and starts nothing.
func (r *Runner) Refresh(ctx context.Context, runID string, input []byte, wait bool, timeout time.Duration) error {
	if err := CheckRunID(runID); err != nil {
		return err
	}
	fields := map[string]json.RawMessage{}
	if len(input) > 0 {
		if err := json.Unmarshal(input, &fields); err != nil {
			return exitf(ExitUsage, "refresh input: %v", err)
		}
	}
	if given, ok := fields["runId"]; ok {
		var id string
		if json.Unmarshal(given, &id) != nil || id != runID {
			return exitf(ExitUsage, "refresh input: runId %s is not --run-id %q", given, runID)
		}
	}
	fields["runId"], _ = json.Marshal(runID) // a string always encodes
	body, _ := json.Marshal(fields)          // raw messages from a parsed object encode again
	if _, err := pipeline.ParseRefreshInput(body); err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	sm, err := r.Machines.Refresh(ctx)
	if err != nil {
		return err
	}
	name := pipeline.RefreshExecutionName(runID, r.now())
	return r.startAndFollow(ctx, sm, name, runID, string(body), wait, timeout)
}

// addServing sets what serves now from the run's record, where there is one: a
// refresh after this execution may have replaced the generation it built.
func (r *Runner) addServing(ctx context.Context, res *Result) {
	if r.Runs == nil || r.Machines == nil || res.RunID == "" {
		return
	}
	table := r.Machines.RunsTable(ctx)
	if table == "" {
		return
	}
	rec, err := stages.ReadRun(ctx, r.Runs, table, res.RunID)
	if err != nil || rec == nil || rec.Serving == 0 {
		return // no record (a torn-down run, or one from before refreshes): what it built is all there is
	}
	if res.Generation != 0 && res.Generation != rec.Serving {
		res.BuiltGeneration = res.Generation
	}
	res.Generation, res.ImageID = rec.Serving, ""
	if img := rec.Document.Resources.Image; img != nil {
		res.ImageID = img.ImageID
	}
}
