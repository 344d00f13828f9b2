package stages

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

type targetHealth struct{ state, reason string }

func TestCheckTargets(t *testing.T) {
	tests := []struct {
		name string
		// health of the fleet's instances {0}, {1}, {2}; a nil entry is not registered.
		health    []*targetHealth
		prev      int
		wantReady bool
		wantState string
		// wantReason writes {0}, {1}, {2} for the instance ids.
		wantReason string
	}{
		{
			name:   "all healthy is ready",
			health: []*targetHealth{{"healthy", ""}, {"healthy", ""}, {"healthy", ""}},
			prev:   4, wantReady: true, wantState: "3/3 healthy", wantReason: "every target is healthy",
		},
		{
			name:      "initial health checks",
			health:    []*targetHealth{{"healthy", ""}, {"initial", "Elb.InitialHealthChecking"}, {"initial", "Elb.RegistrationInProgress"}},
			wantState: "1/3 healthy", wantReason: "waiting for {1} initial (Elb.InitialHealthChecking), {2} initial (Elb.RegistrationInProgress)",
		},
		{
			name:      "unhealthy and unavailable are not ready",
			health:    []*targetHealth{{"unhealthy", "Target.ResponseCodeMismatch"}, {"unavailable", ""}, {"healthy", ""}},
			wantState: "1/3 healthy", wantReason: "waiting for {0} unhealthy (Target.ResponseCodeMismatch), {1} unavailable",
		},
		{
			name:      "an unregistered instance is not ready",
			health:    []*targetHealth{{"healthy", ""}, nil, {"healthy", ""}},
			wantState: "2/3 healthy", wantReason: "waiting for {1} not registered",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, doc := lbFixture(t)
			doc = createdLB(t, c, doc)
			ids := withFleet(t, c, &doc, len(tc.health))
			tgARN := doc.Resources.LoadBalancer.TargetGroupARN
			for i, h := range tc.health {
				if h == nil {
					continue
				}
				if _, err := c.ELB.RegisterTargets(context.Background(), &elb.RegisterTargetsInput{TargetGroupArn: aws.String(tgARN),
					Targets: []elbtypes.TargetDescription{{Id: aws.String(ids[i])}}}); err != nil {
					t.Fatal(err)
				}
				c.setTargetHealth(tgARN, ids[i], h.state, h.reason)
			}
			if tc.prev > 0 {
				doc.Polls = &pipeline.Polls{TargetsHealthy: &pipeline.PollResult{Attempts: tc.prev}}
			}
			mark := c.mark()
			out, err := c.stages().CheckTargetsHealthy(context.Background(), doc)
			if err != nil {
				t.Fatalf("CheckTargets: %v", err)
			}
			if got := c.methodsSince(mark); !reflect.DeepEqual(got, []string{"DescribeTargetHealth"}) {
				t.Errorf("calls = %v, want one DescribeTargetHealth", got)
			}
			if in := fakeInputs[elb.DescribeTargetHealthInput](c, "DescribeTargetHealth"); aws.ToString(in[0].TargetGroupArn) != tgARN {
				t.Errorf("described %s, want the run's target group", aws.ToString(in[0].TargetGroupArn))
			}
			reason := tc.wantReason
			for i, id := range ids {
				reason = strings.ReplaceAll(reason, "{"+string(rune('0'+i))+"}", id)
			}
			want := &pipeline.PollResult{Ready: tc.wantReady, State: tc.wantState, Reason: reason, Attempts: tc.prev + 1}
			if out.Polls == nil || !reflect.DeepEqual(out.Polls.TargetsHealthy, want) {
				t.Errorf("polls.targetsHealthy = %+v, want %+v", out.Polls.TargetsHealthy, want)
			}
		})
	}
}

func TestCheckTargetsNeedsItsInputs(t *testing.T) {
	c, doc := lbFixture(t)
	_, err := c.stages().CheckTargetsHealthy(context.Background(), doc)
	var se *pipeline.StageError
	if !errors.As(err, &se) || len(c.methods()) != 0 {
		t.Errorf("err = %v, calls %v; want a StageError and no call", err, c.methods())
	}
}
