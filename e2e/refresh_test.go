package e2e

// Refresh in the local cloud, with its data plane: a bounded loop of GETs through
// the fleet's load balancer runs while refreshes roll the fleet, fail at each of
// their steps, and race each other; not one GET may fail.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

// getLoop GETs a URL ten times a second, each with a 5 s timeout, until end, and at
// most for getLoopMax.
type getLoop struct {
	mu       sync.Mutex
	gets     []pageGet
	failures []string
	stop     chan struct{}
	done     chan struct{}
}

// pageGet is one answered GET: when it was sent, and the page.
type pageGet struct {
	at   time.Time
	page string
}

const getLoopMax = 12 * time.Minute

func startGETs(t *testing.T, url string) *getLoop {
	t.Helper()
	g := &getLoop{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(getLoopMax)
		for i := 0; i < int(getLoopMax/(100*time.Millisecond)); i++ {
			select {
			case <-g.stop:
				return
			case <-deadline:
				return
			case <-tick.C:
			}
			at := time.Now()
			resp, err := client.Get(url)
			if err != nil {
				g.fail(fmt.Sprintf("%s: %v", at.Format("15:04:05.000"), err))
				continue
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				g.fail(fmt.Sprintf("%s: %d %v %q", at.Format("15:04:05.000"), resp.StatusCode, err, body))
				continue
			}
			g.mu.Lock()
			g.gets = append(g.gets, pageGet{at: at, page: strings.TrimSpace(string(body))})
			g.mu.Unlock()
		}
	}()
	t.Cleanup(g.end)
	return g
}

func (g *getLoop) fail(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures = append(g.failures, s)
}

// end stops the loop (once) and waits for its last GET.
func (g *getLoop) end() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}

// since are the pages of the GETs sent at or after t.
func (g *getLoop) since(t time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var pages []string
	for _, r := range g.gets {
		if !r.at.Before(t) {
			pages = append(pages, r.page)
		}
	}
	return pages
}

func (g *getLoop) report() (answered int, failures []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.gets), slices.Clone(g.failures)
}

// startRefresh starts the Refresh of runID.
func startRefresh(t *testing.T, runID, name string, input map[string]any) *execution {
	t.Helper()
	in := map[string]any{"runId": runID}
	for k, v := range input {
		in[k] = v
	}
	b, _ := json.Marshal(in)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := sfnClient(primary).StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stack(t, primary).RefreshARN), Name: aws.String(name), Input: aws.String(string(b))})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return &execution{region: primary, name: name, arn: aws.ToString(out.ExecutionArn), runID: runID}
}

// live are the run's instances that are not terminated, and its images.
func live(t *testing.T, runID string) (instances, images []string) {
	t.Helper()
	r := readRun(t, primary, runID)
	for _, in := range r.Instances {
		if in.State != "terminated" && in.State != "shutting-down" {
			instances = append(instances, in.ID)
		}
	}
	for _, im := range r.Images {
		if im.State != "deregistered" {
			images = append(images, im.ID)
		}
	}
	return sorted(instances), sorted(images)
}

// targets are the run's registered targets (any state but unused).
func targets(t *testing.T, runID string) []string {
	t.Helper()
	var ids []string
	for _, tg := range readRun(t, primary, runID).TargetGroups {
		for id, state := range tg.Targets {
			if state != "unused" {
				ids = append(ids, id)
			}
		}
	}
	return sorted(ids)
}

// pageOf is the page an instance of doc's fleet serves.
func pagesOf(t *testing.T, doc pipeline.Document) []string {
	t.Helper()
	var pages []string
	for _, in := range readRun(t, primary, doc.RunID).Instances {
		if slices.Contains(doc.Resources.Fleet.InstanceIDs, in.ID) {
			pages = append(pages, strings.ReplaceAll(doc.Config.PageTemplate, "{hostname}", in.PrivateDNSName))
		}
	}
	return pages
}

