// Command record-run is the RecordRun Lambda; its logic is stages.Stages.RecordRun (internal/stages/record_run.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.RecordRun) }
