// Command check-base-stopped is the CheckBaseStopped Lambda; its logic is stages.Stages.CheckBaseStopped (internal/stages/check_base_stopped.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CheckBaseStopped) }
