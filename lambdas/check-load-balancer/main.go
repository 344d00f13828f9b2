// Command check-load-balancer is the CheckLoadBalancer Lambda; the logic is stages.Stages.CheckLoadBalancer.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("CheckLoadBalancer", (*stages.Stages).CheckLoadBalancer) }
