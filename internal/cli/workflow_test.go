package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// workflowStep is what the test reads of one step of events/github-actions.yml.
type workflowStep struct {
	name, id, uses, cond, run string
	// timeout is the step's timeout-minutes; 0 when it has none.
	timeout int
	with    map[string]string
}

// readWorkflow reads the example workflow's one job: its timeout-minutes and its
// steps. The file is plain YAML in the layout GitHub's examples use (the job's keys
// at 4 spaces, each step a "- " item at 6, its keys at 8, with: entries at 10,
// run: | blocks below that), which actionlint (make lint) holds it to; a line-based
// reader is enough, and keeps a YAML module out of go.mod.
func readWorkflow(t *testing.T) (jobTimeout int, steps []workflowStep, text string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text = string(raw)
	var (
		cur   *workflowStep
		inRun bool
		inW   bool
	)
	val := func(line, key string) (string, bool) {
		v, ok := strings.CutPrefix(line, key+":")
		if !ok {
			return "", false
		}
		if i := strings.Index(v, " #"); i >= 0 {
			v = v[:i]
		}
		return strings.Trim(strings.TrimSpace(v), `"'`), true
	}
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("workflow: %q is not a number", s)
		}
		return n
	}
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		indent := len(line) - len(strings.TrimLeft(line, " "))
		body := strings.TrimSpace(line)
		if body == "" || strings.HasPrefix(body, "#") {
			if inRun && cur != nil {
				cur.run += "\n"
			}
			continue
		}
		switch {
		case indent == 4 && strings.HasPrefix(body, "timeout-minutes:"):
			v, _ := val(body, "timeout-minutes")
			jobTimeout = atoi(v)
			cur, inRun, inW = nil, false, false
		case indent < 6:
			cur, inRun, inW = nil, false, false
		case indent == 6 && strings.HasPrefix(body, "- "):
			steps = append(steps, workflowStep{with: map[string]string{}})
			cur, inRun, inW = &steps[len(steps)-1], false, false
			body, indent = strings.TrimPrefix(body, "- "), 8
			fallthrough
		case indent == 8 && cur != nil:
			inRun, inW = false, false
			if v, ok := val(body, "name"); ok {
				cur.name = v
			} else if v, ok := val(body, "id"); ok {
				cur.id = v
			} else if v, ok := val(body, "uses"); ok {
				cur.uses = v
			} else if v, ok := val(body, "if"); ok {
				cur.cond = v
			} else if v, ok := val(body, "timeout-minutes"); ok {
				cur.timeout = atoi(v)
			} else if v, ok := val(body, "run"); ok {
				inRun = v == "|"
				if !inRun {
					cur.run = v
				}
			} else if body == "with:" {
				inW = true
			}
		case indent == 10 && inW && cur != nil:
			if k, _, ok := strings.Cut(body, ":"); ok {
				cur.with[k], _ = val(body, k)
			}
		case indent >= 10 && inRun && cur != nil:
			cur.run += line[10:] + "\n"
		}
	}
	if jobTimeout == 0 || len(steps) == 0 {
		t.Fatalf("workflow: job timeout-minutes %d, %d steps: the reader no longer understands the file", jobTimeout, len(steps))
	}
	return jobTimeout, steps, text
}

