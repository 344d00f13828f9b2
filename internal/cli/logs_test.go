package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

const logsRunID = "ci-7"

var logsT0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// slogLine is a line as the stages log it.
func slogLine(at time.Time, stage, runID, msg string, kv ...string) string {
	s := fmt.Sprintf(`{"time":%q,"level":"INFO","msg":%q,"runId":%q,"stage":%q`, at.Format(time.RFC3339Nano), msg, runID, stage)
	for i := 0; i+1 < len(kv); i += 2 {
		s += fmt.Sprintf(",%q:%s", kv[i], kv[i+1])
	}
	return s + "}"
}

func logGroupName(stage string) string { return "AmiFleet-" + stage + "Logs-X1" }

// logsFixture is a finished execution ci-7 of the Pipeline, a stack whose outputs
// name every function's log group, and lines of ci-7 and of another run in them.
func logsFixture(t *testing.T, format string) (*Runner, *fakeLogs, *fakeSFN, *strings.Builder) {
	t.Helper()
	old := logCallSpacing
	logCallSpacing = 0
	t.Cleanup(func() { logCallSpacing = old })
	f := newFakeSFN()
	start, stop := logsT0, logsT0.Add(10*time.Minute)
	f.add(executionARN(testPipelineARN, logsRunID), sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded, StartDate: &start, StopDate: &stop}, nil)
	outputs := map[string]string{OutputPipelineARN: testPipelineARN, OutputTeardownARN: testTeardownARN}
	for _, fn := range pipeline.Functions {
		outputs[fn.Name+OutputLogGroupSuffix] = logGroupName(fn.Name)
	}
	logs := newFakeLogs()
	var out, errw strings.Builder
	r := &Runner{
		SFN:            f,
		Machines:       &Machines{Stack: DefaultStack, CFN: &fakeCFN{stacks: map[string]map[string]string{DefaultStack: outputs}}},
		CloudWatchLogs: logs,
		Stdout:         &out, Stderr: &errw,
		Format:       format,
		PollInterval: time.Millisecond,
		Location:     time.UTC,
		Now:          func() time.Time { return logsT0.Add(time.Hour) },
	}
	return r, logs, f, &out
}

// addRunLines puts two lines of run id per stage, one second apart, stage after
// stage, and one of another run in each group; a group's lines arrive in reverse
// group order of stage so that only a merge by time puts them in order.
func addRunLines(logs *fakeLogs, runID string) []string {
	var want []string
	at := logsT0.Add(time.Second)
	for i, fn := range pipeline.Functions {
		g := logGroupName(fn.Name)
		logs.add(g, at.Add(-time.Millisecond).UnixMilli(), slogLine(at.Add(-time.Millisecond), fn.Name, "other-run", "stage started"), 0)
		for _, msg := range []string{"stage started", "stage finished"} {
			logs.add(g, at.UnixMilli(), slogLine(at, fn.Name, runID, msg, "n", fmt.Sprint(i)), 0)
			want = append(want, fn.Name+" "+msg)
			at = at.Add(time.Second)
		}
	}
	logs.add(logGroupName(pipeline.Validate), at.UnixMilli(), "not JSON: START RequestId: 1", 0)
	return want
}

// textLines are the stage and message of each printed line, checked to start with
// the time, the stage and the level.
func textLines(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			t.Fatalf("line %q: want time stage level msg", l)
		}
		words := []string{f[1]}
		for _, w := range f[3:] {
			if !strings.Contains(w, "=") {
				words = append(words, w)
			}
		}
		got = append(got, strings.Join(words, " "))
	}
	return got
}

