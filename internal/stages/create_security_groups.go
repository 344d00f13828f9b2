package stages

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// CreateSecurityGroups resolves the network (the input's subnets, or the default
// VPC's default subnets) and creates the run's two security groups: the load
// balancer's, open on port 80 to config.httpCidrs, and the instances', open on
// port 80 to the load balancer's group only, and on port 22 to config.sshCidrs only
// when some are given. A second run reuses the groups, found by run tag and role,
// and rules that exist already.
func (s *Stages) CreateSecurityGroups(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	net, err := s.resolveNetwork(ctx, doc.Config.SubnetIDs)
	if err != nil {
		return doc, err
	}
	albSG, albHas, err := s.ensureSecurityGroup(ctx, doc, net.VPCID, pipeline.RoleALBSecurityGroup,
		"amifleet run "+doc.RunID+": HTTP from the allowed CIDRs to the load balancer")
	if err != nil {
		return doc, err
	}
	instanceSG, instanceHas, err := s.ensureSecurityGroup(ctx, doc, net.VPCID, pipeline.RoleInstanceSecurityGroup,
		"amifleet run "+doc.RunID+": HTTP from the load balancer to the instances")
	if err != nil {
		return doc, err
	}

	albRules, err := cidrPermissions(80, doc.Config.HTTPCIDRs, "HTTP to the load balancer")
	if err != nil {
		return doc, &pipeline.BadInputError{Field: "httpCidrs", Message: err.Error()}
	}
	if err := s.authorize(ctx, albSG, albHas, albRules); err != nil {
		return doc, err
	}
	instanceRules := []ec2types.IpPermission{{
		IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80),
		UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: aws.String(albSG),
			Description: aws.String("HTTP from the amifleet load balancer")}},
	}}
	// SSH stays closed unless the input names who may use it.
	sshRules, err := cidrPermissions(22, doc.Config.SSHCIDRs, "SSH")
	if err != nil {
		return doc, &pipeline.BadInputError{Field: "sshCidrs", Message: err.Error()}
	}
	if err := s.authorize(ctx, instanceSG, instanceHas, append(instanceRules, sshRules...)); err != nil {
		return doc, err
	}

	net.ALBSecurityGroupID, net.InstanceSecurityGroupID = albSG, instanceSG
	doc.Resources.Network = net
	Log(ctx).Info("security groups ready", "vpcId", net.VPCID, "subnetIds", net.SubnetIDs,
		"albSecurityGroupId", albSG, "instanceSecurityGroupId", instanceSG)
	return doc, nil
}

// resolveNetwork picks the VPC and one subnet per availability zone (an ALB takes at
// most one per zone, and the instances are spread over the same ones): from the
// given subnets, in their order, or from the default VPC's default subnets, by zone.
func (s *Stages) resolveNetwork(ctx context.Context, subnetIDs []string) (*pipeline.Network, error) {
	subnets, err := s.candidateSubnets(ctx, subnetIDs)
	if err != nil {
		return nil, err
	}
	net := &pipeline.Network{VPCID: aws.ToString(subnets[0].VpcId)}
	seen := map[string]bool{}
	for _, sn := range subnets {
		zone := aws.ToString(sn.AvailabilityZone)
		if seen[zone] {
			Log(ctx).Info("skipping a second subnet in the same zone", "subnetId", aws.ToString(sn.SubnetId), "zone", zone)
			continue
		}
		seen[zone] = true
		net.SubnetIDs = append(net.SubnetIDs, aws.ToString(sn.SubnetId))
		net.AvailabilityZones = append(net.AvailabilityZones, zone)
	}
	return net, nil
}

// ensureSecurityGroup reuses the run's group of role, or creates it, and answers
// its id and the ingress rules it has already.
func (s *Stages) ensureSecurityGroup(ctx context.Context, doc pipeline.Document, vpcID, role, description string) (string, []ec2types.IpPermission, error) {
	found, err := s.findSecurityGroups(ctx, doc.RunID, role)
	if err != nil {
		return "", nil, err
	}
	for _, g := range found {
		if aws.ToString(g.VpcId) == vpcID {
			Log(ctx).Info("reusing security group", "role", role, "groupId", aws.ToString(g.GroupId))
			return aws.ToString(g.GroupId), g.IpPermissions, nil
		}
	}
	name := pipeline.ResourceName(doc.RunID, role)
	out, err := s.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(name),
		Description:       aws.String(description),
		VpcId:             aws.String(vpcID),
		TagSpecifications: tagSpecs(doc, role, ec2types.ResourceTypeSecurityGroup),
	})
	if ErrorCode(err) == codeGroupDuplicate {
		// The tag lookup missed a group a first run made (tags are eventually
		// consistent): adopt it by name, if it is this run's.
		return s.adoptSecurityGroup(ctx, doc.RunID, vpcID, name, err)
	}
	if err != nil {
		return "", nil, fmt.Errorf("create security group %s: %w", name, err)
	}
	Log(ctx).Info("created security group", "role", role, "groupId", aws.ToString(out.GroupId))
	return aws.ToString(out.GroupId), nil, nil
}

