// Command launch-base is the LaunchBase Lambda; the logic is stages.Stages.LaunchBase.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("LaunchBase", (*stages.Stages).LaunchBase) }
