// Command check-targets is the CheckTargets Lambda; the logic is stages.Stages.CheckTargets.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("CheckTargets", (*stages.Stages).CheckTargets) }
