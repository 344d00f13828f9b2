package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/stepfunctions"
	"github.com/aws/aws-sdk-go-v2/aws"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// hist builds a history for the latency tests; times are local seconds from t0.
type hist struct{ events []sfntypes.HistoryEvent }

func (h *hist) add(typ sfntypes.HistoryEventType, at float64, prev int64) *sfntypes.HistoryEvent {
	id := int64(len(h.events) + 1)
	if prev == 0 {
		prev = id - 1
	}
	h.events = append(h.events, sfntypes.HistoryEvent{Id: id, PreviousEventId: prev, Type: typ, Timestamp: aws.Time(lt(at))})
	return &h.events[len(h.events)-1]
}

func (h *hist) state(name string, typ string, from, to float64) {
	h.add(sfntypes.HistoryEventType(typ+"StateEntered"), from, 0).StateEnteredEventDetails = &sfntypes.StateEnteredEventDetails{Name: aws.String(name)}
	h.add(sfntypes.HistoryEventType(typ+"StateExited"), to, 0).StateExitedEventDetails = &sfntypes.StateExitedEventDetails{Name: aws.String(name)}
}

// task is a Lambda Task; a check's output says whether its poll key is ready.
func (h *hist) task(name string, from, to float64, pollKey string, ready bool) {
	h.add(taskEntered, from, 0).StateEnteredEventDetails = &sfntypes.StateEnteredEventDetails{Name: aws.String(name)}
	h.add(scheduled, from, 0).TaskScheduledEventDetails = &sfntypes.TaskScheduledEventDetails{ResourceType: aws.String("lambda"), Resource: aws.String("invoke")}
	h.add(started, from, 0)
	out := `{"Payload":{"runId":"r"},"StatusCode":200}`
	if pollKey != "" {
		out = `{"Payload":{"polls":{"` + pollKey + `":{"ready":` + strconv.FormatBool(ready) + `,"attempts":1}}},"StatusCode":200}`
	}
	h.add(succeeded, to, 0).TaskSucceededEventDetails = &sfntypes.TaskSucceededEventDetails{Output: aws.String(out)}
	h.add(taskExited, to, 0).StateExitedEventDetails = &sfntypes.StateExitedEventDetails{Name: aws.String(name)}
}

// poll is one round of a wait loop: Wait, check, Choice.
func (h *hist) poll(w pipeline.Wait, from, checkAt, to float64, ready bool) {
	h.state(w.WaitState(), "Wait", from, checkAt)
	h.task(w.Check, checkAt, to, w.Key(), ready)
	h.state(w.ChoiceState(), "Choice", to, to)
}

