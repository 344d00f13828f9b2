// Command cleanup is the Cleanup Lambda; the logic is stages.Stages.Cleanup.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("Cleanup", (*stages.Stages).Cleanup) }
