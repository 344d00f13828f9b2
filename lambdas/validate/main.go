// Command validate is the Validate Lambda; its logic is stages.Stages.Validate (internal/stages/validate.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.Validate) }
