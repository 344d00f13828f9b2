package main

// docs/benchmarks.md, written from the measured figures. Every number in it comes
// from Results, or from the assumptions and prices in estimate.go, which the
// document labels as such.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

func writeReport(root, docPath, plotPath string, res *Results, checks []CheckResult) error {
	if res.Runs != nil && len(res.Runs.Runs) > 0 {
		if err := WritePlot(filepath.Join(root, plotPath), ScalingSeries(res.Runs.Runs)); err != nil {
			return err
		}
	}
	if r, ok := timelineRun(res.Latency); ok {
		if err := WriteGantt(filepath.Join(root, timelinePath(plotPath)), r, criticalStates(r, res.Latency.Parallel, res.Latency.ImageBranch, res.Latency.ALBBranch)); err != nil {
			return err
		}
	}
	rel, err := filepath.Rel(filepath.Dir(filepath.Join(root, docPath)), filepath.Join(root, plotPath))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, docPath), []byte(Render(res, checks, rel)), 0o644)
}

// Render is the whole document.
func Render(res *Results, checks []CheckResult, plotRef string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks: what a run costs and how it scales\n\n")
	w("Written by `make bench` (`go run ./bench`, the code in `bench/`) from the figures it measured; ")
	w("`go run ./bench -render` rewrites this page from `bench/results.json` without measuring again, and ")
	w("`go run ./bench -parts lambdas` (or `runs`, `latency`, `refresh`) measures one part again. Figures measured here are marked ")
	w("*measured*; everything about AWS itself is an *estimate*, with its assumptions written down.\n\n")
	w("The bench checks the targets below itself: a missed one prints `TARGET MISSED` and makes it exit 1.\n\n")

	w("## Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, c := range checks {
		w("| %s | %s | %s |\n", c.Target, c.Measured, yesNo(c.Passed))
	}
	if res.Runs == nil {
		w("\nThe pipeline-run targets (transitions, RunInstances, DescribeInstances, RegisterTargets, wall time) have no figures yet: part 2 was not measured.\n")
	}

	m := res.Machine
	w("\n## The machine\n\n| | |\n|---|---|\n")
	w("| measured on | %s (UTC) |\n", m.Date.Format("2006-01-02 15:04"))
	w("| CPU | %s, %d cores |\n| memory | %.1f GiB |\n| kernel | Linux %s |\n", m.CPU, m.Cores, m.MemoryGiB, m.Kernel)
	w("| Go | %s |\n| moto | %s (Python %s) |\n| node | %s; CDK CLI %s |\n", m.Go, m.Moto, m.Python, m.Node, m.CDKCLI)
	w("| load average at start (1, 5, 15 min) | %s |\n\n", m.LoadAvgAt)
	w("The machine is shared: other builds and tests ran beside the bench, so times are upper bounds of what an idle machine of this size does.\n")

	renderLambdas(w, res.Lambdas)
	renderRuns(w, res.Runs, plotRef)
	renderEstimate(w, res)
	renderLatency(w, res.Latency, timelinePath(plotRef))
	renderRefresh(w, res.Refresh)
	return b.String()
}

// timelinePath is where the timeline of part 6 goes, beside the plot
// ("benchmarks.png" → "benchmarks-timeline.svg").
func timelinePath(plotPath string) string {
	return strings.TrimSuffix(plotPath, filepath.Ext(plotPath)) + "-timeline.svg"
}

