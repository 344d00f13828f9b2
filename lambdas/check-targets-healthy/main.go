// Command check-targets-healthy is the CheckTargetsHealthy Lambda; its logic is stages.Stages.CheckTargetsHealthy (internal/stages/check_targets_healthy.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CheckTargetsHealthy) }
