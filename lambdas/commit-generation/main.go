// Command commit-generation is the CommitGeneration Lambda; its logic is stages.Stages.CommitGeneration (internal/stages/commit_generation.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CommitGeneration) }
