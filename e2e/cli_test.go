package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/pipeline"
)

// amifleet runs the built CLI against the local cloud's primary region, finding
// the state machines from the stack's outputs as it does on AWS.
type amifleet struct {
	bin string
	env []string
}

func (a amifleet) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.bin, args...)
	cmd.Env = a.env
	cmd.Dir = ".."
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("amifleet %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("amifleet %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}

func buildCLI(t *testing.T) amifleet {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "amifleet")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/amifleet").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "AMIFLEET_") {
			env = append(env, kv)
		}
	}
	// Not the ARNs: the CLI must find them from the stack's outputs.
	env = append(env, filterPrefix(lc.Env(primary), "AMIFLEET_")...)
	env = append(env, "AWS_CONFIG_FILE="+filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(t.TempDir(), "none"))
	return amifleet{bin: bin, env: env}
}

func filterPrefix(env []string, prefix string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

// testCLI checks issue 5's promises with the real binary: run --wait exits 0 and
// prints the DNS name, --output json is one parseable document, a bad input exits
// 2 naming the field, watch shows every stage in order, the same --name starts
// one execution, teardown --wait leaves nothing.
func testCLI(t *testing.T) {
	a := buildCLI(t)
	const name = "e2e-cli"
	runID, _ := pipeline.RunIDFromExecutionName(name)

	stdout, _, code := a.run(t, "run", "--input", "events/local-input.json", "--name", name, "--wait", "--poll-interval", "1s", "--timeout", "4m")
	if code != cli.ExitOK {
		t.Fatalf("run --wait exit %d, want 0", code)
	}
	r := readRun(t, primary, runID)
	if len(r.LoadBalancers) != 1 {
		t.Fatalf("%d load balancers for %s", len(r.LoadBalancers), runID)
	}
	if dns := r.LoadBalancers[0].DNSName; !strings.Contains(stdout, dns) {
		t.Errorf("run --wait did not print the DNS name %s", dns)
	}

	// The same --name again: follows the first, starts nothing; JSON on stdout.
	stdout, _, code = a.run(t, "run", "--input", "events/local-input.json", "--name", name, "--wait", "--output", "json", "--poll-interval", "1s")
	if code != cli.ExitOK {
		t.Fatalf("second run exit %d", code)
	}
	var res cli.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("--output json is not one JSON document: %v\n%s", err, stdout)
	}
	if res.RunID != runID || res.Status != "SUCCEEDED" || res.Resources == nil || res.Resources.LoadBalancer == nil || !res.AlreadyStarted {
		t.Errorf("JSON result %+v: want run id %s, SUCCEEDED, resources, alreadyStarted", res, runID)
	}
	if got := len(readRun(t, primary, runID).Instances); got != 3 {
		t.Errorf("%d instances after two runs with one name, want 3", got)
	}

	// Bad input: exit 2, the field named, nothing started.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"replicaCount": -1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := a.run(t, "run", "--input", bad, "--name", "e2e-cli-bad")
	if code != cli.ExitUsage || !strings.Contains(stderr, "replicaCount") {
		t.Errorf("bad input: exit %d, stderr %q; want 2 naming replicaCount", code, stderr)
	}

	// watch on the finished execution: every stage, in order.
	stdout, _, code = a.run(t, "watch", name)
	if code != cli.ExitOK {
		t.Errorf("watch exit %d", code)
	}
	order := []string{"Validate", "CreateSecurityGroups", "BuildImageAndLoadBalancer", "LaunchBase", "CheckBaseStopped",
		"CreateImage", "CheckImageAvailable", "LaunchReplicas", "CheckInstancesRunning", "RegisterTargets", "CheckTargetsHealthy", "Verify"}
	last := -1
	for _, stage := range order {
		i := strings.Index(stdout, " "+stage+" ")
		if i < 0 {
			t.Errorf("watch does not show %s", stage)
			continue
		}
		if i < last {
			t.Errorf("watch shows %s out of order", stage)
		}
		last = i
	}
	for _, stage := range []string{"CreateLoadBalancer", "CheckLoadBalancerActive"} {
		i := strings.Index(stdout, " "+stage+" ")
		if i < strings.Index(stdout, " BuildImageAndLoadBalancer ") || i > strings.Index(stdout, " LaunchReplicas ") {
			t.Errorf("watch shows %s outside the parallel branch", stage)
		}
	}

	// teardown --wait: nothing with the run tag remains.
	if _, _, code := a.run(t, "teardown", "--run-id", runID, "--wait", "--poll-interval", "1s", "--timeout", "4m"); code != cli.ExitOK {
		t.Errorf("teardown --wait exit %d", code)
	}
	nothingLeft(t, primary, runID)
	testLogs(t, name)
}
