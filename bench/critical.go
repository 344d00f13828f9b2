package main

// Part 6: a run under AWS's timing against its physical limit. With the local cloud's
// LatencyModel on, every modelled state change becomes visible only after a drawn AWS
// duration × TimeScale, and the gateway records each (LatencyRecord). From one run's
// record and history this file tells, in AWS seconds: the run's physical limit (its
// critical path with no poll slack), the run itself, and each wait's slack (the
// resource ready, the pipeline not yet knowing). Pure functions over the record, the
// history and the run's final document.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// The target group's health check, as CreateLoadBalancer sets it
// (internal/stages/create_load_balancer.go; a test holds the two together): a
// registered target is healthy after targetHealthyThreshold checks in a row, one every
// targetHealthIntervalSeconds. Nothing models it: it is the data plane's, and its
// physical minimum is threshold × interval after the target answers.
const (
	targetHealthIntervalSeconds = 5
	targetHealthyThreshold      = 2
)

// The kinds of a step of the limit's path.
const (
	// StepTask is a stage's Task, entered to exited, local time / TimeScale.
	StepTask = "task"
	// StepAWS is a modelled state change, its drawn AWS duration.
	StepAWS = "aws"
	// StepHealth is the health checks' minimum (threshold × interval).
	StepHealth = "health"
)

// The Parallel's branches, by what they make.
const (
	BranchImage        = "image"
	BranchLoadBalancer = "load balancer"
)

// PathStep is one step of the physical limit's critical path.
type PathStep struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Seconds float64 `json:"seconds"`
}

// WaitSlack is one wait's slack: from its resource being ready to the pipeline's
// check answering ready, in AWS seconds.
type WaitSlack struct {
	Wait    string  `json:"wait"`
	Seconds float64 `json:"seconds"`
	// Known is false when the record or the history lacks one of the two times.
	Known bool `json:"known"`
	// CheckSeconds is the ready check's own time, asked (TaskScheduled) to answered:
	// the part of Seconds that the local Lambda and moto took, which on AWS is a
	// fraction of a second.
	CheckSeconds float64 `json:"checkSeconds"`
	// Bound: the ready time is not recorded (target health), so Seconds is the
	// time from the check before the ready one (or from the loop's start): an upper
	// bound of the slack.
	Bound bool `json:"bound,omitempty"`
}

// LatencyRun is one run under the latency model, against its physical limit.
type LatencyRun struct {
	Replicas  int     `json:"replicas"`
	Seed      int64   `json:"seed"`
	Execution string  `json:"execution"`
	Status    string  `json:"status"`
	TimeScale float64 `json:"timeScale"`
	// LimitSeconds is the sum of Path; RunSeconds the execution's start to stop, local
	// time / TimeScale; Ratio the second over the first. All in AWS seconds.
	LimitSeconds float64    `json:"limitSeconds"`
	RunSeconds   float64    `json:"runSeconds"`
	Ratio        float64    `json:"ratio"`
	Path         []PathStep `json:"path"`
	// CriticalBranch is the Parallel's branch on the limit's path (BranchImage or
	// BranchLoadBalancer).
	CriticalBranch string `json:"criticalBranch"`
	// Slack has one entry per wait on the Pipeline's way, in pipeline order.
	Slack []WaitSlack `json:"slack"`
	// Transitions are the history's StateEntered events; LambdaInvocations its
	// Lambda task schedules.
	Transitions       int `json:"transitions"`
	LambdaInvocations int `json:"lambdaInvocations"`
	// Timeline is every state of the run, in AWS seconds from its start.
	Timeline []Span `json:"timeline"`
	// Missing names the modelled changes the record lacked: the limit counted them
	// as 0 s, and the slack of their wait is unknown.
	Missing []string `json:"missing,omitempty"`
}

// latencyWaits are the Pipeline's waits, in pipeline order (Cleanup's is not on a
// successful run's way).
var latencyWaits = []string{pipeline.WaitBaseStopped, pipeline.WaitImageAvailable, pipeline.WaitLoadBalancerActive, pipeline.WaitInstancesRunning, pipeline.WaitTargetsHealthy}

