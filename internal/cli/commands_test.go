package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

const succeededOutput = `{"runId":"ci-1","config":{},"resources":{"loadBalancer":{"targetGroupArn":"arn:tg","loadBalancerArn":"arn:alb","dnsName":"amifleet-ci-1-alb-1.us-east-1.elb.amazonaws.com"},"fleet":{"replicaInstanceIds":["i-2","i-3"],"instanceIds":["i-1","i-2","i-3"]}}}`

func newRunner(f *fakeSFN, format string) (*Runner, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return &Runner{
		SFN:          f,
		Machines:     &Machines{PipelineARN: testPipelineARN, TeardownARN: testTeardownARN, RefreshARN: testRefreshARN},
		Stdout:       &stdout,
		Stderr:       &stderr,
		Format:       format,
		PollInterval: time.Millisecond,
		Location:     time.UTC,
		Now:          func() time.Time { return time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC) },
	}, &stdout, &stderr
}

// ending is how a started execution goes on: steps to the end, and its end.
type ending struct {
	status        types.ExecutionStatus
	output        string
	errName, why  string
	stepsToFinish int
}

// runWith starts a run named "ci-1" on a fake whose execution ends as e says.
func runWith(t *testing.T, format string, e ending, timeout time.Duration) (stdout, stderr string, f *fakeSFN, err error) {
	t.Helper()
	f = newFakeSFN()
	arn := executionARN(testPipelineARN, "ci-1")
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	stop := start.Add(3 * time.Minute)
	steps := []fakeStep{{types.ExecutionStatusRunning, 1}}
	for i := 1; i < e.stepsToFinish; i++ {
		steps = append(steps, fakeStep{types.ExecutionStatusRunning, 1})
	}
	steps = append(steps, fakeStep{e.status, 2})
	final := types.HistoryEventTypeExecutionSucceeded
	switch e.status {
	case types.ExecutionStatusFailed:
		final = types.HistoryEventTypeExecutionFailed
	case types.ExecutionStatusAborted:
		final = types.HistoryEventTypeExecutionAborted
	case types.ExecutionStatusTimedOut:
		final = types.HistoryEventTypeExecutionTimedOut
	}
	desc := sfn.DescribeExecutionOutput{Status: e.status, StartDate: &start, StopDate: &stop, Input: aws.String("{}")}
	if e.output != "" {
		desc.Output = aws.String(e.output)
	}
	if e.errName != "" {
		desc.Error, desc.Cause = aws.String(e.errName), aws.String(e.why)
	}
	events := makeHistory(ev{typ: types.HistoryEventTypeExecutionStarted}, ev{typ: final, err: e.errName, cause: e.why, doc: e.output})
	f.script(arn, desc, events, steps...)
	r, out, errw := newRunner(f, format)
	plan := RunPlan{Name: "ci-1", RunID: "ci-1", Input: "{}", Wait: true, Timeout: timeout}
	err = r.Run(context.Background(), plan)
	return out.String(), errw.String(), f, err
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		end      ending
		timeout  time.Duration
		code     int
		stdout   []string
		notInOut []string
	}{
		{"succeeded prints the DNS name", ending{status: types.ExecutionStatusSucceeded, output: succeededOutput, stepsToFinish: 2}, time.Minute,
			ExitOK, []string{"started ci-1 (run id ci-1)", "SUCCEEDED", "amifleet-ci-1-alb-1.us-east-1.elb.amazonaws.com", "http://amifleet-ci-1-alb-1.us-east-1.elb.amazonaws.com/"}, nil},
		{"failed prints the cause", ending{status: types.ExecutionStatusFailed, errName: "WaitTimedOutError", why: "CreateImage failed: WaitTimedOutError: wait \"image\" not done after 3 polls: pending", stepsToFinish: 1}, time.Minute,
			ExitFailed, []string{"FAILED", "cause", "CreateImage failed: WaitTimedOutError: wait \"image\" not done after 3 polls: pending"}, []string{"url"}},
		{"aborted", ending{status: types.ExecutionStatusAborted, stepsToFinish: 1}, time.Minute, ExitTimeout, []string{"ABORTED"}, nil},
		{"timed out (the state machine's own timeout)", ending{status: types.ExecutionStatusTimedOut, stepsToFinish: 1}, time.Minute, ExitTimeout, []string{"TIMED_OUT"}, nil},
		{"our wait timed out", ending{status: types.ExecutionStatusSucceeded, output: succeededOutput, stepsToFinish: 100000}, 30 * time.Millisecond,
			ExitTimeout, []string{"RUNNING", "timed out after 30ms", "amifleet watch ci-1"}, []string{"SUCCEEDED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, f, err := runWith(t, FormatText, tt.end, tt.timeout)
			if got := ExitCode(err); got != tt.code {
				t.Errorf("exit code %d (%v), want %d", got, err, tt.code)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			for _, not := range tt.notInOut {
				if strings.Contains(stdout, not) {
					t.Errorf("stdout has %q:\n%s", not, stdout)
				}
			}
			if len(f.starts) != 1 {
				t.Fatalf("%d StartExecution calls, want 1", len(f.starts))
			}
			s := f.starts[0]
			if aws.ToString(s.StateMachineArn) != testPipelineARN || aws.ToString(s.Name) != "ci-1" || aws.ToString(s.Input) != "{}" {
				t.Errorf("StartExecution %s %s %s", aws.ToString(s.StateMachineArn), aws.ToString(s.Name), aws.ToString(s.Input))
			}
		})
	}
}

