package stages

import (
	"context"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// RecordRun is the Pipeline's last stage: it writes the run's record into the runs
// table (its config, placement and resources, generation 1 serving), which a refresh
// starts from. It writes once, or again for the same execution (a retry after a lost
// answer: the writer is the run's token seed), never over another run's record. Its
// undo is Cleanup's: a run that fails after it, or is torn down, loses its record.
func (s *Stages) RecordRun(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	seed, err := tokenSeedOf(doc)
	if err != nil {
		return doc, err
	}
	if doc.Resources.LoadBalancer == nil || doc.Resources.Fleet == nil {
		return doc, notYet("resources.loadBalancer and resources.fleet", pipeline.LaunchReplicas)
	}
	if err := s.putRun(ctx, doc, seed); err != nil {
		return doc, err
	}
	Log(ctx).Info("run recorded", "table", s.RunsTable, "generation", doc.Gen())
	return doc, nil
}
