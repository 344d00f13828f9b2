package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

const region = "us-east-1"

// Stand-ins for the real state machines: the CLI only sees executions, their
// history and their output, so Pass, Wait, Succeed and Fail states are enough.
const (
	dnsName = "amifleet-standin-alb-1.us-east-1.elb.amazonaws.com"

	pipelineASL = `{"StartAt":"Validate","States":{
  "Validate":{"Type":"Pass","Next":"CreateSecurityGroups"},
  "CreateSecurityGroups":{"Type":"Pass","Next":"CreateLoadBalancer"},
  "CreateLoadBalancer":{"Type":"Pass","Parameters":{"runId":"standin","resources":{"loadBalancer":{
      "targetGroupArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/amifleet-standin-tg/1",
      "loadBalancerArn":"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/amifleet-standin-alb/1",
      "dnsName":"` + dnsName + `"},
    "fleet":{"replicaInstanceIds":["i-2","i-3"],"instanceIds":["i-1","i-2","i-3"]}}},"Next":"Done"},
  "Done":{"Type":"Succeed"}}}`

	// As the real Pipeline fails: a branch's Fail state (BranchFailed, the
	// branch's errors as its cause), the Parallel's Catch into $.errors, Cleanup,
	// then the final Fail with the normalised cause.
	failingASL = `{"StartAt":"Validate","States":{
  "Validate":{"Type":"Pass","Next":"BuildImageAndLoadBalancer"},
  "BuildImageAndLoadBalancer":{"Type":"Parallel","Branches":[
    {"StartAt":"LaunchBase","States":{
      "LaunchBase":{"Type":"Pass","Result":{"Error":"CapacityError","Cause":"InsufficientInstanceCapacity"},"ResultPath":"$.errors.LaunchBase","Next":"ImageBranchFailed"},
      "ImageBranchFailed":{"Type":"Fail","Error":"BranchFailed","CausePath":"States.JsonToString($.errors)"}}},
    {"StartAt":"CreateLoadBalancer","States":{"CreateLoadBalancer":{"Type":"Pass","End":true}}}],
   "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.errors.BuildImageAndLoadBalancer","Next":"Cleanup"}],
   "Next":"Done"},
  "Cleanup":{"Type":"Pass","Next":"Failed"},
  "Done":{"Type":"Succeed"},
  "Failed":{"Type":"Fail","Error":"CapacityError","Cause":"LaunchBase failed: CapacityError: InsufficientInstanceCapacity"}}}`

	slowASL = `{"StartAt":"Validate","States":{
  "Validate":{"Type":"Pass","Next":"WaitForImage"},
  "WaitForImage":{"Type":"Wait","Seconds":3,"End":true}}}`

	teardownASL = `{"StartAt":"Cleanup","States":{
  "Cleanup":{"Type":"Pass","Result":{"deleted":true},"ResultPath":"$.cleanup","Next":"Done"},
  "Done":{"Type":"Succeed"}}}`
)

