// Command verify is the Verify Lambda; its logic is stages.Stages.Verify (internal/stages/verify.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.Verify) }
