package stages

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

func TestCheckLoadBalancer(t *testing.T) {
	tests := []struct {
		name     string
		state    string
		prev     *pipeline.PollResult
		want     *pipeline.PollResult
		wantFail bool
	}{
		{name: "provisioning, first poll", state: "provisioning",
			want: &pipeline.PollResult{State: "provisioning", Reason: "load balancer is provisioning", Attempts: 1, WaitSeconds: 120}},
		{name: "provisioning counts the polls", state: "provisioning", prev: &pipeline.PollResult{State: "provisioning", Attempts: 7},
			want: &pipeline.PollResult{State: "provisioning", Reason: "load balancer is provisioning", Attempts: 8, WaitSeconds: 5}},
		{name: "active_impaired is not ready", state: "active_impaired",
			want: &pipeline.PollResult{State: "active_impaired", Reason: "load balancer is active_impaired", Attempts: 1, WaitSeconds: 120}},
		{name: "active is ready", state: "active", prev: &pipeline.PollResult{State: "provisioning", Attempts: 2},
			want: &pipeline.PollResult{Ready: true, State: "active", Reason: "load balancer is active", Attempts: 3, WaitSeconds: 5}},
		{name: "failed is a resource failure", state: "failed", wantFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, doc := lbFixture(t)
			doc = createdLB(t, c, doc)
			// The default waits: the first check asks for the first wait
			// (firstWaitSeconds.loadBalancerActive), the later ones the interval.
			doc.Config.Poll = pipeline.DefaultConfig().Poll
			arn := doc.Resources.LoadBalancer.LoadBalancerARN
			c.setLoadBalancerState(arn, tc.state)
			if tc.prev != nil {
				prev := *tc.prev
				doc.Polls = &pipeline.Polls{LoadBalancerActive: &prev}
			}
			mark := c.mark()
			out, err := c.stages().CheckLoadBalancerActive(context.Background(), doc)
			if got := c.methodsSince(mark); !reflect.DeepEqual(got, []string{"DescribeLoadBalancers"}) {
				t.Errorf("calls = %v, want one DescribeLoadBalancers", got)
			}
			if in := fakeInputs[elb.DescribeLoadBalancersInput](c, "DescribeLoadBalancers"); !reflect.DeepEqual(in[len(in)-1].LoadBalancerArns, []string{arn}) {
				t.Errorf("described %v, want the run's load balancer %s", in[len(in)-1].LoadBalancerArns, arn)
			}
			if tc.wantFail {
				var rf *pipeline.ResourceFailedError
				if !errors.As(err, &rf) || rf.State != "failed" || !strings.Contains(rf.Resource, arn) {
					t.Fatalf("err = %v, want a ResourceFailedError for %s", err, arn)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckLoadBalancer: %v", err)
			}
			if out.Polls == nil || !reflect.DeepEqual(out.Polls.LoadBalancerActive, tc.want) {
				t.Errorf("polls.loadBalancer = %+v, want %+v", out.Polls, tc.want)
			}
			if tc.prev != nil && doc.Polls.LoadBalancerActive.Attempts != tc.prev.Attempts {
				t.Errorf("the caller's document changed: attempts %d", doc.Polls.LoadBalancerActive.Attempts)
			}
		})
	}
}

func TestCheckLoadBalancerErrors(t *testing.T) {
	t.Run("not created yet", func(t *testing.T) {
		c, doc := lbFixture(t)
		_, err := c.stages().CheckLoadBalancerActive(context.Background(), doc)
		var se *pipeline.StageError
		if !errors.As(err, &se) || len(c.methods()) != 0 {
			t.Errorf("err = %v, calls %v; want a StageError and no call", err, c.methods())
		}
	})
	t.Run("not found is retryable", func(t *testing.T) {
		c, doc := lbFixture(t)
		doc = createdLB(t, c, doc)
		c.failOnce("DescribeLoadBalancers", fakeErr("LoadBalancerNotFound", "not yet"))
		_, err := c.stages().CheckLoadBalancerActive(context.Background(), doc)
		var re *pipeline.RetryableError
		if !errors.As(err, &re) {
			t.Errorf("err = %v, want a RetryableError", err)
		}
	})
}
