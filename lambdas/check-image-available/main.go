// Command check-image-available is the CheckImageAvailable Lambda; its logic is stages.Stages.CheckImageAvailable (internal/stages/check_image_available.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CheckImageAvailable) }