func (s *Stages) adoptSecurityGroup(ctx context.Context, runID, vpcID, name string, dupErr error) (string, []ec2types.IpPermission, error) {
	out, err := s.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpcID}},
		{Name: aws.String("group-name"), Values: []string{name}},
	}})
	if err != nil {
		return "", nil, fmt.Errorf("describe security group %s: %w", name, err)
	}
	if len(out.SecurityGroups) == 0 {
		// EC2's describes lag its creates: the group a first run made is not
		// visible yet. A later try finds it, by tag or by name.
		return "", nil, &pipeline.RetryableError{Err: fmt.Errorf("security group %s exists in %s but is not visible yet: %w", name, vpcID, dupErr)}
	}
	for _, g := range out.SecurityGroups {
		for _, t := range g.Tags {
			if aws.ToString(t.Key) == pipeline.TagRunID && aws.ToString(t.Value) == runID {
				Log(ctx).Info("reusing security group found by name", "groupId", aws.ToString(g.GroupId))
				return aws.ToString(g.GroupId), g.IpPermissions, nil
			}
		}
	}
	return "", nil, &pipeline.StageError{Err: fmt.Errorf("security group %s exists in %s but is not tagged with run %s; refusing to adopt it: %w", name, vpcID, runID, dupErr)}
}

func (s *Stages) findSecurityGroups(ctx context.Context, runID, role string) ([]ec2types.SecurityGroup, error) {
	var groups []ec2types.SecurityGroup
	p := ec2.NewDescribeSecurityGroupsPaginator(s.EC2, &ec2.DescribeSecurityGroupsInput{Filters: tagFilters(runID, role)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe security groups of run %s: %w", runID, err)
		}
		groups = append(groups, page.SecurityGroups...)
	}
	return groups, nil
}

// cidrPermissions opens tcp port to every CIDR, IPv4 and IPv6 alike.
func cidrPermissions(port int32, cidrs []string, what string) ([]ec2types.IpPermission, error) {
	var perms []ec2types.IpPermission
	for _, c := range cidrs {
		prefix, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR block: %w", c, err)
		}
		perm := ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(port), ToPort: aws.Int32(port)}
		if prefix.Addr().Is4() {
			perm.IpRanges = []ec2types.IpRange{{CidrIp: aws.String(prefix.Masked().String()), Description: aws.String(what)}}
		} else {
			perm.Ipv6Ranges = []ec2types.Ipv6Range{{CidrIpv6: aws.String(prefix.Masked().String()), Description: aws.String(what)}}
		}
		perms = append(perms, perm)
	}
	return perms, nil
}

// authorize adds the rules that the group lacks, each on its own, so that a rule
// added meanwhile (InvalidPermission.Duplicate) does not keep the others out.
func (s *Stages) authorize(ctx context.Context, groupID string, has, perms []ec2types.IpPermission) error {
	for _, p := range perms {
		if hasRule(has, p) {
			continue
		}
		// A group created a moment before may not be visible to this call yet.
		err := untilVisible(ctx, func() error {
			_, err := s.EC2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
				GroupId: aws.String(groupID), IpPermissions: []ec2types.IpPermission{p},
			})
			return err
		}, codeGroupNotFound)
		if ErrorCode(err) == codePermissionDuplicate {
			continue
		}
		if err != nil {
			return fmt.Errorf("authorize ingress on %s: %w", groupID, err)
		}
	}
	return nil
}

// hasRule reports whether rules already allow p, a rule with one source.
func hasRule(rules []ec2types.IpPermission, p ec2types.IpPermission) bool {
	for _, r := range rules {
		if aws.ToString(r.IpProtocol) != aws.ToString(p.IpProtocol) ||
			aws.ToInt32(r.FromPort) != aws.ToInt32(p.FromPort) || aws.ToInt32(r.ToPort) != aws.ToInt32(p.ToPort) {
			continue
		}
		for _, x := range p.IpRanges {
			if slices.ContainsFunc(r.IpRanges, func(y ec2types.IpRange) bool { return aws.ToString(y.CidrIp) == aws.ToString(x.CidrIp) }) {
				return true
			}
		}
		for _, x := range p.Ipv6Ranges {
			if slices.ContainsFunc(r.Ipv6Ranges, func(y ec2types.Ipv6Range) bool { return aws.ToString(y.CidrIpv6) == aws.ToString(x.CidrIpv6) }) {
				return true
			}
		}
		for _, x := range p.UserIdGroupPairs {
			if slices.ContainsFunc(r.UserIdGroupPairs, func(y ec2types.UserIdGroupPair) bool { return aws.ToString(y.GroupId) == aws.ToString(x.GroupId) }) {
				return true
			}
		}
	}
	return false
}

// undoSecurityGroups deletes the run's two groups, the instances' first (its rule
// names the load balancer's group). A group still used by an instance that is
// shutting down, or by the load balancer, answers DependencyViolation: it is left in
// remaining for the next call.
func (s *Stages) undoSecurityGroups(ctx context.Context, runID string) (remaining []string, err error) {
	var errs []error
	for _, role := range []string{pipeline.RoleInstanceSecurityGroup, pipeline.RoleALBSecurityGroup} {
		groups, err := s.findSecurityGroups(ctx, runID, role)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			id := aws.ToString(g.GroupId)
			_, err := s.EC2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
			switch code := ErrorCode(err); {
			case err == nil:
				Log(ctx).Info("deleted security group", "role", role, "groupId", id)
			case code == codeGroupNotFound:
			case code == codeDependencyViolation:
				remaining = append(remaining, fmt.Sprintf("security group %s (%s) still in use", id, role))
			default:
				errs = append(errs, fmt.Errorf("delete security group %s: %w", id, err))
			}
		}
	}
	return remaining, errors.Join(errs...)
}
