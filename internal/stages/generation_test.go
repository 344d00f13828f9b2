package stages

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// refreshDoc is what a refresh of the live run doc would start generation gen
// with: the run's network and load balancer (they serve every generation), no
// image and no fleet of its own yet.
func refreshDoc(doc pipeline.Document, gen int) pipeline.Document {
	doc.Generation = gen
	doc.Resources.Image, doc.Resources.Fleet, doc.Resources.Verify = nil, nil, nil
	doc.Polls = nil
	return doc
}

// buildGeneration runs the image branch and LaunchReplicas of doc's generation on
// the fake, the way a refresh would.
func buildGeneration(t *testing.T, c *fakeCloud, doc pipeline.Document) pipeline.Document {
	t.Helper()
	ctx, s := context.Background(), c.stages()
	doc = mustRun(t)(s.LaunchBase(ctx, doc))
	c.setInstanceState(doc.Resources.Image.BaseInstanceID, "stopped")
	doc = mustRun(t)(s.CreateImage(ctx, doc))
	c.setImageState(doc.Resources.Image.ImageID, "available", "")
	doc = mustRun(t)(s.LaunchReplicas(ctx, doc))
	c.settle()
	return doc
}

// fakeTags are the tags of the fake's resource id, whatever its kind.
func (c *fakeCloud) fakeTags(t *testing.T, id string) map[string]string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.instances[id] != nil:
		return c.instances[id].Tags
	case c.images[id] != nil:
		return c.images[id].Tags
	case c.snapshots[id] != nil:
		return c.snapshots[id].Tags
	case c.sgs[id] != nil:
		return c.sgs[id].Tags
	case c.tgs[id] != nil:
		return c.tgs[id].Tags
	case c.lbs[id] != nil:
		return c.lbs[id].Tags
	case c.listeners[id] != nil:
		return c.listeners[id].Tags
	}
	t.Fatalf("the fake holds no %s", id)
	return nil
}

// untag removes the generation tag from the fake's resource id, as the resources of
// runs made before generations existed have none.
func (c *fakeCloud) untag(t *testing.T, id string) {
	t.Helper()
	tags := c.fakeTags(t, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(tags, pipeline.TagGeneration)
}

// imageSnapshots are the snapshots of the fake's image id.
func (c *fakeCloud) imageSnapshots(id string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.images[id].Snapshots)
}

func TestGenerationTags(t *testing.T) {
	c := newFakeCloud(t)
	gen1 := buildFleet(t, c, testRunID)
	gen2 := buildGeneration(t, c, refreshDoc(gen1, 2))

	for _, tc := range []struct {
		doc  pipeline.Document
		gen  string
		name func(role string) string
	}{
		{gen1, "1", func(role string) string { return "amifleet-" + testRunID + "-" + role }},
		{gen2, "2", func(role string) string { return "amifleet-" + testRunID + "-" + role + "-g2" }},
	} {
		img := tc.doc.Resources.Image
		made := map[string]string{img.BaseInstanceID: pipeline.RoleBase, img.ImageID: pipeline.RoleImage}
		for _, id := range c.imageSnapshots(img.ImageID) {
			made[id] = pipeline.RoleImage
		}
		for _, id := range tc.doc.Resources.Fleet.ReplicaInstanceIDs {
			made[id] = pipeline.RoleReplica
		}
		if len(made) < 4+tc.doc.Config.ReplicaCount-1 {
			t.Fatalf("generation %s made only %v", tc.gen, made)
		}
		for id, role := range made {
			tags := c.fakeTags(t, id)
			if tags[pipeline.TagGeneration] != tc.gen || tags[pipeline.TagRole] != role || tags[pipeline.TagName] != tc.name(role) {
				t.Errorf("generation %s's %s %s: tags %v, want %s=%s, role %s, Name %s",
					tc.gen, role, id, tags, pipeline.TagGeneration, tc.gen, role, tc.name(role))
			}
		}
	}
	c.mu.Lock()
	imageNames := map[string]string{}
	for id, im := range c.images {
		imageNames[id] = im.Name
	}
	c.mu.Unlock()
	if n := imageNames[gen1.Resources.Image.ImageID]; n != "amifleet-"+testRunID+"-image" {
		t.Errorf("generation 1's AMI is named %q, want today's name", n)
	}
	if n := imageNames[gen2.Resources.Image.ImageID]; n != "amifleet-"+testRunID+"-image-g2" {
		t.Errorf("generation 2's AMI is named %q, want the -g2 name", n)
	}

	// What serves every generation carries none.
	net, lb := gen1.Resources.Network, gen1.Resources.LoadBalancer
	for _, id := range []string{net.ALBSecurityGroupID, net.InstanceSecurityGroupID, lb.TargetGroupARN, lb.LoadBalancerARN, lb.ListenerARN} {
		if tags := c.fakeTags(t, id); tags[pipeline.TagRunID] != testRunID || tags[pipeline.TagGeneration] != "" {
			t.Errorf("%s: tags %v, want the run's, with no %s", id, tags, pipeline.TagGeneration)
		}
	}
}

