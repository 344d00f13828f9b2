// Package e2e runs amifleet end to end in the local cloud: the stack deployed by the
// real CDK CLI, the state machines executed by moto's ASL interpreter, the stages'
// real bootstrap binaries run by the gateway. TestMain starts the cloud once for the
// package (and deploys the stack into a second region) and stops it after, also
// when a test fails. Resources are read back straight from moto (not through the
// gateway), so that the reads are neither counted nor hit by an injected fault.
//
// It needs what `make local` needs: Python with moto[server] 5.2.1, Node.js and npm,
// Go and make.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

const (
	primary = localcloud.DefaultRegion
	// secondary is the other region the stack is deployed into (scenario 2): one with a
	// zone that does not offer the default instance type (t2.micro, us-west-2d).
	secondary = "us-west-2"
	// runTimeout bounds every wait for an execution. A default run takes well under
	// a minute here; a loaded machine gets slack.
	runTimeout = 4 * time.Minute
	// upTimeout bounds TestMain's start-up: a first build of the Lambdas and the CDK
	// app is slow on a small machine.
	upTimeout = 20 * time.Minute
)

// e2eVCPULimit is the local cloud's vCPU quota here: above what the scenarios run
// at once (one per t2.micro: about 60 in all).
const e2eVCPULimit = 128

// lc is the package's local cloud, up for the whole of m.Run.
var lc *localcloud.Cloud

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	start := time.Now()
	logf, err := os.CreateTemp("", "amifleet-e2e-*.log")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	// Strict by default; AMIFLEET_LENIENT=iam,quota (or all) turns checks off, to find
	// which one bites.
	// The scenarios leave their fleets running, side by side: the vCPU quota is raised
	// for them as a user would ask AWS (QuotaTooSmall asks for more than it).
	c, err := localcloud.Up(ctx, localcloud.Options{Root: "..", Progress: os.Stderr, LogWriter: logf,
		Lenient: os.Getenv("AMIFLEET_LENIENT"), VCPULimit: e2eVCPULimit})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the local cloud did not come up: %v\ne2e: its log: %s\n", err, logf.Name())
		return 1
	}
	// Down runs on every return below; a panicking test kills the process, and moto
	// and the bootstraps die with it (Pdeathsig).
	defer c.Down()
	if _, err := c.Deploy(ctx, secondary); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: deploying into %s: %v\ne2e: log: %s\n", secondary, err, logf.Name())
		return 1
	}
	lc = c
	t := c.Timings
	fmt.Fprintf(os.Stderr, "e2e: local cloud up in %s (moto %s, build %s, synth %s, bootstrap+deploy %s: %s+%s, %s: %s+%s)\n",
		round(time.Since(start)), round(t.Moto), round(t.Build), round(t.Synth),
		primary, round(t.Bootstrap[primary]), round(t.Deploy[primary]),
		secondary, round(t.Bootstrap[secondary]), round(t.Deploy[secondary]))

	testsStart := time.Now()
	code := m.Run()
	// docs/iam.md against what the IAM check recorded, after a full run that passed.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && os.Getenv("AMIFLEET_LENIENT") == "" {
		if err := checkIAMDoc(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: tests took %s; the package %s\n", round(time.Since(testsStart)), round(time.Since(start)))
	if err := c.Down(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the local cloud:", err)
		code = 1
	}
	if code == 0 {
		os.Remove(logf.Name())
	} else {
		fmt.Fprintf(os.Stderr, "e2e: the local cloud's log: %s\n", logf.Name())
	}
	return code
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

// ---- Inputs and executions.

// localInput is events/local-input.json with changes applied (top-level keys).
func localInput(t *testing.T, changes map[string]any) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "events", "local-input.json"))
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		in[k] = v
	}
	out, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// teardownInput is the Teardown's input for runID with the local input's short polls
