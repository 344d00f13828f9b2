package stages

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/pricing"
)

// The run's cost, as Validate prices it (internal/pricing) and holds it to
// config.maxHourlyCost before anything is created.

// fleetToPrice is what the run will create, as the estimate needs it: the
// instances of the config, the load balancer over every zone of the run's subnets
// (one public address per zone), the base instance's public address where its
// subnet (the first in a zone that offers the type, as LaunchBase picks it) maps
// one on launch, and the root volume of the image when Validate read it (rootGiB;
// 0 for the AL2023 default).
func fleetToPrice(region string, cfg pipeline.Config, subnets []ec2types.Subnet, zones []string, rootGiB int32) pricing.Fleet {
	publicBase := false
	for _, sn := range subnets {
		if slices.Contains(zones, aws.ToString(sn.AvailabilityZone)) {
			publicBase = aws.ToBool(sn.MapPublicIpOnLaunch)
			break
		}
	}
	return pricing.Fleet{
		Region:              region,
		InstanceType:        cfg.InstanceType,
		Replicas:            cfg.ReplicaCount,
		KeepBase:            cfg.KeepBase(),
		PublicReplicas:      len(cfg.SSHCIDRs) > 0,
		PublicBase:          publicBase,
		LoadBalancerZones:   len(zonesOf(subnets)),
		RootVolumeGiB:       int(rootGiB),
		PollIntervalSeconds: cfg.Poll.IntervalSeconds,
	}
}

// checkMaxHourlyCost refuses a run whose estimate is over config.maxHourlyCost, or
// that cannot be priced while a limit is set: a limit that cannot be checked is
// not kept silently.
func checkMaxHourlyCost(cfg pipeline.Config, est pricing.Estimate) error {
	if cfg.MaxHourlyCost == nil {
		return nil
	}
	limit := *cfg.MaxHourlyCost
	if !est.Complete {
		return &pipeline.BadInputError{Field: "maxHourlyCost", Message: fmt.Sprintf(
			"no price known, cannot hold the run to maxHourlyCost %s: %s; choose an instanceType and region that "+
				"amifleet's price table (as of %s) lists, or leave maxHourlyCost out",
			pricing.USD(limit), strings.Join(est.Unknown, "; "), est.PricesAsOf)}
	}
	if est.PerHour > limit {
		return &pipeline.BadInputError{Field: "maxHourlyCost", Message: fmt.Sprintf(
			"the fleet's estimate %s/hour exceeds maxHourlyCost %s/hour (%d × %s in %s, prices as of %s); "+
				"lower replicaCount, choose a smaller instanceType, or raise maxHourlyCost",
			pricing.USD(est.PerHour), pricing.USD(limit), cfg.FleetSize(), cfg.InstanceType, est.Region, est.PricesAsOf)}
	}
	return nil
}
