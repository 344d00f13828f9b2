package stages

import (
	"context"
	"fmt"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// CommitGeneration is a refresh's point of no return: once its new generation is
// healthy behind the load balancer and Verify has seen it answer, it makes that
// generation the one that serves (the record's serving and document), on condition
// that this refresh still holds the run. Before it, every failure leaves the old
// generation serving; after it, PruneGenerations removes the old one. A retry whose
// first write landed finds the record already serving this generation. It has no
// undo: PruneGenerations ends both paths.
func (s *Stages) CommitGeneration(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	if doc.Refresh == nil || doc.Refresh.ExecutionID == "" {
		return doc, notYet("refresh.executionId", pipeline.PrepareRefresh)
	}
	if s.RunsTable == "" {
		return doc, errNoRunsTable
	}
	ok, err := s.commitRun(ctx, doc, doc.Refresh.ExecutionID)
	if err != nil {
		return doc, err
	}
	if !ok {
		rec, err := s.getRun(ctx, doc.RunID)
		if err != nil {
			return doc, err
		}
		if rec == nil || rec.Serving != doc.Gen() {
			holder := "nobody"
			if rec != nil && rec.Lock != nil {
				holder = rec.Lock.Holder
			}
			return doc, &pipeline.StageError{Err: fmt.Errorf(
				"generation %d not committed: this refresh no longer holds run %s (the lock is %s's)", doc.Gen(), doc.RunID, holder)}
		}
	}
	doc.Refresh.Committed = true
	Log(ctx).Info("generation committed", "generation", doc.Gen(), "replaces", doc.Refresh.From.Generation)
	return doc, nil
}
