package stages

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// rulesSent flattens the ingress rules sent for a group into "tcp/80 from X".
func rulesSent(c *fakeCloud, groupID string) []string {
	var out []string
	for _, in := range fakeInputs[ec2.AuthorizeSecurityGroupIngressInput](c, "AuthorizeSecurityGroupIngress") {
		if aws.ToString(in.GroupId) != groupID {
			continue
		}
		for _, p := range in.IpPermissions {
			port := fmt.Sprintf("%s/%d", aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort))
			if aws.ToInt32(p.FromPort) != aws.ToInt32(p.ToPort) {
				port += fmt.Sprintf("-%d", aws.ToInt32(p.ToPort))
			}
			for _, r := range p.IpRanges {
				out = append(out, port+" from "+aws.ToString(r.CidrIp))
			}
			for _, r := range p.Ipv6Ranges {
				out = append(out, port+" from "+aws.ToString(r.CidrIpv6))
			}
			for _, r := range p.UserIdGroupPairs {
				out = append(out, port+" from group "+aws.ToString(r.GroupId))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestCreateSecurityGroupsRules(t *testing.T) {
	tests := []struct {
		name         string
		httpCIDRs    []string
		sshCIDRs     []string
		wantALB      []string
		wantInstance func(albSG string) []string
	}{
		{
			name:      "defaults: HTTP from the world to the ALB, SSH closed",
			httpCIDRs: []string{"0.0.0.0/0"},
			wantALB:   []string{"tcp/80 from 0.0.0.0/0"},
			wantInstance: func(alb string) []string {
				return []string{"tcp/80 from group " + alb}
			},
		},
		{
			name:      "IPv4 and IPv6 HTTP ranges, SSH from an office",
			httpCIDRs: []string{"203.0.113.0/24", "2001:db8::/32"},
			sshCIDRs:  []string{"198.51.100.7/32", "2001:db8:1::/48"},
			wantALB:   []string{"tcp/80 from 2001:db8::/32", "tcp/80 from 203.0.113.0/24"},
			wantInstance: func(alb string) []string {
				return []string{"tcp/22 from 198.51.100.7/32", "tcp/22 from 2001:db8:1::/48", "tcp/80 from group " + alb}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCloud(t)
			doc := testDoc()
			doc.Config.HTTPCIDRs, doc.Config.SSHCIDRs = tc.httpCIDRs, tc.sshCIDRs
			doc = withNetwork(t, c, doc)
			net := doc.Resources.Network

			creates := fakeInputs[ec2.CreateSecurityGroupInput](c, "CreateSecurityGroup")
			if len(creates) != 2 {
				t.Fatalf("CreateSecurityGroup called %d times, want 2", len(creates))
			}
			for i, role := range []string{pipeline.RoleALBSecurityGroup, pipeline.RoleInstanceSecurityGroup} {
				in := creates[i]
				assertTagSpecs(t, "security group "+role, in.TagSpecifications, role, ec2types.ResourceTypeSecurityGroup)
				if aws.ToString(in.VpcId) != fakeDefaultVPC || aws.ToString(in.Description) == "" ||
					aws.ToString(in.GroupName) != pipeline.ResourceName(testRunID, role) {
					t.Errorf("CreateSecurityGroup %s: vpc %q, name %q, description %q", role,
						aws.ToString(in.VpcId), aws.ToString(in.GroupName), aws.ToString(in.Description))
				}
			}
			if got := rulesSent(c, net.ALBSecurityGroupID); !slices.Equal(got, tc.wantALB) {
				t.Errorf("ALB group rules = %v, want %v", got, tc.wantALB)
			}
			if got, want := rulesSent(c, net.InstanceSecurityGroupID), tc.wantInstance(net.ALBSecurityGroupID); !slices.Equal(got, want) {
				t.Errorf("instance group rules = %v, want %v", got, want)
			}
			// The model agrees: nothing but those rules, port 80 on the instances from the ALB group only.
			for _, r := range c.sgs[net.InstanceSecurityGroupID].Ingress {
				if r.From == 80 && (r.Kind != "group" || r.Source != net.ALBSecurityGroupID) {
					t.Errorf("instance group opens port 80 to %s %s", r.Kind, r.Source)
				}
				if r.From == 22 && len(tc.sshCIDRs) == 0 {
					t.Errorf("instance group opens port 22 without sshCidrs: %+v", r)
				}
			}
			want := &pipeline.Network{VPCID: fakeDefaultVPC, SubnetIDs: fakeDefaultSubnets,
				AvailabilityZones:  []string{"us-east-1a", "us-east-1b", "us-east-1c"},
				ALBSecurityGroupID: net.ALBSecurityGroupID, InstanceSecurityGroupID: net.InstanceSecurityGroupID}
			if net.VPCID != want.VPCID || !slices.Equal(net.SubnetIDs, want.SubnetIDs) ||
				!slices.Equal(net.AvailabilityZones, want.AvailabilityZones) || net.ALBSecurityGroupID == "" ||
				net.InstanceSecurityGroupID == "" || net.ALBSecurityGroupID == net.InstanceSecurityGroupID {
				t.Errorf("network = %+v, want %+v", net, want)
			}
		})
	}
}

func TestCreateSecurityGroupsTwiceCreatesNothingTwice(t *testing.T) {
	c := newFakeCloud(t)
	doc := testDoc()
	doc.Config.SSHCIDRs = []string{"198.51.100.7/32"}
	first := withNetwork(t, c, doc)
	mark := c.mark()
	second := withNetwork(t, c, doc)
	if m := c.mutations(mark); len(m) != 0 {
		t.Errorf("second run changed things: %v", m)
	}
	if !reflect.DeepEqual(first.Resources.Network, second.Resources.Network) {
		t.Errorf("second run found other groups: %+v, then %+v", first.Resources.Network, second.Resources.Network)
	}
	if len(c.sgs) != 2 {
		t.Errorf("%d security groups exist, want 2", len(c.sgs))
	}
}

// A rule added between the lookup and the authorize (a concurrent retry) answers
// InvalidPermission.Duplicate; the stage carries on with the other rules.
func TestCreateSecurityGroupsToleratesDuplicateRules(t *testing.T) {
	c := newFakeCloud(t)
	c.failOnce("AuthorizeSecurityGroupIngress", fakeErr("InvalidPermission.Duplicate", "already there"))
	doc := testDoc()
	doc.Config.SSHCIDRs = []string{"198.51.100.7/32"}
	doc = withNetwork(t, c, doc)
	if got := rulesSent(c, doc.Resources.Network.InstanceSecurityGroupID); len(got) != 2 {
		t.Errorf("instance rules sent = %v, want both despite the duplicate answer on the ALB's", got)
	}
}

func TestCreateSecurityGroupsNetwork(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(c *fakeCloud)
		subnets     []string
		wantSubnets []string
		wantField   string // a BadInputError on this field
	}{
		{name: "given subnets, in their order", subnets: []string{"subnet-0c", "subnet-0a"},
			wantSubnets: []string{"subnet-0c", "subnet-0a"}},
		{name: "one subnet per zone", subnets: []string{"subnet-0a", "subnet-1a", "subnet-0b"},
			setup:       func(c *fakeCloud) { c.addSubnet("subnet-1a", fakeDefaultVPC, "us-east-1a", false) },
			wantSubnets: []string{"subnet-0a", "subnet-0b"}},
		{name: "one zone only", subnets: []string{"subnet-0a", "subnet-1a"}, wantField: "subnetIds",
			setup: func(c *fakeCloud) { c.addSubnet("subnet-1a", fakeDefaultVPC, "us-east-1a", false) }},
		{name: "unknown subnet", subnets: []string{"subnet-0a", "subnet-nope"}, wantField: "subnetIds"},
		{name: "two VPCs", subnets: []string{"subnet-0a", "subnet-9b"}, wantField: "subnetIds",
			setup: func(c *fakeCloud) {
				c.addVPC("vpc-other", false)
				c.addSubnet("subnet-9b", "vpc-other", "us-east-1b", false)
			}},
		{name: "no default VPC", wantField: "subnetIds",
			setup: func(c *fakeCloud) { c.vpcs[fakeDefaultVPC].IsDefault = false }},
		{name: "default VPC with one default subnet", wantField: "subnetIds",
			setup: func(c *fakeCloud) {
				c.subnets["subnet-0b"].DefaultForAZ = false
				c.subnets["subnet-0c"].DefaultForAZ = false
			}},
		{name: "default subnets sorted by zone", wantSubnets: []string{"subnet-0a", "subnet-0b", "subnet-0c", "subnet-0d"},
			setup: func(c *fakeCloud) { c.addSubnet("subnet-0d", fakeDefaultVPC, "us-east-1d", true) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCloud(t)
			if tc.setup != nil {
				tc.setup(c)
			}
			doc := testDoc()
			doc.Config.SubnetIDs = tc.subnets
			out, err := c.stages().CreateSecurityGroups(context.Background(), doc)
			if tc.wantField != "" {
				assertBadInput(t, err, tc.wantField)
				if n := c.count("CreateSecurityGroup"); n != 0 {
					t.Errorf("bad input, yet %d security groups created", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Resources.Network.SubnetIDs; !slices.Equal(got, tc.wantSubnets) {
				t.Errorf("subnets = %v, want %v", got, tc.wantSubnets)
			}
			if len(out.Resources.Network.AvailabilityZones) != len(tc.wantSubnets) {
				t.Errorf("zones = %v for subnets %v", out.Resources.Network.AvailabilityZones, tc.wantSubnets)
			}
		})
	}
}

func TestUndoSecurityGroups(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	doc := withNetwork(t, c, testDoc())
	doc = mustRun(t)(s.LaunchBase(ctx, doc))

	// The base instance still uses the instance group, whose rule uses the ALB group.
	remaining, err := s.undoSecurityGroups(ctx, testRunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(remaining) != 2 {
		t.Fatalf("remaining = %v, want both groups in use", remaining)
	}

	c.setInstanceState(doc.Resources.Image.BaseInstanceID, "terminated")
	remaining, err = s.undoSecurityGroups(ctx, testRunID)
	if err != nil || len(remaining) != 0 {
		t.Fatalf("after the instance is gone: remaining %v, error %v", remaining, err)
	}
	deletes := fakeInputs[ec2.DeleteSecurityGroupInput](c, "DeleteSecurityGroup")
	if last := deletes[len(deletes)-2:]; aws.ToString(last[0].GroupId) != doc.Resources.Network.InstanceSecurityGroupID {
		t.Errorf("deleted %s first, want the instance group (its rule names the ALB group)", aws.ToString(last[0].GroupId))
	}
	if left := c.tagged(testRunID); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}

	mark := c.mark()
	if remaining, err = s.undoSecurityGroups(ctx, testRunID); err != nil || len(remaining) != 0 {
		t.Fatalf("second undo: remaining %v, error %v", remaining, err)
	}
	if m := c.mutations(mark); len(m) != 0 {
		t.Errorf("second undo changed things: %v", m)
	}
}

func TestUndoSecurityGroupsReportsOtherErrors(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	withNetwork(t, c, testDoc())
	c.fail("DeleteSecurityGroup", fakeErr("UnauthorizedOperation", "no"))
	if _, err := c.stages().undoSecurityGroups(ctx, testRunID); ErrorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("got %v, want the UnauthorizedOperation error", err)
	}
	c.clearFail("DeleteSecurityGroup")
	c.failOnce("DeleteSecurityGroup", fakeErr("InvalidGroup.NotFound", "gone"))
	if _, err := c.stages().undoSecurityGroups(ctx, testRunID); err != nil {
		t.Fatalf("a group already gone is not an error: %v", err)
	}
}
