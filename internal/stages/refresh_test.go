package stages_test

// A refresh's own stages against moto (its DynamoDB included): the run record, the
// lock, the reused stages on a generation-2 document, the commit and the prune.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
)

// roomyQuota is an account whose vCPU quota holds any test's fleets.
type roomyQuota struct{}

func (roomyQuota) GetServiceQuota(context.Context, *servicequotas.GetServiceQuotaInput, ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error) {
	stages.RecordAWSCall("Service Quotas", "GetServiceQuota")
	return &servicequotas.GetServiceQuotaOutput{Quota: &sqtypes.ServiceQuota{Value: aws.Float64(1024)}}, nil
}

// fakeStates answers DescribeExecution from a map of statuses (RUNNING when unlisted).
type fakeStates struct {
	mu     sync.Mutex
	status map[string]sfntypes.ExecutionStatus
}

func (f *fakeStates) set(arn string, st sfntypes.ExecutionStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == nil {
		f.status = map[string]sfntypes.ExecutionStatus{}
	}
	f.status[arn] = st
}

func (f *fakeStates) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	stages.RecordAWSCall("SFN", "DescribeExecution")
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.status[aws.ToString(in.ExecutionArn)]
	if !ok {
		st = sfntypes.ExecutionStatusRunning
	}
	return &sfn.DescribeExecutionOutput{ExecutionArn: in.ExecutionArn, Status: st}, nil
}

// withRunsTable gives the harness's stages a fresh runs table in moto, and a fake
// Step Functions that says every execution runs.
func (h *motoHarness) withRunsTable() (*dynamodb.Client, *fakeStates) {
	h.t.Helper()
	db := dynamodb.NewFromConfig(motoCloud(h.t))
	name := newRunID(h.t, "runs")
	_, err := db.CreateTable(h.ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          ddbtypes.BillingModePayPerRequest,
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("runId"), KeyType: ddbtypes.KeyTypeHash}},
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("runId"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
	})
	h.must("CreateTable", err)
	states := &fakeStates{}
	h.s.RunsTable, h.s.States = name, states
	return db, states
}

// record reads a run's item as the functions do, nil when there is none.
func (h *motoHarness) record(db *dynamodb.Client, runID string) map[string]ddbtypes.AttributeValue {
	h.t.Helper()
	out, err := db.GetItem(h.ctx, &dynamodb.GetItemInput{TableName: aws.String(h.s.RunsTable),
		Key: map[string]ddbtypes.AttributeValue{"runId": &ddbtypes.AttributeValueMemberS{Value: runID}}, ConsistentRead: aws.Bool(true)})
	h.must("GetItem", err)
	return out.Item
}

func attrString(item map[string]ddbtypes.AttributeValue, k string) string {
	switch v := item[k].(type) {
	case *ddbtypes.AttributeValueMemberS:
		return v.Value
	case *ddbtypes.AttributeValueMemberN:
		return v.Value
	}
	return ""
}

// liveRun runs the Pipeline's stages for runID and records it.
func (h *motoHarness) liveRun(runID string) pipeline.Document {
	h.t.Helper()
	doc := h.validated(runID)
	for _, step := range motoPipeline {
		var err error
		if doc, err = step.stage(h.s)(h.ctx, doc); err != nil {
			h.t.Fatalf("%s: %v", step.name, err)
		}
		if step.wait != nil {
			doc = step.wait(h, doc)
		}
	}
	var err error
	if doc, err = h.s.RecordRun(h.ctx, doc); err != nil {
		h.t.Fatalf("RecordRun: %v", err)
	}
	// A retry of the same execution writes again; it is not another run's record.
	if _, err = h.s.RecordRun(h.ctx, doc); err != nil {
		h.t.Fatalf("RecordRun again: %v", err)
	}
	return doc
}

func refreshExecution(name string) string {
	return "arn:aws:states:" + motoRegion + ":123456789012:execution:AmiFleetRefresh:" + name
}

// prepare calls PrepareRefresh as the Refresh machine's first Task does.
func (h *motoHarness) prepare(execution, input string) (pipeline.Document, error) {
	return h.s.PrepareRefresh(h.ctx, pipeline.ValidateInput{ExecutionName: execution, ExecutionID: refreshExecution(execution),
		StartTime: time.Now().UTC().Format(time.RFC3339Nano), Input: json.RawMessage(input)})
}

