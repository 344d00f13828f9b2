package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pricing"
)

// plan and run --dry-run call EC2 (the Validate stage, here), never Step Functions.
func TestPlanCallsOnlyValidatesReads(t *testing.T) {
	endpoint := closedEndpoint(t)
	const machine = "arn:aws:states:us-east-1:123456789012:stateMachine:Pipeline"
	for _, args := range [][]string{
		{"plan"},
		{"run", "--dry-run", "--pipeline-arn", machine, "--name", "ci-1"},
	} {
		r := amifleet(t, endpoint, oneAttempt, args...)
		if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "EC2: DescribeVpcs") || strings.Contains(r.stderr, "SFN") {
			t.Errorf("amifleet %v: exit %d, want 1 from EC2's DescribeVpcs and no Step Functions call", args, r.code)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"maxHourlyCost": -1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"plan", "--input", bad}, {"run", "--dry-run", "--input", bad}} {
		if r := amifleet(t, endpoint, oneAttempt, args...); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "maxHourlyCost") {
			t.Errorf("amifleet %v: exit %d, want 2 naming maxHourlyCost before any AWS call", args, r.code)
		}
	}
}

func TestPlanAgainstMoto(t *testing.T) {
	build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	moto, err := localcloud.StartMoto(ctx, localcloud.MotoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := moto.Stop(); err != nil {
			t.Error(err)
		}
	}()
	input := filepath.Join("..", "..", "events", "console-input.json")
	r := amifleet(t, moto.Endpoint(), nil, "plan", "--input", input, "--name", "plan-moto", "--output", "json")
	if r.code != cli.ExitOK {
		t.Fatalf("plan exit %d", r.code)
	}
	var p cli.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("not one JSON document: %v", err)
	}
	if p.RunID != "plan-moto" || p.Region != region || len(p.Zones) < 2 || p.Estimate == nil || !p.Estimate.Complete ||
		p.Config.Tags["trigger"] != "console" || p.Estimate.PricesAsOf != pricing.AsOf {
		t.Fatalf("plan %+v", p)
	}

	limit := filepath.Join(t.TempDir(), "limit.json")
	if err := os.WriteFile(limit, []byte(`{"instanceType": "t2.micro", "maxHourlyCost": 0.01}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = amifleet(t, moto.Endpoint(), nil, "run", "--dry-run", "--input", limit)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "maxHourlyCost $0.0100/hour") ||
		!strings.Contains(r.stderr, "estimate "+pricing.USD(p.Estimate.PerHour)+"/hour") {
		t.Errorf("run --dry-run over maxHourlyCost: exit %d; want 2 naming the estimate %s and the limit",
			r.code, pricing.USD(p.Estimate.PerHour))
	}
}
