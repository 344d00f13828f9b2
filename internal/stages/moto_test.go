package stages_test

// These tests run the stages against a real moto server (started once for the
// package run by TestMain, on the first test that needs it): every stage run twice
// with the same input creates nothing the second time, and Cleanup after any stage
// leaves nothing with the run tag. They call the stages as the state machine does,
// checks included, and play the guest OS where moto has none (the base instance's
// script powers it off: here StopInstances).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

const motoRegion = "us-east-1"

// The package's one moto, started by the first test that asks for it and stopped
// by TestMain, whatever the tests' outcome. (If the test binary dies instead,
// moto dies with it: StartMoto sets a parent-death signal.)
var (
	motoOnce    sync.Once
	motoServer  *localcloud.Moto
	motoErr     error
	motoStarted time.Duration
	motoLog     = localcloud.NewTailBuffer(16 << 10) // the end of moto's log, shown when a test fails
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := stages.CheckIAMGolden(code == 0 && stages.CompleteRun()); err != nil {
		fmt.Fprintln(os.Stderr, "IAM actions:", err)
		code = 1
	}
	if motoServer != nil {
		if err := motoServer.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop moto:", err)
		}
	}
	os.Exit(code)
}

// motoCloud is the shared moto server's AWS configuration.
func motoCloud(t *testing.T) aws.Config {
	t.Helper()
	motoOnce.Do(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		motoServer, motoErr = localcloud.StartMoto(ctx, localcloud.MotoOptions{LogWriter: motoLog})
		motoStarted = time.Since(start)
	})
	if motoErr != nil {
		t.Fatalf("moto: %v", motoErr)
	}
	t.Logf("moto at %s (started in %s)", motoServer.Endpoint(), motoStarted.Round(time.Millisecond))
	cfg := localcloud.AWSConfig(motoServer.Endpoint(), motoRegion)
	cfg.APIOptions = append(cfg.APIOptions, stages.RecordingMiddleware)
	return cfg
}

// newRunID is a run id no other test (or earlier -count run) has used.
func newRunID(t *testing.T, prefix string) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// motoHarness drives the stages against moto, and reads back what a run owns.
type motoHarness struct {
	t   *testing.T
	ctx context.Context
	s   *stages.Stages
	ec2 *ec2.Client
	elb *elb.Client
}

func newMotoHarness(t *testing.T) *motoHarness {
	cfg := motoCloud(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the end of moto's log:\n%s", motoLog.String())
		}
	})
	return &motoHarness{t: t, ctx: ctx, s: stages.New(cfg), ec2: ec2.NewFromConfig(cfg), elb: elb.NewFromConfig(cfg)}
}

// validated is the document Validate makes for runID from an empty input.
func (h *motoHarness) validated(runID string) pipeline.Document {
	h.t.Helper()
	return h.validatedInput(runID, `{}`)
}

