package stages

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// deadImageStates are the states of an AMI that will never become available.
var deadImageStates = []ec2types.ImageState{
	ec2types.ImageStateFailed, ec2types.ImageStateError, ec2types.ImageStateInvalid,
	ec2types.ImageStateDeregistered, ec2types.ImageStateDisabled,
}

// CreateImage makes the run's AMI from the stopped base instance: no reboot (the
// instance is stopped, its disk consistent), named amifleet-<runId>-image
// (amifleet-<runId>-image-g<n> for a later generation n), with the image and its
// snapshots tagged. A second run reuses the run's image of the same generation,
// found by tag.
func (s *Stages) CreateImage(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	if doc.Resources.Image == nil || doc.Resources.Image.BaseInstanceID == "" {
		return doc, notYet("resources.image.baseInstanceId", pipeline.LaunchBase)
	}
	baseID := doc.Resources.Image.BaseInstanceID
	images, err := s.findImages(ctx, doc.RunID, doc.Gen())
	if err != nil {
		return doc, err
	}
	for _, img := range images {
		if !slices.Contains(deadImageStates, img.State) {
			Log(ctx).Info("reusing image", "imageId", aws.ToString(img.ImageId), "state", string(img.State))
			return withImageID(doc, aws.ToString(img.ImageId)), nil
		}
	}

	// AMI names are unique per account and region. The plain name is taken only by
	// an image of this run that failed (the tag lookup above saw it) or one the tag
	// lookup missed; a failed image keeps its name until deregistered, so the retry
	// gets a suffix.
	name := pipeline.GenerationName(doc.RunID, pipeline.RoleImage, doc.Gen())
	if len(images) > 0 {
		name = fmt.Sprintf("%s-%d", name, s.clock().Unix())
	}
	in := &ec2.CreateImageInput{
		InstanceId:        aws.String(baseID),
		Name:              aws.String(name),
		Description:       aws.String(fmt.Sprintf("amifleet run %s: Apache httpd serving each instance's hostname, from %s", doc.RunID, baseID)),
		NoReboot:          aws.Bool(true),
		TagSpecifications: tagSpecs(doc, pipeline.RoleImage, ec2types.ResourceTypeImage, ec2types.ResourceTypeSnapshot),
	}
	out, err := s.EC2.CreateImage(ctx, in)
	if ErrorCode(err) == codeAMINameDuplicate {
		id, adoptErr := s.adoptImage(ctx, doc.RunID, name, err)
		if adoptErr != nil {
			return doc, adoptErr
		}
		if id != "" {
			return withImageID(doc, id), nil
		}
		in.Name = aws.String(fmt.Sprintf("%s-%d", name, s.clock().Unix()))
		out, err = s.EC2.CreateImage(ctx, in)
	}
	if err != nil {
		return doc, fmt.Errorf("create image %s from %s: %w", aws.ToString(in.Name), baseID, err)
	}
	Log(ctx).Info("creating image", "imageId", aws.ToString(out.ImageId), "name", aws.ToString(in.Name), "instanceId", baseID)
	return withImageID(doc, aws.ToString(out.ImageId)), nil
}

// clock is s.Now, or time.Now when unset.
func (s *Stages) clock() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func withImageID(doc pipeline.Document, imageID string) pipeline.Document {
	img := pipeline.Image{}
	if doc.Resources.Image != nil {
		img = *doc.Resources.Image
	}
	img.ImageID = imageID
	doc.Resources.Image = &img
	return doc
}

// adoptImage finds the image that holds name: its id when it is this run's and
// alive, "" when it is this run's but dead (a new name is needed), and an error when
// another run or a person owns it. When no image of that name is visible yet (EC2's
// describes lag its creates), it is a RetryableError: creating under another name
// would make the run a second AMI.
func (s *Stages) adoptImage(ctx context.Context, runID, name string, dupErr error) (string, error) {
	out, err := s.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{name}}}})
	if err != nil {
		return "", fmt.Errorf("describe image named %s: %w", name, err)
	}
	if len(out.Images) == 0 {
		return "", &pipeline.RetryableError{Err: fmt.Errorf("the image name %s is taken, but no image of that name is visible yet: %w", name, dupErr)}
	}
	for _, img := range out.Images {
		if tagValue(img.Tags, pipeline.TagRunID) != runID {
			return "", &pipeline.StageError{Err: fmt.Errorf("an image named %s (%s) exists and is not tagged with run %s; refusing to adopt it", name, aws.ToString(img.ImageId), runID)}
		}
		if !slices.Contains(deadImageStates, img.State) {
			Log(ctx).Info("reusing image found by name", "imageId", aws.ToString(img.ImageId))
			return aws.ToString(img.ImageId), nil
		}
	}
	return "", nil
}

