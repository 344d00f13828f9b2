package main

// Part 1: per-Lambda figures that need no local cloud: each bootstrap's size for
// arm64 (as shipped) and for this machine, its start to first answer and peak memory
// under the local Lambda runtime, and the CDK synth time.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
)

// ShippedArch is the architecture the stack deploys the Lambdas for on AWS.
const ShippedArch = "arm64"

// LambdaResults are part 1's figures.
type LambdaResults struct {
	Measured  time.Time         `json:"measured"`
	HostArch  string            `json:"hostArch"`
	ColdRuns  int               `json:"coldRuns"`
	WarmRuns  int               `json:"warmRuns"`
	Functions []FunctionFigures `json:"functions"`
	Synth     SynthFigures      `json:"synth"`
}

// FunctionFigures are one Lambda's figures.
type FunctionFigures struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// BootstrapBytes and ZipBytes per GOARCH.
	BootstrapBytes map[string]int64 `json:"bootstrapBytes"`
	ZipBytes       map[string]int64 `json:"zipBytes"`
	// Input says what the cold starts were sent; Answer is "ok" or the errorType.
	Input  string `json:"input"`
	Answer string `json:"answer"`
	// ColdMS are the start-to-first-answer times of each cold start.
	ColdMS       []float64 `json:"coldMs"`
	ColdMedianMS float64   `json:"coldMedianMs"`
	WarmMedianMS float64   `json:"warmMedianMs"`
	// MaxRSSKB is the largest VmHWM (peak resident set) of the bootstrap process
	// seen after its answers, over every cold start.
	MaxRSSKB int64 `json:"maxRssKb"`
	// AWSCalls counts the requests the functions sent to the stand-in endpoint
	// during the cold starts of this function.
	AWSCalls int `json:"awsCalls"`
	// MemoryMB is what the synthesized template gives the function on AWS.
	MemoryMB int `json:"memoryMb"`
}

// SynthFigures are the CDK synth's figures.
type SynthFigures struct {
	Arch        string    `json:"arch"`
	Seconds     []float64 `json:"seconds"`
	PeakRSSMB   float64   `json:"peakRssMb"`
	Resources   int       `json:"resources"`
	TemplateKB  float64   `json:"templateKb"`
	CLIVersion  string    `json:"cliVersion"`
	Description string    `json:"description"`
}

// coldInput is what a function is sent for its cold starts: an input its handler
// answers by itself (a real answer for Validate and Verify; the input check's
// StageError for the others; CreateSecurityGroups's first step is an AWS call, which
// the stand-in endpoint refuses), so the figure is the runtime's and the handler's,
// not an emulator's.
func coldInput(name string) (string, []byte) {
	switch name {
	case "Validate":
		return "a valid input (executionName bench-cold-start, input {})", []byte(`{"executionName":"bench-cold-start","input":{}}`)
	case "Verify":
		return "a document with verify.skip", []byte(`{"runId":"bench","config":{"verify":{"skip":true,"skipReason":"bench"}},"resources":{}}`)
	default:
		return "an empty document {}", []byte(`{}`)
	}
}

