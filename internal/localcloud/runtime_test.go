package localcloud

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoBuild builds testdata/echolambda for this machine once per test binary.
var echoBuild struct {
	once sync.Once
	dir  string // holds bootstrap
	zip  []byte // a deployment package holding it, as tools/lambdazip makes
	err  error
	took time.Duration
}

// echoLambda returns the directory of the built echo function and its zip.
func echoLambda(t *testing.T) (string, []byte) {
	t.Helper()
	echoBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "amifleet-echolambda-")
		if err != nil {
			echoBuild.err = err
			return
		}
		start := time.Now()
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", filepath.Join(dir, "bootstrap"), "./testdata/echolambda")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			echoBuild.err = errors.New("go build echolambda: " + err.Error() + "\n" + string(out))
			return
		}
		echoBuild.took = time.Since(start)
		echoBuild.dir = dir
		echoBuild.zip, echoBuild.err = zipBootstrap(filepath.Join(dir, "bootstrap"))
	})
	if echoBuild.err != nil {
		t.Fatal(echoBuild.err)
	}
	return echoBuild.dir, echoBuild.zip
}

func zipBootstrap(path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	hdr := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(bin); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if echoBuild.dir != "" {
		os.RemoveAll(echoBuild.dir)
	}
	os.Exit(code)
}

// echoOutput is testdata/echolambda's answer.
type echoOutput struct {
	Input struct {
		Mode string `json:"mode"`
	} `json:"input"`
	PID        int               `json:"pid"`
	RequestID  string            `json:"requestId"`
	Env        map[string]string `json:"env"`
	DeadlineMS int64             `json:"deadlineMs"`
	StartedNS  int64             `json:"startedNs"`
	EndedNS    int64             `json:"endedNs"`
}

func decodeEcho(t *testing.T, res InvokeResult) echoOutput {
	t.Helper()
	if res.FunctionError != "" {
		t.Fatalf("function error %s: %s", res.FunctionError, res.Payload)
	}
	var out echoOutput
	if err := json.Unmarshal(res.Payload, &out); err != nil {
		t.Fatalf("answer %q: %v", res.Payload, err)
	}
	return out
}

// tWriter sends the processes' output to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newEchoRuntime(t *testing.T, timeout time.Duration, procs int) *Runtime {
	t.Helper()
	dir, _ := echoLambda(t)
	rt := NewRuntime(FunctionConfig{
		Name:    "echo",
		ARN:     "arn:aws:lambda:us-east-1:123456789012:function:echo",
		CodeDir: dir,
		Timeout: timeout,
		Env: map[string]string{
			"ECHO_VAR":   "from-config",
			"AWS_REGION": "eu-west-1",
		},
	}, procs, tWriter{t})
	t.Cleanup(rt.Close)
	return rt
}

// alive reports whether a process with that pid exists.
func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// TestRuntimeInvoke runs the real echo bootstrap through each kind of answer, in
// one process's lifetime: the state that carries from one step to the next (which
// process serves, how many were started) is part of what is checked.
func TestRuntimeInvoke(t *testing.T) {
	rt := newEchoRuntime(t, 700*time.Millisecond, 1)
	ctx := context.Background()

	steps := []struct {
		name      string
		payload   string
		errorType string // "" for success
		msgHas    string // in errorMessage
		newPID    bool   // served by a new process (the previous one ended)
		starts    int    // processes started so far
	}{
		{name: "ok", payload: `{"mode":"ok"}`, starts: 1},
		{name: "warm", payload: `{"mode":"ok"}`, starts: 1},
		{name: "named error", payload: `{"mode":"error","message":"boom"}`, errorType: "EchoError", msgHas: "boom", starts: 1},
		{name: "still warm", payload: `{"mode":"ok"}`, starts: 1},
		{name: "panic", payload: `{"mode":"panic","message":"kaput"}`, errorType: "string", msgHas: "kaput", starts: 1},
		{name: "restarted after panic", payload: `{"mode":"ok"}`, newPID: true, starts: 2},
		{name: "exit", payload: `{"mode":"exit"}`, errorType: ErrTypeExit, msgHas: "function echo", starts: 2},
		{name: "restarted after exit", payload: `{"mode":"ok"}`, newPID: true, starts: 3},
		{name: "timeout", payload: `{"mode":"ok","sleepMs":5000}`, errorType: ErrTypeTimeout, msgHas: "Task timed out after 0.70 seconds", starts: 3},
		{name: "restarted after timeout", payload: `{"mode":"ok"}`, newPID: true, starts: 4},
	}
	lastPID := 0
	for i, st := range steps {
		id := "req-" + st.name
		start := time.Now()
		res, err := rt.Invoke(ctx, id, []byte(st.payload))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.errorType == "" {
			out := decodeEcho(t, res)
			if out.RequestID != id {
				t.Errorf("%s: request id %q, want %q", st.name, out.RequestID, id)
			}
			if lastPID != 0 && (out.PID != lastPID) != st.newPID {
				t.Errorf("%s: pid %d after %d, want new process %v", st.name, out.PID, lastPID, st.newPID)
			}
			if st.newPID && alive(lastPID) {
				t.Errorf("%s: old process %d still alive", st.name, lastPID)
			}
			lastPID = out.PID
			if i == 0 {
				if out.Env["ECHO_VAR"] != "from-config" || out.Env["AWS_REGION"] != "eu-west-1" || out.Env["AWS_LAMBDA_FUNCTION_NAME"] != "echo" || out.Env["LAMBDA_TASK_ROOT"] == "" {
					t.Errorf("environment %v", out.Env)
				}
				if out.DeadlineMS <= 0 || out.DeadlineMS > 700 {
					t.Errorf("deadline left %d ms, want within the 700 ms timeout", out.DeadlineMS)
				}
			}
		} else {
			if res.FunctionError != FunctionErrorUnhandled {
				t.Fatalf("%s: FunctionError %q (payload %s), want Unhandled", st.name, res.FunctionError, res.Payload)
			}
			var e struct{ ErrorType, ErrorMessage string }
			if err := json.Unmarshal(res.Payload, &e); err != nil {
				t.Fatalf("%s: error payload %q: %v", st.name, res.Payload, err)
			}
			if e.ErrorType != st.errorType || !strings.Contains(e.ErrorMessage, st.msgHas) {
				t.Errorf("%s: error %s %q, want %s containing %q", st.name, e.ErrorType, e.ErrorMessage, st.errorType, st.msgHas)
			}
			if res.ErrorType() != st.errorType {
				t.Errorf("%s: ErrorType() %q", st.name, res.ErrorType())
			}
		}
		if st.errorType == ErrTypeTimeout && (took < 700*time.Millisecond || took > 2*time.Second) {
			t.Errorf("timeout answered after %s, want about 700ms", took)
		}
		if got := rt.Stats().Starts; got != st.starts {
			t.Errorf("%s: %d processes started, want %d", st.name, got, st.starts)
		}
	}
	if got := rt.Stats().Invocations; got != len(steps) {
		t.Errorf("%d invocations counted, want %d", got, len(steps))
	}
	rt.Close()
	if alive(lastPID) {
		t.Errorf("process %d alive after Close", lastPID)
	}
	if _, err := rt.Invoke(ctx, "late", []byte(`{}`)); !errors.Is(err, errRuntimeClosed) {
		t.Errorf("Invoke after Close: %v, want errRuntimeClosed", err)
	}
}

