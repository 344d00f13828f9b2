package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/pricing"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Validate is the first stage: it derives the run id from the execution name and the
// run's token seed from the execution's id and start time, reads the input strictly
// with its defaults (pipeline.ParseConfig), and checks against the account what the
// run will need: that its subnets (the input's, or the default VPC's) exist, share
// one VPC and span two availability zones (an ALB needs two); that the image exists
// and is available; that the instance type exists and is offered in at least one of
// those zones (doc.placement records which); and, where the quota can be read, that
// the fleet's vCPUs fit in the account's quota beside what already runs. It prices
// the run from the dated table of internal/pricing (doc.estimate) and refuses it
// when config.maxHourlyCost is set and the estimate is higher, or unknown. It makes
// read-only calls only, so a run is refused (BadInputError, CapacityError) before
// anything is created. It has no undo: it creates nothing.
func (s *Stages) Validate(ctx context.Context, in pipeline.ValidateInput) (pipeline.Document, error) {
	runID, err := pipeline.RunIDFromExecutionName(in.ExecutionName)
	if err != nil {
		return pipeline.Document{}, err
	}
	if in.ExecutionID == "" || in.StartTime == "" {
		return pipeline.Document{}, &pipeline.StageError{Err: errors.New(
			"the Validate task passed no executionId or startTime ($$.Execution.Id, $$.Execution.StartTime): " +
				"the run's idempotency tokens are derived from them")}
	}
	cfg, err := pipeline.ParseConfig(in.Input)
	if err != nil {
		return pipeline.Document{}, err
	}
	placement, estimate, err := s.checkFleet(ctx, cfg)
	if err != nil {
		return pipeline.Document{}, err
	}
	Log(ctx).Info("input valid", "runId", runID, "instanceType", cfg.InstanceType, "zones", placement.Zones,
		"replicaCount", cfg.ReplicaCount, "keepBaseInstance", cfg.KeepBase(), "estimatePerHour", estimate.PerHour)
	return pipeline.Document{RunID: runID, Generation: pipeline.PipelineGeneration, Config: cfg, TokenSeed: tokenSeed(in.ExecutionID, in.StartTime),
		Placement: placement, Estimate: estimate, Resources: pipeline.Resources{}}, nil
}

// checkFleet checks against the account what a fleet of cfg needs (Validate's checks,
// which PrepareRefresh makes again for a new generation): its subnets, its image,
// its instance type and the zones that offer it, its price against
// config.maxHourlyCost, and its vCPUs against the quota beside what already runs.
func (s *Stages) checkFleet(ctx context.Context, cfg pipeline.Config) (*pipeline.Placement, *pricing.Estimate, error) {
	subnets, err := s.candidateSubnets(ctx, cfg.SubnetIDs)
	if err != nil {
		return nil, nil, err
	}
	var rootGiB int32
	if cfg.ImageID != "" {
		if rootGiB, err = s.validateImage(ctx, cfg.ImageID); err != nil {
			return nil, nil, err
		}
	}
	vcpus, err := s.instanceTypeVCPUs(ctx, cfg.InstanceType)
	if err != nil {
		return nil, nil, err
	}
	zones, err := s.offeringZones(ctx, cfg.InstanceType, zonesOf(subnets))
	if err != nil {
		return nil, nil, err
	}
	estimate := fleetToPrice(s.Region, cfg, subnets, zones, rootGiB).Estimate()
	if err := checkMaxHourlyCost(cfg, estimate); err != nil {
		return nil, nil, err
	}
	if err := s.checkVCPUQuota(ctx, cfg, vcpus); err != nil {
		return nil, nil, err
	}
	return &pipeline.Placement{Zones: zones, VCPUs: vcpus}, &estimate, nil
}

// validateImage checks that the input's AMI exists here and can be launched, and
// returns the size of its root volume (0 when it does not say), for the estimate.
func (s *Stages) validateImage(ctx context.Context, id string) (int32, error) {
	out, err := s.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		// InvalidAMIID.NotFound is retryable elsewhere (right after CreateImage);
		// for an image the user named, it is bad input.
		if strings.HasPrefix(ErrorCode(err), "InvalidAMIID.") {
			return 0, &pipeline.BadInputError{Field: "imageId", Message: "EC2 refused it: " + awsMessage(err)}
		}
		return 0, fmt.Errorf("describe image %s: %w", id, err)
	}
	for _, im := range out.Images {
		if aws.ToString(im.ImageId) != id {
			continue
		}
		if state := string(im.State); state != "available" {
			return 0, &pipeline.BadInputError{Field: "imageId", Message: fmt.Sprintf("%s is %s, not available", id, state)}
		}
		return rootVolumeOf(im).SizeGiB, nil
	}
	// A deregistered image, or one this account may not launch, is not listed.
	return 0, &pipeline.BadInputError{Field: "imageId", Message: fmt.Sprintf("no image %s that this account can launch in this region", id)}
}
