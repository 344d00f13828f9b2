package stages

import (
	"context"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/userdata"
)

// assertSecureInstance checks what every amifleet instance must have: IMDSv2
// required, an encrypted root volume on the AMI's root device, the instance
// security group only, and the run's tags on the instance and its volumes.
func assertSecureInstance(t *testing.T, in *ec2.RunInstancesInput, net *pipeline.Network, role string) {
	t.Helper()
	if in.MetadataOptions == nil || in.MetadataOptions.HttpTokens != ec2types.HttpTokensStateRequired ||
		in.MetadataOptions.HttpEndpoint != ec2types.InstanceMetadataEndpointStateEnabled {
		t.Errorf("metadata options %+v, want IMDSv2 required and the endpoint enabled", in.MetadataOptions)
	}
	if len(in.BlockDeviceMappings) != 1 {
		t.Fatalf("block device mappings %+v, want the root volume", in.BlockDeviceMappings)
	}
	root := in.BlockDeviceMappings[0]
	if aws.ToString(root.DeviceName) != fakeRootDevice || root.Ebs == nil || !aws.ToBool(root.Ebs.Encrypted) ||
		root.Ebs.VolumeType != ec2types.VolumeTypeGp3 || !aws.ToBool(root.Ebs.DeleteOnTermination) ||
		aws.ToInt32(root.Ebs.VolumeSize) != 8 {
		t.Errorf("root volume %s %+v, want encrypted gp3 of the AMI's 8 GiB on %s, deleted with the instance", aws.ToString(root.DeviceName), root.Ebs, fakeRootDevice)
	}
	if _, groups, _ := placementOf(in); len(groups) != 1 || groups[0] != net.InstanceSecurityGroupID {
		t.Errorf("security groups %v, want only the instance group %s", groups, net.InstanceSecurityGroupID)
	}
	if in.InstanceType != ec2types.InstanceType(pipeline.DefaultInstanceType) {
		t.Errorf("instance type %q, want %q", in.InstanceType, pipeline.DefaultInstanceType)
	}
	assertTagSpecs(t, "RunInstances", in.TagSpecifications, role, ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume)
}

// placementOf is where a RunInstances request puts its instances: the subnet and
// security groups, given at the top or in its one network interface, and whether
// the interface asks for a public IPv4 address (nil: the subnet's setting).
func placementOf(in *ec2.RunInstancesInput) (subnet string, groups []string, public *bool) {
	if len(in.NetworkInterfaces) > 0 {
		ni := in.NetworkInterfaces[0]
		return aws.ToString(ni.SubnetId), ni.Groups, ni.AssociatePublicIpAddress
	}
	return aws.ToString(in.SubnetId), in.SecurityGroupIds, nil
}

func TestLaunchBaseRequest(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := withNetwork(t, c, testDoc())
	doc = mustRun(t)(c.stages().LaunchBase(ctx, doc))

	params := fakeInputs[ssm.GetParameterInput](c, "GetParameter")
	if len(params) != 1 || aws.ToString(params[0].Name) != pipeline.DefaultImageParameter {
		t.Errorf("GetParameter calls %v, want one for %s", params, pipeline.DefaultImageParameter)
	}
	runs := fakeInputs[ec2.RunInstancesInput](c, "RunInstances")
	if len(runs) != 1 {
		t.Fatalf("RunInstances called %d times, want 1", len(runs))
	}
	in := runs[0]
	assertSecureInstance(t, in, doc.Resources.Network, pipeline.RoleBase)
	if aws.ToString(in.ImageId) != fakeBaseImage || aws.ToInt32(in.MinCount) != 1 || aws.ToInt32(in.MaxCount) != 1 {
		t.Errorf("image %s, count %d..%d; want %s, one instance", aws.ToString(in.ImageId), aws.ToInt32(in.MinCount), aws.ToInt32(in.MaxCount), fakeBaseImage)
	}
	if aws.ToString(in.SubnetId) != doc.Resources.Network.SubnetIDs[0] {
		t.Errorf("subnet %s, want the first, %s", aws.ToString(in.SubnetId), doc.Resources.Network.SubnetIDs[0])
	}
	if in.InstanceInitiatedShutdownBehavior != ec2types.ShutdownBehaviorStop {
		t.Errorf("shutdown behaviour %q: the user data powers off, which must stop, not terminate", in.InstanceInitiatedShutdownBehavior)
	}
	if tok := aws.ToString(in.ClientToken); !strings.HasPrefix(tok, doc.TokenSeed) || len(tok) > 64 {
		t.Errorf("client token %q, want one derived from the token seed %q, at most 64 characters", tok, doc.TokenSeed)
	}
	if in.KeyName != nil {
		t.Errorf("key pair %q set without config.keyName", aws.ToString(in.KeyName))
	}
	script, err := base64.StdEncoding.DecodeString(aws.ToString(in.UserData))
	if err != nil {
		t.Fatalf("user data is not base64: %v", err)
	}
	want, _ := userdata.Render(pipeline.DefaultPageTemplate)
	if string(script) != want {
		t.Error("user data is not userdata.Render(config.pageTemplate)")
	}
	img := doc.Resources.Image
	if img == nil || img.SourceImageID != fakeBaseImage || img.BaseInstanceID != c.instancesWith(testRunID, pipeline.RoleBase)[0].ID {
		t.Errorf("resources.image = %+v", img)
	}
}