// (as the Pipeline passes a run's own config to the Teardown it schedules): the
// default Cleanup waits, in AWS's seconds, would make each teardown here 30 s longer.
func teardownInput(t *testing.T, runID string) string {
	t.Helper()
	cfg, err := pipeline.ParseConfig(json.RawMessage(localInput(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(pipeline.TeardownInput{RunID: runID, Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// execution is one Pipeline (or Teardown) execution of a test.
type execution struct {
	region, name, arn string
	runID             string
	desc              *sfn.DescribeExecutionOutput
	doc               pipeline.Document
}

func sfnClient(region string) *sfn.Client { return sfn.NewFromConfig(lc.Config(region)) }

func stack(t *testing.T, region string) localcloud.Stack {
	t.Helper()
	s, ok := lc.Stack(region)
	if !ok {
		t.Fatalf("no stack in %s", region)
	}
	return s
}

// start starts the Pipeline in region with a name and input.
func start(t *testing.T, region, name, input string) *execution {
	t.Helper()
	return startOn(t, region, stack(t, region).PipelineARN, name, input)
}

func startOn(t *testing.T, region, stateMachine, name, input string) *execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := sfnClient(region).StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachine), Name: aws.String(name), Input: aws.String(input),
	})
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	runID, err := pipeline.RunIDFromExecutionName(name)
	if err != nil {
		t.Fatal(err)
	}
	return &execution{region: region, name: name, arn: aws.ToString(out.ExecutionArn), runID: runID}
}

// wait follows the execution to its end (bounded by runTimeout) and reads its
// output document.
func (e *execution) wait(t *testing.T) *execution {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	client := sfnClient(e.region)
	for {
		desc, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(e.arn)})
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if desc.Status != sfntypes.ExecutionStatusRunning {
			e.desc = desc
			if desc.Output != nil {
				if err := json.Unmarshal([]byte(*desc.Output), &e.doc); err != nil {
					t.Fatalf("%s: output is not a pipeline document: %v", e.name, err)
				}
			}
			t.Logf("%s: %s in %s", e.name, desc.Status, aws.ToTime(desc.StopDate).Sub(aws.ToTime(desc.StartDate)).Round(time.Second))
			return e
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still %s after %s", e.name, desc.Status, runTimeout)
		case <-time.After(time.Second):
		}
	}
}

// succeeded fails the test unless the execution SUCCEEDED.
func (e *execution) succeeded(t *testing.T) *execution {
	t.Helper()
	if e.desc.Status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("%s: %s, want SUCCEEDED: %s: %s", e.name, e.desc.Status, aws.ToString(e.desc.Error), aws.ToString(e.desc.Cause))
	}
	return e
}

// history is the execution's events, oldest first.
func (e *execution) history(t *testing.T) []sfntypes.HistoryEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var events []sfntypes.HistoryEvent
	p := sfn.NewGetExecutionHistoryPaginator(sfnClient(e.region), &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(e.arn), MaxResults: 1000})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("%s history: %v", e.name, err)
		}
		events = append(events, page.Events...)
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Id < events[j].Id })
	return events
}

// readRun reads back what carries the run's tag in region.
func readRun(t *testing.T, region, runID string) localcloud.RunResources {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := localcloud.ReadRun(ctx, lc.DirectConfig(region), runID)
	if err != nil {
		t.Fatalf("reading run %s back: %v", runID, err)
	}
	return r
}

// nothingLeft fails the test if anything with the run's tag still exists.
func nothingLeft(t *testing.T, region, runID string) {
	t.Helper()
	if left := readRun(t, region, runID).Remaining(); len(left) > 0 {
		t.Errorf("run %s left in %s: %s", runID, region, strings.Join(left, ", "))
	}
}

// ---- What a fleet must look like (DESIGN.md).