func renderLambdas(w func(string, ...any), l *LambdaResults) {
	w("\n## 1. Each Lambda (*measured*, no local cloud needed)\n\n")
	if l == nil {
		w("Not measured yet.\n")
		return
	}
	w("Measured %s UTC. ", l.Measured.Format("2006-01-02 15:04"))
	w("Sizes are of `bootstrap` as `make build` makes it (`-tags lambda.norpc -trimpath -ldflags \"-s -w\"`, CGO off), for %s as shipped and for this machine (%s). ", ShippedArch, l.HostArch)
	w("*First answer* is the time from the local runtime (`internal/localcloud/runtime.go`) starting the %s process to its answer to the first invocation: process start, Go runtime and SDK client set-up, the Runtime API's `next`, the handler, the answer. ", l.HostArch)
	w("Median of %d cold starts per function (each a new process), with %d warm invocations after each. ", l.ColdRuns, l.WarmRuns)
	w("*Peak RSS* is the process's `VmHWM` (`/proc/<pid>/status`) after its answers. Each function got an input its handler answers without AWS (a real answer for Validate and Verify; the input check's error for the others); ")
	w("CreateSecurityGroups's first step is an EC2 call, answered at once with an error by a local stand-in endpoint, so its figure includes one SDK request.\n\n")
	w("| function | bootstrap %s (MB) | bootstrap %s (MB) | zip %s (MB) | first answer, median (min–max) ms | warm invoke median ms | peak RSS (MB) | memory on AWS (MB) | answer | AWS requests per invocation |\n", ShippedArch, l.HostArch, ShippedArch)
	w("|---|---|---|---|---|---|---|---|---|---|\n")
	invocations := float64(l.ColdRuns * (1 + l.WarmRuns))
	for _, f := range l.Functions {
		w("| %s | %.2f | %.2f | %.2f | %.1f (%.1f–%.1f) | %.2f | %.1f | %d | %s | %.0f |\n", f.Name,
			mb(f.BootstrapBytes[ShippedArch]), mb(f.BootstrapBytes[l.HostArch]), mb(f.ZipBytes[ShippedArch]),
			f.ColdMedianMS, slices.Min(f.ColdMS), slices.Max(f.ColdMS), f.WarmMedianMS, float64(f.MaxRSSKB)/1024, f.MemoryMB, f.Answer, float64(f.AWSCalls)/invocations)
	}
	s := l.Synth
	w("\n**CDK synth** (`%s`, into a temporary directory): ", s.Description)
	parts := []string{}
	for i, sec := range s.Seconds {
		parts = append(parts, fmt.Sprintf("run %d %.1f s", i+1, sec))
	}
	w("%s; peak RSS of the largest process %.0f MB; the template has %d resources (%.0f KiB). CDK CLI %s. ", strings.Join(parts, ", "), s.PeakRSSMB, s.Resources, s.TemplateKB, s.CLIVersion)
	w("cdk.json's app command runs `go build` of the CDK app before each synth: quick when the Go build cache has it, up to a minute or more when cdk/ changed since; the first run pays that, and node's and jsii's own caches warming, when either applies.\n")
}

