package main

// Part 6, measured: pipeline runs in a local cloud that keeps AWS's timing
// (localcloud.AWSLatency) on a scaled clock, for a few replica counts and seeds, each
// against its physical limit (critical.go), and the table and timeline of
// docs/benchmarks.md.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/stepfunctions"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// DefaultTimeScale runs AWS's timing 4 times faster: the modelled changes, the
// health checks, and the executions' Wait states and Retry intervals alike (the
// local cloud scales them with a latency model on). What runs in local real time,
// the Lambdas and the interpreter's transitions, reads 4 times longer in AWS
// seconds: a 0.3 s check is 1.2 s of a wait's slack. A faster clock inflates them
// more; a slower one makes the bench longer (a 6-minute AWS run takes 1.5 minutes).
const DefaultTimeScale = 0.25

// LatencyResults are part 6's figures.
type LatencyResults struct {
	Measured  time.Time `json:"measured"`
	TimeScale float64   `json:"timeScale"`
	// Input is the 2-replica run's input (the others differ in replicaCount alone).
	Input       string       `json:"input"`
	Parallel    Parallel     `json:"parallel"`
	ImageBranch int          `json:"imageBranch"`
	ALBBranch   int          `json:"albBranch"`
	Runs        []LatencyRun `json:"runs"`
}

// LatencyOptions are the flags of part 6.
type LatencyOptions struct {
	Seeds     []int64
	Replicas  []int
	TimeScale float64
}