// lt is local time at seconds from t0.
func lt(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func waitOf(name string) pipeline.Wait { w, _ := pipeline.WaitNamed(name); return w }

// change is a record entry: local start and end, and its AWS duration at scale 0.1.
func change(op localcloud.LatencyOp, key string, from, to float64) localcloud.LatencyEvent {
	return localcloud.LatencyEvent{Op: op, Key: key, Start: lt(from), Ready: lt(to), AWS: time.Duration((to - from) * 10 * float64(time.Second)), Modelled: true}
}

const lbARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/amifleet-r/1"

// latencyFixture is a 2-replica run at time scale 0.1 (AWS seconds are local × 10):
// the image branch is the longer one, and every wait notices its resource late by a
// known amount.
func latencyFixture(lbActive float64) ([]sfntypes.HistoryEvent, pipeline.Document, []localcloud.LatencyEvent) {
	h := &hist{}
	h.add(sfntypes.HistoryEventTypeExecutionStarted, 0, 0)
	h.task(pipeline.Validate, 0, 0.1, "", false)
	h.task(pipeline.CreateSecurityGroups, 0.1, 0.2, "", false)
	h.add(sfntypes.HistoryEventTypeParallelStateEntered, 0.2, 0).StateEnteredEventDetails = &sfntypes.StateEnteredEventDetails{Name: aws.String("BuildImageAndLoadBalancer")}
	h.task(pipeline.LaunchBase, 0.2, 0.4, "", false)
	h.poll(waitOf(pipeline.WaitBaseStopped), 0.4, 1.9, 2.0, false)
	h.poll(waitOf(pipeline.WaitBaseStopped), 2.0, 3.5, 3.6, true)
	h.task(pipeline.CreateImage, 3.6, 3.7, "", false)
	h.poll(waitOf(pipeline.WaitImageAvailable), 3.7, 5.2, 5.3, true)
	h.task(pipeline.CreateLoadBalancer, 0.2, 0.3, "", false)
	h.poll(waitOf(pipeline.WaitLoadBalancerActive), 0.3, 1.8, 1.9, true)
	h.add(sfntypes.HistoryEventTypeParallelStateExited, 5.3, 0).StateExitedEventDetails = &sfntypes.StateExitedEventDetails{Name: aws.String("BuildImageAndLoadBalancer")}
	h.task(pipeline.LaunchReplicas, 5.3, 5.5, "", false)
	h.poll(waitOf(pipeline.WaitInstancesRunning), 5.5, 7.0, 7.1, true)
	h.task(pipeline.RegisterTargets, 7.1, 7.2, "", false)
	h.poll(waitOf(pipeline.WaitTargetsHealthy), 7.2, 8.7, 8.8, false)
	h.poll(waitOf(pipeline.WaitTargetsHealthy), 8.8, 10.3, 10.4, true)
	h.task(pipeline.Verify, 10.4, 10.5, "", false)
	h.add(sfntypes.HistoryEventTypeExecutionSucceeded, 10.5, 0)

	doc := pipeline.Document{RunID: "r"}
	doc.Config.ReplicaCount = 2
	doc.Resources.Image = &pipeline.Image{BaseInstanceID: "i-base", ImageID: "ami-1"}
	doc.Resources.LoadBalancer = &pipeline.LoadBalancer{LoadBalancerARN: lbARN}
	doc.Resources.Fleet = &pipeline.Fleet{ReplicaInstanceIDs: []string{"i-r1", "i-r2"}, InstanceIDs: []string{"i-base", "i-r1", "i-r2"}}

	record := []localcloud.LatencyEvent{
		change(localcloud.OpRunInstancesAnswer, "i-base", 0.25, 0.35),
		change(localcloud.OpInstanceRunning, "i-base", 0.35, 0.85),
		change(localcloud.OpLoadBalancerActive, lbARN, 0.25, 0.25+lbActive),
		change(localcloud.OpUserDataDone, "i-base", 0.85, 2.35),
		change(localcloud.OpInstanceStopped, "i-base", 2.35, 3.35),
		change(localcloud.OpImageAvailable, "ami-1", 3.65, 5.15),
		// Another run's instance, slower than this run's: not this run's.
		change(localcloud.OpInstanceRunning, "i-other", 5.4, 7.0),
		change(localcloud.OpInstanceRunning, "i-r1", 5.45, 5.85),
		change(localcloud.OpInstanceRunning, "i-r2", 5.45, 6.05),
		change(localcloud.OpBooted, "i-r1", 5.85, 7.45),
		change(localcloud.OpBooted, "i-r2", 6.05, 7.05),
		// The kept base instance, started again by LaunchReplicas.
		change(localcloud.OpInstanceRunning, "i-base#start2", 5.4, 5.8),
		change(localcloud.OpBooted, "i-base#start2", 5.8, 7.0),
		// Another run's instance whose id begins like this run's: not this run's.
		change(localcloud.OpBooted, "i-r10", 5.45, 9.0),
	}
	return h.events, doc, record
}

func testParallel(t *testing.T) (Parallel, int, int) {
	t.Helper()
	p, err := parallelBranches(stepfunctions.Pipeline())
	if err != nil {
		t.Fatal(err)
	}
	// The fixture names the Parallel; the branches are the real ASL's.
	p.Name = "BuildImageAndLoadBalancer"
	return p, p.branchOf(pipeline.CreateImage), p.branchOf(pipeline.CreateLoadBalancer)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func slackOf(t *testing.T, r LatencyRun, wait string) WaitSlack {
	t.Helper()
	for _, s := range r.Slack {
		if s.Wait == wait {
			return s
		}
	}
	t.Fatalf("no slack for %s in %+v", wait, r.Slack)
	return WaitSlack{}
}

func TestAnalyzeLatencyRun(t *testing.T) {
	p, _, _ := testParallel(t)
	events, doc, record := latencyFixture(1.2)
	r, err := AnalyzeLatencyRun(events, doc, record, p, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	// Validate 1 + CreateSecurityGroups 1; image branch: LaunchBase 2, running 5, user
	// data 15, stopped 10, CreateImage 1, image 15 (48, over the load balancer's 1 +
	// 12); LaunchReplicas 2, slowest running 6, boot left after it 14 (over
	// RegisterTargets' 1); health checks 10; Verify 1.
	if !near(r.LimitSeconds, 83) || r.CriticalBranch != BranchImage {
		t.Errorf("limit %.3f s on the %s branch, want 83 s on the image branch; path %+v", r.LimitSeconds, r.CriticalBranch, r.Path)
	}
	var names []string
	for _, s := range r.Path {
		names = append(names, s.Name)
	}
	want := []string{pipeline.Validate, pipeline.CreateSecurityGroups, pipeline.LaunchBase, "base instance running", "base user data done", "base instance stopped",
		pipeline.CreateImage, "image available", pipeline.LaunchReplicas, "instances running (slowest)", "instances booted (slowest)", "targets healthy (2 checks, 5 s apart)", pipeline.Verify}
	if !slices.Equal(names, want) {
		t.Errorf("path %q, want %q", names, want)
	}
	if !near(r.RunSeconds, 105) || !near(r.Ratio, 105.0/83) {
		t.Errorf("run %.3f s, ratio %.4f; want 105 s, %.4f", r.RunSeconds, r.Ratio, 105.0/83)
	}
	for wait, want := range map[string]float64{
		pipeline.WaitBaseStopped:        2.5,  // stopped at 3.35, noticed at 3.6
		pipeline.WaitImageAvailable:     1.5,  // 5.15, 5.3
		pipeline.WaitLoadBalancerActive: 4.5,  // 1.45, 1.9
		pipeline.WaitInstancesRunning:   10.5, // the last replica at 6.05, 7.1 (not the other run's 7.0)
		pipeline.WaitTargetsHealthy:     16,   // a bound: the check before at 8.8, ready at 10.4
	} {
		s := slackOf(t, r, wait)
		if !s.Known || !near(s.Seconds, want) || s.Bound != (wait == pipeline.WaitTargetsHealthy) {
			t.Errorf("slack of %s: %+v, want %.1f s", wait, s, want)
		}
	}
	if len(r.Slack) != len(latencyWaits) || len(r.Missing) != 0 {
		t.Errorf("slack %+v, missing %q", r.Slack, r.Missing)
	}
	if r.Transitions != Transitions(events) || r.LambdaInvocations != 15 || r.Replicas != 2 {
		t.Errorf("transitions %d, invocations %d, replicas %d", r.Transitions, r.LambdaInvocations, r.Replicas)
	}
}

// With the data plane's record of each target turning healthy, the health wait's
// slack is measured from the last of them, not bounded; one target missing from the
// record leaves the bound.
func TestAnalyzeLatencyRunTargetsHealthyMeasured(t *testing.T) {
	p, _, _ := testParallel(t)
	events, doc, record := latencyFixture(1.2)
	const tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/amifleet-r-tg/1"
	doc.Resources.LoadBalancer.TargetGroupARN = tg
	healthy := func(id string, at float64) localcloud.LatencyEvent {
		e := change(localcloud.OpTargetHealthy, tg+" "+id, 7.15, at)
		e.Modelled = false
		return e
	}
	measured := append(slices.Clone(record), healthy("i-base", 9.6), healthy("i-r1", 10.1), healthy("i-r2", 9.9),
		healthy("i-other", 10.35)) // not this run's
	r, err := AnalyzeLatencyRun(events, doc, measured, p, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if s := slackOf(t, r, pipeline.WaitTargetsHealthy); !s.Known || s.Bound || !near(s.Seconds, 3) {
		t.Errorf("slack of TargetsHealthy %+v, want 3 s measured (the last target healthy at 10.1, noticed at 10.4)", s)
	}
	r, err = AnalyzeLatencyRun(events, doc, append(slices.Clone(record), healthy("i-base", 9.6), healthy("i-r1", 10.1)), p, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if s := slackOf(t, r, pipeline.WaitTargetsHealthy); !s.Bound || !near(s.Seconds, 16) {
		t.Errorf("slack of TargetsHealthy with i-r2 unrecorded %+v, want the 16 s bound", s)
	}
}

func TestAnalyzeLatencyRunLoadBalancerCritical(t *testing.T) {
	p, _, _ := testParallel(t)
	events, doc, record := latencyFixture(6) // 60 AWS seconds: 61 over the image's 48
	r, err := AnalyzeLatencyRun(events, doc, record, p, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if r.CriticalBranch != BranchLoadBalancer || !near(r.LimitSeconds, 83-48+61) {
		t.Errorf("limit %.3f s on the %s branch, want 96 s on the load balancer's", r.LimitSeconds, r.CriticalBranch)
	}
	// Active at 6.25, after the ready check at 1.9 in this history: the slack is
	// negative, which says the record and the history disagree, and is kept as is.
	if s := slackOf(t, r, pipeline.WaitLoadBalancerActive); !near(s.Seconds, -43.5) {
		t.Errorf("slack of the load balancer: %+v", s)
	}
}

func TestAnalyzeLatencyRunMissingChange(t *testing.T) {
	p, _, _ := testParallel(t)
	events, doc, record := latencyFixture(1.2)
	record = slices.DeleteFunc(record, func(e localcloud.LatencyEvent) bool {
		return e.Op == localcloud.OpImageAvailable || e.Key == "i-r2" || e.Key == "i-base#start2"
	})
	r, err := AnalyzeLatencyRun(events, doc, record, p, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Missing) != 3 || !strings.Contains(r.Missing[0], "ami-1") || !strings.Contains(r.Missing[1], "i-base") || !strings.Contains(r.Missing[2], "i-r2") {
		t.Errorf("missing %q, want the image, the base instance's restart and i-r2", r.Missing)
	}
	for _, wait := range []string{pipeline.WaitImageAvailable, pipeline.WaitInstancesRunning} {
		if s := slackOf(t, r, wait); s.Known {
			t.Errorf("slack of %s known without its change: %+v", wait, s)
		}
	}
	if _, err := AnalyzeLatencyRun(events, doc, record, p, 0); err == nil {
		t.Error("a time scale of 0 accepted")
	}
	doc.Resources.Fleet = nil
	if _, err := AnalyzeLatencyRun(events, doc, record, p, 0.1); err == nil {
		t.Error("a run without a fleet analysed")
	}
}

func TestGanttSVG(t *testing.T) {
	p, img, alb := testParallel(t)
	events, doc, record := latencyFixture(1.2)
	r, err := AnalyzeLatencyRun(events, doc, record, p, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	critical := criticalStates(r, p, img, alb)
	svg := GanttSVG(r, critical)
	if !strings.HasPrefix(svg, "<svg ") || !strings.HasSuffix(svg, "</svg>\n") {
		t.Fatalf("not an SVG document:\n%s", svg)
	}
	bars := regexp.MustCompile(`<rect class="(bar(?: critical)?)" data-state="([^"]+)"`).FindAllStringSubmatch(svg, -1)
	// Rows in the order the run first entered each state; one bar per time in it.
	var rows []string
	count := map[string]int{}
	for _, b := range bars {
		if count[b[2]] == 0 {
			rows = append(rows, b[2])
		}
		count[b[2]]++
		if wantCritical := b[2] != p.Name && p.branchOf(b[2]) != alb; (b[1] == "bar critical") != wantCritical {
			t.Errorf("bar of %s is %q, critical should be %v", b[2], b[1], wantCritical)
		}
	}
	wantRows, _ := ganttRows(r.Timeline)
	if !slices.Equal(rows, wantRows) || len(bars) != len(r.Timeline) {
		t.Errorf("rows %q (%d bars), want %q (%d)", rows, len(bars), wantRows, len(r.Timeline))
	}
	if rows[0] != pipeline.Validate || count["WaitBaseStopped"] != 2 || count[pipeline.CheckTargetsHealthy] != 2 {
		t.Errorf("rows %q, counts %v", rows, count)
	}
	for _, s := range []string{pipeline.LaunchBase, pipeline.CreateImage, pipeline.LaunchReplicas, "WaitTargetsHealthy"} {
		if !critical[s] {
			t.Errorf("%s not on the critical path", s)
		}
	}
	if critical[pipeline.CreateLoadBalancer] || critical[p.Name] {
		t.Errorf("the load balancer branch or the Parallel marked critical: %v", critical)
	}
	steps := regexp.MustCompile(`<rect class="limit (\w+)" data-step="([^"]+)"`).FindAllStringSubmatch(svg, -1)
	if len(steps) != len(r.Path) || steps[0][2] != pipeline.Validate || steps[len(steps)-1][2] != pipeline.Verify || steps[3][1] != StepAWS {
		t.Errorf("limit row %q, want the path's %d steps", steps, len(r.Path))
	}
}

func TestRenderLatency(t *testing.T) {
	p, img, alb := testParallel(t)
	var runs []LatencyRun
	for i, active := range []float64{1.2, 6, 1.0} {
		events, doc, record := latencyFixture(active)
		r, err := AnalyzeLatencyRun(events, doc, record, p, 0.1)
		if err != nil {
			t.Fatal(err)
		}
		r.Seed = int64(i + 1)
		runs = append(runs, r)
	}
	var b strings.Builder
	renderLatency(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...)) }, &LatencyResults{TimeScale: 0.1, Input: "{}", Parallel: p, ImageBranch: img, ALBBranch: alb, Runs: runs}, "benchmarks-timeline.svg")
	doc := b.String()
	for _, want := range []string{
		"| replicas | seed | limit (s) | run (s) | ratio | slack BaseStopped (s) |",
		"| 2 | 1 | 83 | 105 | 1.27 | 2.5 (1.0) | 1.5 (1.0) | 4.5 (1.0) | 10.5 (1.0) | ≤ 16.0 (1.0) |",
		"| 2 | 2 | 96 | 105 | 1.09 |",
		// Medians: limits 83, 96, 83; load balancer slacks 4.5, -43.5, 6.5.
		"| **2** | **median** | 83 | 105 | 1.27 | 2.5 (1.0) | 1.5 (1.0) | 4.5 (1.0) | 10.5 (1.0) | ≤ 16.0 (1.0) |",
		"![timeline of one run under AWS's timing](benchmarks-timeline.svg)",
		"| **limit** (image branch) | | **83.0** |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("no %q in\n%s", want, doc)
		}
	}
	b.Reset()
	renderLatency(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...)) }, nil, "x.svg")
	if !strings.Contains(b.String(), "Not measured yet") {
		t.Errorf("no runs rendered as %q", b.String())
	}
	if got := timelinePath("docs/benchmarks.png"); got != "docs/benchmarks-timeline.svg" {
		t.Errorf("timelinePath: %s", got)
	}
}

