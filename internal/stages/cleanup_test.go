package stages

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// lambdaCause is the Cause a Catch records for a Lambda's error.
func lambdaCause(errorType, message string) string {
	b, _ := json.Marshal(map[string]any{"errorType": errorType, "errorMessage": message, "stackTrace": []string{}})
	return string(b)
}

// branchCause is the Cause of a Parallel branch's Fail state: the branch's errors.
func branchCause(errs map[string]pipeline.CaughtError) string {
	b, _ := json.Marshal(errs)
	return string(b)
}

func TestCleanupNormalisesErrors(t *testing.T) {
	timedOut := `wait "baseStopped" not done after 60 polls, last check: {"ready":false,"state":"running","attempts":60}`
	tests := []struct {
		name   string
		errors map[string]pipeline.CaughtError
		want   *pipeline.Failure
	}{
		{
			name: "plain Lambda error",
			errors: map[string]pipeline.CaughtError{
				"CreateSecurityGroups": {Error: "StageError", Cause: lambdaCause("StageError", "CreateSecurityGroups: create security group: UnauthorizedOperation")},
			},
			want: &pipeline.Failure{Stage: "CreateSecurityGroups", Type: "StageError",
				Message: "create security group: UnauthorizedOperation",
				Cause:   "CreateSecurityGroups failed: StageError: create security group: UnauthorizedOperation"},
		},
		{
			name: "branch failed, unwrapped to the state that failed",
			errors: map[string]pipeline.CaughtError{
				"BuildImageAndLoadBalancer": {Error: "BranchFailed", Cause: branchCause(map[string]pipeline.CaughtError{
					"CheckImage": {Error: "ResourceFailedError", Cause: lambdaCause("ResourceFailedError", "CheckImage: image ami-1 is failed: snapshot failed")},
				})},
			},
			want: &pipeline.Failure{Stage: "CheckImage", Type: "ResourceFailedError",
				Message: "image ami-1 is failed: snapshot failed",
				Cause:   "CheckImage failed: ResourceFailedError: image ami-1 is failed: snapshot failed"},
		},
		{
			name: "wait timed out, recorded by a Pass state inside a branch",
			errors: map[string]pipeline.CaughtError{
				"BuildImageAndLoadBalancer": {Error: "BranchFailed", Cause: branchCause(map[string]pipeline.CaughtError{
					"WaitBaseStopped": {Error: "WaitTimedOutError", Cause: timedOut},
				})},
			},
			want: &pipeline.Failure{Stage: "WaitBaseStopped", Type: "WaitTimedOutError", Message: timedOut,
				Cause: "WaitBaseStopped failed: WaitTimedOutError: " + timedOut},
		},
		{
			name: "cause that is not JSON is the message as it is",
			errors: map[string]pipeline.CaughtError{
				"LaunchReplicas": {Error: "States.Timeout", Cause: "Task timed out after 60.00 seconds {"},
			},
			want: &pipeline.Failure{Stage: "LaunchReplicas", Type: "States.Timeout", Message: "Task timed out after 60.00 seconds {",
				Cause: "LaunchReplicas failed: States.Timeout: Task timed out after 60.00 seconds {"},
		},
		{
			name: "branch failed with a cause that is not the branch's errors",
			errors: map[string]pipeline.CaughtError{
				"BuildImageAndLoadBalancer": {Error: "BranchFailed", Cause: "lost"},
			},
			want: &pipeline.Failure{Stage: "BuildImageAndLoadBalancer", Type: "BranchFailed", Message: "lost",
				Cause: "BuildImageAndLoadBalancer failed: BranchFailed: lost"},
		},
		{
			name: "several failed states: the first by name, Cleanup's own last",
			errors: map[string]pipeline.CaughtError{
				"Cleanup":         {Error: "StageError", Cause: lambdaCause("StageError", "Cleanup: later")},
				"RegisterTargets": {Error: "StageError", Cause: lambdaCause("StageError", "second")},
				"CheckTargets":    {Error: "WaitTimedOutError", Cause: "first"},
			},
			want: &pipeline.Failure{Stage: "CheckTargets", Type: "WaitTimedOutError", Message: "first",
				Cause: "CheckTargets failed: WaitTimedOutError: first"},
		},
		{
			name:   "no errors: a teardown, not a failure",
			errors: nil,
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud(t)
			doc := pipeline.Document{RunID: "run-1", Config: pipeline.DefaultConfig(), Errors: tt.errors}
			for call := 1; call <= 2; call++ { // Cleanup polls: the answer must not drift
				var err error
				doc, err = c.stages().Cleanup(context.Background(), doc)
				if err != nil {
					t.Fatalf("call %d: %v", call, err)
				}
				got, _ := json.Marshal(doc.Error)
				want, _ := json.Marshal(tt.want)
				if string(got) != string(want) {
					t.Fatalf("call %d: error\n got %s\nwant %s", call, got, want)
				}
			}
		})
	}
}

