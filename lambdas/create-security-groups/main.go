// Command create-security-groups is the CreateSecurityGroups Lambda; the logic is stages.Stages.CreateSecurityGroups.
package main

import "github.com/amifleet/amifleet/internal/stages"

func main() { stages.Start("CreateSecurityGroups", (*stages.Stages).CreateSecurityGroups) }
