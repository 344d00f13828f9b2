// Command check-instances-running is the CheckInstancesRunning Lambda; its logic is stages.Stages.CheckInstancesRunning (internal/stages/check_instances_running.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CheckInstancesRunning) }