// parseSeeds reads a comma-separated list of seeds.
func parseSeeds(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("-latency-seeds: %q is not a seed", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseLatencyOptions checks part 6's flags.
func parseLatencyOptions(seeds, replicas string, scale float64) (LatencyOptions, error) {
	o := LatencyOptions{TimeScale: scale}
	if !(scale > 0 && scale <= 1) {
		return o, fmt.Errorf("-time-scale: %g is not in (0, 1]", scale)
	}
	var err error
	if o.Seeds, err = parseSeeds(seeds); err != nil {
		return o, err
	}
	if o.Replicas, err = parseReplicas(replicas); err != nil {
		return o, fmt.Errorf("-latency-replicas: %w", err)
	}
	return o, nil
}

// latencyInput is events/local-input.json with the replica count set and the
// default poll settings (its own, for the local cloud without a model, removed):
// the waits are AWS seconds, which the local cloud scales.
func latencyInput(local []byte, replicas int) (string, error) {
	var in map[string]any
	if err := json.Unmarshal(local, &in); err != nil {
		return "", fmt.Errorf("events/local-input.json: %w", err)
	}
	in["replicaCount"] = replicas
	in["maxReplicas"] = max(replicas, pipeline.DefaultMaxReplicas)
	delete(in, "poll")
	b, err := json.Marshal(in)
	return string(b), err
}

func measureLatency(ctx context.Context, root string, o LatencyOptions, lenient string, logw io.Writer) (*LatencyResults, error) {
	local, err := os.ReadFile(filepath.Join(root, "events", "local-input.json"))
	if err != nil {
		return nil, err
	}
	def := stepfunctions.Pipeline()
	tasks, err := taskFunctions(def)
	if err != nil {
		return nil, err
	}
	branches, err := parallelBranches(def)
	if err != nil {
		return nil, err
	}
	progressf("bringing the local cloud up with AWS's timing (seed %d, time scale %g)", o.Seeds[0], o.TimeScale)
	c, stack, err := upBenchCloud(ctx, localcloud.Options{Root: root, LogWriter: logw, Lenient: lenient,
		TimeScale: o.TimeScale, Latency: localcloud.AWSLatency(o.Seeds[0])}, o.Replicas)
	if err != nil {
		return nil, err
	}
	defer c.Down()
	res := &LatencyResults{Measured: time.Now().UTC(), TimeScale: o.TimeScale, Parallel: branches,
		ImageBranch: branches.branchOf(stateOf(tasks, pipeline.CreateImage)), ALBBranch: branches.branchOf(stateOf(tasks, pipeline.CreateLoadBalancer))}
	if res.Input, err = latencyInput(local, 2); err != nil {
		return nil, err
	}
	sfnc := sfn.NewFromConfig(c.DirectConfig(c.Region))
	for _, seed := range o.Seeds {
		if err := c.Gateway.SetLatency(localcloud.AWSLatency(seed)); err != nil {
			return res, err
		}
		for _, n := range o.Replicas {
			r, doc, err := latencyPipelineRun(ctx, c, sfnc, stack, local, branches, seed, n, o.TimeScale)
			if err != nil {
				return res, err
			}
			res.Runs = append(res.Runs, r)
			if err := teardownRun(ctx, sfnc, stack, r.Execution, doc); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// latencyPipelineRun runs the Pipeline once under the gateway's latency model with
// n replicas, and measures it against its physical limit; it returns the run's
// final document, for its Teardown. A run that does not succeed is an error.
func latencyPipelineRun(ctx context.Context, c *localcloud.Cloud, sfnc *sfn.Client, stack localcloud.Stack, local []byte, branches Parallel, seed int64, n int, scale float64) (LatencyRun, pipeline.Document, error) {
	var doc pipeline.Document
	input, err := latencyInput(local, n)
	if err != nil {
		return LatencyRun{}, doc, err
	}
	name := latencyRunName(seed, n, time.Now())
	progressf("run %s: %d replicas, seed %d", name, n, seed)
	c.Gateway.ResetLatencyRecord()
	desc, events, err := execute(ctx, sfnc, stack.PipelineARN, name, input)
	if err != nil {
		return LatencyRun{}, doc, err
	}
	if desc.Output != nil {
		_ = json.Unmarshal([]byte(*desc.Output), &doc)
	}
	if desc.Status != sfntypes.ExecutionStatusSucceeded {
		return LatencyRun{}, doc, fmt.Errorf("run %s: %s: %s: %s", name, desc.Status, aws.ToString(desc.Error), aws.ToString(desc.Cause))
	}
	r, err := AnalyzeLatencyRun(events, doc, c.Gateway.LatencyRecord(), branches, scale)
	if err != nil {
		return LatencyRun{}, doc, fmt.Errorf("run %s: %w", name, err)
	}
	r.Seed, r.Execution, r.Status = seed, name, string(desc.Status)
	progressf("run %s: run %.0f s, limit %.0f s (AWS seconds), ratio %.2f", name, r.RunSeconds, r.LimitSeconds, r.Ratio)
	return r, doc, nil
}

// teardownRun tears the run of the Pipeline execution name down with the Teardown
// state machine.
func teardownRun(ctx context.Context, sfnc *sfn.Client, stack localcloud.Stack, name string, doc pipeline.Document) error {
	runID, _ := pipeline.RunIDFromExecutionName(name)
	td, _ := json.Marshal(pipeline.TeardownInput{RunID: runID, Config: &doc.Config})
	if _, _, err := execute(ctx, sfnc, stack.TeardownARN, "teardown-"+runID, string(td)); err != nil {
		return fmt.Errorf("teardown of %s: %w", runID, err)
	}
	return nil
}

// timelineRun is the run the document draws: the first 2-replica run (or the first).
func timelineRun(l *LatencyResults) (LatencyRun, bool) {
	if l == nil || len(l.Runs) == 0 {
		return LatencyRun{}, false
	}
	for _, r := range l.Runs {
		if r.Replicas == 2 {
			return r, true
		}
	}
	return l.Runs[0], true
}

// slackCell is one wait's slack for the table, with the ready check's own time in
// parentheses: "n/a" when unknown, "≤ x" for a bound.
func slackCell(s WaitSlack) string {
	switch {
	case !s.Known:
		return "n/a"
	case s.Bound:
		return fmt.Sprintf("≤ %.1f (%.1f)", s.Seconds, s.CheckSeconds)
	}
	return fmt.Sprintf("%.1f (%.1f)", s.Seconds, s.CheckSeconds)
}

// medianSlack is the median of the known slacks of wait in runs (a bound if any is).
func medianSlack(runs []LatencyRun, wait string) WaitSlack {
	var lists [][]WaitSlack
	for _, r := range runs {
		lists = append(lists, r.Slack)
	}
	return medianOfSlacks(lists, wait)
}

// slackNamed is the slack of wait in list, unknown when the list has none.
func slackNamed(list []WaitSlack, wait string) WaitSlack {
	if i := slices.IndexFunc(list, func(s WaitSlack) bool { return s.Wait == wait }); i >= 0 {
		return list[i]
	}
	return WaitSlack{Wait: wait}
}

// missingOf is every run's missing steps, each once, in the order first met.
func missingOf[R any](runs []R, missing func(R) []string) []string {
	var out []string
	for _, r := range runs {
		for _, m := range missing(r) {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// medianOfSlacks is the median of the known slacks of wait in lists, one list per
// run (a bound if any is).
func medianOfSlacks(lists [][]WaitSlack, wait string) WaitSlack {
	out := WaitSlack{Wait: wait}
	var xs, checks []float64
	for _, list := range lists {
		for _, s := range list {
			if s.Wait == wait && s.Known {
				xs, checks = append(xs, s.Seconds), append(checks, s.CheckSeconds)
				out.Bound = out.Bound || s.Bound
			}
		}
	}
	out.Seconds, out.CheckSeconds, out.Known = median(xs), median(checks), len(xs) > 0
	return out
}

// firstWaits says each wait's first wait: "baseStopped 45 s, ...".
func firstWaits(p pipeline.PollConfig) string {
	var out []string
	for _, w := range pipeline.Waits {
		out = append(out, fmt.Sprintf("%s %d s", w.Key(), p.WaitAfter(w.Name, 1)))
	}
	return strings.Join(out, ", ")
}

func renderLatency(w func(string, ...any), l *LatencyResults, ganttRef string) {
	w("\n## 6. Under AWS's timing: amifleet against the physical limit (*measured* on a scaled clock)\n\n")
	if l == nil || len(l.Runs) == 0 {
		w("Not measured yet: `go run ./bench -parts latency` runs the pipeline in a local cloud with AWS's timing (`localcloud.AWSLatency`, docs/latency-model.md).\n")
		return
	}
	w("Measured %s UTC. The local cloud makes every modelled state change visible only after a duration drawn from AWS's timing (docs/latency-model.md; the seed makes the draws repeatable), on a clock %g times AWS's. ", l.Measured.Format("2006-01-02 15:04"), l.TimeScale)
	d := pipeline.DefaultConfig().Poll
	w("The executions' Wait states and Retry intervals run on the same clock, so the input keeps the default poll settings, in AWS seconds: each wait checks at once, then after its first wait (`poll.firstWaitSeconds` %s), then every %d s (`poll.intervalSeconds`). The input:\n\n```json\n%s\n```\n\n", firstWaits(d), d.IntervalSeconds, l.Input)
	w("All figures are AWS seconds: local time / %g. ", l.TimeScale)
	w("*Limit* is the run's physical limit, its critical path with no poll slack: Validate and CreateSecurityGroups; then the longer of the image branch (LaunchBase, with its RunInstances answer; the base instance running, its user data done, stopped; CreateImage; the image available) and the load balancer branch (CreateLoadBalancer, with its target group's and listener's answers; the load balancer active); ")
	w("then LaunchReplicas (with its RunInstances answers) and its slowest instance running, then the longer of that instance's boot and RegisterTargets; then the health checks' minimum (%d checks %d s apart, the target group's settings); then Verify. ", targetHealthyThreshold, targetHealthIntervalSeconds)
	w("Each stage's Task counts once, entered to exited, with no waiting; its local time is scaled like the run's, so both carry the Lambdas' and the interpreter's time the same way. ")
	w("*Run* is the execution's start to stop; *ratio* is run / limit. ")
	w("*Slack* is, per wait, from the resource being ready (the modelled change's end in the gateway's record) to the check that answered ready (its TaskSucceeded); in parentheses, how much of it that check itself took, asked (TaskScheduled) to answered: a local Lambda and moto, on 2 cores shared with the data plane, read in AWS seconds (on AWS a check takes a fraction of a second). ")
	w("For TargetsHealthy the ready time is when the data plane's own health checks found the last of the fleet's targets healthy (measured, not drawn); where the record lacks one, the figure (≤) is the time from the check before the ready one: an upper bound. ")
	w("*Transitions* are StateEntered events; *Lambda invocations* the history's Lambda task schedules.\n\n")

	runs := slices.Clone(l.Runs)
	slices.SortStableFunc(runs, func(a, b LatencyRun) int {
		if a.Replicas != b.Replicas {
			return a.Replicas - b.Replicas
		}
		return int(a.Seed - b.Seed)
	})
	w("| replicas | seed | limit (s) | run (s) | ratio |")
	for _, name := range latencyWaits {
		w(" slack %s (s) |", name)
	}
	w(" transitions | Lambda invocations |\n|---|---|---|---|---|%s---|---|\n", strings.Repeat("---|", len(latencyWaits)))
	row := func(replicas, seed string, group []LatencyRun, slack func(string) WaitSlack) {
		var limit, run, ratio, trans, inv []float64
		for _, r := range group {
			limit, run, ratio = append(limit, r.LimitSeconds), append(run, r.RunSeconds), append(ratio, r.Ratio)
			trans, inv = append(trans, float64(r.Transitions)), append(inv, float64(r.LambdaInvocations))
		}
		w("| %s | %s | %.0f | %.0f | %.2f |", replicas, seed, median(limit), median(run), median(ratio))
		for _, name := range latencyWaits {
			w(" %s |", slackCell(slack(name)))
		}
		w(" %.0f | %.0f |\n", median(trans), median(inv))
	}
	for i := 0; i < len(runs); {
		j := i
		for j < len(runs) && runs[j].Replicas == runs[i].Replicas {
			j++
		}
		group := runs[i:j]
		for _, r := range group {
			row(strconv.Itoa(r.Replicas), strconv.FormatInt(r.Seed, 10), []LatencyRun{r}, func(name string) WaitSlack {
				return slackNamed(r.Slack, name)
			})
		}
		row(fmt.Sprintf("**%d**", group[0].Replicas), "**median**", group, func(name string) WaitSlack { return medianSlack(group, name) })
		i = j
	}
	missing := missingOf(runs, func(r LatencyRun) []string { return r.Missing })
	if len(missing) > 0 {
		w("\nThe gateway's record lacked %d modelled change(s) (counted as 0 s in the limit, their wait's slack n/a), e.g. %s.\n", len(missing), missing[0])
	}
	if r, ok := timelineRun(l); ok {
		w("\nThe %d-replica run of seed %d, state by state (red: on the critical path; the last row is the limit's own path):\n\n![timeline of one run under AWS's timing](%s)\n", r.Replicas, r.Seed, ganttRef)
		w("\n| step of the limit | kind | AWS s |\n|---|---|---|\n")
		for _, s := range r.Path {
			w("| %s | %s | %.1f |\n", s.Name, s.Kind, s.Seconds)
		}
		w("| **limit** (%s branch) | | **%.1f** |\n", r.CriticalBranch, r.LimitSeconds)
	}
}

// latencyRunName names a run of the latency part: short enough to be its own run id
// (pipeline.IsRunID), so that its resources and log lines are named for it.
func latencyRunName(seed int64, replicas int, now time.Time) string {
	return fmt.Sprintf("lat-s%d-r%d-%d", seed, replicas, now.Unix()%1000000)
}