// With --output json, stdout is exactly one JSON document; the progress goes to stderr.
func TestRunJSON(t *testing.T) {
	tests := []struct {
		name   string
		end    ending
		status string
		cause  string
		dns    string
	}{
		{"succeeded", ending{status: types.ExecutionStatusSucceeded, output: succeededOutput, stepsToFinish: 2}, "SUCCEEDED", "", "amifleet-ci-1-alb-1.us-east-1.elb.amazonaws.com"},
		{"failed", ending{status: types.ExecutionStatusFailed, errName: "StageError", why: "LaunchBase failed: StageError: boom", stepsToFinish: 1}, "FAILED", "LaunchBase failed: StageError: boom", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, _, _ := runWith(t, FormatJSON, tt.end, time.Minute)
			dec := json.NewDecoder(strings.NewReader(stdout))
			var res Result
			if err := dec.Decode(&res); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			if dec.More() {
				t.Errorf("stdout holds more than one JSON document:\n%s", stdout)
			}
			if res.Status != tt.status || res.RunID != "ci-1" || res.Name != "ci-1" || res.Cause != tt.cause || res.StartDate == nil || res.StopDate == nil {
				t.Errorf("result %+v", res)
			}
			if tt.dns != "" && (res.Resources == nil || res.Resources.LoadBalancer == nil || res.Resources.LoadBalancer.DNSName != tt.dns || res.URL != "http://"+tt.dns+"/") {
				t.Errorf("resources %+v url %q", res.Resources, res.URL)
			}
			if !strings.Contains(stderr, "started ci-1") || !strings.Contains(stderr, tt.status) {
				t.Errorf("stderr lacks the progress:\n%s", stderr)
			}
		})
	}
}

