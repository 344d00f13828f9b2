package stages

// This file is the hand-written fake of the AWS APIs the stages call (EC2API, ELBAPI,
// SSMAPI): one in-memory cloud that records every call, in order, with its input, and
// keeps enough state (ids, states, tags, rules, references) for the stages to run
// against it as they would against AWS. It is shared by every stage's tests.
//
// What it models, and where it is strict on purpose:
//   - ids are assigned in sequence (i-00000000000000001, sg-..., ami-..., ...);
//   - tags from TagSpecifications / Tags, and the filters tag:<key>, tag-key and the
//     few others the stages use; an unknown filter name is an error, so that a typo in
//     a stage fails its test instead of silently matching everything;
//   - instances: RunInstances answers "pending" and the state stays where it is until
//     a test moves it (setInstanceState, settle) or autoSettle is on; TerminateInstances
//     gives "shutting-down"; terminated instances stay visible, as on AWS;
//   - security groups: duplicate rules answer InvalidPermission.Duplicate, deleting a
//     group that an instance or another group's rule uses answers DependencyViolation;
//   - images: names are unique per owner (InvalidAMIName.Duplicate), CreateImage makes
//     one snapshot tagged from the snapshot TagSpecification, deleting a snapshot that
//     a registered image uses answers InvalidSnapshot.InUse;
//   - ELBv2: duplicate names answer DuplicateTargetGroupName/DuplicateLoadBalancerName,
//     an ALB needs subnets in two zones, deleting a target group a listener forwards to
//     answers ResourceInUse, DescribeTags takes at most 20 ARNs, registering an
//     instance that is not running answers InvalidTarget.
//
// A test injects an error for an action with fail (every call) or failOnce.

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Fixed facts of the fake account.
const (
	fakeAccount     = "123456789012"
	fakeRegion      = "us-east-1"
	fakeAmazonOwner = "137112412989"
	fakeDefaultVPC  = "vpc-0default"
	fakeBaseImage   = "ami-0al2023base"
	fakeAL2023Param = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
	fakeRootDevice  = "/dev/xvda"
)

// fakeDefaultSubnets are the default VPC's default-for-az subnets, one per zone.
var fakeDefaultSubnets = []string{"subnet-0a", "subnet-0b", "subnet-0c"}

type fakeCall struct {
	Method string
	Input  any
}

type injection struct {
	err   error
	skip  int // calls to let through first
	times int // < 0: every call
}

type fakeInstance struct {
	ID, ImageID, InstanceType, SubnetID, VPCID, AZ, KeyName, UserData, State, PrivateDNS string
	SecurityGroupIDs                                                                     []string
	Tags                                                                                 map[string]string
	Input                                                                                *ec2.RunInstancesInput
	LaunchTime                                                                           time.Time
}

type fakeSubnet struct {
	ID, VPCID, AZ string
	DefaultForAZ  bool
	Tags          map[string]string
}

type fakeVPC struct {
	ID        string
	IsDefault bool
}

type fakeRule struct {
	Protocol string
	From, To int32
	Kind     string // "cidr", "cidr6", "group"
	Source   string
}

type fakeSG struct {
	ID, Name, Description, VPCID string
	Tags                         map[string]string
	Ingress                      []fakeRule
}

type fakeImage struct {
	ID, Name, Description, OwnerID, State, StateReason, RootDevice, SourceInstanceID string
	Tags                                                                             map[string]string
	Snapshots                                                                        []string
}

type fakeSnapshot struct {
	ID, VolumeID, OwnerID, State string
	Tags                         map[string]string
}

type fakeTarget struct {
	ID, State, Reason string
}

type fakeTG struct {
	ARN, Name string
	Input     *elb.CreateTargetGroupInput
	Tags      map[string]string
	Targets   []*fakeTarget
}

type fakeLB struct {
	ARN, Name, DNS, State, Scheme, Type, VPCID string
	Subnets, SecurityGroups                    []string
	Tags                                       map[string]string
}

type fakeListener struct {
	ARN, LBARN string
	Port       int32
	Protocol   elbtypes.ProtocolEnum
	Actions    []elbtypes.Action
	Tags       map[string]string
}

// fakeCloud is the shared state behind fakeEC2, fakeELB and fakeSSM.
type fakeCloud struct {
	mu    sync.Mutex
	calls []fakeCall
	fails map[string][]*injection
	seq   int

	// autoSettle makes every Describe* call first move transitional states on
	// (pending→running, stopping→stopped, shutting-down→terminated, image
	// pending→available, ALB provisioning→active), as moto does.
	autoSettle bool
	// newImageState is the state CreateImage gives a new image ("pending").
	newImageState string
	// newTargetState is the health a newly registered target starts in ("initial").
	newTargetState string

	vpcs      map[string]*fakeVPC
	subnets   map[string]*fakeSubnet
	sgs       map[string]*fakeSG
	instances map[string]*fakeInstance
	images    map[string]*fakeImage
	snapshots map[string]*fakeSnapshot
	console   map[string]string
	params    map[string]string
	tgs       map[string]*fakeTG
	lbs       map[string]*fakeLB
	listeners map[string]*fakeListener
	// order keeps creation order per map, so that answers are deterministic.
	order []string

	EC2 *fakeEC2
	ELB *fakeELB
	SSM *fakeSSM
}

type fakeEC2 struct{ c *fakeCloud }
type fakeELB struct{ c *fakeCloud }
type fakeSSM struct{ c *fakeCloud }

var (
	_ EC2API = (*fakeEC2)(nil)
	_ ELBAPI = (*fakeELB)(nil)
	_ SSMAPI = (*fakeSSM)(nil)
)

// newFakeCloud is an account with a default VPC of three default subnets in three
// zones, the public Amazon Linux 2023 AMI, and its SSM parameter.
func newFakeCloud(t testing.TB) *fakeCloud {
	t.Helper()
	c := &fakeCloud{
		fails:          map[string][]*injection{},
		newImageState:  "pending",
		newTargetState: "initial",
		vpcs:           map[string]*fakeVPC{},
		subnets:        map[string]*fakeSubnet{},
		sgs:            map[string]*fakeSG{},
		instances:      map[string]*fakeInstance{},
		images:         map[string]*fakeImage{},
		snapshots:      map[string]*fakeSnapshot{},
		console:        map[string]string{},
		params:         map[string]string{},
		tgs:            map[string]*fakeTG{},
		lbs:            map[string]*fakeLB{},
		listeners:      map[string]*fakeListener{},
	}
	c.EC2, c.ELB, c.SSM = &fakeEC2{c}, &fakeELB{c}, &fakeSSM{c}
	c.addVPC(fakeDefaultVPC, true)
	for i, id := range fakeDefaultSubnets {
		c.addSubnet(id, fakeDefaultVPC, fakeRegion+string(rune('a'+i)), true)
	}
	c.images[fakeBaseImage] = &fakeImage{ID: fakeBaseImage, Name: "al2023-ami-2023.6-kernel-6.1-x86_64",
		OwnerID: fakeAmazonOwner, State: "available", RootDevice: fakeRootDevice,
		Snapshots: []string{"snap-0amazon"}, Tags: map[string]string{}}
	c.order = append(c.order, fakeBaseImage)
	c.params[fakeAL2023Param] = fakeBaseImage
	return c
}

