package localcloud

// The local Lambda runtime: a function's real `bootstrap` run as a child process under
// a minimal Lambda Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html),
// one HTTP listener per process (sandbox.go, runtimeapi.go). The Gateway uses it to
// answer Lambda Invoke.
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
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
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
	// LogGroup is the CloudWatch Logs group that each process's output goes to, in a
	// log stream of its own (logs.go), when logs is set.
	LogGroup string
	// Region is the log group's region.
	Region string
	// logs sends the output to CloudWatch Logs; nil sends it nowhere but logw.
	logs *logShipper
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

// KillBusy kills every process of the runtime that is running an invocation, as a
// crash would (those invocations answer Runtime.ExitError), and says how many.
func (r *Runtime) KillBusy() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for sb := range r.all {
		if !slices.Contains(r.idle, sb) && !sb.dead() {
			sb.kill()
			n++
		}
	}
	return n
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

// newRequestID returns a random UUID-shaped request id, as Lambda's.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