// An execution of the same name is followed, not started again: found before
// starting, or (started by someone else meanwhile) after ExecutionAlreadyExists.
func TestRunFollowsAnExistingExecution(t *testing.T) {
	tests := []struct {
		name      string
		racing    bool
		starts    int
		describes int
	}{
		{"there before", false, 0, 1},
		{"started meanwhile", true, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSFN()
			arn := executionARN(testPipelineARN, "ci-1")
			start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
			f.add(arn, sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded, StartDate: &start, StopDate: aws.Time(start.Add(time.Minute)),
				Input: aws.String(`{"replicaCount":3}`), Output: aws.String(succeededOutput)}, nil)
			if tt.racing {
				f.racing[arn] = f.execs[arn]
				delete(f.execs, arn)
			}
			r, stdout, stderr := newRunner(f, FormatJSON)
			err := r.Run(context.Background(), RunPlan{Name: "ci-1", RunID: "ci-1", Input: `{"replicaCount": 2}`})
			if err != nil {
				t.Fatalf("exit %d: %v", ExitCode(err), err)
			}
			if len(f.starts) != tt.starts {
				t.Errorf("%d StartExecution calls, want %d", len(f.starts), tt.starts)
			}
			if len(f.describes) != tt.describes || f.describes[len(f.describes)-1] != arn {
				t.Errorf("described %q, want %d times %s", f.describes, tt.describes, arn)
			}
			var res Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if !res.AlreadyStarted || res.Status != "SUCCEEDED" || res.URL == "" {
				t.Errorf("result %+v", res)
			}
			if !strings.Contains(stderr.String(), "already exists") || !strings.Contains(stderr.String(), "another input") {
				t.Errorf("stderr:\n%s", stderr.String())
			}
		})
	}
}

func TestRunStartError(t *testing.T) {
	f := newFakeSFN()
	f.startErr = errors.New("AccessDeniedException: no")
	r, _, _ := newRunner(f, FormatText)
	err := r.Run(context.Background(), RunPlan{Name: "ci-1", Input: "{}"})
	if ExitCode(err) != ExitFailed || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("err %v (exit %d)", err, ExitCode(err))
	}
}

func TestTeardown(t *testing.T) {
	tests := []struct {
		runID string
		code  int
	}{
		{"ci-1", ExitOK},
		// The run id of a name that is not its own ("Demo"): a slug, "-x", 8 hex.
		{"demo-x8a2cc067", ExitOK},
		{"CI-1", ExitUsage},
		{"", ExitUsage},
		{"a-run-id-much-too-long-to-be-one", ExitUsage},
		{"demo-X8A2CC067", ExitUsage},
		{"demo--8a2cc067", ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.runID, func(t *testing.T) {
			f := newFakeSFN()
			r, stdout, _ := newRunner(f, FormatText)
			err := r.Teardown(context.Background(), tt.runID, false, time.Minute)
			if ExitCode(err) != tt.code {
				t.Fatalf("exit %d (%v), want %d", ExitCode(err), err, tt.code)
			}
			if tt.code != ExitOK {
				if len(f.starts) != 0 {
					t.Errorf("started %d executions on bad input", len(f.starts))
				}
				return
			}
			if len(f.starts) != 1 {
				t.Fatalf("%d starts", len(f.starts))
			}
			s := f.starts[0]
			name := "teardown-" + tt.runID + "-20261127T130000Z"
			if aws.ToString(s.StateMachineArn) != testTeardownARN || aws.ToString(s.Name) != name || aws.ToString(s.Input) != `{"runId":"`+tt.runID+`"}` {
				t.Errorf("StartExecution %s %s %s", aws.ToString(s.StateMachineArn), aws.ToString(s.Name), aws.ToString(s.Input))
			}
			if !strings.Contains(stdout.String(), "started "+name+" (run id "+tt.runID+")") ||
				!strings.Contains(stdout.String(), "amifleet watch "+name) {
				t.Errorf("stdout:\n%s", stdout.String())
			}
		})
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		in, want string
		code     int
	}{
		{"ci-1", executionARN(testPipelineARN, "ci-1"), ExitOK},
		{"teardown-ci-1-20261127T130000Z", executionARN(testTeardownARN, "teardown-ci-1-20261127T130000Z"), ExitOK},
		{"refresh-web-20261202T020000Z", executionARN(testRefreshARN, "refresh-web-20261202T020000Z"), ExitOK},
		{"arn:aws:states:eu-west-1:1:execution:Other:x", "arn:aws:states:eu-west-1:1:execution:Other:x", ExitOK},
		{"arn:aws:states:eu-west-1:1:stateMachine:Other", "", ExitUsage},
		{"octo/web-abc-1", executionARN(testPipelineARN, "octo-web-abc-1"), ExitOK},
		{"", "", ExitUsage},
	}
	for _, tt := range tests {
		r, _, _ := newRunner(newFakeSFN(), FormatText)
		got, err := r.resolve(context.Background(), tt.in)
		if got != tt.want || ExitCode(err) != tt.code {
			t.Errorf("resolve(%q) = %q, %v; want %q, exit %d", tt.in, got, err, tt.want, tt.code)
		}
	}
}

