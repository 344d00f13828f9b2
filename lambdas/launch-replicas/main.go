// Command launch-replicas is the LaunchReplicas Lambda; its logic is stages.Stages.LaunchReplicas (internal/stages/launch_replicas.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.LaunchReplicas) }