// refreshSteps are the Pipeline's stages that a refresh runs again (all but the
// security groups and the load balancer, which stay).
func refreshSteps() []motoStep {
	var steps []motoStep
	for _, s := range motoPipeline {
		if s.name != "CreateSecurityGroups" && s.name != "CreateLoadBalancer" {
			steps = append(steps, s)
		}
	}
	return steps
}

// prune calls PruneGenerations as its Wait loop does, until it answers ready.
func (h *motoHarness) prune(doc pipeline.Document) pipeline.Document {
	h.t.Helper()
	const maxPolls = 20
	for i := 1; i <= maxPolls; i++ {
		var err error
		if doc, err = h.s.PruneGenerations(h.ctx, doc); err != nil {
			h.t.Fatalf("PruneGenerations poll %d: %v", i, err)
		}
		if p := doc.Polls.GenerationsPruned; p.Ready {
			return doc
		}
	}
	h.t.Fatalf("PruneGenerations not ready after %d polls: %s", maxPolls, doc.Polls.GenerationsPruned.Reason)
	return doc
}

// generations lists, by generation, the run's instances that are not terminated,
// its images and its snapshots.
func (h *motoHarness) generations(runID string) (instances, images, snapshots map[string][]string) {
	h.t.Helper()
	gen := func(tags []ec2types.Tag) string {
		for _, t := range tags {
			if aws.ToString(t.Key) == pipeline.TagGeneration {
				return aws.ToString(t.Value)
			}
		}
		return "untagged"
	}
	tag := []ec2types.Filter{{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}}}
	instances, images, snapshots = map[string][]string{}, map[string][]string{}, map[string][]string{}
	inst, err := h.ec2.DescribeInstances(h.ctx, &ec2.DescribeInstancesInput{Filters: tag})
	h.must("DescribeInstances", err)
	for _, r := range inst.Reservations {
		for _, i := range r.Instances {
			if i.State != nil && i.State.Name != ec2types.InstanceStateNameTerminated {
				instances[gen(i.Tags)] = append(instances[gen(i.Tags)], aws.ToString(i.InstanceId))
			}
		}
	}
	imgs, err := h.ec2.DescribeImages(h.ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: tag})
	h.must("DescribeImages", err)
	for _, i := range imgs.Images {
		images[gen(i.Tags)] = append(images[gen(i.Tags)], aws.ToString(i.ImageId))
	}
	snaps, err := h.ec2.DescribeSnapshots(h.ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: tag})
	h.must("DescribeSnapshots", err)
	for _, s := range snaps.Snapshots {
		snapshots[gen(s.Tags)] = append(snapshots[gen(s.Tags)], aws.ToString(s.SnapshotId))
	}
	return instances, images, snapshots
}

