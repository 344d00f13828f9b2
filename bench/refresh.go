package main

// Part 7, measured: a Refresh under AWS's timing. After a Pipeline run under the
// latency model (part 6's, for each seed and replica count), one Refresh of that run
// with the default input ({"runId": ...}): a new base instance and image, a new
// generation of replicas behind the same load balancer, healthy, committed, then the
// old generation drained and terminated (PruneGenerations). Its time, against its
// physical limit read from the same record, its waits' slack, its transitions and
// Lambda invocations; the figures go to results.json's "refresh", and section 7 of
// docs/benchmarks.md.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/stepfunctions"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// deregistrationDelaySeconds is the target group's deregistration delay, as
// CreateLoadBalancer sets it (internal/stages/create_load_balancer.go; a test holds
// the two together): a deregistered target drains for this long before PruneGenerations
// may terminate its instance. Nothing models it: the data plane waits it out.
const deregistrationDelaySeconds = 30

// StepDrain is a step of the limit that is the deregistration delay.
const StepDrain = "drain"

// refreshWaits are the Refresh's waits on a successful refresh's way, in order.
var refreshWaits = []string{pipeline.WaitBaseStopped, pipeline.WaitImageAvailable, pipeline.WaitInstancesRunning, pipeline.WaitTargetsHealthy, pipeline.WaitGenerationsPruned}

// RefreshResults are part 7's figures.
type RefreshResults struct {
	Measured  time.Time `json:"measured"`
	TimeScale float64   `json:"timeScale"`
	// Input is each refresh's input, with the run id left out.
	Input string       `json:"input"`
	Runs  []RefreshRun `json:"runs"`
}

// RefreshRun is one Refresh under the latency model, against its physical limit.
type RefreshRun struct {
	Replicas  int    `json:"replicas"`
	Seed      int64  `json:"seed"`
	Execution string `json:"execution"`
	// Run is the run refreshed; PipelineSeconds the Pipeline run's own time, in AWS
	// seconds, for comparison.
	Run             string  `json:"run"`
	PipelineSeconds float64 `json:"pipelineSeconds"`
	Status          string  `json:"status"`
	TimeScale       float64 `json:"timeScale"`
	// LimitSeconds is the sum of Path; RunSeconds the execution's start to stop,
	// local time / TimeScale; Ratio the second over the first. All in AWS seconds.
	LimitSeconds float64    `json:"limitSeconds"`
	RunSeconds   float64    `json:"runSeconds"`
	Ratio        float64    `json:"ratio"`
	Path         []PathStep `json:"path"`
	// Slack has one entry per wait of refreshWaits.
	Slack []WaitSlack `json:"slack"`
	// Transitions are the history's StateEntered events; LambdaInvocations its
	// Lambda task schedules.
	Transitions       int `json:"transitions"`
	LambdaInvocations int `json:"lambdaInvocations"`
	// OldInstances is how many instances of the old generation were pruned.
	OldInstances int `json:"oldInstances"`
	// Missing names what the record or the history lacked: the limit counted it as
	// 0 s, and the slack of its wait is unknown.
	Missing []string `json:"missing,omitempty"`
}