func renderRuns(w func(string, ...any), r *RunResults, plotRef string) {
	w("\n## 2. Pipeline runs in the local cloud (*measured*)\n\n")
	if r == nil || len(r.Runs) == 0 {
		w("Not measured yet: these figures need `localcloud.Up` (moto, the gateway, the CDK deploy). Run `make bench`.\n")
		w("\n## 3. The critical path\n\nNot measured yet: it is read from the pipeline runs' histories.\n")
		return
	}
	runs := slices.Clone(r.Runs)
	slices.SortFunc(runs, func(a, b RunFigure) int { return a.Replicas - b.Replicas })
	w("Measured %s UTC. ", r.Measured.Format("2006-01-02 15:04"))
	w("One local cloud (`localcloud.Up`: moto, the gateway running the real `bootstrap` binaries, the stack deployed with the CDK CLI; up in %.0f s), ", r.UpSeconds)
	w("then one Pipeline execution per replica count, each torn down by the Teardown state machine before the next. ")
	w("Input: `events/local-input.json` with `replicaCount` set, `maxReplicas` raised to it, polls every second and Verify skipped (no data plane):\n\n```json\n%s\n```\n\n", r.Input)
	w("*Transitions* are the history's `…StateEntered` events (GetExecutionHistory, every page); *Lambda invocations* are the gateway's `lambda:Invoke` count; *API calls* are the gateway's counts per `service:Action`, reset before each run and taken when it ends (the bench's own Step Functions and EC2 reads go to moto directly and are not counted). ")
	w("*Wall* is the execution's start to stop date; the runs go in the table's order, so the first one also pays every function's first process start in the local runtime. The instances are base + replicas (the base instance is kept and registered, the default).\n\n")
	w("| replicas | status | wall (s) | transitions | history events | Lambda invocations | API calls | RunInstances | DescribeInstances | RegisterTargets | instances | replica subnets | teardown (s) |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, run := range runs {
		w("| %d | %s | %.1f | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.1f (%s) |\n", run.Replicas, run.Status, run.WallSeconds, run.Transitions, run.HistoryEvents,
			run.LambdaInvocations, total(run.Calls), run.Calls["ec2:RunInstances"], run.Calls["ec2:DescribeInstances"],
			run.Calls["elasticloadbalancing:RegisterTargets"], run.Instances, run.Subnets, run.TeardownSeconds, run.TeardownStatus)
	}
	w("\n![calls and transitions against replica count](%s)\n", plotRef)

	calls := map[string]bool{}
	fns := map[string]bool{}
	for _, run := range runs {
		for k := range run.Calls {
			calls[k] = true
		}
		for k := range run.Invocations {
			fns[k] = true
		}
	}
	perRunTable(w, "\n### API calls by service:Action", "call", "`%s`", runs, slices.Sorted(maps.Keys(calls)),
		func(run RunFigure, k string) string { return fmt.Sprint(run.Calls[k]) })
	perRunTable(w, "\n### Lambda invocations by function (from the history's task schedules)", "function", "%s", runs, slices.Sorted(maps.Keys(fns)),
		func(run RunFigure, k string) string { return fmt.Sprint(run.Invocations[k]) })
	perRunTable(w, "\n### Time in each function's Task states (s, entered to exited)", "function", "%s", runs, slices.Sorted(maps.Keys(fns)),
		func(run RunFigure, k string) string { return fmt.Sprintf("%.2f", run.TaskSeconds[k]) })
	w("\nWith the same transitions and calls at every size, what grows with the fleet is the work per call: moto creating, describing and registering a few hundred instances (the Tasks of LaunchReplicas, CheckInstancesRunning and RegisterTargets above), and the wait loops' one-second polls, which a slower call can push past one more second.\n")
	w("\nCheckBaseStopped and CheckInstancesRunning each make one DescribeInstances per poll, whatever the fleet's size. ")
	w("LaunchBase and LaunchReplicas each make one more DescribeInstances, to find instances a previous attempt launched (idempotency). ")
	w("LaunchReplicas spreads the replicas over the subnets with one RunInstances per subnet, and RegisterTargets sends at most %d targets per call.\n", TargetsPerRegister)

	renderTimeline(w, r, runs)
}

// perRunTable writes a table with one row per key (its label made with rowFormat)
// and one column per run, headed by the run's replica count.
func perRunTable(w func(string, ...any), title, first, rowFormat string, runs []RunFigure, keys []string, cell func(RunFigure, string) string) {
	w("%s\n\n| %s |", title, first)
	for _, run := range runs {
		w(" %d |", run.Replicas)
	}
	w("\n|---|%s\n", strings.Repeat("---|", len(runs)))
	for _, k := range keys {
		w("| "+rowFormat+" |", k)
		for _, run := range runs {
			w(" %s |", cell(run, k))
		}
		w("\n")
	}
}

