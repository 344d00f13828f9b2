// Command launch-base is the LaunchBase Lambda; its logic is stages.Stages.LaunchBase (internal/stages/launch_base.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.LaunchBase) }