// stages is a Stages wired to this cloud, with a fixed clock.
func (c *fakeCloud) stages() *Stages {
	return &Stages{EC2: c.EC2, ELB: c.ELB, SSM: c.SSM, Region: fakeRegion,
		Now: func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }}
}

func (c *fakeCloud) addVPC(id string, isDefault bool) {
	c.vpcs[id] = &fakeVPC{ID: id, IsDefault: isDefault}
	c.order = append(c.order, id)
}

func (c *fakeCloud) addSubnet(id, vpcID, az string, defaultForAZ bool) {
	c.subnets[id] = &fakeSubnet{ID: id, VPCID: vpcID, AZ: az, DefaultForAZ: defaultForAZ, Tags: map[string]string{}}
	c.order = append(c.order, id)
}

// --- recording and injection -------------------------------------------------

// fail makes every later call of method answer err (until clearFail).
func (c *fakeCloud) fail(method string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fails[method] = append(c.fails[method], &injection{err: err, times: -1})
}

// failOnce makes the next call of method answer err; calls stack up in order.
func (c *fakeCloud) failOnce(method string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fails[method] = append(c.fails[method], &injection{err: err, times: 1})
}

// failNth makes the nth call of method from now (1 for the next) answer err.
func (c *fakeCloud) failNth(method string, n int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fails[method] = append(c.fails[method], &injection{err: err, skip: n - 1, times: 1})
}

func (c *fakeCloud) clearFail(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.fails, method)
}

// record notes the call, and answers the injected error, if any. Callers hold mu.
func (c *fakeCloud) record(method string, in any) error {
	c.calls = append(c.calls, fakeCall{Method: method, Input: in})
	recordFake(method)
	q := c.fails[method]
	if len(q) == 0 {
		return nil
	}
	inj := q[0]
	if inj.skip > 0 {
		inj.skip--
		return nil
	}
	if inj.times > 0 {
		inj.times--
		if inj.times == 0 {
			c.fails[method] = q[1:]
		}
	}
	return inj.err
}

// methods lists the method names called so far, in order.
func (c *fakeCloud) methods() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.calls))
	for i, call := range c.calls {
		out[i] = call.Method
	}
	return out
}

// mark is the number of calls so far, for methodsSince.
func (c *fakeCloud) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// methodsSince lists the method names called after mark.
func (c *fakeCloud) methodsSince(mark int) []string { return c.methods()[mark:] }

// count is how many times method was called.
func (c *fakeCloud) count(method string) int {
	n := 0
	for _, m := range c.methods() {
		if m == method {
			n++
		}
	}
	return n
}

// mutations lists the calls after mark that change something (create, run, start,
// authorize, register, delete, terminate, deregister), to assert that a second run
// of a stage changed nothing.
func (c *fakeCloud) mutations(mark int) []string {
	var out []string
	for _, m := range c.methodsSince(mark) {
		if !strings.HasPrefix(m, "Describe") && !strings.HasPrefix(m, "Get") {
			out = append(out, m)
		}
	}
	return out
}

// inputsOf are the inputs of every call of method, in order.
func fakeInputs[T any](c *fakeCloud, method string) []*T {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*T
	for _, call := range c.calls {
		if call.Method != method {
			continue
		}
		in, ok := call.Input.(*T)
		if !ok {
			panic(fmt.Sprintf("fake: %s input is %T", method, call.Input))
		}
		out = append(out, in)
	}
	return out
}

func fakeErr(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func (c *fakeCloud) newID(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s-%017x", prefix, c.seq)
}

// --- test helpers over the model ------------------------------------------------

func (c *fakeCloud) setInstanceState(id, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances[id].State = state
}

func (c *fakeCloud) setConsoleOutput(id, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.console[id] = text
}

func (c *fakeCloud) setImageState(id, state, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.images[id].State, c.images[id].StateReason = state, reason
}

func (c *fakeCloud) setLoadBalancerState(arn, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lbs[arn].State = state
}

func (c *fakeCloud) setTargetHealth(tgARN, id, state, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tgs[tgARN].Targets {
		if t.ID == id {
			t.State, t.Reason = state, reason
		}
	}
}

// settle moves every transitional state on to where it is going.
func (c *fakeCloud) settle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleLocked()
}

func (c *fakeCloud) settleLocked() {
	next := map[string]string{"pending": "running", "stopping": "stopped", "shutting-down": "terminated"}
	for _, in := range c.instances {
		if s, ok := next[in.State]; ok {
			in.State = s
		}
	}
	for _, im := range c.images {
		if im.State == "pending" {
			im.State = "available"
		}
	}
	for _, lb := range c.lbs {
		if lb.State == "provisioning" {
			lb.State = "active"
		}
	}
}

func (c *fakeCloud) maybeSettle() {
	if c.autoSettle {
		c.settleLocked()
	}
}

// instancesWith lists the instances tagged with runID and role, in launch order,
// terminated ones included.
func (c *fakeCloud) instancesWith(runID, role string) []*fakeInstance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*fakeInstance
	for _, id := range c.order {
		if in, ok := c.instances[id]; ok && in.Tags[pipeline.TagRunID] == runID && in.Tags[pipeline.TagRole] == role {
			out = append(out, in)
		}
	}
	return out
}

// tagged lists, as "kind id", every resource of the run that still exists
// (terminated instances do not count), for cleanup tests.
func (c *fakeCloud) tagged(runID string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	add := func(kind, id string, tags map[string]string) {
		if tags[pipeline.TagRunID] == runID {
			out = append(out, kind+" "+id)
		}
	}
	for _, id := range c.order {
		if v, ok := c.instances[id]; ok && v.State != "terminated" {
			add("instance", id, v.Tags)
		}
		if v, ok := c.sgs[id]; ok {
			add("security-group", id, v.Tags)
		}
		if v, ok := c.images[id]; ok {
			add("image", id, v.Tags)
		}
		if v, ok := c.snapshots[id]; ok {
			add("snapshot", id, v.Tags)
		}
		if v, ok := c.tgs[id]; ok {
			add("target-group", id, v.Tags)
		}
		if v, ok := c.lbs[id]; ok {
			add("load-balancer", id, v.Tags)
		}
		if v, ok := c.listeners[id]; ok {
			add("listener", id, v.Tags)
		}
	}
	return out
}

// --- filters ---------------------------------------------------------------------

// fakeCheckFilters refuses a filter name the fake does not know for the resource
// type, before any resource is looked at, so that a misspelt filter fails even when
// nothing exists yet (the first run of a stage).
func fakeCheckFilters(filters []ec2types.Filter, known ...string) error {
	for _, f := range filters {
		name := aws.ToString(f.Name)
		if strings.HasPrefix(name, "tag:") || name == "tag-key" || slices.Contains(known, name) {
			continue
		}
		return fakeErr("InvalidParameterValue", "The filter '%s' is invalid", name)
	}
	return nil
}

