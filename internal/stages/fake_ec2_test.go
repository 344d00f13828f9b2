package stages

// The fake cloud's EC2 filters and tags, and its network: VPCs, subnets, security
// groups (see fake_test.go).

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// --- filters ---------------------------------------------------------------------

// fakeCheckFilters refuses a filter name the fake does not know for the resource
// type, before any resource is looked at, so that a misspelt filter fails even when
// nothing exists yet (the first run of a stage).
func fakeCheckFilters(filters []ec2types.Filter, known ...string) error {
	for _, f := range filters {
		name := aws.ToString(f.Name)
		if strings.HasPrefix(name, "tag:") || name == "tag-key" || slices.Contains(known, name) {
			continue
		}
		return fakeErr("InvalidParameterValue", "The filter '%s' is invalid", name)
	}
	return nil
}

// fakeMatchFilters reports whether a resource matches every filter. values answers a
// filter name with the resource's values for it, or ok=false when the fake does not
// know the filter for that resource type (an error, so a typo fails the test).
func fakeMatchFilters(filters []ec2types.Filter, tags map[string]string, values func(name string) ([]string, bool)) (bool, error) {
	for _, f := range filters {
		name := aws.ToString(f.Name)
		var have []string
		switch {
		case strings.HasPrefix(name, "tag:"):
			if v, ok := tags[strings.TrimPrefix(name, "tag:")]; ok {
				have = []string{v}
			}
		case name == "tag-key":
			for k := range tags {
				have = append(have, k)
			}
		default:
			v, ok := values(name)
			if !ok {
				return false, fakeErr("InvalidParameterValue", "The filter '%s' is invalid", name)
			}
			have = v
		}
		if len(f.Values) == 0 {
			return false, fakeErr("InvalidParameterValue", "filter %s has no values", name)
		}
		hit := false
		for _, want := range f.Values {
			if slices.Contains(have, want) {
				hit = true
			}
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

// describeFilters spells EC2 filters as "name=v1,v2 name=v3", for test messages.
func describeFilters(filters []ec2types.Filter) string {
	var parts []string
	for _, f := range filters {
		parts = append(parts, aws.ToString(f.Name)+"="+strings.Join(f.Values, ","))
	}
	return strings.Join(parts, " ")
}

func fakeEC2Tags(m map[string]string) []ec2types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]ec2types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// specTags are the tags a TagSpecifications list gives resources of type rt.
func fakeSpecTags(specs []ec2types.TagSpecification, rt ec2types.ResourceType) map[string]string {
	m := map[string]string{}
	for _, s := range specs {
		if s.ResourceType == rt {
			for _, t := range s.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		}
	}
	return m
}

func fakeOne(s string) []string { return []string{s} }

// --- EC2: network ------------------------------------------------------------------

func (f *fakeEC2) DescribeVpcs(_ context.Context, in *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeVpcs", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "is-default", "vpc-id"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeVpcsOutput{}
	for _, id := range in.VpcIds {
		if c.vpcs[id] == nil {
			return nil, fakeErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	for _, id := range c.order {
		v, ok := c.vpcs[id]
		if !ok || (len(in.VpcIds) > 0 && !slices.Contains(in.VpcIds, id)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, nil, func(name string) ([]string, bool) {
			switch name {
			case "is-default":
				return fakeOne(fmt.Sprint(v.IsDefault)), true
			case "vpc-id":
				return fakeOne(v.ID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Vpcs = append(out.Vpcs, ec2types.Vpc{VpcId: aws.String(v.ID), IsDefault: aws.Bool(v.IsDefault),
				State: ec2types.VpcStateAvailable, OwnerId: aws.String(fakeAccount)})
		}
	}
	return out, nil
}

func (f *fakeEC2) DescribeSubnets(_ context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeSubnets", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "vpc-id", "default-for-az", "defaultForAz", "availability-zone", "subnet-id", "state"); err != nil {
		return nil, err
	}
	for _, id := range in.SubnetIds {
		if c.subnets[id] == nil {
			return nil, fakeErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	out := &ec2.DescribeSubnetsOutput{}
	for _, id := range c.order {
		s, ok := c.subnets[id]
		if !ok || (len(in.SubnetIds) > 0 && !slices.Contains(in.SubnetIds, id)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, s.Tags, func(name string) ([]string, bool) {
			switch name {
			case "vpc-id":
				return fakeOne(s.VPCID), true
			case "default-for-az", "defaultForAz":
				return fakeOne(fmt.Sprint(s.DefaultForAZ)), true
			case "availability-zone":
				return fakeOne(s.AZ), true
			case "subnet-id":
				return fakeOne(s.ID), true
			case "state":
				return fakeOne("available"), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Subnets = append(out.Subnets, ec2types.Subnet{SubnetId: aws.String(s.ID), VpcId: aws.String(s.VPCID),
				AvailabilityZone: aws.String(s.AZ), DefaultForAz: aws.Bool(s.DefaultForAZ),
				State: ec2types.SubnetStateAvailable, Tags: fakeEC2Tags(s.Tags)})
		}
	}
	return out, nil
}

func (f *fakeEC2) DescribeSecurityGroups(_ context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeSecurityGroups", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "vpc-id", "group-name", "group-id"); err != nil {
		return nil, err
	}
	for _, id := range in.GroupIds {
		if c.sgs[id] == nil {
			return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
	}
	out := &ec2.DescribeSecurityGroupsOutput{}
	for _, id := range c.order {
		g, ok := c.sgs[id]
		if !ok || (len(in.GroupIds) > 0 && !slices.Contains(in.GroupIds, id)) ||
			(len(in.GroupNames) > 0 && !slices.Contains(in.GroupNames, g.Name)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, g.Tags, func(name string) ([]string, bool) {
			switch name {
			case "vpc-id":
				return fakeOne(g.VPCID), true
			case "group-name":
				return fakeOne(g.Name), true
			case "group-id":
				return fakeOne(g.ID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.SecurityGroups = append(out.SecurityGroups, c.describeSG(g))
		}
	}
	return out, nil
}

func (c *fakeCloud) describeSG(g *fakeSG) ec2types.SecurityGroup {
	sg := ec2types.SecurityGroup{GroupId: aws.String(g.ID), GroupName: aws.String(g.Name),
		Description: aws.String(g.Description), VpcId: aws.String(g.VPCID), OwnerId: aws.String(fakeAccount),
		Tags: fakeEC2Tags(g.Tags)}
	for _, r := range g.Ingress {
		p := ec2types.IpPermission{IpProtocol: aws.String(r.Protocol), FromPort: aws.Int32(r.From), ToPort: aws.Int32(r.To)}
		switch r.Kind {
		case "cidr":
			p.IpRanges = []ec2types.IpRange{{CidrIp: aws.String(r.Source)}}
		case "cidr6":
			p.Ipv6Ranges = []ec2types.Ipv6Range{{CidrIpv6: aws.String(r.Source)}}
		case "group":
			p.UserIdGroupPairs = []ec2types.UserIdGroupPair{{GroupId: aws.String(r.Source), UserId: aws.String(fakeAccount)}}
		}
		sg.IpPermissions = append(sg.IpPermissions, p)
	}
	return sg
}

func (f *fakeEC2) CreateSecurityGroup(_ context.Context, in *ec2.CreateSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateSecurityGroup", in); err != nil {
		return nil, err
	}
	vpc := aws.ToString(in.VpcId)
	if vpc == "" {
		vpc = fakeDefaultVPC
	}
	if c.vpcs[vpc] == nil {
		return nil, fakeErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
	}
	if aws.ToString(in.GroupName) == "" || aws.ToString(in.Description) == "" {
		return nil, fakeErr("MissingParameter", "GroupName and Description are required")
	}
	for _, g := range c.sgs {
		if g.VPCID == vpc && g.Name == aws.ToString(in.GroupName) {
			return nil, fakeErr("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", g.Name, vpc)
		}
	}
	g := &fakeSG{ID: c.newID("sg"), Name: aws.ToString(in.GroupName), Description: aws.ToString(in.Description),
		VPCID: vpc, Tags: fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeSecurityGroup)}
	c.sgs[g.ID] = g
	c.order = append(c.order, g.ID)
	return &ec2.CreateSecurityGroupOutput{GroupId: aws.String(g.ID), Tags: fakeEC2Tags(g.Tags)}, nil
}

func (f *fakeEC2) AuthorizeSecurityGroupIngress(_ context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("AuthorizeSecurityGroupIngress", in); err != nil {
		return nil, err
	}
	g := c.sgs[aws.ToString(in.GroupId)]
	if g == nil {
		return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", aws.ToString(in.GroupId))
	}
	var rules []fakeRule
	for _, p := range in.IpPermissions {
		base := fakeRule{Protocol: aws.ToString(p.IpProtocol), From: aws.ToInt32(p.FromPort), To: aws.ToInt32(p.ToPort)}
		for _, r := range p.IpRanges {
			x := base
			x.Kind, x.Source = "cidr", aws.ToString(r.CidrIp)
			rules = append(rules, x)
		}
		for _, r := range p.Ipv6Ranges {
			x := base
			x.Kind, x.Source = "cidr6", aws.ToString(r.CidrIpv6)
			rules = append(rules, x)
		}
		for _, r := range p.UserIdGroupPairs {
			if c.sgs[aws.ToString(r.GroupId)] == nil {
				return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", aws.ToString(r.GroupId))
			}
			x := base
			x.Kind, x.Source = "group", aws.ToString(r.GroupId)
			rules = append(rules, x)
		}
	}
	if len(rules) == 0 {
		return nil, fakeErr("MissingParameter", "no source in the permissions")
	}
	for _, r := range rules {
		if slices.Contains(g.Ingress, r) {
			return nil, fakeErr("InvalidPermission.Duplicate", "the specified rule %q already exists", fmt.Sprint(r))
		}
	}
	g.Ingress = append(g.Ingress, rules...)
	return &ec2.AuthorizeSecurityGroupIngressOutput{Return: aws.Bool(true)}, nil
}

func (f *fakeEC2) DeleteSecurityGroup(_ context.Context, in *ec2.DeleteSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteSecurityGroup", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.GroupId)
	if c.sgs[id] == nil {
		return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	for _, inst := range c.instances {
		if inst.State != "terminated" && slices.Contains(inst.SecurityGroupIDs, id) {
			return nil, fakeErr("DependencyViolation", "resource %s has a dependent object", id)
		}
	}
	for _, lb := range c.lbs {
		if slices.Contains(lb.SecurityGroups, id) {
			return nil, fakeErr("DependencyViolation", "resource %s has a dependent object", id)
		}
	}
	for _, g := range c.sgs {
		for _, r := range g.Ingress {
			if g.ID != id && r.Kind == "group" && r.Source == id {
				return nil, fakeErr("DependencyViolation", "resource %s has a dependent object", id)
			}
		}
	}
	delete(c.sgs, id)
	return &ec2.DeleteSecurityGroupOutput{Return: aws.Bool(true)}, nil
}

// --- the fake's own tests ---------------------------------------------------------------

func TestFakeCloudRejectsUnknownFilters(t *testing.T) {
	c := newFakeCloud(t)
	_, err := c.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-state"), Values: []string{"running"}}}})
	if ErrorCode(err) != "InvalidParameterValue" {
		t.Fatalf("got %v, want InvalidParameterValue for a misspelt filter", err)
	}
}
