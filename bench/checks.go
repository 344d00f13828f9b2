package main

// The targets the bench holds the project to (issue "Benchmarks"), checked on the
// figures it measured. A target whose figures were not measured is not listed.

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Limits of the targets.
const (
	MaxBootstrapBytes     = 15_000_000 // 15 MB, decimal
	MaxFirstAnswerMS      = 50.0
	MaxTransitionsSpread  = 0.10 // from 2 to the largest replica count
	MaxWallRatio          = 1.5  // wall time at the largest count over that at 2
	TargetsPerRegister    = 100  // ELBv2 RegisterTargets takes at most this many
	OverlapStartTolerance = 1.0  // seconds: which branch the interpreter enters first is arbitrary
	// Under AWS's timing (part 6), at the median of the seeds of each replica count.
	MaxLimitRatio    = 1.05 // a run over its physical limit
	MaxMedianSlack   = 5.0  // AWS seconds from a resource ready to the check that says so
	MaxLatencySpread = 0.10 // transitions, from the smallest replica count to the others
)

// CheckResult is one target, met or missed.
type CheckResult struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Passed   bool   `json:"passed"`
}

// Check evaluates every target that res has figures for.
func Check(res *Results) []CheckResult {
	var out []CheckResult
	if l := res.Lambdas; l != nil && len(l.Functions) > 0 {
		out = append(out, checkLambdas(l)...)
	}
	if r := res.Runs; r != nil && len(r.Runs) > 0 {
		out = append(out, checkRuns(r)...)
	}
	if l := res.Latency; l != nil && len(l.Runs) > 0 {
		out = append(out, checkLatency(l)...)
	}
	return out
}

