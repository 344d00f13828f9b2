package stages

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/userdata"
)

// LaunchBase launches the base instance: the source AMI (config.imageId, or the
// one config.imageParameter names), the amifleet user data that provisions it and
// powers it off, IMDSv2 required, an encrypted root volume, in the first subnet whose
// zone offers the instance type, with the instance security group. It keeps the
// subnet's own public IPv4 setting: in a default subnet that address is how its
// script reaches the package repositories. A second run reuses the run's base
// instance if one is still alive.
func (s *Stages) LaunchBase(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	net := doc.Resources.Network
	if net == nil || len(net.SubnetIDs) == 0 || net.InstanceSecurityGroupID == "" {
		return doc, notYet("resources.network", pipeline.CreateSecurityGroups)
	}
	subnets, err := instanceSubnets(doc)
	if err != nil {
		return doc, err
	}
	seed, err := tokenSeedOf(doc)
	if err != nil {
		return doc, err
	}
	existing, err := s.findInstances(ctx, doc.RunID, pipeline.RoleBase, doc.Gen(), liveInstanceStates...)
	if err != nil {
		return doc, err
	}
	if len(existing) > 0 {
		base := existing[0]
		Log(ctx).Info("reusing base instance", "instanceId", aws.ToString(base.InstanceId), "state", stateOf(base))
		setImage(&doc, aws.ToString(base.ImageId), aws.ToString(base.InstanceId))
		return doc, nil
	}

	imageID, err := s.sourceImage(ctx, doc.Config)
	if err != nil {
		return doc, err
	}
	root, err := s.sourceRootVolume(ctx, doc.Config, imageID)
	if err != nil {
		return doc, err
	}
	script, err := userdata.Render(doc.Config.PageTemplate)
	if err != nil {
		return doc, &pipeline.BadInputError{Field: "pageTemplate", Message: err.Error()}
	}
	subnet := subnets[0]
	in := runInstancesInput(doc, imageID, root, pipeline.RoleBase, 1)
	in.SubnetId = aws.String(subnet)
	in.SecurityGroupIds = []string{net.InstanceSecurityGroupID}
	in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(script)))
	// The user data powers the instance off when done: it must stop, not terminate.
	in.InstanceInitiatedShutdownBehavior = ec2types.ShutdownBehaviorStop
	in.ClientToken = aws.String(genToken(seed, doc, pipeline.RoleBase))
	out, err := s.EC2.RunInstances(ctx, in)
	if cerr := capacityError(doc, 1, "in "+subnet, err); cerr != nil {
		return doc, cerr
	}
	if isArchitectureMismatch(err) {
		return doc, &pipeline.BadInputError{Field: "instanceType", Message: fmt.Sprintf(
			"%s cannot run AMI %s (%s): give an instance type of the AMI's architecture, or an imageId or "+
				"imageParameter of the instance type's (the default imageParameter is x86_64, for t2.micro): %s",
			doc.Config.InstanceType, imageID, root.Architecture, awsMessage(err))}
	}
	if err != nil {
		return doc, fmt.Errorf("launch the base instance from %s: %w", imageID, err)
	}
	if len(out.Instances) == 0 {
		return doc, errors.New("launch the base instance: the answer holds no instance")
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	Log(ctx).Info("launched base instance", "instanceId", id, "imageId", imageID, "subnetId", subnet)
	setImage(&doc, imageID, id)
	return doc, nil
}

// setImage records the base instance, keeping what the image stages recorded.
func setImage(doc *pipeline.Document, sourceImageID, baseInstanceID string) {
	img := pipeline.Image{}
	if doc.Resources.Image != nil {
		img = *doc.Resources.Image
	}
	img.SourceImageID, img.BaseInstanceID = sourceImageID, baseInstanceID
	doc.Resources.Image = &img
}

// sourceImage is config.imageId, or the AMI that the SSM public parameter names.
func (s *Stages) sourceImage(ctx context.Context, cfg pipeline.Config) (string, error) {
	if cfg.ImageID != "" {
		return cfg.ImageID, nil
	}
	name := cfg.ImageParameter
	if name == "" {
		name = pipeline.DefaultImageParameter
	}
	out, err := s.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if ErrorCode(err) == codeParameterNotFound {
		return "", &pipeline.BadInputError{Field: "imageParameter", Message: fmt.Sprintf("SSM parameter %s does not exist", name)}
	}
	if err != nil {
		return "", fmt.Errorf("read SSM parameter %s: %w", name, err)
	}
	if out.Parameter == nil || aws.ToString(out.Parameter.Value) == "" {
		return "", &pipeline.BadInputError{Field: "imageParameter", Message: fmt.Sprintf("SSM parameter %s is empty", name)}
	}
	return aws.ToString(out.Parameter.Value), nil
}