func TestGenerationLookupsStayInTheirGeneration(t *testing.T) {
	c := newFakeCloud(t)
	ctx, s := context.Background(), c.stages()
	gen1 := buildFleet(t, c, testRunID)
	mark := len(fakeInputs[ec2.RunInstancesInput](c, "RunInstances"))

	// Generation 2 finds none of generation 1's base, image or replicas: it makes its own.
	gen2 := buildGeneration(t, c, refreshDoc(gen1, 2))
	if gen2.Resources.Image.BaseInstanceID == gen1.Resources.Image.BaseInstanceID {
		t.Errorf("generation 2 reused generation 1's base instance %s", gen1.Resources.Image.BaseInstanceID)
	}
	if gen2.Resources.Image.ImageID == gen1.Resources.Image.ImageID {
		t.Errorf("generation 2 reused generation 1's image %s", gen1.Resources.Image.ImageID)
	}
	if got := gen2.Resources.Fleet.ReplicaInstanceIDs; len(got) != gen1.Config.ReplicaCount {
		t.Errorf("generation 2's replicas %v, want %d of its own", got, gen1.Config.ReplicaCount)
	}
	for _, id := range gen2.Resources.Fleet.ReplicaInstanceIDs {
		if slices.Contains(gen1.Resources.Fleet.ReplicaInstanceIDs, id) {
			t.Errorf("generation 2 counts generation 1's replica %s as its own", id)
		}
	}

	// Its create requests carry tokens of their own: none replays generation 1's.
	runs := fakeInputs[ec2.RunInstancesInput](c, "RunInstances")
	tokens := map[string]bool{}
	for _, in := range runs[:mark] {
		tokens[aws.ToString(in.ClientToken)] = true
	}
	for _, in := range runs[mark:] {
		if tok := aws.ToString(in.ClientToken); tok == "" || tokens[tok] {
			t.Errorf("generation 2's RunInstances token %q is empty or generation 1's", tok)
		}
	}

	// A retry of generation 2 finds generation 2's: it launches and creates nothing.
	before := c.mark()
	again := buildGeneration(t, c, refreshDoc(gen1, 2))
	for _, m := range c.methodsSince(before) {
		if m == "RunInstances" || m == "CreateImage" {
			t.Errorf("a retry of generation 2 called %s", m)
		}
	}
	if again.Resources.Image.BaseInstanceID != gen2.Resources.Image.BaseInstanceID || again.Resources.Image.ImageID != gen2.Resources.Image.ImageID {
		t.Errorf("a retry of generation 2 found %+v, want %+v", again.Resources.Image, gen2.Resources.Image)
	}

	// Generation 1 does not take generation 2's for its own either.
	for gen, want := range map[int]string{1: gen1.Resources.Image.ImageID, 2: gen2.Resources.Image.ImageID} {
		images, err := s.findImages(ctx, testRunID, gen)
		if err != nil {
			t.Fatal(err)
		}
		if len(images) != 1 || aws.ToString(images[0].ImageId) != want {
			t.Errorf("generation %d's images: %v, want only %s", gen, imageIDs(images), want)
		}
	}
	if images, err := s.findImages(ctx, testRunID, allGenerations); err != nil || len(images) != 2 {
		t.Errorf("every generation's images: %d, %v, want 2", len(images), err)
	}
	replicas1, err := s.findInstances(ctx, testRunID, pipeline.RoleReplica, 1, liveInstanceStates...)
	if err != nil {
		t.Fatal(err)
	}
	if got := instanceIDs(replicas1); !sameIDs(got, gen1.Resources.Fleet.ReplicaInstanceIDs) {
		t.Errorf("generation 1's replicas %v, want %v", got, gen1.Resources.Fleet.ReplicaInstanceIDs)
	}
	// With generation 1's base gone, a retry of generation 1's LaunchBase launches a
	// new one rather than adopt generation 2's.
	c.setInstanceState(gen1.Resources.Image.BaseInstanceID, "terminated")
	retry := gen1
	retry.Resources.Image = nil
	retry = mustRun(t)(s.LaunchBase(ctx, retry))
	if id := retry.Resources.Image.BaseInstanceID; id == gen2.Resources.Image.BaseInstanceID {
		t.Errorf("generation 1's LaunchBase adopted generation 2's base instance %s", id)
	}
}

