package stages

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amifleet/amifleet/internal/pipeline"
)

func TestCheckInstancesBaseStopped(t *testing.T) {
	tests := []struct {
		state      string
		wantReady  bool
		wantFailed bool
	}{
		{state: "pending"},
		{state: "running"},
		{state: "stopping"},
		{state: "stopped", wantReady: true},
		{state: "shutting-down", wantFailed: true},
		{state: "terminated", wantFailed: true},
	}
	for _, tc := range tests {
		t.Run(tc.state, func(t *testing.T) {
			ctx := context.Background()
			c := newFakeCloud(t)
			doc := mustRun(t)(c.stages().LaunchBase(ctx, withNetwork(t, c, testDoc())))
			base := doc.Resources.Image.BaseInstanceID
			c.setInstanceState(base, tc.state)
			doc.Polls = &pipeline.Polls{BaseStopped: &pipeline.PollResult{Attempts: 4}}
			mark := c.mark()

			out, err := c.stages().CheckInstances(ctx, pipeline.CheckInput{Wait: pipeline.WaitBaseStopped, Document: doc})
			if got := c.methodsSince(mark); !slices.Equal(got, []string{"DescribeInstances"}) {
				t.Errorf("calls = %v, want one DescribeInstances", got)
			}
			describes := fakeInputs[ec2.DescribeInstancesInput](c, "DescribeInstances")
			if ids := describes[len(describes)-1].InstanceIds; !slices.Equal(ids, []string{base}) {
				t.Errorf("described %v, want the base %s", ids, base)
			}
			if tc.wantFailed {
				rf := assertResourceFailed(t, err, tc.state)
				if !strings.Contains(rf.Resource, base) {
					t.Errorf("resource %q does not name the base %s", rf.Resource, base)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			poll := out.Polls.BaseStopped
			if poll.Ready != tc.wantReady || poll.State != tc.state || poll.Attempts != 5 || poll.Reason == "" {
				t.Errorf("poll = %+v, want ready %v, state %s, attempt 5, a reason", poll, tc.wantReady, tc.state)
			}
			if doc.Polls.BaseStopped.Attempts != 4 {
				t.Error("the check changed its input document's polls")
			}
		})
	}
}

func TestCheckInstancesBaseStoppedLastPollShowsConsole(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := mustRun(t)(c.stages().LaunchBase(ctx, withNetwork(t, c, testDoc())))
	base := doc.Resources.Image.BaseInstanceID
	c.setInstanceState(base, "running")
	console := "early boot noise " + strings.Repeat("x", 5000) + "\namifleet: user data failed at line 12\nError: Unable to find a match: httpd"
	c.setConsoleOutput(base, console)
	limit := doc.Config.Poll.MaxPolls.BaseStopped

	tests := []struct {
		name        string
		prev        int
		wantConsole bool
	}{
		{"first poll", 0, false},
		{"a poll before the last", limit - 2, false},
		{"the last poll", limit - 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := doc
			d.Polls = &pipeline.Polls{BaseStopped: &pipeline.PollResult{Attempts: tc.prev}}
			mark := c.mark()
			out, err := c.stages().CheckInstances(ctx, pipeline.CheckInput{Wait: pipeline.WaitBaseStopped, Document: d})
			if err != nil {
				t.Fatal(err)
			}
			poll := out.Polls.BaseStopped
			if poll.Ready || poll.Attempts != tc.prev+1 {
				t.Fatalf("poll = %+v", poll)
			}
			gotConsole := slices.Contains(c.methodsSince(mark), "GetConsoleOutput")
			if gotConsole != tc.wantConsole {
				t.Errorf("GetConsoleOutput called: %v, want %v", gotConsole, tc.wantConsole)
			}
			if !tc.wantConsole {
				return
			}
			if !strings.Contains(poll.Reason, "Unable to find a match: httpd") {
				t.Errorf("reason lacks the console's last line: %q", poll.Reason)
			}
			if strings.Contains(poll.Reason, "early boot noise") || len(poll.Reason) > consoleTailBytes+300 {
				t.Errorf("reason holds more than the tail (%d bytes)", len(poll.Reason))
			}
		})
	}
}

func TestCheckInstancesConsoleErrorsDoNotFailThePoll(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := mustRun(t)(c.stages().LaunchBase(ctx, withNetwork(t, c, testDoc())))
	c.setInstanceState(doc.Resources.Image.BaseInstanceID, "running")
	c.failOnce("GetConsoleOutput", fakeErr("UnauthorizedOperation", "no console for you"))
	doc.Polls = &pipeline.Polls{BaseStopped: &pipeline.PollResult{Attempts: doc.Config.Poll.MaxPolls.BaseStopped - 1}}
	out, err := c.stages().CheckInstances(ctx, pipeline.CheckInput{Wait: pipeline.WaitBaseStopped, Document: doc})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.Polls.BaseStopped.Reason, "console output unavailable") {
		t.Errorf("reason = %q", out.Polls.BaseStopped.Reason)
	}
}