func tagValue(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// findImages lists the run's own AMIs of generation gen (every generation:
// allGenerations), in every state. Generation 1 takes the images with no generation
// tag too: see genFilters.
func (s *Stages) findImages(ctx context.Context, runID string, gen int) ([]ec2types.Image, error) {
	var images []ec2types.Image
	p := ec2.NewDescribeImagesPaginator(s.EC2, &ec2.DescribeImagesInput{
		Owners: []string{"self"}, Filters: genFilters(runID, pipeline.RoleImage, gen)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe images of run %s: %w", runID, err)
		}
		for _, img := range page.Images {
			if inGeneration(img.Tags, gen) {
				images = append(images, img)
			}
		}
	}
	return images, nil
}

// undoImage deregisters the run's AMIs of every generation, then deletes their
// snapshots (found by tag and through the images' block devices). An AMI still
// pending is remaining, never gone; so is a snapshot still in use by an image on its
// way out (InvalidSnapshot.InUse).
func (s *Stages) undoImage(ctx context.Context, runID string) (remaining []string, err error) {
	return s.deleteImages(ctx, runID, allGenerations)
}

// deleteImages deregisters the run's AMIs and deletes their snapshots, as undoImage
// says, except those of generation keep (none when keep is allGenerations): a
// refresh's prune keeps the serving generation's.
func (s *Stages) deleteImages(ctx context.Context, runID string, keep int) (remaining []string, err error) {
	all, err := s.findImages(ctx, runID, allGenerations)
	if err != nil {
		return nil, err
	}
	var images []ec2types.Image
	for _, img := range all {
		if keep == allGenerations || generationOf(img.Tags) != keep {
			images = append(images, img)
		}
	}
	var snapshots []string
	addSnapshot := func(id string) {
		if id != "" && !slices.Contains(snapshots, id) {
			snapshots = append(snapshots, id)
		}
	}
	var errs []error
	for _, img := range images {
		for _, bd := range img.BlockDeviceMappings {
			if bd.Ebs != nil {
				addSnapshot(aws.ToString(bd.Ebs.SnapshotId))
			}
		}
		id := aws.ToString(img.ImageId)
		if img.State == ec2types.ImageStatePending {
			// Still being made: it is not gone, and a snapshot it is still taking
			// would be left behind. It is deregistered once available (or failed).
			remaining = append(remaining, fmt.Sprintf("image %s pending, deregistered once it is available", id))
			continue
		}
		_, err := s.EC2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(id)})
		switch code := ErrorCode(err); {
		case err == nil:
			Log(ctx).Info("deregistered image", "imageId", id)
		case code == codeAMINotFound || code == codeAMIUnavailable:
		default:
			errs = append(errs, fmt.Errorf("deregister image %s: %w", id, err))
		}
	}

	p := ec2.NewDescribeSnapshotsPaginator(s.EC2, &ec2.DescribeSnapshotsInput{
		OwnerIds: []string{"self"}, Filters: tagFilters(runID, pipeline.RoleImage)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, errors.Join(append(errs, fmt.Errorf("describe snapshots of run %s: %w", runID, err))...)
		}
		for _, snap := range page.Snapshots {
			if keep == allGenerations || generationOf(snap.Tags) != keep {
				addSnapshot(aws.ToString(snap.SnapshotId))
			}
		}
	}
	for _, id := range snapshots {
		_, err := s.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
		switch code := ErrorCode(err); {
		case err == nil:
			Log(ctx).Info("deleted snapshot", "snapshotId", id)
		case code == codeSnapshotNotFound:
		case code == codeSnapshotInUse:
			remaining = append(remaining, fmt.Sprintf("snapshot %s still in use by an image", id))
		default:
			errs = append(errs, fmt.Errorf("delete snapshot %s: %w", id, err))
		}
	}
	return remaining, errors.Join(errs...)
}