// checkLatency holds part 6 to its targets: at the median of the seeds of each
// replica count, the run within MaxLimitRatio of its physical limit, each wait's
// slack at most MaxMedianSlack, and the transitions within MaxLatencySpread of those
// at the smallest count.
func checkLatency(l *LatencyResults) []CheckResult {
	byCount := map[int][]LatencyRun{}
	for _, r := range l.Runs {
		byCount[r.Replicas] = append(byCount[r.Replicas], r)
	}
	counts := slices.Sorted(maps.Keys(byCount))
	medianOf := func(runs []LatencyRun, f func(LatencyRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	var ratios, slacks, spread []string
	ratioOK, slackOK, spreadOK := true, true, true
	base := medianOf(byCount[counts[0]], func(r LatencyRun) float64 { return float64(r.Transitions) })
	for _, n := range counts {
		runs := byCount[n]
		ratio := medianOf(runs, func(r LatencyRun) float64 { return r.Ratio })
		ratios = append(ratios, fmt.Sprintf("%d: %.3f", n, ratio))
		ratioOK = ratioOK && ratio <= MaxLimitRatio
		var worst WaitSlack
		for _, w := range latencyWaits {
			s := medianSlack(runs, w)
			if !s.Known {
				slackOK = false
				continue
			}
			if s.Seconds > worst.Seconds || worst.Wait == "" {
				worst = s
			}
		}
		slacks = append(slacks, fmt.Sprintf("%d: %s %.1f s", n, worst.Wait, worst.Seconds))
		slackOK = slackOK && worst.Seconds <= MaxMedianSlack
		t := medianOf(runs, func(r LatencyRun) float64 { return float64(r.Transitions) })
		d := (t - base) / base
		spread = append(spread, fmt.Sprintf("%d: %.0f (%+.1f%%)", n, t, 100*d))
		spreadOK = spreadOK && math.Abs(d) <= MaxLatencySpread
	}
	return []CheckResult{
		{Target: fmt.Sprintf("under AWS's timing, the run at most %.2f × its physical limit (median of the seeds)", MaxLimitRatio), Measured: strings.Join(ratios, ", "), Passed: ratioOK},
		{Target: fmt.Sprintf("under AWS's timing, each wait's median slack at most %.0f s (the largest)", MaxMedianSlack), Measured: strings.Join(slacks, ", "), Passed: slackOK},
		{Target: fmt.Sprintf("under AWS's timing, state transitions within %.0f%% of those at %d replicas (medians)", 100*MaxLatencySpread, counts[0]), Measured: strings.Join(spread, ", "), Passed: spreadOK},
	}
}

func checkLambdas(l *LambdaResults) []CheckResult {
	var out []CheckResult
	archs := []string{}
	for a := range l.Functions[0].BootstrapBytes {
		archs = append(archs, a)
	}
	slices.Sort(archs)
	for _, arch := range archs {
		worst, name := int64(0), ""
		var over []string
		for _, f := range l.Functions {
			if b := f.BootstrapBytes[arch]; b > worst {
				worst, name = b, f.Name
			}
			if f.BootstrapBytes[arch] > MaxBootstrapBytes {
				over = append(over, f.Name)
			}
		}
		m := fmt.Sprintf("largest: %s %.2f MB", name, mb(worst))
		if len(over) > 0 {
			m += "; over: " + strings.Join(over, ", ")
		}
		out = append(out, CheckResult{Target: fmt.Sprintf("each %s bootstrap at most 15 MB", arch), Measured: m, Passed: len(over) == 0})
	}
	worst, name := 0.0, ""
	var over []string
	for _, f := range l.Functions {
		if f.ColdMedianMS > worst {
			worst, name = f.ColdMedianMS, f.Name
		}
		if f.ColdMedianMS >= MaxFirstAnswerMS {
			over = append(over, f.Name)
		}
	}
	m := fmt.Sprintf("slowest median of %d cold starts: %s %.1f ms", l.ColdRuns, name, worst)
	if len(over) > 0 {
		m += "; at or over 50 ms: " + strings.Join(over, ", ")
	}
	out = append(out, CheckResult{Target: "start to first answer under 50 ms (median, local runtime)", Measured: m, Passed: len(over) == 0})
	return out
}

func checkRuns(r *RunResults) []CheckResult {
	var out []CheckResult
	var failed []string
	for _, run := range r.Runs {
		if run.Status != "SUCCEEDED" {
			failed = append(failed, fmt.Sprintf("%d replicas: %s", run.Replicas, run.Status))
		}
	}
	out = append(out, CheckResult{Target: "every run SUCCEEDED", Measured: orNone(failed, fmt.Sprintf("%d runs", len(r.Runs))), Passed: len(failed) == 0})

	if base, ok := runWith(r.Runs, 2); ok {
		var spread []string
		passed := true
		for _, run := range r.Runs {
			if run.Replicas < 2 {
				continue
			}
			d := float64(run.Transitions-base.Transitions) / float64(base.Transitions)
			spread = append(spread, fmt.Sprintf("%d: %d (%+.1f%%)", run.Replicas, run.Transitions, 100*d))
			if math.Abs(d) > MaxTransitionsSpread {
				passed = false
			}
		}
		out = append(out, CheckResult{Target: "state transitions within 10% of those at 2 replicas, up to the largest count", Measured: strings.Join(spread, ", "), Passed: passed})

		largest := slices.MaxFunc(r.Runs, func(a, b RunFigure) int { return a.Replicas - b.Replicas })
		if largest.Replicas > 2 {
			ratio := largest.WallSeconds / base.WallSeconds
			out = append(out, CheckResult{
				Target:   fmt.Sprintf("local wall time at %d replicas at most 1.5 × that at 2", largest.Replicas),
				Measured: fmt.Sprintf("%.1f s / %.1f s = %.2f", largest.WallSeconds, base.WallSeconds, ratio),
				Passed:   ratio <= MaxWallRatio,
			})
		}
	}

	var runInst, describe, register, overlap []string
	okRun, okDescribe, okRegister, okOverlap := true, true, true, true
	for _, run := range r.Runs {
		replicaCalls := run.Calls["ec2:RunInstances"] - run.Invocations["LaunchBase"]
		runInst = append(runInst, fmt.Sprintf("%d: %d in %d subnets", run.Replicas, replicaCalls, run.Subnets))
		if replicaCalls < 1 || replicaCalls > run.Subnets {
			okRun = false
		}

		polls := run.Invocations[pipeline.CheckBaseStopped] + run.Invocations[pipeline.CheckInstancesRunning]
		// LaunchBase's and LaunchReplicas's lookups, and Validate's count of the vCPUs
		// in use after each quota it read (capacity.go).
		other := run.Invocations["LaunchBase"] + run.Invocations["LaunchReplicas"] + run.Calls["servicequotas:GetServiceQuota"]
		got := run.Calls["ec2:DescribeInstances"]
		describe = append(describe, fmt.Sprintf("%d: %d calls = %d polls + %d lookups", run.Replicas, got, got-other, other))
		if got != polls+other {
			okDescribe = false
			describe[len(describe)-1] = fmt.Sprintf("%d: %d calls for %d polls + %d lookups", run.Replicas, got, polls, other)
		}

		want := ceilDiv(run.Instances, TargetsPerRegister) * max(run.Invocations["RegisterTargets"], 1)
		gotReg := run.Calls["elasticloadbalancing:RegisterTargets"]
		register = append(register, fmt.Sprintf("%d: %d calls for %d instances", run.Replicas, gotReg, run.Instances))
		if gotReg != want || run.Instances == 0 {
			okRegister = false
		}

		o := BranchOverlap(run.Timeline, r.ImageBranch, r.ALBBranch)
		overlap = append(overlap, fmt.Sprintf("%d: %s", run.Replicas, o))
		if !o.Within {
			okOverlap = false
		}
	}
	out = append(out,
		CheckResult{Target: "RunInstances calls for the replicas no more than the subnets used", Measured: strings.Join(runInst, "; "), Passed: okRun},
		CheckResult{Target: "one DescribeInstances per instance poll (plus LaunchBase's and LaunchReplicas's one lookup each, and Validate's count of the vCPUs in use when it reads the quota)", Measured: strings.Join(describe, "; "), Passed: okDescribe},
		CheckResult{Target: "target registration batched: RegisterTargets calls = ceil(instances / 100)", Measured: strings.Join(register, "; "), Passed: okRegister},
		CheckResult{Target: "the load balancer branch runs within the image branch (Parallel)", Measured: strings.Join(overlap, "; "), Passed: okOverlap},
	)
	return out
}

// Overlap is how the ALB branch's time sits against the image branch's.
type Overlap struct {
	ImageStart, ImageEnd, ALBStart, ALBEnd float64
	// Within: the ALB branch started with the image branch (within
	// OverlapStartTolerance) and ended before it.
	Within bool
}

func (o Overlap) String() string {
	if o.ImageEnd == 0 && o.ALBEnd == 0 {
		return "no branch timeline"
	}
	return fmt.Sprintf("image %.1f–%.1f s, load balancer %.1f–%.1f s", o.ImageStart, o.ImageEnd, o.ALBStart, o.ALBEnd)
}

// BranchOverlap compares the first and last timestamps of two branches' states.
func BranchOverlap(timeline []Span, imageBranch, albBranch int) Overlap {
	var o Overlap
	first := map[int]bool{}
	for _, s := range timeline {
		var start, end *float64
		switch s.Branch {
		case imageBranch:
			start, end = &o.ImageStart, &o.ImageEnd
		case albBranch:
			start, end = &o.ALBStart, &o.ALBEnd
		default:
			continue
		}
		if !first[s.Branch] || s.Start < *start {
			*start = s.Start
		}
		if !first[s.Branch] || s.End > *end {
			*end = s.End
		}
		first[s.Branch] = true
	}
	o.Within = first[imageBranch] && first[albBranch] &&
		o.ALBStart >= o.ImageStart-OverlapStartTolerance && o.ALBEnd <= o.ImageEnd
	return o
}

func runWith(runs []RunFigure, replicas int) (RunFigure, bool) {
	for _, r := range runs {
		if r.Replicas == replicas {
			return r, true
		}
	}
	return RunFigure{}, false
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func orNone(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, "; ")
}
