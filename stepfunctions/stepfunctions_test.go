package stepfunctions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

func TestDefinitionsPassLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		def  []byte
	}{
		{"Pipeline", Pipeline()},
		{"Teardown", Teardown()},
		{"Refresh", Refresh()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Lint(tc.def); err != nil {
				t.Fatalf("Check:\n%v", err)
			}
			for _, partition := range []string{"aws", "aws-cn", "aws-us-gov"} {
				rendered, err := Render(tc.def, partitionARNs(partition))
				if err != nil {
					t.Fatal(err)
				}
				if err := Lint(rendered); err != nil {
					t.Fatalf("Check after Render for %s:\n%v", partition, err)
				}
				if want := `"arn:` + partition + `:states:::`; !bytes.Contains(rendered, []byte(want)) {
					t.Errorf("rendered for %s, the definition has no %s", partition, want)
				}
			}
		})
	}
}

// The definitions name no partition: every ARN they write themselves is
// arn:${Partition}:..., so that the stack deploys in aws-cn and aws-us-gov too.
func TestDefinitionsNameNoPartition(t *testing.T) {
	for name, def := range map[string][]byte{"Pipeline": Pipeline(), "Teardown": Teardown(), "Refresh": Refresh()} {
		if m := partitionRE.Find(def); m != nil {
			t.Errorf("%s hard-codes the partition: %s", name, m)
		}
		if !bytes.Contains(def, []byte(`"arn:${Partition}:states:::lambda:invoke"`)) {
			t.Errorf("%s has no arn:${Partition}:states:::lambda:invoke", name)
		}
	}
	// A Lambda Task keeps its rules whatever the partition it was rendered for.
	var def map[string]any
	if err := json.Unmarshal(Pipeline(), &def); err != nil {
		t.Fatal(err)
	}
	delete(st(def["States"].(map[string]any), "Verify"), "Retry")
	rendered, err := Render(mustJSON(t, def), partitionARNs("aws-us-gov"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Lint(rendered); err == nil || !strings.Contains(err.Error(), `state "Verify": does not retry the Lambda service error`) {
		t.Errorf("Lint of a GovCloud rendering without Verify's retries = %v; want the Lambda Task's rules applied", err)
	}
}

func TestPlaceholdersAreTheFunctions(t *testing.T) {
	var want []string
	for _, f := range pipeline.Functions {
		if !f.RefreshOnly() {
			want = append(want, f.Placeholder())
		}
	}
	want = append(want, TeardownPlaceholder, PartitionPlaceholder)
	slices.Sort(want)
	if got := Placeholders(Pipeline()); !slices.Equal(got, want) {
		t.Errorf("Pipeline placeholders = %v; want every function's, the Teardown's and the partition: %v", got, want)
	}
	if got, want := Placeholders(Teardown()), []string{"CleanupFunctionArn", PartitionPlaceholder}; !slices.Equal(got, want) {
		t.Errorf("Teardown placeholders = %v; want %v", got, want)
	}
	// Refresh calls its own functions and the Pipeline's stages it reuses, no other.
	want = []string{PartitionPlaceholder}
	for _, f := range pipeline.RefreshFunctions {
		want = append(want, pipeline.Function{Name: f}.Placeholder())
	}
	slices.Sort(want)
	if got := Placeholders(Refresh()); !slices.Equal(got, want) {
		t.Errorf("Refresh placeholders = %v; want %v", got, want)
	}
}

// TestRefreshShape: every failure of a refresh, from its first create to its commit,
// goes to PruneGenerations; PrepareRefresh's refusals go straight to Fail states;
// the prune's end chooses by the commit.
func TestRefreshShape(t *testing.T) {
	m := parse(t, Refresh())
	for name, s := range m.States {
		if name == "PrepareRefresh" || name == pipeline.PruneGenerations {
			continue
		}
		for _, k := range s.Catch {
			if k.Next != pipeline.PruneGenerations {
				t.Errorf("%s's Catch goes to %s; want %s", name, k.Next, pipeline.PruneGenerations)
			}
		}
	}
	for errorType, fail := range map[string]string{pipeline.ErrBadInput: "InvalidInput", pipeline.ErrRunNotFound: "RunNotFound",
		pipeline.ErrRefreshInProgress: "RefreshInProgress", pipeline.ErrCapacity: "QuotaTooSmall"} {
		found := false
		for _, k := range m.States["PrepareRefresh"].Catch {
			if slices.Contains(k.ErrorEquals, errorType) {
				found = k.Next == fail && m.States[fail].Type == "Fail"
			}
		}
		if !found {
			t.Errorf("PrepareRefresh does not send %s to the Fail state %s", errorType, fail)
		}
	}
	if c := m.States["Committed?"]; c == nil || c.Default != "RefreshFailed" || len(c.Choices) != 1 ||
		c.Choices[0].Variable != "$.refresh.committed" || c.Choices[0].Next != "Succeeded" {
		t.Errorf("Committed? = %+v; want $.refresh.committed to Succeeded, else RefreshFailed", c)
	}
	// The same rule, mutated: a Catch that skips the prune is refused.
	var def map[string]any
	if err := json.Unmarshal(Refresh(), &def); err != nil {
		t.Fatal(err)
	}
	catch := st(def["States"].(map[string]any), "RegisterTargets")["Catch"].([]any)
	catch[0].(map[string]any)["Next"] = "CommitGeneration"
	if err := Lint(mustJSON(t, def)); err == nil || !strings.Contains(err.Error(), `state "RegisterTargets": Catch [States.ALL] goes to "CommitGeneration": a refresh's failure goes to PruneGenerations`) {
		t.Errorf("Lint of a refresh whose RegisterTargets skips the prune = %v", err)
	}
}

func TestPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`{"a":"${B}","b":"${A}","c":"${B}"}`, []string{"A", "B"}},
		{`{"a":"${Token[TOKEN.12]}","b":"$.x","c":"States.Format('{}', $.y)"}`, nil},
		{`{"a":"arn:${Partition}:x"}`, []string{"Partition"}},
	} {
		if got := Placeholders([]byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("Placeholders(%s) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	def := []byte(`{"a":"${CleanupFunctionArn}","b":"x ${TeardownStateMachineArn} y"}`)
	for _, tc := range []struct {
		name    string
		def     []byte
		values  map[string]string
		want    string // the rendered JSON, when no error
		wantErr []string
	}{
		{
			name:   "every placeholder",
			def:    def,
			values: map[string]string{"CleanupFunctionArn": "arn:c", "TeardownStateMachineArn": "arn:t", "VerifyFunctionArn": "unused"},
			want:   `{"a":"arn:c","b":"x arn:t y"}`,
		},
		{
			name:   "values are escaped for JSON",
			def:    def,
			values: map[string]string{"CleanupFunctionArn": `a"b\c<d>`, "TeardownStateMachineArn": "${Token[TOKEN.7]}"},
			want:   `{"a":"a\"b\\c<d>","b":"x ${Token[TOKEN.7]} y"}`,
		},
		{
			name:    "missing value",
			def:     def,
			values:  map[string]string{"CleanupFunctionArn": "arn:c"},
			wantErr: []string{"no value for placeholders ${TeardownStateMachineArn}"},
		},
		{
			name:    "unknown placeholder",
			def:     []byte(`{"a":"${NopeFunctionArn}","b":"${CleanupFunctionArn}"}`),
			values:  map[string]string{"NopeFunctionArn": "arn:n"},
			wantErr: []string{"unknown placeholders ${NopeFunctionArn}", "no value for placeholders ${CleanupFunctionArn}"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(tc.def, tc.values)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Render = %s; want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Render = %s; want %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("Render made invalid JSON: %s", got)
			}
		})
	}
}

func TestRenderDoesNotChangeTheEmbeddedDefinition(t *testing.T) {
	before := Pipeline()
	if _, err := Render(Pipeline(), fakeARNs()); err != nil {
		t.Fatal(err)
	}
	p := Pipeline()
	p[0] = 'x'
	if !bytes.Equal(Pipeline(), before) {
		t.Fatal("Pipeline() shares its bytes with callers")
	}
}

// TestPipelineConventions checks what the Pipeline promises beyond Check: where each
// failure goes, and what the Fail states read.
func TestPipelineConventions(t *testing.T) {
	m := parse(t, Pipeline())
	if m.StartAt != "Validate" {
		t.Errorf("StartAt = %q; want Validate", m.StartAt)
	}
	for name, s := range m.States {
		switch {
		case name == "Validate":
			for _, k := range s.Catch {
				if to := m.States[k.Next]; to == nil || to.Type != "Fail" {
					t.Errorf("Validate's Catch %v goes to %q; want a Fail state (nothing exists to clean)", k.ErrorEquals, k.Next)
				}
			}
			if !slices.ContainsFunc(s.Catch, func(k catcher) bool { return slices.Equal(k.ErrorEquals, []string{pipeline.ErrBadInput}) }) {
				t.Errorf("Validate does not catch %s on its own", pipeline.ErrBadInput)
			}
		case name == "Cleanup":
			for _, k := range s.Catch {
				if k.Next == "Cleanup" {
					t.Error("Cleanup catches into itself")
				}
			}
		case s.Type == "Task" || s.Type == "Parallel":
			for _, k := range s.Catch {
				if strings.HasPrefix(name, "Schedule") && slices.Equal(k.ErrorEquals, []string{"StepFunctions.ExecutionAlreadyExistsException"}) {
					// Its own teardown exists: a retry after a start that did happen.
					if k.Next != s.Next {
						t.Errorf("%s: Catch %v goes to %q; want %s, where success goes", name, k.ErrorEquals, k.Next, s.Next)
					}
					continue
				}
				// A kept run whose Teardown cannot start is not kept: it is deleted now.
				want := "KeepOnFailure?"
				if name == "ScheduleKeptTeardown" {
					want = "Cleanup"
				}
				if k.Next != want {
					t.Errorf("%s: Catch %v goes to %q; want %s", name, k.ErrorEquals, k.Next, want)
				}
			}
		}
		if s.Type == "Pass" && strings.HasSuffix(name, "TimedOut") {
			checkTimedOut(t, name, s, m.States)
		}
	}

	for _, name := range []string{"Failed", "KeptAfterFailure"} {
		failed := raw(t, Pipeline(), name)
		if failed["ErrorPath"] != "$.error.type" || failed["CausePath"] != "$.error.cause" {
			t.Errorf("%s reads %v, %v; want $.error.type, $.error.cause", name, failed["ErrorPath"], failed["CausePath"])
		}
	}
	// A kept run's time to live, when teardownAfterMinutes is not given, is the
	// documented default.
	if def := raw(t, Pipeline(), "KeptTeardownDefault"); def["Result"] != float64(pipeline.DefaultKeptTeardownMinutes) ||
		def["ResultPath"] != "$.config.teardownAfterMinutes" {
		t.Errorf("KeptTeardownDefault = %v; want Result %d at $.config.teardownAfterMinutes", def, pipeline.DefaultKeptTeardownMinutes)
	}
	// The kept run's Teardown is named as ScheduleTeardown's: one per execution.
	sched, kept := raw(t, Pipeline(), "ScheduleTeardown"), raw(t, Pipeline(), "ScheduleKeptTeardown")
	if a, b := sched["Parameters"].(map[string]any)["Name.$"], kept["Parameters"].(map[string]any)["Name.$"]; a != b || a == nil {
		t.Errorf("ScheduleKeptTeardown names its Teardown %v; want %v, as ScheduleTeardown", b, a)
	}
	if a, b := kept["Parameters"].(map[string]any)["Name.$"], raw(t, Pipeline(), "KeepResources")["Parameters"].(map[string]any)["teardown.$"]; a != b {
		t.Errorf("KeepResources records the Teardown as %v; want %v, the name ScheduleKeptTeardown gives it", b, a)
	}

	par := m.States["BuildImageAndLoadBalancer"]
	if par == nil || par.Type != "Parallel" || len(par.Branches) != 2 {
		t.Fatalf("BuildImageAndLoadBalancer is not a Parallel with two branches: %+v", par)
	}
	for i, b := range par.Branches {
		for name, s := range b.States {
			for _, k := range s.Catch {
				to := b.States[k.Next]
				if to == nil || to.Type != "Fail" {
					t.Errorf("branch %d: %s: Catch goes to %q; want the branch's Fail state", i+1, name, k.Next)
				}
				if string(k.ResultPath) != `"$.errors.`+name+`"` {
					t.Errorf("branch %d: %s: Catch ResultPath %s; want $.errors.%s", i+1, name, k.ResultPath, name)
				}
			}
			if s.Type == "Pass" && strings.HasSuffix(name, "TimedOut") {
				checkTimedOut(t, name, s, b.States)
			}
			if s.Type == "Fail" {
				f := raw(t, Pipeline(), name)
				if f["Error"] != "BranchFailed" || f["CausePath"] != "States.JsonToString($.errors)" {
					t.Errorf("branch %d: %s = %v; want Error BranchFailed, CausePath States.JsonToString($.errors)", i+1, name, f)
				}
			}
		}
	}
}

// checkTimedOut checks a wait's timeout Pass: it records WaitTimedOutError under
// $.errors.<its own name> and goes on to the failure path.
func checkTimedOut(t *testing.T, name string, s *state, states map[string]*state) {
	t.Helper()
	var pass struct {
		Parameters map[string]string
		ResultPath string
	}
	if err := json.Unmarshal(rawState(t, Pipeline(), name), &pass); err != nil {
		t.Fatal(err)
	}
	if pass.Parameters["Error"] != pipeline.ErrWaitTimedOut || !strings.Contains(pass.Parameters["Cause.$"], "not done after {} polls") {
		t.Errorf("%s Parameters = %v; want Error %s and a Cause naming the polls", name, pass.Parameters, pipeline.ErrWaitTimedOut)
	}
	if pass.ResultPath != "$.errors."+name {
		t.Errorf("%s ResultPath %q; want $.errors.%s", name, pass.ResultPath, name)
	}
	if to := states[s.Next]; to == nil || (s.Next != "KeepOnFailure?" && to.Type != "Fail") {
		t.Errorf("%s goes to %q; want KeepOnFailure?, or the branch's Fail state", name, s.Next)
	}
}

func TestTeardownShape(t *testing.T) {
	m := parse(t, Teardown())
	c := m.States["Cleanup"]
	if c == nil || !isLambdaTask(c) {
		t.Fatal("Teardown has no Cleanup Lambda task")
	}
	var toFail []string
	for _, k := range c.Catch {
		if to := m.States[k.Next]; to != nil && to.Type == "Fail" {
			toFail = append(toFail, k.Next)
		}
	}
	if !slices.Equal(toFail, []string{"InvalidRunId", "TeardownFailed"}) {
		t.Errorf("Cleanup catches into %v; want InvalidRunId (BadInputError) and TeardownFailed", toFail)
	}
	if w := m.States["WaitDelay"]; w == nil || w.SecondsPath != "$.delaySeconds" {
		t.Errorf("WaitDelay = %+v; want a Wait with SecondsPath $.delaySeconds", w)
	}
}

// TestCheckRejects breaks the Pipeline in one way at a time and expects Check to say
// what is wrong, and where.
func TestLintRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(states map[string]any)
		want   string
	}{
		{
			name:   "no retries",
			mutate: func(s map[string]any) { delete(st(s, "CreateSecurityGroups"), "Retry") },
			want:   `state "CreateSecurityGroups": does not retry the Lambda service error Lambda.TooManyRequestsException`,
		},
		{
			name: "TooManyRequests left out, as the CDK default does",
			mutate: func(s map[string]any) {
				r := st(s, "LaunchReplicas")["Retry"].([]any)[0].(map[string]any)
				r["ErrorEquals"] = []any{"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"}
			},
			want: `state "LaunchReplicas": does not retry the Lambda service error Lambda.TooManyRequestsException`,
		},
		{
			name: "a function's timeout not retried",
			mutate: func(s map[string]any) {
				for _, r := range st(s, "RegisterTargets")["Retry"].([]any) {
					m := r.(map[string]any)
					var kept []any
					for _, e := range m["ErrorEquals"].([]any) {
						if e != "Sandbox.Timedout" {
							kept = append(kept, e)
						}
					}
					m["ErrorEquals"] = kept
				}
			},
			want: `state "RegisterTargets": does not retry Sandbox.Timedout (the function ran past its timeout)`,
		},
		{
			name: "RetryableError without backoff",
			mutate: func(s map[string]any) {
				st(s, "Verify")["Retry"].([]any)[2].(map[string]any)["BackoffRate"] = 1
			},
			want: `state "Verify": does not retry RetryableError with a BackoffRate above 1`,
		},
		{
			name: "bad input retried",
			mutate: func(s map[string]any) {
				v := st(s, "Validate")
				v["Retry"] = append(v["Retry"].([]any), map[string]any{"ErrorEquals": []any{"BadInputError"}})
			},
			want: `state "Validate": retries BadInputError`,
		},
		{
			name: "everything retried",
			mutate: func(s map[string]any) {
				v := st(s, "RegisterTargets")
				v["Retry"] = append(v["Retry"].([]any), map[string]any{"ErrorEquals": []any{"States.ALL"}})
			},
			want: `state "RegisterTargets": retries States.ALL`,
		},
		{
			name:   "no catch",
			mutate: func(s map[string]any) { delete(st(s, "LaunchReplicas"), "Catch") },
			want:   `state "LaunchReplicas": has no Catch for States.ALL`,
		},
		{
			name: "no catch inside a branch",
			mutate: func(s map[string]any) {
				delete(branchState(s, 0, "CheckImageAvailable"), "Catch")
			},
			want: `state "BuildImageAndLoadBalancer" branch 1: state "CheckImageAvailable": has no Catch for States.ALL`,
		},
		{
			name: "catch that drops the document",
			mutate: func(s map[string]any) {
				delete(st(s, "Verify")["Catch"].([]any)[0].(map[string]any), "ResultPath")
			},
			want: `state "Verify": Catch [States.ALL] to "KeepOnFailure?" has ResultPath absent`,
		},
		{
			name: "catch that skips the keep-on-failure choice",
			mutate: func(s map[string]any) {
				st(s, "RegisterTargets")["Catch"].([]any)[0].(map[string]any)["Next"] = "Cleanup"
			},
			want: `state "RegisterTargets": Catch [States.ALL] goes to "Cleanup": a failure goes to KeepOnFailure?`,
		},
		{
			name: "the Parallel's catch skips the keep-on-failure choice",
			mutate: func(s map[string]any) {
				st(s, "BuildImageAndLoadBalancer")["Catch"].([]any)[0].(map[string]any)["Next"] = "Cleanup"
			},
			want: `state "BuildImageAndLoadBalancer": Catch [States.ALL] goes to "Cleanup"`,
		},
		{
			name:   "timed-out wait skips the keep-on-failure choice",
			mutate: func(s map[string]any) { st(s, "TargetsHealthyTimedOut")["Next"] = "Cleanup" },
			want:   `state "TargetsHealthyTimedOut": records an error and goes to "Cleanup": a failure goes to KeepOnFailure?`,
		},
		{
			name: "no keep-on-failure choice at all",
			mutate: func(s map[string]any) {
				for _, name := range []string{"KeepOnFailure?", "KeptTeardownDefault", "ScheduleKeptTeardown", "KeepResources"} {
					delete(s, name)
				}
				for _, v := range s {
					state := v.(map[string]any)
					for _, k := range asSlice(state["Catch"]) {
						if k := k.(map[string]any); k["Next"] == "KeepOnFailure?" {
							k["Next"] = "Cleanup"
						}
					}
					if state["Next"] == "KeepOnFailure?" {
						state["Next"] = "Cleanup"
					}
				}
			},
			want: `state "Verify": Catch [States.ALL] goes to "Cleanup": a failure goes to KeepOnFailure?`,
		},
		{
			name:   "keep-on-failure choice that does not default to Cleanup",
			mutate: func(s map[string]any) { st(s, "KeepOnFailure?")["Default"] = "KeptTeardownDefault" },
			want:   `state "KeepOnFailure?": must be a Choice whose Default is Cleanup`,
		},
		{
			name: "catch that discards States.ALL on the way on",
			mutate: func(s map[string]any) {
				st(s, "ScheduleKeptTeardown")["Catch"].([]any)[0].(map[string]any)["ErrorEquals"] = []any{"States.ALL"}
			},
			want: `state "ScheduleKeptTeardown": Catch [States.ALL] discards what it caught (ResultPath null): only an error that means success may, never States.ALL`,
		},
		{
			name: "catch that discards an error and goes elsewhere than success",
			mutate: func(s map[string]any) {
				st(s, "ScheduleKeptTeardown")["Catch"].([]any)[0].(map[string]any)["Next"] = "Cleanup"
			},
			want: `state "ScheduleKeptTeardown": Catch [StepFunctions.ExecutionAlreadyExistsException] discards what it caught (ResultPath null) and goes to "Cleanup"; want "KeepResources"`,
		},
		{
			name: "wait loop without its bound",
			mutate: func(s map[string]any) {
				c := st(s, "CleanupDone?")
				c["Choices"] = c["Choices"].([]any)[:1]
			},
			want: "unbounded loop Cleanup → CleanupDone? → WaitCleanupDone → Cleanup",
		},
		{
			name: "bound that stays in the loop",
			mutate: func(s map[string]any) {
				c := st(s, "TargetsHealthy?")
				c["Choices"].([]any)[1].(map[string]any)["Next"] = "WaitTargetsHealthy"
			},
			want: "unbounded loop CheckTargetsHealthy → TargetsHealthy? → WaitTargetsHealthy → CheckTargetsHealthy",
		},
		{
			name: "bound on another wait's maximum",
			mutate: func(s map[string]any) {
				c := branchState(s, 1, "LoadBalancerActive?")
				c["Choices"].([]any)[1].(map[string]any)["NumericGreaterThanEqualsPath"] = "$.config.poll.maxPolls.image"
			},
			want: `state "BuildImageAndLoadBalancer" branch 2: unbounded loop CheckLoadBalancerActive → LoadBalancerActive? → WaitLoadBalancerActive → CheckLoadBalancerActive`,
		},
		{
			name: "loop added without a counter or a wait",
			mutate: func(s map[string]any) {
				st(s, "TeardownScheduled?")["Default"] = "Verify"
			},
			want: "unbounded loop RecordRun → TeardownScheduled? → Verify → RecordRun",
		},
		{
			name: "busy loop",
			mutate: func(s map[string]any) {
				w := st(s, "WaitCleanupDone")
				delete(w, "SecondsPath")
				w["Seconds"] = 0
			},
			want: "busy loop Cleanup → CleanupDone? → WaitCleanupDone → Cleanup: no Wait with SecondsPath",
		},
		{
			name: "unknown placeholder",
			mutate: func(s map[string]any) {
				st(s, "Verify")["Parameters"].(map[string]any)["FunctionName"] = "${VerifyTwiceFunctionArn}"
			},
			want: "unknown placeholder ${VerifyTwiceFunctionArn}",
		},
		{
			name:   "unreachable state",
			mutate: func(s map[string]any) { s["Orphan"] = map[string]any{"Type": "Pass", "End": true} },
			want:   `state "Orphan": unreachable from StartAt "Validate"`,
		},
		{
			name:   "missing target",
			mutate: func(s map[string]any) { st(s, "RegisterTargets")["Next"] = "WaitTargetsHealty" },
			want:   `state "RegisterTargets": goes to "WaitTargetsHealty", which is not a state here`,
		},
		{
			name: "dead loop",
			mutate: func(s map[string]any) {
				st(s, "Verify")["Next"] = "Spin"
				s["Spin"] = map[string]any{"Type": "Wait", "SecondsPath": "$.x", "Next": "Spin"}
			},
			want: `state "Spin": no end (Succeed, Fail or End) is reachable from it`,
		},
		{
			name:   "neither Next nor End",
			mutate: func(s map[string]any) { delete(st(s, "LaunchReplicas"), "Next") },
			want:   `state "LaunchReplicas": needs exactly one of Next and End`,
		},
		{
			name: "a Task named after another function than the one it calls",
			mutate: func(s map[string]any) {
				branchState(s, 0, "CheckImageAvailable")["Parameters"].(map[string]any)["FunctionName"] = "${CheckBaseStoppedFunctionArn}"
			},
			want: `state "CheckImageAvailable": calls the CheckBaseStopped function`,
		},
		{
			name: "a poll key that is not a wait's",
			mutate: func(s map[string]any) {
				for _, r := range st(s, "InstancesRunning?")["Choices"].([]any) {
					r := r.(map[string]any)
					r["Variable"] = strings.Replace(r["Variable"].(string), "instancesRunning", "instancesUp", 1)
					if p, ok := r["NumericGreaterThanEqualsPath"].(string); ok {
						r["NumericGreaterThanEqualsPath"] = strings.Replace(p, "instancesRunning", "instancesUp", 1)
					}
				}
			},
			want: `state "InstancesRunning?": bounds $.polls.instancesUp, which is not the key of a wait in pipeline.Waits`,
		},
		{
			name: "a wait that ignores what its check said",
			mutate: func(s map[string]any) {
				branchState(s, 0, "WaitImageAvailable")["SecondsPath"] = "$.config.poll.intervalSeconds"
			},
			want: `state "BuildImageAndLoadBalancer" branch 1: state "WaitImageAvailable": has SecondsPath "$.config.poll.intervalSeconds"; the ImageAvailable wait waits what its last check said, "$.polls.imageAvailable.waitSeconds"`,
		},
		{
			name: "a loop entered at its Wait",
			mutate: func(s map[string]any) {
				st(s, "RegisterTargets")["Next"] = "WaitTargetsHealthy"
			},
			want: `state "RegisterTargets": goes to "WaitTargetsHealthy": the TargetsHealthy wait starts with its check, "CheckTargetsHealthy", which says how long its Wait waits`,
		},
		{
			name: "a timed-out wait recorded under another name",
			mutate: func(s map[string]any) {
				st(s, "InstancesRunningTimedOut")["ResultPath"] = "$.errors.WaitInstancesRunning"
			},
			want: `state "InstancesRunningTimedOut": records its error at "$.errors.WaitInstancesRunning"; want "$.errors.InstancesRunningTimedOut"`,
		},
		{
			name: "a wait's Choice under another name",
			mutate: func(s map[string]any) {
				s["TargetsOk?"] = s["TargetsHealthy?"]
				delete(s, "TargetsHealthy?")
				st(s, "CheckTargetsHealthy")["Next"] = "TargetsOk?"
			},
			want: `state "TargetsOk?": is the TargetsHealthy wait's Choice: name it "TargetsHealthy?"`,
		},
		{
			name: "a wait's Wait that skips its check",
			mutate: func(s map[string]any) {
				st(s, "WaitInstancesRunning")["Next"] = "InstancesRunning?"
			},
			want: `state "WaitInstancesRunning": goes to "InstancesRunning?"; the InstancesRunning wait's Wait goes to its check, "CheckInstancesRunning"`,
		},
		{
			name: "a hard-coded partition",
			mutate: func(s map[string]any) {
				st(s, "Verify")["Resource"] = "arn:aws:states:::lambda:invoke"
			},
			want: `state "Verify": hard-codes the partition (arn:aws in "arn:aws:states:::lambda:invoke"): write arn:${Partition}:`,
		},
		{
			name: "a hard-coded partition in a branch",
			mutate: func(s map[string]any) {
				branchState(s, 1, "CreateLoadBalancer")["Resource"] = "arn:aws-us-gov:states:::lambda:invoke"
			},
			want: `state "BuildImageAndLoadBalancer" branch 2: state "CreateLoadBalancer": hard-codes the partition (arn:aws-us-gov`,
		},
		{
			name: "a hard-coded partition in a parameter",
			mutate: func(s map[string]any) {
				st(s, "ScheduleTeardown")["Parameters"].(map[string]any)["StateMachineArn"] = "arn:aws-cn:states:cn-north-1:1:stateMachine:Teardown"
			},
			want: `state "ScheduleTeardown": hard-codes the partition (arn:aws-cn`,
		},
		{
			name: "every failure caught into success",
			mutate: func(s map[string]any) {
				c := st(s, "ScheduleTeardown")["Catch"].([]any)
				c[0].(map[string]any)["ErrorEquals"] = []any{"States.ALL"}
			},
			want: `state "ScheduleTeardown": Catch [States.ALL] to the Succeed state "Succeeded": only an error that means success may end a run well`,
		},
		{
			name: "success recorded as an error",
			mutate: func(s map[string]any) {
				c := st(s, "ScheduleTeardown")["Catch"].([]any)
				c[0].(map[string]any)["ResultPath"] = "$.errors.ScheduleTeardown"
			},
			want: `state "ScheduleTeardown": Catch [StepFunctions.ExecutionAlreadyExistsException] to the Succeed state "Succeeded" has ResultPath "$.errors.ScheduleTeardown"; want null`,
		},
		{
			name:   "missing StartAt state",
			mutate: func(s map[string]any) { delete(s, "Validate") },
			want:   `StartAt "Validate" is not a state`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var def map[string]any
			if err := json.Unmarshal(Pipeline(), &def); err != nil {
				t.Fatal(err)
			}
			tc.mutate(def["States"].(map[string]any))
			err := Lint(mustJSON(t, def))
			if err == nil {
				t.Fatalf("Lint passed; want an error saying %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Lint said:\n%v\nwant a line with %q", err, tc.want)
			}
		})
	}
}

