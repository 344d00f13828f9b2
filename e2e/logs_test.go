package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/pipeline"
)

// testLogs checks `amifleet logs` on the finished (and torn down) execution name:
// the local cloud sent the functions' output to their CloudWatch log groups, which
// the stack's outputs name, and the command prints every stage's lines of the run,
// in the order they were written, each carrying the run id; --stage keeps one
// stage's.
func testLogs(t *testing.T, name string) {
	a := buildCLI(t)
	runID, _ := pipeline.RunIDFromExecutionName(name)

	start := time.Now()
	stdout, _, code := a.run(t, "logs", name, "--output", "json")
	took := time.Since(start)
	if code != cli.ExitOK {
		t.Fatalf("logs exit %d", code)
	}
	t.Logf("amifleet logs read the run's lines in %s", took.Round(time.Millisecond))
	stages := map[string]int{}
	var last time.Time
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	for _, l := range lines {
		var line struct {
			Time  time.Time `json:"time"`
			RunID string    `json:"runId"`
			Stage string    `json:"stage"`
			Msg   string    `json:"msg"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("line %q is not the function's JSON line: %v", l, err)
		}
		if line.RunID != runID {
			t.Errorf("line %q: runId %q, want %q", l, line.RunID, runID)
		}
		if line.Time.Before(last) {
			t.Errorf("line %q is out of time order (after %s)", l, last.Format(time.RFC3339Nano))
		}
		last = line.Time
		stages[line.Stage]++
	}
	// The run and its teardown ran every function but the Refresh's own; each logs
	// its start and end.
	want := 0
	for _, f := range pipeline.Functions {
		if f.RefreshOnly() {
			continue
		}
		want++
		if stages[f.Name] < 2 {
			t.Errorf("%d lines of stage %s, want its start and end at least", stages[f.Name], f.Name)
		}
	}
	if len(stages) != want {
		t.Errorf("stages %v: want exactly the Pipeline's and Teardown's functions", stages)
	}

	// People's text: one line per JSON line, the stage in the second column.
	stdout, _, code = a.run(t, "logs", name, "--stage", pipeline.LaunchBase)
	if code != cli.ExitOK {
		t.Fatalf("logs --stage exit %d", code)
	}
	text := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(text) != stages[pipeline.LaunchBase] {
		t.Errorf("--stage LaunchBase printed %d lines, want its %d", len(text), stages[pipeline.LaunchBase])
	}
	for _, l := range text {
		if f := strings.Fields(l); len(f) < 4 || f[1] != pipeline.LaunchBase {
			t.Errorf("--stage LaunchBase printed %q: want time, LaunchBase, level, message", l)
		}
	}
	if !slices.ContainsFunc(text, func(l string) bool { return strings.Contains(l, "stage started") }) {
		t.Errorf("--stage LaunchBase does not show the stage starting:\n%s", stdout)
	}

	_, stderr, code := a.run(t, "logs", name, "--stage", "Launch")
	if code != cli.ExitUsage || !strings.Contains(stderr, "--stage") {
		t.Errorf("--stage Launch: exit %d, stderr %q; want 2 naming --stage", code, stderr)
	}
}
