package stages_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/pricing"
)

// Against moto's default VPC: Validate prices the run from what it read (the
// load balancer's address in each of the default subnets' zones, the base
// instance's from its default subnet), and refuses a run over maxHourlyCost
// naming both figures.
func TestMotoValidateEstimateAndMaxHourlyCost(t *testing.T) {
	h := newMotoHarness(t)
	runID := newRunID(t, "cost")
	doc := h.validatedInput(runID, `{"instanceType": "t3.micro", "replicaCount": 2}`)
	est := doc.Estimate
	if est == nil || !est.Complete || est.Region != motoRegion {
		t.Fatalf("estimate %+v, want a complete one for %s", est, motoRegion)
	}
	lines := map[string]pricing.Line{}
	for _, l := range est.Lines {
		lines[l.Item] = l
	}
	// t3.micro is not offered in us-east-1e, but the load balancer keeps that zone.
	if l := lines["public IPv4 (load balancer, one per zone)"]; l.Count <= len(doc.Placement.Zones) {
		t.Errorf("load balancer addresses %+v: want one per default subnet's zone, more than the %d that offer t3.micro",
			l, len(doc.Placement.Zones))
	}
	if _, ok := lines["public IPv4 (base instance, while it runs)"]; !ok {
		t.Errorf("no address for the base instance: its default subnet maps one (lines %v)", est.Lines)
	}
	if l := lines["instance t3.micro (replicas)"]; l.Count != 2 || l.UnitPrice != 0.0104 {
		t.Errorf("replicas %+v", l)
	}

	limit := est.PerHour / 2
	_, err := h.s.Validate(h.ctx, pipeline.ValidateInput{ExecutionName: runID + "-over",
		Input:       json.RawMessage(`{"instanceType": "t3.micro", "replicaCount": 2, "maxHourlyCost": ` + jsonNumber(limit) + `}`),
		ExecutionID: "arn:aws:states:" + motoRegion + ":123456789012:execution:AmiFleetPipeline:" + runID + "-over",
		StartTime:   time.Now().UTC().Format(time.RFC3339Nano)})
	var bad *pipeline.BadInputError
	if !errors.As(err, &bad) || bad.Field != "maxHourlyCost" || !strings.Contains(bad.Message, pricing.USD(est.PerHour)) {
		t.Fatalf("Validate with maxHourlyCost %v: %v; want BadInputError naming the estimate %s", limit, err, pricing.USD(est.PerHour))
	}
}

func jsonNumber(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