func TestCleanupRefusesBadRunIDs(t *testing.T) {
	for _, id := range []string{
		"",
		"Run-1",
		"run_1",
		"run--1",
		"-run",
		"run-",
		"run 1",
		"run/1",
		strings.Repeat("a", pipeline.MaxRunIDLength+1),
	} {
		t.Run(id, func(t *testing.T) {
			c := newFakeCloud(t)
			_, err := c.stages().Cleanup(context.Background(), pipeline.Document{RunID: id})
			var bad *pipeline.BadInputError
			if !errors.As(err, &bad) || bad.Field != "runId" {
				t.Fatalf("Cleanup(%q) = %v, want BadInputError on runId", id, err)
			}
			if calls := c.methods(); len(calls) != 0 {
				t.Fatalf("Cleanup(%q) called AWS: %v", id, calls)
			}
		})
	}
	t.Run("longest valid id is accepted", func(t *testing.T) {
		c := newFakeCloud(t)
		if _, err := c.stages().Cleanup(context.Background(), pipeline.Document{RunID: strings.Repeat("a", pipeline.MaxRunIDLength)}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCleanupFillsDefaultsAndCountsPolls(t *testing.T) {
	c := newFakeCloud(t)
	doc := pipeline.Document{RunID: "run-1"} // what Teardown passes
	// The first clean look only settles; the second, clean too, is done, and every
	// later one stays done. The first asks for the default first wait, the others
	// for the default interval.
	for attempt, want := range []struct {
		ready bool
		state string
		wait  int
	}{{false, "settling", 30}, {true, "deleted", 5}, {true, "deleted", 5}} {
		var err error
		doc, err = c.stages().Cleanup(context.Background(), doc)
		if err != nil {
			t.Fatal(err)
		}
		got := doc.Polls.CleanupDone
		if got.Ready != want.ready || got.State != want.state || got.Attempts != attempt+1 || got.WaitSeconds != want.wait {
			t.Fatalf("poll %d: %+v, want ready %v, %s, attempts %d, wait %d s", attempt+1, got, want.ready, want.state, attempt+1, want.wait)
		}
	}
	want, _ := json.Marshal(pipeline.DefaultConfig())
	got, _ := json.Marshal(doc.Config)
	if string(got) != string(want) {
		t.Fatalf("config %s, want the defaults %s", got, want)
	}
	if doc.Error != nil {
		t.Fatalf("error %+v on a teardown", doc.Error)
	}
}

// buildFleet runs the pipeline's stages on the fake for runID, the way the state
// machine would, and returns the document a Cleanup would get after the last one.
func buildFleet(t *testing.T, c *fakeCloud, runID string) pipeline.Document {
	t.Helper()
	ctx := context.Background()
	s := c.stages()
	doc := validatedDoc(runID)
	step := func(name string, fn func(context.Context, pipeline.Document) (pipeline.Document, error)) {
		t.Helper()
		var err error
		if doc, err = fn(ctx, doc); err != nil {
			t.Fatalf("%s for %s: %v", name, runID, err)
		}
		c.settle()
	}
	step("CreateSecurityGroups", s.CreateSecurityGroups)
	step("LaunchBase", s.LaunchBase)
	c.setInstanceState(doc.Resources.Image.BaseInstanceID, "stopped") // its script powered it off
	step("CreateImage", s.CreateImage)
	step("CreateLoadBalancer", s.CreateLoadBalancer)
	step("LaunchReplicas", s.LaunchReplicas)
	step("RegisterTargets", s.RegisterTargets)
	return doc
}

// cleanupUntilReady calls Cleanup as the Teardown loop does, letting the fake's
// resources move on (instances terminate) between polls.
func cleanupUntilReady(t *testing.T, c *fakeCloud, doc pipeline.Document) pipeline.Document {
	t.Helper()
	for i := 0; i < 10; i++ {
		var err error
		doc, err = c.stages().Cleanup(context.Background(), doc)
		if err != nil {
			t.Fatalf("cleanup poll %d: %v", i+1, err)
		}
		if doc.Polls.CleanupDone.Ready {
			return doc
		}
		c.settle()
	}
	t.Fatalf("cleanup not ready after 10 polls: %s", doc.Polls.CleanupDone.Reason)
	return doc
}

func TestCleanupDeletesInOrder(t *testing.T) {
	c := newFakeCloud(t)
	doc := buildFleet(t, c, "run-1")
	buildFleet(t, c, "run-2")
	otherBefore := c.tagged("run-2")
	if len(c.tagged("run-1")) == 0 || len(otherBefore) == 0 {
		t.Fatal("the fleets were not built")
	}
	start := c.mark()

	// First poll: everything is asked to go, but instances take time to terminate,
	// so the security groups must not be tried yet.
	doc, err := c.stages().Cleanup(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	if p := doc.Polls.CleanupDone; p.Ready || p.State != "deleting" || !strings.Contains(p.Reason, "shutting-down") {
		t.Fatalf("first poll %+v: want deleting, waiting for instances shutting down", p)
	}
	if n := countIn(c.methodsSince(start), "DeleteSecurityGroup"); n != 0 {
		t.Fatalf("%d DeleteSecurityGroup calls while instances were shutting down", n)
	}
	c.settle()
	doc = cleanupUntilReady(t, c, doc)
	if p := doc.Polls.CleanupDone; p.State != "deleted" || p.Attempts < 2 {
		t.Fatalf("last poll %+v: want deleted after at least 2 polls", p)
	}

	calls := c.methodsSince(start)
	before := func(first, then string) {
		t.Helper()
		i, j := slices.Index(calls, first), slices.Index(calls, then)
		if i < 0 || j < 0 || i > j {
			t.Errorf("%s (call %d) must come before %s (call %d): %v", first, i, then, j, calls)
		}
	}
	before("DeleteListener", "DeleteTargetGroup")
	before("DeleteListener", "DeleteLoadBalancer")
	before("DeregisterImage", "DeleteSnapshot")
	before("TerminateInstances", "DeleteSecurityGroup")
	if left := c.tagged("run-1"); len(left) != 0 {
		t.Errorf("left with the run tag: %v", left)
	}

	// The other run is untouched: same resources, and no delete named any of them.
	if after := c.tagged("run-2"); !slices.Equal(after, otherBefore) {
		t.Errorf("the other run's resources changed:\nbefore %v\nafter  %v", otherBefore, after)
	}
	otherIDs := idsOf(otherBefore)
	for _, in := range fakeInputs[ec2.TerminateInstancesInput](c, "TerminateInstances") {
		touches(t, "TerminateInstances", otherIDs, in.InstanceIds...)
	}
	for _, in := range fakeInputs[ec2.DeleteSecurityGroupInput](c, "DeleteSecurityGroup") {
		touches(t, "DeleteSecurityGroup", otherIDs, aws.ToString(in.GroupId))
	}
	for _, in := range fakeInputs[ec2.DeregisterImageInput](c, "DeregisterImage") {
		touches(t, "DeregisterImage", otherIDs, aws.ToString(in.ImageId))
	}
	for _, in := range fakeInputs[ec2.DeleteSnapshotInput](c, "DeleteSnapshot") {
		touches(t, "DeleteSnapshot", otherIDs, aws.ToString(in.SnapshotId))
	}
	for _, in := range fakeInputs[elb.DeleteLoadBalancerInput](c, "DeleteLoadBalancer") {
		touches(t, "DeleteLoadBalancer", otherIDs, aws.ToString(in.LoadBalancerArn))
	}
	for _, in := range fakeInputs[elb.DeleteTargetGroupInput](c, "DeleteTargetGroup") {
		touches(t, "DeleteTargetGroup", otherIDs, aws.ToString(in.TargetGroupArn))
	}
	for _, in := range fakeInputs[elb.DeleteListenerInput](c, "DeleteListener") {
		touches(t, "DeleteListener", otherIDs, aws.ToString(in.ListenerArn))
	}
}

func TestCleanupGoesOnAfterAnUndoFails(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string // the error type Cleanup returns
	}{
		{"not retryable", fakeErr("UnauthorizedOperation", "not allowed"), pipeline.ErrStage},
		{"retryable", fakeErr("RequestLimitExceeded", "slow down"), pipeline.ErrRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeCloud(t)
			doc := buildFleet(t, c, "run-1")
			c.fail("DeleteLoadBalancer", tt.err)
			start := c.mark()
			doc, err := c.stages().Cleanup(context.Background(), doc)
			if got := pipeline.ErrorName(err); got != tt.want {
				t.Fatalf("Cleanup error %v (%s), want %s", err, got, tt.want)
			}
			if !strings.Contains(err.Error(), "DeleteLoadBalancer") && !strings.Contains(err.Error(), tt.err.Error()) {
				t.Errorf("error %q does not say what failed", err)
			}
			calls := c.methodsSince(start)
			for _, want := range []string{"TerminateInstances", "DeregisterImage"} {
				if !slices.Contains(calls, want) {
					t.Errorf("no %s after the load balancer's delete failed: %v", want, calls)
				}
			}
			if slices.Contains(calls, "DeleteSecurityGroup") {
				t.Errorf("security groups deleted while the load balancer may still use them: %v", calls)
			}
			if doc.Polls.CleanupDone == nil || doc.Polls.CleanupDone.Ready {
				t.Errorf("poll %+v: want not ready", doc.Polls.CleanupDone)
			}

			// Once the API answers again, the next polls finish the job.
			c.clearFail("DeleteLoadBalancer")
			c.settle()
			cleanupUntilReady(t, c, doc)
			if left := c.tagged("run-1"); len(left) != 0 {
				t.Errorf("left with the run tag: %v", left)
			}
		})
	}
}

func countIn(calls []string, method string) int {
	n := 0
	for _, m := range calls {
		if m == method {
			n++
		}
	}
	return n
}

// idsOf takes the ids out of fakeCloud.tagged's "kind id" lines.
func idsOf(tagged []string) map[string]bool {
	ids := map[string]bool{}
	for _, line := range tagged {
		if _, id, ok := strings.Cut(line, " "); ok {
			ids[id] = true
		}
	}
	return ids
}

func touches(t *testing.T, method string, forbidden map[string]bool, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if forbidden[id] {
			t.Errorf("%s on %s, which belongs to another run", method, id)
		}
	}
}

// A Lambda of a stopped Parallel branch may create something after Cleanup's first
// clean look: the second look must see it and start over.
func TestCleanupSeesACreateInFlight(t *testing.T) {
	c := newFakeCloud(t)
	ctx := context.Background()
	doc, err := c.stages().Cleanup(ctx, pipeline.Document{RunID: "late-1"})
	if err != nil {
		t.Fatal(err)
	}
	if doc.Polls.CleanupDone.Ready {
		t.Fatalf("ready after one look: %+v", doc.Polls.CleanupDone)
	}
	late := buildFleet(t, c, "late-1") // the in-flight stage's resources land now
	doc.Resources = late.Resources
	doc, err = c.stages().Cleanup(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Polls.CleanupDone.Ready || doc.Polls.CleanupDone.State != "deleting" {
		t.Fatalf("second look after a late create: %+v, want deleting, not ready", doc.Polls.CleanupDone)
	}
	for i := 0; i < 10 && !doc.Polls.CleanupDone.Ready; i++ {
		c.settle()
		if doc, err = c.stages().Cleanup(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	if !doc.Polls.CleanupDone.Ready {
		t.Fatalf("not done after 10 more looks: %+v", doc.Polls.CleanupDone)
	}
	if left := c.tagged("late-1"); len(left) != 0 {
		t.Fatalf("left with the run tag: %v", left)
	}
}

// When a Parallel branch failed, Step Functions stopped the other one, but a create
// Lambda it had already invoked runs on, up to pipeline.CreateTimeoutSeconds: the
// two clean looks must be that far apart, so that what it makes is seen and deleted.
// The looks that only wait do not count against config.poll.maxPolls.cleanupDone.
func TestCleanupWaitsOutACreateInFlightAfterABranchFailed(t *testing.T) {
	c := newFakeCloud(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	now := start
	s := c.stages()
	s.Now = func() time.Time { return now }
	span := pipeline.CreateTimeoutSeconds * time.Second
	doc := pipeline.Document{RunID: "late-2", Config: pipeline.DefaultConfig(), Errors: map[string]pipeline.CaughtError{
		"BuildImageAndLoadBalancer": {Error: branchFailed, Cause: `{"CreateLoadBalancer":{"Error":"StageError","Cause":"{\"errorType\":\"StageError\",\"errorMessage\":\"no\"}"}}`}}}
	look := func(at time.Duration) *pipeline.PollResult {
		t.Helper()
		now = start.Add(at)
		var err error
		if doc, err = s.Cleanup(ctx, doc); err != nil {
			t.Fatal(err)
		}
		return doc.Polls.CleanupDone
	}

	// Clean from the first look, but not done while a create may still be running.
	interval := time.Duration(pipeline.DefaultPollIntervalSeconds) * time.Second
	for at := time.Duration(0); at < span; at += interval {
		if p := look(at); p.Ready || p.State != "settling" || p.Attempts != 1 {
			t.Fatalf("look at +%s: %+v, want settling, not ready, still 1 attempt", at, p)
		}
	}
	// The stopped branch's LaunchBase lands just before its timeout: seen, deleted.
	buildFleet(t, c, "late-2")
	if p := look(span - time.Second/2); p.Ready || p.State != "deleting" || p.Attempts != 2 {
		t.Fatalf("look after the late create: %+v, want deleting, attempt 2", p)
	}
	at := span
	for i := 0; i < 10 && doc.Polls.CleanupDone.State == "deleting"; i++ {
		c.settle()
		at += interval
		look(at)
	}
	cleanAt := at
	if p := doc.Polls.CleanupDone; p.State != "settling" || p.CleanSince == nil || !p.CleanSince.Equal(start.Add(cleanAt)) {
		t.Fatalf("after deleting it: %+v, want settling since +%s", p, cleanAt)
	}
	// Nothing else can be in flight now, but the looks keep their span.
	if p := look(cleanAt + span - time.Second); p.Ready {
		t.Fatalf("done %s after the first clean look: %+v", span-time.Second, p)
	}
	if p := look(cleanAt + span); !p.Ready || p.State != "deleted" {
		t.Fatalf("look %s after the first clean one: %+v, want done", span, p)
	}
	if left := c.tagged("late-2"); len(left) != 0 {
		t.Fatalf("left with the run tag: %v", left)
	}
}

// A failure outside the Parallel stops nothing else: two clean looks one poll
// interval apart are enough.
func TestCleanupAfterASequentialFailureNeedsNoSpan(t *testing.T) {
	c := newFakeCloud(t)
	doc := pipeline.Document{RunID: "seq-1", Config: pipeline.DefaultConfig(), Errors: map[string]pipeline.CaughtError{
		pipeline.LaunchReplicas: {Error: pipeline.ErrCapacity, Cause: `{"errorType":"CapacityError","errorMessage":"quota"}`}}}
	for i, ready := range []bool{false, true} {
		var err error
		if doc, err = c.stages().Cleanup(context.Background(), doc); err != nil {
			t.Fatal(err)
		}
		if p := doc.Polls.CleanupDone; p.Ready != ready {
			t.Fatalf("look %d: %+v, want ready %v", i+1, p, ready)
		}
	}
}
