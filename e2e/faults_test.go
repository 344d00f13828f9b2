package e2e

import (
	"context"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// The gateway's faults match API actions in every region, and its counts are
// global: these scenarios run one at a time, after TestFleets (Go runs a file's
// top-level tests in order, and TestFleets' parallel subtests end before it returns).

// functionName is the deployed name of a stage's function in region.
func functionName(t *testing.T, region, stage string) string {
	t.Helper()
	name := stack(t, region).Outputs[stage+"FunctionName"]
	if name == "" {
		t.Fatalf("no %sFunctionName output in %s", stage, region)
	}
	return name
}

// clearFaults removes every fault when the test ends, whatever happened.
func clearFaults(t *testing.T) {
	t.Helper()
	lc.Gateway.ClearFaults()
	t.Cleanup(lc.Gateway.ClearFaults)
}

// createCalls are the counted calls that create or change something.
func createCalls(counts map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range counts {
		service, action, _ := strings.Cut(k, ":")
		if service != "ec2" && service != "elasticloadbalancing" {
			continue
		}
		for _, p := range []string{"Create*", "RunInstances", "Authorize*", "Register*", "StartInstances", "ModifyInstance*"} {
			if ok, _ := path.Match(p, action); ok && n > 0 {
				out[k] = n
			}
		}
	}
	return out
}

func TestFaults(t *testing.T) {
	// 6. Bad input fails at validation, and nothing is created.
	t.Run("BadInput", func(t *testing.T) {
		clearFaults(t)
		lc.Gateway.ResetCounts()
		e := start(t, primary, "e2e-bad-input", localInput(t, map[string]any{"replicaCount": 1000})).wait(t)
		if e.desc.Status != sfntypes.ExecutionStatusFailed || aws.ToString(e.desc.Error) != "BadInputError" {
			t.Fatalf("%s %s, want FAILED with BadInputError", e.desc.Status, aws.ToString(e.desc.Error))
		}
		if cause := aws.ToString(e.desc.Cause); !strings.Contains(cause, "replicaCount") {
			t.Errorf("cause %q does not name the field replicaCount", cause)
		}
		counts := lc.Gateway.Counts()
		if counts["lambda:Invoke"] == 0 {
			t.Errorf("no Lambda Invoke counted: %v", counts)
		}
		if c := createCalls(counts); len(c) > 0 {
			t.Errorf("create calls made for a bad input: %v", c)
		}
		for _, h := range e.history(t) {
			if d := h.StateEnteredEventDetails; d != nil && aws.ToString(d.Name) != "Validate" && aws.ToString(d.Name) != "InvalidInput" {
				t.Errorf("state %s entered after a bad input", aws.ToString(d.Name))
			}
		}
		nothingLeft(t, primary, e.runID)
	})

	// 4. Throttling on the first calls of DescribeInstances and CreateImage: the
	// stages' retries ride it out.
	t.Run("Throttling", func(t *testing.T) {
		clearFaults(t)
		lc.Gateway.ResetCounts()
		lc.Gateway.InjectAPIError("ec2:DescribeInstances", "RequestLimitExceeded", 0, 3)
		lc.Gateway.InjectAPIError("ec2:CreateImage", "RequestLimitExceeded", 0, 2)
		e := start(t, primary, "e2e-throttled", localInput(t, nil)).wait(t).succeeded(t)
		checkFleet(t, e, 2)
		counts := lc.Gateway.Counts()
		// Each faulted call was answered RequestLimitExceeded and made again.
		if counts["ec2:CreateImage"] < 3 || counts["ec2:DescribeInstances"] < 4 {
			t.Errorf("CreateImage called %d times, DescribeInstances %d: the throttled calls were not made again",
				counts["ec2:CreateImage"], counts["ec2:DescribeInstances"])
		}
	})

	// 5. A stage's process crashing once: Lambda's Runtime.ExitError is retried.
	t.Run("CrashOnce", func(t *testing.T) {
		clearFaults(t)
		lc.Gateway.CrashFunction(functionName(t, primary, "LaunchBase"), 1)
		e := start(t, primary, "e2e-crash-once", localInput(t, nil)).wait(t).succeeded(t)
		checkFleet(t, e, 2)
		if n := crashes(t, e); n != 1 {
			t.Errorf("%d tasks crashed, want the one crash", n)
		}
	})

	// The replicas' software does not come up: their targets turn unhealthy on real
	// health checks, the health wait runs out, Cleanup deletes everything, and the
	// cause names the unhealthy targets and AWS's reason.
	t.Run("ReplicasNeverServe", func(t *testing.T) {
		clearFaults(t)
		lc.Gateway.FailBoots(2)
		e := start(t, primary, "e2e-replicas-never-serve", localInput(t, map[string]any{
			"poll": map[string]any{"firstWaitSeconds": map[string]any{"baseStopped": 1, "imageAvailable": 1, "loadBalancerActive": 1, "instancesRunning": 1, "targetsHealthy": 1, "cleanupDone": 1},
				"intervalSeconds": 1, "maxPolls": map[string]any{"targetsHealthy": 8}}})).wait(t)
		if e.desc.Status != sfntypes.ExecutionStatusFailed {
			t.Fatalf("%s, want FAILED", e.desc.Status)
		}
		cause := aws.ToString(e.desc.Cause)
		if aws.ToString(e.desc.Error) != pipeline.ErrWaitTimedOut || !strings.HasPrefix(cause, "TargetsHealthyTimedOut failed: ") ||
			strings.Count(cause, "unhealthy (Target.Timeout)") != 2 {
			t.Errorf("error %s, cause %q: want TargetsHealthyTimedOut naming both replicas unhealthy (Target.Timeout)", aws.ToString(e.desc.Error), cause)
		}
		nothingLeft(t, primary, e.runID)
	})

	// 3. For each stage in turn, a failure no retry cures: the run fails, the cause
	// names the stage, and Cleanup leaves nothing with the run tag.
	t.Run("StageFails", func(t *testing.T) {
		cases := []struct {
			state string // the state that fails, as the cause names it
			api   *localcloud.APIFault
			crash string // function that crashes on every call (each is called by the Task of its name)
			input map[string]any
		}{
			// Validate reads the account only for what the input names: an image id.
			{state: "Validate", api: &localcloud.APIFault{Action: "ec2:DescribeImages", Code: "UnauthorizedOperation"},
				input: map[string]any{"imageId": defaultImage(t, primary)}},
			{state: "CreateSecurityGroups", api: &localcloud.APIFault{Action: "ec2:CreateSecurityGroup", Code: "UnauthorizedOperation"}},
			{state: "LaunchBase", api: &localcloud.APIFault{Action: "ec2:RunInstances", Code: "UnauthorizedOperation"}},
			{state: "CheckBaseStopped", crash: "CheckBaseStopped"},
			{state: "CreateImage", api: &localcloud.APIFault{Action: "ec2:CreateImage", Code: "UnauthorizedOperation"}},
			{state: "CheckImageAvailable", crash: "CheckImageAvailable"},
			{state: "CreateLoadBalancer", api: &localcloud.APIFault{Action: "elasticloadbalancing:CreateLoadBalancer", Code: "AccessDenied"}},
			{state: "CheckLoadBalancerActive", crash: "CheckLoadBalancerActive"},
			{state: "LaunchReplicas", crash: "LaunchReplicas"},
			{state: "CheckInstancesRunning", crash: "CheckInstancesRunning"},
			{state: "RegisterTargets", api: &localcloud.APIFault{Action: "elasticloadbalancing:RegisterTargets", Code: "AccessDenied"}},
			{state: "CheckTargetsHealthy", crash: "CheckTargetsHealthy"},
			{state: "Verify", crash: "Verify"},
		}
		// Validate's fault (DescribeImages of the default image) would hit the others'
		// LaunchBase: it runs first, alone. The others' faults match their run's id,
		// so they fail side by side.
		for _, tc := range cases {
			t.Run(tc.state, func(t *testing.T) {
				name := "e2e-fail-" + strings.ToLower(tc.state)
				if tc.state == pipeline.Validate {
					clearFaults(t)
				} else {
					t.Parallel()
				}
				runID, _ := pipeline.RunIDFromExecutionName(name)
				if tc.api != nil {
					f := *tc.api // Count 0: every call fails
					if tc.state != pipeline.Validate {
						f.Match = runID
					}
					lc.Gateway.AddFault(f)
				}
				if tc.crash != "" {
					lc.Gateway.AddCrash(localcloud.CrashFault{Function: functionName(t, primary, tc.crash), Times: 100, Match: runID})
				}
				e := start(t, primary, name, localInput(t, tc.input))
				e.wait(t)
				if e.desc.Status != sfntypes.ExecutionStatusFailed {
					t.Fatalf("%s, want FAILED", e.desc.Status)
				}
				// The cause names the state the console graph shows, first, and the
				// error's message does not name it again ("StageError: CreateImage: ...").
				// Validate's failures go straight to a Fail state named for them
				// (InvalidInput, ValidationFailed): the cause is the function's error.
				cause := aws.ToString(e.desc.Cause)
				if tc.state == pipeline.Validate {
					if le, ok := pipeline.ParseLambdaError([]byte(cause)); !ok || le.ErrorType != aws.ToString(e.desc.Error) {
						t.Errorf("cause %q (error %s): want the Validate function's error", cause, aws.ToString(e.desc.Error))
					}
				} else if !strings.HasPrefix(cause, tc.state+" failed: ") {
					t.Errorf("cause %q (error %s) does not start with %q", cause, aws.ToString(e.desc.Error), tc.state+" failed: ")
				}
				if strings.Contains(cause, "Error: "+tc.state+": ") {
					t.Errorf("cause %q names %s again in the error's message", cause, tc.state)
				}
				if aws.ToString(e.desc.Error) == "CleanupFailed" {
					t.Errorf("cleanup failed: %s", cause)
				}
				nothingLeft(t, primary, e.runID)
			})
		}
	})
	lc.Gateway.ClearFaults()
}

// defaultImage is the AMI the default image parameter names in region.
func defaultImage(t *testing.T, region string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ssm.NewFromConfig(lc.DirectConfig(region)).GetParameter(ctx, &ssm.GetParameterInput{
		Name: aws.String(pipeline.DefaultConfig().ImageParameter),
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Parameter.Value)
}