// AnalyzeRefreshRun measures one successful Refresh against its physical limit from
// its history, its final document (which names the new generation's base instance,
// image and fleet, the target group, and the old generation's instances) and the
// gateway's latency record (which may hold other changes: only those of the
// refresh's resources, and the old instances' terminations, count); scale is the
// gateway's TimeScale.
//
// The limit is the refresh's critical path with no poll slack: PrepareRefresh; the
// new base instance (LaunchBase, running, user data, stopped), CreateImage and the
// image available; LaunchReplicas and its slowest instance running, then the longer of
// its boot and RegisterTargets; the health checks' minimum; Verify and
// CommitGeneration; then the prune: the PruneGenerations call that deregistered the
// old targets, their deregistration delay, the call that terminated their instances,
// and the slowest of those terminated. Each Task counts once, entered to exited.
func AnalyzeRefreshRun(events []sfntypes.HistoryEvent, doc pipeline.Document, record []localcloud.LatencyEvent, scale float64) (RefreshRun, error) {
	h, err := readHistory(events, scale)
	if err != nil {
		return RefreshRun{}, err
	}
	img, lb, fleet := doc.Resources.Image, doc.Resources.LoadBalancer, doc.Resources.Fleet
	if img == nil || lb == nil || fleet == nil || doc.Refresh == nil {
		return RefreshRun{}, fmt.Errorf("the refresh's document names no image, load balancer, fleet or old generation: it did not get as far as its targets")
	}
	start := aws.ToTime(events[0].Timestamp)
	r := RefreshRun{
		Replicas:          doc.Config.ReplicaCount,
		TimeScale:         scale,
		RunSeconds:        h.runSeconds,
		Transitions:       h.transitions,
		LambdaInvocations: h.lambdaInvocations,
		OldInstances:      len(doc.Refresh.From.InstanceIDs),
	}
	all := h.spans
	steps := pathSteps{spans: all, record: record, scale: scale, missing: &r.Missing}
	task, change := steps.task, steps.change

	running, _ := change("base instance running", localcloud.OpInstanceRunning, img.BaseInstanceID)
	userData, _ := change("base user data done", localcloud.OpUserDataDone, img.BaseInstanceID)
	stopped, stoppedEv := change("base instance stopped", localcloud.OpInstanceStopped, img.BaseInstanceID)
	available, availableEv := change("image available", localcloud.OpImageAvailable, img.ImageID)
	path := []PathStep{task(pipeline.PrepareRefresh), task(pipeline.LaunchBase), running, userData, stopped, task(pipeline.CreateImage), available}

	f := fleetTimesOf(events, record, fleet.InstanceIDs)
	r.Missing = append(r.Missing, f.missing...)
	path = append(path, f.steps(task(pipeline.LaunchReplicas), task(pipeline.RegisterTargets))...)
	path = append(path, healthStep(), task(pipeline.Verify), task(pipeline.CommitGeneration))

	// The prune: its first call deregisters the old targets; once they have drained,
	// a later call terminates their instances (the one whose time holds the first of
	// their terminations).
	var prunes []Span
	for _, s := range all {
		if s.State == pipeline.PruneGenerations {
			prunes = append(prunes, s)
		}
	}
	var terminated, firstTerm time.Time
	slowest, termKnown := 0.0, len(doc.Refresh.From.InstanceIDs) > 0
	for _, id := range doc.Refresh.From.InstanceIDs {
		i := slices.IndexFunc(record, func(e localcloud.LatencyEvent) bool { return e.Op == localcloud.OpInstanceTerminated && e.Key == id })
		if i < 0 {
			r.Missing = append(r.Missing, fmt.Sprintf("%s of %s", localcloud.OpInstanceTerminated, id))
			termKnown = false
			continue
		}
		e := record[i]
		slowest = max(slowest, e.AWS.Seconds())
		if e.Ready.After(terminated) {
			terminated = e.Ready
		}
		if firstTerm.IsZero() || e.Start.Before(firstTerm) {
			firstTerm = e.Start
		}
	}
	deregister := PathStep{Name: pipeline.PruneGenerations + " (deregisters)", Kind: StepTask}
	if len(prunes) > 0 {
		deregister.Seconds = (prunes[0].End - prunes[0].Start) / scale
	} else {
		r.Missing = append(r.Missing, "the PruneGenerations call that deregistered")
	}
	terminate := PathStep{Name: pipeline.PruneGenerations + " (terminates)", Kind: StepTask}
	at := firstTerm.Sub(start).Seconds()
	if i := slices.IndexFunc(prunes, func(s Span) bool { return !firstTerm.IsZero() && s.Start <= at && at <= s.End }); i >= 0 {
		terminate.Seconds = (prunes[i].End - prunes[i].Start) / scale
	} else {
		r.Missing = append(r.Missing, "the PruneGenerations call that terminated")
	}
	path = append(path, deregister,
		PathStep{Name: fmt.Sprintf("old targets drained (deregistration delay, %d s)", deregistrationDelaySeconds), Kind: StepDrain, Seconds: deregistrationDelaySeconds},
		terminate,
		PathStep{Name: "old instances terminated (slowest)", Kind: StepAWS, Seconds: slowest})
	r.Path = path
	r.LimitSeconds, r.Ratio = limitOf(path, r.RunSeconds)

	ready := map[string]localcloud.LatencyEvent{
		pipeline.WaitBaseStopped:    stoppedEv,
		pipeline.WaitImageAvailable: availableEv,
	}
	f.addReady(ready, record, lb.TargetGroupARN, fleet.InstanceIDs)
	if termKnown {
		ready[pipeline.WaitGenerationsPruned] = localcloud.LatencyEvent{Ready: terminated}
	}
	r.Slack = waitSlacks(events, refreshWaits, ready, scale)
	return r, nil
}