func TestLogsPrintsTheRunInOrder(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("server filters %v", !ignore), func(t *testing.T) {
			r, logs, _, out := logsFixture(t, FormatText)
			logs.ignorePattern = ignore
			logs.pageSize = 1 // every line its own page
			want := addRunLines(logs, logsRunID)
			if err := r.Logs(context.Background(), logsRunID, LogsOptions{}); err != nil {
				t.Fatal(err)
			}
			if got := textLines(t, out.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			first := strings.SplitN(out.String(), "\n", 2)[0]
			if w := "12:00:01.000  Validate                 INFO   stage started  n=0"; first != w {
				t.Errorf("first line %q, want %q", first, w)
			}
			if strings.Contains(out.String(), "other-run") || strings.Contains(out.String(), "runId") {
				t.Errorf("output holds another run's lines or the run id:\n%s", out)
			}
			// From the execution's start, a minute early for clock skew; one group each.
			groups := map[string]bool{}
			for _, c := range logs.calls {
				groups[aws.ToString(c.LogGroupName)] = true
				if aws.ToInt64(c.StartTime) != logsT0.Add(-time.Minute).UnixMilli() || aws.ToString(c.FilterPattern) != `{ $.runId = "ci-7" }` {
					t.Fatalf("call %+v", c)
				}
			}
			if len(groups) != len(pipeline.Functions) {
				t.Errorf("read %d groups, want %d", len(groups), len(pipeline.Functions))
			}
		})
	}
}

func TestLogsJSONAndStage(t *testing.T) {
	r, logs, _, out := logsFixture(t, FormatJSON)
	logs.ignorePattern = true
	addRunLines(logs, logsRunID)
	err := r.Logs(context.Background(), "arn:aws:states:us-east-1:123456789012:execution:Pipeline:"+logsRunID, LogsOptions{Stage: pipeline.LaunchBase, Since: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want LaunchBase's 2:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"time":`) || !strings.Contains(l, `"stage":"LaunchBase"`) || !strings.Contains(l, `"runId":"ci-7"`) {
			t.Errorf("line %q: want LaunchBase's JSON line as written", l)
		}
	}
	if len(logs.calls) != 1 || aws.ToString(logs.calls[0].LogGroupName) != logGroupName(pipeline.LaunchBase) {
		t.Errorf("calls %v, want LaunchBase's group only", logs.calls)
	}
	if got, want := aws.ToInt64(logs.calls[0].StartTime), logsT0.Add(-time.Hour).UnixMilli(); got != want {
		t.Errorf("--since 2h an hour after the start: StartTime %d, want %d", got, want)
	}
}