// AnalyzeLatencyRun measures one run against its physical limit from its history,
// its final document (which names the run's instances, image and load balancer:
// the record's keys) and the gateway's latency record; scale is the gateway's
// TimeScale. The record may hold other runs' changes: only those of this run's
// resources count.
//
// Local times (the Lambdas' and the interpreter's real time) are turned into AWS
// seconds like the modelled ones, / scale, for the run and for the limit alike, so
// that the ratio compares like with like; the Task steps of Path show how much of the
// limit that is.
func AnalyzeLatencyRun(events []sfntypes.HistoryEvent, doc pipeline.Document, record []localcloud.LatencyEvent, p Parallel, scale float64) (LatencyRun, error) {
	h, err := readHistory(events, scale)
	if err != nil {
		return LatencyRun{}, err
	}
	img, lb, fleet := doc.Resources.Image, doc.Resources.LoadBalancer, doc.Resources.Fleet
	if img == nil || lb == nil || fleet == nil {
		return LatencyRun{}, fmt.Errorf("the run's document names no image, load balancer or fleet: it did not get as far as its targets")
	}
	r := LatencyRun{
		Replicas:          doc.Config.ReplicaCount,
		TimeScale:         scale,
		RunSeconds:        h.runSeconds,
		Transitions:       h.transitions,
		LambdaInvocations: h.lambdaInvocations,
	}
	all := h.spans
	for _, s := range all {
		r.Timeline = append(r.Timeline, Span{State: s.State, Branch: p.branchOf(s.State), Start: s.Start / scale, End: s.End / scale})
	}
	steps := pathSteps{spans: all, record: record, scale: scale, missing: &r.Missing}
	task, change := steps.task, steps.change

	// The image branch: the base instance launched (LaunchBase's Task holds the
	// RunInstances answer), running, its user data, stopped; then the image.
	running, _ := change("base instance running", localcloud.OpInstanceRunning, img.BaseInstanceID)
	userData, _ := change("base user data done", localcloud.OpUserDataDone, img.BaseInstanceID)
	stopped, stoppedEv := change("base instance stopped", localcloud.OpInstanceStopped, img.BaseInstanceID)
	available, availableEv := change("image available", localcloud.OpImageAvailable, img.ImageID)
	imageBranch := []PathStep{task(pipeline.LaunchBase), running, userData, stopped, task(pipeline.CreateImage), available}
	// The load balancer branch: CreateLoadBalancer's Task holds the target group's
	// and the listener's answers; the load balancer provisions from its create.
	active, activeEv := change("load balancer active", localcloud.OpLoadBalancerActive, lb.LoadBalancerARN)
	lbBranch := []PathStep{task(pipeline.CreateLoadBalancer), active}

	path := []PathStep{task(pipeline.Validate), task(pipeline.CreateSecurityGroups)}
	if stepSeconds(imageBranch) >= stepSeconds(lbBranch) {
		path, r.CriticalBranch = append(path, imageBranch...), BranchImage
	} else {
		path, r.CriticalBranch = append(path, lbBranch...), BranchLoadBalancer
	}

	// The fleet: every registered instance LaunchReplicas launched (or started
	// again: the kept base instance, whose new changes the gateway keys
	// "<id>#start<n>"), running then booted; the slowest decides. Registration runs
	// once they are running, beside their boot.
	f := fleetTimesOf(events, record, fleet.InstanceIDs)
	r.Missing = append(r.Missing, f.missing...)
	path = append(path, f.steps(task(pipeline.LaunchReplicas), task(pipeline.RegisterTargets))...)
	path = append(path, healthStep(), task(pipeline.Verify))
	r.Path = path
	r.LimitSeconds, r.Ratio = limitOf(path, r.RunSeconds)

	// Each wait's slack: its resource's Ready to the ready check's answer.
	ready := map[string]localcloud.LatencyEvent{
		pipeline.WaitBaseStopped:        stoppedEv,
		pipeline.WaitImageAvailable:     availableEv,
		pipeline.WaitLoadBalancerActive: activeEv,
	}
	f.addReady(ready, record, lb.TargetGroupARN, fleet.InstanceIDs)
	r.Slack = waitSlacks(events, latencyWaits, ready, scale)
	return r, nil
}

// fleetTimes are a fleet's modelled start, in AWS seconds from each instance's
// launch: its slowest instance running, and its slowest booted (running + boot).
type fleetTimes struct {
	running, booted float64
	// ready is when the last instance was running (local time); known is false
	// when the record lacks an instance's changes, which missing names.
	ready   time.Time
	known   bool
	missing []string
}

