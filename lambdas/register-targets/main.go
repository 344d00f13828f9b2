// Command register-targets is the RegisterTargets Lambda; the logic is stages.Stages.RegisterTargets.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("RegisterTargets", (*stages.Stages).RegisterTargets) }