func renderTimeline(w func(string, ...any), r *RunResults, runs []RunFigure) {
	w("\n## 3. The critical path (*measured* locally)\n\n")
	run, ok := runWith(runs, 2)
	if !ok {
		run = runs[0]
	}
	o := BranchOverlap(run.Timeline, r.ImageBranch, r.ALBBranch)
	w("The Parallel state `%s` runs the image branch (base instance, wait stopped, image, wait available) beside the load balancer branch (target group, ALB, listener, wait active). ", r.Parallel.Name)
	w("From the history of the %d-replica run (seconds from the execution's start):\n\n", run.Replicas)
	w("| state | branch | entered (s) | exited (s) |\n|---|---|---|---|\n")
	spans := slices.Clone(run.Timeline)
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	for _, s := range spans {
		branch := "(the Parallel)"
		switch s.Branch {
		case r.ImageBranch:
			branch = "image"
		case r.ALBBranch:
			branch = "load balancer"
		}
		w("| %s | %s | %.2f | %.2f |\n", s.State, branch, s.Start, s.End)
	}
	w("\nImage branch: %.2f–%.2f s; load balancer branch: %.2f–%.2f s. ", o.ImageStart, o.ImageEnd, o.ALBStart, o.ALBEnd)
	if o.Within {
		w("The load balancer branch ran entirely within the image branch's time: the Parallel lasted as long as its longer branch, not the sum of both. ")
	} else {
		w("The load balancer branch did **not** run within the image branch's time. ")
	}
	w("Locally the emulator makes the ALB active at once and the guest OS stand-in stops the base instance after 2 s, so the image branch is the longer one here too; on AWS the two branches are of the same order (section 4), and the overlap saves the shorter one.\n")
	w("\nEvery run's branches, as the check above measured them:\n\n| replicas | image branch (s) | load balancer branch (s) | within |\n|---|---|---|---|\n")
	for _, run := range runs {
		o := BranchOverlap(run.Timeline, r.ImageBranch, r.ALBBranch)
		w("| %d | %.2f–%.2f | %.2f–%.2f | %s |\n", run.Replicas, o.ImageStart, o.ImageEnd, o.ALBStart, o.ALBEnd, yesNo(o.Within))
	}
}

func renderEstimate(w func(string, ...any), res *Results) {
	w("\n## 4. A real run on AWS (*estimate*)\n\n")
	w("Stage by stage, with the default input (2 replicas, t2.micro, AL2023, 15 s polls). Each latency is an assumption; its source is given where one exists. The local runs above cannot measure these: the emulator makes every resource ready at once.\n\n")
	w("| stage | low | high | assumption | source |\n|---|---|---|---|---|\n")
	for _, l := range Latencies {
		w("| %s | %s | %s | %s | %s |\n", l.Name, human(l.Low), human(l.High), l.Assumption, l.Source)
	}
	seq, par := SequentialPlan(), ParallelPlan()
	w("\n| plan | order | estimate |\n|---|---|---|\n")
	w("| the original exercise, by hand | setup → base → image → replicas → target group + ALB → register, healthy → verify | %s – %s |\n", human(seq.Low), human(seq.High))
	w("| amifleet | setup → (base → image) ∥ (target group + ALB) → replicas → register, healthy → verify, plus up to one poll interval (%.0f s) of slack at each of the four waits on the critical path | %s – %s |\n", PollSlack, human(par.Low), human(par.High))
	w("\nThe Parallel hides the ALB's %s – %s entirely, because the base instance and its image take longer (%s – %s). ", human(latency(stALB).Low), human(latency(stALB).High),
		human(latency(stBase).Low+latency(stImage).Low), human(latency(stBase).High+latency(stImage).High))
	w("The poll slack is the price of not sleeping in a Lambda; `poll.intervalSeconds` trades it against transitions (each poll is a Wait, a Task and a Choice: 3 transitions).\n")

	renderCost(w, res, par)
}