func TestLintRejectsInvalidJSON(t *testing.T) {
	err := Lint([]byte(`{"StartAt": "A", "States": {`))
	if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("Lint = %v; want a JSON error", err)
	}
}

// fakeARNs are the values Render gets in tests; testdata/moto_asl.py expects these.
func fakeARNs() map[string]string { return partitionARNs("aws") }

// partitionARNs are fake values for a deployment in partition (aws, aws-cn, aws-us-gov).
func partitionARNs(partition string) map[string]string {
	v := map[string]string{
		TeardownPlaceholder:  "arn:" + partition + ":states:us-east-1:123456789012:stateMachine:Teardown",
		PartitionPlaceholder: partition,
	}
	for _, f := range pipeline.Functions {
		v[f.Placeholder()] = "arn:" + partition + ":lambda:us-east-1:123456789012:function:" + f.Name
	}
	return v
}

func parse(t *testing.T, def []byte) machine {
	t.Helper()
	var m machine
	if err := json.Unmarshal(def, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawState is the JSON of the state called name, wherever it is in def.
func rawState(t *testing.T, def []byte, name string) []byte {
	t.Helper()
	var find func(states map[string]any) any
	find = func(states map[string]any) any {
		if s, ok := states[name]; ok {
			return s
		}
		for _, s := range states {
			for _, b := range asSlice(s.(map[string]any)["Branches"]) {
				if found := find(b.(map[string]any)["States"].(map[string]any)); found != nil {
					return found
				}
			}
		}
		return nil
	}
	var def2 map[string]any
	if err := json.Unmarshal(def, &def2); err != nil {
		t.Fatal(err)
	}
	s := find(def2["States"].(map[string]any))
	if s == nil {
		t.Fatalf("no state %q", name)
	}
	return mustJSON(t, s)
}

func raw(t *testing.T, def []byte, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rawState(t, def, name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func st(states map[string]any, name string) map[string]any {
	s, ok := states[name].(map[string]any)
	if !ok {
		panic(fmt.Sprintf("no state %q", name))
	}
	return s
}

func branchState(states map[string]any, branch int, name string) map[string]any {
	b := st(states, "BuildImageAndLoadBalancer")["Branches"].([]any)[branch].(map[string]any)
	return st(b["States"].(map[string]any), name)
}

// runMoto sends req to testdata/moto_asl.py and decodes its answer into out.
func runMoto(t *testing.T, req any, out any) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is not on PATH: the ASL tests run the definitions in moto 5.2.1 (Python 3.11, pip install 'moto[server]==5.2.1'), which the local cloud needs anyway")
	}
	// Bounded, so that a hung interpreter fails the test instead of the whole run.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/moto_asl.py")
	cmd.Stdin = bytes.NewReader(mustJSON(t, req))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("moto_asl.py: %v\n%s", err, tail(stderr.String(), 4000))
	}
	var fatal struct{ Fatal string }
	if json.Unmarshal(stdout, &fatal) == nil && fatal.Fatal != "" {
		t.Fatal(fatal.Fatal)
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("moto_asl.py answered %q: %v\n%s", tail(string(stdout), 2000), err, tail(stderr.String(), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestMotoParses runs moto's own ASL parser and static analysis, which CreateStateMachine
// runs in the local cloud, on both rendered definitions, and on one it must refuse.
func TestMotoParses(t *testing.T) {
	defs := map[string]string{}
	for name, def := range map[string][]byte{"pipeline": Pipeline(), "teardown": Teardown(), "refresh": Refresh()} {
		r, err := Render(def, fakeARNs())
		if err != nil {
			t.Fatal(err)
		}
		defs[name] = string(r)
	}
	defs["broken"] = `{"StartAt": "A", "States": {"A": {"Type": "Wait", "SecondsPath": 5, "End": true}}}`
	var got map[string]string
	runMoto(t, map[string]any{"op": "parse", "definitions": defs}, &got)
	for _, name := range []string{"pipeline", "teardown", "refresh"} {
		if got[name] != "ok" {
			t.Errorf("moto refuses %s: %s", name, got[name])
		}
	}
	if got["broken"] == "ok" || got["broken"] == "" {
		t.Errorf("moto accepted a broken definition (%q): the parse test cannot fail", got["broken"])
	}
}

// motoRun is one execution in moto's interpreter, with document-level fakes for the
// Lambdas (testdata/moto_asl.py): what the definitions do with the document, the
// errors and the retries, for real.
type motoRun struct {
	Name     string         `json:"name"`
	Start    string         `json:"start,omitempty"` // "teardown"; default the Pipeline
	Input    map[string]any `json:"input"`
	Scenario map[string]any `json:"scenario,omitempty"`
}

type motoResult struct {
	Status string
	Error  string
	Cause  string
	Output map[string]any
	States []string
	Calls  []motoCall
	// Teardowns are the Teardown executions this execution started.
	Teardowns []struct {
		Name   string
		Input  map[string]any
		Status string
	}
}

type motoCall struct {
	Function string
	Errors   map[string]pipeline.CaughtError
}

func (r motoResult) count(function string) int {
	n := 0
	for _, c := range r.Calls {
		if c.Function == function {
			n++
		}
	}
	return n
}

// cleanupSaw is the errors the first Cleanup call was given.
func (r motoResult) cleanupSaw(t *testing.T) map[string]pipeline.CaughtError {
	t.Helper()
	for _, c := range r.Calls {
		if c.Function == "Cleanup" {
			return c.Errors
		}
	}
	t.Fatalf("Cleanup was not called; calls: %+v", r.Calls)
	return nil
}

func fails(function, errorType string, times int) map[string]any {
	return map[string]any{"fail": map[string]any{function: map[string]any{"errorType": errorType, "times": times}}}
}

func TestMotoExecutions(t *testing.T) {
	tests := []struct {
		run   motoRun
		check func(t *testing.T, r motoResult)
	}{
		{
			run: motoRun{Name: "ok", Input: map[string]any{}},
			check: func(t *testing.T, r motoResult) {
				wantStatus(t, r, "SUCCEEDED")
				res, _ := r.Output["resources"].(map[string]any)
				for _, k := range []string{"network", "image", "loadBalancer", "fleet", "verify"} {
					if res[k] == nil {
						t.Errorf("output resources lack %s (the Parallel's merge or a stage's output was lost): %v", k, res)
					}
				}
				if img, _ := res["image"].(map[string]any); img["imageId"] != "ami-1" || img["baseInstanceId"] != "i-base" {
					t.Errorf("resources.image = %v; want both the base instance and the AMI", img)
				}
				if r.Output["runId"] != "ok" || r.Output["config"] == nil {
					t.Errorf("output runId %v, config %v; want them kept through the Parallel", r.Output["runId"], r.Output["config"])
				}
				if r.Output["recorded"] != true {
					t.Errorf("the run was not recorded (RecordRun): %v", r.Output)
				}
				for _, w := range pipeline.Waits {
					if n := r.count(w.Check); w.Check != pipeline.Cleanup && w.Check != pipeline.PruneGenerations && n != 1 {
						t.Errorf("%s called %d times; want once (ready at the first poll)", w.Check, n)
					}
				}
				if r.count("Cleanup") != 0 || len(r.Teardowns) != 0 {
					t.Errorf("a run without a time to live cleaned up (%d) or scheduled a teardown (%v)", r.count("Cleanup"), r.Teardowns)
				}
			},
		},
		{
			run: motoRun{Name: "ttl", Input: map[string]any{"teardownAfterMinutes": 7}},
			check: func(t *testing.T, r motoResult) {
				wantStatus(t, r, "SUCCEEDED")
				td := oneTeardown(t, r, "ttl")
				if td.Input["runId"] != "ttl" || td.Input["delaySeconds"] != 420.0 || td.Input["config"] == nil {
					t.Errorf("Teardown started with %v; want runId ttl, delaySeconds 420 (7 minutes), the run's config", td.Input)
				}
			},
		},
		{
			// The longest run id: the teardown's name still fits in 80 characters.
			run: motoRun{Name: "ttl-with-longest-id", Input: map[string]any{"teardownAfterMinutes": 1}},
			check: func(t *testing.T, r motoResult) {
				wantStatus(t, r, "SUCCEEDED")
				if len("ttl-with-longest-id") != pipeline.MaxRunIDLength {
					t.Fatalf("the run id is not the longest one")
				}
				oneTeardown(t, r, "ttl-with-longest-id")
			},
		},
		// Two runs with one run id (Demo and demo had one, before run ids were one to
		// one): the second one's teardown must not meet the first one's, still
		// waiting out its time to live, and take the run to Cleanup.
		{
			run: motoRun{Name: "ttl-shared-1", Input: map[string]any{"teardownAfterMinutes": 5}, Scenario: map[string]any{"runId": "shared"}},
			check: func(t *testing.T, r motoResult) {
				wantStatus(t, r, "SUCCEEDED")
				oneTeardown(t, r, "shared")
			},
		},
		{
			run: motoRun{Name: "ttl-shared-2", Input: map[string]any{"teardownAfterMinutes": 5}, Scenario: map[string]any{"runId": "shared"}},
			check: func(t *testing.T, r motoResult) {
				wantStatus(t, r, "SUCCEEDED")
				if n := r.count("Cleanup"); n != 0 {
					t.Errorf("Cleanup called %d times: the second run's teardown met the first one's", n)
				}
				oneTeardown(t, r, "shared")
			},
		},
		// The start happened but its answer was lost: the state's retry starts the same
		// execution again, by the same name and input.
		{
			run: motoRun{Name: "ttl-start-lost", Input: map[string]any{"teardownAfterMinutes": 5},
				Scenario: map[string]any{"startLost": map[string]any{"times": 1}}},
			check: func(t *testing.T, r motoResult) {
				// The teardown is still waiting: StartExecution is idempotent.
				wantStatus(t, r, "SUCCEEDED")
				if n := r.count("Cleanup"); n != 0 {
					t.Errorf("Cleanup called %d times after a retried start", n)
				}
				oneTeardown(t, r, "ttl-start-lost")
			},
		},
		{
			run: motoRun{Name: "ttl-start-lost-closed", Input: map[string]any{"teardownAfterMinutes": 5},
				Scenario: map[string]any{"startLost": map[string]any{"times": 1, "closed": true}}},
			check: func(t *testing.T, r motoResult) {
				// The teardown has ended: the retry answers ExecutionAlreadyExists, which
				// for this execution's own teardown name means it was started.
				wantStatus(t, r, "SUCCEEDED")
				if n := r.count("Cleanup"); n != 0 || slices.Contains(r.States, "Cleanup") {
					t.Errorf("Cleanup called %d times (states %v): ExecutionAlreadyExists for its own teardown is success", n, r.States)
				}
				if _, recorded := r.Output["errors"]; recorded {
					t.Errorf("output records errors %v; ExecutionAlreadyExists for its own teardown is no error", r.Output["errors"])
				}
				oneTeardown(t, r, "ttl-start-lost-closed")
			},
		},
		{
			run: motoRun{Name: "bad-input", Input: map[string]any{"bad": true}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "BadInputError", "bad input")
				if len(r.Calls) != 1 {
					t.Errorf("calls = %+v; want Validate only, once (never retried)", r.Calls)
				}
			},
		},
		{
			run: motoRun{Name: "base-never-stops", Input: map[string]any{}, Scenario: map[string]any{"readyAfter": map[string]any{"baseStopped": 99}}},
			check: func(t *testing.T, r motoResult) {
				// The fake Cleanup copies the first error as it is; the real one unwraps BranchFailed.
				wantFailed(t, r, "BranchFailed", `not done after 3 polls (config.poll.maxPolls.baseStopped)`)
				if n := r.count("CheckBaseStopped"); n != 3 {
					t.Errorf("CheckBaseStopped called %d times; want 3 (config.poll.maxPolls.baseStopped)", n)
				}
				caught := r.cleanupSaw(t)["BuildImageAndLoadBalancer"]
				var branch map[string]pipeline.CaughtError
				if caught.Error != "BranchFailed" || json.Unmarshal([]byte(caught.Cause), &branch) != nil {
					t.Fatalf("Cleanup got errors.BuildImageAndLoadBalancer = %+v; want BranchFailed with the branch's errors as JSON", caught)
				}
				if w := branch["BaseStoppedTimedOut"]; w.Error != pipeline.ErrWaitTimedOut || !strings.Contains(w.Cause, `"reason":"not yet after 3 polls"`) {
					t.Errorf("branch errors = %+v; want BaseStoppedTimedOut: WaitTimedOutError with the last check's reason", branch)
				}
			},
		},
		{
			run: motoRun{Name: "lb-fails", Input: map[string]any{}, Scenario: fails("CreateLoadBalancer", "ResourceFailedError", -1)},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "BranchFailed", "CreateLoadBalancer: injected ResourceFailedError")
				if n := r.count("CreateLoadBalancer"); n != 1 {
					t.Errorf("CreateLoadBalancer called %d times; want 1 (ResourceFailedError is never retried)", n)
				}
				if r.count("LaunchReplicas") != 0 {
					t.Error("LaunchReplicas ran after the Parallel failed")
				}
			},
		},
		{
			run: motoRun{Name: "stage-fails", Input: map[string]any{}, Scenario: fails("LaunchReplicas", "StageError", -1)},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "StageError", "LaunchReplicas: injected StageError")
				if e := r.cleanupSaw(t)["LaunchReplicas"]; e.Error != "StageError" {
					t.Errorf("Cleanup got errors %+v; want LaunchReplicas: StageError", r.cleanupSaw(t))
				}
				if n := r.count("LaunchReplicas"); n != 1 {
					t.Errorf("LaunchReplicas called %d times; want 1 (StageError is never retried)", n)
				}
			},
		},
		{
			// keepOnFailure: the failure is reported as the stage's, nothing is
			// deleted, and Teardown is started with the default time to live.
			run: motoRun{Name: "kept", Input: map[string]any{"keepOnFailure": true}, Scenario: fails("RegisterTargets", "StageError", -1)},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "StageError", `RegisterTargets: injected StageError"} (resources kept, Teardown teardown-kept-ttl-`)
				if !slices.Contains(r.States, "KeptAfterFailure") || !slices.Contains(r.States, "KeptTeardownDefault") {
					t.Errorf("states %v; want KeptTeardownDefault and KeptAfterFailure", r.States)
				}
				if n := r.count("Cleanup"); n != 1 {
					t.Errorf("Cleanup called %d times; want once (it records the failure, and deletes nothing)", n)
				}
				td := oneTeardown(t, r, "kept")
				if td.Input["delaySeconds"] != float64(pipeline.DefaultKeptTeardownMinutes*60) {
					t.Errorf("Teardown delaySeconds %v; want %d (the default for kept failures)", td.Input["delaySeconds"], pipeline.DefaultKeptTeardownMinutes*60)
				}
				if !strings.Contains(r.Cause, td.Name) {
					t.Errorf("cause %q does not name the Teardown %s", r.Cause, td.Name)
				}
			},
		},
		{
			run: motoRun{Name: "kept-ttl", Input: map[string]any{"keepOnFailure": true, "teardownAfterMinutes": 7},
				Scenario: map[string]any{"readyAfter": map[string]any{"targetsHealthy": 99}}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, pipeline.ErrWaitTimedOut, "TargetsHealthyTimedOut")
				if slices.Contains(r.States, "KeptTeardownDefault") {
					t.Errorf("states %v: the default time to live replaced teardownAfterMinutes", r.States)
				}
				if td := oneTeardown(t, r, "kept-ttl"); td.Input["delaySeconds"] != 420.0 {
					t.Errorf("Teardown delaySeconds %v; want 420 (teardownAfterMinutes 7)", td.Input["delaySeconds"])
				}
			},
		},
		{
			// keepOnFailure false: cleaned up as ever, no Teardown.
			run: motoRun{Name: "not-kept", Input: map[string]any{"keepOnFailure": false}, Scenario: fails("Verify", "StageError", -1)},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "StageError", "Verify: injected StageError")
				if len(r.Teardowns) != 0 || !slices.Contains(r.States, "Failed") {
					t.Errorf("teardowns %v, states %v; want none, and Failed", r.Teardowns, r.States)
				}
			},
		},
		{
			run: motoRun{Name: "retried", Input: map[string]any{}, Scenario: map[string]any{
				"throttle": map[string]any{"CreateImage": 2},
				"fail": map[string]any{
					"CheckTargetsHealthy": map[string]any{"errorType": "RetryableError", "times": 2},
					"Verify":              map[string]any{"errorType": "Runtime.ExitError", "times": 1},
				},
			}},
			check: func(t *testing.T, r motoResult) {
				wantStatus(t, r, "SUCCEEDED")
				for fn, want := range map[string]int{"CreateImage": 3, "CheckTargetsHealthy": 3, "Verify": 2} {
					if n := r.count(fn); n != want {
						t.Errorf("%s called %d times; want %d", fn, n, want)
					}
				}
			},
		},
		{
			run: motoRun{Name: "cleanup-incomplete", Input: map[string]any{}, Scenario: map[string]any{
				"fail":       map[string]any{"CreateSecurityGroups": map[string]any{"errorType": "StageError", "times": -1}},
				"readyAfter": map[string]any{"cleanupDone": 99},
			}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "StageError", "cleanup did not finish after 3 polls, run Teardown with runId cleanup-incomplete")
				if n := r.count("Cleanup"); n != 3 {
					t.Errorf("Cleanup called %d times; want 3 (config.poll.maxPolls.cleanup)", n)
				}
			},
		},
		{
			run: motoRun{Name: "cleanup-fails", Input: map[string]any{}, Scenario: map[string]any{
				"fail": map[string]any{
					"CreateSecurityGroups": map[string]any{"errorType": "StageError", "times": -1},
					"Cleanup":              map[string]any{"errorType": "StageError", "times": -1},
				},
			}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "CleanupFailed", "resources may remain")
				if !strings.Contains(r.Cause, "CreateSecurityGroups: injected StageError") {
					t.Errorf("cause %q does not carry the stage's own error", r.Cause)
				}
			},
		},
		{
			run: motoRun{Name: "teardown", Start: "teardown", Input: map[string]any{"runId": "r1", "delaySeconds": 1}},
			check: func(t *testing.T, r motoResult) {
				wantStatus(t, r, "SUCCEEDED")
				for _, s := range []string{"WaitDelay", "Prepare", "Cleanup", "Done"} {
					if !slices.Contains(r.States, s) {
						t.Errorf("states %v lack %s", r.States, s)
					}
				}
			},
		},
		{
			run: motoRun{Name: "teardown-no-run-id", Start: "teardown", Input: map[string]any{"runID": "r1"}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "BadInputError", `{"runId": "<run id>"}`)
				if len(r.Calls) != 0 {
					t.Errorf("calls = %+v; want none", r.Calls)
				}
			},
		},
		{
			run: motoRun{Name: "teardown-bad-delay", Start: "teardown", Input: map[string]any{"runId": "r1", "delaySeconds": "soon"}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "BadInputError", "delaySeconds")
			},
		},
		{
			run: motoRun{Name: "teardown-refused", Start: "teardown", Input: map[string]any{"runId": ""}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, "BadInputError", "runId: empty")
				if !slices.Contains(r.States, "InvalidRunId") {
					t.Errorf("states %v; want InvalidRunId", r.States)
				}
			},
		},
		{
			run: motoRun{Name: "teardown-incomplete", Start: "teardown",
				Input:    map[string]any{"runId": "r1", "config": map[string]any{"poll": map[string]any{"intervalSeconds": 0, "maxPolls": map[string]any{"cleanupDone": 2}}}},
				Scenario: map[string]any{"readyAfter": map[string]any{"cleanupDone": 99}}},
			check: func(t *testing.T, r motoResult) {
				wantFailed(t, r, pipeline.ErrWaitTimedOut, "teardown of run r1 did not finish after 2 polls")
				if n := r.count("Cleanup"); n != 2 || !slices.Contains(r.States, "PrepareWithConfig") {
					t.Errorf("Cleanup called %d times through %v; want 2, with the caller's config", n, r.States)
				}
			},
		},
	}

	defs := map[string]string{}
	for name, def := range map[string][]byte{"pipeline": Pipeline(), "teardown": Teardown(), "refresh": Refresh()} {
		r, err := Render(def, fakeARNs())
		if err != nil {
			t.Fatal(err)
		}
		defs[name] = string(r)
	}
	var runs []motoRun
	for _, tc := range tests {
		runs = append(runs, tc.run)
	}
	var results map[string]motoResult
	runMoto(t, map[string]any{"op": "run", "pipeline": defs["pipeline"], "teardown": defs["teardown"], "runs": runs}, &results)
	for _, tc := range tests {
		t.Run(tc.run.Name, func(t *testing.T) {
			r, ok := results[tc.run.Name]
			if !ok {
				t.Fatal("no result")
			}
			tc.check(t, r)
		})
	}
}

