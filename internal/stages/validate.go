package stages

import (
	"context"
	"fmt"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Validate is the first stage: it derives the run id from the execution name,
// reads the input strictly with its defaults (pipeline.ParseConfig), and checks
// against the account what the input names: that the subnets exist, share one VPC
// and span two availability zones (an ALB needs two), and that the image exists
// and is available. It makes read-only calls only, so bad input is refused with a
// BadInputError before anything is created. It has no undo: it creates nothing.
func (s *Stages) Validate(ctx context.Context, in pipeline.ValidateInput) (pipeline.Document, error) {
	runID, err := pipeline.RunIDFromExecutionName(in.ExecutionName)
	if err != nil {
		return pipeline.Document{}, err
	}
	cfg, err := pipeline.ParseConfig(in.Input)
	if err != nil {
		return pipeline.Document{}, err
	}
	if len(cfg.SubnetIDs) > 0 {
		if err := s.validateSubnets(ctx, cfg.SubnetIDs); err != nil {
			return pipeline.Document{}, err
		}
	}
	if cfg.ImageID != "" {
		if err := s.validateImage(ctx, cfg.ImageID); err != nil {
			return pipeline.Document{}, err
		}
	}
	Log(ctx).Info("input valid", "runId", runID, "instanceType", cfg.InstanceType,
		"replicaCount", cfg.ReplicaCount, "keepBaseInstance", cfg.KeepBase())
	return pipeline.Document{RunID: runID, Config: cfg, Resources: pipeline.Resources{}}, nil
}

// validateSubnets checks the input's subnets with one DescribeSubnets call: they
// exist, and keep the subnet rule (subnets.go).
func (s *Stages) validateSubnets(ctx context.Context, ids []string) error {
	subnets, err := s.describeGivenSubnets(ctx, ids)
	if err != nil {
		return err
	}
	return checkSubnetRule(subnets)
}

// validateImage checks that the input's AMI exists here and can be launched.
func (s *Stages) validateImage(ctx context.Context, id string) error {
	out, err := s.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		// InvalidAMIID.NotFound is retryable elsewhere (right after CreateImage);
		// for an image the user named, it is bad input.
		if strings.HasPrefix(ErrorCode(err), "InvalidAMIID.") {
			return &pipeline.BadInputError{Field: "imageId", Message: "EC2 refused it: " + awsMessage(err)}
		}
		return fmt.Errorf("describe image %s: %w", id, err)
	}
	for _, im := range out.Images {
		if aws.ToString(im.ImageId) != id {
			continue
		}
		if state := string(im.State); state != "available" {
			return &pipeline.BadInputError{Field: "imageId", Message: fmt.Sprintf("%s is %s, not available", id, state)}
		}
		return nil
	}
	// A deregistered image, or one this account may not launch, is not listed.
	return &pipeline.BadInputError{Field: "imageId", Message: fmt.Sprintf("no image %s that this account can launch in this region", id)}
}
