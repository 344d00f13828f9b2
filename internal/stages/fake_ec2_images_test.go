package stages

// The fake cloud's EC2 images and snapshots (see fake_test.go).

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// --- EC2: images and snapshots ---------------------------------------------------------

func (f *fakeEC2) CreateImage(_ context.Context, in *ec2.CreateImageInput, _ ...func(*ec2.Options)) (*ec2.CreateImageOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateImage", in); err != nil {
		return nil, err
	}
	inst := c.instances[aws.ToString(in.InstanceId)]
	if inst == nil {
		return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", aws.ToString(in.InstanceId))
	}
	if inst.State == "terminated" || inst.State == "shutting-down" {
		return nil, fakeErr("InvalidParameterValue", "Instance '%s' is not in state 'running' or 'stopped'", inst.ID)
	}
	name := aws.ToString(in.Name)
	if len(name) < 3 || len(name) > 128 {
		return nil, fakeErr("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long")
	}
	for _, im := range c.images {
		if im.OwnerID == fakeAccount && im.Name == name {
			return nil, fakeErr("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.ID)
		}
	}
	for _, s := range in.TagSpecifications {
		if s.ResourceType != ec2types.ResourceTypeImage && s.ResourceType != ec2types.ResourceTypeSnapshot {
			return nil, fakeErr("InvalidParameterValue", "cannot tag %s at CreateImage", s.ResourceType)
		}
	}
	snap := &fakeSnapshot{ID: c.newID("snap"), VolumeID: c.newID("vol"), OwnerID: fakeAccount, State: "completed",
		Tags: fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeSnapshot)}
	c.snapshots[snap.ID] = snap
	c.order = append(c.order, snap.ID)
	im := &fakeImage{ID: c.newID("ami"), Name: name, Description: aws.ToString(in.Description), OwnerID: fakeAccount,
		State: c.newImageState, RootDevice: fakeRootDevice, SourceInstanceID: inst.ID,
		Tags: fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeImage), Snapshots: []string{snap.ID}}
	c.images[im.ID] = im
	c.order = append(c.order, im.ID)
	return &ec2.CreateImageOutput{ImageId: aws.String(im.ID)}, nil
}

func (c *fakeCloud) describeImage(im *fakeImage) ec2types.Image {
	out := ec2types.Image{ImageId: aws.String(im.ID), Name: aws.String(im.Name), OwnerId: aws.String(im.OwnerID),
		State: ec2types.ImageState(im.State), RootDeviceName: aws.String(im.RootDevice),
		RootDeviceType: ec2types.DeviceTypeEbs, Tags: fakeEC2Tags(im.Tags), Public: aws.Bool(im.OwnerID != fakeAccount)}
	if im.Description != "" {
		out.Description = aws.String(im.Description)
	}
	if im.SourceInstanceID != "" {
		out.SourceInstanceId = aws.String(im.SourceInstanceID)
	}
	if im.StateReason != "" {
		out.StateReason = &ec2types.StateReason{Code: aws.String("Client.Error"), Message: aws.String(im.StateReason)}
	}
	for i, s := range im.Snapshots {
		dev := im.RootDevice
		if i > 0 {
			dev = fmt.Sprintf("/dev/sd%c", 'a'+i)
		}
		out.BlockDeviceMappings = append(out.BlockDeviceMappings, ec2types.BlockDeviceMapping{DeviceName: aws.String(dev),
			Ebs: &ec2types.EbsBlockDevice{SnapshotId: aws.String(s), VolumeSize: aws.Int32(8),
				VolumeType: ec2types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true), Encrypted: aws.Bool(false)}})
	}
	return out
}