// validatedInput is the document Validate makes for runID from input, for an
// execution named runID that starts now.
func (h *motoHarness) validatedInput(runID, input string) pipeline.Document {
	h.t.Helper()
	doc, err := h.s.Validate(h.ctx, pipeline.ValidateInput{ExecutionName: runID, Input: json.RawMessage(input),
		ExecutionID: "arn:aws:states:" + motoRegion + ":123456789012:execution:AmiFleetPipeline:" + runID,
		StartTime:   time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		h.t.Fatalf("Validate: %v", err)
	}
	if doc.RunID != runID {
		h.t.Fatalf("Validate made run id %q from %q", doc.RunID, runID)
	}
	return doc
}

// motoStep is one stage as the state machine runs it: the stage, then what the
// machine does before the next stage (the wait loop's checks).
type motoStep struct {
	name  string
	stage func(*stages.Stages) func(context.Context, pipeline.Document) (pipeline.Document, error)
	// creates: whether the stage makes resources with the run tag.
	creates bool
	wait    func(h *motoHarness, doc pipeline.Document) pipeline.Document
}

var motoPipeline = []motoStep{
	{name: "CreateSecurityGroups", stage: func(s *stages.Stages) func(context.Context, pipeline.Document) (pipeline.Document, error) {
		return s.CreateSecurityGroups
	}, creates: true},
	{name: "LaunchBase", stage: func(s *stages.Stages) func(context.Context, pipeline.Document) (pipeline.Document, error) {
		return s.LaunchBase
	}, creates: true, wait: (*motoHarness).baseStopped},
	{name: "CreateImage", stage: func(s *stages.Stages) func(context.Context, pipeline.Document) (pipeline.Document, error) {
		return s.CreateImage
	}, creates: true, wait: func(h *motoHarness, doc pipeline.Document) pipeline.Document {
		return h.poll(pipeline.WaitImageAvailable, doc, h.s.CheckImageAvailable)
	}},
	{name: "CreateLoadBalancer", stage: func(s *stages.Stages) func(context.Context, pipeline.Document) (pipeline.Document, error) {
		return s.CreateLoadBalancer
	}, creates: true, wait: func(h *motoHarness, doc pipeline.Document) pipeline.Document {
		return h.poll(pipeline.WaitLoadBalancerActive, doc, h.s.CheckLoadBalancerActive)
	}},
	{name: "LaunchReplicas", stage: func(s *stages.Stages) func(context.Context, pipeline.Document) (pipeline.Document, error) {
		return s.LaunchReplicas
	}, creates: true, wait: func(h *motoHarness, doc pipeline.Document) pipeline.Document {
		return h.poll(pipeline.WaitInstancesRunning, doc, h.s.CheckInstancesRunning)
	}},
	{name: "RegisterTargets", stage: func(s *stages.Stages) func(context.Context, pipeline.Document) (pipeline.Document, error) {
		return s.RegisterTargets
	}, creates: false, wait: func(h *motoHarness, doc pipeline.Document) pipeline.Document {
		return h.poll(pipeline.WaitTargetsHealthy, doc, h.s.CheckTargetsHealthy)
	}},
}

// poll calls a check until it answers ready, as the Wait + check + Choice loop does
// (without the wait: moto's resources are ready at once or on the next describe).
// Each answer must count one more attempt than the last.
func (h *motoHarness) poll(name string, doc pipeline.Document, check func(context.Context, pipeline.Document) (pipeline.Document, error)) pipeline.Document {
	h.t.Helper()
	last := func() *pipeline.PollResult { return doc.Polls.Of(name) }
	for i := 1; i <= 5; i++ {
		prev := 0
		if r := last(); r != nil {
			prev = r.Attempts
		}
		var err error
		if doc, err = check(h.ctx, doc); err != nil {
			h.t.Fatalf("%s: %v", name, err)
		}
		r := last()
		if r == nil {
			h.t.Fatalf("%s set no poll result", name)
		}
		if r.Attempts != prev+1 {
			h.t.Fatalf("%s answered attempts %d after %d", name, r.Attempts, prev)
		}
		if r.Ready {
			return doc
		}
	}
	h.t.Fatalf("%s not ready after 5 polls", name)
	return doc
}

// baseStopped plays the base instance's script, which powers it off when done:
// moto's instance never stops by itself. The check must see it running first.
func (h *motoHarness) baseStopped(doc pipeline.Document) pipeline.Document {
	h.t.Helper()
	check := h.s.CheckBaseStopped
	doc, err := check(h.ctx, doc)
	if err != nil {
		h.t.Fatalf("CheckBaseStopped: %v", err)
	}
	if p := doc.Polls.BaseStopped; p == nil || p.Ready {
		h.t.Fatalf("CheckBaseStopped before the base stopped: %+v, want not ready", p)
	}
	base := doc.Resources.Image.BaseInstanceID
	if _, err := h.ec2.StopInstances(h.ctx, &ec2.StopInstancesInput{InstanceIds: []string{base}}); err != nil {
		h.t.Fatalf("stop the base instance %s: %v", base, err)
	}
	return h.poll(pipeline.WaitBaseStopped, doc, check)
}

// motoCounts is what a run owns in moto, found by its run tag.
type motoCounts struct {
	SecurityGroups int
	// Instances are those not terminated; InstancesEver counts terminated ones too.
	Instances, InstancesEver int
	Images, Snapshots        int
	TargetGroups             int
	LoadBalancers, Listeners int
}

func (c motoCounts) empty() bool {
	return c.SecurityGroups == 0 && c.Instances == 0 && c.Images == 0 && c.Snapshots == 0 &&
		c.TargetGroups == 0 && c.LoadBalancers == 0 && c.Listeners == 0
}

func (h *motoHarness) count(runID string) motoCounts {
	h.t.Helper()
	var c motoCounts
	tag := []ec2types.Filter{{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}}}

	sgs, err := h.ec2.DescribeSecurityGroups(h.ctx, &ec2.DescribeSecurityGroupsInput{Filters: tag})
	h.must("DescribeSecurityGroups", err)
	c.SecurityGroups = len(sgs.SecurityGroups)

	inst, err := h.ec2.DescribeInstances(h.ctx, &ec2.DescribeInstancesInput{Filters: tag})
	h.must("DescribeInstances", err)
	for _, r := range inst.Reservations {
		for _, i := range r.Instances {
			c.InstancesEver++
			if i.State == nil || i.State.Name != ec2types.InstanceStateNameTerminated {
				c.Instances++
			}
		}
	}

	imgs, err := h.ec2.DescribeImages(h.ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: tag})
	h.must("DescribeImages", err)
	c.Images = len(imgs.Images)

	snaps, err := h.ec2.DescribeSnapshots(h.ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: tag})
	h.must("DescribeSnapshots", err)
	c.Snapshots = len(snaps.Snapshots)

	tgs, err := h.elb.DescribeTargetGroups(h.ctx, &elb.DescribeTargetGroupsInput{})
	h.must("DescribeTargetGroups", err)
	var tgARNs []string
	for _, tg := range tgs.TargetGroups {
		tgARNs = append(tgARNs, aws.ToString(tg.TargetGroupArn))
	}
	c.TargetGroups = len(h.elbTagged(tgARNs, runID))

	lbs, err := h.elb.DescribeLoadBalancers(h.ctx, &elb.DescribeLoadBalancersInput{})
	h.must("DescribeLoadBalancers", err)
	var lbARNs []string
	for _, lb := range lbs.LoadBalancers {
		lbARNs = append(lbARNs, aws.ToString(lb.LoadBalancerArn))
	}
	mine := h.elbTagged(lbARNs, runID)
	c.LoadBalancers = len(mine)
	for _, arn := range mine {
		ls, err := h.elb.DescribeListeners(h.ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(arn)})
		h.must("DescribeListeners", err)
		c.Listeners += len(ls.Listeners)
	}
	return c
}

