// Command check-image is the CheckImage Lambda; the logic is stages.Stages.CheckImage.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("CheckImage", (*stages.Stages).CheckImage) }
