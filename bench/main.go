// Command bench measures what an amifleet run costs and how it scales, checks the
// project's performance targets, and writes docs/benchmarks.md and its plot.
//
// `make bench` runs it from the repository root. Part 1 (per-Lambda sizes, cold
// starts, memory, CDK synth) needs no local cloud; part 2 runs the pipeline in the
// local cloud once per replica count; part 6 (latency) runs it under AWS's timing
// against its physical limit; part 7 (refresh) runs it so, then one Refresh of each
// run. The raw figures go to bench/results.json, so
// that `go run ./bench -render` rewrites the document without measuring again, and
// `-parts` re-measures one part while keeping the others' figures.
//
// A missed target prints a line starting "TARGET MISSED" and makes the exit status 1;
// a measurement that could not be made exits 2.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
)

// Results is everything the bench measured; bench/results.json holds it.
type Results struct {
	Machine Machine        `json:"machine"`
	Lambdas *LambdaResults `json:"lambdas,omitempty"`
	Runs    *RunResults    `json:"runs,omitempty"`
	// Latency is part 6: runs under AWS's timing against their physical limit.
	Latency *LatencyResults `json:"latency,omitempty"`
	// Refresh is part 7: a Refresh of a run under AWS's timing.
	Refresh *RefreshResults `json:"refresh,omitempty"`
}

// lenient names the local cloud's strict checks to turn off (-lenient); all are on by
// default.
var lenient string

