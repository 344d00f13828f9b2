package localcloud

// The local Lambda runtime: a function's real `bootstrap` run as a child process under
// a minimal Lambda Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html),
// one HTTP listener per process. The Gateway uses it to answer Lambda Invoke.
//
// What it mirrors from AWS, because the state machines match on it:
//   - a function error is answered as Lambda does (FunctionError "Unhandled", the
//     runtime's error body as the payload);
//   - a process that exits mid-invoke answers errorType "Runtime.ExitError", and the
//     next invocation starts a new process;
//   - an invocation that outlives the function's timeout kills the process and
//     answers errorType "Sandbox.Timedout" with "Task timed out after N.NN seconds":
//     that is the payload AWS sends for provided.al2023 functions, and Step Functions
//     then names the error "Sandbox.Timedout" (so Retry/Catch on States.ALL or
//     States.TaskFailed catch it, as on AWS).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Error types the runtime answers itself, named as AWS Lambda names them.
const (
	ErrTypeTimeout         = "Sandbox.Timedout"
	ErrTypeExit            = "Runtime.ExitError"
	ErrTypeInvalidEntry    = "Runtime.InvalidEntrypoint"
	ErrTypeInitTimeout     = "Runtime.InitTimeout"
	FunctionErrorUnhandled = "Unhandled"
)

const (
	// initTimeout bounds a cold start (AWS allows 10 s of init).
	initTimeout = 10 * time.Second
	// defaultFunctionTimeout is Lambda's default when a configuration has none.
	defaultFunctionTimeout = 3 * time.Second
	runtimeAPIPrefix       = "/2018-06-01/runtime/"
)

// FunctionConfig is what the runtime needs to run one deployed function.
type FunctionConfig struct {
	// Name is the function's name (AWS_LAMBDA_FUNCTION_NAME).
	Name string
	// ARN is sent to the runtime as the invoked function's ARN.
	ARN string
	// CodeDir holds the unpacked deployment package, with its executable `bootstrap`.
	CodeDir string
	// Timeout bounds each invocation; zero means Lambda's default, 3 s.
	Timeout time.Duration
	// Env is the process's whole environment apart from what the runtime itself sets
	// (AWS_LAMBDA_RUNTIME_API, LAMBDA_TASK_ROOT, PATH, TZ): the function's variables
	// plus region, credentials, endpoint and the AWS_LAMBDA_* names.
	Env map[string]string
}

// InvokeResult is a Lambda Invoke answer.
type InvokeResult struct {
	// Payload is the function's answer, or for a function error the error JSON
	// {"errorType","errorMessage",...}.
	Payload []byte
	// FunctionError is "" on success, "Unhandled" for any function error.
	FunctionError string
}

// ErrorType is the errorType of a function error's payload, or "".
func (r InvokeResult) ErrorType() string {
	if r.FunctionError == "" {
		return ""
	}
	e, _ := pipeline.ParseLambdaError(r.Payload)
	return e.ErrorType
}

// RuntimeStats counts what a Runtime did.
type RuntimeStats struct {
	// Starts counts bootstrap processes started (cold starts and restarts).
	Starts int `json:"starts"`
	// Invocations counts invocations answered.
	Invocations int `json:"invocations"`
	// Running is how many processes are alive now.
	Running int `json:"running"`
}

// Runtime runs one function: a small pool of bootstrap processes, each serving one
// invocation at a time, as Lambda's execution environments do. It is safe for
// concurrent use.
type Runtime struct {
	cfg   FunctionConfig
	logw  io.Writer
	slots chan struct{} // one per invocation in flight, bounding the pool

	mu     sync.Mutex
	idle   []*sandbox
	all    map[*sandbox]struct{}
	stats  RuntimeStats
	closed bool
}

// NewRuntime returns a runtime for cfg with at most maxProcs processes (at least 1).
// Processes start on the first invocation that needs one. logw gets the processes'
// output, each line prefixed with the function's name; nil discards it.
func NewRuntime(cfg FunctionConfig, maxProcs int, logw io.Writer) *Runtime {
	if maxProcs < 1 {
		maxProcs = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultFunctionTimeout
	}
	if logw == nil {
		logw = io.Discard
	}
	return &Runtime{cfg: cfg, logw: logw, slots: make(chan struct{}, maxProcs), all: map[*sandbox]struct{}{}}
}

