package stages_test

// The fake cloud (fake_test.go) claims to answer as AWS does in the cases the stages
// depend on. TestFakeContract holds it to that: each row of ec2ContractRows
// (contract_ec2_test.go) and elbContractRows (contract_elb_test.go) is one claim, a
// small scenario written once against the EC2API and ELBAPI interfaces, run against
// the fake (stages.NewFakeClients, from export_test.go) and against the package's
// moto. Where moto 5.2.1 itself differs from AWS, the row skips its moto half and
// says why, with a source for what AWS answers; the fake half always runs.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/amifleet/amifleet/internal/stages"
)

// Well-formed ids that name nothing, in either cloud.
const (
	noInstance = "i-0123456789abcdef0"
	noImage    = "ami-0123456789abcdef0"
	noSnapshot = "snap-0123456789abcdef0"
	noGroup    = "sg-0123456789abcdef0"
	noSubnet   = "subnet-0123456789abcdef0"
	noVPC      = "vpc-0123456789abcdef0"
)

// contractRow is one claim of the fake, and the scenario that checks it.
type contractRow struct {
	name string
	// claim is what the fake says AWS does.
	claim string
	run   func(e *contractEnv)
	// motoSkip, when set, is why moto 5.2.1 cannot check this claim: where it
	// differs from AWS, and what AWS answers (with the source).
	motoSkip string
}

func TestFakeContract(t *testing.T) {
	for _, row := range slices.Concat(ec2ContractRows, elbContractRows) {
		t.Run(row.name, func(t *testing.T) {
			t.Log(row.claim)
			t.Run("fake", func(t *testing.T) {
				ec2c, elbc := stages.NewFakeClients(t)
				row.run(newContractEnv(t, ec2c, elbc, false))
			})
			t.Run("moto", func(t *testing.T) {
				if row.motoSkip != "" {
					t.Skip(row.motoSkip)
				}
				cfg := motoCloud(t)
				row.run(newContractEnv(t, ec2.NewFromConfig(cfg), elb.NewFromConfig(cfg), true))
			})
		})
	}
}

// contractTag is the tag key the scenarios put on what they create.
const contractTag = "amifleet:contract"

// contractEnv is one cloud, as a contract scenario sees it: the clients, the default
// VPC, two of its default subnets in different zones, an Amazon AMI to launch, and a
// name no other run uses.
type contractEnv struct {
	t       *testing.T
	ctx     context.Context
	ec2     stages.EC2API
	elb     stages.ELBAPI
	name    string
	vpc     string
	subnets []string
	ami     string
}

// contractBase is what a scenario finds in a fresh account: the default VPC, two of
// its default subnets in different zones, and an available Amazon Linux AMI.
type contractBase struct {
	vpc     string
	subnets []string
	ami     string
}

// motoBase is contractBase for the package's one moto, found once: moto lists
// hundreds of Amazon AMIs, which takes most of a second.
var motoBase struct {
	once sync.Once
	base contractBase
	err  error
}

func newContractEnv(t *testing.T, ec2c stages.EC2API, elbc stages.ELBAPI, shared bool) *contractEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	var base contractBase
	var err error
	if shared {
		motoBase.once.Do(func() { motoBase.base, motoBase.err = findContractBase(ctx, ec2c) })
		base, err = motoBase.base, motoBase.err
	} else {
		base, err = findContractBase(ctx, ec2c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &contractEnv{t: t, ctx: ctx, ec2: ec2c, elb: elbc, name: newRunID(t, "ct"),
		vpc: base.vpc, subnets: base.subnets, ami: base.ami}
}

func findContractBase(ctx context.Context, ec2c stages.EC2API) (contractBase, error) {
	var b contractBase
	vpcs, err := ec2c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{filter("is-default", "true")}})
	if err != nil {
		return b, fmt.Errorf("DescribeVpcs: %w", err)
	}
	if len(vpcs.Vpcs) != 1 {
		return b, fmt.Errorf("%d default VPCs, want 1", len(vpcs.Vpcs))
	}
	b.vpc = aws.ToString(vpcs.Vpcs[0].VpcId)

	subnets, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		filter("vpc-id", b.vpc), filter("default-for-az", "true")}})
	if err != nil {
		return b, fmt.Errorf("DescribeSubnets: %w", err)
	}
	slices.SortFunc(subnets.Subnets, func(x, y ec2types.Subnet) int {
		return strings.Compare(aws.ToString(x.AvailabilityZone), aws.ToString(y.AvailabilityZone))
	})
	var zones []string
	for _, sn := range subnets.Subnets {
		if az := aws.ToString(sn.AvailabilityZone); !slices.Contains(zones, az) && len(b.subnets) < 2 {
			zones = append(zones, az)
			b.subnets = append(b.subnets, aws.ToString(sn.SubnetId))
		}
	}
	if len(b.subnets) < 2 {
		return b, fmt.Errorf("default subnets %v: want two zones", b.subnets)
	}

	images, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil {
		return b, fmt.Errorf("DescribeImages: %w", err)
	}
	for _, im := range images.Images {
		if im.State == ec2types.ImageStateAvailable && im.Platform == "" {
			b.ami = aws.ToString(im.ImageId)
			break
		}
	}
	if b.ami == "" {
		return b, fmt.Errorf("no available Amazon Linux AMI among %d", len(images.Images))
	}
	return b, nil
}