// refreshInput is the Refresh's default input for runID.
func refreshInput(runID string) string {
	b, _ := json.Marshal(pipeline.RefreshInput{RunID: runID})
	return string(b)
}

// measureRefresh runs, for each seed and replica count, a Pipeline run under the
// latency model, then one Refresh of it, then its Teardown.
func measureRefresh(ctx context.Context, root string, o LatencyOptions, lenient string, logw io.Writer) (*RefreshResults, error) {
	local, err := os.ReadFile(filepath.Join(root, "events", "local-input.json"))
	if err != nil {
		return nil, err
	}
	branches, err := parallelBranches(stepfunctions.Pipeline())
	if err != nil {
		return nil, err
	}
	// Both generations run side by side for a while: room for twice the largest fleet.
	counts := slices.Clone(o.Replicas)
	counts = append(counts, slices.Max(o.Replicas))
	progressf("bringing the local cloud up with AWS's timing (seed %d, time scale %g) for refreshes", o.Seeds[0], o.TimeScale)
	c, stack, err := upBenchCloud(ctx, localcloud.Options{Root: root, LogWriter: logw, Lenient: lenient,
		TimeScale: o.TimeScale, Latency: localcloud.AWSLatency(o.Seeds[0])}, counts)
	if err != nil {
		return nil, err
	}
	defer c.Down()
	res := &RefreshResults{Measured: time.Now().UTC(), TimeScale: o.TimeScale, Input: refreshInput("<run>")}
	sfnc := sfn.NewFromConfig(c.DirectConfig(c.Region))
	for _, seed := range o.Seeds {
		if err := c.Gateway.SetLatency(localcloud.AWSLatency(seed)); err != nil {
			return res, err
		}
		for _, n := range o.Replicas {
			p, doc, err := latencyPipelineRun(ctx, c, sfnc, stack, local, branches, seed, n, o.TimeScale)
			if err != nil {
				return res, err
			}
			runID, _ := pipeline.RunIDFromExecutionName(p.Execution)
			name := pipeline.RefreshExecutionName(runID, time.Now())
			progressf("refresh %s: %d replicas, seed %d", name, n, seed)
			// The record keeps the run's changes: the refresh's are told apart by
			// their resources.
			desc, events, err := execute(ctx, sfnc, stack.RefreshARN, name, refreshInput(runID))
			if err != nil {
				return res, err
			}
			if desc.Status != sfntypes.ExecutionStatusSucceeded {
				return res, fmt.Errorf("refresh %s: %s: %s: %s", name, desc.Status, aws.ToString(desc.Error), aws.ToString(desc.Cause))
			}
			var after pipeline.Document
			if desc.Output != nil {
				_ = json.Unmarshal([]byte(*desc.Output), &after)
			}
			r, err := AnalyzeRefreshRun(events, after, c.Gateway.LatencyRecord(), o.TimeScale)
			if err != nil {
				return res, fmt.Errorf("refresh %s: %w", name, err)
			}
			r.Seed, r.Execution, r.Run, r.Status, r.PipelineSeconds = seed, name, runID, string(desc.Status), p.RunSeconds
			res.Runs = append(res.Runs, r)
			progressf("refresh %s: %.0f s, limit %.0f s (AWS seconds), ratio %.2f, %d transitions", name, r.RunSeconds, r.LimitSeconds, r.Ratio, r.Transitions)
			if err := teardownRun(ctx, sfnc, stack, p.Execution, doc); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// minMax says "min–max" of xs with format f, or the one value.
func minMax(f string, xs []float64) string {
	if len(xs) == 0 {
		return "n/a"
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	if fmt.Sprintf(f, lo) == fmt.Sprintf(f, hi) {
		return fmt.Sprintf(f, lo)
	}
	return fmt.Sprintf(f+"–"+f, lo, hi)
}

func renderRefresh(w func(string, ...any), l *RefreshResults) {
	w("\n## 7. A refresh under AWS's timing (*measured* on a scaled clock)\n\n")
	if l == nil || len(l.Runs) == 0 {
		w("Not measured yet: `go run ./bench -parts refresh` runs the pipeline under AWS's timing, as in section 6, then one Refresh of each run (docs/refresh.md).\n")
		return
	}
	w("Measured %s UTC, in the local cloud of section 6 (the same model, the clock %g times AWS's). ", l.Measured.Format("2006-01-02 15:04"), l.TimeScale)
	w("For each seed and replica count, a Pipeline run with section 6's input, then, once it had succeeded, one Refresh of it with the default input `%s` (the run's own configuration; the latest image), then the run's Teardown. ", l.Input)
	w("A refresh bakes a new base instance and image, launches the new generation behind the same load balancer, waits until it is healthy, verifies and commits it, then deregisters the old generation's targets, waits out their deregistration delay (%d s) and terminates their instances (PruneGenerations, in its wait loop).\n\n", deregistrationDelaySeconds)
	w("All figures are AWS seconds: local time / %g. *Refresh* is the execution's start to stop. ", l.TimeScale)
	w("*Limit* is its physical limit, its critical path with no poll slack, read from the drawn latencies as section 6's is: PrepareRefresh; LaunchBase, the new base instance running, its user data done, stopped; CreateImage, the image available; ")
	w("LaunchReplicas and its slowest instance running, then the longer of that instance's boot and RegisterTargets; the health checks' minimum (%d checks %d s apart); Verify and CommitGeneration; ", targetHealthyThreshold, targetHealthIntervalSeconds)
	w("then the prune: the PruneGenerations call that deregistered the old targets, the %d s deregistration delay (the data plane waits it out: never shorter), the PruneGenerations call that terminated the old instances, and the slowest of them terminated. ", deregistrationDelaySeconds)
	w("Each Task counts once, entered to exited, its local time scaled like the refresh's. Not in the limit: the deletion of the old image and its snapshots (not modelled: at once), and PruneGenerations' second clean look a poll interval after the first (its guard against a create still in flight), which is in the GenerationsPruned slack. ")
	w("*Slack* is, per wait, from the resource being ready to the check that answered ready (as in section 6; for GenerationsPruned, from the last old instance terminated to PruneGenerations answering ready). ")
	w("*Transitions* are StateEntered events and *Lambda invocations* the history's Lambda task schedules, counted as for the Pipeline's runs; *pipeline run* is the refreshed run's own time, for comparison.\n\n")

	runs := slices.Clone(l.Runs)
	slices.SortStableFunc(runs, func(a, b RefreshRun) int {
		if a.Replicas != b.Replicas {
			return a.Replicas - b.Replicas
		}
		return int(a.Seed - b.Seed)
	})
	type group struct {
		replicas int
		runs     []RefreshRun
	}
	var groups []group
	for _, r := range runs {
		if len(groups) == 0 || groups[len(groups)-1].replicas != r.Replicas {
			groups = append(groups, group{replicas: r.Replicas})
		}
		groups[len(groups)-1].runs = append(groups[len(groups)-1].runs, r)
	}
	pick := func(rs []RefreshRun, f func(RefreshRun) float64) []float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return xs
	}
	refreshSec := func(r RefreshRun) float64 { return r.RunSeconds }
	limitSec := func(r RefreshRun) float64 { return r.LimitSeconds }
	ratio := func(r RefreshRun) float64 { return r.Ratio }
	trans := func(r RefreshRun) float64 { return float64(r.Transitions) }
	inv := func(r RefreshRun) float64 { return float64(r.LambdaInvocations) }
	pipe := func(r RefreshRun) float64 { return r.PipelineSeconds }

	w("Per replica count, the median over the seeds, and in parentheses the range (min–max):\n\n")
	w("| replicas | refreshes | refresh (s) | limit (s) | ratio | transitions | Lambda invocations | pipeline run (s) |\n|---|---|---|---|---|---|---|---|\n")
	for _, g := range groups {
		cell := func(f func(RefreshRun) float64, format string) string {
			xs := pick(g.runs, f)
			return fmt.Sprintf(format+" (%s)", median(xs), minMax(format, xs))
		}
		w("| %d | %d | %s | %s | %s | %s | %s | %s |\n", g.replicas, len(g.runs), cell(refreshSec, "%.0f"), cell(limitSec, "%.0f"), cell(ratio, "%.2f"),
			cell(trans, "%.0f"), cell(inv, "%.0f"), cell(pipe, "%.0f"))
	}

	w("\nEach refresh, with each wait's slack (in parentheses, the ready check's own time, asked to answered):\n\n")
	w("| replicas | seed | limit (s) | refresh (s) | ratio |")
	for _, name := range refreshWaits {
		w(" slack %s (s) |", name)
	}
	w(" transitions | Lambda invocations | old instances pruned |\n|---|---|---|---|---|%s---|---|---|\n", strings.Repeat("---|", len(refreshWaits)))
	for _, g := range groups {
		var lists [][]WaitSlack
		for _, r := range g.runs {
			w("| %d | %d | %.0f | %.0f | %.2f |", r.Replicas, r.Seed, r.LimitSeconds, r.RunSeconds, r.Ratio)
			for _, name := range refreshWaits {
				w(" %s |", slackCell(slackNamed(r.Slack, name)))
			}
			w(" %d | %d | %d |\n", r.Transitions, r.LambdaInvocations, r.OldInstances)
			lists = append(lists, r.Slack)
		}
		w("| **%d** | **median** | %.0f | %.0f | %.2f |", g.replicas, median(pick(g.runs, limitSec)), median(pick(g.runs, refreshSec)), median(pick(g.runs, ratio)))
		for _, name := range refreshWaits {
			w(" %s |", slackCell(medianOfSlacks(lists, name)))
		}
		w(" %.0f | %.0f | |\n", median(pick(g.runs, trans)), median(pick(g.runs, inv)))
	}
	missing := missingOf(runs, func(r RefreshRun) []string { return r.Missing })
	if len(missing) > 0 {
		w("\nThe record or the history lacked %d step(s) (counted as 0 s in the limit, their wait's slack n/a), e.g. %s.\n", len(missing), missing[0])
	}
	r := runs[0]
	w("\nThe limit of the %d-replica refresh of seed %d, step by step:\n\n| step of the limit | kind | AWS s |\n|---|---|---|\n", r.Replicas, r.Seed)
	for _, s := range r.Path {
		w("| %s | %s | %.1f |\n", s.Name, s.Kind, s.Seconds)
	}
	w("| **limit** | | **%.1f** |\n", r.LimitSeconds)
}