// Config is the configuration the runtime was made with.
func (r *Runtime) Config() FunctionConfig { return r.cfg }

// Stats reports the runtime's counters.
func (r *Runtime) Stats() RuntimeStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Running = len(r.all)
	return s
}

// errRuntimeClosed is returned by Invoke after Close.
var errRuntimeClosed = errors.New("runtime closed")

// Invoke runs one invocation and answers as Lambda would. The error is only for the
// caller's context ending or the runtime being closed; everything the function does
// wrong is an InvokeResult with FunctionError set.
func (r *Runtime) Invoke(ctx context.Context, requestID string, payload []byte) (InvokeResult, error) {
	return r.invoke(ctx, requestID, payload, false)
}

// InvokeAndCrash hands the invocation to a process and kills that process at once,
// as a crashing function would: the answer is a Runtime.ExitError, and the next
// invocation starts a new process.
func (r *Runtime) InvokeAndCrash(ctx context.Context, requestID string, payload []byte) (InvokeResult, error) {
	return r.invoke(ctx, requestID, payload, true)
}

func (r *Runtime) invoke(ctx context.Context, requestID string, payload []byte, crash bool) (InvokeResult, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return InvokeResult{}, ctx.Err()
	}
	defer func() { <-r.slots }()

	inv := &invocation{id: requestID, payload: payload, done: make(chan InvokeResult, 1)}
	for {
		sb, reused, err := r.take()
		if err != nil {
			return InvokeResult{}, err
		}
		res, err := sb.run(ctx, inv, crash, r.cfg.Timeout)
		if errors.Is(err, errNotDelivered) && reused {
			// A warm process that died between two invocations (a panic makes the
			// Go runtime exit right after reporting it): not this invocation's fault,
			// so it goes to a fresh process.
			r.discard(sb)
			continue
		}
		if err != nil && !errors.Is(err, errNotDelivered) {
			r.discard(sb)
			return InvokeResult{}, err
		}
		r.mu.Lock()
		r.stats.Invocations++
		r.mu.Unlock()
		if sb.dead() {
			r.discard(sb)
		} else {
			r.release(sb)
		}
		return res, nil
	}
}

// take returns an idle process, or starts one; reused says it served before.
func (r *Runtime) take() (*sandbox, bool, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, false, errRuntimeClosed
	}
	for len(r.idle) > 0 {
		sb := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if !sb.dead() {
			r.mu.Unlock()
			return sb, true, nil
		}
		delete(r.all, sb)
		go sb.close()
	}
	r.stats.Starts++
	r.mu.Unlock()

	sb, err := startSandbox(r.cfg, r.logw)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		go sb.close()
		return nil, false, errRuntimeClosed
	}
	r.all[sb] = struct{}{}
	return sb, false, nil
}

func (r *Runtime) release(sb *sandbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		go sb.close()
		return
	}
	r.idle = append(r.idle, sb)
}

func (r *Runtime) discard(sb *sandbox) {
	r.mu.Lock()
	delete(r.all, sb)
	r.mu.Unlock()
	sb.close()
}

// Close stops every process and waits for them to exit.
func (r *Runtime) Close() {
	r.mu.Lock()
	r.closed = true
	all := make([]*sandbox, 0, len(r.all))
	for sb := range r.all {
		all = append(all, sb)
	}
	r.all = map[*sandbox]struct{}{}
	r.idle = nil
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, sb := range all {
		wg.Add(1)
		go func() { defer wg.Done(); sb.close() }()
	}
	wg.Wait()
}

// invocation is one event on its way through a process.
type invocation struct {
	id      string
	payload []byte
	done    chan InvokeResult // buffered: the runtime API handler never blocks on it
}

// errNotDelivered means the process died before it took the invocation.
var errNotDelivered = errors.New("process exited before taking the invocation")

// sandbox is one bootstrap process and its own Runtime API listener.
type sandbox struct {
	cfg     FunctionConfig
	ln      net.Listener
	srv     *http.Server
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited and exitErr is set
	exitErr error
	next    chan *invocation // unbuffered: a send succeeds when /next takes it

	mu       sync.Mutex
	current  *invocation
	initErr  []byte // body of POST /runtime/init/error
	closeOne sync.Once
}

