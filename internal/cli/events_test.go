package cli

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// The ready inputs under events/ pass the validation that `amifleet run` and the
// pipeline's Validate stage apply, and say what each way in needs.
func TestEventInputs(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, c pipeline.Config)
	}{
		{"console-input.json", func(t *testing.T, c pipeline.Config) {
			if c.Tags["trigger"] != "console" {
				t.Errorf("tags %v", c.Tags)
			}
		}},
		{"ci-input.json", func(t *testing.T, c pipeline.Config) {
			// A CI fleet that its teardown step never reached must not stay up.
			if c.TeardownAfterMinutes == 0 || c.Tags["trigger"] != "ci" {
				t.Errorf("teardownAfterMinutes %d, tags %v", c.TeardownAfterMinutes, c.Tags)
			}
		}},
		{"local-input.json", func(t *testing.T, c pipeline.Config) {
			if c.Verify.Skip {
				t.Errorf("verify %+v: the local cloud has a data plane; Verify runs there", c.Verify)
			}
			if c.Poll.IntervalSeconds != 1 {
				t.Errorf("poll.intervalSeconds %d, want 1", c.Poll.IntervalSeconds)
			}
			// The local cloud's stand-in guest OS powers the base off after 2 s, and
			// every emulated resource is ready at once or on the next poll: each
			// wait gets at least 10 polls of room, and the whole run stays short.
			for _, w := range pipeline.Waits {
				if n := c.Poll.MaxPolls.Of(w.Name); n < 10 || n > 60 {
					t.Errorf("poll.maxPolls.%s %d: want 10..60", w.Key(), n)
				}
				// The defaults' first waits are for AWS's minutes.
				if first := c.Poll.WaitAfter(w.Name, 1); first != 1 {
					t.Errorf("poll.firstWaitSeconds.%s %d: want 1", w.Key(), first)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "..", "events", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			plan, err := PrepareRun(RunOptions{Input: raw, InputName: tt.file}, time.Now(), nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, plan.Config)
		})
	}
}
