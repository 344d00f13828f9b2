package stages

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// The run's subnets, in one place: Validate and CreateSecurityGroups resolve the same
// candidates (the input's, or the default VPC's default subnets) and hold them to the
// subnet rule; Validate finds which of their zones offer the instance type, and the
// launch stages put instances only in those zones (the load balancer keeps them all).

// candidateSubnets are the run's subnets: the given ones, in their order, or the
// default VPC's default subnets, by zone; they keep the subnet rule.
func (s *Stages) candidateSubnets(ctx context.Context, subnetIDs []string) ([]ec2types.Subnet, error) {
	var subnets []ec2types.Subnet
	if len(subnetIDs) > 0 {
		var err error
		if subnets, err = s.describeGivenSubnets(ctx, subnetIDs); err != nil {
			return nil, err
		}
	} else {
		vpcs, err := s.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{
			{Name: aws.String("is-default"), Values: []string{"true"}}}})
		if err != nil {
			return nil, fmt.Errorf("find the default VPC: %w", err)
		}
		if len(vpcs.Vpcs) == 0 {
			return nil, &pipeline.BadInputError{Field: "subnetIds", Message: "the region has no default VPC: give subnetIds in at least two availability zones"}
		}
		vpcID := aws.ToString(vpcs.Vpcs[0].VpcId)
		p := ec2.NewDescribeSubnetsPaginator(s.EC2, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
			{Name: aws.String("vpc-id"), Values: []string{vpcID}},
			{Name: aws.String("default-for-az"), Values: []string{"true"}},
		}})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe the default subnets of %s: %w", vpcID, err)
			}
			subnets = append(subnets, page.Subnets...)
		}
		sort.SliceStable(subnets, func(i, j int) bool {
			return aws.ToString(subnets[i].AvailabilityZone) < aws.ToString(subnets[j].AvailabilityZone)
		})
	}
	if err := checkSubnetRule(subnets); err != nil {
		return nil, err
	}
	return subnets, nil
}

// zonesOf are the subnets' availability zones, each once, in the subnets' order.
func zonesOf(subnets []ec2types.Subnet) []string {
	var zones []string
	for _, sn := range subnets {
		if z := aws.ToString(sn.AvailabilityZone); !slices.Contains(zones, z) {
			zones = append(zones, z)
		}
	}
	return zones
}

// offeringZones are the zones among zones that offer instanceType, in zones' order
// (ec2:DescribeInstanceTypeOfferings). Not every zone offers every type: t2.micro is
// not offered in us-west-2d, t3.micro not in us-east-1e. None is bad input on
// instanceType, naming the zones tried.
func (s *Stages) offeringZones(ctx context.Context, instanceType string, zones []string) ([]string, error) {
	offered := map[string]bool{}
	p := ec2.NewDescribeInstanceTypeOfferingsPaginator(s.EC2, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: ec2types.LocationTypeAvailabilityZone,
		Filters: []ec2types.Filter{
			{Name: aws.String("instance-type"), Values: []string{instanceType}},
			{Name: aws.String("location"), Values: zones},
		},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("find the zones that offer %s: %w", instanceType, err)
		}
		for _, o := range page.InstanceTypeOfferings {
			if string(o.InstanceType) == instanceType {
				offered[aws.ToString(o.Location)] = true
			}
		}
	}
	var out []string
	for _, z := range zones {
		if offered[z] {
			out = append(out, z)
		}
	}
	if len(out) == 0 {
		return nil, &pipeline.BadInputError{Field: "instanceType", Message: fmt.Sprintf(
			"%s is not offered in any availability zone of the run's subnets (tried %s): choose another "+
				"instance type, or subnetIds in zones that offer it", instanceType, strings.Join(zones, ", "))}
	}
	return out, nil
}

// instanceSubnets are the network's subnets in the zones that offer the instance
// type (doc.placement, from Validate), in the network's order: where the base
// instance and the replicas go.
func instanceSubnets(doc pipeline.Document) ([]string, error) {
	net, place := doc.Resources.Network, doc.Placement
	if place == nil || len(place.Zones) == 0 {
		return nil, notYet("placement.zones", pipeline.Validate)
	}
	var out []string
	for i, id := range net.SubnetIDs {
		if i < len(net.AvailabilityZones) && slices.Contains(place.Zones, net.AvailabilityZones[i]) {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return nil, &pipeline.BadInputError{Field: "instanceType", Message: fmt.Sprintf(
			"%s is offered in %s, and none of the network's subnets (%s in %s) is there",
			doc.Config.InstanceType, strings.Join(place.Zones, ", "), strings.Join(net.SubnetIDs, ", "),
			strings.Join(net.AvailabilityZones, ", "))}
	}
	return out, nil
}

// describeGivenSubnets describes the input's subnets in one call, in the input's
// order; a subnet that does not exist here is bad input on subnetIds.
func (s *Stages) describeGivenSubnets(ctx context.Context, ids []string) ([]ec2types.Subnet, error) {
	out, err := s.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: ids})
	if err != nil {
		if code := ErrorCode(err); strings.HasPrefix(code, "InvalidSubnetID.") || code == "InvalidSubnet" {
			return nil, &pipeline.BadInputError{Field: "subnetIds", Message: "EC2 refused them: " + awsMessage(err)}
		}
		return nil, fmt.Errorf("describe subnets %v: %w", ids, err)
	}
	byID := map[string]ec2types.Subnet{}
	for _, sn := range out.Subnets {
		byID[aws.ToString(sn.SubnetId)] = sn
	}
	var subnets []ec2types.Subnet
	var missing []string
	for _, id := range ids {
		if sn, ok := byID[id]; ok {
			subnets = append(subnets, sn)
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, &pipeline.BadInputError{Field: "subnetIds", Message: "no such subnet in this account and region: " + strings.Join(missing, ", ")}
	}
	return subnets, nil
}

// checkSubnetRule refuses subnets in more than one VPC, or in fewer than two
// availability zones (an Application Load Balancer needs two).
func checkSubnetRule(subnets []ec2types.Subnet) error {
	vpcs := map[string][]string{}
	zones := map[string]bool{}
	for _, sn := range subnets {
		vpc := aws.ToString(sn.VpcId)
		vpcs[vpc] = append(vpcs[vpc], aws.ToString(sn.SubnetId))
		zones[aws.ToString(sn.AvailabilityZone)] = true
	}
	if len(vpcs) > 1 {
		var parts []string
		for _, vpc := range slices.Sorted(maps.Keys(vpcs)) {
			parts = append(parts, vpc+" ("+strings.Join(vpcs[vpc], ", ")+")")
		}
		return &pipeline.BadInputError{Field: "subnetIds", Message: "the subnets are in more than one VPC: " + strings.Join(parts, "; ") + "; list subnets of one VPC"}
	}
	if len(zones) < 2 {
		where := "no availability zone"
		if len(zones) == 1 {
			where = "one availability zone, " + slices.Collect(maps.Keys(zones))[0]
		}
		return &pipeline.BadInputError{Field: "subnetIds", Message: fmt.Sprintf("the subnets are in %s; an Application Load Balancer needs subnets in at least two availability zones", where)}
	}
	return nil
}