func startSandbox(cfg FunctionConfig, logw io.Writer) (*sandbox, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtime API listener for %s: %w", cfg.Name, err)
	}
	sb := &sandbox{cfg: cfg, ln: ln, exited: make(chan struct{}), next: make(chan *invocation)}
	sb.srv = &http.Server{Handler: http.HandlerFunc(sb.serveRuntimeAPI), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sb.srv.Serve(ln) }()

	cmd := exec.Command(filepath.Join(cfg.CodeDir, "bootstrap"))
	cmd.Dir = cfg.CodeDir
	cmd.Env = sandboxEnv(cfg, ln.Addr().String())
	out := &linePrefixWriter{w: logw, prefix: "[" + cfg.Name + "] "}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group so that a kill also ends anything the bootstrap started;
	// Pdeathsig so that nothing outlives a gateway that dies without Close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		// As Lambda does for a package without a runnable bootstrap, this is the
		// function's error, answered by the first invocation.
		sb.exitErr = fmt.Errorf("%s: %w", ErrTypeInvalidEntry, err)
		close(sb.exited)
		return sb, nil
	}
	sb.cmd = cmd
	go func() {
		err := cmd.Wait()
		out.flush()
		sb.exitErr = err
		close(sb.exited)
	}()
	return sb, nil
}