func TestStatusAndOutputs(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		desc       sfn.DescribeExecutionOutput
		statusCode int
		outputCode int
		want       []string
	}{
		{"succeeded", sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded, StartDate: &start, StopDate: aws.Time(start.Add(200 * time.Second)), Output: aws.String(succeededOutput)},
			ExitOK, ExitOK, []string{"i-1, i-2, i-3", "arn:tg", "http://amifleet-ci-1-alb-1.us-east-1.elb.amazonaws.com/"}},
		{"running", sfn.DescribeExecutionOutput{Status: types.ExecutionStatusRunning, StartDate: &start}, ExitOK, ExitFailed, nil},
		{"failed", sfn.DescribeExecutionOutput{Status: types.ExecutionStatusFailed, StartDate: &start, StopDate: &start, Error: aws.String("StageError"), Cause: aws.String("Verify failed: StageError: x")}, ExitFailed, ExitFailed, nil},
		{"aborted", sfn.DescribeExecutionOutput{Status: types.ExecutionStatusAborted, StartDate: &start, StopDate: &start}, ExitTimeout, ExitTimeout, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSFN()
			f.add(executionARN(testPipelineARN, "ci-1"), tt.desc, nil)
			r, stdout, _ := newRunner(f, FormatText)
			err := r.Status(context.Background(), "ci-1")
			if ExitCode(err) != tt.statusCode {
				t.Errorf("status: exit %d (%v), want %d", ExitCode(err), err, tt.statusCode)
			}
			if !strings.Contains(stdout.String(), string(tt.desc.Status)) {
				t.Errorf("status output lacks %s:\n%s", tt.desc.Status, stdout.String())
			}
			stdout.Reset()
			err = r.Outputs(context.Background(), "ci-1")
			if ExitCode(err) != tt.outputCode {
				t.Errorf("outputs: exit %d (%v), want %d", ExitCode(err), err, tt.outputCode)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("outputs lack %q:\n%s", want, stdout.String())
				}
			}
		})
	}
}

