// Package pricing is amifleet's dated price table and the cost estimate of a run:
// what the fleet costs per hour while it lives, and what one run costs until its
// Verify stage. It is a leaf package: the pipeline document carries its Estimate,
// the Validate stage fills it in and holds it to config.maxHourlyCost, and
// `amifleet plan` prints it.
//
// The prices are on-demand list prices in USD, before tax, without free tier,
// Savings Plans or Reserved Instances. They change: the table says when it was
// taken (AsOf), and docs/pricing.md says where each figure comes from.
package pricing

import (
	"maps"
	"slices"
)

// AsOf is when the table's figures were taken from AWS's public price pages.
const AsOf = "2024-06"

// Source says where the figures come from, for the plan and the docs.
const Source = "AWS public on-demand price pages (EC2 Linux, Elastic Load Balancing, EBS, VPC public IPv4) as of " + AsOf +
	"; see docs/pricing.md"

// HoursPerMonth is the month AWS's own calculators use to turn per-month prices
// (EBS, snapshots) into per-hour ones.
const HoursPerMonth = 730

// PublicIPv4Hour is the price of one public IPv4 address per hour, in use or idle,
// the same in every commercial region since 2024-02-01.
const PublicIPv4Hour = 0.005

// Region is one region's prices, in USD.
type Region struct {
	// Instances is EC2 Linux on-demand per instance-hour, by instance type.
	Instances map[string]float64
	// ALBHour is one Application Load Balancer per hour (or partial hour).
	ALBHour float64
	// LCUHour is one ALB Load Balancer Capacity Unit per hour (or partial hour).
	LCUHour float64
	// GP3GBMonth is EBS gp3 storage per GB-month (its baseline 3,000 IOPS and
	// 125 MB/s are included).
	GP3GBMonth float64
	// SnapshotGBMonth is EBS snapshot storage (standard tier) per GB-month.
	SnapshotGBMonth float64
	// PublicIPv4Hour is one public IPv4 address per hour.
	PublicIPv4Hour float64
}

// The instance prices of each region, per instance-hour, EC2 Linux on-demand.
// US East (N. Virginia) and US West (Oregon) price these types alike.
var usInstances = map[string]float64{
	"t2.nano": 0.0058, "t2.micro": 0.0116, "t2.small": 0.023, "t2.medium": 0.0464, "t2.large": 0.0928, "t2.xlarge": 0.1856,
	"t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416, "t3.large": 0.0832, "t3.xlarge": 0.1664,
	"t3a.nano": 0.0047, "t3a.micro": 0.0094, "t3a.small": 0.0188, "t3a.medium": 0.0376, "t3a.large": 0.0752, "t3a.xlarge": 0.1504,
	"t4g.nano": 0.0042, "t4g.micro": 0.0084, "t4g.small": 0.0168, "t4g.medium": 0.0336, "t4g.large": 0.0672, "t4g.xlarge": 0.1344,
	"m5.large": 0.096, "m5.xlarge": 0.192,
	"m6i.large": 0.096, "m6i.xlarge": 0.192,
	"m7g.large": 0.0816, "m7g.xlarge": 0.1632,
	"c5.large": 0.085, "c5.xlarge": 0.17,
	"c6g.large": 0.068, "c6g.xlarge": 0.136,
	"c7g.large": 0.0725, "c7g.xlarge": 0.145,
	"r5.large": 0.126, "r5.xlarge": 0.252,
}

// Europe (Ireland). m7g and c7g are left out: their prices here were not at hand.
var euWest1Instances = map[string]float64{
	"t2.nano": 0.0063, "t2.micro": 0.0126, "t2.small": 0.025, "t2.medium": 0.05, "t2.large": 0.1008, "t2.xlarge": 0.2016,
	"t3.nano": 0.0057, "t3.micro": 0.0114, "t3.small": 0.0228, "t3.medium": 0.0456, "t3.large": 0.0912, "t3.xlarge": 0.1824,
	"t3a.nano": 0.0051, "t3a.micro": 0.0102, "t3a.small": 0.0204, "t3a.medium": 0.0408, "t3a.large": 0.0816, "t3a.xlarge": 0.1632,
	"t4g.nano": 0.0046, "t4g.micro": 0.0092, "t4g.small": 0.0184, "t4g.medium": 0.0368, "t4g.large": 0.0736, "t4g.xlarge": 0.1472,
	"m5.large": 0.107, "m5.xlarge": 0.214,
	"m6i.large": 0.107, "m6i.xlarge": 0.214,
	"c5.large": 0.096, "c5.xlarge": 0.192,
	"c6g.large": 0.077, "c6g.xlarge": 0.154,
	"r5.large": 0.141, "r5.xlarge": 0.282,
}

