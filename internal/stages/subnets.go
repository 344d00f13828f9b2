package stages

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// The subnet rule, in one place: Validate refuses input subnets that break it, and
// CreateSecurityGroups holds the subnets it resolves (given or default) to it.

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
