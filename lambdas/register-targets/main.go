// Command register-targets is the RegisterTargets Lambda; its logic is stages.Stages.RegisterTargets (internal/stages/register_targets.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.RegisterTargets) }