// Europe (Frankfurt). The Graviton families are left out: not at hand.
var euCentral1Instances = map[string]float64{
	"t2.nano": 0.0067, "t2.micro": 0.0134, "t2.small": 0.0268, "t2.medium": 0.0536, "t2.large": 0.1072, "t2.xlarge": 0.2144,
	"t3.nano": 0.006, "t3.micro": 0.012, "t3.small": 0.024, "t3.medium": 0.048, "t3.large": 0.096, "t3.xlarge": 0.192,
	"t3a.nano": 0.0054, "t3a.micro": 0.0108, "t3a.small": 0.0216, "t3a.medium": 0.0432, "t3a.large": 0.0864, "t3a.xlarge": 0.1728,
	"t4g.nano": 0.0048, "t4g.micro": 0.0096, "t4g.small": 0.0192, "t4g.medium": 0.0384, "t4g.large": 0.0768, "t4g.xlarge": 0.1536,
	"m5.large": 0.115, "m5.xlarge": 0.23,
	"m6i.large": 0.115, "m6i.xlarge": 0.23,
	"c5.large": 0.097, "c5.xlarge": 0.194,
	"r5.large": 0.152, "r5.xlarge": 0.304,
}

// Asia Pacific (Singapore). The Graviton families are left out: not at hand.
var apSoutheast1Instances = map[string]float64{
	"t2.nano": 0.0073, "t2.micro": 0.0146, "t2.small": 0.0292, "t2.medium": 0.0584, "t2.large": 0.1168, "t2.xlarge": 0.2336,
	"t3.nano": 0.0066, "t3.micro": 0.0132, "t3.small": 0.0264, "t3.medium": 0.0528, "t3.large": 0.1056, "t3.xlarge": 0.2112,
	"t3a.nano": 0.0059, "t3a.micro": 0.0118, "t3a.small": 0.0236, "t3a.medium": 0.0472, "t3a.large": 0.0944, "t3a.xlarge": 0.1888,
	"t4g.nano": 0.0053, "t4g.micro": 0.0106, "t4g.small": 0.0212, "t4g.medium": 0.0424, "t4g.large": 0.0848, "t4g.xlarge": 0.1696,
	"m5.large": 0.12, "m5.xlarge": 0.24,
	"m6i.large": 0.12, "m6i.xlarge": 0.24,
	"c5.large": 0.098, "c5.xlarge": 0.196,
	"r5.large": 0.152, "r5.xlarge": 0.304,
}

// table holds the regions whose prices are known; a region or an instance type
// that is not here has no price, and the estimate says so rather than guess.
var table = map[string]Region{
	"us-east-1": {Instances: usInstances, ALBHour: 0.0225, LCUHour: 0.008,
		GP3GBMonth: 0.08, SnapshotGBMonth: 0.05, PublicIPv4Hour: PublicIPv4Hour},
	"us-west-2": {Instances: usInstances, ALBHour: 0.0225, LCUHour: 0.008,
		GP3GBMonth: 0.08, SnapshotGBMonth: 0.05, PublicIPv4Hour: PublicIPv4Hour},
	"eu-west-1": {Instances: euWest1Instances, ALBHour: 0.0252, LCUHour: 0.008,
		GP3GBMonth: 0.088, SnapshotGBMonth: 0.05, PublicIPv4Hour: PublicIPv4Hour},
	"eu-central-1": {Instances: euCentral1Instances, ALBHour: 0.027, LCUHour: 0.008,
		GP3GBMonth: 0.0952, SnapshotGBMonth: 0.054, PublicIPv4Hour: PublicIPv4Hour},
	"ap-southeast-1": {Instances: apSoutheast1Instances, ALBHour: 0.0252, LCUHour: 0.008,
		GP3GBMonth: 0.096, SnapshotGBMonth: 0.05, PublicIPv4Hour: PublicIPv4Hour},
}

// Lookup is the region's prices; false when the table has no prices for it.
func Lookup(region string) (Region, bool) {
	r, ok := table[region]
	return r, ok
}

// InstanceHour is the on-demand Linux price of one instance of the type for an
// hour in the region; false when the table does not know it.
func InstanceHour(region, instanceType string) (float64, bool) {
	r, ok := table[region]
	if !ok {
		return 0, false
	}
	p, ok := r.Instances[instanceType]
	return p, ok
}

// Regions are the regions the table prices, sorted.
func Regions() []string {
	return slices.Sorted(maps.Keys(table))
}