func TestGenerationOneFindsUntaggedResources(t *testing.T) {
	// The resources of a run made before generations existed carry no generation
	// tag: they are generation 1's.
	c := newFakeCloud(t)
	ctx, s := context.Background(), c.stages()
	doc := withImage(t, c, withNetwork(t, c, testDoc()))
	doc.Generation = 0 // a document from before generations, too
	baseID, imageID := doc.Resources.Image.BaseInstanceID, doc.Resources.Image.ImageID
	c.untag(t, baseID)
	c.untag(t, imageID)

	retry := doc
	retry.Resources.Image = nil
	retry = mustRun(t)(s.LaunchBase(ctx, retry))
	retry = mustRun(t)(s.CreateImage(ctx, retry))
	if got := retry.Resources.Image; got.BaseInstanceID != baseID || got.ImageID != imageID {
		t.Errorf("generation 1 found base %s and image %s, want the untagged %s and %s", got.BaseInstanceID, got.ImageID, baseID, imageID)
	}
	if n := c.count("RunInstances"); n != 1 {
		t.Errorf("%d RunInstances calls, want only the first launch", n)
	}

	// Generation 2 never takes them.
	if images, err := s.findImages(ctx, doc.RunID, 2); err != nil || len(images) != 0 {
		t.Errorf("generation 2 found images %v (%v), want none", imageIDs(images), err)
	}
	gen2 := mustRun(t)(s.LaunchBase(ctx, refreshDoc(doc, 2)))
	if gen2.Resources.Image.BaseInstanceID == baseID {
		t.Errorf("generation 2 adopted the untagged base instance %s", baseID)
	}
}

