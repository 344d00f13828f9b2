// Command create-security-groups is the CreateSecurityGroups Lambda; its logic is stages.Stages.CreateSecurityGroups (internal/stages/create_security_groups.go).
package main

import (
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

func main() { stages.Start(pipeline.CreateSecurityGroups) }
