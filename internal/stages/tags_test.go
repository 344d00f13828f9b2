package stages

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

const testRunID = "run-1"

// testDoc is the document Validate makes of an input with a user tag.
func testDoc() pipeline.Document {
	doc := validatedDoc(testRunID)
	doc.Config.Tags = map[string]string{"team": "web", pipeline.TagRole: "user-cannot-override"}
	return doc
}

// validatedDoc is the document Validate makes of an empty input on the fake cloud,
// for an execution named runID: the defaults, the token seed, and the fake's default
// subnets' zones, which all offer t2.micro (1 vCPU).
func validatedDoc(runID string) pipeline.Document {
	return pipeline.Document{RunID: runID, Generation: pipeline.PipelineGeneration, Config: pipeline.DefaultConfig(),
		TokenSeed: tokenSeed(fakeExecutionARN(runID), fakeStartTime),
		Placement: &pipeline.Placement{Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c"}, VCPUs: 1}}
}

// fakeExecutionARN is the ARN of the Pipeline execution named name, and fakeStartTime
// when it started.
func fakeExecutionARN(name string) string {
	return "arn:aws:states:" + fakeRegion + ":" + fakeAccount + ":execution:AmiFleetPipeline:" + name
}

const fakeStartTime = "2026-11-27T12:00:00.000Z"

// mustRun takes a stage's answer and fails the test on error:
// mustRun(t)(s.LaunchBase(ctx, doc)).
func mustRun(t *testing.T) func(pipeline.Document, error) pipeline.Document {
	return func(doc pipeline.Document, err error) pipeline.Document {
		t.Helper()
		if err != nil {
			t.Fatalf("stage failed: %v", err)
		}
		return doc
	}
}

// withNetwork is a document after CreateSecurityGroups.
func withNetwork(t *testing.T, c *fakeCloud, doc pipeline.Document) pipeline.Document {
	t.Helper()
	return mustRun(t)(c.stages().CreateSecurityGroups(context.Background(), doc))
}

// withImage is a document after the whole image branch: base launched and
// stopped, image created and available.
func withImage(t *testing.T, c *fakeCloud, doc pipeline.Document) pipeline.Document {
	t.Helper()
	ctx, s := context.Background(), c.stages()
	doc = withNetwork(t, c, doc)
	doc = mustRun(t)(s.LaunchBase(ctx, doc))
	c.setInstanceState(doc.Resources.Image.BaseInstanceID, "stopped")
	doc = mustRun(t)(s.CreateImage(ctx, doc))
	c.setImageState(doc.Resources.Image.ImageID, "available", "")
	return mustRun(t)(s.CheckImageAvailable(ctx, doc))
}

// assertTags checks that tags are the run's tags for role, with the user's tags,
// and that a user tag cannot override the role.
func assertTags(t *testing.T, what string, tags []ec2types.Tag, role string) {
	t.Helper()
	got := map[string]string{}
	for _, tag := range tags {
		got[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	want := map[string]string{
		pipeline.TagRunID: testRunID,
		pipeline.TagRole:  role,
		pipeline.TagName:  pipeline.ResourceName(testRunID, role),
		"team":            "web",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: tag %s = %q, want %q (tags %v)", what, k, got[k], v, got)
		}
	}
}

// assertTagSpecs checks that specs tag exactly the resource types given, each with
// the run's tags for role.
func assertTagSpecs(t *testing.T, what string, specs []ec2types.TagSpecification, role string, types ...ec2types.ResourceType) {
	t.Helper()
	var got []ec2types.ResourceType
	for _, s := range specs {
		got = append(got, s.ResourceType)
		assertTags(t, what+" "+string(s.ResourceType), s.Tags, role)
	}
	if !slices.Equal(got, types) {
		t.Errorf("%s: tag specifications for %v, want %v", what, got, types)
	}
}

func assertBadInput(t *testing.T, err error, field string) {
	t.Helper()
	var bad *pipeline.BadInputError
	if !errors.As(err, &bad) {
		t.Fatalf("got %v (%T), want BadInputError for %s", err, err, field)
	}
	if bad.Field != field {
		t.Errorf("BadInputError field = %q, want %q (%v)", bad.Field, field, err)
	}
}

func assertResourceFailed(t *testing.T, err error, state string) *pipeline.ResourceFailedError {
	t.Helper()
	var rf *pipeline.ResourceFailedError
	if !errors.As(err, &rf) {
		t.Fatalf("got %v (%T), want ResourceFailedError", err, err)
	}
	if rf.State != state {
		t.Errorf("ResourceFailedError state = %q, want %q", rf.State, state)
	}
	return rf
}

func TestClientTokenFitsEC2Limit(t *testing.T) {
	long := strings.Repeat("r", pipeline.MaxRunIDLength)
	tests := []struct {
		runID string
		parts []string
	}{
		{"run-1", []string{"base"}},
		{long, []string{"replica", "subnet-0123456789abcdef0", "19"}},
	}
	for _, tc := range tests {
		tok := clientToken(tc.runID, tc.parts...)
		if len(tok) == 0 || len(tok) > 64 {
			t.Errorf("clientToken(%q, %v) = %q: %d characters, want 1 to 64", tc.runID, tc.parts, tok, len(tok))
		}
		if other := clientToken(tc.runID, append(tc.parts, "x")...); other == tok {
			t.Errorf("clientToken gives %q for two different requests", tok)
		}
	}
}

func TestSpreadIsEvenAndComplete(t *testing.T) {
	tests := []struct {
		n, k int
		want []int
	}{
		{2, 3, []int{1, 1, 0}},
		{5, 3, []int{2, 2, 1}},
		{6, 2, []int{3, 3}},
		{1, 6, []int{1, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		if got := spread(tc.n, tc.k); !slices.Equal(got, tc.want) {
			t.Errorf("spread(%d, %d) = %v, want %v", tc.n, tc.k, got, tc.want)
		}
	}
}
