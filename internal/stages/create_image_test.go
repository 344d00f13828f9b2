package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// stoppedBase is a document after LaunchBase, with the base stopped.
func stoppedBase(t *testing.T, c *fakeCloud) pipeline.Document {
	t.Helper()
	doc := mustRun(t)(c.stages().LaunchBase(context.Background(), withNetwork(t, c, testDoc())))
	c.setInstanceState(doc.Resources.Image.BaseInstanceID, "stopped")
	return doc
}

func TestCreateImageRequest(t *testing.T) {
	c := newFakeCloud(t)
	doc := stoppedBase(t, c)
	out := mustRun(t)(c.stages().CreateImage(context.Background(), doc))

	creates := fakeInputs[ec2.CreateImageInput](c, "CreateImage")
	if len(creates) != 1 {
		t.Fatalf("CreateImage called %d times, want 1", len(creates))
	}
	in := creates[0]
	if aws.ToString(in.InstanceId) != doc.Resources.Image.BaseInstanceID {
		t.Errorf("image of %s, want the base %s", aws.ToString(in.InstanceId), doc.Resources.Image.BaseInstanceID)
	}
	if aws.ToString(in.Name) != "amifleet-"+testRunID+"-image" {
		t.Errorf("name %q", aws.ToString(in.Name))
	}
	if !aws.ToBool(in.NoReboot) || aws.ToString(in.Description) == "" {
		t.Errorf("NoReboot %v, description %q", aws.ToBool(in.NoReboot), aws.ToString(in.Description))
	}
	assertTagSpecs(t, "CreateImage", in.TagSpecifications, pipeline.RoleImage, ec2types.ResourceTypeImage, ec2types.ResourceTypeSnapshot)

	img := out.Resources.Image
	if img.ImageID == "" || img.BaseInstanceID != doc.Resources.Image.BaseInstanceID || img.SourceImageID != fakeBaseImage {
		t.Errorf("resources.image = %+v", img)
	}
	snap := c.images[img.ImageID].Snapshots[0]
	if c.snapshots[snap].Tags[pipeline.TagRunID] != testRunID {
		t.Errorf("snapshot %s tags %v, want the run's", snap, c.snapshots[snap].Tags)
	}
}

func TestCreateImageTwiceCreatesOnce(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := stoppedBase(t, c)
	first := mustRun(t)(c.stages().CreateImage(ctx, doc))
	for _, state := range []string{"pending", "available"} {
		c.setImageState(first.Resources.Image.ImageID, state, "")
		mark := c.mark()
		second := mustRun(t)(c.stages().CreateImage(ctx, doc))
		if m := c.mutations(mark); len(m) != 0 {
			t.Errorf("image %s: second run changed things: %v", state, m)
		}
		if second.Resources.Image.ImageID != first.Resources.Image.ImageID {
			t.Errorf("image %s: second run recorded %s, first %s", state, second.Resources.Image.ImageID, first.Resources.Image.ImageID)
		}
	}
}

// A failed image keeps its name until deregistered: the next attempt needs another.
func TestCreateImageAfterAFailedImage(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := stoppedBase(t, c)
	first := mustRun(t)(c.stages().CreateImage(ctx, doc))
	c.setImageState(first.Resources.Image.ImageID, "failed", "Client.InternalError")
	second := mustRun(t)(c.stages().CreateImage(ctx, doc))
	if second.Resources.Image.ImageID == first.Resources.Image.ImageID {
		t.Fatal("reused a failed image")
	}
	names := fakeInputs[ec2.CreateImageInput](c, "CreateImage")
	if len(names) != 2 || aws.ToString(names[1].Name) == aws.ToString(names[0].Name) ||
		!strings.HasPrefix(aws.ToString(names[1].Name), "amifleet-"+testRunID+"-image-") {
		t.Errorf("names %q then %q", aws.ToString(names[0].Name), aws.ToString(names[len(names)-1].Name))
	}
}

