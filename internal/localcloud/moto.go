package localcloud

// moto's server: checking that the supported moto is installed, starting it with the
// launcher that works around its known bugs (moto_launch.py), resetting and stopping
// it.

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MotoVersion is the one moto version the launcher's workarounds are written for.
const MotoVersion = "5.2.1"

// motoInstallHint is what a user runs to get the supported moto: make builds .venv/,
// which pythonOr finds, where the system Python refuses pip (PEP 668).
const motoInstallHint = `run 'make check-tools', which installs moto into .venv/ where python3 lacks it, or pip install "moto[server]==` + MotoVersion + `"`

// motoLauncher patches moto and serves it; see the file's docstring.
//
//go:embed moto_launch.py
var motoLauncher string

// Bounds of the start-up. Cold, moto answers in about 2 s on a small machine.
const (
	motoReadyTimeout = 30 * time.Second
	motoStopTimeout  = 5 * time.Second
)

// MotoOptions configures StartMoto.
type MotoOptions struct {
	// Port to listen on (127.0.0.1); 0 takes a free port.
	Port int
	// LambdaPort is where moto's ASL interpreter sends Lambda Invoke
	// (http://localhost:LambdaPort, moto's MOTO_PORT): the gateway's port. 0 sends
	// them to moto itself.
	LambdaPort int
	// LogWriter gets the server's output (its request log); nil discards it.
	LogWriter io.Writer
	// WaitScale, in (0, 1], makes executions' Wait states and Retry intervals last
	// their seconds × WaitScale, on the clock of a latency model (0 means 1: as
	// written).
	WaitScale float64
	// Python is the interpreter that has moto installed; empty means pythonOr's choice:
	// $AMIFLEET_PYTHON, the repository's .venv/, python3.
	Python string
}

// Moto is a running moto server.
type Moto struct {
	cmd  *exec.Cmd
	port int
	done chan struct{} // closed when the process has exited
	err  error         // the process's exit status, set before done is closed
	tail *TailBuffer
	once sync.Once
	stop error
}