// checkFleet asserts what a succeeded run built, read back from the emulator: the
// instances, the image and its snapshots, the load balancer, the security groups.
func checkFleet(t *testing.T, e *execution, replicas int) localcloud.RunResources {
	t.Helper()
	r := readRun(t, e.region, e.runID)
	res := e.doc.Resources
	if res.Image == nil || res.LoadBalancer == nil || res.Network == nil || res.Fleet == nil {
		t.Fatalf("%s: incomplete resources in the output: %+v", e.name, res)
	}

	// Instances: base + replicas, all running; replicas from the new AMI, the base
	// from the source AMI; IMDSv2 only; encrypted root volumes; the instance SG.
	var base, reps []localcloud.Instance
	for _, in := range r.Instances {
		switch in.Role {
		case pipeline.RoleBase:
			base = append(base, in)
		case pipeline.RoleReplica:
			reps = append(reps, in)
		default:
			t.Errorf("instance %s has role %q", in.ID, in.Role)
		}
		if in.State != "running" {
			t.Errorf("instance %s (%s) is %s, want running", in.ID, in.Role, in.State)
		}
		if in.HTTPTokens != "required" {
			t.Errorf("instance %s: HttpTokens %q, want required (IMDSv2 only)", in.ID, in.HTTPTokens)
		}
		// moto records the launch's BlockDeviceMappings Encrypted on the volume it
		// creates for the root device, so DescribeVolumes shows it.
		if !in.RootEncrypted {
			t.Errorf("instance %s: root volume %q (%s) not encrypted", in.ID, in.RootVolumeID, in.RootDevice)
		}
		if !slices.Equal(in.SecurityGroups, []string{res.Network.InstanceSecurityGroupID}) {
			t.Errorf("instance %s: security groups %v, want only %s", in.ID, in.SecurityGroups, res.Network.InstanceSecurityGroupID)
		}
		if in.Tags[pipeline.TagName] != pipeline.ResourceName(e.runID, in.Role) {
			t.Errorf("instance %s: Name %q", in.ID, in.Tags[pipeline.TagName])
		}
	}
	for _, in := range reps {
		if len(e.doc.Config.SSHCIDRs) == 0 && in.PublicIP != "" {
			t.Errorf("replica %s has the public address %s; with SSH closed it needs none (the ALB reaches it privately)", in.ID, in.PublicIP)
		}
	}
	if len(base) != 1 || len(reps) != replicas {
		t.Fatalf("%d base and %d replica instances, want 1 and %d", len(base), len(reps), replicas)
	}
	if base[0].ID != res.Image.BaseInstanceID || base[0].ImageID != res.Image.SourceImageID || res.Image.SourceImageID == "" {
		t.Errorf("base %s from %s, want %s from the source image %q", base[0].ID, base[0].ImageID, res.Image.BaseInstanceID, res.Image.SourceImageID)
	}
	for _, in := range reps {
		if in.ImageID != res.Image.ImageID {
			t.Errorf("replica %s from %s, want the run's image %s", in.ID, in.ImageID, res.Image.ImageID)
		}
	}
	var all []string
	for _, in := range r.Instances {
		all = append(all, in.ID)
	}
	sort.Strings(all)
	if got := sorted(res.Fleet.InstanceIDs); !slices.Equal(got, all) {
		t.Errorf("output fleet %v, read back %v", got, all)
	}

	// The image, available and tagged, and its snapshots, tagged. Not their
	// encryption: moto 5.2.1 makes an AMI's snapshot from a fresh unencrypted
	// 15 GiB volume of its own (moto/ec2/models/amis.py), not from the instance's
	// root volume, so it cannot show whether the image would be encrypted; the
	// instances' root volumes above can.
	if len(r.Images) != 1 || r.Images[0].ID != res.Image.ImageID || r.Images[0].State != "available" {
		t.Fatalf("images %+v, want %s available", r.Images, res.Image.ImageID)
	}
	im := r.Images[0]
	if im.Tags[pipeline.TagRole] != pipeline.RoleImage || im.Tags[pipeline.TagName] != pipeline.ResourceName(e.runID, pipeline.RoleImage) {
		t.Errorf("image tags %v", im.Tags)
	}
	if len(im.SnapshotIDs) == 0 {
		t.Errorf("image %s has no snapshot in its block device mappings", im.ID)
	}
	snaps := map[string]localcloud.Snapshot{}
	for _, s := range r.Snapshots {
		snaps[s.ID] = s
		if s.Tags[pipeline.TagRole] != pipeline.RoleImage || s.Tags[pipeline.TagRunID] != e.runID {
			t.Errorf("snapshot %s tags %v", s.ID, s.Tags)
		}
	}
	for _, id := range im.SnapshotIDs {
		if _, ok := snaps[id]; !ok {
			t.Errorf("image snapshot %s does not carry the run tag (tagged snapshots: %v)", id, keys(snaps))
		}
	}

	// The load balancer: active, one listener on HTTP 80 forwarding to the target
	// group, which has every instance registered and healthy.
	if len(r.LoadBalancers) != 1 || len(r.TargetGroups) != 1 {
		t.Fatalf("%d load balancers and %d target groups, want 1 and 1", len(r.LoadBalancers), len(r.TargetGroups))
	}
	lb, tg := r.LoadBalancers[0], r.TargetGroups[0]
	if lb.ARN != res.LoadBalancer.LoadBalancerARN || lb.DNSName != res.LoadBalancer.DNSName || lb.State != "active" || lb.Type != "application" || lb.Scheme != "internet-facing" {
		t.Errorf("load balancer %+v, want %s active, application, internet-facing", lb, res.LoadBalancer.LoadBalancerARN)
	}
	if !slices.Equal(lb.SecurityGroups, []string{res.Network.ALBSecurityGroupID}) {
		t.Errorf("load balancer security groups %v, want %s", lb.SecurityGroups, res.Network.ALBSecurityGroupID)
	}
	if len(lb.Listeners) != 1 || lb.Listeners[0].Protocol != "HTTP" || lb.Listeners[0].Port != 80 ||
		!slices.Equal(lb.Listeners[0].ForwardTo, []string{tg.ARN}) {
		t.Errorf("listeners %+v, want one HTTP:80 forwarding to %s", lb.Listeners, tg.ARN)
	}
	if tg.ARN != res.LoadBalancer.TargetGroupARN || tg.Protocol != "HTTP" || tg.Port != 80 {
		t.Errorf("target group %s %s:%d, want %s HTTP:80", tg.ARN, tg.Protocol, tg.Port, res.LoadBalancer.TargetGroupARN)
	}
	if got := sorted(keysOf(tg.Targets)); !slices.Equal(got, all) {
		t.Errorf("registered targets %v, want every instance %v", got, all)
	}
	for id, state := range tg.Targets {
		if state != "healthy" {
			t.Errorf("target %s is %s", id, state)
		}
	}

	// Security groups exactly as DESIGN.md: the ALB's open on 80 to the input's
	// CIDRs (the world by default); the instances' open on 80 to the ALB's group
	// only, and no SSH.
	if len(r.SecurityGroups) != 2 {
		t.Fatalf("%d security groups, want 2", len(r.SecurityGroups))
	}
	want := map[string][]string{
		pipeline.RoleALBSecurityGroup:      {"tcp 80-80 from 0.0.0.0/0"},
		pipeline.RoleInstanceSecurityGroup: {"tcp 80-80 from " + res.Network.ALBSecurityGroupID},
	}
	for _, g := range r.SecurityGroups {
		var got []string
		for _, rule := range g.Ingress {
			got = append(got, rule.String())
		}
		if !slices.Equal(got, want[g.Role]) {
			t.Errorf("security group %s (%s) inbound %v, want %v", g.ID, g.Role, got, want[g.Role])
		}
	}

	// The data plane: Verify passed through the load balancer, and saw each instance's
	// own page; the load balancer's local URL answers a plain GET from here the same way:
	// each page is the run's template with that instance's private DNS name.
	var dnsNames []string
	pages := map[string]string{} // page → the instance's hostname
	for _, in := range r.Instances {
		dnsNames = append(dnsNames, in.PrivateDNSName)
		pages[strings.ReplaceAll(e.doc.Config.PageTemplate, "{hostname}", in.PrivateDNSName)] = in.PrivateDNSName
	}
	slices.Sort(dnsNames)
	v := res.Verify
	if v == nil || v.Status != pipeline.VerifyPassed || len(v.Hostnames) != len(dnsNames) {
		t.Errorf("verify %+v, want passed with %d distinct pages", v, len(dnsNames))
	} else if strings.Count(e.doc.Config.PageTemplate, "{hostname}") == 1 && !slices.Equal(sorted(v.Hostnames), dnsNames) {
		t.Errorf("verify saw hostnames %v, want every instance's %v", v.Hostnames, dnsNames)
	}
	local := lc.Gateway.LoadBalancerLocalURL(res.LoadBalancer.DNSName)
	if local == "" {
		t.Fatalf("no local URL for %s", res.LoadBalancer.DNSName)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	seen := map[string]bool{}
	for range 2 * len(dnsNames) {
		resp, err := client.Get(local)
		if err != nil {
			t.Fatalf("GET %s: %v", local, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		host, ok := pages[string(body)]
		if resp.StatusCode != 200 || !ok {
			t.Errorf("GET %s: %d %q, want one instance's page", local, resp.StatusCode, body)
		}
		seen[host] = true
	}
	if len(seen) != len(dnsNames) {
		t.Errorf("%d GETs to the local URL saw %d hostnames, want all %d (round robin)", 2*len(dnsNames), len(seen), len(dnsNames))
	}
	return r
}

// stoppedBehindItsBack stops one replica of a fleet through the gateway, as someone
// in the console would: its target turns unhealthy within the unhealthy threshold ×
// interval (2 × 10 s, on the local cloud's time scale), and the load balancer stops
// sending it requests.
func stoppedBehindItsBack(t *testing.T, e *execution, r localcloud.RunResources) {
	t.Helper()
	ctx := context.Background()
	victim := e.doc.Resources.Fleet.ReplicaInstanceIDs[0]
	var victimPage string
	for _, in := range r.Instances {
		if in.ID == victim {
			victimPage = strings.ReplaceAll(e.doc.Config.PageTemplate, "{hostname}", in.PrivateDNSName)
		}
	}
	if _, err := ec2.NewFromConfig(lc.Config(e.region)).StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{victim}}); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	elbc := elb.NewFromConfig(lc.Config(e.region))
	for {
		out, err := elbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(e.doc.Resources.LoadBalancer.TargetGroupARN)})
		if err != nil {
			t.Fatal(err)
		}
		unhealthy := slices.ContainsFunc(out.TargetHealthDescriptions, func(d elbtypes.TargetHealthDescription) bool {
			return aws.ToString(d.Target.Id) == victim && d.TargetHealth.State == elbtypes.TargetHealthStateEnumUnhealthy
		})
		if unhealthy {
			break
		}
		if time.Since(stopped) > 15*time.Second {
			t.Fatalf("%s not unhealthy 15 s after it stopped", victim)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s unhealthy %s after it stopped", victim, time.Since(stopped).Round(100*time.Millisecond))
	local := lc.Gateway.LoadBalancerLocalURL(e.doc.Resources.LoadBalancer.DNSName)
	client := &http.Client{Timeout: 5 * time.Second}
	for range 6 {
		resp, err := client.Get(local)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) == victimPage {
			t.Errorf("after %s stopped: %d %q; want only the other instances' pages", victim, resp.StatusCode, body)
		}
	}
}