// fakeMatchFilters reports whether a resource matches every filter. values answers a
// filter name with the resource's values for it, or ok=false when the fake does not
// know the filter for that resource type (an error, so a typo fails the test).
func fakeMatchFilters(filters []ec2types.Filter, tags map[string]string, values func(name string) ([]string, bool)) (bool, error) {
	for _, f := range filters {
		name := aws.ToString(f.Name)
		var have []string
		switch {
		case strings.HasPrefix(name, "tag:"):
			if v, ok := tags[strings.TrimPrefix(name, "tag:")]; ok {
				have = []string{v}
			}
		case name == "tag-key":
			for k := range tags {
				have = append(have, k)
			}
		default:
			v, ok := values(name)
			if !ok {
				return false, fakeErr("InvalidParameterValue", "The filter '%s' is invalid", name)
			}
			have = v
		}
		if len(f.Values) == 0 {
			return false, fakeErr("InvalidParameterValue", "filter %s has no values", name)
		}
		hit := false
		for _, want := range f.Values {
			if slices.Contains(have, want) {
				hit = true
			}
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

func fakeEC2Tags(m map[string]string) []ec2types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]ec2types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

func fakeELBTags(m map[string]string) []elbtypes.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]elbtypes.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, elbtypes.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

// specTags are the tags a TagSpecifications list gives resources of type rt.
func fakeSpecTags(specs []ec2types.TagSpecification, rt ec2types.ResourceType) map[string]string {
	m := map[string]string{}
	for _, s := range specs {
		if s.ResourceType == rt {
			for _, t := range s.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		}
	}
	return m
}

func fakeTagMap(tags []elbtypes.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func fakeOne(s string) []string { return []string{s} }

// --- EC2: network ------------------------------------------------------------------

func (f *fakeEC2) DescribeVpcs(_ context.Context, in *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeVpcs", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "is-default", "vpc-id"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeVpcsOutput{}
	for _, id := range in.VpcIds {
		if c.vpcs[id] == nil {
			return nil, fakeErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	for _, id := range c.order {
		v, ok := c.vpcs[id]
		if !ok || (len(in.VpcIds) > 0 && !slices.Contains(in.VpcIds, id)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, nil, func(name string) ([]string, bool) {
			switch name {
			case "is-default":
				return fakeOne(fmt.Sprint(v.IsDefault)), true
			case "vpc-id":
				return fakeOne(v.ID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Vpcs = append(out.Vpcs, ec2types.Vpc{VpcId: aws.String(v.ID), IsDefault: aws.Bool(v.IsDefault),
				State: ec2types.VpcStateAvailable, OwnerId: aws.String(fakeAccount)})
		}
	}
	return out, nil
}

func (f *fakeEC2) DescribeSubnets(_ context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeSubnets", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "vpc-id", "default-for-az", "defaultForAz", "availability-zone", "subnet-id", "state"); err != nil {
		return nil, err
	}
	for _, id := range in.SubnetIds {
		if c.subnets[id] == nil {
			return nil, fakeErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	out := &ec2.DescribeSubnetsOutput{}
	for _, id := range c.order {
		s, ok := c.subnets[id]
		if !ok || (len(in.SubnetIds) > 0 && !slices.Contains(in.SubnetIds, id)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, s.Tags, func(name string) ([]string, bool) {
			switch name {
			case "vpc-id":
				return fakeOne(s.VPCID), true
			case "default-for-az", "defaultForAz":
				return fakeOne(fmt.Sprint(s.DefaultForAZ)), true
			case "availability-zone":
				return fakeOne(s.AZ), true
			case "subnet-id":
				return fakeOne(s.ID), true
			case "state":
				return fakeOne("available"), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Subnets = append(out.Subnets, ec2types.Subnet{SubnetId: aws.String(s.ID), VpcId: aws.String(s.VPCID),
				AvailabilityZone: aws.String(s.AZ), DefaultForAz: aws.Bool(s.DefaultForAZ),
				State: ec2types.SubnetStateAvailable, Tags: fakeEC2Tags(s.Tags)})
		}
	}
	return out, nil
}

func (f *fakeEC2) DescribeSecurityGroups(_ context.Context, in *ec2.DescribeSecurityGroupsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeSecurityGroups", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "vpc-id", "group-name", "group-id"); err != nil {
		return nil, err
	}
	for _, id := range in.GroupIds {
		if c.sgs[id] == nil {
			return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
	}
	out := &ec2.DescribeSecurityGroupsOutput{}
	for _, id := range c.order {
		g, ok := c.sgs[id]
		if !ok || (len(in.GroupIds) > 0 && !slices.Contains(in.GroupIds, id)) ||
			(len(in.GroupNames) > 0 && !slices.Contains(in.GroupNames, g.Name)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, g.Tags, func(name string) ([]string, bool) {
			switch name {
			case "vpc-id":
				return fakeOne(g.VPCID), true
			case "group-name":
				return fakeOne(g.Name), true
			case "group-id":
				return fakeOne(g.ID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.SecurityGroups = append(out.SecurityGroups, c.describeSG(g))
		}
	}
	return out, nil
}

func (c *fakeCloud) describeSG(g *fakeSG) ec2types.SecurityGroup {
	sg := ec2types.SecurityGroup{GroupId: aws.String(g.ID), GroupName: aws.String(g.Name),
		Description: aws.String(g.Description), VpcId: aws.String(g.VPCID), OwnerId: aws.String(fakeAccount),
		Tags: fakeEC2Tags(g.Tags)}
	for _, r := range g.Ingress {
		p := ec2types.IpPermission{IpProtocol: aws.String(r.Protocol), FromPort: aws.Int32(r.From), ToPort: aws.Int32(r.To)}
		switch r.Kind {
		case "cidr":
			p.IpRanges = []ec2types.IpRange{{CidrIp: aws.String(r.Source)}}
		case "cidr6":
			p.Ipv6Ranges = []ec2types.Ipv6Range{{CidrIpv6: aws.String(r.Source)}}
		case "group":
			p.UserIdGroupPairs = []ec2types.UserIdGroupPair{{GroupId: aws.String(r.Source), UserId: aws.String(fakeAccount)}}
		}
		sg.IpPermissions = append(sg.IpPermissions, p)
	}
	return sg
}

func (f *fakeEC2) CreateSecurityGroup(_ context.Context, in *ec2.CreateSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateSecurityGroup", in); err != nil {
		return nil, err
	}
	vpc := aws.ToString(in.VpcId)
	if vpc == "" {
		vpc = fakeDefaultVPC
	}
	if c.vpcs[vpc] == nil {
		return nil, fakeErr("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
	}
	if aws.ToString(in.GroupName) == "" || aws.ToString(in.Description) == "" {
		return nil, fakeErr("MissingParameter", "GroupName and Description are required")
	}
	for _, g := range c.sgs {
		if g.VPCID == vpc && g.Name == aws.ToString(in.GroupName) {
			return nil, fakeErr("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", g.Name, vpc)
		}
	}
	g := &fakeSG{ID: c.newID("sg"), Name: aws.ToString(in.GroupName), Description: aws.ToString(in.Description),
		VPCID: vpc, Tags: fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeSecurityGroup)}
	c.sgs[g.ID] = g
	c.order = append(c.order, g.ID)
	return &ec2.CreateSecurityGroupOutput{GroupId: aws.String(g.ID), Tags: fakeEC2Tags(g.Tags)}, nil
}

func (f *fakeEC2) AuthorizeSecurityGroupIngress(_ context.Context, in *ec2.AuthorizeSecurityGroupIngressInput, _ ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("AuthorizeSecurityGroupIngress", in); err != nil {
		return nil, err
	}
	g := c.sgs[aws.ToString(in.GroupId)]
	if g == nil {
		return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", aws.ToString(in.GroupId))
	}
	var rules []fakeRule
	for _, p := range in.IpPermissions {
		base := fakeRule{Protocol: aws.ToString(p.IpProtocol), From: aws.ToInt32(p.FromPort), To: aws.ToInt32(p.ToPort)}
		for _, r := range p.IpRanges {
			x := base
			x.Kind, x.Source = "cidr", aws.ToString(r.CidrIp)
			rules = append(rules, x)
		}
		for _, r := range p.Ipv6Ranges {
			x := base
			x.Kind, x.Source = "cidr6", aws.ToString(r.CidrIpv6)
			rules = append(rules, x)
		}
		for _, r := range p.UserIdGroupPairs {
			if c.sgs[aws.ToString(r.GroupId)] == nil {
				return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", aws.ToString(r.GroupId))
			}
			x := base
			x.Kind, x.Source = "group", aws.ToString(r.GroupId)
			rules = append(rules, x)
		}
	}
	if len(rules) == 0 {
		return nil, fakeErr("MissingParameter", "no source in the permissions")
	}
	for _, r := range rules {
		if slices.Contains(g.Ingress, r) {
			return nil, fakeErr("InvalidPermission.Duplicate", "the specified rule %q already exists", fmt.Sprint(r))
		}
	}
	g.Ingress = append(g.Ingress, rules...)
	return &ec2.AuthorizeSecurityGroupIngressOutput{Return: aws.Bool(true)}, nil
}

func (f *fakeEC2) DeleteSecurityGroup(_ context.Context, in *ec2.DeleteSecurityGroupInput, _ ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteSecurityGroup", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.GroupId)
	if c.sgs[id] == nil {
		return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	for _, inst := range c.instances {
		if inst.State != "terminated" && slices.Contains(inst.SecurityGroupIDs, id) {
			return nil, fakeErr("DependencyViolation", "resource %s has a dependent object", id)
		}
	}
	for _, lb := range c.lbs {
		if slices.Contains(lb.SecurityGroups, id) {
			return nil, fakeErr("DependencyViolation", "resource %s has a dependent object", id)
		}
	}
	for _, g := range c.sgs {
		for _, r := range g.Ingress {
			if g.ID != id && r.Kind == "group" && r.Source == id {
				return nil, fakeErr("DependencyViolation", "resource %s has a dependent object", id)
			}
		}
	}
	delete(c.sgs, id)
	return &ec2.DeleteSecurityGroupOutput{Return: aws.Bool(true)}, nil
}

// --- EC2: instances ------------------------------------------------------------------

func (f *fakeEC2) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("RunInstances", in); err != nil {
		return nil, err
	}
	img := c.images[aws.ToString(in.ImageId)]
	if img == nil {
		return nil, fakeErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", aws.ToString(in.ImageId))
	}
	if img.State != "available" {
		return nil, fakeErr("InvalidAMIID.Unavailable", "The image %s is %s", img.ID, img.State)
	}
	minCount, maxCount := aws.ToInt32(in.MinCount), aws.ToInt32(in.MaxCount)
	if minCount < 1 || maxCount < minCount {
		return nil, fakeErr("InvalidParameterValue", "MinCount %d / MaxCount %d", minCount, maxCount)
	}
	subnetID := aws.ToString(in.SubnetId)
	if subnetID == "" {
		subnetID = fakeDefaultSubnets[0]
	}
	sn := c.subnets[subnetID]
	if sn == nil {
		return nil, fakeErr("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
	}
	for _, g := range in.SecurityGroupIds {
		if c.sgs[g] == nil {
			return nil, fakeErr("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
		}
	}
	if in.UserData != nil {
		if _, err := base64.StdEncoding.DecodeString(*in.UserData); err != nil {
			return nil, fakeErr("InvalidParameterValue", "Invalid BASE64 encoding of user data")
		}
	}
	for _, s := range in.TagSpecifications {
		if s.ResourceType != ec2types.ResourceTypeInstance && s.ResourceType != ec2types.ResourceTypeVolume &&
			s.ResourceType != ec2types.ResourceTypeNetworkInterface {
			return nil, fakeErr("InvalidParameterValue", "cannot tag %s at RunInstances", s.ResourceType)
		}
	}
	out := &ec2.RunInstancesOutput{ReservationId: aws.String(c.newID("r")), OwnerId: aws.String(fakeAccount)}
	for i := int32(0); i < maxCount; i++ {
		inst := &fakeInstance{ID: c.newID("i"), ImageID: img.ID, InstanceType: string(in.InstanceType),
			SubnetID: sn.ID, VPCID: sn.VPCID, AZ: sn.AZ, KeyName: aws.ToString(in.KeyName),
			UserData: aws.ToString(in.UserData), State: "pending",
			SecurityGroupIDs: slices.Clone(in.SecurityGroupIds),
			Tags:             fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeInstance), Input: in}
		inst.PrivateDNS = fmt.Sprintf("ip-172-31-0-%d.ec2.internal", c.seq)
		inst.LaunchTime = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Add(time.Duration(c.seq) * time.Second)
		c.instances[inst.ID] = inst
		c.order = append(c.order, inst.ID)
		out.Instances = append(out.Instances, c.describeInstance(inst))
	}
	return out, nil
}

func (c *fakeCloud) describeInstance(in *fakeInstance) ec2types.Instance {
	codes := map[string]int32{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
	out := ec2types.Instance{InstanceId: aws.String(in.ID), ImageId: aws.String(in.ImageID),
		InstanceType: ec2types.InstanceType(in.InstanceType), SubnetId: aws.String(in.SubnetID),
		VpcId: aws.String(in.VPCID), Placement: &ec2types.Placement{AvailabilityZone: aws.String(in.AZ)},
		State:          &ec2types.InstanceState{Name: ec2types.InstanceStateName(in.State), Code: aws.Int32(codes[in.State])},
		PrivateDnsName: aws.String(in.PrivateDNS), RootDeviceName: aws.String(fakeRootDevice),
		LaunchTime: aws.Time(in.LaunchTime),
		Tags:       fakeEC2Tags(in.Tags)}
	if in.KeyName != "" {
		out.KeyName = aws.String(in.KeyName)
	}
	for _, g := range in.SecurityGroupIDs {
		out.SecurityGroups = append(out.SecurityGroups, ec2types.GroupIdentifier{GroupId: aws.String(g)})
	}
	return out
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeInstances", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "instance-state-name", "subnet-id", "image-id", "instance-id", "vpc-id"); err != nil {
		return nil, err
	}
	c.maybeSettle()
	for _, id := range in.InstanceIds {
		if c.instances[id] == nil {
			return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	res := ec2types.Reservation{ReservationId: aws.String("r-0fake"), OwnerId: aws.String(fakeAccount)}
	for _, id := range c.order {
		inst, ok := c.instances[id]
		if !ok || (len(in.InstanceIds) > 0 && !slices.Contains(in.InstanceIds, id)) {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, inst.Tags, func(name string) ([]string, bool) {
			switch name {
			case "instance-state-name":
				return fakeOne(inst.State), true
			case "subnet-id":
				return fakeOne(inst.SubnetID), true
			case "image-id":
				return fakeOne(inst.ImageID), true
			case "instance-id":
				return fakeOne(inst.ID), true
			case "vpc-id":
				return fakeOne(inst.VPCID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			res.Instances = append(res.Instances, c.describeInstance(inst))
		}
	}
	out := &ec2.DescribeInstancesOutput{}
	if len(res.Instances) > 0 {
		out.Reservations = []ec2types.Reservation{res}
	}
	return out, nil
}

func (c *fakeCloud) instancesByID(ids []string) ([]*fakeInstance, error) {
	var out []*fakeInstance
	for _, id := range ids {
		inst := c.instances[id]
		if inst == nil {
			return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		out = append(out, inst)
	}
	return out, nil
}

func (f *fakeEC2) StartInstances(_ context.Context, in *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("StartInstances", in); err != nil {
		return nil, err
	}
	insts, err := c.instancesByID(in.InstanceIds)
	if err != nil {
		return nil, err
	}
	out := &ec2.StartInstancesOutput{}
	for _, inst := range insts {
		switch inst.State {
		case "terminated", "shutting-down", "stopping":
			return nil, fakeErr("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started", inst.ID)
		}
	}
	for _, inst := range insts {
		prev := inst.State
		if prev == "stopped" {
			inst.State = "pending"
		}
		out.StartingInstances = append(out.StartingInstances, ec2types.InstanceStateChange{InstanceId: aws.String(inst.ID),
			PreviousState: &ec2types.InstanceState{Name: ec2types.InstanceStateName(prev)},
			CurrentState:  &ec2types.InstanceState{Name: ec2types.InstanceStateName(inst.State)}})
	}
	return out, nil
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("TerminateInstances", in); err != nil {
		return nil, err
	}
	insts, err := c.instancesByID(in.InstanceIds)
	if err != nil {
		return nil, err
	}
	out := &ec2.TerminateInstancesOutput{}
	for _, inst := range insts {
		prev := inst.State
		if prev != "terminated" {
			inst.State = "shutting-down"
		}
		out.TerminatingInstances = append(out.TerminatingInstances, ec2types.InstanceStateChange{InstanceId: aws.String(inst.ID),
			PreviousState: &ec2types.InstanceState{Name: ec2types.InstanceStateName(prev)},
			CurrentState:  &ec2types.InstanceState{Name: ec2types.InstanceStateName(inst.State)}})
	}
	return out, nil
}

func (f *fakeEC2) GetConsoleOutput(_ context.Context, in *ec2.GetConsoleOutputInput, _ ...func(*ec2.Options)) (*ec2.GetConsoleOutputOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("GetConsoleOutput", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.InstanceId)
	if c.instances[id] == nil {
		return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	out := &ec2.GetConsoleOutputOutput{InstanceId: aws.String(id)}
	if text, ok := c.console[id]; ok {
		out.Output = aws.String(base64.StdEncoding.EncodeToString([]byte(text)))
	}
	return out, nil
}

// --- EC2: images and snapshots ---------------------------------------------------------

func (f *fakeEC2) CreateImage(_ context.Context, in *ec2.CreateImageInput, _ ...func(*ec2.Options)) (*ec2.CreateImageOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateImage", in); err != nil {
		return nil, err
	}
	inst := c.instances[aws.ToString(in.InstanceId)]
	if inst == nil {
		return nil, fakeErr("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", aws.ToString(in.InstanceId))
	}
	if inst.State == "terminated" || inst.State == "shutting-down" {
		return nil, fakeErr("IncorrectInstanceState", "The instance '%s' is %s", inst.ID, inst.State)
	}
	name := aws.ToString(in.Name)
	if len(name) < 3 || len(name) > 128 {
		return nil, fakeErr("InvalidAMIName.Malformed", "AMI names must be between 3 and 128 characters long")
	}
	for _, im := range c.images {
		if im.OwnerID == fakeAccount && im.Name == name {
			return nil, fakeErr("InvalidAMIName.Duplicate", "AMI name %s is already in use by AMI %s", name, im.ID)
		}
	}
	for _, s := range in.TagSpecifications {
		if s.ResourceType != ec2types.ResourceTypeImage && s.ResourceType != ec2types.ResourceTypeSnapshot {
			return nil, fakeErr("InvalidParameterValue", "cannot tag %s at CreateImage", s.ResourceType)
		}
	}
	snap := &fakeSnapshot{ID: c.newID("snap"), VolumeID: c.newID("vol"), OwnerID: fakeAccount, State: "completed",
		Tags: fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeSnapshot)}
	c.snapshots[snap.ID] = snap
	c.order = append(c.order, snap.ID)
	im := &fakeImage{ID: c.newID("ami"), Name: name, Description: aws.ToString(in.Description), OwnerID: fakeAccount,
		State: c.newImageState, RootDevice: fakeRootDevice, SourceInstanceID: inst.ID,
		Tags: fakeSpecTags(in.TagSpecifications, ec2types.ResourceTypeImage), Snapshots: []string{snap.ID}}
	c.images[im.ID] = im
	c.order = append(c.order, im.ID)
	return &ec2.CreateImageOutput{ImageId: aws.String(im.ID)}, nil
}

func (c *fakeCloud) describeImage(im *fakeImage) ec2types.Image {
	out := ec2types.Image{ImageId: aws.String(im.ID), Name: aws.String(im.Name), OwnerId: aws.String(im.OwnerID),
		State: ec2types.ImageState(im.State), RootDeviceName: aws.String(im.RootDevice),
		RootDeviceType: ec2types.DeviceTypeEbs, Tags: fakeEC2Tags(im.Tags), Public: aws.Bool(im.OwnerID != fakeAccount)}
	if im.Description != "" {
		out.Description = aws.String(im.Description)
	}
	if im.SourceInstanceID != "" {
		out.SourceInstanceId = aws.String(im.SourceInstanceID)
	}
	if im.StateReason != "" {
		out.StateReason = &ec2types.StateReason{Code: aws.String("Client.Error"), Message: aws.String(im.StateReason)}
	}
	for i, s := range im.Snapshots {
		dev := im.RootDevice
		if i > 0 {
			dev = fmt.Sprintf("/dev/sd%c", 'a'+i)
		}
		out.BlockDeviceMappings = append(out.BlockDeviceMappings, ec2types.BlockDeviceMapping{DeviceName: aws.String(dev),
			Ebs: &ec2types.EbsBlockDevice{SnapshotId: aws.String(s), VolumeSize: aws.Int32(8),
				VolumeType: ec2types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true), Encrypted: aws.Bool(false)}})
	}
	return out
}

func (f *fakeEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeImages", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "name", "state", "image-id"); err != nil {
		return nil, err
	}
	c.maybeSettle()
	for _, id := range in.ImageIds {
		if c.images[id] == nil {
			return nil, fakeErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
		}
	}
	out := &ec2.DescribeImagesOutput{}
	for _, id := range c.order {
		im, ok := c.images[id]
		if !ok || (len(in.ImageIds) > 0 && !slices.Contains(in.ImageIds, id)) {
			continue
		}
		if len(in.Owners) > 0 {
			owned := false
			for _, o := range in.Owners {
				owned = owned || o == im.OwnerID || (o == "self" && im.OwnerID == fakeAccount) ||
					(o == "amazon" && im.OwnerID == fakeAmazonOwner)
			}
			if !owned {
				continue
			}
		}
		ok, err := fakeMatchFilters(in.Filters, im.Tags, func(name string) ([]string, bool) {
			switch name {
			case "name":
				return fakeOne(im.Name), true
			case "state":
				return fakeOne(im.State), true
			case "image-id":
				return fakeOne(im.ID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Images = append(out.Images, c.describeImage(im))
		}
	}
	return out, nil
}

func (f *fakeEC2) DeregisterImage(_ context.Context, in *ec2.DeregisterImageInput, _ ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeregisterImage", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.ImageId)
	im := c.images[id]
	if im == nil {
		return nil, fakeErr("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", id)
	}
	if im.OwnerID != fakeAccount {
		return nil, fakeErr("AuthFailure", "Not authorized for image:%s", id)
	}
	delete(c.images, id)
	return &ec2.DeregisterImageOutput{Return: aws.Bool(true)}, nil
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeSnapshots", in); err != nil {
		return nil, err
	}
	if err := fakeCheckFilters(in.Filters, "snapshot-id", "status", "volume-id"); err != nil {
		return nil, err
	}
	for _, id := range in.SnapshotIds {
		if c.snapshots[id] == nil {
			return nil, fakeErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
	}
	out := &ec2.DescribeSnapshotsOutput{}
	for _, id := range c.order {
		s, ok := c.snapshots[id]
		if !ok || (len(in.SnapshotIds) > 0 && !slices.Contains(in.SnapshotIds, id)) {
			continue
		}
		if len(in.OwnerIds) > 0 && !slices.Contains(in.OwnerIds, s.OwnerID) && !slices.Contains(in.OwnerIds, "self") {
			continue
		}
		ok, err := fakeMatchFilters(in.Filters, s.Tags, func(name string) ([]string, bool) {
			switch name {
			case "snapshot-id":
				return fakeOne(s.ID), true
			case "status":
				return fakeOne(s.State), true
			case "volume-id":
				return fakeOne(s.VolumeID), true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Snapshots = append(out.Snapshots, ec2types.Snapshot{SnapshotId: aws.String(s.ID),
				VolumeId: aws.String(s.VolumeID), OwnerId: aws.String(s.OwnerID),
				State: ec2types.SnapshotState(s.State), Tags: fakeEC2Tags(s.Tags)})
		}
	}
	return out, nil
}

func (f *fakeEC2) DeleteSnapshot(_ context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteSnapshot", in); err != nil {
		return nil, err
	}
	id := aws.ToString(in.SnapshotId)
	if c.snapshots[id] == nil {
		return nil, fakeErr("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	for _, im := range c.images {
		if slices.Contains(im.Snapshots, id) {
			return nil, fakeErr("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", id, im.ID)
		}
	}
	delete(c.snapshots, id)
	return &ec2.DeleteSnapshotOutput{}, nil
}

// --- ELBv2 -------------------------------------------------------------------------------

func (c *fakeCloud) elbARN(kind, name string) string {
	c.seq++
	return fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:%s/%s/%016x", fakeRegion, fakeAccount, kind, name, c.seq)
}

func (f *fakeELB) CreateTargetGroup(_ context.Context, in *elb.CreateTargetGroupInput, _ ...func(*elb.Options)) (*elb.CreateTargetGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateTargetGroup", in); err != nil {
		return nil, err
	}
	name := aws.ToString(in.Name)
	if name == "" || len(name) > 32 {
		return nil, fakeErr("ValidationError", "target group name %q must be 1 to 32 characters", name)
	}
	for _, tg := range c.tgs {
		if tg.Name == name {
			return nil, fakeErr("DuplicateTargetGroupName", "A target group with the same name '%s' exists", name)
		}
	}
	if c.vpcs[aws.ToString(in.VpcId)] == nil {
		return nil, fakeErr("ValidationError", "The VPC ID '%s' is not found", aws.ToString(in.VpcId))
	}
	tg := &fakeTG{ARN: c.elbARN("targetgroup", name), Name: name, Input: in, Tags: fakeTagMap(in.Tags)}
	c.tgs[tg.ARN] = tg
	c.order = append(c.order, tg.ARN)
	return &elb.CreateTargetGroupOutput{TargetGroups: []elbtypes.TargetGroup{c.describeTG(tg)}}, nil
}

func (c *fakeCloud) describeTG(tg *fakeTG) elbtypes.TargetGroup {
	in := tg.Input
	out := elbtypes.TargetGroup{TargetGroupArn: aws.String(tg.ARN), TargetGroupName: aws.String(tg.Name),
		Protocol: in.Protocol, Port: in.Port, VpcId: in.VpcId, TargetType: in.TargetType,
		HealthCheckEnabled: in.HealthCheckEnabled, HealthCheckIntervalSeconds: in.HealthCheckIntervalSeconds,
		HealthCheckPath: in.HealthCheckPath, HealthCheckPort: in.HealthCheckPort, HealthCheckProtocol: in.HealthCheckProtocol,
		HealthCheckTimeoutSeconds: in.HealthCheckTimeoutSeconds, HealthyThresholdCount: in.HealthyThresholdCount,
		UnhealthyThresholdCount: in.UnhealthyThresholdCount, Matcher: in.Matcher}
	if out.TargetType == "" {
		out.TargetType = elbtypes.TargetTypeEnumInstance
	}
	for _, id := range c.order {
		if l, ok := c.listeners[id]; ok && l.forwardsTo(tg.ARN) && !slices.Contains(out.LoadBalancerArns, l.LBARN) {
			out.LoadBalancerArns = append(out.LoadBalancerArns, l.LBARN)
		}
	}
	return out
}

func (l *fakeListener) forwardsTo(tgARN string) bool {
	for _, a := range l.Actions {
		if aws.ToString(a.TargetGroupArn) == tgARN {
			return true
		}
		if a.ForwardConfig != nil {
			for _, t := range a.ForwardConfig.TargetGroups {
				if aws.ToString(t.TargetGroupArn) == tgARN {
					return true
				}
			}
		}
	}
	return false
}

func (f *fakeELB) DescribeTargetGroups(_ context.Context, in *elb.DescribeTargetGroupsInput, _ ...func(*elb.Options)) (*elb.DescribeTargetGroupsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeTargetGroups", in); err != nil {
		return nil, err
	}
	for _, arn := range in.TargetGroupArns {
		if c.tgs[arn] == nil {
			return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
		}
	}
	var out elb.DescribeTargetGroupsOutput
	found := map[string]bool{}
	for _, id := range c.order {
		tg, ok := c.tgs[id]
		if !ok || (len(in.TargetGroupArns) > 0 && !slices.Contains(in.TargetGroupArns, id)) ||
			(len(in.Names) > 0 && !slices.Contains(in.Names, tg.Name)) {
			continue
		}
		d := c.describeTG(tg)
		if in.LoadBalancerArn != nil && !slices.Contains(d.LoadBalancerArns, *in.LoadBalancerArn) {
			continue
		}
		found[tg.Name] = true
		out.TargetGroups = append(out.TargetGroups, d)
	}
	for _, n := range in.Names {
		if !found[n] {
			return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
		}
	}
	return &out, nil
}

func (f *fakeELB) DeleteTargetGroup(_ context.Context, in *elb.DeleteTargetGroupInput, _ ...func(*elb.Options)) (*elb.DeleteTargetGroupOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteTargetGroup", in); err != nil {
		return nil, err
	}
	arn := aws.ToString(in.TargetGroupArn)
	for _, l := range c.listeners {
		if l.forwardsTo(arn) {
			return nil, fakeErr("ResourceInUse", "Target group '%s' is currently in use by a listener or a rule", arn)
		}
	}
	// AWS answers success for a target group that is already gone.
	delete(c.tgs, arn)
	return &elb.DeleteTargetGroupOutput{}, nil
}

func (f *fakeELB) CreateLoadBalancer(_ context.Context, in *elb.CreateLoadBalancerInput, _ ...func(*elb.Options)) (*elb.CreateLoadBalancerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateLoadBalancer", in); err != nil {
		return nil, err
	}
	name := aws.ToString(in.Name)
	if name == "" || len(name) > 32 {
		return nil, fakeErr("ValidationError", "load balancer name %q must be 1 to 32 characters", name)
	}
	for _, lb := range c.lbs {
		if lb.Name == name {
			return nil, fakeErr("DuplicateLoadBalancerName", "A load balancer with the same name '%s' exists", name)
		}
	}
	subnets := slices.Clone(in.Subnets)
	for _, m := range in.SubnetMappings {
		subnets = append(subnets, aws.ToString(m.SubnetId))
	}
	zones := map[string]bool{}
	vpc := ""
	for _, s := range subnets {
		sn := c.subnets[s]
		if sn == nil {
			return nil, fakeErr("SubnetNotFound", "The subnet ID '%s' is not valid", s)
		}
		if zones[sn.AZ] {
			return nil, fakeErr("InvalidConfigurationRequest", "A load balancer cannot be attached to multiple subnets in the same Availability Zone")
		}
		zones[sn.AZ], vpc = true, sn.VPCID
	}
	lbType := in.Type
	if lbType == "" {
		lbType = elbtypes.LoadBalancerTypeEnumApplication
	}
	if lbType == elbtypes.LoadBalancerTypeEnumApplication && len(zones) < 2 {
		return nil, fakeErr("ValidationError", "At least two subnets in two different Availability Zones must be specified")
	}
	for _, g := range in.SecurityGroups {
		if c.sgs[g] == nil {
			return nil, fakeErr("InvalidConfigurationRequest", "One or more security groups are invalid")
		}
	}
	scheme := in.Scheme
	if scheme == "" {
		scheme = elbtypes.LoadBalancerSchemeEnumInternetFacing
	}
	lb := &fakeLB{ARN: c.elbARN("loadbalancer/app", name), Name: name, State: "provisioning", Scheme: string(scheme),
		Type: string(lbType), VPCID: vpc, Subnets: subnets, SecurityGroups: slices.Clone(in.SecurityGroups),
		Tags: fakeTagMap(in.Tags)}
	lb.DNS = fmt.Sprintf("%s-%d.%s.elb.amazonaws.com", name, c.seq, fakeRegion)
	c.lbs[lb.ARN] = lb
	c.order = append(c.order, lb.ARN)
	return &elb.CreateLoadBalancerOutput{LoadBalancers: []elbtypes.LoadBalancer{c.describeLB(lb)}}, nil
}

func (c *fakeCloud) describeLB(lb *fakeLB) elbtypes.LoadBalancer {
	out := elbtypes.LoadBalancer{LoadBalancerArn: aws.String(lb.ARN), LoadBalancerName: aws.String(lb.Name),
		DNSName: aws.String(lb.DNS), Scheme: elbtypes.LoadBalancerSchemeEnum(lb.Scheme),
		Type: elbtypes.LoadBalancerTypeEnum(lb.Type), VpcId: aws.String(lb.VPCID),
		SecurityGroups: slices.Clone(lb.SecurityGroups),
		State:          &elbtypes.LoadBalancerState{Code: elbtypes.LoadBalancerStateEnum(lb.State)}}
	for _, s := range lb.Subnets {
		out.AvailabilityZones = append(out.AvailabilityZones, elbtypes.AvailabilityZone{SubnetId: aws.String(s),
			ZoneName: aws.String(c.subnets[s].AZ)})
	}
	return out
}

func (f *fakeELB) DescribeLoadBalancers(_ context.Context, in *elb.DescribeLoadBalancersInput, _ ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeLoadBalancers", in); err != nil {
		return nil, err
	}
	c.maybeSettle()
	var out elb.DescribeLoadBalancersOutput
	found := map[string]bool{}
	for _, id := range c.order {
		lb, ok := c.lbs[id]
		if !ok || (len(in.LoadBalancerArns) > 0 && !slices.Contains(in.LoadBalancerArns, id)) ||
			(len(in.Names) > 0 && !slices.Contains(in.Names, lb.Name)) {
			continue
		}
		found[lb.ARN], found[lb.Name] = true, true
		out.LoadBalancers = append(out.LoadBalancers, c.describeLB(lb))
	}
	for _, k := range append(slices.Clone(in.LoadBalancerArns), in.Names...) {
		if !found[k] {
			return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
		}
	}
	return &out, nil
}

func (f *fakeELB) DeleteLoadBalancer(_ context.Context, in *elb.DeleteLoadBalancerInput, _ ...func(*elb.Options)) (*elb.DeleteLoadBalancerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteLoadBalancer", in); err != nil {
		return nil, err
	}
	arn := aws.ToString(in.LoadBalancerArn)
	// AWS deletes the listeners with the load balancer, and answers success for
	// one that is already gone.
	for id, l := range c.listeners {
		if l.LBARN == arn {
			delete(c.listeners, id)
		}
	}
	delete(c.lbs, arn)
	return &elb.DeleteLoadBalancerOutput{}, nil
}

func (f *fakeELB) CreateListener(_ context.Context, in *elb.CreateListenerInput, _ ...func(*elb.Options)) (*elb.CreateListenerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("CreateListener", in); err != nil {
		return nil, err
	}
	lbARN := aws.ToString(in.LoadBalancerArn)
	if c.lbs[lbARN] == nil {
		return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
	}
	for _, l := range c.listeners {
		if l.LBARN == lbARN && l.Port == aws.ToInt32(in.Port) {
			return nil, fakeErr("DuplicateListener", "A listener already exists on this port for this load balancer")
		}
	}
	l := &fakeListener{LBARN: lbARN, Port: aws.ToInt32(in.Port), Protocol: in.Protocol,
		Actions: slices.Clone(in.DefaultActions), Tags: fakeTagMap(in.Tags)}
	if !l.forwardsToKnown(c) {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	l.ARN = c.elbARN("listener/app", c.lbs[lbARN].Name)
	c.listeners[l.ARN] = l
	c.order = append(c.order, l.ARN)
	return &elb.CreateListenerOutput{Listeners: []elbtypes.Listener{l.describe()}}, nil
}

func (l *fakeListener) forwardsToKnown(c *fakeCloud) bool {
	for _, a := range l.Actions {
		if a.TargetGroupArn != nil && c.tgs[*a.TargetGroupArn] == nil {
			return false
		}
		if a.ForwardConfig != nil {
			for _, t := range a.ForwardConfig.TargetGroups {
				if c.tgs[aws.ToString(t.TargetGroupArn)] == nil {
					return false
				}
			}
		}
	}
	return true
}

func (l *fakeListener) describe() elbtypes.Listener {
	return elbtypes.Listener{ListenerArn: aws.String(l.ARN), LoadBalancerArn: aws.String(l.LBARN),
		Port: aws.Int32(l.Port), Protocol: l.Protocol, DefaultActions: slices.Clone(l.Actions)}
}

func (f *fakeELB) DescribeListeners(_ context.Context, in *elb.DescribeListenersInput, _ ...func(*elb.Options)) (*elb.DescribeListenersOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeListeners", in); err != nil {
		return nil, err
	}
	if in.LoadBalancerArn != nil && c.lbs[*in.LoadBalancerArn] == nil {
		return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
	}
	for _, arn := range in.ListenerArns {
		if c.listeners[arn] == nil {
			return nil, fakeErr("ListenerNotFound", "One or more listeners not found")
		}
	}
	var out elb.DescribeListenersOutput
	for _, id := range c.order {
		l, ok := c.listeners[id]
		if !ok || (len(in.ListenerArns) > 0 && !slices.Contains(in.ListenerArns, id)) ||
			(in.LoadBalancerArn != nil && l.LBARN != *in.LoadBalancerArn) {
			continue
		}
		out.Listeners = append(out.Listeners, l.describe())
	}
	return &out, nil
}

func (f *fakeELB) DeleteListener(_ context.Context, in *elb.DeleteListenerInput, _ ...func(*elb.Options)) (*elb.DeleteListenerOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DeleteListener", in); err != nil {
		return nil, err
	}
	arn := aws.ToString(in.ListenerArn)
	if c.listeners[arn] == nil {
		return nil, fakeErr("ListenerNotFound", "One or more listeners not found")
	}
	delete(c.listeners, arn)
	return &elb.DeleteListenerOutput{}, nil
}

func (f *fakeELB) DescribeTags(_ context.Context, in *elb.DescribeTagsInput, _ ...func(*elb.Options)) (*elb.DescribeTagsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeTags", in); err != nil {
		return nil, err
	}
	if len(in.ResourceArns) == 0 || len(in.ResourceArns) > 20 {
		return nil, fakeErr("ValidationError", "ResourceArns must hold 1 to 20 ARNs, got %d", len(in.ResourceArns))
	}
	var out elb.DescribeTagsOutput
	for _, arn := range in.ResourceArns {
		var tags map[string]string
		switch {
		case c.tgs[arn] != nil:
			tags = c.tgs[arn].Tags
		case c.lbs[arn] != nil:
			tags = c.lbs[arn].Tags
		case c.listeners[arn] != nil:
			tags = c.listeners[arn].Tags
		case strings.Contains(arn, ":targetgroup/"):
			return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
		case strings.Contains(arn, ":listener/"):
			return nil, fakeErr("ListenerNotFound", "One or more listeners not found")
		default:
			return nil, fakeErr("LoadBalancerNotFound", "One or more load balancers not found")
		}
		out.TagDescriptions = append(out.TagDescriptions, elbtypes.TagDescription{ResourceArn: aws.String(arn), Tags: fakeELBTags(tags)})
	}
	return &out, nil
}

func (f *fakeELB) RegisterTargets(_ context.Context, in *elb.RegisterTargetsInput, _ ...func(*elb.Options)) (*elb.RegisterTargetsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("RegisterTargets", in); err != nil {
		return nil, err
	}
	tg := c.tgs[aws.ToString(in.TargetGroupArn)]
	if tg == nil {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	for _, t := range in.Targets {
		inst := c.instances[aws.ToString(t.Id)]
		if inst == nil || (inst.State != "running" && inst.State != "pending" && inst.State != "stopped") {
			return nil, fakeErr("InvalidTarget", "The following targets are not in a running state and cannot be registered: '%s'", aws.ToString(t.Id))
		}
	}
	for _, t := range in.Targets {
		id := aws.ToString(t.Id)
		if !slices.ContainsFunc(tg.Targets, func(x *fakeTarget) bool { return x.ID == id }) {
			tg.Targets = append(tg.Targets, &fakeTarget{ID: id, State: c.newTargetState, Reason: "Elb.RegistrationInProgress"})
		}
	}
	return &elb.RegisterTargetsOutput{}, nil
}

func (f *fakeELB) DescribeTargetHealth(_ context.Context, in *elb.DescribeTargetHealthInput, _ ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeTargetHealth", in); err != nil {
		return nil, err
	}
	tg := c.tgs[aws.ToString(in.TargetGroupArn)]
	if tg == nil {
		return nil, fakeErr("TargetGroupNotFound", "One or more target groups not found")
	}
	var out elb.DescribeTargetHealthOutput
	desc := func(id, state, reason string) elbtypes.TargetHealthDescription {
		d := elbtypes.TargetHealthDescription{Target: &elbtypes.TargetDescription{Id: aws.String(id), Port: tg.Input.Port},
			TargetHealth: &elbtypes.TargetHealth{State: elbtypes.TargetHealthStateEnum(state)}}
		if reason != "" {
			d.TargetHealth.Reason = elbtypes.TargetHealthReasonEnum(reason)
		}
		return d
	}
	if len(in.Targets) > 0 {
		for _, t := range in.Targets {
			id := aws.ToString(t.Id)
			i := slices.IndexFunc(tg.Targets, func(x *fakeTarget) bool { return x.ID == id })
			if i < 0 {
				out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, desc(id, "unused", "Target.NotRegistered"))
				continue
			}
			out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, desc(id, tg.Targets[i].State, tg.Targets[i].Reason))
		}
		return &out, nil
	}
	for _, t := range tg.Targets {
		out.TargetHealthDescriptions = append(out.TargetHealthDescriptions, desc(t.ID, t.State, t.Reason))
	}
	return &out, nil
}

// --- SSM ---------------------------------------------------------------------------------

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("GetParameter", in); err != nil {
		return nil, err
	}
	name := aws.ToString(in.Name)
	v, ok := c.params[name]
	if !ok {
		return nil, &ssmtypes.ParameterNotFound{Message: aws.String("parameter " + name + " not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: aws.String(name), Value: aws.String(v),
		Type: ssmtypes.ParameterTypeString}}, nil
}

// --- the fake's own tests ---------------------------------------------------------------

func TestFakeCloudInjectsErrorsInOrder(t *testing.T) {
	c := newFakeCloud(t)
	c.failOnce("DescribeVpcs", fakeErr("Throttling", "slow down"))
	ctx := context.Background()
	if _, err := c.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{}); ErrorCode(err) != "Throttling" {
		t.Fatalf("first call: got %v, want Throttling", err)
	}
	out, err := c.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	if err != nil || len(out.Vpcs) != 1 {
		t.Fatalf("second call: got %v, %v; want the default VPC", out, err)
	}
	if got := c.methods(); !slices.Equal(got, []string{"DescribeVpcs", "DescribeVpcs"}) {
		t.Fatalf("calls = %v", got)
	}
}

func TestFakeCloudRejectsUnknownFilters(t *testing.T) {
	c := newFakeCloud(t)
	_, err := c.EC2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-state"), Values: []string{"running"}}}})
	if ErrorCode(err) != "InvalidParameterValue" {
		t.Fatalf("got %v, want InvalidParameterValue for a misspelt filter", err)
	}
}

func TestFakeCloudSnapshotInUseUntilImageDeregistered(t *testing.T) {
	c := newFakeCloud(t)
	ctx := context.Background()
	run, err := c.EC2.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(fakeBaseImage),
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.EC2.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: run.Instances[0].InstanceId, Name: aws.String("x-image")})
	if err != nil {
		t.Fatal(err)
	}
	snap := c.images[*img.ImageId].Snapshots[0]
	if _, err := c.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &snap}); ErrorCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("delete before deregister: got %v, want InvalidSnapshot.InUse", err)
	}
	if _, err := c.EC2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: img.ImageId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EC2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: &snap}); err != nil {
		t.Fatalf("delete after deregister: %v", err)
	}
}
