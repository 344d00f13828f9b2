package stages_test

// The fake's EC2 claims, one row each: security groups, instances, instance types and
// network interfaces, images and snapshots (see contract_test.go).

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/stages"
)

var ec2ContractRows = []contractRow{
	// Security groups.
	{
		name:  "InvalidGroup.Duplicate",
		claim: "CreateSecurityGroup of a name the VPC already has answers InvalidGroup.Duplicate",
		run: func(e *contractEnv) {
			name := e.name + "-dup"
			e.group(name)
			_, err := e.createGroup(name, e.vpc)
			e.wantCode("the second CreateSecurityGroup", err, "InvalidGroup.Duplicate")
		},
	},
	{
		name:  "InvalidPermission.Duplicate/cidr",
		claim: "authorizing an IPv4 CIDR rule the group has answers InvalidPermission.Duplicate",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-cidr")
			perm := ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80),
				IpRanges: []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}
			e.must("the first AuthorizeSecurityGroupIngress", e.authorize(g, perm))
			e.wantCode("the second AuthorizeSecurityGroupIngress", e.authorize(g, perm), "InvalidPermission.Duplicate")
		},
	},
	{
		name:  "InvalidPermission.Duplicate/cidr6",
		claim: "authorizing an IPv6 CIDR rule the group has answers InvalidPermission.Duplicate",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-cidr6")
			perm := ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80),
				Ipv6Ranges: []ec2types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}}
			e.must("the first AuthorizeSecurityGroupIngress", e.authorize(g, perm))
			e.wantCode("the second AuthorizeSecurityGroupIngress", e.authorize(g, perm), "InvalidPermission.Duplicate")
		},
	},
	{
		name:  "InvalidPermission.Duplicate/group",
		claim: "authorizing a rule from another group that the group has answers InvalidPermission.Duplicate",
		run: func(e *contractEnv) {
			src := e.group(e.name + "-src")
			dst := e.group(e.name + "-dst")
			perm := groupPermission(src)
			e.must("the first AuthorizeSecurityGroupIngress", e.authorize(dst, perm))
			e.wantCode("the second AuthorizeSecurityGroupIngress", e.authorize(dst, perm), "InvalidPermission.Duplicate")
		},
	},
	{
		name:  "DependencyViolation/instance",
		claim: "deleting a group that an instance uses answers DependencyViolation",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-inst")
			e.instance(g)
			_, err := e.ec2.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(g)})
			e.wantCode("DeleteSecurityGroup", err, "DependencyViolation")
		},
		motoSkip: "moto 5.2.1 deletes a security group whatever still uses it (no dependency check); AWS answers DependencyViolation for a group associated with an instance (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html)",
	},
	{
		name:  "DependencyViolation/rule",
		claim: "deleting a group that another group's rule names answers DependencyViolation",
		run: func(e *contractEnv) {
			src := e.group(e.name + "-src")
			dst := e.group(e.name + "-dst")
			e.must("AuthorizeSecurityGroupIngress", e.authorize(dst, groupPermission(src)))
			_, err := e.ec2.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(src)})
			e.wantCode("DeleteSecurityGroup", err, "DependencyViolation")
		},
		motoSkip: "moto 5.2.1 deletes a security group whatever still uses it (no dependency check); AWS answers DependencyViolation for a group referenced by another group (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html)",
	},
	{
		name:  "DependencyViolation/load-balancer",
		claim: "deleting a group that a load balancer uses answers DependencyViolation",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-alb")
			e.loadBalancer(e.name+"-lb", g)
			_, err := e.ec2.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(g)})
			e.wantCode("DeleteSecurityGroup", err, "DependencyViolation")
		},
		motoSkip: "moto 5.2.1 deletes a security group whatever still uses it (no dependency check); AWS answers DependencyViolation for a group associated with a network interface, as a load balancer's are (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteSecurityGroup.html)",
	},
	{
		name:  "InvalidGroup.NotFound",
		claim: "deleting or describing a group that is gone answers InvalidGroup.NotFound",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-gone")
			_, err := e.ec2.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(g)})
			e.must("the first DeleteSecurityGroup", err)
			_, err = e.ec2.DeleteSecurityGroup(e.ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(g)})
			e.wantCode("the second DeleteSecurityGroup", err, "InvalidGroup.NotFound")
			_, err = e.ec2.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{g}})
			e.wantCode("DescribeSecurityGroups", err, "InvalidGroup.NotFound")
		},
	},
	{
		name:  "InvalidVpcID.NotFound",
		claim: "a group in a VPC that does not exist answers InvalidVpcID.NotFound",
		run: func(e *contractEnv) {
			_, err := e.createGroup(e.name+"-novpc", noVPC)
			e.wantCode("CreateSecurityGroup", err, "InvalidVpcID.NotFound")
		},
		motoSkip: "moto 5.2.1 creates a group in a VPC that does not exist; AWS answers InvalidVpcID.NotFound (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)",
	},
	{
		name:  "filters/security-groups",
		claim: "DescribeSecurityGroups filters by tag:<key>, tag-key, group-name and vpc-id",
		run: func(e *contractEnv) {
			a := e.group(e.name + "-a")
			b := e.group(e.name + "-b")
			byFilter := func(filters ...ec2types.Filter) []string {
				out, err := e.ec2.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{Filters: filters})
				e.must("DescribeSecurityGroups", err)
				var ids []string
				for _, g := range out.SecurityGroups {
					ids = append(ids, aws.ToString(g.GroupId))
				}
				slices.Sort(ids)
				return ids
			}
			both := []string{a, b}
			slices.Sort(both)
			for _, c := range []struct {
				filters []ec2types.Filter
				want    []string
			}{
				{[]ec2types.Filter{filter("tag:"+contractTag, e.name+"-a")}, []string{a}},
				{[]ec2types.Filter{filter("tag-key", contractTag), filter("tag:"+contractTag, e.name+"-a", e.name+"-b")}, both},
				{[]ec2types.Filter{filter("vpc-id", e.vpc), filter("group-name", e.name+"-b")}, []string{b}},
				{[]ec2types.Filter{filter("vpc-id", noVPC), filter("group-name", e.name+"-b")}, nil},
			} {
				if got := byFilter(c.filters...); !slices.Equal(got, c.want) {
					e.t.Errorf("filters %s: got %v, want %v", stages.DescribeFilters(c.filters), got, c.want)
				}
			}
		},
	},

	// Instances.
	{
		name:  "instance-states",
		claim: "RunInstances answers pending, TerminateInstances shutting-down, and a terminated instance stays visible",
		run: func(e *contractEnv) {
			out, err := e.runInstances(&ec2.RunInstancesInput{})
			e.must("RunInstances", err)
			if got := out.Instances[0].State.Name; got != ec2types.InstanceStateNamePending {
				e.t.Errorf("RunInstances answered state %q, want pending", got)
			}
			id := aws.ToString(out.Instances[0].InstanceId)
			term, err := e.ec2.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
			e.must("TerminateInstances", err)
			if got := term.TerminatingInstances[0].CurrentState.Name; got != ec2types.InstanceStateNameShuttingDown {
				e.t.Errorf("TerminateInstances answered state %q, want shutting-down", got)
			}
			desc, err := e.ec2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
			e.must("DescribeInstances after TerminateInstances", err)
			if len(desc.Reservations) != 1 || len(desc.Reservations[0].Instances) != 1 {
				e.t.Fatalf("DescribeInstances after TerminateInstances: %d reservations, want the instance", len(desc.Reservations))
			}
			switch got := desc.Reservations[0].Instances[0].State.Name; got {
			case ec2types.InstanceStateNameShuttingDown, ec2types.InstanceStateNameTerminated:
			default:
				e.t.Errorf("the terminated instance is %q", got)
			}
		},
	},
	{
		name:  "InvalidInstanceID.NotFound",
		claim: "DescribeInstances, GetConsoleOutput and TerminateInstances of an unknown instance answer InvalidInstanceID.NotFound",
		run: func(e *contractEnv) {
			_, err := e.ec2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{noInstance}})
			e.wantCode("DescribeInstances", err, "InvalidInstanceID.NotFound")
			_, err = e.ec2.GetConsoleOutput(e.ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(noInstance)})
			e.wantCode("GetConsoleOutput", err, "InvalidInstanceID.NotFound")
			_, err = e.ec2.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{noInstance}})
			e.wantCode("TerminateInstances", err, "InvalidInstanceID.NotFound")
		},
	},
	{
		name:  "InvalidAMIID.NotFound/RunInstances",
		claim: "RunInstances from an AMI that does not exist answers InvalidAMIID.NotFound",
		run: func(e *contractEnv) {
			_, err := e.runInstances(&ec2.RunInstancesInput{ImageId: aws.String(noImage)})
			e.wantCode("RunInstances", err, "InvalidAMIID.NotFound")
		},
		motoSkip: "moto 5.2.1 launches from an AMI that does not exist unless MOTO_ENABLE_AMI_VALIDATION is set, which the shared moto does not set; AWS answers InvalidAMIID.NotFound (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)",
	},
	{
		name:  "InvalidSubnetID.NotFound",
		claim: "RunInstances into, and DescribeSubnets of, a subnet that does not exist answer InvalidSubnetID.NotFound",
		run: func(e *contractEnv) {
			_, err := e.runInstances(&ec2.RunInstancesInput{SubnetId: aws.String(noSubnet)})
			e.wantCode("RunInstances", err, "InvalidSubnetID.NotFound")
			_, err = e.ec2.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{noSubnet}})
			e.wantCode("DescribeSubnets", err, "InvalidSubnetID.NotFound")
		},
	},
	{
		name:  "InvalidGroup.NotFound/RunInstances",
		claim: "RunInstances with a security group that does not exist answers InvalidGroup.NotFound",
		run: func(e *contractEnv) {
			_, err := e.runInstances(&ec2.RunInstancesInput{SecurityGroupIds: []string{noGroup}})
			e.wantCode("RunInstances", err, "InvalidGroup.NotFound")
		},
	},
	// Instance types, their zones, and where an instance's network settings live.
	{
		name:  "InvalidInstanceType",
		claim: "DescribeInstanceTypes answers each type's default vCPUs, and InvalidInstanceType for a type that does not exist",
		run: func(e *contractEnv) {
			out, err := e.ec2.DescribeInstanceTypes(e.ctx, &ec2.DescribeInstanceTypesInput{
				InstanceTypes: []ec2types.InstanceType{"t2.micro", "t3.micro"}})
			e.must("DescribeInstanceTypes", err)
			got := map[ec2types.InstanceType]int32{}
			for _, t := range out.InstanceTypes {
				got[t.InstanceType] = aws.ToInt32(t.VCpuInfo.DefaultVCpus)
			}
			if got["t2.micro"] != 1 || got["t3.micro"] != 2 || len(got) != 2 {
				e.t.Fatalf("vCPUs %v, want t2.micro 1, t3.micro 2", got)
			}
			_, err = e.ec2.DescribeInstanceTypes(e.ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"t9.nano"}})
			e.wantCode("DescribeInstanceTypes", err, "InvalidInstanceType")
		},
	},
	{
		name:  "offerings/gap",
		claim: "DescribeInstanceTypeOfferings per availability zone leaves out a zone that does not offer the type (t3.micro in us-east-1e)",
		run: func(e *contractEnv) {
			out, err := e.ec2.DescribeInstanceTypeOfferings(e.ctx, &ec2.DescribeInstanceTypeOfferingsInput{
				LocationType: ec2types.LocationTypeAvailabilityZone,
				Filters:      []ec2types.Filter{filter("instance-type", "t3.micro"), filter("location", "us-east-1a", "us-east-1e")}})
			e.must("DescribeInstanceTypeOfferings", err)
			var zones []string
			for _, o := range out.InstanceTypeOfferings {
				zones = append(zones, aws.ToString(o.Location))
			}
			if !slices.Equal(zones, []string{"us-east-1a"}) {
				e.t.Fatalf("t3.micro offered in %v of us-east-1a and us-east-1e, want only us-east-1a", zones)
			}
		},
	},
	{
		name:  "Unsupported",
		claim: "RunInstances in a zone that does not offer the type answers Unsupported",
		run: func(e *contractEnv) {
			subnets, err := e.ec2.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
				filter("vpc-id", e.vpc), filter("availability-zone", "us-east-1e")}})
			e.must("DescribeSubnets", err)
			if len(subnets.Subnets) == 0 {
				e.t.Fatal("no default subnet in us-east-1e")
			}
			_, err = e.runInstances(&ec2.RunInstancesInput{SubnetId: subnets.Subnets[0].SubnetId})
			e.wantCode("RunInstances", err, "Unsupported")
		},
		motoSkip: "moto 5.2.1 launches any type in any zone, though its own offerings leave t3.micro out of us-east-1e; AWS answers Unsupported, \"Your requested instance type (t3.micro) is not supported in your requested Availability Zone (us-east-1e)\" (https://repost.aws/knowledge-center/ec2-instance-type-not-supported-az-error)",
	},
	{
		name:  "InvalidParameterCombination/NetworkInterfaces",
		claim: "RunInstances with a network interface and an instance-level subnet answers InvalidParameterCombination",
		run: func(e *contractEnv) {
			_, err := e.runInstances(&ec2.RunInstancesInput{SubnetId: aws.String(e.subnets[0]),
				NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SubnetId: aws.String(e.subnets[0])}}})
			e.wantCode("RunInstances", err, "InvalidParameterCombination")
		},
	},
	{
		name:  "NetworkInterfaces/no-public-address",
		claim: "an instance whose network interface says AssociatePublicIpAddress false has no public address, in a default subnet too",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-ni")
			out, err := e.runInstances(&ec2.RunInstancesInput{NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{
				DeviceIndex: aws.Int32(0), SubnetId: aws.String(e.subnets[0]), Groups: []string{g},
				AssociatePublicIpAddress: aws.Bool(false)}}})
			e.must("RunInstances", err)
			in := e.describeInstance(aws.ToString(out.Instances[0].InstanceId))
			if aws.ToString(in.SubnetId) != e.subnets[0] || aws.ToString(in.PublicIpAddress) != "" {
				e.t.Fatalf("subnet %s, public address %q; want %s and none", aws.ToString(in.SubnetId), aws.ToString(in.PublicIpAddress), e.subnets[0])
			}
			plain := e.describeInstance(e.instance())
			if aws.ToString(plain.PublicIpAddress) == "" {
				e.t.Fatal("an instance launched without an interface into a default subnet has no public address")
			}
		},
	},
	{
		name:  "NetworkInterfaces/groups",
		claim: "an instance launched with its groups in the network interface lists them as its security groups",
		run: func(e *contractEnv) {
			g := e.group(e.name + "-nig")
			out, err := e.runInstances(&ec2.RunInstancesInput{NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{
				DeviceIndex: aws.Int32(0), SubnetId: aws.String(e.subnets[0]), Groups: []string{g}}}})
			e.must("RunInstances", err)
			in := e.describeInstance(aws.ToString(out.Instances[0].InstanceId))
			if len(in.SecurityGroups) != 1 || aws.ToString(in.SecurityGroups[0].GroupId) != g {
				e.t.Fatalf("security groups %+v, want %s", in.SecurityGroups, g)
			}
		},
		motoSkip: "moto 5.2.1 lists no SecurityGroups for an instance whose groups were given in NetworkInterfaces (its interface has them); AWS lists the primary interface's groups (fixed in LocalStack's moto fork, https://github.com/localstack/moto/pull/145)",
	},
	{
		name:  "IncorrectInstanceState/StartInstances",
		claim: "StartInstances of a terminated instance answers IncorrectInstanceState",
		run: func(e *contractEnv) {
			id := e.instance()
			e.terminate(id)
			_, err := e.ec2.StartInstances(e.ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
			e.wantCode("StartInstances", err, "IncorrectInstanceState")
		},
		motoSkip: "moto 5.2.1 starts a terminated instance again; AWS answers IncorrectInstanceState, \"The instance '...' is not in a state from which it can be started\" (https://github.com/aws-solutions/instance-scheduler-on-aws/issues/281)",
	},
	{
		name:  "InvalidParameterValue/filter",
		claim: "an unknown filter name answers InvalidParameterValue (so that a misspelt filter fails)",
		run: func(e *contractEnv) {
			_, err := e.ec2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{
				Filters: []ec2types.Filter{filter("instance-state", "running")}})
			e.wantCode("DescribeInstances", err, "InvalidParameterValue")
		},
		motoSkip: "moto 5.2.1 answers an unknown filter name with HTTP 500 (FilterNotImplementedError); AWS answers InvalidParameterValue, \"The filter '...' is invalid\" (https://github.com/boto/boto3/issues/1299)",
	},

	// Images and snapshots.
	{
		name:  "InvalidAMIName.Duplicate",
		claim: "CreateImage of a name the account's images have answers InvalidAMIName.Duplicate",
		run: func(e *contractEnv) {
			inst := e.instance()
			name := e.name + "-image"
			e.image(inst, name)
			_, err := e.createImage(inst, name)
			e.wantCode("the second CreateImage", err, "InvalidAMIName.Duplicate")
		},
		motoSkip: "moto 5.2.1 registers a second image of a name in use; AWS answers InvalidAMIName.Duplicate (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)",
	},
	{
		name:  "DescribeImages/self-name",
		claim: "DescribeImages of owner self with a name filter finds the account's image of that name, and only it",
		run: func(e *contractEnv) {
			inst := e.instance()
			img := e.image(inst, e.name+"-image")
			e.image(inst, e.name+"-other")
			out, err := e.ec2.DescribeImages(e.ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
				Filters: []ec2types.Filter{filter("name", e.name+"-image")}})
			e.must("DescribeImages", err)
			if len(out.Images) != 1 || aws.ToString(out.Images[0].ImageId) != img {
				e.t.Errorf("DescribeImages of owner self and name %s-image: %d images, want %s", e.name, len(out.Images), img)
			}
		},
	},
	{
		name:  "CreateImage/snapshot",
		claim: "CreateImage makes one snapshot, tagged from the snapshot TagSpecification, found by owner self and tag",
		run: func(e *contractEnv) {
			img := e.image(e.instance(), e.name+"-image")
			snaps := e.snapshotsOf(img)
			if len(snaps) != 1 {
				e.t.Fatalf("the image has %d snapshots %v, want 1", len(snaps), snaps)
			}
			out, err := e.ec2.DescribeSnapshots(e.ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
				Filters: []ec2types.Filter{filter("tag:"+contractTag, e.name+"-image")}})
			e.must("DescribeSnapshots", err)
			var ids []string
			for _, s := range out.Snapshots {
				ids = append(ids, aws.ToString(s.SnapshotId))
			}
			if !slices.Equal(ids, snaps) {
				e.t.Errorf("DescribeSnapshots by tag: %v, want the image's %v", ids, snaps)
			}
		},
	},
	{
		name:  "InvalidSnapshot.InUse",
		claim: "DeleteSnapshot of a registered image's snapshot answers InvalidSnapshot.InUse, and succeeds once the image is deregistered",
		run: func(e *contractEnv) {
			img := e.image(e.instance(), e.name+"-image")
			snaps := e.snapshotsOf(img)
			if len(snaps) == 0 {
				e.t.Fatalf("the image %s has no snapshot", img)
			}
			_, err := e.ec2.DeleteSnapshot(e.ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snaps[0])})
			e.wantCode("DeleteSnapshot before DeregisterImage", err, "InvalidSnapshot.InUse")
			_, err = e.ec2.DeregisterImage(e.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(img)})
			e.must("DeregisterImage", err)
			_, err = e.ec2.DeleteSnapshot(e.ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snaps[0])})
			e.must("DeleteSnapshot after DeregisterImage", err)
		},
	},
	{
		name:  "InvalidAMIID.NotFound/DescribeImages",
		claim: "DescribeImages and DeregisterImage of an AMI that does not exist answer InvalidAMIID.NotFound",
		run: func(e *contractEnv) {
			_, err := e.ec2.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{noImage}})
			e.wantCode("DescribeImages", err, "InvalidAMIID.NotFound")
			_, err = e.ec2.DeregisterImage(e.ctx, &ec2.DeregisterImageInput{ImageId: aws.String(noImage)})
			e.wantCode("DeregisterImage", err, "InvalidAMIID.NotFound")
		},
	},
	{
		name:  "InvalidSnapshot.NotFound",
		claim: "DescribeSnapshots and DeleteSnapshot of a snapshot that does not exist answer InvalidSnapshot.NotFound",
		run: func(e *contractEnv) {
			_, err := e.ec2.DescribeSnapshots(e.ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{noSnapshot}})
			e.wantCode("DescribeSnapshots", err, "InvalidSnapshot.NotFound")
			_, err = e.ec2.DeleteSnapshot(e.ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(noSnapshot)})
			e.wantCode("DeleteSnapshot", err, "InvalidSnapshot.NotFound")
		},
	},
	{
		name:  "InvalidAMIName.Malformed",
		claim: "CreateImage with a name shorter than 3 characters answers InvalidAMIName.Malformed",
		run: func(e *contractEnv) {
			_, err := e.createImage(e.instance(), "ab")
			e.wantCode("CreateImage", err, "InvalidAMIName.Malformed")
		},
		motoSkip: "moto 5.2.1 accepts a 2-character image name; AWS takes 3 to 128 characters (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateImage.html) and answers InvalidAMIName.Malformed (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html)",
	},
	{
		name:  "InvalidParameterValue/CreateImage",
		claim: "CreateImage of a terminated instance answers InvalidParameterValue",
		run: func(e *contractEnv) {
			id := e.instance()
			e.terminate(id)
			_, err := e.createImage(id, e.name+"-image")
			e.wantCode("CreateImage", err, "InvalidParameterValue")
		},
		motoSkip: "moto 5.2.1 images a terminated instance; AWS refuses with InvalidParameterValue (\"Instance is not in state 'running' or 'stopped'\"), as quoted in https://github.com/hashicorp/packer/pull/9579 and https://github.com/aws-samples/aws-systemsmanagerautomation-with-asglifecyclehooks/issues/2",
	},
	{
		name:  "InvalidAMIID.Unavailable",
		claim: "a new image is pending, and RunInstances from it answers InvalidAMIID.Unavailable",
		run: func(e *contractEnv) {
			img := e.image(e.instance(), e.name+"-image")
			out, err := e.ec2.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{img}})
			e.must("DescribeImages", err)
			if len(out.Images) != 1 || out.Images[0].State != ec2types.ImageStatePending {
				e.t.Fatalf("the new image: %+v, want one image, pending", out.Images)
			}
			_, err = e.runInstances(&ec2.RunInstancesInput{ImageId: aws.String(img)})
			e.wantCode("RunInstances", err, "InvalidAMIID.Unavailable")
		},
		motoSkip: "moto 5.2.1 makes a new image available at once, so none is pending; AWS answers InvalidAMIID.Unavailable, \"AMI '...' is pending, and cannot be run\" (https://github.com/hashicorp/packer/issues/12162)",
	},
}