// StartMoto checks that the supported moto is installed, starts it through the
// launcher, and returns once it answers. The caller must call Stop.
func StartMoto(ctx context.Context, opts MotoOptions) (*Moto, error) {
	python := pythonOr(opts.Python)
	if err := CheckMoto(ctx, python); err != nil {
		return nil, err
	}
	logw := opts.LogWriter
	if logw == nil {
		logw = io.Discard
	}

	scale := opts.WaitScale
	if scale == 0 {
		scale = 1
	}
	cmd := exec.Command(python, "-c", motoLauncher, "--host", "127.0.0.1", "--port", strconv.Itoa(opts.Port),
		"--wait-scale", strconv.FormatFloat(scale, 'g', -1, 64))
	cmd.Env = motoEnv(os.Environ(), opts.LambdaPort)
	// Own process group, so that Stop ends moto and anything it started; and killed
	// with us if this process dies before calling Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	tail := NewTailBuffer(8 << 10)
	cmd.Stderr = io.MultiWriter(logw, tail)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto: %w", err)
	}
	m := &Moto{cmd: cmd, done: make(chan struct{}), tail: tail}

	// The launcher's first line says which port it bound; the rest is log.
	portc := make(chan int, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if p, ok := parseListening(line); ok {
				portc <- p
				continue
			}
			fmt.Fprintln(io.MultiWriter(logw, tail), line)
		}
	}()
	go func() {
		<-copied // Wait closes the pipe: read it all first
		m.err = cmd.Wait()
		close(m.done)
	}()

	fail := func(err error) (*Moto, error) {
		_ = m.Stop()
		return nil, fmt.Errorf("%w\nmoto's output ends with:\n%s", err, tail.String())
	}
	deadline := time.NewTimer(motoReadyTimeout)
	defer deadline.Stop()
	select {
	case m.port = <-portc:
	case <-m.done:
		return fail(fmt.Errorf("moto exited before listening: %v", m.err))
	case <-deadline.C:
		return fail(fmt.Errorf("moto did not listen within %s", motoReadyTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if err := m.waitReady(ctx, deadline.C); err != nil {
		return fail(err)
	}
	fmt.Fprintf(logw, "amifleet: moto %s ready at %s in %s (pid %d)\n", MotoVersion, m.Endpoint(), time.Since(start).Round(time.Millisecond), m.PID())
	return m, nil
}

// CheckMoto reports, with what to do about it, when python has no moto or another
// version than MotoVersion.
func CheckMoto(ctx context.Context, python string) error {
	path, err := exec.LookPath(python)
	if err != nil {
		return fmt.Errorf("the local cloud needs Python 3 with moto %s: %s not found (install Python 3, then %s)", MotoVersion, python, motoInstallHint)
	}
	const probe = `
import importlib.metadata as m
try:
    print(m.version("moto"))
except m.PackageNotFoundError:
    print("none")
    raise SystemExit
try:
    import flask, werkzeug
except ImportError:
    print("no-server")
`
	out, err := exec.CommandContext(ctx, path, "-c", probe).CombinedOutput()
	if err != nil {
		return fmt.Errorf("the local cloud needs moto %s: %s failed: %v: %s", MotoVersion, python, err, bytes.TrimSpace(out))
	}
	lines := strings.Fields(string(out))
	switch {
	case len(lines) == 0 || lines[0] == "none":
		return fmt.Errorf("the local cloud needs moto %s, which %s cannot import: %s", MotoVersion, path, motoInstallHint)
	case lines[0] != MotoVersion:
		return fmt.Errorf("moto %s is installed for %s; amifleet supports exactly %s (its workarounds are for that version): %s", lines[0], path, MotoVersion, motoInstallHint)
	case len(lines) > 1 && lines[1] == "no-server":
		return fmt.Errorf("moto %s is installed without its server extras (flask, werkzeug): %s", MotoVersion, motoInstallHint)
	}
	return nil
}

// motoEnv is env for the launcher: MOTO_PORT set to lambdaPort, or removed so that
// the launcher sets it to its own port.
func motoEnv(env []string, lambdaPort int) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "MOTO_PORT=") {
			out = append(out, kv)
		}
	}
	if lambdaPort != 0 {
		out = append(out, "MOTO_PORT="+strconv.Itoa(lambdaPort))
	}
	return out
}

func parseListening(line string) (int, bool) {
	rest, ok := strings.CutPrefix(line, "amifleet-moto listening on ")
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	p, err := strconv.Atoi(rest[i+1:])
	return p, err == nil && p > 0
}

// waitReady polls moto's own API until it answers, the process exits, or timeout.
func (m *Moto) waitReady(ctx context.Context, timeout <-chan time.Time) error {
	client := &http.Client{Timeout: 2 * time.Second}
	url := m.Endpoint() + "/moto-api/data.json"
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-m.done:
			return fmt.Errorf("moto exited before it was ready: %v", m.err)
		case <-timeout:
			return fmt.Errorf("moto not ready within %s: %v", motoReadyTimeout, last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Endpoint is moto's URL. The host is localhost, not 127.0.0.1: moto reads S3
// path-style bucket names only for localhost (the CDK's assets go through S3).
func (m *Moto) Endpoint() string { return "http://localhost:" + strconv.Itoa(m.port) }

// Port is the port moto listens on.
func (m *Moto) Port() int { return m.port }

// PID is the launcher's process id (the leader of its process group).
func (m *Moto) PID() int { return m.cmd.Process.Pid }

// Reset clears every resource in every account and region (POST /moto-api/reset).
// The launcher's settings and workarounds stay in place.
func (m *Moto) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Endpoint()+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reset moto: %s", resp.Status)
	}
	return nil
}

// Stop ends moto's whole process group (SIGTERM, then SIGKILL after a few seconds)
// and waits for it. Calling it again returns the first result.
func (m *Moto) Stop() error {
	m.once.Do(func() {
		pgid := m.cmd.Process.Pid
		select {
		case <-m.done:
			return // already gone
		default:
		}
		if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			m.stop = fmt.Errorf("stop moto (pid %d): %w", pgid, err)
		}
		select {
		case <-m.done:
		case <-time.After(motoStopTimeout):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-m.done
		}
		// Whatever else the group holds (nothing, normally) goes too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	return m.stop
}