func TestList(t *testing.T) {
	f := newFakeSFN()
	f.pageSize = 2
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, n := range []string{"e", "d", "c", "b", "a"} {
		f.listItems = append(f.listItems, types.ExecutionListItem{
			ExecutionArn: aws.String(executionARN(testPipelineARN, n)), Name: aws.String(n),
			Status: types.ExecutionStatusSucceeded, StartDate: &start, StopDate: aws.Time(start.Add(time.Minute)),
		})
	}
	r, stdout, _ := newRunner(f, FormatJSON)
	if err := r.List(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	var got struct{ Executions []Result }
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got.Executions {
		names = append(names, e.Name)
	}
	if strings.Join(names, ",") != "e,d,c" {
		t.Errorf("listed %v, want e,d,c", names)
	}
	if len(f.lists) != 2 || f.lists[0].MaxResults != 3 || f.lists[1].MaxResults != 3 || aws.ToString(f.lists[1].NextToken) != "2" {
		t.Errorf("ListExecutions requests: %+v %+v", f.lists[0], f.lists[len(f.lists)-1])
	}
	if err := r.List(context.Background(), 0); ExitCode(err) != ExitUsage {
		t.Errorf("--max 0: exit %d", ExitCode(err))
	}
}

func TestMachines(t *testing.T) {
	cfn := &fakeCFN{stacks: map[string]map[string]string{
		"AmiFleet": {OutputPipelineARN: testPipelineARN, OutputTeardownARN: testTeardownARN},
		"Partial":  {OutputPipelineARN: testPipelineARN},
	}}
	ctx := context.Background()

	m := &Machines{Stack: "AmiFleet", CFN: cfn}
	p, err1 := m.Pipeline(ctx)
	td, err2 := m.Teardown(ctx)
	if p != testPipelineARN || td != testTeardownARN || err1 != nil || err2 != nil {
		t.Errorf("from the stack: %q %q %v %v", p, td, err1, err2)
	}
	if len(cfn.calls) != 1 {
		t.Errorf("stack read %d times, want once", len(cfn.calls))
	}

	cfn.calls = nil
	m = &Machines{PipelineARN: "arn:aws:states:us-east-1:1:stateMachine:Mine", Stack: "AmiFleet", CFN: cfn}
	if p, _ := m.Pipeline(ctx); p != "arn:aws:states:us-east-1:1:stateMachine:Mine" || len(cfn.calls) != 0 {
		t.Errorf("a given ARN: %q, stack read %d times", p, len(cfn.calls))
	}

	for _, tt := range []struct {
		m    *Machines
		want string
	}{
		{&Machines{Stack: "Partial", CFN: cfn}, "no output TeardownStateMachineArn"},
		{&Machines{Stack: "Gone", CFN: cfn}, "stack Gone does not exist"},
		{&Machines{TeardownARN: "not-an-arn"}, "--teardown-arn"},
	} {
		_, err := tt.m.Teardown(ctx)
		if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Teardown() = %v (exit %d), want exit 2 with %q", err, ExitCode(err), tt.want)
		}
	}
}

// An execution's name given as --run-id is refused, and the error says the run id.
// Abort stops a running execution, then starts the Teardown of its run, which waits
// out a create the stop cut short; an execution that has ended is only torn down.
func TestAbort(t *testing.T) {
	for _, status := range []types.ExecutionStatus{types.ExecutionStatusRunning, types.ExecutionStatusFailed} {
		t.Run(string(status), func(t *testing.T) {
			f := newFakeSFN()
			arn := executionARN(testPipelineARN, "Demo")
			start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
			f.add(arn, sfn.DescribeExecutionOutput{ExecutionArn: aws.String(arn), Name: aws.String("Demo"), StartDate: &start,
				Input: aws.String(`{}`)}, nil, fakeStep{status, 0})
			r, stdout, _ := newRunner(f, FormatText)
			if err := r.Abort(context.Background(), "Demo", false, time.Minute); err != nil {
				t.Fatal(err)
			}
			wantStops := 0
			if status == types.ExecutionStatusRunning {
				wantStops = 1
			}
			if len(f.stops) != wantStops || (wantStops == 1 && aws.ToString(f.stops[0].ExecutionArn) != arn) {
				t.Fatalf("StopExecution calls %v, want %d of %s", f.stops, wantStops, arn)
			}
			if len(f.starts) != 1 {
				t.Fatalf("%d starts, want the teardown", len(f.starts))
			}
			s := f.starts[0]
			want := `{"runId":"demo-x8a2cc067","delaySeconds":` + strconv.Itoa(pipeline.CreateTimeoutSeconds) + `}`
			if aws.ToString(s.StateMachineArn) != testTeardownARN || aws.ToString(s.Input) != want ||
				!strings.HasPrefix(aws.ToString(s.Name), "teardown-demo-x8a2cc067-abort-") {
				t.Errorf("StartExecution %s %s %s; want the Teardown of demo-x8a2cc067 with %s", aws.ToString(s.StateMachineArn),
					aws.ToString(s.Name), aws.ToString(s.Input), want)
			}
			if !strings.Contains(stdout.String(), "demo-x8a2cc067") {
				t.Errorf("stdout does not name the run id:\n%s", stdout.String())
			}
		})
	}
}