func TestCleanupDeletesEveryGeneration(t *testing.T) {
	c := newFakeCloud(t)
	gen1 := buildFleet(t, c, testRunID)
	gen2 := buildGeneration(t, c, refreshDoc(gen1, 2))
	c.untag(t, gen1.Resources.Fleet.ReplicaInstanceIDs[0]) // one from before generations
	other := buildFleet(t, c, "run-2")
	otherBefore := c.tagged(other.RunID)

	tagged := strings.Join(c.tagged(testRunID), " ")
	for _, id := range []string{gen1.Resources.Image.ImageID, gen2.Resources.Image.ImageID,
		gen1.Resources.Image.BaseInstanceID, gen2.Resources.Image.BaseInstanceID, gen2.Resources.Fleet.ReplicaInstanceIDs[0]} {
		if !strings.Contains(tagged, id) {
			t.Fatalf("%s is not in the run's resources %s", id, tagged)
		}
	}
	// Cleanup gets whichever document the failed or torn-down execution holds: here
	// generation 2's (Teardown's has no generation at all).
	doc := cleanupUntilReady(t, c, gen2)
	if left := c.tagged(testRunID); len(left) != 0 {
		t.Errorf("left after cleanup of generation 2's document: %v", left)
	}
	if doc.Polls.CleanupDone.State != "deleted" {
		t.Errorf("cleanup %+v, want deleted", doc.Polls.CleanupDone)
	}
	for _, id := range append([]string{gen1.Resources.Image.BaseInstanceID, gen2.Resources.Image.BaseInstanceID},
		append(gen1.Resources.Fleet.ReplicaInstanceIDs, gen2.Resources.Fleet.ReplicaInstanceIDs...)...) {
		c.mu.Lock()
		state := c.instances[id].State
		c.mu.Unlock()
		if state != "terminated" {
			t.Errorf("instance %s is %s after cleanup, want terminated", id, state)
		}
	}
	if after := c.tagged(other.RunID); !slices.Equal(after, otherBefore) {
		t.Errorf("the other run's resources changed:\nbefore %v\nafter  %v", otherBefore, after)
	}
}

func TestGenerationTokens(t *testing.T) {
	doc := testDoc()
	seed := doc.TokenSeed
	// Generation 1 keeps the tokens of before generations: a retry of a run started
	// then stays idempotent.
	for _, gen := range []int{0, 1} {
		doc.Generation = gen
		if got, want := genToken(seed, doc, pipeline.RoleBase), clientToken(seed, pipeline.RoleBase); got != want {
			t.Errorf("generation %d's base token %q, want %q", gen, got, want)
		}
	}
	seen := map[string]int{}
	for _, gen := range []int{1, 2, 3, 12} {
		doc.Generation = gen
		for _, parts := range [][]string{{pipeline.RoleBase}, {pipeline.RoleReplica, "subnet-1", "0"}} {
			tok := genToken(seed, doc, parts...)
			if prev, ok := seen[tok]; ok {
				t.Errorf("generation %d's token %q (%v) is generation %d's too", gen, tok, parts, prev)
			}
			seen[tok] = gen
		}
	}
}

func TestInGeneration(t *testing.T) {
	tag := func(v string) []ec2types.Tag {
		return []ec2types.Tag{{Key: aws.String(pipeline.TagRunID), Value: aws.String("r")},
			{Key: aws.String(pipeline.TagGeneration), Value: aws.String(v)}}
	}
	untagged := []ec2types.Tag{{Key: aws.String(pipeline.TagRunID), Value: aws.String("r")}}
	for _, tc := range []struct {
		what string
		tags []ec2types.Tag
		gen  int
		want bool
	}{
		{"untagged in 1", untagged, 1, true},
		{"untagged in 2", untagged, 2, false},
		{"1 in 1", tag("1"), 1, true},
		{"2 in 1", tag("2"), 1, false},
		{"2 in 2", tag("2"), 2, true},
		{"1 in 2", tag("1"), 2, false},
		{"2 in all", tag("2"), allGenerations, true},
		{"untagged in all", untagged, allGenerations, true},
	} {
		if got := inGeneration(tc.tags, tc.gen); got != tc.want {
			t.Errorf("%s: inGeneration = %v, want %v", tc.what, got, tc.want)
		}
	}
	if f := describeFilters(genFilters("r", pipeline.RoleBase, 1)); strings.Contains(f, pipeline.TagGeneration) {
		t.Errorf("generation 1's filters %s name the generation: they would miss untagged resources", f)
	}
	if f := describeFilters(genFilters("r", pipeline.RoleBase, 2)); !strings.Contains(f, "tag:"+pipeline.TagGeneration+"=2") {
		t.Errorf("generation 2's filters %s do not ask for generation 2", f)
	}
}

func imageIDs(images []ec2types.Image) []string {
	var ids []string
	for _, im := range images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	return ids
}

func sameIDs(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