func TestLaunchBaseOptions(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := testDoc()
	doc.Config.ImageID = fakeBaseImage
	doc.Config.KeyName = "ops"
	doc.Config.InstanceType = "t3.small"
	doc = withNetwork(t, c, doc)
	mustRun(t)(c.stages().LaunchBase(ctx, doc))
	if n := c.count("GetParameter"); n != 0 {
		t.Errorf("GetParameter called %d times with config.imageId set", n)
	}
	in := fakeInputs[ec2.RunInstancesInput](c, "RunInstances")[0]
	if aws.ToString(in.KeyName) != "ops" || in.InstanceType != "t3.small" {
		t.Errorf("key %q, type %q; want ops, t3.small", aws.ToString(in.KeyName), in.InstanceType)
	}
}

func TestLaunchBaseTwiceLaunchesOnce(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	doc := withNetwork(t, c, testDoc())
	first := mustRun(t)(s.LaunchBase(ctx, doc))
	c.setInstanceState(first.Resources.Image.BaseInstanceID, "stopped")
	mark := c.mark()
	second := mustRun(t)(s.LaunchBase(ctx, doc))
	if m := c.mutations(mark); len(m) != 0 {
		t.Errorf("second run changed things: %v", m)
	}
	if !reflect.DeepEqual(first.Resources.Image, second.Resources.Image) {
		t.Errorf("second run recorded %+v, first %+v", second.Resources.Image, first.Resources.Image)
	}

	// A base that terminated is no longer the run's: a new one is launched.
	c.setInstanceState(first.Resources.Image.BaseInstanceID, "terminated")
	third := mustRun(t)(s.LaunchBase(ctx, doc))
	if third.Resources.Image.BaseInstanceID == first.Resources.Image.BaseInstanceID || c.count("RunInstances") != 2 {
		t.Errorf("after the base terminated: base %s, %d launches", third.Resources.Image.BaseInstanceID, c.count("RunInstances"))
	}
}

func TestLaunchBaseKeepsImageFields(t *testing.T) {
	c := newFakeCloud(t)
	doc := withNetwork(t, c, testDoc())
	doc.Resources.Image = &pipeline.Image{ImageID: "ami-from-before"}
	doc = mustRun(t)(c.stages().LaunchBase(context.Background(), doc))
	if doc.Resources.Image.ImageID != "ami-from-before" || doc.Resources.Image.BaseInstanceID == "" {
		t.Errorf("resources.image = %+v", doc.Resources.Image)
	}
}

func TestLaunchBaseBadInput(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(c *fakeCloud, cfg *pipeline.Config)
		field string
	}{
		{"unknown image", func(_ *fakeCloud, cfg *pipeline.Config) { cfg.ImageID = "ami-0nope" }, "imageId"},
		{"unknown parameter", func(_ *fakeCloud, cfg *pipeline.Config) { cfg.ImageParameter = "/no/such" }, "imageParameter"},
		{"image not available", func(c *fakeCloud, cfg *pipeline.Config) {
			c.images[fakeBaseImage].State = "pending"
		}, "imageParameter"},
		{"page template too long for user data", func(_ *fakeCloud, cfg *pipeline.Config) {
			cfg.PageTemplate = strings.Repeat("<p>{hostname}</p>", 1200)
		}, "pageTemplate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCloud(t)
			doc := withNetwork(t, c, testDoc())
			tc.edit(c, &doc.Config)
			_, err := c.stages().LaunchBase(context.Background(), doc)
			assertBadInput(t, err, tc.field)
			if n := c.count("RunInstances"); n != 0 {
				t.Errorf("bad input, yet RunInstances called %d times", n)
			}
		})
	}
}

