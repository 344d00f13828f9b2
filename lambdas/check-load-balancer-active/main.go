// Command check-load-balancer-active is the CheckLoadBalancerActive Lambda; its logic is stages.Stages.CheckLoadBalancerActive (internal/stages/check_load_balancer_active.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CheckLoadBalancerActive) }
