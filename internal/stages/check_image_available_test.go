package stages

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amifleet/amifleet/internal/pipeline"
)

func TestCheckImage(t *testing.T) {
	tests := []struct {
		state, reason string
		inject        error
		wantReady     bool
		wantFailed    bool
		wantReason    string
	}{
		{state: "pending", wantReason: "pending"},
		{state: "available", wantReady: true, wantReason: "available"},
		{state: "failed", reason: "Client.InternalError: snapshot failed", wantFailed: true},
		{state: "error", reason: "disk error", wantFailed: true},
		{state: "pending", inject: fakeErr("InvalidAMIID.NotFound", "not yet"), wantReason: "not visible yet"},
	}
	for _, tc := range tests {
		name := tc.state
		if tc.inject != nil {
			name = "not found"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := newFakeCloud(t)
			doc := mustRun(t)(c.stages().CreateImage(ctx, stoppedBase(t, c)))
			id := doc.Resources.Image.ImageID
			c.setImageState(id, tc.state, tc.reason)
			if tc.inject != nil {
				c.failOnce("DescribeImages", tc.inject)
			}
			doc.Polls = &pipeline.Polls{ImageAvailable: &pipeline.PollResult{Attempts: 7}}
			mark := c.mark()

			out, err := c.stages().CheckImageAvailable(ctx, doc)
			if got := c.methodsSince(mark); !slices.Equal(got, []string{"DescribeImages"}) {
				t.Errorf("calls = %v, want one DescribeImages", got)
			}
			if in := fakeInputs[ec2.DescribeImagesInput](c, "DescribeImages"); !slices.Equal(in[len(in)-1].ImageIds, []string{id}) {
				t.Errorf("described %v, want %s", in[len(in)-1].ImageIds, id)
			}
			if tc.wantFailed {
				rf := assertResourceFailed(t, err, tc.state)
				if rf.Reason != tc.reason || !strings.Contains(rf.Resource, id) {
					t.Errorf("error %+v, want the image %s and EC2's reason %q", rf, id, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			poll := out.Polls.ImageAvailable
			if poll.Ready != tc.wantReady || poll.Attempts != 8 || !strings.Contains(poll.Reason, tc.wantReason) {
				t.Errorf("poll = %+v, want ready %v, attempt 8, reason with %q", poll, tc.wantReady, tc.wantReason)
			}
			snaps := out.Resources.Image.SnapshotIDs
			if tc.wantReady && !slices.Equal(snaps, c.images[id].Snapshots) {
				t.Errorf("snapshots recorded %v, want %v", snaps, c.images[id].Snapshots)
			}
			if !tc.wantReady && len(snaps) != 0 {
				t.Errorf("snapshots recorded before the image is available: %v", snaps)
			}
		})
	}
}

func TestCheckImageNeedsAnImage(t *testing.T) {
	c := newFakeCloud(t)
	if _, err := c.stages().CheckImageAvailable(context.Background(), testDoc()); err == nil || len(c.methods()) != 0 {
		t.Fatalf("got %v after calls %v, want an error before any call", err, c.methods())
	}
}