// The name is held by an image that the tag lookup did not find.
func TestCreateImageNameTaken(t *testing.T) {
	tests := []struct {
		name      string
		tags      map[string]string
		state     string
		wantReuse bool
		wantError bool
	}{
		{"this run's image, missed by the tag lookup", map[string]string{pipeline.TagRunID: testRunID}, "available", true, false},
		{"someone else's image", map[string]string{"owner": "bob"}, "available", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCloud(t)
			doc := stoppedBase(t, c)
			c.images["ami-0taken"] = &fakeImage{ID: "ami-0taken", Name: "amifleet-" + testRunID + "-image",
				OwnerID: fakeAccount, State: tc.state, RootDevice: fakeRootDevice, Tags: tc.tags}
			c.order = append(c.order, "ami-0taken")
			out, err := c.stages().CreateImage(context.Background(), doc)
			if tc.wantError {
				var se *pipeline.StageError
				if !errors.As(err, &se) {
					t.Fatalf("got %v, want a StageError refusing to adopt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantReuse && out.Resources.Image.ImageID != "ami-0taken" {
				t.Errorf("image %s, want ami-0taken reused", out.Resources.Image.ImageID)
			}
		})
	}
}

func TestUndoImage(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	doc := mustRun(t)(s.CreateImage(ctx, stoppedBase(t, c)))
	imageID := doc.Resources.Image.ImageID
	snap := c.images[imageID].Snapshots[0]
	c.setImageState(imageID, "available", "")

	remaining, err := s.undoImage(ctx, testRunID)
	if err != nil || len(remaining) != 0 {
		t.Fatalf("remaining %v, error %v", remaining, err)
	}
	dereg := fakeInputs[ec2.DeregisterImageInput](c, "DeregisterImage")
	del := fakeInputs[ec2.DeleteSnapshotInput](c, "DeleteSnapshot")
	if len(dereg) != 1 || aws.ToString(dereg[0].ImageId) != imageID || len(del) != 1 || aws.ToString(del[0].SnapshotId) != snap {
		t.Errorf("deregistered %v, deleted %v; want %s then %s", dereg, del, imageID, snap)
	}
	for _, left := range c.tagged(testRunID) {
		if strings.HasPrefix(left, "image") || strings.HasPrefix(left, "snapshot") {
			t.Errorf("left behind: %s", left)
		}
	}
	if _, ok := c.images[fakeBaseImage]; !ok {
		t.Error("undoImage deregistered the public source AMI")
	}

	mark := c.mark()
	if remaining, err = s.undoImage(ctx, testRunID); err != nil || len(remaining) != 0 {
		t.Fatalf("second undo: remaining %v, error %v", remaining, err)
	}
	if m := c.mutations(mark); len(m) != 0 {
		t.Errorf("second undo changed things: %v", m)
	}
}

func TestUndoImageSnapshotStillInUse(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	doc := mustRun(t)(s.CreateImage(ctx, stoppedBase(t, c)))
	c.setImageState(doc.Resources.Image.ImageID, "available", "")
	// The deregistration has not taken effect yet: the snapshot is still in use.
	c.failOnce("DeregisterImage", fakeErr("InvalidAMIID.Unavailable", "being deregistered"))
	remaining, err := s.undoImage(ctx, testRunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(remaining) != 1 || !strings.Contains(remaining[0], "snapshot") {
		t.Fatalf("remaining = %v, want the snapshot in use", remaining)
	}
	if remaining, err = s.undoImage(ctx, testRunID); err != nil || len(remaining) != 0 {
		t.Fatalf("next undo: remaining %v, error %v", remaining, err)
	}
	if _, ok := c.images[doc.Resources.Image.ImageID]; ok {
		t.Error("image still registered")
	}
}

func TestUndoImageReportsOtherErrors(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := mustRun(t)(c.stages().CreateImage(ctx, stoppedBase(t, c)))
	c.setImageState(doc.Resources.Image.ImageID, "available", "")
	c.failOnce("DeregisterImage", fakeErr("UnauthorizedOperation", "no"))
	if _, err := c.stages().undoImage(ctx, testRunID); ErrorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("got %v, want the UnauthorizedOperation error", err)
	}
}

// An AMI still pending is not gone: deregistering it now would leave the snapshot it
// is still taking. It stays remaining, and goes once it is available.
func TestUndoImageWaitsForAPendingImage(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	doc := mustRun(t)(s.CreateImage(ctx, stoppedBase(t, c)))
	imageID := doc.Resources.Image.ImageID
	if st := c.images[imageID].State; st != "pending" {
		t.Fatalf("image %s, want it pending", st)
	}
	remaining, err := s.undoImage(ctx, testRunID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(remaining, func(r string) bool { return strings.Contains(r, imageID) && strings.Contains(r, "pending") }) {
		t.Fatalf("remaining %v, want the pending image %s", remaining, imageID)
	}
	if n := c.count("DeregisterImage"); n != 0 {
		t.Errorf("%d DeregisterImage calls on a pending image", n)
	}
	if _, ok := c.images[imageID]; !ok {
		t.Fatal("the pending image is gone")
	}

	c.setImageState(imageID, "available", "")
	if remaining, err = s.undoImage(ctx, testRunID); err != nil || len(remaining) != 0 {
		t.Fatalf("once available: remaining %v, error %v", remaining, err)
	}
	if _, ok := c.images[imageID]; ok {
		t.Error("the image is still registered once available")
	}
}
