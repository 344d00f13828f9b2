package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/pricing"
)

// fakeValidator stands in for the Validate stage: it records what it was given and
// answers doc, or err.
type fakeValidator struct {
	got []pipeline.ValidateInput
	doc pipeline.Document
	err error
}

func (v *fakeValidator) Validate(_ context.Context, in pipeline.ValidateInput) (pipeline.Document, error) {
	v.got = append(v.got, in)
	return v.doc, v.err
}

// planFor prepares a run of input named name, and a validator that answers what
// Validate would in us-east-1's default VPC (zones a and b).
func planFor(t *testing.T, input, name string) (RunPlan, *fakeValidator) {
	t.Helper()
	plan, err := PrepareRun(RunOptions{Input: []byte(input), InputName: "in.json", Name: name}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	est := pricing.Fleet{Region: "us-east-1", InstanceType: plan.Config.InstanceType, Replicas: plan.Config.ReplicaCount,
		KeepBase: plan.Config.KeepBase(), LoadBalancerZones: 2, PollIntervalSeconds: plan.Config.Poll.IntervalSeconds}.Estimate()
	return plan, &fakeValidator{doc: pipeline.Document{RunID: plan.RunID, Config: plan.Config, Estimate: &est,
		Placement: &pipeline.Placement{Zones: []string{"us-east-1a", "us-east-1b"}, VCPUs: 1}}}
}

func TestPlanPrintsResourcesZonesAndCost(t *testing.T) {
	f := newFakeSFN()
	r, stdout, _ := newRunner(f, FormatText)
	plan, v := planFor(t, `{"instanceType": "t2.micro", "replicaCount": 3, "tags": {"trigger": "console"}}`, "plan-demo")
	if err := r.Plan(context.Background(), plan, v, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if len(v.got) != 1 || v.got[0].ExecutionName != "plan-demo" || string(v.got[0].Input) != plan.Input ||
		v.got[0].ExecutionID == "" || v.got[0].StartTime == "" {
		t.Errorf("Validate got %+v, want the run's name and input", v.got)
	}
	out := stdout.String()
	for _, want := range []string{
		"run id plan-demo", `"replicaCount": 3`, `"maxReplicas": 20`, // the input, defaults filled in
		"amifleet-plan-demo-sg-alb", "amifleet-plan-demo-sg-instance", "amifleet-plan-demo-base", "amifleet-plan-demo-image",
		"amifleet-plan-demo-replica", "amifleet-plan-demo-tg", "amifleet-plan-demo-alb", "listener",
		"instances go to: us-east-1a, us-east-1b",
		"as of " + pricing.AsOf, "instance t2.micro (replicas)", "Application Load Balancer",
		"per hour while the fleet lives: " + pricing.USD(v.doc.Estimate.PerHour),
		"one run until Verify", pricing.USD(v.doc.Estimate.Run),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "EC2 instance (replica)  amifleet-plan-demo-replica") || !strings.Contains(out, "  3  ") {
		t.Errorf("plan does not count 3 replicas:\n%s", out)
	}
	if len(f.starts) != 0 {
		t.Errorf("plan started %d executions", len(f.starts))
	}
}

func TestPlanJSONIsOneDocument(t *testing.T) {
	r, stdout, _ := newRunner(newFakeSFN(), FormatJSON)
	plan, v := planFor(t, `{}`, "plan-json")
	if err := r.Plan(context.Background(), plan, v, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	var got Plan
	dec := json.NewDecoder(strings.NewReader(stdout.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || dec.More() {
		t.Fatalf("not one JSON plan: %v\n%s", err, stdout)
	}
	if got.RunID != "plan-json" || got.Region != "us-east-1" || len(got.Zones) != 2 || got.Estimate == nil ||
		got.Estimate.PerHour != v.doc.Estimate.PerHour || got.Config.ReplicaCount != pipeline.DefaultReplicaCount {
		t.Errorf("plan %+v", got)
	}
	counts := map[string]int{}
	for _, res := range got.Resources {
		counts[res.Kind+" "+res.Name] += res.Count
	}
	if counts["EC2 instance (replica) amifleet-plan-json-replica"] != 2 || counts["load balancer (ALB) amifleet-plan-json-alb"] != 1 ||
		counts["EC2 instance (base) amifleet-plan-json-base"] != 1 || counts["EBS volume (gp3 root) amifleet-plan-json-replica"] != 2 {
		t.Errorf("resources %+v", got.Resources)
	}
}

func TestPlanRefusedByValidate(t *testing.T) {
	r, stdout, _ := newRunner(newFakeSFN(), FormatText)
	plan, v := planFor(t, `{"maxHourlyCost": 0.01}`, "plan-over")
	v.err = &pipeline.BadInputError{Field: "maxHourlyCost", Message: "the fleet's estimate $0.0900/hour exceeds maxHourlyCost $0.0100/hour"}
	err := r.Plan(context.Background(), plan, v, "us-east-1")
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "maxHourlyCost") || !strings.Contains(err.Error(), "$0.0900/hour") {
		t.Errorf("Plan = %v (exit %d), want exit 2 naming maxHourlyCost and the estimate", err, ExitCode(err))
	}
	if stdout.Len() != 0 {
		t.Errorf("a refused plan printed %q", stdout)
	}
	v.err = errors.New("operation error EC2: DescribeVpcs, no credentials")
	if err := r.Plan(context.Background(), plan, v, "us-east-1"); ExitCode(err) != ExitFailed {
		t.Errorf("an AWS failure exits %d, want %d", ExitCode(err), ExitFailed)
	}
}

func TestPlanUnknownPrice(t *testing.T) {
	r, stdout, _ := newRunner(newFakeSFN(), FormatText)
	plan, v := planFor(t, `{}`, "plan-unknown")
	est := pricing.Fleet{Region: "mars-north-1", InstanceType: "t2.micro", Replicas: 2}.Estimate()
	v.doc.Estimate = &est
	if err := r.Plan(context.Background(), plan, v, "mars-north-1"); err != nil {
		t.Fatal(err)
	}
	if out := stdout.String(); !strings.Contains(out, "unknown: region mars-north-1") || !strings.Contains(out, "at least $0.0000") {
		t.Errorf("plan does not say the price is unknown:\n%s", out)
	}
}