// A stack that only carries the outputs the CLI reads, as the CDK app's does.
const stackTemplate = `{"Resources":{"Handle":{"Type":"AWS::CloudFormation::WaitConditionHandle"}},
 "Outputs":{"PipelineStateMachineArn":{"Value":"%PIPELINE%"},"TeardownStateMachineArn":{"Value":"%TEARDOWN%"}}}`

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// build compiles the CLI once for every test in the package.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "amifleet-cli-test")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "amifleet")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		_ = os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// amifleet runs the built CLI against endpoint with env added.
func amifleet(t *testing.T, endpoint string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, build(t), append([]string{"--poll-interval", "200ms"}, args...)...)
	home := t.TempDir()
	// Nothing from the developer's own AWS setup: fake credentials, the local endpoint.
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_ACCESS_KEY_ID=amifleet-test",
		"AWS_SECRET_ACCESS_KEY=amifleet-test",
		"AWS_REGION=" + region,
		"AWS_ENDPOINT_URL=" + endpoint,
		"TZ=UTC",
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("amifleet %v: %v", args, err)
	}
	t.Logf("amifleet %s -> exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

func TestCLIAgainstMoto(t *testing.T) {
	build(t) // before moto: the build is the slow part
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
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
	endpoint := moto.Endpoint()
	cfg := localcloud.AWSConfig(endpoint, region)
	client := sfn.NewFromConfig(cfg)

	create := func(name, asl string) string {
		out, err := client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
			Name:       aws.String(name),
			Definition: aws.String(asl),
			RoleArn:    aws.String("arn:aws:iam::123456789012:role/" + name),
		})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return aws.ToString(out.StateMachineArn)
	}
	pipelineARN := create("Pipeline", pipelineASL)
	teardownARN := create("Teardown", teardownASL)
	failingARN := create("FailingPipeline", failingASL)
	slowARN := create("SlowPipeline", slowASL)
	template := strings.NewReplacer("%PIPELINE%", pipelineARN, "%TEARDOWN%", teardownARN).Replace(stackTemplate)
	if _, err := cloudformation.NewFromConfig(cfg).CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(cli.DefaultStack), TemplateBody: aws.String(template),
	}); err != nil {
		t.Fatal(err)
	}

	executions := func(t *testing.T, sm string) []sfntypes.ExecutionListItem {
		t.Helper()
		out, err := client.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(sm)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Executions
	}

	t.Run("run --wait exits 0 and prints the DNS name", func(t *testing.T) {
		r := amifleet(t, endpoint, nil, "run", "--wait", "--name", "first")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		for _, want := range []string{"started first (run id first)", "SUCCEEDED", dnsName, "http://" + dnsName + "/"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
	})

	t.Run("watch shows the states in order", func(t *testing.T) {
		r := amifleet(t, endpoint, nil, "watch", "first")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		line := regexp.MustCompile(`^\d\d:\d\d:\d\d  (\S+) +(.*)$`)
		var got []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if m := line.FindStringSubmatch(l); m != nil {
				verb, _, _ := strings.Cut(m[2], " ")
				got = append(got, m[1]+" "+verb)
			}
		}
		want := []string{
			"execution started",
			"Validate started", "Validate succeeded",
			"CreateSecurityGroups started", "CreateSecurityGroups succeeded",
			"CreateLoadBalancer started", "CreateLoadBalancer succeeded",
			"execution succeeded",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("watch lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("--output json is one document with the run id, status and resources", func(t *testing.T) {
		r := amifleet(t, endpoint, nil, "run", "--wait", "--output", "json", "--replicas", "3", "--name", "json-run")
		if r.code != 0 {
			t.Fatalf("exit %d", r.code)
		}
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		var doc struct {
			ExecutionARN string `json:"executionArn"`
			RunID        string `json:"runId"`
			Status       string `json:"status"`
			Resources    struct {
				LoadBalancer struct {
					DNSName string `json:"dnsName"`
				} `json:"loadBalancer"`
			} `json:"resources"`
			StartDate, StopDate string
		}
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("stdout is not JSON: %v", err)
		}
		if dec.More() {
			t.Error("stdout holds more than one document")
		}
		if doc.RunID != "standin" || doc.Status != "SUCCEEDED" || doc.Resources.LoadBalancer.DNSName != dnsName || doc.StartDate == "" || doc.StopDate == "" {
			t.Errorf("document %+v", doc)
		}
		if !strings.Contains(r.stderr, "CreateLoadBalancer") {
			t.Error("the progress is not on stderr")
		}
		// The flag reached the execution's input.
		d, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(doc.ExecutionARN)})
		if err != nil {
			t.Fatal(err)
		}
		var in map[string]any
		if err := json.Unmarshal([]byte(aws.ToString(d.Input)), &in); err != nil || in["replicaCount"] != 3.0 {
			t.Errorf("execution input %s", aws.ToString(d.Input))
		}
	})

	t.Run("bad input exits 2 naming the field, and starts nothing", func(t *testing.T) {
		before := len(executions(t, pipelineARN))
		input := filepath.Join(t.TempDir(), "input.json")
		if err := os.WriteFile(input, []byte(`{"replicaCount": 2, "poll": {"maxPolls": {"imag": 3}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r := amifleet(t, endpoint, nil, "run", "--input", input, "--wait")
		if r.code != 2 {
			t.Errorf("exit %d, want 2", r.code)
		}
		if !strings.Contains(r.stderr, "poll.maxPolls.imag") || r.stdout != "" {
			t.Errorf("want the field poll.maxPolls.imag on stderr and nothing on stdout")
		}
		if after := len(executions(t, pipelineARN)); after != before {
			t.Errorf("%d executions before, %d after", before, after)
		}
	})

	t.Run("run twice with the same --name starts one execution", func(t *testing.T) {
		name := "octo/web-0123abc-1" // as CI would give it; sanitised to octo-web-0123abc-1
		first := amifleet(t, endpoint, nil, "run", "--name", name)
		second := amifleet(t, endpoint, nil, "run", "--name", name, "--wait", "--output", "json")
		if first.code != 0 || second.code != 0 {
			t.Fatalf("exits %d and %d", first.code, second.code)
		}
		var doc struct {
			Name           string `json:"name"`
			Status         string `json:"status"`
			AlreadyStarted bool   `json:"alreadyStarted"`
		}
		if err := json.Unmarshal([]byte(second.stdout), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Name != "octo-web-0123abc-1" || !doc.AlreadyStarted || doc.Status != "SUCCEEDED" {
			t.Errorf("second run %+v", doc)
		}
		n := 0
		for _, e := range executions(t, pipelineARN) {
			if aws.ToString(e.Name) == "octo-web-0123abc-1" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d executions named octo-web-0123abc-1, want 1", n)
		}
		// The name given to run finds its execution (as the CI workflow's teardown does).
		s := amifleet(t, endpoint, nil, "status", name, "--output", "json")
		if s.code != 0 || !strings.Contains(s.stdout, `"name": "octo-web-0123abc-1"`) {
			t.Errorf("status %q: exit %d", name, s.code)
		}
		if r := amifleet(t, endpoint, nil, "status", "never-started"); r.code != 2 {
			t.Errorf("status of a missing execution: exit %d, want 2", r.code)
		}
	})

	t.Run("a failed run exits 1 with its cause", func(t *testing.T) {
		r := amifleet(t, endpoint, nil, "run", "--wait", "--pipeline-arn", failingARN, "--name", "fails")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		if !strings.Contains(r.stdout, "LaunchBase failed: CapacityError: InsufficientInstanceCapacity") || !strings.Contains(r.stdout, "FAILED") {
			t.Error("the cause is not printed")
		}
		// The Parallel's failure, unwrapped from its branch's cause, then Cleanup.
		failed := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  BuildImageAndLoadBalancer +failed: LaunchBase: CapacityError: InsufficientInstanceCapacity$`)
		cleanup := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d  Cleanup +succeeded`)
		if f, c := failed.FindStringIndex(r.stdout), cleanup.FindStringIndex(r.stdout); f == nil || c == nil || f[0] > c[0] {
			t.Error("want the Parallel's failure, then Cleanup")
		}
		s := amifleet(t, endpoint, []string{"AMIFLEET_PIPELINE_ARN=" + failingARN}, "status", "fails")
		if s.code != 1 || !strings.Contains(s.stdout, "FAILED") {
			t.Errorf("status: exit %d", s.code)
		}
	})

	t.Run("a wait that times out exits 3", func(t *testing.T) {
		r := amifleet(t, endpoint, nil, "run", "--wait", "--timeout", "1s", "--pipeline-arn", slowARN, "--name", "slow")
		if r.code != 3 {
			t.Errorf("exit %d, want 3", r.code)
		}
		if !strings.Contains(r.stdout, "timed out after 1s") || !strings.Contains(r.stdout, "amifleet watch slow") {
			t.Error("no timeout message")
		}
	})

	t.Run("outputs and list", func(t *testing.T) {
		o := amifleet(t, endpoint, nil, "outputs", "first")
		if o.code != 0 || !strings.Contains(o.stdout, "http://"+dnsName+"/") || !strings.Contains(o.stdout, "i-1, i-2, i-3") {
			t.Errorf("outputs: exit %d", o.code)
		}
		l := amifleet(t, endpoint, nil, "list", "--output", "json")
		var doc struct {
			Executions []struct{ Name string } `json:"executions"`
		}
		if err := json.Unmarshal([]byte(l.stdout), &doc); err != nil || l.code != 0 {
			t.Fatalf("list: exit %d, %v", l.code, err)
		}
		names := map[string]bool{}
		for _, e := range doc.Executions {
			names[e.Name] = true
		}
		if !names["first"] || !names["json-run"] || !names["octo-web-0123abc-1"] || len(names) != 3 {
			t.Errorf("listed %v", names)
		}
	})

	t.Run("teardown --wait ends 0", func(t *testing.T) {
		r := amifleet(t, endpoint, nil, "teardown", "--run-id", "first", "--wait")
		if r.code != 0 || !strings.Contains(r.stdout, "Cleanup") || !strings.Contains(r.stdout, "SUCCEEDED") {
			t.Errorf("exit %d", r.code)
		}
		runs := executions(t, teardownARN)
		if len(runs) != 1 || !strings.HasPrefix(aws.ToString(runs[0].Name), "teardown-first-") {
			t.Fatalf("teardown executions %v", runs)
		}
		d, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: runs[0].ExecutionArn})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(d.Input) != `{"runId":"first"}` {
			t.Errorf("teardown input %s", aws.ToString(d.Input))
		}
		bad := amifleet(t, endpoint, nil, "teardown", "--run-id", "Not A Run")
		if bad.code != 2 || len(executions(t, teardownARN)) != 1 {
			t.Errorf("bad run id: exit %d", bad.code)
		}
	})

	t.Run("bad usage exits 2", func(t *testing.T) {
		for _, args := range [][]string{{"nonsense"}, {"run", "--replicas", "many"}, {"watch"}, {"status", "--output", "yaml", "x"}} {
			if r := amifleet(t, endpoint, nil, args...); r.code != 2 {
				t.Errorf("amifleet %v: exit %d, want 2", args, r.code)
			}
		}
	})
}