func TestLatencyOptions(t *testing.T) {
	o, err := parseLatencyOptions("1, 7,42", "2,50", DefaultTimeScale)
	if err != nil || !slices.Equal(o.Seeds, []int64{1, 7, 42}) || !slices.Equal(o.Replicas, []int{2, 50}) {
		t.Errorf("parsed %+v, %v", o, err)
	}
	for _, bad := range [][2]string{{"1,x", "2"}, {"", "2"}, {"1", "0"}} {
		if _, err := parseLatencyOptions(bad[0], bad[1], DefaultTimeScale); err == nil {
			t.Errorf("seeds %q, replicas %q accepted", bad[0], bad[1])
		}
	}
	for _, scale := range []float64{0, -1, 2} {
		if _, err := parseLatencyOptions("1", "2", scale); err == nil {
			t.Errorf("time scale %g accepted", scale)
		}
	}
	in, err := latencyInput([]byte(`{"replicaCount":2,"poll":{"intervalSeconds":1,"maxPolls":{"imageAvailable":20}},"tags":{"trigger":"local"}}`), 50)
	if err != nil {
		t.Fatal(err)
	}
	// The local input's fast polls are gone (the defaults, in AWS seconds, apply);
	// the rest stays.
	if strings.Contains(in, `"poll"`) || !strings.Contains(in, `"replicaCount":50`) || !strings.Contains(in, `"maxReplicas":50`) || !strings.Contains(in, `"trigger":"local"`) {
		t.Errorf("input %s: want replicaCount and maxReplicas 50, the tags, and no poll", in)
	}
}

