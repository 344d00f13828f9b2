package stages

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// CheckImageAvailable is one poll of the ImageAvailable wait: ready when the AMI is available, and
// then it records the AMI's snapshots. An AMI that failed will never be available:
// ResourceFailedError with EC2's reason. Right after CreateImage the AMI may not be
// visible yet: not ready, not an error.
func (s *Stages) CheckImageAvailable(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	if doc.Resources.Image == nil || doc.Resources.Image.ImageID == "" {
		return doc, notYet("resources.image.imageId", pipeline.CreateImage)
	}
	return poll(doc, pipeline.WaitImageAvailable, func(doc *pipeline.Document, poll *pipeline.PollResult) error {
		return s.checkImageAvailable(ctx, doc, poll)
	})
}

func (s *Stages) checkImageAvailable(ctx context.Context, doc *pipeline.Document, poll *pipeline.PollResult) error {
	id := doc.Resources.Image.ImageID
	out, err := s.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil && ErrorCode(err) != codeAMINotFound {
		return fmt.Errorf("describe image %s: %w", id, err)
	}
	switch {
	case err != nil || len(out.Images) == 0:
		poll.State = "unknown"
		poll.Reason = fmt.Sprintf("image %s is not visible yet", id)
	case out.Images[0].State == ec2types.ImageStateAvailable:
		img := out.Images[0]
		var snapshots []string
		for _, bd := range img.BlockDeviceMappings {
			if bd.Ebs != nil && aws.ToString(bd.Ebs.SnapshotId) != "" {
				snapshots = append(snapshots, aws.ToString(bd.Ebs.SnapshotId))
			}
		}
		*doc = withSnapshots(*doc, snapshots)
		poll.Ready, poll.State = true, string(img.State)
		poll.Reason = fmt.Sprintf("image %s is available", id)
	case slices.Contains(deadImageStates, out.Images[0].State):
		img := out.Images[0]
		reason := "no reason given"
		if img.StateReason != nil && aws.ToString(img.StateReason.Message) != "" {
			reason = aws.ToString(img.StateReason.Message)
		}
		return &pipeline.ResourceFailedError{Resource: "image " + id, State: string(img.State), Reason: reason}
	default:
		poll.State = string(out.Images[0].State)
		poll.Reason = fmt.Sprintf("image %s is %s", id, poll.State)
	}
	return nil
}

func withSnapshots(doc pipeline.Document, snapshotIDs []string) pipeline.Document {
	img := *doc.Resources.Image
	img.SnapshotIDs = snapshotIDs
	doc.Resources.Image = &img
	return doc
}
