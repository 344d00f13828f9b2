// Command check-instances is the CheckInstances Lambda; the logic is stages.Stages.CheckInstances.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("CheckInstances", (*stages.Stages).CheckInstances) }