// defaultSubnetZones are the zones of region's default subnets, read from moto.
func defaultSubnetZones(t *testing.T, region string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ec2.NewFromConfig(lc.DirectConfig(region)).DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var zones []string
	for _, s := range out.Subnets {
		if aws.ToBool(s.DefaultForAz) {
			zones = append(zones, aws.ToString(s.AvailabilityZone))
		}
	}
	return zones
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func keys(m map[string]localcloud.Snapshot) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ids is every id a run's resources have, to compare two runs.
func ids(r localcloud.RunResources) []string {
	var out []string
	for _, in := range r.Instances {
		out = append(out, in.ID)
	}
	for _, im := range r.Images {
		out = append(out, im.ID)
	}
	for _, s := range r.Snapshots {
		out = append(out, s.ID)
	}
	for _, g := range r.SecurityGroups {
		out = append(out, g.ID)
	}
	for _, lb := range r.LoadBalancers {
		out = append(out, lb.ARN)
	}
	for _, tg := range r.TargetGroups {
		out = append(out, tg.ARN)
	}
	return out
}

// ---- Scenarios without faults: independent, run in parallel.

// TestFleets runs the scenarios that inject nothing, side by side.
func TestFleets(t *testing.T) {
	// In the strict cloud, with the stack's own roles, none of these runs is refused a
	// call (and the IAM check did evaluate their calls).
	t.Cleanup(func() {
		for _, d := range lc.Gateway.Denials() {
			t.Errorf("denied: %s %s on %s: %s", d.Function, d.Action, d.Resource, d.Reason)
		}
		if n := lc.Gateway.IAMStats().Checks; n == 0 && os.Getenv("AMIFLEET_LENIENT") == "" {
			t.Error("the IAM check evaluated no call: is the strict cloud on?")
		}
	})
	// 1. The default input builds the fleet DESIGN.md describes.
	t.Run("DefaultInput", func(t *testing.T) {
		t.Parallel()
		e := start(t, primary, "e2e-default", localInput(t, nil)).wait(t).succeeded(t)
		r := checkFleet(t, e, 2)
		stoppedBehindItsBack(t, e, r)
	})

	// A page template with markup, an ampersand, quotes and the hostname twice is
	// served as written, the hostname put in both places, on every instance.
	t.Run("PageTemplate", func(t *testing.T) {
		t.Parallel()
		tmpl := `<p class="fleet">Tom & Jerry's "{hostname}" <b>{hostname}</b></p>`
		e := start(t, primary, "e2e-page-template", localInput(t, map[string]any{"pageTemplate": tmpl})).wait(t).succeeded(t)
		checkFleet(t, e, 2)
	})

	// httpCidrs of one /24 that the local user is in: a Lambda outside a VPC cannot
	// reach the load balancer, so Verify says why it did not look, and the run succeeds;
	// the user's GETs pass, `amifleet verify` passes from here, a Lambda's is dropped.
	t.Run("NarrowHTTPCIDRs", func(t *testing.T) {
		t.Parallel()
		cidr := localcloud.DefaultUserAddress[:strings.LastIndex(localcloud.DefaultUserAddress, ".")] + ".0/24"
		e := start(t, primary, "e2e-narrow-http", localInput(t, map[string]any{"httpCidrs": []string{cidr}})).wait(t).succeeded(t)
		v := e.doc.Resources.Verify
		if v == nil || v.Status != pipeline.VerifySkipped || !strings.Contains(v.Reason, cidr) || !strings.Contains(v.Reason, "healthy") {
			t.Errorf("verify %+v, want skipped, saying why (the ranges) and what stands for it (the targets' health)", v)
		}
		local := lc.Gateway.LoadBalancerLocalURL(e.doc.Resources.LoadBalancer.DNSName)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(local)
		if err != nil {
			t.Fatalf("the user's GET: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("the user's GET: %d", resp.StatusCode)
		}
		proxy, _ := url.Parse(localcloud.LambdaProxyURL(lc.Endpoint))
		asLambda := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
		if resp, err := asLambda.Get(e.doc.Resources.LoadBalancer.Address()); err == nil {
			resp.Body.Close()
			t.Errorf("a GET from a Lambda's address answered %d; the security group must drop it", resp.StatusCode)
		}
		cli := buildCLI(t)
		stdout, stderr, code := cli.run(t, "verify", e.name)
		if code != 0 || !strings.HasPrefix(stdout, "passed: ") {
			t.Errorf("amifleet verify: exit %d, %q %q; want passed", code, stdout, stderr)
		}
		// run --wait looks from here by itself when the Verify stage could not.
		input := filepath.Join(t.TempDir(), "narrow.json")
		if err := os.WriteFile(input, []byte(localInput(t, map[string]any{"httpCidrs": []string{cidr}})), 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code = cli.run(t, "run", "--input", input, "--name", "e2e-narrow-http-cli", "--wait", "--poll-interval", "1s", "--timeout", "4m")
		if code != 0 || !strings.Contains(stdout, "verify from here: passed: ") {
			t.Errorf("run --wait: exit %d, stdout %q, stderr %q; want it to look from here and pass", code, stdout, stderr)
		}
	})

	// 2. Six replicas of t2.micro in us-west-2, whose zone d does not offer it: every
	// instance runs in a zone that does, and the load balancer keeps its subnets.
	t.Run("SixReplicasWhereAZoneLacksTheType", func(t *testing.T) {
		t.Parallel()
		const lacking = secondary + "d"
		if !slices.Contains(defaultSubnetZones(t, secondary), lacking) {
			t.Fatalf("no default subnet in %s: the scenario would prove nothing", lacking)
		}
		e := start(t, secondary, "e2e-six-replicas", localInput(t, map[string]any{"replicaCount": 6})).wait(t).succeeded(t)
		r := checkFleet(t, e, 6)
		if !strings.Contains(e.doc.Resources.LoadBalancer.DNSName, secondary) {
			t.Errorf("DNS name %s is not in %s", e.doc.Resources.LoadBalancer.DNSName, secondary)
		}
		var zones []string
		for _, in := range r.Instances {
			if !slices.Contains(zones, in.AvailabilityZone) {
				zones = append(zones, in.AvailabilityZone)
			}
			if in.AvailabilityZone == lacking || in.AvailabilityZone == "" {
				t.Errorf("instance %s (%s) runs in %q, which does not offer t2.micro", in.ID, in.Role, in.AvailabilityZone)
			}
		}
		if len(zones) < 2 {
			t.Errorf("the fleet runs in %v: want it spread over the zones that offer the type", zones)
		}
		// Nothing of it in the default region.
		if got := ids(readRun(t, primary, e.runID)); len(got) > 0 {
			t.Errorf("run %s has resources in %s too: %v", e.runID, primary, got)
		}
	})

	// 7. Two executions at once, their names differing only in case: both succeed,
	// as two runs with nothing in common.
	t.Run("TwoAtOnce", func(t *testing.T) {
		t.Parallel()
		a := start(t, primary, "e2e-Concurrent", localInput(t, nil))
		b := start(t, primary, "e2e-concurrent", localInput(t, nil))
		ra := checkFleet(t, a.wait(t).succeeded(t), 2)
		rb := checkFleet(t, b.wait(t).succeeded(t), 2)
		if a.runID == b.runID {
			t.Fatalf("%q and %q have one run id %q", a.name, b.name, a.runID)
		}
		seen := map[string]bool{}
		for _, id := range ids(ra) {
			seen[id] = true
		}
		for _, id := range ids(rb) {
			if seen[id] {
				t.Errorf("%s belongs to both runs", id)
			}
		}
	})

	// 8. Teardown by run id after a success leaves nothing with the run tag.
	t.Run("TeardownByRunID", func(t *testing.T) {
		t.Parallel()
		e := start(t, primary, "e2e-teardown", localInput(t, nil)).wait(t).succeeded(t)
		if got := readRun(t, primary, e.runID).Remaining(); len(got) == 0 {
			t.Fatal("the run created nothing to tear down")
		}
		startOn(t, primary, stack(t, primary).TeardownARN, "teardown-"+e.runID, teardownInput(t, e.runID)).wait(t).succeeded(t)
		nothingLeft(t, primary, e.runID)
	})

	// 9. The same execution name started twice makes one fleet.
	t.Run("SameNameTwice", func(t *testing.T) {
		t.Parallel()
		input := localInput(t, nil)
		e := start(t, primary, "e2e-same-name", input)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := sfnClient(primary).StartExecution(ctx, &sfn.StartExecutionInput{
			StateMachineArn: aws.String(stack(t, primary).PipelineARN), Name: aws.String(e.name), Input: aws.String(input),
		})
		var exists *sfntypes.ExecutionAlreadyExists
		switch {
		case errors.As(err, &exists):
			// What moto answers; AWS answers the same ARN for a running execution
			// with the same input. Either way, no second execution.
		case err != nil:
			t.Fatalf("second start: %v", err)
		case aws.ToString(out.ExecutionArn) != e.arn:
			t.Fatalf("second start made %s, want the first %s", aws.ToString(out.ExecutionArn), e.arn)
		}
		checkFleet(t, e.wait(t).succeeded(t), 2)
		// A context of its own: the run may have taken longer than the start's.
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, err := sfnClient(primary).ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(stack(t, primary).PipelineARN)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range list.Executions {
			if aws.ToString(x.Name) == e.name {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d executions named %s, want 1", n, e.name)
		}
	})

	// The CLI (issue 5) against the deployed stack.
	t.Run("CLI", func(t *testing.T) {
		t.Parallel()
		testCLI(t)
	})

	t.Run("KeepOnFailure", func(t *testing.T) {
		t.Parallel()
		testKeepOnFailure(t)
	})

	// Refresh (issue 14): a live fleet rolled onto new generations with zero failed
	// requests; refreshes failed at each step; two started at once.
	t.Run("Refresh", func(t *testing.T) {
		t.Parallel()
		testRefresh(t)
	})
	// Refreshes failed at their steps, then one after its commit, on one fleet (a
	// fleet holds one refresh at a time).
	t.Run("RefreshFaults", func(t *testing.T) {
		t.Parallel()
		testRefreshFaults(t, "e2e-rfault", []string{"LaunchBase", "CreateImage", "LaunchReplicas", "RegisterTargets",
			"CheckTargetsHealthy", "Verify", "CommitGeneration"}, true)
	})
}
