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

			out, err := c.stages().CheckBaseStopped(ctx, doc)
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
			out, err := c.stages().CheckBaseStopped(ctx, d)
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
	out, err := c.stages().CheckBaseStopped(ctx, doc)
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
