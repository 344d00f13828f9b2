// Command launch-replicas is the LaunchReplicas Lambda; the logic is stages.Stages.LaunchReplicas.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("LaunchReplicas", (*stages.Stages).LaunchReplicas) }