func renderCost(w func(string, ...any), res *Results, par Duration) {
	w("\n## 5. What one default run costs on AWS (*estimate*)\n\n")
	p := ListPrices
	w("us-east-1 list prices as of %s, given to this project and not fetched from AWS here: check them on the AWS pricing pages before relying on them. ", p.Date)
	w("Step Functions Standard $%.3f per 1,000 transitions; Lambda $%.10f per GB-s on arm64 ($%.10f on x86_64) and $%.2f per million requests; t2.micro $%.4f/h; ALB $%.4f/h plus $%.3f per LCU-hour; gp3 $%.2f per GB-month; EBS snapshots $%.2f per GB-month; public IPv4 addresses $%.3f/h each.\n\n",
		p.TransitionPer1000, p.LambdaGBSecondARM, p.LambdaGBSecondX86, p.LambdaPerMillionReqs, p.T2MicroHour, p.ALBHour, p.LCUHour, p.GP3GBMonth, p.EBSSnapshotGBMonth, p.PublicIPv4Hour)
	in, ok := defaultCostInput(res, par)
	if !ok {
		w("Not computed yet: the estimate takes the transitions and invocations of the measured 2-replica run, and each function's memory from the synthesized template (parts 1 and 2).\n")
		return
	}
	c := EstimateCost(in, p)
	w("Inputs: %d transitions and %d Lambda invocations (*measured*, the 2-replica run; on AWS, with 15 s polls and real waits, each wait polls more often: about 3 more transitions and one more invocation per extra poll, see below); ", in.Transitions, sum(in.Invocations))
	w("each function's memory from the template (128 or 256 MB), an assumed %.1f s billed per invocation (an upper bound for one or a few API calls); ", in.BilledSecondsPerInvocation)
	w("%d instances (base + 2 replicas) with %.0f GiB gp3 roots, for the run's estimated %.0f minutes (the parallel plan's high end); one ALB, billed by the started hour; %d public IPv4 addresses (one per instance, one per ALB node in the %d subnets).\n\n", in.Instances, in.RootGiB, in.RunMinutes, in.PublicIPv4s, in.PublicIPv4s-in.Instances)
	w("| part | cost (USD) |\n|---|---|\n")
	w("| state transitions | %.5f |\n| Lambda requests | %.6f |\n| Lambda compute (%.1f GB-s, arm64) | %.5f |\n", c.Transitions, c.LambdaRequests, c.GBSeconds, c.LambdaCompute)
	w("| **the pipeline itself** | **%.4f** |\n", c.Pipeline())
	w("| instances during the run (all three for the whole run: an upper bound) | %.4f |\n| root volumes during the run | %.5f |\n| ALB (one started hour + one LCU-hour) | %.4f |\n| public IPv4 during the run | %.4f |\n", c.Instances, c.Volumes, c.ALB, c.IPv4)
	w("| **one run, until it has succeeded** | **%.3f** |\n", c.Run())
	w("| every further hour the fleet stays up | %.4f |\n| the AMI's snapshot, per month kept (at most %.0f GiB) | %.2f |\n\n", c.FleetHour, in.RootGiB, c.SnapshotMonth)
	slowPolls := 4 * 10 // ten more polls at each of the four waits on the critical path
	w("With %d more polls than locally (ten more at each of the four waits on the critical path, 2.5 minutes of waiting each at 15 s), the run makes about %d more transitions: $%.4f more. ", slowPolls, 3*slowPolls, float64(3*slowPolls)/1000*p.TransitionPer1000)
	w("The fleet, not the pipeline, is what costs: the ALB's first hour, the public addresses and the instances dominate, and the Teardown (or `teardownAfterMinutes`) is what stops the bill.\n\n")
	w("**Free tier.** Step Functions' 4,000 free state transitions a month and Lambda's 1 million requests and 400,000 GB-s a month cover the pipeline many times over. ")
	w("On accounts under the free tier that predates July 2025, t2.micro (750 hours a month), an ALB (750 hours and 15 LCUs a month) and 30 GB of EBS are free for 12 months; ")
	w("accounts opened since then get a credit-based free plan instead. Public IPv4 addresses have 750 free hours a month in that first-year free tier. Check which applies to the account.\n")
}

// defaultCostInput builds the cost estimate's input from the measured default run.
func defaultCostInput(res *Results, par Duration) (CostInput, bool) {
	if res.Runs == nil || res.Lambdas == nil {
		return CostInput{}, false
	}
	run, ok := runWith(res.Runs.Runs, 2)
	if !ok || run.Transitions == 0 {
		return CostInput{}, false
	}
	memory := map[string]int{}
	for _, f := range res.Lambdas.Functions {
		memory[f.Name] = f.MemoryMB
	}
	return CostInput{
		Transitions:                run.Transitions,
		Invocations:                run.Invocations,
		MemoryMB:                   memory,
		BilledSecondsPerInvocation: 1,
		Instances:                  run.Instances,
		RootGiB:                    8,
		RunMinutes:                 par.High / 60,
		PublicIPv4s:                run.Instances + run.NetworkSubnets,
	}, true
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// human formats seconds as "45 s", "2 min", "2.5 min".
func human(sec float64) string {
	if sec < 90 {
		return fmt.Sprintf("%.0f s", sec)
	}
	min := sec / 60
	if min == float64(int(min)) {
		return fmt.Sprintf("%.0f min", min)
	}
	return fmt.Sprintf("%.1f min", min)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}
