// Command cleanup is the Cleanup Lambda; its logic is stages.Stages.Cleanup (internal/stages/cleanup.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.Cleanup) }
