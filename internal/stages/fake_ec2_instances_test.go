package stages

// The fake cloud's EC2 instances and console output (see fake_test.go).

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// --- EC2: instances ------------------------------------------------------------------

func (f *fakeEC2) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("RunInstances", in); err != nil {
		return nil, err
	}
	img := c.images[aws.ToString(in.ImageId)]
	if img == nil {
		return nil, fakeErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", aws.ToString(in.ImageId))
	}
	if img.State != "available" {
		return nil, fakeErr("InvalidAMIID.Unavailable", "The image %s is %s", img.ID, img.State)
	}
	minCount, maxCount := aws.ToInt32(in.MinCount), aws.ToInt32(in.MaxCount)
	if minCount < 1 || maxCount < minCount {
		return nil, fakeErr("InvalidParameterValue", "MinCount %d / MaxCount %d", minCount, maxCount)
	}
	subnetID, groups := aws.ToString(in.SubnetId), in.SecurityGroupIds
	var publicIP *bool
	if len(in.NetworkInterfaces) > 0 {
		// As on AWS: with a network interface, its subnet and groups go inside it.
		if subnetID != "" {
			return nil, fakeErr("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
		}
		if len(groups) > 0 {
			return nil, fakeErr("InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request")
		}
		if len(in.NetworkInterfaces) != 1 || aws.ToInt32(in.NetworkInterfaces[0].DeviceIndex) != 0 {
			return nil, fakeErr("InvalidParameterValue", "the fake takes one network interface, at device index 0")
		}
		ni := in.NetworkInterfaces[0]
		subnetID, groups, publicIP = aws.ToString(ni.SubnetId), ni.Groups, ni.AssociatePublicIpAddress
	}
	if subnetID == "" {
		subnetID = fakeDefaultSubnets[0]
	}
	sn := c.subnets[subnetID]
	if sn == nil {
		return nil, fakeErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
	}
	for _, g := range groups {
		if c.sgs[g] == nil {
			return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
		}
	}
	if err := c.checkLaunch(string(in.InstanceType), sn.AZ, maxCount); err != nil {
		return nil, err
	}
	public := sn.MapPublicIP
	if publicIP != nil {
		public = *publicIP
	}
	if in.UserData != nil {
		if _, err := base64.StdEncoding.DecodeString(*in.UserData); err != nil {
			return nil, fakeErr("InvalidParameterValue", "Invalid BASE64 encoding of user data")
		}
	}
	for _, s := range in.TagSpecifications {
		if s.ResourceType != ec2types.ResourceTypeInstance && s.ResourceType != ec2types.ResourceTypeVolume &&
			s.ResourceType != ec2types.ResourceTypeNetworkInterface {
			return nil, fakeErr("InvalidParameterValue", "cannot tag %s at RunInstances", s.ResourceType)
		}
	}
	out := &ec2.RunInstancesOutput{ReservationId: aws.String(c.newID("r")), OwnerId: aws.String(fakeAccount)}
	for i := int32(0); i < maxCount; i++ {
		inst := &fakeInstance{ID: c.newID("i"), ImageID: img.ID, InstanceType: string(in.InstanceType),
			SubnetID: sn.ID, VPCID: sn.VPCID, AZ: sn.AZ, KeyName: aws.ToString(in.KeyName),
			UserData: aws.ToString(in.UserData), State: "pending",
			SecurityGroupIDs: slices.Clone(groups),
			Tags:             fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeInstance), Input: in}
		inst.PrivateDNS = fmt.Sprintf("ip-172-31-0-%d.ec2.internal", c.seq)
		if public {
			inst.PublicIP = fmt.Sprintf("198.51.100.%d", c.seq%250+1)
		}
		inst.LaunchTime = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Add(time.Duration(c.seq) * time.Second)
		c.instances[inst.ID] = inst
		c.order = append(c.order, inst.ID)
		out.Instances = append(out.Instances, c.describeInstance(inst))
	}
	return out, nil
}