func (e *contractEnv) must(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func (e *contractEnv) wantCode(what string, err error, code string) {
	e.t.Helper()
	if got := stages.ErrorCode(err); got != code {
		e.t.Fatalf("%s: got %v (code %q), want %s", what, err, got, code)
	}
}

// later deletes something at the end of the test, whatever its outcome.
func (e *contractEnv) later(what string, del func(context.Context) error) {
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.cleanupErr(what, del(ctx))
	})
}

// cleanupErr logs a clean-up's error, but not the expected ones: what a scenario
// deleted already, an image on its way out, and a group whose instance is still
// shutting down (the fake's instances stay there).
func (e *contractEnv) cleanupErr(what string, err error) {
	code := stages.ErrorCode(err)
	if err == nil || strings.HasSuffix(code, "NotFound") || code == "InvalidAMIID.Unavailable" || code == "DependencyViolation" {
		return
	}
	e.t.Logf("clean up %s: %v", what, err)
}

func (e *contractEnv) tags(ec2Type ec2types.ResourceType, value string) []ec2types.TagSpecification {
	return []ec2types.TagSpecification{{ResourceType: ec2Type,
		Tags: []ec2types.Tag{{Key: aws.String(contractTag), Value: aws.String(value)}}}}
}

// createGroup creates a security group named name in vpc, tagged with its name.
func (e *contractEnv) createGroup(name, vpc string) (string, error) {
	out, err := e.ec2.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name),
		Description: aws.String("amifleet contract test"), VpcId: aws.String(vpc),
		TagSpecifications: e.tags(ec2types.ResourceTypeSecurityGroup, name)})
	if err != nil {
		return "", err
	}
	id := aws.ToString(out.GroupId)
	e.later("security group "+id, func(ctx context.Context) error {
		_, err := e.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
		return err
	})
	return id, nil
}

func (e *contractEnv) group(name string) string {
	e.t.Helper()
	id, err := e.createGroup(name, e.vpc)
	e.must("CreateSecurityGroup", err)
	return id
}

func (e *contractEnv) authorize(groupID string, perm ec2types.IpPermission) error {
	_, err := e.ec2.AuthorizeSecurityGroupIngress(e.ctx, &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String(groupID), IpPermissions: []ec2types.IpPermission{perm}})
	return err
}

func groupPermission(source string) ec2types.IpPermission {
	return ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80),
		UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: aws.String(source)}}}
}

// runInstances launches one t3.micro, in the first subnet (unless a network interface
// is given) from the env's AMI, unless in says otherwise.
func (e *contractEnv) runInstances(in *ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
	if in.ImageId == nil {
		in.ImageId = aws.String(e.ami)
	}
	if in.SubnetId == nil && len(in.NetworkInterfaces) == 0 {
		in.SubnetId = aws.String(e.subnets[0])
	}
	if in.InstanceType == "" {
		in.InstanceType = ec2types.InstanceTypeT3Micro
	}
	in.MinCount, in.MaxCount = aws.Int32(1), aws.Int32(1)
	in.TagSpecifications = e.tags(ec2types.ResourceTypeInstance, e.name)
	out, err := e.ec2.RunInstances(e.ctx, in)
	if err != nil {
		return nil, err
	}
	if len(out.Instances) != 1 {
		e.t.Fatalf("RunInstances answered %d instances, want 1", len(out.Instances))
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	e.later("instance "+id, func(ctx context.Context) error {
		_, err := e.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
		return err
	})
	return out, nil
}

func (e *contractEnv) instance(groups ...string) string {
	e.t.Helper()
	out, err := e.runInstances(&ec2.RunInstancesInput{SecurityGroupIds: groups})
	e.must("RunInstances", err)
	return aws.ToString(out.Instances[0].InstanceId)
}

// describeInstance is the instance of that id, as DescribeInstances answers it.
func (e *contractEnv) describeInstance(id string) ec2types.Instance {
	e.t.Helper()
	out, err := e.ec2.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	e.must("DescribeInstances", err)
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		e.t.Fatalf("DescribeInstances %s: %d reservations, want one instance", id, len(out.Reservations))
	}
	return out.Reservations[0].Instances[0]
}

func (e *contractEnv) terminate(id string) {
	e.t.Helper()
	_, err := e.ec2.TerminateInstances(e.ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	e.must("TerminateInstances", err)
}

// createImage makes an image of instance, tagged (image and snapshot) with its name.
func (e *contractEnv) createImage(instance, name string) (string, error) {
	out, err := e.ec2.CreateImage(e.ctx, &ec2.CreateImageInput{InstanceId: aws.String(instance), Name: aws.String(name),
		NoReboot: aws.Bool(true), TagSpecifications: append(e.tags(ec2types.ResourceTypeImage, name),
			e.tags(ec2types.ResourceTypeSnapshot, name)...)})
	if err != nil {
		return "", err
	}
	id := aws.ToString(out.ImageId)
	snaps := e.snapshotsOf(id)
	e.later("image "+id, func(ctx context.Context) error {
		_, err := e.ec2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)})
		e.cleanupErr("image "+id, err)
		for _, s := range snaps {
			_, err := e.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)})
			e.cleanupErr("snapshot "+s, err)
		}
		return nil
	})
	return id, nil
}