// TestRuntimeCrash kills the process in the middle of an invocation, as the gateway's
// CrashFunction fault does: the answer is a Runtime.ExitError, the next one is served.
func TestRuntimeCrash(t *testing.T) {
	rt := newEchoRuntime(t, 2*time.Second, 1)
	ctx := context.Background()
	first := decodeEcho(t, must(rt.Invoke(ctx, "a", []byte(`{}`))))
	res, err := rt.InvokeAndCrash(ctx, "b", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorType() != ErrTypeExit || !bytes.Contains(res.Payload, []byte("signal: killed")) {
		t.Errorf("crash answered %s", res.Payload)
	}
	if alive(first.PID) {
		t.Errorf("crashed process %d still alive", first.PID)
	}
	after := decodeEcho(t, must(rt.Invoke(ctx, "c", []byte(`{}`))))
	if after.PID == first.PID {
		t.Error("served by the crashed process")
	}
}

// TestRuntimePool: invocations beyond one at a time run in parallel up to the pool
// size, and wait beyond it. The handlers' own start and end times say how many ran
// at once, whatever the machine's load.
func TestRuntimePool(t *testing.T) {
	rt := newEchoRuntime(t, 5*time.Second, 2)
	ctx := context.Background()
	const n = 5
	outs := make(chan echoOutput, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := rt.Invoke(ctx, newRequestID(), []byte(`{"sleepMs":300}`))
			if err != nil {
				t.Error(err)
				return
			}
			var out echoOutput
			_ = json.Unmarshal(res.Payload, &out)
			outs <- out
		}()
	}
	wg.Wait()
	close(outs)
	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	pids := map[int]bool{}
	for o := range outs {
		pids[o.PID] = true
		edges = append(edges, edge{o.StartedNS, 1}, edge{o.EndedNS, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta // an end before a start at the same instant
	})
	running, most := 0, 0
	for _, e := range edges {
		running += e.delta
		most = max(most, running)
	}
	if len(edges) != 2*n || most != 2 {
		t.Errorf("%d answers, at most %d running at once; want %d and 2", len(edges)/2, most, n)
	}
	if len(pids) != 2 || rt.Stats().Starts != 2 {
		t.Errorf("served by %d processes, %d started; want 2 and 2", len(pids), rt.Stats().Starts)
	}
}

// TestRuntimeTimings measures start-to-first-answer and warm invocations.
func TestRuntimeTimings(t *testing.T) {
	rt := newEchoRuntime(t, 3*time.Second, 1)
	ctx := context.Background()
	start := time.Now()
	decodeEcho(t, must(rt.Invoke(ctx, "cold", []byte(`{}`))))
	cold := time.Since(start)
	const n = 200
	start = time.Now()
	for range n {
		decodeEcho(t, must(rt.Invoke(ctx, newRequestID(), []byte(`{"mode":"ok"}`))))
	}
	warm := time.Since(start) / n
	t.Logf("echo bootstrap build %s; start to first answer %s; warm invoke %s (mean of %d)", echoBuild.took.Round(time.Millisecond), cold.Round(time.Microsecond), warm.Round(time.Microsecond), n)
	if cold > 2*time.Second || warm > 20*time.Millisecond {
		t.Errorf("cold %s, warm %s: far slower than measured by hand (40 ms, 1 ms)", cold, warm)
	}
}

// TestRuntimeBadPackage: a package whose bootstrap cannot run answers the function
// error Lambda gives (Runtime.InvalidEntrypoint), not a gateway failure.
func TestRuntimeBadPackage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := NewRuntime(FunctionConfig{Name: "broken", CodeDir: dir}, 1, nil)
	defer rt.Close()
	res, err := rt.Invoke(context.Background(), "x", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorType() != ErrTypeInvalidEntry {
		t.Errorf("answer %s, want %s", res.Payload, ErrTypeInvalidEntry)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