// refusingEndpoint stands in for AWS during the cold starts: every request is
// counted and answered with a non-retryable EC2-style error at once.
func refusingEndpoint(calls *atomic.Int64) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>amifleet bench: no AWS here</Message></Error></Errors><RequestID>bench</RequestID></Response>`)
	}))
}

// measureLambdas builds both architectures, then measures every function.
func measureLambdas(ctx context.Context, root string, coldRuns, warmRuns int, logw io.Writer) (*LambdaResults, error) {
	host := runtime.GOARCH
	res := &LambdaResults{Measured: time.Now().UTC(), HostArch: host, ColdRuns: coldRuns, WarmRuns: warmRuns}
	for _, arch := range uniq(ShippedArch, host) {
		progressf("building the Lambdas for %s (make build ARCH=%s)", arch, arch)
		if err := runCmd(ctx, root, logw, nil, "make", "build", "ARCH="+arch); err != nil {
			return nil, err
		}
	}
	var calls atomic.Int64
	stub := refusingEndpoint(&calls)
	defer stub.Close()

	for _, f := range pipeline.Functions {
		ff := FunctionFigures{Name: f.Name, Dir: f.Dir(), BootstrapBytes: map[string]int64{}, ZipBytes: map[string]int64{}}
		for _, arch := range uniq(ShippedArch, host) {
			st, err := os.Stat(filepath.Join(root, "build", arch, f.Dir(), "bootstrap"))
			if err != nil {
				return nil, err
			}
			ff.BootstrapBytes[arch] = st.Size()
			zs, err := os.Stat(filepath.Join(root, "build", arch, f.Dir()+".zip"))
			if err != nil {
				return nil, err
			}
			ff.ZipBytes[arch] = zs.Size()
		}
		desc, payload := coldInput(f.Name)
		ff.Input = desc
		calls.Store(0)
		var warm []float64
		for i := 0; i < coldRuns; i++ {
			cold, w, rss, answer, err := coldStart(ctx, f, filepath.Join(root, "build", host, f.Dir()), stub.URL, payload, warmRuns)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			ff.ColdMS = append(ff.ColdMS, ms(cold))
			warm = append(warm, w...)
			ff.MaxRSSKB = max(ff.MaxRSSKB, rss)
			ff.Answer = answer
		}
		ff.AWSCalls = int(calls.Load())
		ff.ColdMedianMS = median(ff.ColdMS)
		ff.WarmMedianMS = median(warm)
		progressf("%-20s bootstrap %s %.1f MB, %s %.1f MB; first answer median %.1f ms (%s); peak RSS %.1f MB",
			f.Name, ShippedArch, mb(ff.BootstrapBytes[ShippedArch]), host, mb(ff.BootstrapBytes[host]),
			ff.ColdMedianMS, ff.Answer, float64(ff.MaxRSSKB)/1024)
		res.Functions = append(res.Functions, ff)
	}

	synth, memory, err := measureSynth(ctx, root, logw)
	if err != nil {
		return nil, err
	}
	res.Synth = synth
	for i := range res.Functions {
		res.Functions[i].MemoryMB = memory[res.Functions[i].Name]
	}
	return res, nil
}

// coldStart starts one process of f under the local runtime, times its first answer,
// reads its peak RSS, then times warm invocations.
func coldStart(ctx context.Context, f pipeline.Function, codeDir, endpoint string, payload []byte, warmRuns int) (cold time.Duration, warm []float64, rssKB int64, answer string, err error) {
	rt := localcloud.NewRuntime(localcloud.FunctionConfig{
		Name:    "bench-" + f.Dir(),
		ARN:     "arn:aws:lambda:us-east-1:123456789012:function:bench-" + f.Dir(),
		CodeDir: codeDir,
		Timeout: 10 * time.Second,
		Env: map[string]string{
			"AWS_REGION":            "us-east-1",
			"AWS_DEFAULT_REGION":    "us-east-1",
			"AWS_ACCESS_KEY_ID":     "bench",
			"AWS_SECRET_ACCESS_KEY": "bench",
			"AWS_ENDPOINT_URL":      endpoint,
		},
	}, 1, nil)
	defer rt.Close()
	before := childPIDs()
	t := time.Now()
	out, err := rt.Invoke(ctx, "bench-cold", payload)
	cold = time.Since(t)
	if err != nil {
		return 0, nil, 0, "", err
	}
	answer = "ok"
	if out.FunctionError != "" {
		answer = out.ErrorType()
	}
	pid := newChild(before, filepath.Join(codeDir, "bootstrap"))
	if pid == 0 {
		return 0, nil, 0, "", fmt.Errorf("cannot find the bootstrap process of %s", codeDir)
	}
	for i := 0; i < warmRuns; i++ {
		t := time.Now()
		if _, err := rt.Invoke(ctx, "bench-warm-"+strconv.Itoa(i), payload); err != nil {
			return 0, nil, 0, "", err
		}
		warm = append(warm, ms(time.Since(t)))
	}
	rssKB, err = vmHWM(pid)
	if err != nil {
		return 0, nil, 0, "", err
	}
	if st := rt.Stats(); st.Starts != 1 {
		return 0, nil, 0, "", fmt.Errorf("the runtime started %d processes for one cold start (a crash?)", st.Starts)
	}
	return cold, warm, rssKB, answer, nil
}

// childPIDs lists this process's children (every thread's, as a fork is recorded
// under the thread that made it).
func childPIDs() []int {
	var pids []int
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// newChild is the child, not in before, running exe.
func newChild(before []int, exe string) int {
	for _, pid := range childPIDs() {
		if slices.Contains(before, pid) {
			continue
		}
		if got, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && got == exe {
			return pid
		}
	}
	return 0
}

// vmHWM reads a process's peak resident set size in KiB.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmHWM(string(b))
}

// parseVmHWM finds "VmHWM:   1234 kB" in /proc/PID/status.
func parseVmHWM(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("unexpected VmHWM line %q", line)
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in the process status")
}

// measureSynth runs `cdk synth` for the shipped architecture twice (the first run
// also builds the CDK app when the Go build cache lacks it) into a temporary
// directory, and reads each function's memory from the template.
func measureSynth(ctx context.Context, root string, logw io.Writer) (SynthFigures, map[string]int, error) {
	s := SynthFigures{Arch: ShippedArch}
	cli := filepath.Join(root, "node_modules", ".bin", "cdk")
	if _, err := os.Stat(cli); err != nil {
		progressf("installing the CDK CLI (npm ci)")
		if err := runCmd(ctx, root, logw, nil, "npm", "ci", "--no-audit", "--no-fund"); err != nil {
			return s, nil, err
		}
	}
	if v, err := exec.CommandContext(ctx, cli, "--version").Output(); err == nil {
		s.CLIVersion = strings.TrimSpace(string(v))
	}
	dir, err := os.MkdirTemp("", "amifleet-bench-synth-")
	if err != nil {
		return s, nil, err
	}
	defer os.RemoveAll(dir)
	env := append(os.Environ(), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20",
		"CDK_DEFAULT_ACCOUNT=123456789012", "CDK_DEFAULT_REGION=us-east-1")
	for i := 0; i < 2; i++ {
		out := filepath.Join(dir, "cdk.out"+strconv.Itoa(i))
		cmd := exec.CommandContext(ctx, cli, "synth", "--quiet", "--output", out, "-c", "arch="+cdkArch(ShippedArch))
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = root, env, logw, logw
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		t := time.Now()
		if err := cmd.Run(); err != nil {
			return s, nil, fmt.Errorf("cdk synth: %w", err)
		}
		s.Seconds = append(s.Seconds, time.Since(t).Seconds())
		// wait4's rusage of the CLI covers the processes it waited for (the Go
		// app it builds and runs): the largest of them.
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.PeakRSSMB = max(s.PeakRSSMB, float64(ru.Maxrss)/1024)
		}
		progressf("cdk synth %d: %.1f s", i+1, s.Seconds[i])
	}
	b, err := os.ReadFile(filepath.Join(dir, "cdk.out1", localcloud.StackName+".template.json"))
	if err != nil {
		return s, nil, err
	}
	s.TemplateKB = float64(len(b)) / 1024
	resources, memory, err := templateFigures(b)
	if err != nil {
		return s, nil, err
	}
	s.Resources = resources
	s.Description = "node_modules/.bin/cdk synth --quiet -c arch=" + cdkArch(ShippedArch) + " (the Go CDK app is built by cdk.json's app command, then run)"
	return s, memory, nil
}

// templateFigures counts a template's resources and reads each function's memory,
// keyed by stage name: the stack describes each function as "amifleet stage <Name>".
func templateFigures(b []byte) (int, map[string]int, error) {
	var t struct {
		Resources map[string]struct {
			Type       string `json:"Type"`
			Properties struct {
				MemorySize  int    `json:"MemorySize"`
				Description string `json:"Description"`
			} `json:"Properties"`
		} `json:"Resources"`
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return 0, nil, fmt.Errorf("template: %w", err)
	}
	memory := map[string]int{}
	for _, r := range t.Resources {
		if name, ok := strings.CutPrefix(r.Properties.Description, "amifleet stage "); ok && r.Type == "AWS::Lambda::Function" {
			memory[name] = r.Properties.MemorySize
		}
	}
	return len(t.Resources), memory, nil
}

func cdkArch(goarch string) string {
	if goarch == "amd64" {
		return "x86_64"
	}
	return "arm64"
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mb(n int64) float64 { return float64(n) / 1e6 }

// median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