// rootVolume is an AMI's root device and its size. The instances override its
// mapping to encrypt the root volume; the size goes with it because some EC2
// implementations (moto) refuse an EBS mapping with neither size nor snapshot.
type rootVolume struct {
	DeviceName string
	SizeGiB    int32
	// Architecture is the AMI's, for the message when the instance type's differs.
	Architecture string
}

// rootVolumeOf reads the root volume of an image.
func rootVolumeOf(img ec2types.Image) rootVolume {
	root := rootVolume{DeviceName: aws.ToString(img.RootDeviceName), Architecture: string(img.Architecture)}
	for _, bd := range img.BlockDeviceMappings {
		if aws.ToString(bd.DeviceName) == root.DeviceName && bd.Ebs != nil {
			root.SizeGiB = aws.ToInt32(bd.Ebs.VolumeSize)
		}
	}
	return root
}

// sourceRootVolume is the source AMI's root volume. An AMI that does not exist or is
// not available is bad input.
func (s *Stages) sourceRootVolume(ctx context.Context, cfg pipeline.Config, imageID string) (rootVolume, error) {
	field := "imageId"
	if cfg.ImageID == "" {
		field = "imageParameter"
	}
	out, err := s.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	if code := ErrorCode(err); code == codeAMINotFound || code == codeAMIMalformed || code == codeAMIUnavailable {
		return rootVolume{}, &pipeline.BadInputError{Field: field, Message: fmt.Sprintf("AMI %s: %v", imageID, err)}
	}
	if err != nil {
		return rootVolume{}, fmt.Errorf("describe AMI %s: %w", imageID, err)
	}
	if len(out.Images) == 0 {
		return rootVolume{}, &pipeline.BadInputError{Field: field, Message: fmt.Sprintf("AMI %s does not exist or is not visible to this account", imageID)}
	}
	img := out.Images[0]
	if img.State != ec2types.ImageStateAvailable {
		return rootVolume{}, &pipeline.BadInputError{Field: field, Message: fmt.Sprintf("AMI %s is %s, not available", imageID, img.State)}
	}
	root := rootVolumeOf(img)
	if root.DeviceName == "" {
		return rootVolume{}, &pipeline.StageError{Err: fmt.Errorf("AMI %s has no root device name", imageID)}
	}
	return root, nil
}

// runInstancesInput is what every amifleet instance shares: type, IMDSv2 required,
// an encrypted gp3 root volume deleted with the instance, the key pair when one is
// given, and the run's tags on the instance and its volumes. The caller places it:
// subnet and security group, at the top or in a network interface.
func runInstancesInput(doc pipeline.Document, imageID string, root rootVolume, role string, count int32) *ec2.RunInstancesInput {
	in := &ec2.RunInstancesInput{
		ImageId:      aws.String(imageID),
		InstanceType: ec2types.InstanceType(doc.Config.InstanceType),
		MinCount:     aws.Int32(count),
		MaxCount:     aws.Int32(count),
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{
			HttpTokens:              ec2types.HttpTokensStateRequired,
			HttpEndpoint:            ec2types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1),
		},
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{
			DeviceName: aws.String(root.DeviceName),
			Ebs: &ec2types.EbsBlockDevice{
				Encrypted:           aws.Bool(true),
				VolumeType:          ec2types.VolumeTypeGp3,
				DeleteOnTermination: aws.Bool(true),
			},
		}},
		TagSpecifications: tagSpecs(doc, role, ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume),
	}
	if root.SizeGiB > 0 {
		in.BlockDeviceMappings[0].Ebs.VolumeSize = aws.Int32(root.SizeGiB)
	}
	if doc.Config.KeyName != "" {
		in.KeyName = aws.String(doc.Config.KeyName)
	}
	return in
}

// undoBase terminates the run's base instance(s). Those not terminated yet are
// remaining: the security groups cannot go before them.
func (s *Stages) undoBase(ctx context.Context, runID string) (remaining []string, err error) {
	return s.terminateRun(ctx, runID, pipeline.RoleBase)
}