// elbTagged keeps the ARNs whose resource has the run tag (DescribeTags takes 20).
func (h *motoHarness) elbTagged(arns []string, runID string) []string {
	h.t.Helper()
	var out []string
	for len(arns) > 0 {
		n := min(len(arns), 20)
		tags, err := h.elb.DescribeTags(h.ctx, &elb.DescribeTagsInput{ResourceArns: arns[:n]})
		h.must("DescribeTags", err)
		for _, d := range tags.TagDescriptions {
			for _, tag := range d.Tags {
				if aws.ToString(tag.Key) == pipeline.TagRunID && aws.ToString(tag.Value) == runID {
					out = append(out, aws.ToString(d.ResourceArn))
				}
			}
		}
		arns = arns[n:]
	}
	return out
}

func (h *motoHarness) must(what string, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

// cleanup calls Cleanup as the Teardown's loop does, until it answers ready.
func (h *motoHarness) cleanup(doc pipeline.Document) pipeline.Document {
	h.t.Helper()
	const maxPolls = 20
	for i := 1; i <= maxPolls; i++ {
		var err error
		if doc, err = h.s.Cleanup(h.ctx, doc); err != nil {
			h.t.Fatalf("Cleanup poll %d: %v", i, err)
		}
		if p := doc.Polls.CleanupDone; p.Ready {
			h.t.Logf("cleanup done after %d polls", i)
			return doc
		}
	}
	h.t.Fatalf("Cleanup not ready after %d polls: %s", maxPolls, doc.Polls.CleanupDone.Reason)
	return doc
}

// TestMotoStagesRunTwice runs the pipeline's stages in order, each twice with the
// same input document, as a Lambda or Step Functions retry would: the second call
// must create nothing and answer the same resources.
func TestMotoStagesRunTwice(t *testing.T) {
	start := time.Now()
	h := newMotoHarness(t)
	runID := newRunID(t, "twice")
	doc := h.validated(runID)
	for _, step := range motoPipeline {
		ok := t.Run(step.name, func(t *testing.T) {
			h.t = t
			run := step.stage(h.s)
			before := h.count(runID)
			first, err := run(h.ctx, doc)
			if err != nil {
				t.Fatalf("first call: %v", err)
			}
			afterFirst := h.count(runID)
			if step.creates && afterFirst == before {
				t.Fatalf("first call created nothing: %+v", afterFirst)
			}
			second, err := run(h.ctx, doc)
			if err != nil {
				t.Fatalf("second call: %v", err)
			}
			if afterSecond := h.count(runID); afterSecond != afterFirst {
				t.Fatalf("second call changed what the run owns:\nafter the first  %+v\nafter the second %+v", afterFirst, afterSecond)
			}
			a, _ := json.Marshal(first.Resources)
			b, _ := json.Marshal(second.Resources)
			if string(a) != string(b) {
				t.Fatalf("second call answered other resources:\nfirst  %s\nsecond %s", a, b)
			}
			doc = second
			if step.wait != nil {
				doc = step.wait(h, doc)
			}
		})
		if !ok {
			break // the later stages need this one's resources
		}
	}
	h.t = t
	want := motoCounts{SecurityGroups: 2, Instances: 3, InstancesEver: 3, Images: 1, Snapshots: 1,
		TargetGroups: 1, LoadBalancers: 1, Listeners: 1}
	if got := h.count(runID); got != want {
		t.Errorf("the run owns %+v, want %+v (base + 2 replicas)", got, want)
	}
	h.cleanup(doc)
	if got := h.count(runID); !got.empty() {
		t.Errorf("after cleanup the run still owns %+v", got)
	}
	t.Logf("%s took %s", t.Name(), time.Since(start).Round(time.Millisecond))
}

// TestMotoCleanupAfterEachStage runs stages 1..k, then Cleanup until it answers
// ready, for every k: a run that failed at any point leaves nothing behind.
func TestMotoCleanupAfterEachStage(t *testing.T) {
	start := time.Now()
	for k := range motoPipeline {
		t.Run("after "+motoPipeline[k].name, func(t *testing.T) {
			h := newMotoHarness(t)
			runID := newRunID(t, fmt.Sprintf("clean%d", k+1))
			doc := h.validated(runID)
			for _, step := range motoPipeline[:k+1] {
				var err error
				if doc, err = step.stage(h.s)(h.ctx, doc); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				if step.wait != nil {
					doc = step.wait(h, doc)
				}
			}
			if got := h.count(runID); got.empty() {
				t.Fatalf("stages 1..%d created nothing to clean up", k+1)
			}
			doc = h.cleanup(doc)
			if p := doc.Polls.CleanupDone; p.State != "deleted" {
				t.Errorf("cleanup poll %+v: want state deleted", p)
			}
			if got := h.count(runID); !got.empty() {
				t.Errorf("after cleanup the run still owns %+v", got)
			}
			// Cleanup again (a Teardown after a failed run's own cleanup): nothing
			// to do, and no error for what is already gone.
			if doc, err := h.s.Cleanup(h.ctx, doc); err != nil || !doc.Polls.CleanupDone.Ready {
				t.Errorf("Cleanup after cleanup: %v, %+v", err, doc.Polls.CleanupDone)
			}
		})
	}
	t.Logf("%s took %s", t.Name(), time.Since(start).Round(time.Millisecond))
}

// moto's offerings carry AWS's real gaps (t3.micro is not offered in us-east-1e,
// where the default VPC has a subnet), though its RunInstances launches anywhere:
// Validate finds the zones that offer the type, and no instance of the run goes
// elsewhere, while the load balancer keeps every zone. The replicas get no public
// address; the base keeps its default subnet's, for its packages.
func TestMotoInstancesOnlyInZonesThatOfferTheType(t *testing.T) {
	h := newMotoHarness(t)
	runID := newRunID(t, "zones")
	doc := h.validatedInput(runID, `{"instanceType": "t3.micro", "replicaCount": 6}`)
	if doc.Placement == nil || slices.Contains(doc.Placement.Zones, "us-east-1e") || len(doc.Placement.Zones) < 2 {
		t.Fatalf("placement %+v, want the default subnets' zones but us-east-1e", doc.Placement)
	}
	if doc.Placement.VCPUs != 2 {
		t.Errorf("placement says %d vCPUs for t3.micro, want 2", doc.Placement.VCPUs)
	}
	for _, step := range motoPipeline[:5] { // up to LaunchReplicas
		var err error
		if doc, err = step.stage(h.s)(h.ctx, doc); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if step.wait != nil {
			doc = step.wait(h, doc)
		}
	}
	if !slices.Contains(doc.Resources.Network.AvailabilityZones, "us-east-1e") {
		t.Errorf("network zones %v: the load balancer keeps us-east-1e", doc.Resources.Network.AvailabilityZones)
	}
	out, err := h.ec2.DescribeInstances(h.ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}}}})
	h.must("DescribeInstances", err)
	n := 0
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			n++
			zone := aws.ToString(in.Placement.AvailabilityZone)
			if zone == "us-east-1e" {
				t.Errorf("instance %s in us-east-1e, which does not offer t3.micro", aws.ToString(in.InstanceId))
			}
			public := aws.ToString(in.PublicIpAddress) != ""
			if role := tagOf(in.Tags, pipeline.TagRole); public != (role == pipeline.RoleBase) {
				t.Errorf("%s %s: public address %q", role, aws.ToString(in.InstanceId), aws.ToString(in.PublicIpAddress))
			}
		}
	}
	if n != 7 {
		t.Errorf("%d instances, want the base and 6 replicas", n)
	}
	h.cleanup(doc)
	if got := h.count(runID); !got.empty() {
		t.Errorf("after cleanup the run still owns %+v", got)
	}
}

func tagOf(tags []ec2types.Tag, key string) string {
	for _, tag := range tags {
		if aws.ToString(tag.Key) == key {
			return aws.ToString(tag.Value)
		}
	}
	return ""
}
