// Command validate is the Validate Lambda; the logic is stages.Stages.Validate.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("Validate", (*stages.Stages).Validate) }