// teardownNameRE is the name ScheduleTeardown gives the Teardown it starts:
// teardown-<runId>-ttl-<SHA-1 of the execution ARN>.
var teardownNameRE = regexp.MustCompile(`^teardown-([a-z0-9-]+)-ttl-[0-9a-f]{40}$`)

// oneTeardown checks that the run started exactly one Teardown, for runID, under a
// valid name of at most 80 characters, and returns it.
func oneTeardown(t *testing.T, r motoResult, runID string) struct {
	Name   string
	Input  map[string]any
	Status string
} {
	t.Helper()
	if len(r.Teardowns) != 1 {
		t.Fatalf("%d Teardown executions started (%v); want 1; states %v", len(r.Teardowns), r.Teardowns, r.States)
	}
	td := r.Teardowns[0]
	m := teardownNameRE.FindStringSubmatch(td.Name)
	if m == nil || m[1] != runID || len(td.Name) > 80 {
		t.Errorf("Teardown named %q (%d characters); want teardown-%s-ttl-<40 hex>, at most 80", td.Name, len(td.Name), runID)
	}
	if td.Input["runId"] != runID {
		t.Errorf("Teardown input %v; want runId %s", td.Input, runID)
	}
	return td
}

func wantStatus(t *testing.T, r motoResult, status string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %s (%s: %s); want %s; states %v", r.Status, r.Error, r.Cause, status, r.States)
	}
}

func wantFailed(t *testing.T, r motoResult, errorName, causeHas string) {
	t.Helper()
	wantStatus(t, r, "FAILED")
	if r.Error != errorName || !strings.Contains(r.Cause, causeHas) {
		t.Errorf("failed with %s: %s; want %s with a cause that says %q", r.Error, r.Cause, errorName, causeHas)
	}
}