func (f *fakeEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeImages", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "name", "state", "image-id"); err != nil {
		return nil, err
	}
	c.maybeSettle()
	for _, id := range in.ImageIds {
		if c.images[id] == nil {
			return nil, fakeErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
	}
	out := &ec2.DescribeImagesOutput{}
	for _, id := range c.order {
		im, ok := c.images[id]
		if !ok || (len(in.ImageIds) > 0 && !slices.Contains(in.ImageIds, id)) {
			continue
		}
		if len(in.Owners) > 0 {
			owned := false
			for _, o := range in.Owners {
				owned = owned || o == im.OwnerID || (o == "self" && im.OwnerID == fakeAccount) ||
					(o == "amazon" && im.OwnerID == fakeAmazonOwner)
			}
			if !owned {
				continue
			}
		}
		ok, err := fakeMatchFilters(in.Filters, im.Tags, func(name string) ([]string, bool) {
			switch name {
			case "name":
				return fakeOne(im.Name), true
			case "state":
				return fakeOne(im.State), true
			case "image-id":
				return fakeOne(im.ID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Images = append(out.Images, c.describeImage(im))
		}
	}
	return out, nil
}

func (f *fakeEC2) DeregisterImage(_ context.Context, in *ec2.DeregisterImageInput, _ ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeregisterImage", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.ImageId)
	im := c.images[id]
	if im == nil {
		return nil, fakeErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	if im.OwnerID != fakeAccount {
		return nil, fakeErr("AuthFailure", "Not authorized for image:%s", id)
	}
	delete(c.images, id)
	return &ec2.DeregisterImageOutput{Return: aws.Bool(true)}, nil
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeSnapshots", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "snapshot-id", "status", "volume-id"); err != nil {
		return nil, err
	}
	for _, id := range in.SnapshotIds {
		if c.snapshots[id] == nil {
			return nil, fakeErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
	}
	out := &ec2.DescribeSnapshotsOutput{}
	for _, id := range c.order {
		s, ok := c.snapshots[id]
		if !ok || (len(in.SnapshotIds) > 0 && !slices.Contains(in.SnapshotIds, id)) {
			continue
		}
		if len(in.OwnerIds) > 0 && !slices.Contains(in.OwnerIds, s.OwnerID) && !slices.Contains(in.OwnerIds, "self") {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, s.Tags, func(name string) ([]string, bool) {
			switch name {
			case "snapshot-id":
				return fakeOne(s.ID), true
			case "status":
				return fakeOne(s.State), true
			case "volume-id":
				return fakeOne(s.VolumeID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Snapshots = append(out.Snapshots, ec2types.Snapshot{SnapshotId: aws.String(s.ID),
				VolumeId: aws.String(s.VolumeID), OwnerId: aws.String(s.OwnerID),
				State: ec2types.SnapshotState(s.State), Tags: fakeEC2Tags(s.Tags)})
		}
	}
	return out, nil
}

func (f *fakeEC2) DeleteSnapshot(_ context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteSnapshot", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.SnapshotId)
	if c.snapshots[id] == nil {
		return nil, fakeErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	for _, im := range c.images {
		if slices.Contains(im.Snapshots, id) {
			return nil, fakeErr("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", id, im.ID)
		}
	}
	delete(c.snapshots, id)
	return &ec2.DeleteSnapshotOutput{}, nil
}

// --- the fake's own tests ---------------------------------------------------------------

func TestFakeCloudSnapshotInUseUntilImageDeregistered(t *testing.T) {
	c := newFakeCloud(t)
	ctx := context.Background()
	run, err := c.EC2.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(fakeBaseImage),
		InstanceType: ec2types.InstanceTypeT2Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.EC2.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: run.Instances[0].InstanceId, Name: aws.String("x-image")})
	if err != nil {
		t.Fatal(err)
	}
	snap := c.images[*img.ImageId].Snapshots[0]
	if _, err := c.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &snap}); ErrorCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("delete before deregister: got %v, want InvalidSnapshot.InUse", err)
	}
	if _, err := c.EC2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &snap}); err != nil {
		t.Fatalf("delete after deregister: %v", err)
	}
}