func (c *fakeCloud) describeInstance(in *fakeInstance) ec2types.Instance {
	codes := map[string]int32{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
	out := ec2types.Instance{InstanceId: aws.String(in.ID), ImageId: aws.String(in.ImageID),
		InstanceType: ec2types.InstanceType(in.InstanceType), SubnetId: aws.String(in.SubnetID),
		VpcId: aws.String(in.VPCID), Placement: &ec2types.Placement{AvailabilityZone: aws.String(in.AZ)},
		State:          &ec2types.InstanceState{Name: ec2types.InstanceStateName(in.State), Code: aws.Int32(codes[in.State])},
		PrivateDnsName: aws.String(in.PrivateDNS), RootDeviceName: aws.String(fakeRootDevice),
		LaunchTime: aws.Time(in.LaunchTime),
		Tags:       fakeEC2Tags(in.Tags)}
	if in.KeyName != "" {
		out.KeyName = aws.String(in.KeyName)
	}
	// The instance's groups are its primary network interface's, as on AWS.
	ni := ec2types.InstanceNetworkInterface{SubnetId: aws.String(in.SubnetID), VpcId: aws.String(in.VPCID),
		Attachment: &ec2types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(0)}}
	for _, g := range in.SecurityGroupIDs {
		out.SecurityGroups = append(out.SecurityGroups, ec2types.GroupIdentifier{GroupId: aws.String(g)})
		ni.Groups = append(ni.Groups, ec2types.GroupIdentifier{GroupId: aws.String(g)})
	}
	if in.PublicIP != "" && in.State != "terminated" {
		out.PublicIpAddress = aws.String(in.PublicIP)
		ni.Association = &ec2types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(in.PublicIP)}
	}
	out.NetworkInterfaces = []ec2types.InstanceNetworkInterface{ni}
	return out
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeInstances", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "instance-state-name", "subnet-id", "image-id", "instance-id", "vpc-id"); err != nil {
		return nil, err
	}
	c.maybeSettle()
	for _, id := range in.InstanceIds {
		if c.instances[id] == nil {
			return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	res := ec2types.Reservation{ReservationId: aws.String("r-0fake"), OwnerId: aws.String(fakeAccount)}
	for _, id := range c.order {
		inst, ok := c.instances[id]
		if !ok || (len(in.InstanceIds) > 0 && !slices.Contains(in.InstanceIds, id)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, inst.Tags, func(name string) ([]string, bool) {
			switch name {
			case "instance-state-name":
				return fakeOne(inst.State), true
			case "subnet-id":
				return fakeOne(inst.SubnetID), true
			case "image-id":
				return fakeOne(inst.ImageID), true
			case "instance-id":
				return fakeOne(inst.ID), true
			case "vpc-id":
				return fakeOne(inst.VPCID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			res.Instances = append(res.Instances, c.describeInstance(inst))
		}
	}
	out := &ec2.DescribeInstancesOutput{}
	if len(res.Instances) > 0 {
		out.Reservations = []ec2types.Reservation{res}
	}
	return out, nil
}

func (c *fakeCloud) instancesByID(ids []string) ([]*fakeInstance, error) {
	var out []*fakeInstance
	for _, id := range ids {
		inst := c.instances[id]
		if inst == nil {
			return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		out = append(out, inst)
	}
	return out, nil
}

func (f *fakeEC2) StartInstances(_ context.Context, in *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("StartInstances", in); err != nil {
		return nil, err
	}
	insts, err := c.instancesByID(in.InstanceIds)
	if err != nil {
		return nil, err
	}
	out := &ec2.StartInstancesOutput{}
	for _, inst := range insts {
		switch inst.State {
		case "terminated", "shutting-down", "stopping":
			return nil, fakeErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started", inst.ID)
		case "stopped":
			if err := c.checkLaunch(inst.InstanceType, inst.AZ, 1); err != nil {
				return nil, err
			}
		}
	}
	for _, inst := range insts {
		prev := inst.State
		if prev == "stopped" {
			inst.State = "pending"
		}
		out.StartingInstances = append(out.StartingInstances, ec2types.InstanceStateChange{InstanceId: aws.String(inst.ID),
			PreviousState: &ec2types.InstanceState{Name: ec2types.InstanceStateName(prev)},
			CurrentState:  &ec2types.InstanceState{Name: ec2types.InstanceStateName(inst.State)}})
	}
	return out, nil
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("TerminateInstances", in); err != nil {
		return nil, err
	}
	insts, err := c.instancesByID(in.InstanceIds)
	if err != nil {
		return nil, err
	}
	out := &ec2.TerminateInstancesOutput{}
	for _, inst := range insts {
		prev := inst.State
		if prev != "terminated" {
			inst.State = "shutting-down"
		}
		out.TerminatingInstances = append(out.TerminatingInstances, ec2types.InstanceStateChange{InstanceId: aws.String(inst.ID),
			PreviousState: &ec2types.InstanceState{Name: ec2types.InstanceStateName(prev)},
			CurrentState:  &ec2types.InstanceState{Name: ec2types.InstanceStateName(inst.State)}})
	}
	return out, nil
}

func (f *fakeEC2) GetConsoleOutput(_ context.Context, in *ec2.GetConsoleOutputInput, _ ...func(*ec2.Options)) (*ec2.GetConsoleOutputOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("GetConsoleOutput", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.InstanceId)
	if c.instances[id] == nil {
		return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	out := &ec2.GetConsoleOutputOutput{InstanceId: aws.String(id)}
	if text, ok := c.console[id]; ok {
		out.Output = aws.String(base64.StdEncoding.EncodeToString([]byte(text)))
	}
	return out, nil
}
