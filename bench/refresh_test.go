package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

const refreshTG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/amifleet-r-tg/1"

// refreshFixture is a 2-replica refresh at time scale 0.1 (AWS seconds are local ×
// 10): generation 2 (base i-b2, image ami-2, replicas i-n1 and i-n2) replaces
// generation 1 (i-b1, i-o1, i-o2), whose targets PruneGenerations deregisters at
// 8.9, and whose instances it terminates at 12.4, after their drain.
func refreshFixture() ([]sfntypes.HistoryEvent, pipeline.Document, []localcloud.LatencyEvent) {
	h := &hist{}
	h.add(sfntypes.HistoryEventTypeExecutionStarted, 0, 0)
	h.task(pipeline.PrepareRefresh, 0, 0.1, "", false)
	h.task(pipeline.LaunchBase, 0.1, 0.3, "", false)
	h.poll(waitOf(pipeline.WaitBaseStopped), 0.3, 1.8, 1.9, false)
	h.poll(waitOf(pipeline.WaitBaseStopped), 1.9, 3.4, 3.5, true)
	h.task(pipeline.CreateImage, 3.5, 3.6, "", false)
	h.poll(waitOf(pipeline.WaitImageAvailable), 3.6, 5.1, 5.2, true)
	h.task(pipeline.LaunchReplicas, 5.2, 5.4, "", false)
	h.poll(waitOf(pipeline.WaitInstancesRunning), 5.4, 6.9, 7.0, true)
	h.task(pipeline.RegisterTargets, 7.0, 7.1, "", false)
	h.poll(waitOf(pipeline.WaitTargetsHealthy), 7.1, 8.6, 8.7, true)
	h.task(pipeline.Verify, 8.7, 8.8, "", false)
	h.task(pipeline.CommitGeneration, 8.8, 8.9, "", false)
	pruned := waitOf(pipeline.WaitGenerationsPruned)
	h.task(pipeline.PruneGenerations, 8.9, 9.0, pruned.Key(), false)
	h.state(pruned.ChoiceState(), "Choice", 9.0, 9.0)
	h.poll(pruned, 9.0, 12.3, 12.5, false)  // terminates
	h.poll(pruned, 12.5, 17.0, 17.1, false) // the first clean look
	h.poll(pruned, 17.1, 17.6, 17.7, true)
	h.state("Committed?", "Choice", 17.7, 17.7)
	h.add(sfntypes.HistoryEventTypeSucceedStateEntered, 17.7, 0).StateEnteredEventDetails = &sfntypes.StateEnteredEventDetails{Name: aws.String("Succeeded")}
	h.add(sfntypes.HistoryEventTypeExecutionSucceeded, 17.7, 0)

	doc := pipeline.Document{RunID: "r", Generation: 2}
	doc.Config.ReplicaCount = 2
	doc.Resources.Image = &pipeline.Image{BaseInstanceID: "i-b2", ImageID: "ami-2"}
	doc.Resources.LoadBalancer = &pipeline.LoadBalancer{LoadBalancerARN: lbARN, TargetGroupARN: refreshTG}
	doc.Resources.Fleet = &pipeline.Fleet{ReplicaInstanceIDs: []string{"i-n1", "i-n2"}, InstanceIDs: []string{"i-b2", "i-n1", "i-n2"}}
	doc.Refresh = &pipeline.Refresh{Committed: true, From: pipeline.GenerationRef{Generation: 1, ImageID: "ami-1", InstanceIDs: []string{"i-b1", "i-o1", "i-o2"}}}

	healthy := func(id string, at float64) localcloud.LatencyEvent {
		e := change(localcloud.OpTargetHealthy, refreshTG+" "+id, 7.05, at)
		e.Modelled = false
		return e
	}
	record := []localcloud.LatencyEvent{
		// The refreshed run's own changes, before the refresh: not the refresh's.
		change(localcloud.OpInstanceRunning, "i-o1", -50, -49),
		change(localcloud.OpBooted, "i-o1", -49, -45),
		change(localcloud.OpRunInstancesAnswer, "i-b2", 0.15, 0.25),
		change(localcloud.OpInstanceRunning, "i-b2", 0.15, 0.65),
		change(localcloud.OpUserDataDone, "i-b2", 0.65, 2.15),
		change(localcloud.OpInstanceStopped, "i-b2", 2.15, 3.15),
		change(localcloud.OpImageAvailable, "ami-2", 3.55, 5.05),
		change(localcloud.OpInstanceRunning, "i-n1", 5.3, 5.7),
		change(localcloud.OpInstanceRunning, "i-n2", 5.3, 5.9),
		change(localcloud.OpInstanceRunning, "i-b2#start2", 5.3, 5.8),
		change(localcloud.OpBooted, "i-n1", 5.7, 7.2),
		change(localcloud.OpBooted, "i-n2", 5.9, 6.9),
		change(localcloud.OpBooted, "i-b2#start2", 5.8, 7.0),
		healthy("i-b2", 8.3), healthy("i-n1", 8.5), healthy("i-n2", 8.2),
		change(localcloud.OpInstanceTerminated, "i-b1", 12.4, 16.9),
		change(localcloud.OpInstanceTerminated, "i-o1", 12.4, 15.9),
		change(localcloud.OpInstanceTerminated, "i-o2", 12.4, 16.4),
		// Another run's instance, terminated later and slower: not this refresh's.
		change(localcloud.OpInstanceTerminated, "i-x", 12.0, 19.0),
	}
	return h.events, doc, record
}

