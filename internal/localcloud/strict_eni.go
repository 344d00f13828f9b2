package localcloud

// Lingering network interfaces (Strictness.ENILinger). An Application Load Balancer has
// a network interface in each of its subnets, in its security groups; after
// DeleteLoadBalancer, AWS releases them minutes later, and until then deleting one of
// those groups fails with DependencyViolation. moto lets the group go at once. The
// gateway reads the load balancer's groups from moto before the delete goes through,
// and for ENILinger after it succeeded refuses DeleteSecurityGroup on them. With a
// latency model that times OpLoadBalancerENIsGone, its draw replaces ENILinger
// (latency_elb.go).

import (
	"context"
	"net/http"
	"time"

	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
)

// lbBeingDeleted is a load balancer's groups, read before its deletion.
type lbBeingDeleted struct {
	groups []string
}

// noteLoadBalancerGroups reads the groups of the load balancer a DeleteLoadBalancer
// names, from moto, before it is gone.
func (g *Gateway) noteLoadBalancerGroups(ctx context.Context, call apiCall) {
	arn := call.Form.Get("LoadBalancerArn")
	if arn == "" {
		return
	}
	region := g.callRegion(call)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := g.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{arn}}, func(o *elb.Options) { o.Region = region })
	if err != nil || len(out.LoadBalancers) != 1 {
		return // moto answers the delete of what it does not know
	}
	s := g.strictState()
	s.mu.Lock()
	s.lbGroups[arn] = lbBeingDeleted{groups: out.LoadBalancers[0].SecurityGroups}
	s.mu.Unlock()
}

// lingerAfterDelete keeps a deleted load balancer's groups in use for ENILinger, or
// the latency model's time.
func (g *Gateway) lingerAfterDelete(call apiCall) {
	arn := call.Form.Get("LoadBalancerArn")
	s := g.strictState()
	s.mu.Lock()
	lb, ok := s.lbGroups[arn]
	delete(s.lbGroups, arn)
	var until time.Time
	if ok {
		until = g.enisGoneAt(arn, s.now()) // ENILinger, or the latency model's time
	}
	for _, id := range lb.groups {
		s.lingering[id] = until
	}
	s.mu.Unlock()
	if ok && len(lb.groups) > 0 {
		g.strictLog().Info("load balancer's network interfaces linger", "check", CheckENILinger, "call", call.key(), "resource", arn, "groups", lb.groups, "until", until.Format(time.RFC3339Nano))
	}
}

// groupInUse refuses (and says so) a DeleteSecurityGroup of a group that a deleted
// load balancer's network interfaces still use.
func (g *Gateway) groupInUse(w http.ResponseWriter, call apiCall) bool {
	id := call.Form.Get("GroupId")
	s := g.strictState()
	s.mu.Lock()
	until, ok := s.lingering[id]
	inUse := ok && s.now().Before(until)
	if ok && !inUse {
		delete(s.lingering, id)
	}
	s.mu.Unlock()
	if !inUse {
		return false
	}
	g.refuse(w, call, CheckENILinger, id, "DependencyViolation", "resource "+id+" has a dependent object")
	return true
}