func (h *motoHarness) targets(tgARN string) []string {
	h.t.Helper()
	out, err := h.elb.DescribeTargetHealth(h.ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tgARN)})
	h.must("DescribeTargetHealth", err)
	var ids []string
	for _, d := range out.TargetHealthDescriptions {
		ids = append(ids, aws.ToString(d.Target.Id))
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// TestMotoRefreshRollsToANewGeneration: a live run, refreshed with a new page: the
// reused stages build generation 2 beside generation 1, the commit makes it serve,
// and the prune leaves only it (its instances registered, its one image and
// snapshot), with the record serving 2 and free. Teardown's Cleanup then removes
// everything and the record.
func TestMotoRefreshRollsToANewGeneration(t *testing.T) {
	h := newMotoHarness(t)
	db, _ := h.withRunsTable()
	runID := newRunID(t, "roll")
	live := h.liveRun(runID)
	if got := attrString(h.record(db, runID), "serving"); got != "1" {
		t.Fatalf("recorded serving %q, want 1", got)
	}

	doc, err := h.prepare("refresh-"+runID+"-1", fmt.Sprintf(`{"runId": %q, "pageTemplate": "<h1>new {hostname}</h1>"}`, runID))
	if err != nil {
		t.Fatalf("PrepareRefresh: %v", err)
	}
	if doc.Gen() != 2 || doc.Refresh.From.Generation != 1 || doc.Config.PageTemplate != "<h1>new {hostname}</h1>" ||
		doc.Resources.LoadBalancer.TargetGroupARN != live.Resources.LoadBalancer.TargetGroupARN ||
		!slices.Equal(doc.Refresh.From.InstanceIDs, live.Resources.Fleet.InstanceIDs) {
		t.Fatalf("PrepareRefresh made %+v (refresh %+v), want generation 2 from 1 with the new page and the run's load balancer", doc, doc.Refresh)
	}
	for _, step := range refreshSteps() {
		if doc, err = step.stage(h.s)(h.ctx, doc); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if step.wait != nil {
			doc = step.wait(h, doc)
		}
	}
	both := sorted(append(slices.Clone(live.Resources.Fleet.InstanceIDs), doc.Resources.Fleet.InstanceIDs...))
	if got := h.targets(doc.Resources.LoadBalancer.TargetGroupARN); !slices.Equal(got, both) {
		t.Fatalf("before the commit the targets are %v, want both generations %v", got, both)
	}
	if doc, err = h.s.CommitGeneration(h.ctx, doc); err != nil || !doc.Refresh.Committed {
		t.Fatalf("CommitGeneration: %v (committed %v)", err, doc.Refresh != nil && doc.Refresh.Committed)
	}
	// A retry after a lost answer finds the commit made.
	if _, err := h.s.CommitGeneration(h.ctx, doc); err != nil {
		t.Fatalf("CommitGeneration again: %v", err)
	}
	doc = h.prune(doc)
	// Even once the lock is gone, a late retry reads that its generation serves.
	if _, err := h.s.CommitGeneration(h.ctx, doc); err != nil {
		t.Errorf("CommitGeneration after the prune: %v", err)
	}
	if doc.Error != nil || !doc.Refresh.Committed {
		t.Errorf("after the prune: error %+v, committed %v; want none, true", doc.Error, doc.Refresh.Committed)
	}
	instances, images, snapshots := h.generations(runID)
	if len(instances) != 1 || !slices.Equal(sorted(instances["2"]), sorted(doc.Resources.Fleet.InstanceIDs)) {
		t.Errorf("instances by generation %v; want only generation 2's fleet %v", instances, doc.Resources.Fleet.InstanceIDs)
	}
	if len(images) != 1 || len(images["2"]) != 1 || images["2"][0] != doc.Resources.Image.ImageID {
		t.Errorf("images by generation %v; want only %s of generation 2", images, doc.Resources.Image.ImageID)
	}
	if len(snapshots) != 1 || len(snapshots["2"]) != 1 {
		t.Errorf("snapshots by generation %v; want one of generation 2", snapshots)
	}
	if got, want := h.targets(doc.Resources.LoadBalancer.TargetGroupARN), sorted(doc.Resources.Fleet.InstanceIDs); !slices.Equal(got, want) {
		t.Errorf("targets %v, want generation 2's %v", got, want)
	}
	rec := h.record(db, runID)
	if attrString(rec, "serving") != "2" || attrString(rec, "lastGen") != "2" || rec["lock"] != nil {
		t.Errorf("record serving %s, lastGen %s, lock %v; want 2, 2, none", attrString(rec, "serving"), attrString(rec, "lastGen"), rec["lock"])
	}
	if !strings.Contains(attrString(rec, "document"), "new {hostname}") {
		t.Errorf("the record's document does not carry the new page: %s", attrString(rec, "document"))
	}

	h.cleanup(pipeline.Document{RunID: runID})
	if got := h.count(runID); !got.empty() {
		t.Errorf("after Teardown's cleanup the run still owns %+v", got)
	}
	if rec := h.record(db, runID); rec != nil {
		t.Errorf("after Teardown's cleanup the record is still there: %v", rec)
	}
}

// TestMotoFailedRefreshLeavesTheOldGeneration: a refresh that failed after its new
// generation was registered and healthy (Verify, say) prunes only that generation:
// the old one keeps its instances, targets, image and snapshot; the record still
// serves 1, free; the failure says generation 1 still serves. A refresh that failed
// before it created anything prunes nothing.
func TestMotoFailedRefreshLeavesTheOldGeneration(t *testing.T) {
	h := newMotoHarness(t)
	db, _ := h.withRunsTable()
	runID := newRunID(t, "fail")
	live := h.liveRun(runID)
	before1, beforeImages, beforeSnaps := h.generations(runID)
	tg := live.Resources.LoadBalancer.TargetGroupARN

	doc, err := h.prepare("refresh-"+runID+"-1", fmt.Sprintf(`{"runId": %q}`, runID))
	if err != nil {
		t.Fatalf("PrepareRefresh: %v", err)
	}
	for _, step := range refreshSteps() {
		if doc, err = step.stage(h.s)(h.ctx, doc); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if step.wait != nil {
			doc = step.wait(h, doc)
		}
	}
	doc.Errors = map[string]pipeline.CaughtError{"Verify": {Error: "StageError",
		Cause: `{"errorType":"StageError","errorMessage":"2 of 12 requests failed"}`}}
	doc = h.prune(doc)
	if doc.Refresh.Committed || doc.Error == nil || doc.Error.Stage != "Verify" ||
		!strings.Contains(doc.Error.Cause, "generation 1 still serves, and nothing of generation 2 is left") {
		t.Errorf("after the prune: committed %v, error %+v; want the Verify failure, saying generation 1 still serves", doc.Refresh.Committed, doc.Error)
	}
	after, afterImages, afterSnaps := h.generations(runID)
	if fmt.Sprint(after) != fmt.Sprint(before1) || fmt.Sprint(afterImages) != fmt.Sprint(beforeImages) || fmt.Sprint(afterSnaps) != fmt.Sprint(beforeSnaps) {
		t.Errorf("the run's generations changed:\ninstances %v → %v\nimages %v → %v\nsnapshots %v → %v",
			before1, after, beforeImages, afterImages, beforeSnaps, afterSnaps)
	}
	if got, want := h.targets(tg), sorted(live.Resources.Fleet.InstanceIDs); !slices.Equal(got, want) {
		t.Errorf("targets %v, want generation 1's %v", got, want)
	}
	rec := h.record(db, runID)
	if attrString(rec, "serving") != "1" || attrString(rec, "lastGen") != "2" || rec["lock"] != nil {
		t.Errorf("record serving %s, lastGen %s, lock %v; want 1, 2 (never reused), none", attrString(rec, "serving"), attrString(rec, "lastGen"), rec["lock"])
	}

	// The next refresh (from the run's first base image, in an account whose quota
	// it reads) builds generation 3, and one that fails at once prunes nothing.
	h.s.Quotas = roomyQuota{}
	doc, err = h.prepare("refresh-"+runID+"-2", fmt.Sprintf(`{"runId": %q, "imageId": %q}`, runID, live.Resources.Image.SourceImageID))
	if err != nil || doc.Gen() != 3 {
		t.Fatalf("PrepareRefresh again: generation %d, %v; want 3", doc.Gen(), err)
	}
	doc.Errors = map[string]pipeline.CaughtError{"LaunchBase": {Error: "StageError", Cause: "boom"}}
	doc = h.prune(doc)
	if again, _, _ := h.generations(runID); fmt.Sprint(again) != fmt.Sprint(before1) {
		t.Errorf("instances %v after a refresh that made nothing; want %v", again, before1)
	}
	h.cleanup(pipeline.Document{RunID: runID})
}

// TestMotoRefreshLock: ten refreshes of one run started at once: exactly one takes
// the lock (generation 2), the others are refused with RefreshInProgressError naming
// it, and allocate nothing. Once the holder no longer runs, the next refresh takes
// its lock over (generation 3). Bad input, an unknown run and a run being torn down
// are refused by name, the record untouched.
func TestMotoRefreshLock(t *testing.T) {
	h := newMotoHarness(t)
	db, states := h.withRunsTable()
	runID := newRunID(t, "lock")
	doc := h.validated(runID)
	// The record needs a load balancer and a fleet, not real ones: nothing is built.
	doc.Resources = pipeline.Resources{
		Network:      &pipeline.Network{VPCID: "vpc-1", SubnetIDs: []string{"subnet-1"}},
		LoadBalancer: &pipeline.LoadBalancer{TargetGroupARN: "arn:tg", LoadBalancerARN: "arn:lb", DNSName: "lb.example"},
		Fleet:        &pipeline.Fleet{InstanceIDs: []string{"i-1"}, ReplicaInstanceIDs: []string{"i-1"}},
	}
	if _, err := h.s.RecordRun(h.ctx, doc); err != nil {
		t.Fatalf("RecordRun: %v", err)
	}
	other := doc
	other.TokenSeed = "another-execution"
	if _, err := h.s.RecordRun(h.ctx, other); err == nil {
		t.Errorf("RecordRun of another execution over a live record: no error")
	}

	const n = 10
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		won     []string
		refused []*pipeline.RefreshInProgressError
		other2  []error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("refresh-%s-%d", runID, i)
			d, err := h.prepare(name, fmt.Sprintf(`{"runId": %q}`, runID))
			mu.Lock()
			defer mu.Unlock()
			var busy *pipeline.RefreshInProgressError
			switch {
			case err == nil && d.Gen() == 2:
				won = append(won, refreshExecution(name))
			case errors.As(err, &busy):
				refused = append(refused, busy)
			default:
				other2 = append(other2, fmt.Errorf("%s: generation %d, %v", name, d.Gen(), err))
			}
		}()
	}
	wg.Wait()
	if len(won) != 1 || len(refused) != n-1 || len(other2) > 0 {
		t.Fatalf("%d won, %d refused, others %v; want 1 and %d", len(won), len(refused), other2, n-1)
	}
	for _, r := range refused {
		if r.Holder != won[0] || r.Building != 2 || r.RunID != runID {
			t.Errorf("refused with %+v; want holder %s building 2", r, won[0])
		}
	}
	rec := h.record(db, runID)
	if attrString(rec, "lastGen") != "2" || attrString(rec, "serving") != "1" {
		t.Errorf("record lastGen %s serving %s; want 2, 1", attrString(rec, "lastGen"), attrString(rec, "serving"))
	}

	// The holder failed: its lock is taken over.
	states.set(won[0], sfntypes.ExecutionStatusFailed)
	next, err := h.prepare("refresh-"+runID+"-next", fmt.Sprintf(`{"runId": %q}`, runID))
	if err != nil || next.Gen() != 3 || next.Refresh.TookOverFrom != won[0] {
		t.Fatalf("PrepareRefresh after the holder failed: generation %d, took over from %q, %v; want 3 from %s",
			next.Gen(), next.Refresh.TookOverFrom, err, won[0])
	}

	for _, c := range []struct{ input, field string }{
		{`{"runId": "` + runID + `", "pageTemplat": "x"}`, "pageTemplat"},
		{`{"runId": "` + runID + `", "instanceType": "t3.bogus"}`, "instanceType"},
		{`{"runId": "` + runID + `", "poll": {"intervalSeconds": 0}}`, "poll.intervalSeconds"},
		{`{}`, "runId"},
	} {
		_, err := h.prepare("refresh-bad", c.input)
		var bad *pipeline.BadInputError
		if !errors.As(err, &bad) || !strings.Contains(bad.Error(), c.field) {
			t.Errorf("input %s: %v; want a BadInputError naming %s", c.input, err, c.field)
		}
	}
	var missing *pipeline.RunNotFoundError
	if _, err := h.prepare("refresh-none", `{"runId": "never-made"}`); !errors.As(err, &missing) {
		t.Errorf("a run without a record: %v; want RunNotFoundError", err)
	}
	if after := h.record(db, runID); attrString(after, "lastGen") != "3" {
		t.Errorf("refused inputs changed the record: lastGen %s, want 3", attrString(after, "lastGen"))
	}
	// Teardown's Cleanup marks the run first: no refresh starts after it.
	states.set(refreshExecution("refresh-"+runID+"-next"), sfntypes.ExecutionStatusSucceeded)
	if _, err := h.s.Cleanup(h.ctx, pipeline.Document{RunID: runID}); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if _, err := h.prepare("refresh-late", fmt.Sprintf(`{"runId": %q}`, runID)); !errors.As(err, &missing) {
		t.Errorf("a run being torn down: %v; want RunNotFoundError", err)
	}
}
