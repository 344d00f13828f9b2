package stages

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/pricing"
)

// validateIn runs Validate with the recorder's clients in the given region.
func validateIn(t *testing.T, r *validateRecorder, region, input string) (pipeline.Document, error) {
	t.Helper()
	s := r.stages()
	s.Region = region
	return Handle("Validate", s.Validate)(context.Background(), pipeline.ValidateInput{ExecutionName: "cost-run",
		Input: json.RawMessage(input), ExecutionID: fakeExecutionARN("cost-run"), StartTime: fakeStartTime})
}

func TestValidateEstimatesTheRun(t *testing.T) {
	r := newValidateRecorder(t)
	doc, err := runValidate(t, r, "cost-run", `{"replicaCount": 3}`)
	if err != nil {
		t.Fatal(err)
	}
	// The default VPC's two zones: two load balancer addresses; its subnets map no
	// public address here, and SSH is closed: no instance address.
	want := pricing.Fleet{Region: "us-east-1", InstanceType: "t2.micro", Replicas: 3, KeepBase: true,
		LoadBalancerZones: 2, PollIntervalSeconds: pipeline.DefaultPollIntervalSeconds}.Estimate()
	if doc.Estimate == nil || doc.Estimate.PerHour != want.PerHour || doc.Estimate.Run != want.Run || !doc.Estimate.Complete {
		t.Fatalf("estimate %+v, want %+v", doc.Estimate, want)
	}
	// 4 × t2.micro at $0.0116 is most of it.
	if p := doc.Estimate.PerHour; p < 4*0.0116+0.0225+0.008 || p > 4*0.0116+0.0225+0.008+0.02 {
		t.Errorf("per hour %v", p)
	}
}

func TestValidateEstimateReadsTheNetworkAndImage(t *testing.T) {
	r := newValidateRecorder(t)
	public := subnetA
	public.MapPublicIpOnLaunch = aws.Bool(true)
	r.subnets = []ec2types.Subnet{public, subnetB}
	r.images = []ec2types.Image{{ImageId: aws.String(validateImageID), State: ec2types.ImageStateAvailable,
		RootDeviceName: aws.String("/dev/xvda"), BlockDeviceMappings: []ec2types.BlockDeviceMapping{
			{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(30)}}}}}
	doc, err := runValidate(t, r, "cost-run", `{"imageId": "`+validateImageID+`", "sshCidrs": ["203.0.113.0/24"]}`)
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]pricing.Line{}
	for _, l := range doc.Estimate.Lines {
		items[l.Item] = l
	}
	if l := items["EBS gp3 root volumes"]; l.Size != 30 || l.Count != 3 {
		t.Errorf("volumes %+v, want 3 of the image's 30 GiB", l)
	}
	if l := items["public IPv4 (replicas, for sshCidrs)"]; l.Count != 2 {
		t.Errorf("replica addresses %+v, want 2 (sshCidrs set)", l)
	}
	if l, ok := items["public IPv4 (base instance, while it runs)"]; !ok || l.PerHour != 0.005 {
		t.Errorf("base address %+v, want one (its subnet maps public addresses)", l)
	}
}

func TestValidateHoldsTheRunToMaxHourlyCost(t *testing.T) {
	t.Run("estimate over the limit", func(t *testing.T) {
		r := newValidateRecorder(t)
		doc, err := runValidate(t, r, "cost-run", `{"replicaCount": 10, "maxHourlyCost": 0.05}`)
		var bad *pipeline.BadInputError
		if !errors.As(err, &bad) || bad.Field != "maxHourlyCost" {
			t.Fatalf("Validate = %+v, %v; want BadInputError on maxHourlyCost", doc, err)
		}
		want := pricing.Fleet{Region: "us-east-1", InstanceType: "t2.micro", Replicas: 10, KeepBase: true,
			LoadBalancerZones: 2, PollIntervalSeconds: 15}.Estimate()
		for _, fig := range []string{pricing.USD(want.PerHour) + "/hour", "maxHourlyCost $0.0500/hour"} {
			if !strings.Contains(bad.Message, fig) {
				t.Errorf("message %q does not name %s", bad.Message, fig)
			}
		}
		// Refused from what it read of the network: not even the quota is read.
		if slices.Contains(r.calls, "GetServiceQuota") {
			t.Errorf("calls %v: the quota was read after the run was refused", r.calls)
		}
	})
	t.Run("estimate under the limit", func(t *testing.T) {
		doc, err := runValidate(t, newValidateRecorder(t), "cost-run", `{"maxHourlyCost": 0.5}`)
		if err != nil || doc.Estimate == nil || doc.Estimate.PerHour > 0.5 {
			t.Fatalf("Validate = %+v, %v", doc.Estimate, err)
		}
	})
	t.Run("no price with a limit", func(t *testing.T) {
		_, err := validateIn(t, newValidateRecorder(t), "mars-north-1", `{"maxHourlyCost": 1}`)
		var bad *pipeline.BadInputError
		if !errors.As(err, &bad) || bad.Field != "maxHourlyCost" || !strings.Contains(bad.Message, "no price known") ||
			!strings.Contains(bad.Message, "mars-north-1") {
			t.Fatalf("Validate = %v; want BadInputError on maxHourlyCost naming the region", err)
		}
	})
	t.Run("no price without a limit", func(t *testing.T) {
		doc, err := validateIn(t, newValidateRecorder(t), "mars-north-1", `{}`)
		if err != nil || doc.Estimate == nil || doc.Estimate.Complete || len(doc.Estimate.Unknown) == 0 {
			t.Fatalf("Validate = %+v, %v; want an estimate that says it is unknown", doc.Estimate, err)
		}
	})
}
