package pipeline_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// TestParseRefreshInput: a refresh's input is read strictly, and what its overrides
// are worth on their own is refused by field, before anything starts.
func TestParseRefreshInput(t *testing.T) {
	for _, c := range []struct{ input, field string }{
		{``, "runId"},
		{`{}`, "runId"},
		{`{"runId": "Not A Run"}`, "runId"},
		{`{"runId": "web", "replicaCount": 3}`, "replicaCount"},
		{`{"runId": "web", "pageTemplate": "no hostname"}`, "pageTemplate"},
		{`{"runId": "web", "instanceType": "huge"}`, "instanceType"},
		{`{"runId": "web", "imageId": "not-an-ami"}`, "imageId"},
		{`{"runId": "web", "poll": {"maxPols": {}}}`, "poll.maxPols"},
	} {
		_, err := pipeline.ParseRefreshInput([]byte(c.input))
		var bad *pipeline.BadInputError
		if !errors.As(err, &bad) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("ParseRefreshInput(%s) = %v; want a BadInputError naming %s", c.input, err, c.field)
		}
	}
	in, err := pipeline.ParseRefreshInput([]byte(`{"runId": "web", "pageTemplate": "<p>{hostname}</p>", "instanceType": "t3.small"}`))
	if err != nil || in.RunID != "web" || in.PageTemplate != "<p>{hostname}</p>" || in.InstanceType != "t3.small" {
		t.Errorf("ParseRefreshInput = %+v, %v", in, err)
	}
}

// TestRefreshApply: the new generation's config is the run's with the overrides;
// without an imageId it is baked from the latest image, never the old source; the
// poll settings merge key by key over the run's.
func TestRefreshApply(t *testing.T) {
	run := pipeline.DefaultConfig()
	run.ImageID = "ami-0123456789abcdef0"
	run.Poll.IntervalSeconds = 1
	run.Poll.MaxPolls.BaseStopped = 30
	run.ReplicaCount = 4
	raw := json.RawMessage(`{"runId": "web", "pageTemplate": "<b>{hostname}</b>", "poll": {"maxPolls": {"imageAvailable": 7}}}`)
	in, err := pipeline.ParseRefreshInput(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := in.Apply(run, raw)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ImageID != "" || cfg.PageTemplate != "<b>{hostname}</b>" || cfg.ReplicaCount != 4 || cfg.InstanceType != run.InstanceType {
		t.Errorf("Apply = image %q, page %q, replicas %d, type %s; want the latest image, the new page, the run's count and type",
			cfg.ImageID, cfg.PageTemplate, cfg.ReplicaCount, cfg.InstanceType)
	}
	if p := cfg.Poll; p.IntervalSeconds != 1 || p.MaxPolls.BaseStopped != 30 || p.MaxPolls.ImageAvailable != 7 ||
		p.MaxPolls.TargetsHealthy != run.Poll.MaxPolls.TargetsHealthy {
		t.Errorf("poll %+v: want the run's, with maxPolls.imageAvailable 7", p)
	}
	withImage := json.RawMessage(`{"runId": "web", "imageId": "ami-0fedcba9876543210"}`)
	in, _ = pipeline.ParseRefreshInput(withImage)
	if cfg, err := in.Apply(run, withImage); err != nil || cfg.ImageID != "ami-0fedcba9876543210" || cfg.PageTemplate != run.PageTemplate {
		t.Errorf("Apply with an imageId = %q, page %q, %v", cfg.ImageID, cfg.PageTemplate, err)
	}
	if got := pipeline.RefreshExecutionName("web", time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)); got != "refresh-web-20270102T030405Z" {
		t.Errorf("RefreshExecutionName = %s", got)
	}
}
