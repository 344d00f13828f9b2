// Command create-load-balancer is the CreateLoadBalancer Lambda; its logic is stages.Stages.CreateLoadBalancer (internal/stages/create_load_balancer.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CreateLoadBalancer) }