func TestAnalyzeRefreshRun(t *testing.T) {
	events, doc, record := refreshFixture()
	r, err := AnalyzeRefreshRun(events, doc, record, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	// PrepareRefresh 1; LaunchBase 2, running 5, user data 15, stopped 10; CreateImage 1,
	// image 15; LaunchReplicas 2, slowest running 6, boot left after it 13 (i-n1: 4 +
	// 15, over RegisterTargets' 1); health checks 10; Verify 1, CommitGeneration 1; the
	// deregistering prune 1, the drain 30, the terminating prune 2, the slowest
	// termination 45 (i-b1; not the other run's 70).
	if !near(r.LimitSeconds, 160) {
		t.Errorf("limit %.3f s, want 160; path %+v", r.LimitSeconds, r.Path)
	}
	var names []string
	for _, s := range r.Path {
		names = append(names, s.Name)
	}
	want := []string{pipeline.PrepareRefresh, pipeline.LaunchBase, "base instance running", "base user data done", "base instance stopped",
		pipeline.CreateImage, "image available", pipeline.LaunchReplicas, "instances running (slowest)", "instances booted (slowest)",
		"targets healthy (2 checks, 5 s apart)", pipeline.Verify, pipeline.CommitGeneration, "PruneGenerations (deregisters)",
		"old targets drained (deregistration delay, 30 s)", "PruneGenerations (terminates)", "old instances terminated (slowest)"}
	if !slices.Equal(names, want) {
		t.Errorf("path %q, want %q", names, want)
	}
	if k := r.Path[14].Kind; k != StepDrain {
		t.Errorf("the drain's kind is %q", k)
	}
	if !near(r.RunSeconds, 177) || !near(r.Ratio, 177.0/160) {
		t.Errorf("refresh %.3f s, ratio %.4f; want 177 s, %.4f", r.RunSeconds, r.Ratio, 177.0/160)
	}
	for wait, want := range map[string]float64{
		pipeline.WaitBaseStopped:       3.5, // stopped at 3.15, noticed at 3.5
		pipeline.WaitImageAvailable:    1.5, // 5.05, 5.2
		pipeline.WaitInstancesRunning:  11,  // the last at 5.9, 7.0
		pipeline.WaitTargetsHealthy:    2,   // measured: the last healthy at 8.5, 8.7
		pipeline.WaitGenerationsPruned: 8,   // the last old instance terminated at 16.9, ready at 17.7
	} {
		if s := slackOfList(t, r.Slack, wait); !s.Known || s.Bound || !near(s.Seconds, want) {
			t.Errorf("slack of %s: %+v, want %.1f s", wait, s, want)
		}
	}
	if len(r.Slack) != len(refreshWaits) || len(r.Missing) != 0 {
		t.Errorf("slack %+v, missing %q", r.Slack, r.Missing)
	}
	if r.Transitions != Transitions(events) || r.LambdaInvocations != 16 || r.Replicas != 2 || r.OldInstances != 3 {
		t.Errorf("transitions %d, invocations %d, replicas %d, old instances %d", r.Transitions, r.LambdaInvocations, r.Replicas, r.OldInstances)
	}
}

func slackOfList(t *testing.T, list []WaitSlack, wait string) WaitSlack {
	t.Helper()
	for _, s := range list {
		if s.Wait == wait {
			return s
		}
	}
	t.Fatalf("no slack for %s in %+v", wait, list)
	return WaitSlack{}
}

func TestAnalyzeRefreshRunMissing(t *testing.T) {
	events, doc, record := refreshFixture()
	r, err := AnalyzeRefreshRun(events, doc, slices.DeleteFunc(slices.Clone(record), func(e localcloud.LatencyEvent) bool { return e.Key == "i-o2" }), 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Missing) != 1 || !strings.Contains(r.Missing[0], "i-o2") {
		t.Errorf("missing %q, want i-o2's termination", r.Missing)
	}
	if s := slackOfList(t, r.Slack, pipeline.WaitGenerationsPruned); s.Known {
		t.Errorf("the prune's slack known without every old instance's termination: %+v", s)
	}
	// No termination at all: the terminating call cannot be told, and counts 0 s.
	r, err = AnalyzeRefreshRun(events, doc, slices.DeleteFunc(slices.Clone(record), func(e localcloud.LatencyEvent) bool { return e.Op == localcloud.OpInstanceTerminated }), 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Missing) != 4 || r.Missing[3] != "the PruneGenerations call that terminated" || !near(r.LimitSeconds, 160-45-2) {
		t.Errorf("missing %q, limit %.3f", r.Missing, r.LimitSeconds)
	}
	if _, err := AnalyzeRefreshRun(events, doc, record, 0); err == nil {
		t.Error("a time scale of 0 accepted")
	}
	doc.Refresh = nil
	if _, err := AnalyzeRefreshRun(events, doc, record, 0.1); err == nil {
		t.Error("a document without its old generation analysed")
	}
}

func TestRenderRefresh(t *testing.T) {
	events, doc, record := refreshFixture()
	base, err := AnalyzeRefreshRun(events, doc, record, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	var runs []RefreshRun
	for i, sec := range []float64{177, 190, 170} {
		r := base
		r.Seed, r.RunSeconds, r.Ratio, r.PipelineSeconds = int64(i+1), sec, sec/160, 300+float64(i)
		r.Transitions += i
		runs = append(runs, r)
	}
	big := base
	big.Replicas, big.Seed, big.PipelineSeconds = 50, 1, 340
	runs = append(runs, big)
	var b strings.Builder
	renderRefresh(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...)) }, &RefreshResults{TimeScale: 0.1, Input: refreshInput("<run>"), Runs: runs})
	got := b.String()
	tr := Transitions(events)
	for _, want := range []string{
		"## 7. A refresh under AWS's timing",
		`{"runId":"\u003crun\u003e"}`,
		"| replicas | refreshes | refresh (s) | limit (s) | ratio | transitions | Lambda invocations | pipeline run (s) |",
		fmt.Sprintf("| 2 | 3 | 177 (170–190) | 160 (160) | 1.11 (1.06–1.19) | %d (%d–%d) | 16 (16) | 301 (300–302) |", tr+1, tr, tr+2),
		fmt.Sprintf("| 50 | 1 | 177 (177) | 160 (160) | 1.11 (1.11) | %d (%d) | 16 (16) | 340 (340) |", tr, tr),
		"slack GenerationsPruned (s) |",
		fmt.Sprintf("| 2 | 1 | 160 | 177 | 1.11 | 3.5 (1.0) | 1.5 (1.0) | 11.0 (1.0) | 2.0 (1.0) | 8.0 (1.0) | %d | 16 | 3 |", tr),
		"| **2** | **median** | 160 | 177 | 1.11 |",
		"| old targets drained (deregistration delay, 30 s) | drain | 30.0 |",
		"| **limit** | | **160.0** |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	b.Reset()
	renderRefresh(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...)) }, nil)
	if !strings.Contains(b.String(), "Not measured yet") {
		t.Errorf("no refreshes rendered as %q", b.String())
	}
}

