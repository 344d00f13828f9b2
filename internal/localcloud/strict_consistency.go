package localcloud

// Eventual consistency (Strictness.Consistency). EC2 and ELB answer a create before
// every part of them knows the new resource: for a moment, a describe that names it by
// id answers NotFound (InvalidInstanceID.NotFound right after RunInstances, as the EC2
// API reference's "eventual consistency" page warns). moto knows everything at once.
// For Consistency after a create, the calls below that name the new resource by id or
// ARN are answered as AWS answers them; describes by filter are let through.

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// freshNamers are the calls refused while a resource they name is new, with the
// parameters (a single one, or the prefix of a list: "InstanceId" reads InstanceId and
// InstanceId.N) that name it.
var freshNamers = map[string][]string{
	"ec2:DescribeInstances":                      {"InstanceId"},
	"ec2:DescribeInstanceStatus":                 {"InstanceId"},
	"ec2:DescribeImages":                         {"ImageId"},
	"ec2:DescribeSecurityGroups":                 {"GroupId"},
	"ec2:AuthorizeSecurityGroupIngress":          {"GroupId"},
	"elasticloadbalancing:DescribeLoadBalancers": {"LoadBalancerArns.member"},
	"elasticloadbalancing:DescribeListeners":     {"LoadBalancerArn"},
	"elasticloadbalancing:DescribeTags":          {"ResourceArns.member"},
	"elasticloadbalancing:DescribeTargetGroups":  {"TargetGroupArns.member", "LoadBalancerArn"},
	"elasticloadbalancing:DescribeTargetHealth":  {"TargetGroupArn"},
	"elasticloadbalancing:RegisterTargets":       {"TargetGroupArn"},
}

// createdNames says where a create's answer names what it created.
var createdNames = map[string]string{
	"ec2:RunInstances":                        "instanceId",
	"ec2:CreateImage":                         "imageId",
	"ec2:CreateSecurityGroup":                 "groupId",
	"elasticloadbalancing:CreateLoadBalancer": "LoadBalancerArn",
	"elasticloadbalancing:CreateTargetGroup":  "TargetGroupArn",
}

// rememberCreated notes the resources a create made: not visible until Consistency
// from now (or the latency model's OpVisible draw).
func (g *Gateway) rememberCreated(call apiCall, body []byte) {
	element, ok := createdNames[call.key()]
	if !ok {
		return
	}
	s := g.strictState()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, id := range xmlValues(body, element) {
		if id != "" {
			s.fresh[id] = g.visibleAt(id, now)
		}
	}
}

// visibleAt is when a resource created at now becomes visible: with a latency model
// that times OpVisible, at its draw for the resource; else Consistency after now.
func (g *Gateway) visibleAt(id string, now time.Time) time.Time {
	if _, ok := g.latency().Dist(OpVisible, ""); ok {
		_, at := g.modelled(OpVisible, id, "", now)
		return at
	}
	return now.Add(g.Strictness().Consistency)
}

// notYetVisible answers NotFound (and says so) for a call that names a resource too
// new to be seen.
func (g *Gateway) notYetVisible(w http.ResponseWriter, call apiCall) bool {
	params, ok := freshNamers[call.key()]
	if !ok {
		return false
	}
	var named []string
	for _, p := range params {
		if v := call.Form.Get(p); v != "" {
			named = append(named, v)
		}
		named = append(named, sortedList(call, p)...)
	}
	s := g.strictState()
	s.mu.Lock()
	now := s.now()
	var unseen []string
	for _, id := range named {
		if at, ok := s.fresh[id]; ok {
			if now.Before(at) {
				unseen = append(unseen, id)
			} else {
				delete(s.fresh, id)
			}
		}
	}
	s.mu.Unlock()
	if len(unseen) == 0 {
		return false
	}
	// One kind per answer, as AWS names the first thing it could not find.
	kind := resourceKind(unseen[0])
	var same []string
	for _, id := range unseen {
		if resourceKind(id) == kind {
			same = append(same, id)
		}
	}
	code, message := notFound(kind, same)
	g.refuse(w, call, CheckConsistency, strings.Join(same, ","), code, message)
	return true
}

func resourceKind(id string) string {
	switch {
	case strings.HasPrefix(id, "i-"):
		return "instance"
	case strings.HasPrefix(id, "ami-"):
		return "image"
	case strings.HasPrefix(id, "sg-"):
		return "group"
	case strings.Contains(id, ":loadbalancer/"):
		return "loadbalancer"
	case strings.Contains(id, ":targetgroup/"):
		return "targetgroup"
	}
	return ""
}

// notFound is the error code and message AWS answers for resources of one kind that
// it does not (yet) know.
func notFound(kind string, ids []string) (code, message string) {
	list := strings.Join(ids, ", ")
	switch kind {
	case "instance":
		if len(ids) > 1 {
			return "InvalidInstanceID.NotFound", fmt.Sprintf("The instance IDs '%s' do not exist", list)
		}
		return "InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", list)
	case "image":
		if len(ids) > 1 {
			return "InvalidAMIID.NotFound", fmt.Sprintf("The image ids '[%s]' do not exist", list)
		}
		return "InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", list)
	case "group":
		return "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", ids[0])
	case "loadbalancer":
		return "LoadBalancerNotFound", "One or more load balancers not found"
	}
	return "TargetGroupNotFound", "One or more target groups not found"
}
