package stages

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

func TestRegisterTargets(t *testing.T) {
	tests := []struct {
		name      string
		instances int
		batches   []int
	}{
		{"one instance", 1, []int{1}},
		{"a default fleet in one call", 3, []int{3}},
		{"a full batch in one call", maxTargetsPerRegister, []int{maxTargetsPerRegister}},
		{"more than a batch", 2*maxTargetsPerRegister + 5, []int{maxTargetsPerRegister, maxTargetsPerRegister, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, doc := lbFixture(t)
			doc = createdLB(t, c, doc)
			ids := withFleet(t, c, &doc, tc.instances)
			mark := c.mark()
			if _, err := c.stages().RegisterTargets(context.Background(), doc); err != nil {
				t.Fatalf("RegisterTargets: %v", err)
			}
			if got := c.mutations(mark); len(got) != len(tc.batches) {
				t.Errorf("calls = %v, want %d RegisterTargets", got, len(tc.batches))
			}
			var sent []string
			ins := fakeInputs[elb.RegisterTargetsInput](c, "RegisterTargets")
			for i, in := range ins {
				if aws.ToString(in.TargetGroupArn) != doc.Resources.LoadBalancer.TargetGroupARN {
					t.Errorf("call %d registered with %s, want the run's target group", i, aws.ToString(in.TargetGroupArn))
				}
				if i < len(tc.batches) && len(in.Targets) != tc.batches[i] {
					t.Errorf("call %d has %d targets, want %d", i, len(in.Targets), tc.batches[i])
				}
				for _, tg := range in.Targets {
					if aws.ToInt32(tg.Port) != 80 {
						t.Errorf("target %s on port %d, want 80", aws.ToString(tg.Id), aws.ToInt32(tg.Port))
					}
					sent = append(sent, aws.ToString(tg.Id))
				}
			}
			if !slices.Equal(sent, ids) {
				t.Errorf("registered %d ids, want each of the %d fleet instances once, in order", len(sent), len(ids))
			}
		})
	}
}

func TestRegisterTargetsTwiceRegistersOnce(t *testing.T) {
	c, doc := lbFixture(t)
	doc = createdLB(t, c, doc)
	withFleet(t, c, &doc, 3)
	for range 2 {
		if _, err := c.stages().RegisterTargets(context.Background(), doc); err != nil {
			t.Fatalf("RegisterTargets: %v", err)
		}
	}
	c.mu.Lock()
	n := len(c.tgs[doc.Resources.LoadBalancer.TargetGroupARN].Targets)
	c.mu.Unlock()
	if n != 3 {
		t.Errorf("the target group holds %d targets, want 3", n)
	}
}

func TestRegisterTargetsNeedsItsInputs(t *testing.T) {
	tests := []struct {
		name string
		edit func(*pipeline.Document)
	}{
		{"no load balancer", func(d *pipeline.Document) { d.Resources.LoadBalancer = nil }},
		{"no fleet", func(d *pipeline.Document) { d.Resources.Fleet = nil }},
		{"empty fleet", func(d *pipeline.Document) { d.Resources.Fleet.InstanceIDs = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, doc := lbFixture(t)
			doc = createdLB(t, c, doc)
			withFleet(t, c, &doc, 2)
			tc.edit(&doc)
			mark := c.mark()
			_, err := c.stages().RegisterTargets(context.Background(), doc)
			var se *pipeline.StageError
			if !errors.As(err, &se) || len(c.methodsSince(mark)) != 0 {
				t.Errorf("err = %v, calls %v; want a StageError and no call", err, c.methodsSince(mark))
			}
		})
	}
}
