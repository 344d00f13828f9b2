// Tests of the maxHourlyCost rule and of the estimate in the pipeline document.

package pipeline_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/pricing"
)

func TestMaxHourlyCostRule(t *testing.T) {
	for _, c := range []badInput{
		{"zero", `{"maxHourlyCost": 0}`, "maxHourlyCost", "more than 0"},
		{"negative", `{"maxHourlyCost": -0.5}`, "maxHourlyCost", "got -0.5"},
		{"over the ceiling", `{"maxHourlyCost": 20000}`, "maxHourlyCost", "at most 10000"},
		{"a string", `{"maxHourlyCost": "0.10"}`, "maxHourlyCost", "want a number"},
		{"out of range", `{"maxHourlyCost": 1e999}`, "maxHourlyCost", "out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := pipeline.ParseConfig(json.RawMessage(c.input))
			var bad *pipeline.BadInputError
			if !errors.As(err, &bad) || bad.Field != c.field || !strings.Contains(bad.Message, c.message) {
				t.Fatalf("%s: got %v, want BadInputError on %s with %q", c.input, err, c.field, c.message)
			}
		})
	}
	cfg, err := pipeline.ParseConfig(json.RawMessage(`{"maxHourlyCost": 0.25}`))
	if err != nil || cfg.MaxHourlyCost == nil || *cfg.MaxHourlyCost != 0.25 {
		t.Fatalf("0.25: %v, %v", err, cfg.MaxHourlyCost)
	}
	if cfg, err := pipeline.ParseConfig(json.RawMessage(`{"maxHourlyCost": null}`)); err != nil || cfg.MaxHourlyCost != nil {
		t.Errorf("null: %v, %v; want no limit", err, cfg.MaxHourlyCost)
	}
	if pipeline.DefaultConfig().MaxHourlyCost != nil {
		t.Error("the default has a cost limit")
	}
}

func TestDocumentCarriesEstimate(t *testing.T) {
	e := pricing.Fleet{Region: "us-east-1", InstanceType: "t2.micro", Replicas: 2, LoadBalancerZones: 2}.Estimate()
	b, err := json.Marshal(pipeline.Document{RunID: "demo", Estimate: &e})
	if err != nil {
		t.Fatal(err)
	}
	var back pipeline.Document
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Estimate == nil || back.Estimate.PerHour != e.PerHour || back.Estimate.PricesAsOf != pricing.AsOf ||
		!strings.Contains(string(b), `"estimate":{"region":"us-east-1"`) {
		t.Errorf("estimate did not make the trip: %s", b)
	}
}