// sandboxEnv is the process environment: nothing from the host but PATH, so that a
// developer's AWS profile or real credentials never reach a function.
func sandboxEnv(cfg FunctionConfig, apiAddr string) []string {
	env := map[string]string{}
	for k, v := range cfg.Env {
		env[k] = v
	}
	env["AWS_LAMBDA_RUNTIME_API"] = apiAddr
	env["LAMBDA_TASK_ROOT"] = cfg.CodeDir
	env["LAMBDA_RUNTIME_DIR"] = cfg.CodeDir
	env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	env["TZ"] = ":UTC"
	env["LANG"] = "en_US.UTF-8"
	if _, ok := env["AWS_LAMBDA_FUNCTION_NAME"]; !ok {
		env["AWS_LAMBDA_FUNCTION_NAME"] = cfg.Name
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	return list
}

func (sb *sandbox) dead() bool {
	select {
	case <-sb.exited:
		return true
	default:
		return false
	}
}

// kill ends the process group at once.
func (sb *sandbox) kill() {
	if sb.cmd != nil && sb.cmd.Process != nil {
		_ = syscall.Kill(-sb.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// close kills the process, waits for it, and stops the listener.
func (sb *sandbox) close() {
	sb.closeOne.Do(func() {
		sb.kill()
		<-sb.exited
		_ = sb.srv.Close()
	})
}

// run hands inv to the process and waits for its answer, the process's exit, or the
// timeout. errNotDelivered means the process died before taking inv.
func (sb *sandbox) run(ctx context.Context, inv *invocation, crash bool, timeout time.Duration) (InvokeResult, error) {
	initTimer := time.NewTimer(initTimeout)
	defer initTimer.Stop()
	select {
	case sb.next <- inv:
	case <-sb.exited:
		if sb.cmd == nil {
			return errorResult(ErrTypeInvalidEntry, fmt.Sprintf("RequestId: %s Error: function %s: %v", inv.id, sb.cfg.Name, sb.exitErr)), nil
		}
		sb.mu.Lock()
		initErr := sb.initErr
		sb.mu.Unlock()
		if len(initErr) > 0 {
			return InvokeResult{Payload: initErr, FunctionError: FunctionErrorUnhandled}, errNotDelivered
		}
		return sb.exitResult(inv.id), errNotDelivered
	case <-initTimer.C:
		sb.kill()
		<-sb.exited
		return errorResult(ErrTypeInitTimeout, fmt.Sprintf("RequestId: %s Error: function %s: runtime did not ask for an invocation within %s", inv.id, sb.cfg.Name, initTimeout)), nil
	case <-ctx.Done():
		return InvokeResult{}, ctx.Err()
	}
	if crash {
		// Whatever the process manages to post before the signal lands is lost, as
		// it would be when a real function crashes mid-invoke.
		sb.kill()
		<-sb.exited
		return sb.exitResult(inv.id), nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-inv.done:
		return res, nil
	case <-sb.exited:
		// An answer posted just before the exit (a panic) is the real answer.
		select {
		case res := <-inv.done:
			return res, nil
		default:
		}
		return sb.exitResult(inv.id), nil
	case <-timer.C:
		sb.kill()
		<-sb.exited
		return errorResult(ErrTypeTimeout, fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", inv.id, timeout.Seconds())), nil
	case <-ctx.Done():
		sb.kill()
		return InvokeResult{}, ctx.Err()
	}
}

func (sb *sandbox) exitResult(requestID string) InvokeResult {
	return errorResult(ErrTypeExit, fmt.Sprintf("RequestId: %s Error: function %s: Runtime exited with error: %v", requestID, sb.cfg.Name, sb.exitErr))
}

func errorResult(errorType, message string) InvokeResult {
	body, _ := json.Marshal(pipeline.LambdaError{ErrorType: errorType, ErrorMessage: message})
	return InvokeResult{Payload: body, FunctionError: FunctionErrorUnhandled}
}

// serveRuntimeAPI is the part of the Lambda Runtime API that runtimes use: next,
// response, error, and init error.
func (sb *sandbox) serveRuntimeAPI(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, runtimeAPIPrefix)
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		sb.serveNext(w, r)
	case r.Method == http.MethodPost && path == "init/error":
		body, _ := io.ReadAll(r.Body)
		sb.mu.Lock()
		sb.initErr = functionErrorBody(body, r.Header.Get("Lambda-Runtime-Function-Error-Type"))
		sb.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		id, what, ok := strings.Cut(strings.TrimPrefix(path, "invocation/"), "/")
		if !ok || (what != "response" && what != "error") {
			http.Error(w, `{"errorType":"InvalidRequest"}`, http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sb.mu.Lock()
		inv := sb.current
		if inv != nil && inv.id == id {
			sb.current = nil
		} else {
			inv = nil
		}
		sb.mu.Unlock()
		if inv == nil {
			http.Error(w, `{"errorType":"InvalidRequestID","errorMessage":"unknown or finished request id"}`, http.StatusBadRequest)
			return
		}
		res := InvokeResult{Payload: body}
		if what == "error" {
			res = InvokeResult{Payload: functionErrorBody(body, r.Header.Get("Lambda-Runtime-Function-Error-Type")), FunctionError: FunctionErrorUnhandled}
		}
		inv.done <- res
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, `{"errorType":"InvalidRequest"}`, http.StatusNotFound)
	}
}

func (sb *sandbox) serveNext(w http.ResponseWriter, r *http.Request) {
	select {
	case inv := <-sb.next:
		sb.mu.Lock()
		sb.current = inv
		sb.mu.Unlock()
		deadline := time.Now().Add(sb.cfg.Timeout)
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", sb.cfg.ARN)
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.payload)
	case <-r.Context().Done():
	case <-sb.exited:
	}
}

// functionErrorBody is the error JSON the caller gets: the runtime's own body when it
// is JSON, else one built from the error type header.
func functionErrorBody(body []byte, errorType string) []byte {
	if json.Valid(body) && len(bytes.TrimSpace(body)) > 0 {
		return body
	}
	if errorType == "" {
		errorType = "Runtime.Unknown"
	}
	return errorResult(errorType, string(body)).Payload
}

// linePrefixWriter writes whole lines to w, each with prefix; many processes share w.
type linePrefixWriter struct {
	w      io.Writer
	prefix string
	mu     sync.Mutex
	buf    []byte
}

var logWriteMu sync.Mutex // one line at a time on a shared writer

func (l *linePrefixWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i+1])
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *linePrefixWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = nil
	}
}

func (l *linePrefixWriter) emit(line []byte) {
	logWriteMu.Lock()
	defer logWriteMu.Unlock()
	_, _ = io.WriteString(l.w, l.prefix)
	_, _ = l.w.Write(line)
}

// newRequestID returns a random UUID-shaped request id, as Lambda's.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
