// Command verify is the Verify Lambda; the logic is stages.Stages.Verify.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("Verify", (*stages.Stages).Verify) }