func main() {
	var (
		parts       = flag.String("parts", "lambdas,runs,latency,refresh", "what to measure: "+knownParts+" (comma-separated)")
		replicas    = flag.String("replicas", "1,2,10,50,200", "replica counts of the pipeline runs")
		resultsPath = flag.String("results", "bench/results.json", "raw figures (read, then rewritten)")
		docPath     = flag.String("doc", "docs/benchmarks.md", "the document to write")
		plotPath    = flag.String("plot", "docs/benchmarks.png", "the plot to write")
		render      = flag.Bool("render", false, "measure nothing: rewrite the document and plot from the results file")
		coldRuns    = flag.Int("cold", 5, "cold starts per Lambda")
		warmRuns    = flag.Int("warm", 20, "warm invocations after each cold start")
		logPath     = flag.String("log", "", "where builds, the CDK CLI, moto and the functions write (default: a temporary file)")
		latSeeds    = flag.String("latency-seeds", "1,2,3,4,5", "the latency part's seeds of localcloud.AWSLatency (comma-separated)")
		latReplicas = flag.String("latency-replicas", "2,50", "the latency part's replica counts")
		timeScale   = flag.Float64("time-scale", DefaultTimeScale, "the latency and refresh parts' local seconds per AWS second (the executions' waits are scaled with it)")
		refSeeds    = flag.String("refresh-seeds", "1,2,3", "the refresh part's seeds of localcloud.AWSLatency (comma-separated)")
		refReplicas = flag.String("refresh-replicas", "2,50", "the refresh part's replica counts")
	)
	flag.StringVar(&lenient, "lenient", "", "strict checks of the local cloud to turn off (iam, offerings, quota, tokens, consistency, eni, or all)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lat, err := parseLatencyOptions(*latSeeds, *latReplicas, *timeScale)
	if err != nil {
		os.Exit(fail(err))
	}
	ref, err := parseLatencyOptions(*refSeeds, *refReplicas, *timeScale)
	if err != nil {
		os.Exit(fail(fmt.Errorf("refresh part: %w", err)))
	}
	os.Exit(run(ctx, *parts, *replicas, *resultsPath, *docPath, *plotPath, *render, *coldRuns, *warmRuns, *logPath, lat, ref))
}

// knownParts are the parts -parts takes.
const knownParts = "lambdas, runs, latency, refresh"

// checkParts refuses an unknown part before anything is measured.
func checkParts(parts string) error {
	for _, p := range strings.Split(parts, ",") {
		switch strings.TrimSpace(p) {
		case "lambdas", "runs", "latency", "refresh":
		default:
			return fmt.Errorf("-parts: unknown part %q (%s)", p, knownParts)
		}
	}
	return nil
}

func run(ctx context.Context, parts, replicaList, resultsPath, docPath, plotPath string, renderOnly bool, coldRuns, warmRuns int, logPath string, lat, ref LatencyOptions) int {
	root, err := localcloud.RepoRoot()
	if err != nil {
		return fail(err)
	}
	res, err := readResults(filepath.Join(root, resultsPath))
	if err != nil {
		return fail(err)
	}
	if !renderOnly {
		if err := checkParts(parts); err != nil {
			return fail(err)
		}
		counts, err := parseReplicas(replicaList)
		if err != nil {
			return fail(err)
		}
		logw, closeLog, err := openLog(logPath)
		if err != nil {
			return fail(err)
		}
		defer closeLog()
		res.Machine = describeMachine(ctx, root)
		for _, p := range strings.Split(parts, ",") {
			switch strings.TrimSpace(p) {
			case "lambdas":
				l, err := measureLambdas(ctx, root, coldRuns, warmRuns, logw)
				if err != nil {
					return fail(err)
				}
				res.Lambdas = l
			case "runs":
				r, err := measureRuns(ctx, root, counts, lenient, logw)
				if r != nil {
					res.Runs = r
				}
				if err != nil {
					// Keep what was measured before the failure.
					_ = writeResults(filepath.Join(root, resultsPath), res)
					return fail(err)
				}
			case "latency":
				l, err := measureLatency(ctx, root, lat, lenient, logw)
				if l != nil {
					res.Latency = l
				}
				if err != nil {
					_ = writeResults(filepath.Join(root, resultsPath), res)
					return fail(err)
				}
			case "refresh":
				r, err := measureRefresh(ctx, root, ref, lenient, logw)
				if r != nil && len(r.Runs) > 0 {
					// A part that failed before its first refresh keeps the old figures.
					res.Refresh = r
				}
				if err != nil {
					_ = writeResults(filepath.Join(root, resultsPath), res)
					return fail(err)
				}
			default:
				return fail(fmt.Errorf("-parts: unknown part %q (%s)", p, knownParts))
			}
			if err := writeResults(filepath.Join(root, resultsPath), res); err != nil {
				return fail(err)
			}
		}
	}
	checks := Check(res)
	if err := writeReport(root, docPath, plotPath, res, checks); err != nil {
		return fail(err)
	}
	missed := 0
	for _, c := range checks {
		if c.Passed {
			fmt.Printf("target met:    %s (%s)\n", c.Target, c.Measured)
		} else {
			missed++
			fmt.Printf("TARGET MISSED: %s (%s)\n", c.Target, c.Measured)
		}
	}
	fmt.Printf("wrote %s and %s\n", docPath, plotPath)
	if missed > 0 {
		return 1
	}
	return 0
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 2
}

func progressf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func parseReplicas(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-replicas: %q is not a positive count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func openLog(path string) (io.Writer, func(), error) {
	var f *os.File
	var err error
	if path == "" {
		f, err = os.CreateTemp("", "amifleet-bench-*.log")
	} else {
		f, err = os.Create(path)
	}
	if err != nil {
		return nil, nil, err
	}
	progressf("logging builds, the CDK CLI, moto and the functions to %s", f.Name())
	return f, func() { f.Close() }, nil
}

func readResults(path string) (*Results, error) {
	res := &Results{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

func writeResults(path string, res *Results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// runCmd runs a command in dir, its output to logw, in its own process group that
// is killed with it when ctx ends.
func runCmd(ctx context.Context, dir string, logw io.Writer, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logw, logw
	if env != nil {
		cmd.Env = env
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w (see the log)", name, strings.Join(args, " "), err)
	}
	return nil
}
