package stages

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amifleet/amifleet/internal/pipeline"
)

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
			out, err := c.stages().CheckInstancesRunning(ctx, doc)
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
			check := c.stages().CheckBaseStopped
			if wait == pipeline.WaitInstancesRunning {
				check = c.stages().CheckInstancesRunning
			}
			out, err := check(ctx, doc)
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

func TestCheckInstancesOtherErrorsFail(t *testing.T) {
	c := newFakeCloud(t)
	doc := fleetDoc(t, c)
	c.failOnce("DescribeInstances", fakeErr("RequestLimitExceeded", "slow down"))
	_, err := c.stages().CheckInstancesRunning(context.Background(), doc)
	if ErrorCode(err) != "RequestLimitExceeded" {
		t.Fatalf("got %v, want the throttling error for the Task's retry", err)
	}
}
