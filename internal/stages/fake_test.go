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
//   - instance types and quota (fake_capacity_test.go): offerings per zone with real
//     gaps, RunInstances answers Unsupported in a zone that does not offer the type
//     and VcpuLimitExceeded past the account's vCPU quota, which GetServiceQuota reads;
//     replicas' network interfaces carry their subnet, groups and public address.
//
// A test injects an error for an action with fail (every call) or failOnce.
// TestFakeContract (contract_test.go) holds these claims against moto.
//
// The fake is one type in several files: this one holds the cloud's state, the
// recording of calls, error injection and the helpers tests use; fake_ec2_test.go
// (filters, tags, VPCs, subnets, security groups), fake_ec2_instances_test.go,
// fake_ec2_images_test.go (images and snapshots), fake_elb_test.go and
// fake_ssm_test.go hold the API methods, one service (or part of EC2) each.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
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
	// PublicIP is set when the instance got a public IPv4 address.
	PublicIP         string
	SecurityGroupIDs []string
	Tags             map[string]string
	Input            *ec2.RunInstancesInput
	LaunchTime       time.Time
}

type fakeSubnet struct {
	ID, VPCID, AZ string
	DefaultForAZ  bool
	// MapPublicIP gives instances a public IPv4 address unless their network
	// interface says otherwise (true for default subnets, as on AWS).
	MapPublicIP bool
	Tags        map[string]string
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
	// Attributes are the target group's attributes, AWS's defaults until changed.
	Attributes map[string]string
	Targets    []*fakeTarget
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
	// instanceTypes are the types the region knows, with their vCPUs and zones.
	instanceTypes map[string]fakeInstanceType
	// vcpuLimit is the account's quota L-1216C47A, in vCPUs.
	vcpuLimit int
	// order keeps creation order per map, so that answers are deterministic.
	order []string

	EC2    *fakeEC2
	ELB    *fakeELB
	SSM    *fakeSSM
	Quotas *fakeQuotas
}

type fakeEC2 struct{ c *fakeCloud }
type fakeELB struct{ c *fakeCloud }
type fakeSSM struct{ c *fakeCloud }
type fakeQuotas struct{ c *fakeCloud }

var (
	_ EC2API    = (*fakeEC2)(nil)
	_ ELBAPI    = (*fakeELB)(nil)
	_ SSMAPI    = (*fakeSSM)(nil)
	_ QuotasAPI = (*fakeQuotas)(nil)
)

// newFakeCloud is an account with a default VPC of three default subnets in three
// zones (us-east-1a to c), the public Amazon Linux 2023 AMI, its SSM parameter, the
// instance types of fake_capacity_test.go and a quota of 64 vCPUs.
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
		instanceTypes:  fakeInstanceTypes(),
		vcpuLimit:      fakeDefaultVCPULimit,
	}
	c.EC2, c.ELB, c.SSM, c.Quotas = &fakeEC2{c}, &fakeELB{c}, &fakeSSM{c}, &fakeQuotas{c}
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
	return &Stages{EC2: c.EC2, ELB: c.ELB, SSM: c.SSM, Quotas: c.Quotas, Region: fakeRegion,
		Now: func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }}
}

func (c *fakeCloud) addVPC(id string, isDefault bool) {
	c.vpcs[id] = &fakeVPC{ID: id, IsDefault: isDefault}
	c.order = append(c.order, id)
}

func (c *fakeCloud) addSubnet(id, vpcID, az string, defaultForAZ bool) {
	c.subnets[id] = &fakeSubnet{ID: id, VPCID: vpcID, AZ: az, DefaultForAZ: defaultForAZ, MapPublicIP: defaultForAZ,
		Tags: map[string]string{}}
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
