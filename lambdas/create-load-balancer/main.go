// Command create-load-balancer is the CreateLoadBalancer Lambda; the logic is stages.Stages.CreateLoadBalancer.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("CreateLoadBalancer", (*stages.Stages).CreateLoadBalancer) }