func TestLaunchBaseNeedsTheNetwork(t *testing.T) {
	c := newFakeCloud(t)
	_, err := c.stages().LaunchBase(context.Background(), testDoc())
	var se *pipeline.StageError
	if !errors.As(err, &se) || c.count("RunInstances") != 0 {
		t.Fatalf("got %v, want a StageError and no launch", err)
	}
}

func TestUndoBase(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	doc := withImage(t, c, testDoc())
	replicas := mustRun(t)(s.LaunchReplicas(ctx, doc)).Resources.Fleet.ReplicaInstanceIDs

	remaining, err := s.undoBase(ctx, testRunID)
	if err != nil {
		t.Fatal(err)
	}
	base := doc.Resources.Image.BaseInstanceID
	if len(remaining) != 1 || !strings.Contains(remaining[0], base) || !strings.Contains(remaining[0], "shutting-down") {
		t.Errorf("remaining = %v, want the base shutting down", remaining)
	}
	terms := fakeInputs[ec2.TerminateInstancesInput](c, "TerminateInstances")
	if len(terms) != 1 || len(terms[0].InstanceIds) != 1 || terms[0].InstanceIds[0] != base {
		t.Errorf("terminated %v, want only the base %s", terms, base)
	}
	for _, id := range replicas {
		if st := c.instances[id].State; st == "shutting-down" || st == "terminated" {
			t.Errorf("undoBase touched replica %s (%s)", id, st)
		}
	}

	// Shutting down: reported again, not terminated twice.
	mark := c.mark()
	if remaining, err = s.undoBase(ctx, testRunID); err != nil || len(remaining) != 1 {
		t.Errorf("while shutting down: remaining %v, error %v", remaining, err)
	}
	if m := c.mutations(mark); len(m) != 0 {
		t.Errorf("undo while shutting down changed things: %v", m)
	}
	c.settle()
	if remaining, err = s.undoBase(ctx, testRunID); err != nil || len(remaining) != 0 {
		t.Errorf("once terminated: remaining %v, error %v", remaining, err)
	}
}

func TestUndoBaseToleratesInstancesAlreadyGone(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := withNetwork(t, c, testDoc())
	mustRun(t)(c.stages().LaunchBase(ctx, doc))
	c.failOnce("TerminateInstances", fakeErr("InvalidInstanceID.NotFound", "gone"))
	if remaining, err := c.stages().undoBase(ctx, testRunID); err != nil || len(remaining) != 0 {
		t.Errorf("remaining %v, error %v; want nothing left and no error", remaining, err)
	}
}

// EC2 refuses an instance type and an AMI of different architectures only when
// asked to launch; the run then says which field to change, and it is not retried.
func TestLaunchBaseArchitectureMismatch(t *testing.T) {
	c := newFakeCloud(t)
	doc := withNetwork(t, c, testDoc())
	doc.Config.InstanceType = "t4g.micro"
	c.failOnce("RunInstances", fakeErr("InvalidParameterValue", "The architecture 'arm64' of the specified instance "+
		"type does not match the architecture 'x86_64' of the specified AMI."))
	_, err := c.stages().LaunchBase(context.Background(), doc)
	assertBadInput(t, err, "instanceType")
	if msg := err.Error(); !strings.Contains(msg, "t4g.micro") || !strings.Contains(msg, fakeBaseImage) {
		t.Errorf("message %q does not name the instance type and the AMI", msg)
	}
	if got := pipeline.ErrorName(Classify("LaunchBase", err)); got != pipeline.ErrBadInput {
		t.Errorf("classified as %s, want %s", got, pipeline.ErrBadInput)
	}

	// Any other InvalidParameterValue stays the AWS error it is.
	c.failOnce("RunInstances", fakeErr("InvalidParameterValue", "Value (x) for parameter iamInstanceProfile is invalid"))
	if _, err := c.stages().LaunchBase(context.Background(), doc); ErrorCode(err) != "InvalidParameterValue" {
		t.Errorf("got %v, want the InvalidParameterValue error", err)
	}
}