// fleetDoc is a document with three instances launched, as after LaunchReplicas.
func fleetDoc(t *testing.T, c *fakeCloud) pipeline.Document {
	t.Helper()
	doc := mustRun(t)(c.stages().LaunchReplicas(context.Background(), withImage(t, c, testDoc())))
	if n := len(doc.Resources.Fleet.InstanceIDs); n != 3 {
		t.Fatalf("fleet of %d, want 3", n)
	}
	return doc
}

func TestCheckInstancesRunning(t *testing.T) {
	tests := []struct {
		name       string
		states     []string // of the fleet's instances, in order
		wantReady  bool
		wantState  string
		wantFailed string
	}{
		{"all running", []string{"running", "running", "running"}, true, "running", ""},
		{"one pending", []string{"running", "pending", "running"}, false, "pending", ""},
		{"base still stopped", []string{"running", "running", "stopped"}, false, "stopped", ""},
		{"one terminated", []string{"running", "terminated", "pending"}, false, "", "terminated"},
		{"one shutting down", []string{"shutting-down", "running", "running"}, false, "", "shutting-down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := newFakeCloud(t)
			doc := fleetDoc(t, c)
			ids := doc.Resources.Fleet.InstanceIDs
			for i, id := range ids {
				c.setInstanceState(id, tc.states[i])
			}
			mark := c.mark()
			out, err := c.stages().CheckInstances(ctx, pipeline.CheckInput{Wait: pipeline.WaitInstancesRunning, Document: doc})
			if got := c.methodsSince(mark); !slices.Equal(got, []string{"DescribeInstances"}) {
				t.Errorf("calls = %v, want exactly one DescribeInstances per poll", got)
			}
			describes := fakeInputs[ec2.DescribeInstancesInput](c, "DescribeInstances")
			if got := describes[len(describes)-1].InstanceIds; !slices.Equal(got, ids) {
				t.Errorf("described %v, want the whole fleet %v in one call", got, ids)
			}
			if tc.wantFailed != "" {
				assertResourceFailed(t, err, tc.wantFailed)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			poll := out.Polls.InstancesRunning
			if poll.Ready != tc.wantReady || poll.State != tc.wantState || poll.Attempts != 1 {
				t.Errorf("poll = %+v, want ready %v, state %q, attempt 1", poll, tc.wantReady, tc.wantState)
			}
			for i, id := range ids {
				if tc.states[i] != "running" && !strings.Contains(poll.Reason, id) {
					t.Errorf("reason %q does not name %s (%s)", poll.Reason, id, tc.states[i])
				}
			}
		})
	}
}

// Right after RunInstances, DescribeInstances may not know the ids yet.
func TestCheckInstancesNotFoundIsNotReady(t *testing.T) {
	for _, wait := range []string{pipeline.WaitBaseStopped, pipeline.WaitInstancesRunning} {
		t.Run(wait, func(t *testing.T) {
			ctx := context.Background()
			c := newFakeCloud(t)
			doc := fleetDoc(t, c)
			c.failOnce("DescribeInstances", fakeErr("InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist"))
			out, err := c.stages().CheckInstances(ctx, pipeline.CheckInput{Wait: wait, Document: doc})
			if err != nil {
				t.Fatalf("got %v, want not ready", err)
			}
			poll := out.Polls.BaseStopped
			if wait == pipeline.WaitInstancesRunning {
				poll = out.Polls.InstancesRunning
			}
			if poll == nil || poll.Ready || !strings.Contains(poll.Reason, "not visible yet") {
				t.Errorf("poll = %+v, want not ready, not visible yet", poll)
			}
		})
	}
}

func TestCheckInstancesBadWait(t *testing.T) {
	c := newFakeCloud(t)
	_, err := c.stages().CheckInstances(context.Background(), pipeline.CheckInput{Wait: "imageReady", Document: testDoc()})
	assertBadInput(t, err, "wait")
	if got := c.methods(); len(got) != 0 {
		t.Errorf("calls = %v, want none", got)
	}
}

func TestCheckInstancesOtherErrorsFail(t *testing.T) {
	c := newFakeCloud(t)
	doc := fleetDoc(t, c)
	c.failOnce("DescribeInstances", fakeErr("RequestLimitExceeded", "slow down"))
	_, err := c.stages().CheckInstances(context.Background(), pipeline.CheckInput{Wait: pipeline.WaitInstancesRunning, Document: doc})
	if ErrorCode(err) != "RequestLimitExceeded" {
		t.Fatalf("got %v, want the throttling error for the Task's retry", err)
	}
}