// flagMinutes is the duration of `flag` in the command line of script that starts
// with `command`, in whole minutes (rounded up).
func flagMinutes(t *testing.T, script, command, flag string) int {
	t.Helper()
	joined := strings.ReplaceAll(script, "\\\n", " ")
	for line := range strings.Lines(joined) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, command+" ") {
			continue
		}
		m := regexp.MustCompile(regexp.QuoteMeta(flag) + `[ =](\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s has no %s: %s", command, flag, line)
		}
		d, err := time.ParseDuration(m[1])
		if err != nil || d <= 0 {
			t.Fatalf("%s %s %q: %v", command, flag, m[1], err)
		}
		return int((d + time.Minute - 1) / time.Minute)
	}
	t.Fatalf("no %q in the script:\n%s", command, script)
	return 0
}

// The example CI workflow calls the built binary, so that its steps see the exit
// codes 2 and 3; its timeouts add up, so that a run that timed out still gets its
// watch and its teardown before the job's end; the teardown runs after a failure;
// the credentials last the whole job; the actions are current majors.
func TestGitHubActionsWorkflow(t *testing.T) {
	jobTimeout, steps, text := readWorkflow(t)

	for i, line := range strings.Split(text, "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, "go run") {
			t.Errorf("line %d calls go run, which turns every exit code into 1: %s", i+1, strings.TrimSpace(line))
		}
	}

	var run, teardown, build *workflowStep
	sum := 0
	for i := range steps {
		s := &steps[i]
		label := s.name + s.uses
		if s.timeout <= 0 {
			t.Errorf("step %q has no timeout-minutes: the job's could end before the teardown's turn", label)
		}
		sum += s.timeout
		switch {
		case strings.Contains(s.run, "amifleet teardown "):
			teardown = s
		case strings.Contains(s.run, "amifleet run "):
			run = s
		case strings.Contains(s.run, "go build -o"):
			build = s
		}
	}
	if build == nil || run == nil || teardown == nil {
		t.Fatalf("workflow: want a step that builds amifleet (go build -o), one with amifleet run, one with amifleet teardown; build %v, run %v, teardown %v", build != nil, run != nil, teardown != nil)
	}
	if slicesIndex(steps, build) > slicesIndex(steps, run) {
		t.Errorf("amifleet is built after the run step")
	}

	// The run step: its wait ends (exit 3) before the step's own timeout kills it,
	// and the wait is long enough for the input's every poll loop.
	runTimeout := flagMinutes(t, run.run, "amifleet run", "--timeout")
	if run.timeout <= runTimeout {
		t.Errorf("run step: timeout-minutes %d is not above its --timeout (%d min): the step would be killed before the CLI reports", run.timeout, runTimeout)
	}
	m := regexp.MustCompile(`--input (\S+)`).FindStringSubmatch(run.run)
	if m == nil {
		t.Fatalf("run step has no --input")
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", m[1]))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PrepareRun(RunOptions{Input: raw, InputName: m[1]}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := plan.Config
	waits := 0
	for _, w := range pipeline.Waits {
		if w.Name != pipeline.WaitGenerationsPruned { // the Refresh's, not the run's
			waits += cfg.Poll.WaitBound(w.Name)
		}
	}
	if waitMin := (waits + 59) / 60; runTimeout <= waitMin {
		t.Errorf("run --timeout %d min: %s's poll loops alone can take %d min", runTimeout, m[1], waitMin)
	}

	// The teardown step: after a failure, a timeout or a cancellation, and long
	// enough for its wait for a still running execution and for the Teardown's own.
	if !strings.Contains(teardown.cond, "always()") {
		t.Errorf("teardown step: if %q; want always(), so that it runs after a failed or timed-out run", teardown.cond)
	}
	if strings.Contains(teardown.cond, "success()") || strings.Contains(teardown.cond, "steps.run.outcome == 'success'") {
		t.Errorf("teardown step: if %q skips it after a failure", teardown.cond)
	}
	if !regexp.MustCompile(`"?\$(RUN_CODE|\{?code\}?)"? (=|-eq) 2`).MatchString(teardown.run) {
		t.Errorf("teardown step: does not read exit code 2 (nothing started) as nothing to tear down:\n%s", teardown.run)
	}
	watch := flagMinutes(t, teardown.run, "amifleet watch", "--timeout")
	down := flagMinutes(t, teardown.run, "amifleet teardown", "--timeout")
	if !strings.Contains(teardown.run, "amifleet teardown --run-id") || !strings.Contains(teardown.run, "--wait") {
		t.Errorf("teardown step does not wait for the teardown:\n%s", teardown.run)
	}
	if teardown.timeout <= watch+down {
		t.Errorf("teardown step: timeout-minutes %d is not above watch --timeout %d + teardown --timeout %d", teardown.timeout, watch, down)
	}
	// The run step can stop at any point of the run (an AWS call that failed, a
	// cancellation), leaving the whole run to the watch.
	if watch < runTimeout {
		t.Errorf("teardown step: watch --timeout %d min is shorter than the run's %d", watch, runTimeout)
	}
	cleanup := cfg.Poll.MaxPolls.Of(pipeline.WaitCleanupDone) * cfg.Poll.IntervalSeconds
	if down*60 <= cleanup {
		t.Errorf("teardown --timeout %d min: its cleanup loop alone can take %d s", down, cleanup)
	}

	// The job: at least every step's timeout, so that its own never cuts the
	// teardown short (after a job's timeout GitHub gives the rest 5 minutes), and
	// within GitHub-hosted runners' 6 hours.
	setup := sum - run.timeout - teardown.timeout
	if jobTimeout < sum {
		t.Errorf("job timeout-minutes %d < the steps' %d (run %d + teardown %d + the rest %d)", jobTimeout, sum, run.timeout, teardown.timeout, setup)
	}
	if jobTimeout < runTimeout+watch+down+setup {
		t.Errorf("job timeout-minutes %d < run --timeout %d + watch %d + teardown %d + setup %d", jobTimeout, runTimeout, watch, down, setup)
	}
	if jobTimeout > 360 {
		t.Errorf("job timeout-minutes %d: GitHub-hosted runners stop a job at 360", jobTimeout)
	}

	// The credentials outlive the job.
	var creds *workflowStep
	majors := map[string]int{"actions/checkout": 4, "actions/setup-go": 5, "aws-actions/configure-aws-credentials": 4}
	for i := range steps {
		s := &steps[i]
		if s.uses == "" {
			continue
		}
		action, ref, _ := strings.Cut(s.uses, "@")
		if action == "aws-actions/configure-aws-credentials" {
			creds = s
		}
		if want, ok := majors[action]; ok {
			major, err := strconv.Atoi(strings.TrimPrefix(strings.SplitN(ref, ".", 2)[0], "v"))
			if err != nil || major < want {
				t.Errorf("%s: want v%d or newer", s.uses, want)
			}
		}
	}
	if creds == nil {
		t.Fatal("no aws-actions/configure-aws-credentials step")
	}
	secs, err := strconv.Atoi(creds.with["role-duration-seconds"])
	if err != nil || secs < jobTimeout*60 {
		t.Errorf("role-duration-seconds %q: want at least the job's %d min (%d s)", creds.with["role-duration-seconds"], jobTimeout, jobTimeout*60)
	}
	if secs > 12*3600 {
		t.Errorf("role-duration-seconds %d: a role's MaxSessionDuration is at most 12 hours", secs)
	}
}

func slicesIndex(steps []workflowStep, s *workflowStep) int {
	for i := range steps {
		if &steps[i] == s {
			return i
		}
	}
	return -1
}
