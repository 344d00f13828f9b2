package stages

import (
	"context"
	"errors"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Teardown's input names a run by the run id RunIDFromExecutionName made, which for
// a name that is not its own run id (Demo, a console UUID, a long CI name) ends in
// "-x<8 hex>" and is not that name's own normal form: Cleanup takes every such id,
// and still refuses what is not of the form.
func TestCleanupAcceptsEveryRunIDThePipelineMakes(t *testing.T) {
	for _, id := range []string{"demo-x8a2cc067", "4f0c2a9e-x7e80d4c1", "a-x00000000", "ci-main-4-x0123abcd"} {
		t.Run(id, func(t *testing.T) {
			c := newFakeCloud(t)
			if _, err := c.stages().Cleanup(context.Background(), pipeline.Document{RunID: id}); err != nil {
				t.Fatalf("Cleanup(%q): %v", id, err)
			}
		})
	}
	for _, name := range []string{
		"demo",
		"Demo",
		"de_mo",
		"4a1b2c3d-0e5f-4a6b-8c7d-9e0f1a2b3c4d",
		"amifleet-ci-0123456789abcdef0123456789abcdef01234567-attempt-1",
		"261127-110304-0a0b",
	} {
		id, err := pipeline.RunIDFromExecutionName(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(id, func(t *testing.T) {
			c := newFakeCloud(t)
			if _, err := c.stages().Cleanup(context.Background(), pipeline.Document{RunID: id}); err != nil {
				t.Fatalf("Cleanup(%q) (the run id of %q): %v", id, name, err)
			}
			if len(c.methods()) == 0 {
				t.Fatalf("Cleanup(%q) looked for nothing", id)
			}
		})
	}
	for _, id := range []string{"demo-X0123ABCD", "demo--0123abcd", "--0123abcd", "-demo-x0123abcd", "demo-x0123abcd-", "de_mo", "demo-x0123abcd-long-id"} {
		t.Run(id, func(t *testing.T) {
			c := newFakeCloud(t)
			_, err := c.stages().Cleanup(context.Background(), pipeline.Document{RunID: id})
			var bad *pipeline.BadInputError
			if !errors.As(err, &bad) || bad.Field != "runId" {
				t.Fatalf("Cleanup(%q) = %v, want BadInputError on runId", id, err)
			}
			if calls := c.methods(); len(calls) != 0 {
				t.Fatalf("Cleanup(%q) called AWS: %v", id, calls)
			}
		})
	}
}