// record is the run's record in the runs table, nil when it has none.
func record(t *testing.T, runID string) *pipeline.RunRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, err := stages.ReadRun(ctx, dynamodb.NewFromConfig(lc.DirectConfig(primary)), stack(t, primary).Outputs["RunsTableName"], runID)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// testRefresh: a live fleet, GETs through its load balancer, and two refreshes
// started at once: one runs and rolls the fleet onto generation 2 (a new page), the
// other is refused. A second refresh rolls it onto generation 3. Not one GET fails;
// the pages move from the old generation's to the new one's; at the end only the
// newest generation is registered and running, with only its image; status says
// which generation serves. Teardown after the two refreshes leaves nothing, the
// record included.
func testRefresh(t *testing.T) {
	const name = "e2e-refresh"
	e := start(t, primary, name, localInput(t, nil)).wait(t).succeeded(t)
	dns := e.doc.Resources.LoadBalancer.DNSName
	old := pagesOf(t, e.doc)
	gets := startGETs(t, lc.Gateway.LoadBalancerLocalURL(dns))

	newPage := map[string]any{"pageTemplate": "<h1>Refreshed: {hostname}</h1>"}
	var a, b *execution
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = startRefresh(t, e.runID, "refresh-"+e.runID+"-a", newPage) }()
	go func() { defer wg.Done(); b = startRefresh(t, e.runID, "refresh-"+e.runID+"-b", newPage) }()
	wg.Wait()
	a.wait(t)
	b.wait(t)
	won, lost := a, b
	if a.desc.Status != sfntypes.ExecutionStatusSucceeded {
		won, lost = b, a
	}
	won.succeeded(t)
	if lost.desc.Status != sfntypes.ExecutionStatusFailed || aws.ToString(lost.desc.Error) != pipeline.ErrRefreshInProgress ||
		!strings.Contains(aws.ToString(lost.desc.Cause), won.arn) {
		t.Errorf("the second refresh: %s %s: %s; want FAILED with RefreshInProgressError naming %s",
			lost.desc.Status, aws.ToString(lost.desc.Error), aws.ToString(lost.desc.Cause), won.name)
	}
	if won.doc.Gen() != 2 || !won.doc.Refresh.Committed {
		t.Fatalf("the refresh built generation %d (committed %v), want 2", won.doc.Gen(), won.doc.Refresh.Committed)
	}
	if got := record(t, e.runID); got == nil || got.LastGen != 2 {
		t.Errorf("record %+v after one refresh and one refused, want lastGen 2 (the refused one allocated nothing)", got)
	}
	gen2 := pagesOf(t, won.doc)
	time.Sleep(2 * time.Second)
	after := gets.since(aws.ToTime(won.desc.StopDate))
	if len(after) == 0 {
		t.Fatal("no GET answered after the refresh")
	}
	for _, p := range after {
		if !slices.Contains(gen2, p) {
			t.Errorf("after the refresh a GET saw %q, not a page of generation 2 %v", p, gen2)
			break
		}
	}

	// A second refresh, through the CLI, keeps the run's (new) page and rolls onto
	// generation 3. Bad input first: exit 2 naming the field, nothing started.
	bin := buildCLI(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"pageTemplate": "no hostname here"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := bin.run(t, "refresh", "--run-id", e.runID, "--input", bad); code != cli.ExitUsage || !strings.Contains(stderr, "pageTemplate") {
		t.Errorf("amifleet refresh with a page without {hostname}: exit %d, %q; want 2 naming pageTemplate", code, stderr)
	}
	stdout, stderr, code := bin.run(t, "refresh", "--run-id", e.runID, "--wait", "--output", "json", "--poll-interval", "1s", "--timeout", "4m")
	var c struct {
		Status     string              `json:"status"`
		Generation int                 `json:"generation"`
		ImageID    string              `json:"imageId"`
		Resources  *pipeline.Resources `json:"resources"`
	}
	if err := json.Unmarshal([]byte(stdout), &c); err != nil || code != 0 || c.Status != "SUCCEEDED" || c.Generation != 3 || c.Resources == nil || c.Resources.Fleet == nil {
		t.Fatalf("amifleet refresh --wait --output json: exit %d, %v, %q %q; want SUCCEEDED, generation 3", code, err, stdout, stderr)
	}
	time.Sleep(2 * time.Second)
	gets.end()
	answered, failures := gets.report()
	if len(failures) > 0 {
		t.Errorf("%d of %d GETs failed during the refreshes: %s", len(failures), answered+len(failures), strings.Join(failures, "; "))
	}
	all := gets.since(time.Time{})
	if len(all) < 100 || !slices.Contains(old, all[0]) || !strings.HasPrefix(all[len(all)-1], "<h1>Refreshed: ") {
		t.Errorf("%d pages, first %q, last %q: want many, from generation 1's %v to a refreshed one", len(all), all[0], all[len(all)-1], old)
	}
	t.Logf("%d GETs answered during two refreshes, %d failed", answered, len(failures))

	instances, images := live(t, e.runID)
	if want := sorted(c.Resources.Fleet.InstanceIDs); !slices.Equal(instances, want) {
		t.Errorf("live instances %v, want generation 3's fleet %v", instances, want)
	}
	if want := []string{c.ImageID}; !slices.Equal(images, want) {
		t.Errorf("images %v, want generation 3's %v", images, want)
	}
	if got, want := targets(t, e.runID), sorted(c.Resources.Fleet.InstanceIDs); !slices.Equal(got, want) {
		t.Errorf("targets %v, want generation 3's fleet %v", got, want)
	}
	if v := lc.Gateway.DataPlaneViolations(dns); len(v) > 0 {
		t.Errorf("the refreshes stopped or terminated instances the load balancer still used: %s", strings.Join(v, "; "))
	}
	stdout, stderr, code = bin.run(t, "status", name)
	if want := fmt.Sprintf("3 (image %s); this execution built generation 1", c.ImageID); code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("amifleet status %s: exit %d, %q %q; want it to say %q", name, code, stdout, stderr, want)
	}

	startOn(t, primary, stack(t, primary).TeardownARN, "teardown-"+e.runID, teardownInput(t, e.runID)).wait(t).succeeded(t)
	nothingLeft(t, primary, e.runID)
	if rec := record(t, e.runID); rec != nil {
		t.Errorf("after the teardown the run's record is still there: %v", rec)
	}
}