// A run id that names no execution is read as it is; a group not yet written is
// empty, not an error.
func TestLogsByRunID(t *testing.T) {
	r, logs, _, out := logsFixture(t, FormatText)
	at := logsT0.Add(time.Second)
	logs.add(logGroupName(pipeline.Validate), at.UnixMilli(), slogLine(at, pipeline.Validate, "demo-x8a2cc067", "input valid"), 0)
	delete(logs.groups, logGroupName(pipeline.Verify))
	if err := r.Logs(context.Background(), "demo-x8a2cc067", LogsOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := textLines(t, out.String()); len(got) != 1 || got[0] != "Validate input valid" {
		t.Errorf("lines %q", got)
	}
	if aws.ToInt64(logs.calls[0].StartTime) != 0 {
		t.Errorf("no execution: StartTime %d, want none", aws.ToInt64(logs.calls[0].StartTime))
	}
}

func TestLogsFollow(t *testing.T) {
	r, logs, f, out := logsFixture(t, FormatText)
	arn := executionARN(testPipelineARN, "live")
	start := logsT0
	// RUNNING at the first two polls, then SUCCEEDED.
	f.add(arn, sfn.DescribeExecutionOutput{Status: types.ExecutionStatusSucceeded, StartDate: &start}, nil,
		fakeStep{types.ExecutionStatusRunning, 0}, fakeStep{types.ExecutionStatusRunning, 0}, fakeStep{types.ExecutionStatusSucceeded, 0})
	g := logGroupName(pipeline.Verify)
	var want []string
	for i := range 6 {
		at := logsT0.Add(time.Duration(i) * time.Second)
		// Lines 0-1 at the first poll, 2-3 at the second, 4-5 at the third: the one
		// that sees the execution ended, which has to be followed by one more.
		logs.add(g, at.UnixMilli(), slogLine(at, pipeline.Verify, "live", fmt.Sprintf("m%d", i)), i/2)
		want = append(want, fmt.Sprintf("Verify m%d", i))
	}
	if err := r.Logs(context.Background(), "live", LogsOptions{Stage: pipeline.Verify, Follow: true, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := textLines(t, out.String()); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("lines %v, want each once: %v", got, want)
	}
	if len(logs.calls) != 4 {
		t.Errorf("%d polls, want 4 (the last finds nothing after the end)", len(logs.calls))
	}
}

func TestLogsFollowTimesOut(t *testing.T) {
	r, _, f, _ := logsFixture(t, FormatText)
	start := logsT0
	f.add(executionARN(testPipelineARN, "stuck"), sfn.DescribeExecutionOutput{Status: types.ExecutionStatusRunning, StartDate: &start}, nil)
	r.PollInterval = 5 * time.Millisecond
	err := r.Logs(context.Background(), "stuck", LogsOptions{Follow: true, Timeout: 50 * time.Millisecond})
	if ExitCode(err) != ExitTimeout {
		t.Fatalf("err %v (exit %d), want exit %d", err, ExitCode(err), ExitTimeout)
	}
}

func TestLogsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, run string
		opts      LogsOptions
		setup     func(*Runner, *fakeLogs)
		code      int
		want      string
	}{
		{"bad stage", logsRunID, LogsOptions{Stage: "Launch"}, nil, ExitUsage, `--stage "Launch": want one of Validate, CreateSecurityGroups`},
		{"negative since", logsRunID, LogsOptions{Since: -time.Minute}, nil, ExitUsage, "--since"},
		{"no such execution", "Not A Run", LogsOptions{}, nil, ExitUsage, "no execution"},
		{"old stack", logsRunID, LogsOptions{}, func(r *Runner, _ *fakeLogs) {
			r.Machines.CFN = &fakeCFN{stacks: map[string]map[string]string{DefaultStack: {OutputPipelineARN: testPipelineARN}}}
		}, ExitUsage, "no output ValidateLogGroupName"},
		{"access denied", logsRunID, LogsOptions{}, func(_ *Runner, l *fakeLogs) {
			l.err = &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed: logs:FilterLogEvents"}
		}, ExitFailed, "logs:FilterLogEvents"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, logs, _, out := logsFixture(t, FormatText)
			addRunLines(logs, logsRunID)
			if tc.setup != nil {
				tc.setup(r, logs)
			}
			err := r.Logs(context.Background(), tc.run, tc.opts)
			if ExitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v (exit %d), want exit %d with %q", err, ExitCode(err), tc.code, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q", out)
			}
		})
	}
}

func TestFormatLogLine(t *testing.T) {
	l := logLine{at: logsT0.UnixMilli(), stage: "FromGroup", message: `{"time":"2026-11-27T12:00:02.5Z","level":"ERROR","msg":"stage failed","runId":"r","stage":"LaunchBase","errorType":"StageError","error":"no subnet in eu-west-1a","zones":["a","b"],"n":3,"empty":""}`}
	want := `12:00:02.500  LaunchBase               ERROR  stage failed  errorType=StageError error="no subnet in eu-west-1a" zones=["a","b"] n=3 empty=""`
	if got := formatLogLine(l, time.UTC); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	raw := logLine{at: logsT0.UnixMilli(), stage: "Verify", message: "plain text\n"}
	if got, want := formatLogLine(raw, time.UTC), "12:00:00.000  Verify                          plain text"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// Functions of the parallel branch write at once: lines are merged by the time each
// was written, not by when CloudWatch Logs stamped it.
func TestLogsMergeByWrittenTime(t *testing.T) {
	r, logs, _, out := logsFixture(t, FormatText)
	a, b := logsT0.Add(time.Second+100*time.Microsecond), logsT0.Add(time.Second+300*time.Microsecond)
	logs.add(logGroupName(pipeline.LaunchBase), b.Add(2*time.Millisecond).UnixMilli(), slogLine(a, pipeline.LaunchBase, logsRunID, "first"), 0)
	logs.add(logGroupName(pipeline.CreateLoadBalancer), a.UnixMilli(), slogLine(b, pipeline.CreateLoadBalancer, logsRunID, "second"), 0)
	if err := r.Logs(context.Background(), logsRunID, LogsOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := textLines(t, out.String()); strings.Join(got, ",") != "LaunchBase first,CreateLoadBalancer second" {
		t.Errorf("lines %v", got)
	}
}
