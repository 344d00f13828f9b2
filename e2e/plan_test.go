package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/pricing"
)

// TestPlan is a test of its own, not one of TestFleets': it starts no execution, and
// TestFleets holds its scenarios to having made calls that the IAM check evaluated.
func TestPlan(t *testing.T) { testPlan(t) }

// testPlan checks plan before you pay with the real binary against the local
// cloud: run --dry-run on the console's input prints the plan and a cost estimate
// (and the same as one JSON document), and with a maxHourlyCost under the estimate
// it exits 2 naming both figures; no execution is started by either.
func testPlan(t *testing.T) {
	a := buildCLI(t)
	const name, over = "e2e-plan", "e2e-plan-over"
	before := pipelineExecutions(t)

	stdout, _, code := a.run(t, "run", "--dry-run", "--input", "events/console-input.json", "--name", name)
	if code != cli.ExitOK {
		t.Fatalf("run --dry-run exit %d, want 0", code)
	}
	for _, want := range []string{
		"run id " + name, `"trigger": "console"`, `"maxReplicas": 20`,
		"amifleet-e2e-plan-sg-alb", "amifleet-e2e-plan-base", "amifleet-e2e-plan-image", "amifleet-e2e-plan-replica",
		"amifleet-e2e-plan-tg", "amifleet-e2e-plan-alb", "listener", "instances go to: " + primary,
		"cost estimate (" + primary + ", on-demand list prices as of " + pricing.AsOf,
		"per hour while the fleet lives: $", "one run until Verify",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the plan does not say %q", want)
		}
	}

	stdout, _, code = a.run(t, "plan", "--input", "events/console-input.json", "--name", name, "--output", "json")
	if code != cli.ExitOK {
		t.Fatalf("plan --output json exit %d", code)
	}
	var p cli.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatalf("plan --output json is not one JSON document: %v", err)
	}
	if p.RunID != name || p.Region != primary || len(p.Zones) < 2 || p.Estimate == nil || !p.Estimate.Complete || p.Estimate.PerHour <= 0 {
		t.Fatalf("plan %+v", p)
	}
	if !strings.Contains(stdout, `"perHour": `) {
		t.Errorf("the JSON plan has no per-hour estimate")
	}

	// The console's input with a limit under the estimate: refused, naming both.
	raw, err := os.ReadFile("../events/console-input.json")
	if err != nil {
		t.Fatal(err)
	}
	var input map[string]any
	if err := json.Unmarshal(raw, &input); err != nil {
		t.Fatal(err)
	}
	limit := p.Estimate.PerHour / 2
	input["maxHourlyCost"] = limit
	b, _ := json.Marshal(input)
	limited := filepath.Join(t.TempDir(), "limited.json")
	if err := os.WriteFile(limited, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := a.run(t, "run", "--dry-run", "--input", limited, "--name", over)
	estimate, max := pricing.USD(p.Estimate.PerHour)+"/hour", "maxHourlyCost "+pricing.USD(limit)+"/hour"
	if code != cli.ExitUsage || !strings.Contains(stderr, estimate) || !strings.Contains(stderr, max) {
		t.Errorf("over the limit: exit %d, stderr %q; want 2 naming %s and %s", code, stderr, estimate, max)
	}

	// Nothing was started: no execution of these names, and as many as before (no
	// other test runs beside this one: it is not parallel).
	after := pipelineExecutions(t)
	for _, n := range []string{name, over} {
		if after[n] != 0 {
			t.Errorf("%d executions named %s: a plan started one", after[n], n)
		}
	}
	if total(after) != total(before) {
		t.Errorf("%d Pipeline executions before the plans, %d after", total(before), total(after))
	}
}

func total(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// pipelineExecutions counts the Pipeline's executions by name.
func pipelineExecutions(t *testing.T) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int{}
	p := sfn.NewListExecutionsPaginator(sfnClient(primary), &sfn.ListExecutionsInput{StateMachineArn: aws.String(stack(t, primary).PipelineARN)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Executions {
			out[aws.ToString(x.Name)]++
		}
	}
	return out
}
