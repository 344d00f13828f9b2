// Command prune-generations is the PruneGenerations Lambda; its logic is stages.Stages.PruneGenerations (internal/stages/prune_generations.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.PruneGenerations) }
