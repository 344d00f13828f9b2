// Command create-image is the CreateImage Lambda; its logic is stages.Stages.CreateImage (internal/stages/create_image.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CreateImage) }
