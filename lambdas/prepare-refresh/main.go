// Command prepare-refresh is the PrepareRefresh Lambda; its logic is stages.Stages.PrepareRefresh (internal/stages/prepare_refresh.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.PrepareRefresh) }