// refreshFault is a fault that fails a refresh in one step: an API call that fails,
// or the step's function crashing through its retries.
type refreshFault struct {
	step  string
	api   *localcloud.APIFault
	crash *localcloud.CrashFault
}

// refreshFaults are the faults of one fleet's chain of failing refreshes, the run id
// filled in; a crash is retried twice (Runtime.ExitError), so three crashes fail the state.
func refreshFaults(runID string, steps ...string) []refreshFault {
	crash := &localcloud.CrashFault{Times: 3, Match: runID}
	all := map[string]refreshFault{
		"LaunchBase":            {api: &localcloud.APIFault{Action: "ec2:RunInstances", Code: "UnauthorizedOperation", Count: 1, Match: runID + "-base-g"}},
		"CheckBaseStopped":      {crash: crash},
		"CreateImage":           {api: &localcloud.APIFault{Action: "ec2:CreateImage", Code: "UnauthorizedOperation", Count: 1, Match: runID}},
		"CheckImageAvailable":   {crash: crash},
		"LaunchReplicas":        {api: &localcloud.APIFault{Action: "ec2:RunInstances", Code: "UnauthorizedOperation", Count: 1, Match: runID + "-replica-g"}},
		"CheckInstancesRunning": {crash: crash},
		"RegisterTargets":       {api: &localcloud.APIFault{Action: "elasticloadbalancing:RegisterTargets", Code: "AccessDenied", Count: 1, Match: runID}},
		"CheckTargetsHealthy":   {api: &localcloud.APIFault{Action: "elasticloadbalancing:DescribeTargetHealth", Code: "AccessDenied", Count: 1, Match: runID}},
		"Verify":                {crash: crash},
		"CommitGeneration":      {crash: crash},
	}
	out := make([]refreshFault, 0, len(steps))
	for _, step := range steps {
		f := all[step]
		f.step = step
		out = append(out, f)
	}
	return out
}