// TestAbortRefresh: aborting a refresh stops it and tears nothing down: its run is
// live, and its old generation serves; an ended refresh is left alone.
func TestAbortRefresh(t *testing.T) {
	for _, status := range []types.ExecutionStatus{types.ExecutionStatusRunning, types.ExecutionStatusSucceeded} {
		t.Run(string(status), func(t *testing.T) {
			f := newFakeSFN()
			name := "refresh-web-20261202T020000Z"
			arn := executionARN(testRefreshARN, name)
			start := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)
			f.add(arn, sfn.DescribeExecutionOutput{ExecutionArn: aws.String(arn), Name: aws.String(name), StartDate: &start,
				StateMachineArn: aws.String(testRefreshARN), Input: aws.String(`{"runId":"web"}`)}, nil, fakeStep{status, 0})
			r, _, _ := newRunner(f, FormatText)
			err := r.Abort(context.Background(), name, false, time.Minute)
			if len(f.starts) != 0 {
				t.Errorf("%d starts: aborting a refresh must not start a teardown", len(f.starts))
			}
			if status == types.ExecutionStatusRunning && (err != nil || len(f.stops) != 1) {
				t.Errorf("abort of a running refresh: %v, %d stops; want it stopped", err, len(f.stops))
			}
			if status != types.ExecutionStatusRunning && (ExitCode(err) != ExitUsage || len(f.stops) != 0) {
				t.Errorf("abort of an ended refresh: %v, %d stops; want exit 2 and nothing stopped", err, len(f.stops))
			}
		})
	}
}

func TestTeardownOfAnExecutionNameSaysItsRunID(t *testing.T) {
	f := newFakeSFN()
	r, _, _ := newRunner(f, FormatText)
	err := r.Teardown(context.Background(), "Demo", false, time.Minute)
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "its run id is demo-x8a2cc067") {
		t.Fatalf("Teardown(Demo) = %v (exit %d); want exit %d naming the run id demo-x8a2cc067", err, ExitCode(err), ExitUsage)
	}
	if len(f.starts) != 0 {
		t.Errorf("started %d executions", len(f.starts))
	}
}

// Every run id the pipeline makes is one --run-id takes, whatever the execution name
// (a derived run id is not its own name's run id: demo-x8a2cc067 would hash again).
func TestCheckRunIDTakesEveryRunIDThePipelineMakes(t *testing.T) {
	for _, name := range []string{"demo", "Demo", "de_mo", "demo-x8a2cc067", "261127-120001-0a0b",
		"4f0c2a9e-2f55-4d6c-9a1e-7d0f3b8c1e22", "octo-web-3b5c8e1f9d2a4c6b8e0f1a2b3c4d5e6f7a8b9c0d-1"} {
		id, err := pipeline.RunIDFromExecutionName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckRunID(id); err != nil {
			t.Errorf("CheckRunID(%q), the run id of %q: %v", id, name, err)
		}
	}
}

