package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// A refresh rolls a live run onto a new generation: a new base instance and image,
// new replicas behind the same load balancer, and only once they are healthy the old
// generation drained and deleted (docs/refresh.md). The run's live configuration and
// the one-refresh-at-a-time lock are one item per run in a DynamoDB table (RunRecord).

// EnvRunsTable names the DynamoDB table of run records in the environment of the
// functions that read or write it (RecordRun, PrepareRefresh, CommitGeneration,
// PruneGenerations, Cleanup). Without it, Cleanup has no record to remove and the
// refresh functions fail.
const EnvRunsTable = "AMIFLEET_RUNS_TABLE"

// Run record states.
const (
	// RunLive is a run whose fleet serves: it may be refreshed.
	RunLive = "live"
	// RunTearingDown is a run whose Cleanup has started: no refresh may start.
	RunTearingDown = "tearingDown"
)

// RunRecord is a live run's item in the runs table (partition key runId).
type RunRecord struct {
	RunID string
	// State is RunLive or RunTearingDown.
	State string
	// Serving is the generation behind the load balancer.
	Serving int
	// LastGen is the highest generation ever allocated: a refresh builds LastGen+1,
	// so a generation number is never reused, even after a failed refresh.
	LastGen int
	// Document is the serving generation's document (JSON): the config, placement
	// and resources a refresh starts from.
	Document Document
	// Lock is the refresh that holds the run; nil when none does.
	Lock *RunLock
	// UpdatedBy is the execution that last wrote the record.
	UpdatedBy string
}

// RunLock is a refresh's hold on its run.
type RunLock struct {
	// Holder is the Refresh execution's ARN.
	Holder string
	// Since is when it took the lock.
	Since time.Time
	// Building is the generation it builds.
	Building int
}

// Refresh is what a Refresh execution's document carries beside a Pipeline's.
type Refresh struct {
	// ExecutionID is the Refresh execution's ARN: the lock's holder.
	ExecutionID string `json:"executionId"`
	// From is the generation that served when the refresh started.
	From GenerationRef `json:"from"`
	// Committed is set once CommitGeneration has made this document's generation
	// the one that serves (the point of no return), or PruneGenerations found it so.
	Committed bool `json:"committed"`
	// TookOverFrom is the execution whose stale lock this refresh took over: what it
	// may have left is pruned like any generation that does not serve.
	TookOverFrom string `json:"tookOverFrom,omitempty"`
}

// GenerationRef names one generation's resources, as the CLI shows them.
type GenerationRef struct {
	Generation  int      `json:"generation"`
	ImageID     string   `json:"imageId,omitempty"`
	InstanceIDs []string `json:"instanceIds,omitempty"`
}

// RefreshInput is the Refresh state machine's input. Every field but runId is
// optional and overrides the run's own configuration for the new generation.
type RefreshInput struct {
	// RunID is the live run to refresh.
	RunID string `json:"runId"`
	// ImageID bakes the new generation from this AMI; empty means the latest image
	// named by the run's imageParameter (Amazon Linux 2023), never the run's old one.
	ImageID string `json:"imageId,omitempty"`
	// InstanceType changes the instance type of the new generation.
	InstanceType string `json:"instanceType,omitempty"`
	// PageTemplate changes the page the new generation serves.
	PageTemplate string `json:"pageTemplate,omitempty"`
	// Poll sets the refresh's waits, key by key over the run's own.
	Poll *PollConfig `json:"poll,omitempty"`
}

// ParseRefreshInput reads a Refresh input strictly (unknown fields and wrong types
// are refused by their JSON path) and checks runId.
func ParseRefreshInput(raw json.RawMessage) (RefreshInput, error) {
	var in RefreshInput
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return in, bad("runId", "is required: the run to refresh")
	}
	if err := decodeStrict(trimmed, &in); err != nil {
		return RefreshInput{}, err
	}
	switch {
	case in.RunID == "":
		return RefreshInput{}, bad("runId", "is required: the run to refresh")
	case !IsRunID(in.RunID):
		return RefreshInput{}, bad("runId", "%q is not an amifleet run id", in.RunID)
	}
	// What the overrides are worth on their own (a page without {hostname}, an
	// instance type or image id of the wrong form) is refused here, where the CLI
	// reads the input too, so that nothing starts; the poll settings only mean
	// something over the run's own, which PrepareRefresh checks (Apply).
	alone := in
	alone.Poll = nil
	if _, err := alone.Apply(DefaultConfig(), nil); err != nil {
		return RefreshInput{}, err
	}
	return in, nil
}

// Apply is the new generation's configuration: the run's own, with the input's
// overrides, checked by the Pipeline's rules. Without an imageId the new base is the
// latest image of the run's imageParameter, never the old generation's source.
func (in RefreshInput) Apply(run Config, raw json.RawMessage) (Config, error) {
	cfg := run
	cfg.ImageID = in.ImageID
	if in.InstanceType != "" {
		cfg.InstanceType = in.InstanceType
	}
	if in.PageTemplate != "" {
		cfg.PageTemplate = in.PageTemplate
	}
	if in.Poll != nil {
		// Key by key over the run's own: decode the input's poll again, over a copy.
		var fields struct {
			Poll json.RawMessage `json:"poll"`
		}
		if err := json.Unmarshal(raw, &fields); err != nil {
			return Config{}, bad("poll", "%v", err)
		}
		if err := json.Unmarshal(fields.Poll, &cfg.Poll); err != nil {
			return Config{}, bad("poll", "%v", err)
		}
	}
	// A refresh keeps the run's time to live and its failure handling: Teardown,
	// not Refresh, owns them.
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// RefreshExecutionName is the name `amifleet refresh` gives a refresh of runID
// started at t: refresh-<runId>-<UTC yyyymmddThhmmssZ>.
func RefreshExecutionName(runID string, t time.Time) string {
	return fmt.Sprintf("refresh-%s-%s", runID, t.UTC().Format("20060102T150405Z"))
}
