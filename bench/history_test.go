package main

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/amifleet/amifleet/stepfunctions"
	"github.com/aws/aws-sdk-go-v2/aws"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// ev is a history event for tests: its type, its state for entered/exited events,
// and its time in seconds from t0.
type ev struct {
	typ   sfntypes.HistoryEventType
	state string
	at    float64
	prev  int64 // previousEventId; 0 means the event before
	rtype string
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func events(evs ...ev) []sfntypes.HistoryEvent {
	var out []sfntypes.HistoryEvent
	for i, e := range evs {
		id := int64(i + 1)
		prev := e.prev
		if prev == 0 {
			prev = id - 1
		}
		h := sfntypes.HistoryEvent{Id: id, PreviousEventId: prev, Type: e.typ, Timestamp: aws.Time(t0.Add(time.Duration(e.at * float64(time.Second))))}
		switch {
		case len(e.typ) > 12 && string(e.typ)[len(e.typ)-12:] == "StateEntered":
			h.StateEnteredEventDetails = &sfntypes.StateEnteredEventDetails{Name: aws.String(e.state)}
		case len(e.typ) > 11 && string(e.typ)[len(e.typ)-11:] == "StateExited":
			h.StateExitedEventDetails = &sfntypes.StateExitedEventDetails{Name: aws.String(e.state)}
		case e.typ == sfntypes.HistoryEventTypeTaskScheduled:
			rt := e.rtype
			if rt == "" {
				rt = "lambda"
			}
			h.TaskScheduledEventDetails = &sfntypes.TaskScheduledEventDetails{ResourceType: aws.String(rt), Resource: aws.String("invoke")}
		}
		out = append(out, h)
	}
	return out
}

const (
	taskEntered = sfntypes.HistoryEventTypeTaskStateEntered
	taskExited  = sfntypes.HistoryEventTypeTaskStateExited
	scheduled   = sfntypes.HistoryEventTypeTaskScheduled
	started     = sfntypes.HistoryEventTypeTaskStarted
	succeeded   = sfntypes.HistoryEventTypeTaskSucceeded
	failed      = sfntypes.HistoryEventTypeTaskFailed
)

// A small run: a task retried once, a wait loop polled twice, a non-Lambda task,
// and the execution's own events (which are not transitions).
func sampleRun() []sfntypes.HistoryEvent {
	return events(
		ev{typ: sfntypes.HistoryEventTypeExecutionStarted},
		ev{typ: taskEntered, state: "LaunchBase", at: 0},
		ev{typ: scheduled}, ev{typ: started}, ev{typ: failed},
		ev{typ: scheduled, prev: 2}, ev{typ: started}, ev{typ: succeeded},
		ev{typ: taskExited, state: "LaunchBase", at: 2},
		ev{typ: sfntypes.HistoryEventTypeWaitStateEntered, state: "WaitBaseStopped", at: 2},
		ev{typ: sfntypes.HistoryEventTypeWaitStateExited, state: "WaitBaseStopped", at: 3},
		ev{typ: taskEntered, state: "CheckBaseStopped", at: 3},
		ev{typ: scheduled}, ev{typ: started}, ev{typ: succeeded},
		ev{typ: taskExited, state: "CheckBaseStopped", at: 3.5},
		ev{typ: sfntypes.HistoryEventTypeChoiceStateEntered, state: "BaseStopped?", at: 3.5},
		ev{typ: sfntypes.HistoryEventTypeChoiceStateExited, state: "BaseStopped?", at: 3.5},
		ev{typ: sfntypes.HistoryEventTypeWaitStateEntered, state: "WaitBaseStopped", at: 3.5},
		ev{typ: sfntypes.HistoryEventTypeWaitStateExited, state: "WaitBaseStopped", at: 4.5},
		ev{typ: taskEntered, state: "CheckBaseStopped", at: 4.5},
		ev{typ: scheduled}, ev{typ: started}, ev{typ: succeeded},
		ev{typ: taskExited, state: "CheckBaseStopped", at: 5},
		ev{typ: taskEntered, state: "ScheduleTeardown", at: 5},
		ev{typ: scheduled, rtype: "states"}, ev{typ: succeeded},
		ev{typ: taskExited, state: "ScheduleTeardown", at: 5.5},
		ev{typ: sfntypes.HistoryEventTypeExecutionSucceeded, at: 5.5},
	)
}

func TestTransitionsAndTasks(t *testing.T) {
	evs := sampleRun()
	if got := Transitions(evs); got != 7 {
		t.Errorf("Transitions = %d, want 7 (LaunchBase, 2 waits, 2 checks, 1 choice, ScheduleTeardown)", got)
	}
	if got := ScheduledTasks(evs); got != 4 {
		t.Errorf("ScheduledTasks = %d, want 4 (two LaunchBase attempts, two checks; the states: task is no Lambda)", got)
	}
	tasks := map[string]string{"LaunchBase": "LaunchBase", "CheckBaseStopped": "CheckBaseStopped"}
	want := map[string]int{"LaunchBase": 2, "CheckBaseStopped": 2}
	if got := InvocationsByFunction(evs, tasks); !maps.Equal(got, want) {
		t.Errorf("InvocationsByFunction = %v, want %v", got, want)
	}
	// A schedule whose state cannot be told is not dropped.
	orphan := events(ev{typ: scheduled, prev: 99})
	if got := InvocationsByFunction(orphan, tasks); got["unknown"] != 1 {
		t.Errorf("an orphan schedule: %v, want unknown 1", got)
	}
	// The legacy integration (Resource: a function ARN) counts too.
	legacy := events(ev{typ: taskEntered, state: "LaunchBase"}, ev{typ: sfntypes.HistoryEventTypeLambdaFunctionScheduled})
	if got := ScheduledTasks(legacy); got != 1 {
		t.Errorf("LambdaFunctionScheduled: %d, want 1", got)
	}
}

func TestSpansAndStageSeconds(t *testing.T) {
	evs := sampleRun()
	got := spans(evs, t0)
	if len(got) != 7 {
		t.Fatalf("%d spans, want 7: %+v", len(got), got)
	}
	// Repeated entries of one state pair in order.
	var checks []Span
	for _, s := range got {
		if s.State == "CheckBaseStopped" {
			checks = append(checks, s)
		}
	}
	if len(checks) != 2 || checks[0].Start != 3 || checks[0].End != 3.5 || checks[1].Start != 4.5 || checks[1].End != 5 {
		t.Errorf("CheckBaseStopped spans = %+v, want 3–3.5 and 4.5–5", checks)
	}
	// A state never exited ends where it began.
	open := spans(events(ev{typ: sfntypes.HistoryEventTypeFailStateEntered, state: "Failed", at: 7}), t0)
	if len(open) != 1 || open[0].End != 7 {
		t.Errorf("unexited state: %+v", open)
	}
}

func TestBranchTimelineAndOverlap(t *testing.T) {
	p := Parallel{Name: "Both", Branches: [][]string{{"LaunchBase", "CreateImage"}, {"CreateLoadBalancer", "CheckLoadBalancerActive"}}}
	par := sfntypes.HistoryEventTypeParallelStateEntered
	parExit := sfntypes.HistoryEventTypeParallelStateExited
	evs := events(
		ev{typ: par, state: "Both", at: 1},
		ev{typ: taskEntered, state: "CreateLoadBalancer", at: 1.01},
		ev{typ: taskEntered, state: "LaunchBase", at: 1.02},
		ev{typ: taskExited, state: "CreateLoadBalancer", at: 1.5},
		ev{typ: taskEntered, state: "CheckLoadBalancerActive", at: 2.5},
		ev{typ: taskExited, state: "CheckLoadBalancerActive", at: 3},
		ev{typ: taskExited, state: "LaunchBase", at: 2},
		ev{typ: taskEntered, state: "CreateImage", at: 5},
		ev{typ: taskExited, state: "CreateImage", at: 6},
		ev{typ: taskEntered, state: "Elsewhere", at: 6},
		ev{typ: parExit, state: "Both", at: 6},
	)
	tl := BranchTimeline(evs, p, t0)
	if len(tl) != 5 {
		t.Fatalf("timeline has %d spans, want 5 (the Parallel and four branch states): %+v", len(tl), tl)
	}
	if tl[0].State != "Both" || tl[0].Branch != -1 || tl[0].Start != 1 || tl[0].End != 6 {
		t.Errorf("the Parallel's span = %+v", tl[0])
	}
	o := BranchOverlap(tl, 0, 1)
	if !o.Within || o.ImageStart != 1.02 || o.ImageEnd != 6 || o.ALBStart != 1.01 || o.ALBEnd != 3 {
		t.Errorf("overlap = %+v, want within, image 1.02–6, ALB 1.01–3", o)
	}

	tests := []struct {
		name     string
		timeline []Span
		within   bool
	}{
		{"sequential: ALB after the image", []Span{{"LaunchBase", 0, 0, 5}, {"CreateLoadBalancer", 1, 5, 8}}, false},
		{"ALB outlasts the image branch", []Span{{"LaunchBase", 0, 0, 5}, {"CreateLoadBalancer", 1, 0, 6}}, false},
		{"ALB starts 2 s before", []Span{{"LaunchBase", 0, 3, 9}, {"CreateLoadBalancer", 1, 1, 6}}, false},
		{"no ALB branch", []Span{{"LaunchBase", 0, 0, 5}}, false},
		{"inside", []Span{{"LaunchBase", 0, 0, 5}, {"CreateLoadBalancer", 1, 0.5, 4}}, true},
	}
	for _, tt := range tests {
		if got := BranchOverlap(tt.timeline, 0, 1).Within; got != tt.within {
			t.Errorf("%s: within = %v, want %v", tt.name, got, tt.within)
		}
	}
}

// The real Pipeline definition: every Lambda task maps to its function, and the
// Parallel's branches are the image and the load balancer.
func TestPipelineShape(t *testing.T) {
	def := stepfunctions.Pipeline()
	tasks, err := taskFunctions(def)
	if err != nil {
		t.Fatal(err)
	}
	for state, fn := range map[string]string{
		"CheckBaseStopped": "CheckBaseStopped", "CheckInstancesRunning": "CheckInstancesRunning",
		"LaunchBase": "LaunchBase", "CreateLoadBalancer": "CreateLoadBalancer", "Cleanup": "Cleanup",
	} {
		if tasks[state] != fn {
			t.Errorf("task %s calls %q, want %s", state, tasks[state], fn)
		}
	}
	if _, ok := tasks["ScheduleTeardown"]; ok {
		t.Error("ScheduleTeardown (states:startExecution) mapped to a Lambda")
	}
	p, err := parallelBranches(def)
	if err != nil {
		t.Fatal(err)
	}
	img, alb := p.branchOf(stateOf(tasks, "CreateImage")), p.branchOf(stateOf(tasks, "CreateLoadBalancer"))
	if len(p.Branches) != 2 || img < 0 || alb < 0 || img == alb {
		t.Fatalf("Parallel %q branches %v: image %d, ALB %d", p.Name, p.Branches, img, alb)
	}
	if !slices.Contains(p.Branches[img], "LaunchBase") || slices.Contains(p.Branches[alb], "LaunchBase") {
		t.Errorf("LaunchBase should be in the image branch only: %v", p.Branches)
	}
	if _, err := taskFunctions([]byte(`{"States":{"A":{"Type":"Pass"}}}`)); err == nil {
		t.Error("a machine with no Lambda task: want an error")
	}
	if _, err := parallelBranches([]byte(`{"States":{"A":{"Type":"Pass"}}}`)); err == nil {
		t.Error("a machine with no Parallel: want an error")
	}
}

func TestTaskSeconds(t *testing.T) {
	tasks := map[string]string{"LaunchBase": "LaunchBase", "CheckBaseStopped": "CheckBaseStopped"}
	got := TaskSeconds(sampleRun(), tasks)
	want := map[string]float64{"LaunchBase": 2, "CheckBaseStopped": 1}
	if !maps.Equal(got, want) {
		t.Errorf("TaskSeconds = %v, want %v (LaunchBase 0–2; two checks of 0.5 s)", got, want)
	}
	if got := TaskSeconds(nil, tasks); len(got) != 0 {
		t.Errorf("no events: %v", got)
	}
}
