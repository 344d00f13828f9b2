package e2e

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// testKeepOnFailure: a run with keepOnFailure that fails late keeps everything it
// made, tagged, and starts its Teardown with the default time to live; `amifleet
// status` lists the kept resources and when they go; a Teardown by run id then
// deletes them. The fault matches the run's id, so it hits this run only and the
// test runs beside the others.
func testKeepOnFailure(t *testing.T) {
	const name = "e2e-kept"
	runID, _ := pipeline.RunIDFromExecutionName(name)
	lc.Gateway.AddFault(localcloud.APIFault{Action: "elasticloadbalancing:RegisterTargets", Code: "AccessDenied", Match: runID})
	e := start(t, primary, name, localInput(t, map[string]any{"keepOnFailure": true})).wait(t)

	// The stage's own error, and a cause that says what was kept.
	cause := aws.ToString(e.desc.Cause)
	if e.desc.Status != sfntypes.ExecutionStatusFailed || aws.ToString(e.desc.Error) != pipeline.ErrStage ||
		!strings.HasPrefix(cause, "RegisterTargets failed: ") || !strings.Contains(cause, "resources kept for debugging") {
		t.Fatalf("%s %s: %s; want FAILED with RegisterTargets' StageError, resources kept", e.desc.Status, aws.ToString(e.desc.Error), cause)
	}
	var states []string
	for _, h := range e.history(t) {
		if d := h.StateEnteredEventDetails; d != nil {
			states = append(states, aws.ToString(d.Name))
		}
	}
	for _, s := range []string{"KeepOnFailure?", "KeptTeardownDefault", "ScheduleKeptTeardown", "KeepResources", "Cleanup", "KeptAfterFailure"} {
		if !slices.Contains(states, s) {
			t.Errorf("states %v lack %s, on the kept path", states, s)
		}
	}

	// Everything the run made is still there.
	r := readRun(t, primary, e.runID)
	if len(r.Instances) != 3 || len(r.LoadBalancers) != 1 || len(r.TargetGroups) != 1 || len(r.Images) != 1 || len(r.SecurityGroups) != 2 {
		t.Fatalf("after the kept failure: %s; want 3 instances, the load balancer, the target group, the image, 2 security groups",
			strings.Join(r.Remaining(), ", "))
	}

	// The Teardown, named after this execution, waits the default time to live.
	sum := sha1.Sum([]byte(e.arn))
	ttlName := "teardown-" + e.runID + "-ttl-" + hex.EncodeToString(sum[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := sfnClient(primary).DescribeExecution(ctx, &sfn.DescribeExecutionInput{
		ExecutionArn: aws.String(executionARNOf(stack(t, primary).TeardownARN, ttlName))})
	if err != nil {
		t.Fatalf("the kept run's Teardown %s: %v", ttlName, err)
	}
	var in pipeline.TeardownInput
	if err := json.Unmarshal([]byte(aws.ToString(td.Input)), &in); err != nil {
		t.Fatal(err)
	}
	if td.Status != sfntypes.ExecutionStatusRunning || in.RunID != e.runID || in.DelaySeconds != pipeline.DefaultKeptTeardownMinutes*60 {
		t.Errorf("Teardown %s %s with %+v; want RUNNING (waiting), run %s, delay %d s", ttlName, td.Status, in, e.runID, pipeline.DefaultKeptTeardownMinutes*60)
	}

	// The CLI lists what was kept, and when it goes.
	a := buildCLI(t)
	stdout, _, code := a.run(t, "status", e.name)
	if code != cli.ExitFailed {
		t.Errorf("status exit %d; want %d", code, cli.ExitFailed)
	}
	at := aws.ToTime(td.StartDate).Add(time.Duration(in.DelaySeconds) * time.Second).UTC().Format(time.DateTime)
	want := []string{"kept", "amifleet teardown --run-id " + e.runID, ttlName, at}
	for _, in := range r.Instances {
		want = append(want, in.ID)
	}
	for _, s := range want {
		if !strings.Contains(stdout, s) {
			t.Errorf("status does not say %q", s)
		}
	}
	stdout, _, _ = a.run(t, "status", "--output", "json", e.name)
	var res cli.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("status --output json: %v\n%s", err, stdout)
	}
	if k := res.Kept; k == nil || k.Teardown != ttlName || k.TeardownStatus != "RUNNING" || len(k.Resources) != 8 ||
		k.TeardownAt == nil || k.TeardownAt.UTC().Format(time.DateTime) != at {
		t.Errorf("kept %+v; want 8 resources (3 instances, image, load balancer, target group, 2 security groups), %s RUNNING until %s", k, ttlName, at)
	}

	// Deleting them now, by run id, leaves nothing.
	startOn(t, primary, stack(t, primary).TeardownARN, "teardown-"+e.runID, teardownInput(t, e.runID)).wait(t).succeeded(t)
	nothingLeft(t, primary, e.runID)
}

// executionARNOf is the ARN of the execution name of a state machine.
func executionARNOf(stateMachineARN, name string) string {
	return strings.Replace(stateMachineARN, ":stateMachine:", ":execution:", 1) + ":" + name
}
