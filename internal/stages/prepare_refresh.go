package stages

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// PrepareRefresh is the Refresh state machine's first stage, its Validate: it reads
// the input strictly (pipeline.ParseRefreshInput), reads the run's record, builds the
// new generation's configuration from the run's with the input's overrides, checks
// it against the account as Validate does (the new fleet's vCPUs beside those
// running, the old fleet's included: both generations serve for a while), and, last,
// takes the run's lock with a conditional write that allocates the next generation.
//
// A run with no record, or one being torn down, is refused with RunNotFoundError; a
// run another refresh holds, with RefreshInProgressError. A lock whose holder no
// longer runs (failed, stopped, timed out) is taken over: what that refresh left is
// pruned with every generation that does not serve. Nothing is created, so every
// failure goes straight to a Fail state. It has no undo.
func (s *Stages) PrepareRefresh(ctx context.Context, in pipeline.ValidateInput) (pipeline.Document, error) {
	if in.ExecutionID == "" || in.StartTime == "" {
		return pipeline.Document{}, &pipeline.StageError{Err: errors.New(
			"the PrepareRefresh task passed no executionId or startTime ($$.Execution.Id, $$.Execution.StartTime): " +
				"the refresh's lock and idempotency tokens are derived from them")}
	}
	input, err := pipeline.ParseRefreshInput(in.Input)
	if err != nil {
		return pipeline.Document{}, err
	}
	rec, err := s.getRun(ctx, input.RunID)
	if err != nil {
		return pipeline.Document{}, err
	}
	if err := refreshable(input.RunID, rec); err != nil {
		return pipeline.Document{}, err
	}
	cfg, err := input.Apply(rec.Document.Config, in.Input)
	if err != nil {
		return pipeline.Document{}, err
	}
	placement, estimate, err := s.checkFleet(ctx, cfg)
	if err != nil {
		return pipeline.Document{}, err
	}
	me := in.ExecutionID
	stale := ""
	if rec.Lock != nil && rec.Lock.Holder != me {
		if stale, err = s.staleHolder(ctx, input.RunID, rec.Lock); err != nil {
			return pipeline.Document{}, err
		}
	}

	gen := rec.LastGen + 1
	if rec.Lock != nil && rec.Lock.Holder == me {
		gen = rec.Lock.Building // a retry: the lock and the generation are already ours
	} else {
		won, err := s.lockRun(ctx, rec, me, stale, s.clock())
		if err != nil {
			return pipeline.Document{}, err
		}
		if !won {
			// Another writer came between the read and the write: read again to say who.
			now, err := s.getRun(ctx, input.RunID)
			if err != nil {
				return pipeline.Document{}, err
			}
			if err := refreshable(input.RunID, now); err != nil {
				return pipeline.Document{}, err
			}
			if now.Lock == nil || now.Lock.Holder != me {
				return pipeline.Document{}, inProgress(input.RunID, now.Lock)
			}
			gen = now.Lock.Building
		}
	}

	old := rec.Document
	doc := pipeline.Document{
		RunID: input.RunID, Config: cfg, TokenSeed: tokenSeed(in.ExecutionID, in.StartTime), Generation: gen,
		Placement: placement, Estimate: estimate,
		Resources: pipeline.Resources{Network: old.Resources.Network, LoadBalancer: old.Resources.LoadBalancer},
		Refresh: &pipeline.Refresh{ExecutionID: me, TookOverFrom: stale, From: pipeline.GenerationRef{
			Generation: rec.Serving, ImageID: imageIDOf(old), InstanceIDs: fleetIDsOf(old)}},
	}
	Log(ctx).Info("refresh prepared", "generation", gen, "serving", rec.Serving, "instanceType", cfg.InstanceType,
		"imageId", cfg.ImageID, "tookOverFrom", stale)
	return doc, nil
}

// refreshable refuses a run without a live record.
func refreshable(runID string, rec *pipeline.RunRecord) error {
	switch {
	case rec == nil:
		return &pipeline.RunNotFoundError{RunID: runID, Reason: "it has no record: it was never made, has been torn down, " +
			"failed, or was made before refreshes existed (tear it down and run it again to refresh it later)"}
	case rec.State != pipeline.RunLive:
		return &pipeline.RunNotFoundError{RunID: runID, Reason: "it is being torn down"}
	case rec.Document.Resources.LoadBalancer == nil || rec.Document.Resources.Network == nil:
		return &pipeline.RunNotFoundError{RunID: runID, Reason: "its record names no load balancer or network"}
	}
	return nil
}

func inProgress(runID string, lock *pipeline.RunLock) error {
	e := &pipeline.RefreshInProgressError{RunID: runID, Holder: "another refresh"}
	if lock != nil {
		e.Holder, e.Since, e.Building = lock.Holder, lock.Since, lock.Building
	}
	return e
}

// staleHolder is the lock's holder when it no longer runs (its lock may be taken
// over), or a RefreshInProgressError when it does.
func (s *Stages) staleHolder(ctx context.Context, runID string, lock *pipeline.RunLock) (string, error) {
	if s.States == nil {
		return "", inProgress(runID, lock)
	}
	out, err := s.States.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(lock.Holder)})
	var missing *sfntypes.ExecutionDoesNotExist
	switch {
	case errors.As(err, &missing) || ErrorCode(err) == "ExecutionDoesNotExist":
		return lock.Holder, nil
	case err != nil:
		return "", fmt.Errorf("describe the refresh %s that holds run %s: %w", lock.Holder, runID, err)
	case out.Status == sfntypes.ExecutionStatusRunning || out.Status == sfntypes.ExecutionStatusPendingRedrive:
		return "", inProgress(runID, lock)
	}
	Log(ctx).Warn("taking over the lock of a refresh that no longer runs", "holder", lock.Holder, "status", string(out.Status),
		"building", lock.Building)
	return lock.Holder, nil
}

func imageIDOf(doc pipeline.Document) string {
	if doc.Resources.Image == nil {
		return ""
	}
	return doc.Resources.Image.ImageID
}

func fleetIDsOf(doc pipeline.Document) []string {
	if doc.Resources.Fleet == nil {
		return nil
	}
	return doc.Resources.Fleet.InstanceIDs
}
