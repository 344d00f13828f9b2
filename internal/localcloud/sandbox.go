package localcloud

// A sandbox is one execution environment of a Runtime: a bootstrap process with its
// own Lambda Runtime API listener (runtimeapi.go), handed one invocation at a time,
// killed on a timeout or an injected crash, its output logged line by line.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

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

	out := &linePrefixWriter{w: logw, prefix: "[" + cfg.Name + "] "}
	env := sandboxEnv(cfg, ln.Addr().String())
	if cfg.logs != nil {
		out.stream = cfg.logs.openStream(cfg.Region, cfg.LogGroup)
		env = append(env, "AWS_LAMBDA_LOG_STREAM_NAME="+out.stream.name)
	}
	var cmd *exec.Cmd
	// A bootstrap just unpacked can be "text file busy" for a moment: a process forked
	// elsewhere in the gateway meanwhile holds the written file open until it execs
	// (golang/go#22315). Starting again a little later is what works.
	for try := 1; ; try++ {
		cmd = exec.Command(filepath.Join(cfg.CodeDir, "bootstrap"))
		cmd.Dir, cmd.Env = cfg.CodeDir, env
		cmd.Stdout, cmd.Stderr = out, out
		// Own process group so that a kill also ends anything the bootstrap started;
		// Pdeathsig so that nothing outlives a gateway that dies without Close.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || try == 10 {
			break
		}
		time.Sleep(time.Duration(try) * 20 * time.Millisecond)
	}
	if err != nil {
		// As Lambda does for a package without a runnable bootstrap, this is the
		// function's error, answered by the first invocation.
		sb.exitErr = fmt.Errorf("%s: %w", ErrTypeInvalidEntry, err)
		out.stream.close()
		close(sb.exited)
		return sb, nil
	}
	sb.cmd = cmd
	go func() {
		err := cmd.Wait()
		out.flush()
		out.stream.close()
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

// linePrefixWriter writes whole lines to w, each with prefix; many processes share w.
// With a stream, each line goes to CloudWatch Logs too, as written.
type linePrefixWriter struct {
	w      io.Writer
	prefix string
	stream *logStream
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
	l.stream.add(line, time.Now())
	logWriteMu.Lock()
	defer logWriteMu.Unlock()
	_, _ = io.WriteString(l.w, l.prefix)
	_, _ = l.w.Write(line)
}