// fleetTimesOf reads the fleet's instances' running and booted changes from the
// record: those LaunchReplicas launched (or started again: the kept base instance,
// whose new changes the gateway keys "<id>#start<n>") once it was entered.
func fleetTimesOf(events []sfntypes.HistoryEvent, record []localcloud.LatencyEvent, ids []string) fleetTimes {
	launched := stateEntered(events, pipeline.LaunchReplicas)
	fleetChange := func(op localcloud.LatencyOp, id string) (localcloud.LatencyEvent, bool) {
		for _, e := range record {
			if e.Op == op && (e.Key == id || strings.HasPrefix(e.Key, id+"#start")) && !e.Start.Before(launched) {
				return e, true
			}
		}
		return localcloud.LatencyEvent{}, false
	}
	f := fleetTimes{known: true}
	for _, id := range ids {
		run, okRun := fleetChange(localcloud.OpInstanceRunning, id)
		boot, okBoot := fleetChange(localcloud.OpBooted, id)
		if !okRun || !okBoot {
			f.known = false
			f.missing = append(f.missing, "running and booted of "+id)
			continue
		}
		f.running = max(f.running, run.AWS.Seconds())
		f.booted = max(f.booted, run.AWS.Seconds()+boot.AWS.Seconds())
		if run.Ready.After(f.ready) {
			f.ready = run.Ready
		}
	}
	return f
}

// steps are the limit's steps from LaunchReplicas to the fleet booted: its Task, the
// slowest instance running, then the longer of RegisterTargets' Task and the boot
// left after running.
func (f fleetTimes) steps(launch, register PathStep) []PathStep {
	out := []PathStep{launch, {Name: "instances running (slowest)", Kind: StepAWS, Seconds: f.running}}
	if register.Seconds > f.booted-f.running {
		return append(out, register)
	}
	return append(out, PathStep{Name: "instances booted (slowest)", Kind: StepAWS, Seconds: f.booted - f.running})
}

// healthStep is the health checks' minimum.
func healthStep() PathStep {
	return PathStep{Name: fmt.Sprintf("targets healthy (%d checks, %d s apart)", targetHealthyThreshold, targetHealthIntervalSeconds), Kind: StepHealth, Seconds: targetHealthyThreshold * targetHealthIntervalSeconds}
}

// addReady sets the ready times of the fleet's two waits: InstancesRunning when the
// last instance was running, if the record has them all; TargetsHealthy when the data
// plane's own health checks found the last of the fleet's targets healthy (measured),
// if the record has every one of them.
func (f fleetTimes) addReady(ready map[string]localcloud.LatencyEvent, record []localcloud.LatencyEvent, tgARN string, ids []string) {
	if f.known && !f.ready.IsZero() {
		ready[pipeline.WaitInstancesRunning] = localcloud.LatencyEvent{Ready: f.ready}
	}
	var healthyAt time.Time
	healthyKnown := len(ids) > 0
	for _, id := range ids {
		found := false
		for _, e := range record {
			if e.Op == localcloud.OpTargetHealthy && e.Key == tgARN+" "+id {
				found = true
				if e.Ready.After(healthyAt) {
					healthyAt = e.Ready
				}
			}
		}
		healthyKnown = healthyKnown && found
	}
	if healthyKnown {
		ready[pipeline.WaitTargetsHealthy] = localcloud.LatencyEvent{Ready: healthyAt}
	}
}

// waitSlacks is each of waits' slack: its resource's Ready (from ready) to the ready
// check's answer, in AWS seconds. TargetsHealthy without a ready time gets a bound.
func waitSlacks(events []sfntypes.HistoryEvent, waits []string, ready map[string]localcloud.LatencyEvent, scale float64) []WaitSlack {
	aw := func(d time.Duration) float64 { return d.Seconds() / scale }
	var out []WaitSlack
	for _, name := range waits {
		w, _ := pipeline.WaitNamed(name)
		notice, before, asked, ok := readyCheck(events, w)
		s := WaitSlack{Wait: name}
		if ok {
			s.CheckSeconds = aw(notice.Sub(asked))
		}
		switch e, rec := ready[name]; {
		case !ok:
		case rec && !e.Ready.IsZero():
			s.Seconds, s.Known = aw(notice.Sub(e.Ready)), true
		case name == pipeline.WaitTargetsHealthy:
			s.Seconds, s.Known, s.Bound = aw(notice.Sub(before)), true, true
		}
		out = append(out, s)
	}
	return out
}

// stepSeconds is the steps' total.
func stepSeconds(steps []PathStep) float64 {
	t := 0.0
	for _, s := range steps {
		t += s.Seconds
	}
	return t
}

// stateEntered is when state was first entered (the zero time if never).
func stateEntered(events []sfntypes.HistoryEvent, state string) time.Time {
	for _, e := range events {
		if e.StateEnteredEventDetails != nil && aws.ToString(e.StateEnteredEventDetails.Name) == state {
			return aws.ToTime(e.Timestamp)
		}
	}
	return time.Time{}
}