func (e *contractEnv) image(instance, name string) string {
	e.t.Helper()
	id, err := e.createImage(instance, name)
	e.must("CreateImage", err)
	return id
}

// snapshotsOf lists the EBS snapshots of an image's block devices.
func (e *contractEnv) snapshotsOf(image string) []string {
	e.t.Helper()
	out, err := e.ec2.DescribeImages(e.ctx, &ec2.DescribeImagesInput{ImageIds: []string{image}})
	e.must("DescribeImages", err)
	var snaps []string
	for _, im := range out.Images {
		for _, bd := range im.BlockDeviceMappings {
			if bd.Ebs != nil && aws.ToString(bd.Ebs.SnapshotId) != "" {
				snaps = append(snaps, aws.ToString(bd.Ebs.SnapshotId))
			}
		}
	}
	return snaps
}

func (e *contractEnv) createTargetGroup(name string, port int32) (string, error) {
	out, err := e.elb.CreateTargetGroup(e.ctx, &elb.CreateTargetGroupInput{Name: aws.String(name),
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(port), VpcId: aws.String(e.vpc),
		TargetType: elbtypes.TargetTypeEnumInstance,
		Tags:       []elbtypes.Tag{{Key: aws.String(contractTag), Value: aws.String(name)}}})
	if err != nil {
		return "", err
	}
	if len(out.TargetGroups) != 1 {
		e.t.Fatalf("CreateTargetGroup answered %d groups, want 1", len(out.TargetGroups))
	}
	arn := aws.ToString(out.TargetGroups[0].TargetGroupArn)
	e.later("target group "+arn, func(ctx context.Context) error {
		_, err := e.elb.DeleteTargetGroup(ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(arn)})
		return err
	})
	return arn, nil
}

// goneTargetGroup is the ARN of a target group named name, created and deleted.
func (e *contractEnv) goneTargetGroup(name string) string {
	e.t.Helper()
	arn := e.targetGroup(name, 80)
	_, err := e.elb.DeleteTargetGroup(e.ctx, &elb.DeleteTargetGroupInput{TargetGroupArn: aws.String(arn)})
	e.must("DeleteTargetGroup", err)
	return arn
}

func (e *contractEnv) targetGroup(name string, port int32) string {
	e.t.Helper()
	arn, err := e.createTargetGroup(name, port)
	e.must("CreateTargetGroup", err)
	return arn
}

// createLoadBalancer creates an Application Load Balancer, internet-facing over the
// env's two subnets unless in says otherwise.
func (e *contractEnv) createLoadBalancer(in *elb.CreateLoadBalancerInput) (string, error) {
	in.Type = elbtypes.LoadBalancerTypeEnumApplication
	if in.Scheme == "" {
		in.Scheme = elbtypes.LoadBalancerSchemeEnumInternetFacing
	}
	if in.Subnets == nil {
		in.Subnets = e.subnets
	}
	in.Tags = []elbtypes.Tag{{Key: aws.String(contractTag), Value: aws.String(aws.ToString(in.Name))}}
	out, err := e.elb.CreateLoadBalancer(e.ctx, in)
	if err != nil {
		return "", err
	}
	if len(out.LoadBalancers) != 1 {
		e.t.Fatalf("CreateLoadBalancer answered %d load balancers, want 1", len(out.LoadBalancers))
	}
	arn := aws.ToString(out.LoadBalancers[0].LoadBalancerArn)
	e.later("load balancer "+arn, func(ctx context.Context) error {
		_, err := e.elb.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: aws.String(arn)})
		return err
	})
	return arn, nil
}

func (e *contractEnv) loadBalancer(name string, groups ...string) string {
	e.t.Helper()
	arn, err := e.createLoadBalancer(&elb.CreateLoadBalancerInput{Name: aws.String(name), SecurityGroups: groups})
	e.must("CreateLoadBalancer", err)
	return arn
}

func (e *contractEnv) createListener(lb, tg string, port int32) (string, error) {
	out, err := e.elb.CreateListener(e.ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(lb),
		Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(port),
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tg)}}})
	if err != nil {
		return "", err
	}
	if len(out.Listeners) != 1 {
		e.t.Fatalf("CreateListener answered %d listeners, want 1", len(out.Listeners))
	}
	arn := aws.ToString(out.Listeners[0].ListenerArn)
	e.later("listener "+arn, func(ctx context.Context) error {
		_, err := e.elb.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: aws.String(arn)})
		return err
	})
	return arn, nil
}

func (e *contractEnv) listener(lb, tg string, port int32) string {
	e.t.Helper()
	arn, err := e.createListener(lb, tg, port)
	e.must("CreateListener", err)
	return arn
}

func filter(name string, values ...string) ec2types.Filter {
	return ec2types.Filter{Name: aws.String(name), Values: values}
}