// testRefreshFaults: refreshes of one live fleet, each failed by a fault injected
// into one of its steps (the call that creates or registers fails, or the function
// crashes through its retries): each fails saying generation 1 still serves, leaves
// generation 1's instances, targets and image as they were and nothing of its own,
// and not one GET through the load balancer fails meanwhile. With afterCommit, one
// more refresh fails after its commit (the old generation's deregistration refused):
// its new generation serves, the old one is left, and the cause says which
// generation serves. A last refresh then succeeds (taking over a lock the
// failed prune left) and leaves only its own generation.
func testRefreshFaults(t *testing.T, name string, steps []string, afterCommit bool) {
	runID, _ := pipeline.RunIDFromExecutionName(name)
	e := start(t, primary, name, localInput(t, nil)).wait(t).succeeded(t)
	dns := e.doc.Resources.LoadBalancer.DNSName
	instances, images := live(t, runID)
	registered := targets(t, runID)
	gets := startGETs(t, lc.Gateway.LoadBalancerLocalURL(dns))

	for i, tc := range refreshFaults(runID, steps...) {
		if tc.api != nil {
			lc.Gateway.AddFault(*tc.api)
		}
		if tc.crash != nil {
			c := *tc.crash
			c.Function = functionName(t, primary, tc.step)
			lc.Gateway.AddCrash(c)
		}
		r := startRefresh(t, runID, fmt.Sprintf("refresh-%s-%d", runID, i), nil).wait(t)
		cause := aws.ToString(r.desc.Cause)
		if r.desc.Status != sfntypes.ExecutionStatusFailed || !strings.HasPrefix(cause, tc.step+" failed: ") ||
			!strings.Contains(cause, "generation 1 still serves") {
			t.Errorf("a refresh failed in %s: %s %s: %s; want FAILED, its cause naming the step and saying generation 1 still serves",
				tc.step, r.desc.Status, aws.ToString(r.desc.Error), cause)
		}
		gotInstances, gotImages := live(t, runID)
		if !slices.Equal(gotInstances, instances) || !slices.Equal(gotImages, images) {
			t.Errorf("after the refresh that failed in %s: instances %v, images %v; want generation 1's %v, %v",
				tc.step, gotInstances, gotImages, instances, images)
		}
		if got := targets(t, runID); !slices.Equal(got, registered) {
			t.Errorf("after the refresh that failed in %s: targets %v, want generation 1's %v", tc.step, got, registered)
		}
	}
	if left := lc.Gateway.PendingFaults(runID); left > 0 {
		t.Errorf("%d injected faults were never hit: a step did not fail where the test meant it to", left)
	}
	var failedPrune string
	if afterCommit {
		// The prune's first call, after the commit, deregisters the old targets.
		lc.Gateway.AddFault(localcloud.APIFault{Action: "elasticloadbalancing:DeregisterTargets", Code: "AccessDenied", Count: 1, Match: runID})
		r := startRefresh(t, runID, "refresh-"+runID+"-prune", nil).wait(t)
		failedPrune = r.arn
		rec := record(t, runID)
		if rec == nil {
			t.Fatalf("after a refresh whose prune failed the run has no record")
		}
		serving := strconv.Itoa(rec.Serving)
		if r.desc.Status != sfntypes.ExecutionStatusFailed || rec.Serving != rec.LastGen ||
			!strings.Contains(aws.ToString(r.desc.Cause), "generation "+serving+" serves") {
			t.Errorf("a refresh whose prune failed after its commit: %s %s: %s; record serving %d of %d; want FAILED, the new generation serving, and the cause saying so",
				r.desc.Status, aws.ToString(r.desc.Error), aws.ToString(r.desc.Cause), rec.Serving, rec.LastGen)
		}
		var newGen []string
		for _, in := range readRun(t, primary, runID).Instances {
			if in.Tags[pipeline.TagGeneration] == serving && in.State != "terminated" {
				newGen = append(newGen, in.ID)
			}
		}
		if got := targets(t, runID); len(newGen) == 0 || !isSubset(newGen, got) {
			t.Errorf("after the failed prune: targets %v, want the serving generation's %v among them", got, newGen)
		}
	}
	ok := startRefresh(t, runID, "refresh-"+runID+"-ok", nil).wait(t).succeeded(t)
	if afterCommit && ok.doc.Refresh.TookOverFrom != failedPrune {
		t.Errorf("the last refresh took over from %q; want the failed prune's %s", ok.doc.Refresh.TookOverFrom, failedPrune)
	}
	gets.end()
	answered, failures := gets.report()
	if len(failures) > 0 {
		t.Errorf("%d of %d GETs failed during the refreshes: %s", len(failures), answered+len(failures), strings.Join(failures, "; "))
	}
	t.Logf("%d GETs answered during %d refreshes", answered, len(steps)+2)
	if got, imgs := live(t, runID); !slices.Equal(got, sorted(ok.doc.Resources.Fleet.InstanceIDs)) || len(imgs) != 1 {
		t.Errorf("after the refresh that succeeded: instances %v, images %v; want its fleet %v and its one image", got, imgs, ok.doc.Resources.Fleet.InstanceIDs)
	}
	if v := lc.Gateway.DataPlaneViolations(dns); len(v) > 0 {
		t.Errorf("the refreshes stopped or terminated instances the load balancer still used: %s", strings.Join(v, "; "))
	}
	startOn(t, primary, stack(t, primary).TeardownARN, "teardown-"+runID, teardownInput(t, runID)).wait(t).succeeded(t)
	nothingLeft(t, primary, runID)
}

func isSubset(sub, of []string) bool {
	for _, s := range sub {
		if !slices.Contains(of, s) {
			return false
		}
	}
	return true
}
