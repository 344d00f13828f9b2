package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// keptState is the Fail state of a failed run whose resources were kept
// (config.keepOnFailure).
const keptState = "KeptAfterFailure"

// Kept is what a failed run with keepOnFailure left for debugging, as its Cleanup
// found it, and the Teardown that deletes it.
type Kept struct {
	// Resources carry the run's tag, one "kind id (details)" a line.
	Resources []string `json:"resources"`
	// Teardown is the name of the Teardown execution that deletes them.
	Teardown             string `json:"teardown"`
	TeardownAfterMinutes int    `json:"teardownAfterMinutes"`
	// TeardownAt is when it deletes them: its start plus its delay.
	TeardownAt *time.Time `json:"teardownAt,omitempty"`
	// TeardownStatus is that execution's status: RUNNING while it waits.
	TeardownStatus string `json:"teardownStatus,omitempty"`
}

// addKept fills in res.Kept when the execution failed and kept its resources:
// from the document its last state was entered with, and from the Teardown
// execution, whose start and delay say when it deletes them.
func (r *Runner) addKept(ctx context.Context, arn string, res *Result) error {
	if res.Status != string(types.ExecutionStatusFailed) {
		return nil
	}
	out, err := r.SFN.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{
		ExecutionArn: aws.String(arn), ReverseOrder: true, MaxResults: 5})
	if err != nil {
		return fmt.Errorf("read the history of %s: %w", executionName(arn), err)
	}
	var doc *pipeline.Document
	for _, e := range out.Events {
		d := e.StateEnteredEventDetails
		if e.Type != types.HistoryEventTypeFailStateEntered || d == nil || aws.ToString(d.Name) != keptState {
			continue
		}
		var in pipeline.Document
		if err := json.Unmarshal([]byte(aws.ToString(d.Input)), &in); err != nil || in.Kept == nil {
			return fmt.Errorf("%s of %s: no kept resources in its input", keptState, executionName(arn))
		}
		doc = &in
		break
	}
	if doc == nil {
		return nil
	}
	k := &Kept{
		Resources:            doc.Kept.Resources,
		Teardown:             doc.Kept.Teardown,
		TeardownAfterMinutes: doc.Kept.TeardownAfterMinutes,
		TeardownAt:           doc.Kept.TeardownAt,
	}
	if res.Resources == nil && !emptyResources(doc.Resources) {
		res.Resources = &doc.Resources
	}
	res.Kept = k
	sm, err := r.Machines.Teardown(ctx)
	if err != nil {
		return err
	}
	td, err := r.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(executionARN(sm, k.Teardown))})
	var missing *types.ExecutionDoesNotExist
	switch {
	case errors.As(err, &missing):
		k.TeardownStatus = "NOT FOUND"
		return nil
	case err != nil:
		return fmt.Errorf("describe the teardown %s: %w", k.Teardown, err)
	}
	k.TeardownStatus = string(td.Status)
	var in pipeline.TeardownInput
	if td.StartDate != nil && json.Unmarshal([]byte(aws.ToString(td.Input)), &in) == nil {
		at := td.StartDate.Add(time.Duration(in.DelaySeconds) * time.Second)
		k.TeardownAt = &at
	}
	return nil
}

// keptRows are the summary's lines about kept resources.
func (r *Runner) keptRows(res Result) [][2]string {
	k := res.Kept
	if k == nil {
		return nil
	}
	rows := [][2]string{{"kept", fmt.Sprintf("%d resources with the tag %s=%s, for debugging", len(k.Resources), pipeline.TagRunID, res.RunID)}}
	for _, line := range k.Resources {
		rows = append(rows, [2]string{"", line})
	}
	when := fmt.Sprintf("after %d minutes", k.TeardownAfterMinutes)
	if k.TeardownAt != nil {
		when = k.TeardownAt.In(r.loc()).Format(time.DateTime + " MST")
		if left := k.TeardownAt.Sub(r.now()); left > 0 {
			when += " (in " + duration(left) + ")"
		}
	}
	status := ""
	if k.TeardownStatus != "" {
		status = ", " + strings.ToLower(k.TeardownStatus)
	}
	rows = append(rows,
		[2]string{"deleted at", fmt.Sprintf("%s by %s%s", when, k.Teardown, status)},
		[2]string{"delete now", "amifleet teardown --run-id " + res.RunID})
	return rows
}
