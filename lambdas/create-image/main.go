// Command create-image is the CreateImage Lambda; the logic is stages.Stages.CreateImage.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("CreateImage", (*stages.Stages).CreateImage) }