// The health check's figures are CreateLoadBalancer's.
func TestHealthCheckSettings(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../internal/stages/create_load_balancer.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		if v, ok := n.(*ast.ValueSpec); ok && len(v.Values) == len(v.Names) {
			for i, name := range v.Names {
				if lit, ok := v.Values[i].(*ast.BasicLit); ok {
					got[name.Name] = lit.Value
				}
			}
		}
		return true
	})
	if got["healthCheckIntervalSeconds"] != strconv.Itoa(targetHealthIntervalSeconds) || got["healthyThresholdCount"] != strconv.Itoa(targetHealthyThreshold) {
		t.Errorf("create_load_balancer.go has interval %q and threshold %q; the bench assumes %d and %d",
			got["healthCheckIntervalSeconds"], got["healthyThresholdCount"], targetHealthIntervalSeconds, targetHealthyThreshold)
	}
}

// The latency part's run names are their own run ids, up to large seeds and counts.
func TestLatencyRunNamesAreRunIDs(t *testing.T) {
	at := time.Date(2026, 12, 2, 23, 59, 59, 0, time.UTC)
	for _, name := range []string{latencyRunName(1, 2, at), latencyRunName(99, 200, at)} {
		if !pipeline.IsRunID(name) {
			t.Errorf("%s is not a run id: its resources would be named for a hash", name)
		}
	}
}