// readyCheck finds the first answer of w's check that says ready (the TaskSucceeded
// of its Task), when that check was asked (its TaskScheduled), and the time before
// it: the previous answer of the same check, or, for the first, when the loop began
// (its check or its Wait first entered, whichever came first).
func readyCheck(events []sfntypes.HistoryEvent, w pipeline.Wait) (notice, before, asked time.Time, ok bool) {
	names := stateOfEvents(events)
	before = stateEntered(events, w.Check)
	if wait := stateEntered(events, w.WaitState()); !wait.IsZero() && (before.IsZero() || wait.Before(before)) {
		before = wait
	}
	for _, e := range events {
		if names[e.Id] != w.Check {
			continue
		}
		if e.Type == sfntypes.HistoryEventTypeTaskScheduled {
			asked = aws.ToTime(e.Timestamp)
		}
		if e.Type != sfntypes.HistoryEventTypeTaskSucceeded || e.TaskSucceededEventDetails == nil {
			continue
		}
		at := aws.ToTime(e.Timestamp)
		if pollReady(aws.ToString(e.TaskSucceededEventDetails.Output), w.Key()) {
			return at, before, asked, true
		}
		before = at
	}
	return time.Time{}, time.Time{}, time.Time{}, false
}

// pollReady reads polls.<key>.ready from a check Task's output: the lambda:invoke
// answer ({"Payload": document, ...}) or the document itself.
func pollReady(output, key string) bool {
	var doc struct {
		Payload *struct {
			Polls map[string]pipeline.PollResult `json:"polls"`
		} `json:"Payload"`
		Polls map[string]pipeline.PollResult `json:"polls"`
	}
	if json.Unmarshal([]byte(output), &doc) != nil {
		return false
	}
	if doc.Payload != nil {
		return doc.Payload.Polls[key].Ready
	}
	return doc.Polls[key].Ready
}

// criticalStates are the states of the run on the limit's critical path: all but
// the Parallel and the branch off it.
func criticalStates(r LatencyRun, p Parallel, imageBranch, lbBranch int) map[string]bool {
	off := lbBranch
	if r.CriticalBranch == BranchLoadBalancer {
		off = imageBranch
	}
	out := map[string]bool{}
	for _, s := range r.Timeline {
		if s.State != p.Name && !(off >= 0 && off < len(p.Branches) && slices.Contains(p.Branches[off], s.State)) {
			out[s.State] = true
		}
	}
	return out
}

// historyFigures are what an analysed execution reports from its history alone.
type historyFigures struct {
	// runSeconds is the execution's start to stop, local time / scale.
	runSeconds                     float64
	transitions, lambdaInvocations int
	// spans are its states', in local seconds from its start.
	spans []Span
}

// readHistory reads historyFigures from a non-empty history, on a positive scale.
func readHistory(events []sfntypes.HistoryEvent, scale float64) (historyFigures, error) {
	if len(events) == 0 {
		return historyFigures{}, fmt.Errorf("no history")
	}
	if scale <= 0 {
		return historyFigures{}, fmt.Errorf("time scale %g is not positive", scale)
	}
	start := aws.ToTime(events[0].Timestamp)
	return historyFigures{
		runSeconds:        aws.ToTime(events[len(events)-1].Timestamp).Sub(start).Seconds() / scale,
		transitions:       Transitions(events),
		lambdaInvocations: ScheduledTasks(events),
		spans:             spans(events, start),
	}, nil
}

// limitOf is a critical path's sum, and run / that sum (0 when the path is empty).
func limitOf(path []PathStep, runSeconds float64) (limit, ratio float64) {
	limit = stepSeconds(path)
	if limit > 0 {
		ratio = runSeconds / limit
	}
	return limit, ratio
}

// pathSteps reads the steps of a critical path: a Task state's time from the
// execution's spans (local seconds, scaled back to AWS's), and an AWS change's from
// the latency record, noting in missing a change the record lacks.
type pathSteps struct {
	spans   []Span
	record  []localcloud.LatencyEvent
	scale   float64
	missing *[]string
}

// task is the state's Task time, all its calls added up.
func (p pathSteps) task(state string) PathStep {
	sec := 0.0
	for _, s := range p.spans {
		if s.State == state {
			sec += s.End - s.Start
		}
	}
	return PathStep{Name: state, Kind: StepTask, Seconds: sec / p.scale}
}

// change is the modelled time of one change of the resource key, and its event.
func (p pathSteps) change(name string, op localcloud.LatencyOp, key string) (PathStep, localcloud.LatencyEvent) {
	i := slices.IndexFunc(p.record, func(e localcloud.LatencyEvent) bool { return e.Op == op && e.Key == key })
	var e localcloud.LatencyEvent
	if i >= 0 {
		e = p.record[i]
	} else {
		*p.missing = append(*p.missing, fmt.Sprintf("%s of %s", op, key))
	}
	return PathStep{Name: name, Kind: StepAWS, Seconds: e.AWS.Seconds()}, e
}