func TestMinMax(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want string
	}{{nil, "n/a"}, {[]float64{3}, "3"}, {[]float64{9, 1, 5}, "1–9"}, {[]float64{4.2, 3.8}, "4"}} {
		if got := minMax("%.0f", tt.xs); got != tt.want {
			t.Errorf("minMax(%v) = %q, want %q", tt.xs, got, tt.want)
		}
	}
}

// The refresh's input is the default one, which the Refresh accepts.
func TestRefreshInput(t *testing.T) {
	in, err := pipeline.ParseRefreshInput(json.RawMessage(refreshInput("lat-s1-r2-123456")))
	if err != nil || in != (pipeline.RefreshInput{RunID: "lat-s1-r2-123456"}) {
		t.Errorf("the refresh input reads as %+v, %v", in, err)
	}
}

// The drain's figure is CreateLoadBalancer's deregistration delay.
func TestDeregistrationDelay(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../internal/stages/create_load_balancer.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	ast.Inspect(f, func(n ast.Node) bool {
		if v, ok := n.(*ast.ValueSpec); ok && len(v.Values) == len(v.Names) {
			for i, name := range v.Names {
				if lit, ok := v.Values[i].(*ast.BasicLit); ok && name.Name == "deregistrationDelaySeconds" {
					got, _ = strconv.Unquote(lit.Value)
				}
			}
		}
		return true
	})
	if got != strconv.Itoa(deregistrationDelaySeconds) {
		t.Errorf("create_load_balancer.go sets a deregistration delay of %q s; the bench assumes %d", got, deregistrationDelaySeconds)
	}
}

// -parts takes the refresh part, and names it when it refuses one.
func TestCheckParts(t *testing.T) {
	if err := checkParts("lambdas, runs,latency,refresh"); err != nil {
		t.Error(err)
	}
	err := checkParts("latency,refesh")
	if err == nil || !strings.Contains(err.Error(), `"refesh"`) || !strings.Contains(err.Error(), "refresh)") {
		t.Errorf("an unknown part: %v", err)
	}
}

// A results file from before the refresh part loads, without refreshes; and the
// one in the repository loads.
func TestReadResultsWithoutRefresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(path, []byte(`{"machine":{"cores":2},"latency":{"timeScale":0.25,"runs":[{"replicas":2,"seed":1}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := readResults(path)
	if err != nil || res.Refresh != nil || res.Latency == nil || len(res.Latency.Runs) != 1 {
		t.Fatalf("read %+v, %v", res, err)
	}
	if !strings.Contains(Render(res, Check(res), "benchmarks.png"), "## 7. A refresh under AWS's timing (*measured* on a scaled clock)\n\nNot measured yet") {
		t.Error("without refreshes the document must say they were not measured")
	}
	if _, err := readResults(filepath.Join("results.json")); err != nil {
		t.Errorf("bench/results.json: %v", err)
	}
}