// --output jsonl streams one JSON object per line on stdout: an event per state line
// as the history grows, the result last; nothing for people on stdout.
func TestRunJSONLines(t *testing.T) {
	f := newFakeSFN()
	arn := executionARN(testPipelineARN, "ci-1")
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	stop := start.Add(3 * time.Minute)
	desc := sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded, StartDate: &start, StopDate: &stop,
		Input: aws.String("{}"), Output: aws.String(succeededOutput)}
	events := makeHistory(
		ev{typ: types.HistoryEventTypeExecutionStarted},
		ev{typ: types.HistoryEventTypeTaskStateEntered, name: "Validate", doc: "{}"},
		ev{typ: types.HistoryEventTypeTaskStateExited, name: "Validate", doc: "{}", offset: time.Second},
		ev{typ: types.HistoryEventTypeExecutionSucceeded, doc: succeededOutput},
	)
	f.script(arn, desc, events, fakeStep{types.ExecutionStatusRunning, 3}, fakeStep{types.ExecutionStatusSucceeded, 4})
	r, stdout, stderr := newRunner(f, FormatJSONL)
	if err := r.Run(context.Background(), RunPlan{Name: "ci-1", RunID: "ci-1", Input: "{}", Wait: true, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var kinds []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("stdout line %q is not one JSON object: %v", l, err)
		}
		kinds = append(kinds, fmt.Sprint(m["type"]))
		if m["type"] == "event" && (m["state"] == nil || m["message"] == nil || m["time"] == nil) {
			t.Errorf("event %q lacks state, message or time", l)
		}
	}
	if len(kinds) < 2 || kinds[len(kinds)-1] != "result" || slices.Index(kinds, "event") < 0 {
		t.Fatalf("stdout objects %v: want events, then the result last", kinds)
	}
	var res struct {
		Type, Status, RunID string
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.Status != "SUCCEEDED" || res.RunID != "ci-1" {
		t.Errorf("result %q (%v): want SUCCEEDED of run ci-1", lines[len(lines)-1], err)
	}
	if !strings.Contains(stderr.String(), "started ci-1") {
		t.Errorf("the lines for people are not on stderr: %q", stderr.String())
	}
}

// status and outputs say which generation serves, and its image: a run from before
// generations (no "generation" in its document) is generation 1; a run without a
// fleet has none.
func TestStatusAndOutputsShowTheServingGeneration(t *testing.T) {
	const image = `"image":{"baseInstanceId":"i-9","imageId":"ami-1"}`
	fleet := `"fleet":{"replicaInstanceIds":["i-2"],"instanceIds":["i-2"]}`
	tests := []struct {
		name, doc string
		want      string // the generation row's value, "" for none
		gen       int
		imageID   string
	}{
		{"before generations", `{"runId":"ci-1","config":{},"resources":{` + image + `,` + fleet + `}}`, "1 (image ami-1)", 1, "ami-1"},
		{"generation 1", `{"runId":"ci-1","generation":1,"config":{},"resources":{` + image + `,` + fleet + `}}`, "1 (image ami-1)", 1, "ami-1"},
		{"generation 3", `{"runId":"ci-1","generation":3,"config":{},"resources":{` + image + `,` + fleet + `}}`, "3 (image ami-1)", 3, "ami-1"},
		{"no image", `{"runId":"ci-1","config":{},"resources":{` + fleet + `}}`, "1", 1, ""},
		{"no fleet", `{"runId":"ci-1","generation":2,"config":{},"resources":{` + image + `}}`, "", 0, ""},
	}
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSFN()
			f.add(executionARN(testPipelineARN, "ci-1"), sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded,
				StartDate: &start, StopDate: &start, Output: aws.String(tt.doc)}, nil)
			r, stdout, _ := newRunner(f, FormatText)
			for cmd, run := range map[string]func(context.Context, string) error{"status": r.Status, "outputs": r.Outputs} {
				stdout.Reset()
				if err := run(context.Background(), "ci-1"); err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				var got string
				for _, line := range strings.Split(stdout.String(), "\n") {
					if k, v, ok := strings.Cut(line, " "); ok && k == "generation" {
						got = strings.TrimSpace(v)
					}
				}
				if got != tt.want {
					t.Errorf("%s: generation row %q, want %q:\n%s", cmd, got, tt.want, stdout.String())
				}
			}

			r, stdout, _ = newRunner(f, FormatJSON)
			if err := r.Outputs(context.Background(), "ci-1"); err != nil {
				t.Fatal(err)
			}
			var res Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Generation != tt.gen || res.ImageID != tt.imageID {
				t.Errorf("JSON generation %d, imageId %q; want %d, %q", res.Generation, res.ImageID, tt.gen, tt.imageID)
			}
		})
	}
}
