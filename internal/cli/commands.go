package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/internal/stages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Run starts the Pipeline with the plan's name and input, or, when an execution
// of that name exists already, follows that one: the same --name never starts a
// second fleet. With plan.Wait it follows the execution to its end.
func (r *Runner) Run(ctx context.Context, plan RunPlan) error {
	sm, err := r.Machines.Pipeline(ctx)
	if err != nil {
		return err
	}
	if plan.Renamed {
		fmt.Fprintf(r.Stderr, "amifleet: --name %q runs as %q (execution names allow A-Z a-z 0-9 - _, at most %d characters)\n",
			plan.Requested, plan.Name, MaxExecutionNameLength)
	}
	if err := r.startAndFollow(ctx, sm, plan.Name, plan.RunID, plan.Input, plan.Wait, plan.Timeout); err != nil || !plan.Wait {
		return err
	}
	// A fleet whose load balancer admits no Lambda was not looked at by its Verify
	// stage: look from here, as `amifleet verify` does.
	desc, res, err := r.lookup(ctx, plan.Name)
	if err != nil {
		return err
	}
	var doc pipeline.Document
	if desc.Output == nil || json.Unmarshal([]byte(*desc.Output), &doc) != nil || doc.Resources.Verify == nil || !doc.Resources.Verify.LookFromHere {
		return nil
	}
	v, err := r.lookFromHere(ctx, doc, VerifyOptions{})
	if err != nil {
		return exitf(ExitFailed, "%s: its Verify stage could not look, and from here: %v", res.Name, err)
	}
	fmt.Fprintf(r.progress(), "verify from here: passed: %s\n", v.Reason)
	return nil
}

// Teardown starts the Teardown state machine for a run id, and with wait follows
// it to its end.
func (r *Runner) Teardown(ctx context.Context, runID string, wait bool, timeout time.Duration) error {
	if err := CheckRunID(runID); err != nil {
		return err
	}
	sm, err := r.Machines.Teardown(ctx)
	if err != nil {
		return err
	}
	input, _ := json.Marshal(pipeline.TeardownInput{RunID: runID}) // cannot fail
	name := "teardown-" + runID + "-" + r.now().UTC().Format("20060102T150405Z")
	return r.startAndFollow(ctx, sm, name, runID, string(input), wait, timeout)
}

// Abort stops a running Pipeline execution and starts the Teardown for its run: a
// stopped execution runs no Cleanup (Step Functions ends it where it is), so its
// resources would stay. The Teardown waits pipeline.CreateTimeoutSeconds first: a
// create the stop cut short may still be running in its Lambda, and would land after
// Cleanup looked. An execution that has ended already is only torn down.
func (r *Runner) Abort(ctx context.Context, execution string, wait bool, timeout time.Duration) error {
	desc, res, err := r.lookup(ctx, execution)
	if err != nil {
		return err
	}
	if res.RunID == "" {
		return exitf(ExitUsage, "%s: no run id in its input or output: not a Pipeline execution?", res.Name)
	}
	p := r.progress()
	if r.isRefresh(ctx, aws.ToString(desc.StateMachineArn)) {
		// A refresh's run is live: stopping the refresh must not tear the fleet down.
		if desc.Status != types.ExecutionStatusRunning {
			return exitf(ExitUsage, "%s is a refresh of run %s and has ended (%s): nothing to abort; the fleet is not torn down (amifleet teardown --run-id %s does that)",
				res.Name, res.RunID, desc.Status, res.RunID)
		}
		if _, err := r.SFN.StopExecution(ctx, &sfn.StopExecutionInput{
			ExecutionArn: desc.ExecutionArn,
			Error:        aws.String("Aborted"),
			Cause:        aws.String("stopped by amifleet abort; the next refresh of run " + res.RunID + " (or its Teardown) removes what it made"),
		}); err != nil {
			return fmt.Errorf("stop execution %s: %w", res.Name, err)
		}
		fmt.Fprintf(p, "stopped the refresh %s of run %s: the generation that served keeps serving; the next refresh takes its lock over and removes what it made\n",
			res.Name, res.RunID)
		return nil
	}
	if desc.Status == types.ExecutionStatusRunning {
		if _, err := r.SFN.StopExecution(ctx, &sfn.StopExecutionInput{
			ExecutionArn: desc.ExecutionArn,
			Error:        aws.String("Aborted"),
			Cause:        aws.String("stopped by amifleet abort; the Teardown of run " + res.RunID + " deletes what it made"),
		}); err != nil {
			return fmt.Errorf("stop execution %s: %w", res.Name, err)
		}
		fmt.Fprintf(p, "stopped %s (run id %s)\n", res.Name, res.RunID)
	} else {
		fmt.Fprintf(p, "%s has ended (%s): tearing down run %s\n", res.Name, desc.Status, res.RunID)
	}
	sm, err := r.Machines.Teardown(ctx)
	if err != nil {
		return err
	}
	input, _ := json.Marshal(pipeline.TeardownInput{RunID: res.RunID, DelaySeconds: pipeline.CreateTimeoutSeconds}) // cannot fail
	name := "teardown-" + res.RunID + "-abort-" + r.now().UTC().Format("20060102T150405Z")
	fmt.Fprintf(p, "the teardown waits %d s for a create still in flight, then deletes everything tagged %s=%s\n",
		pipeline.CreateTimeoutSeconds, pipeline.TagRunID, res.RunID)
	return r.startAndFollow(ctx, sm, name, res.RunID, string(input), wait, timeout)
}

// isRefresh reports whether stateMachine is the Refresh state machine: the stack's, or
// one named as the CDK names it (<stack>-Refresh).
func (r *Runner) isRefresh(ctx context.Context, stateMachine string) bool {
	if stateMachine == "" {
		return false
	}
	if arn, err := r.Machines.Refresh(ctx); err == nil && arn == stateMachine {
		return true
	}
	return strings.HasSuffix(stateMachine, "-Refresh")
}

func (r *Runner) startAndFollow(ctx context.Context, stateMachine, name, runID, input string, wait bool, timeout time.Duration) error {
	arn, existing, err := r.start(ctx, stateMachine, name, input)
	if err != nil {
		return err
	}
	p := r.progress()
	if existing != nil {
		fmt.Fprintf(p, "execution %s already exists (%s, started %s): following it, not starting another\n",
			name, existing.Status, aws.ToTime(existing.StartDate).In(r.loc()).Format(time.DateTime))
		if !sameJSON(aws.ToString(existing.Input), input) {
			fmt.Fprintf(r.Stderr, "amifleet: note: %s was started with another input; this input is not used\n", name)
		}
	} else {
		fmt.Fprintf(p, "started %s (run id %s)\n  %s\n", name, runID, arn)
	}

	if !wait {
		desc := existing
		if desc == nil {
			if desc, err = r.describe(ctx, arn); err != nil {
				return err
			}
		}
		res := resultOf(desc)
		res.AlreadyStarted = existing != nil
		if !ended(desc.Status) {
			fmt.Fprintf(p, "follow it with: amifleet watch %s\n", name)
		}
		return r.report(res, desc.Status)
	}
	return r.followToEnd(ctx, arn, timeout, existing != nil)
}

// start starts an execution, or finds the one that already has that name. It
// looks first: Step Functions answers a StartExecution with the name and input of a
// running execution with that execution, as if it had just started it, and the
// user must hear that nothing new was started.
func (r *Runner) start(ctx context.Context, stateMachine, name, input string) (string, *sfn.DescribeExecutionOutput, error) {
	arn := executionARN(stateMachine, name)
	if desc, err := r.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)}); err == nil {
		return arn, desc, nil
	} else if missing := (*types.ExecutionDoesNotExist)(nil); !errors.As(err, &missing) {
		return "", nil, fmt.Errorf("look for execution %s: %w", name, err)
	}
	out, err := r.SFN.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(stateMachine),
		Name:            aws.String(name),
		Input:           aws.String(input),
	})
	if err == nil {
		return aws.ToString(out.ExecutionArn), nil, nil
	}
	// Started by someone else since we looked (a concurrent retry).
	var exists *types.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		return "", nil, fmt.Errorf("start execution %s: %w", name, err)
	}
	desc, err := r.describe(ctx, arn)
	if err != nil {
		return "", nil, fmt.Errorf("execution %s already exists, but: %w", name, err)
	}
	return arn, desc, nil
}

// Watch follows an execution (ARN or name) until it ends or timeout.
func (r *Runner) Watch(ctx context.Context, execution string, timeout time.Duration) error {
	arn, err := r.resolve(ctx, execution)
	if err != nil {
		return err
	}
	return r.followToEnd(ctx, arn, timeout, false)
}

// followToEnd prints the execution's history as it grows, then its result; the
// error carries the exit code of how it ended.
func (r *Runner) followToEnd(ctx context.Context, arn string, timeout time.Duration, alreadyStarted bool) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	desc, err := r.follow(wctx, arn)
	if err != nil && wctx.Err() == nil {
		return err
	}
	if err != nil {
		// Timed out (or interrupted): say where the execution is, and that it goes on.
		if desc == nil {
			desc = &sfn.DescribeExecutionOutput{ExecutionArn: aws.String(arn), Status: types.ExecutionStatusRunning}
		}
		res := resultOf(desc)
		res.AlreadyStarted = alreadyStarted
		why := fmt.Sprintf("timed out after %s", timeout)
		if errors.Is(wctx.Err(), context.Canceled) {
			why = "interrupted"
		}
		res.Cause = fmt.Sprintf("%s waiting for the execution, which is still %s: amifleet watch %s", why, res.Status, res.Name)
		r.summary(r.progress(), res)
		if r.json() {
			if err := r.writeDoc(res); err != nil {
				return err
			}
		}
		return &ExitError{Code: ExitTimeout}
	}
	res := resultOf(desc)
	res.AlreadyStarted = alreadyStarted
	if err := r.addKept(ctx, arn, &res); err != nil {
		return err
	}
	return r.report(res, desc.Status)
}

// report prints an execution's result: the summary for people, and with JSON
// output the one document on stdout. The exit code follows the status.
func (r *Runner) report(res Result, status types.ExecutionStatus) error {
	r.summary(r.progress(), res)
	if r.json() {
		if err := r.writeDoc(res); err != nil {
			return err
		}
	}
	if code := statusExit(status); code != ExitOK {
		return &ExitError{Code: code}
	}
	return nil
}

// follow prints new history events every poll interval until the execution ends
// or ctx is done; it returns the last description it read.
func (r *Runner) follow(ctx context.Context, arn string) (*sfn.DescribeExecutionOutput, error) {
	h := newHistory(r.SFN, arn, r.progress(), r.loc())
	if r.jsonl() {
		h.w, h.jsonl = r.Stdout, true
	}
	var last *sfn.DescribeExecutionOutput
	for {
		// Describe first: once it says the execution ended, the history read
		// after it holds every event.
		desc, err := r.describe(ctx, arn)
		if err != nil {
			return last, err
		}
		last = desc
		if err := h.poll(ctx); err != nil {
			return last, err
		}
		if ended(desc.Status) {
			return desc, nil
		}
		t := time.NewTimer(r.interval())
		select {
		case <-ctx.Done():
			t.Stop()
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// lookup finds an execution by ARN or name and reads its result.
func (r *Runner) lookup(ctx context.Context, execution string) (*sfn.DescribeExecutionOutput, Result, error) {
	arn, err := r.resolve(ctx, execution)
	if err != nil {
		return nil, Result{}, err
	}
	desc, err := r.describe(ctx, arn)
	if err != nil {
		return nil, Result{}, err
	}
	return desc, resultOf(desc), nil
}

func (r *Runner) describe(ctx context.Context, arn string) (*sfn.DescribeExecutionOutput, error) {
	out, err := r.SFN.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		var missing *types.ExecutionDoesNotExist
		if errors.As(err, &missing) {
			return nil, exitf(ExitUsage, "no execution %s", arn)
		}
		return nil, fmt.Errorf("describe execution %s: %w", executionName(arn), err)
	}
	return out, nil
}

// resolve turns an execution ARN or name into an ARN. A name is looked up in the
// Pipeline, or, for "teardown-..." names, in the Teardown state machine.
func (r *Runner) resolve(ctx context.Context, execution string) (string, error) {
	if strings.HasPrefix(execution, "arn:") {
		a, err := arn.Parse(execution)
		if parts := strings.Split(a.Resource, ":"); err != nil || a.Service != "states" || len(parts) != 3 || parts[0] != "execution" {
			return "", exitf(ExitUsage, "%q is not an execution ARN (arn:aws:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME)", execution)
		}
		return execution, nil
	}
	if execution == "" {
		return "", exitf(ExitUsage, "no execution name or ARN")
	}
	// Sanitised as `run --name` does, so the name given to run finds its execution.
	execution = SanitizeExecutionName(execution)
	machine := r.Machines.Pipeline
	switch {
	case strings.HasPrefix(execution, "teardown-"):
		machine = r.Machines.Teardown
	case strings.HasPrefix(execution, "refresh-"):
		machine = r.Machines.Refresh
	}
	sm, err := machine(ctx)
	if err != nil {
		return "", err
	}
	return executionARN(sm, execution), nil
}

// Status prints an execution's status; the exit code follows it (a running
// execution is 0).
func (r *Runner) Status(ctx context.Context, execution string) error {
	desc, res, err := r.lookup(ctx, execution)
	if err != nil {
		return err
	}
	if err := r.addKept(ctx, aws.ToString(desc.ExecutionArn), &res); err != nil {
		return err
	}
	r.addServing(ctx, &res)
	if r.json() {
		if err := r.writeDoc(res); err != nil {
			return err
		}
	} else {
		r.summary(r.Stdout, res)
	}
	if code := statusExit(desc.Status); code != ExitOK {
		return &ExitError{Code: code}
	}
	return nil
}

// Outputs prints what a succeeded run created, and its URL.
func (r *Runner) Outputs(ctx context.Context, execution string) error {
	desc, res, err := r.lookup(ctx, execution)
	if err != nil {
		return err
	}
	if desc.Status != types.ExecutionStatusSucceeded {
		r.summary(r.Stderr, res)
		code := statusExit(desc.Status)
		if code == ExitOK {
			code = ExitFailed
		}
		return exitf(code, "%s has no outputs: it is %s", res.Name, desc.Status)
	}
	r.addServing(ctx, &res)
	if r.json() {
		return r.writeDoc(res)
	}
	r.outputs(r.Stdout, res)
	return nil
}

// List prints the Pipeline's most recent executions, newest first.
func (r *Runner) List(ctx context.Context, max int) error {
	if max <= 0 {
		return exitf(ExitUsage, "--max must be at least 1")
	}
	sm, err := r.Machines.Pipeline(ctx)
	if err != nil {
		return err
	}
	var items []types.ExecutionListItem
	pages := sfn.NewListExecutionsPaginator(r.SFN, &sfn.ListExecutionsInput{StateMachineArn: aws.String(sm)},
		func(o *sfn.ListExecutionsPaginatorOptions) { o.Limit = int32(min(max, 1000)) })
	for len(items) < max && pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list executions: %w", err)
		}
		items = append(items, out.Executions...)
	}
	if len(items) > max {
		items = items[:max]
	}
	results := make([]Result, 0, len(items))
	for _, it := range items {
		res := Result{
			ExecutionARN: aws.ToString(it.ExecutionArn),
			Name:         aws.ToString(it.Name),
			Status:       string(it.Status),
			StartDate:    it.StartDate,
			StopDate:     it.StopDate,
		}
		res.RunID, _ = pipeline.RunIDFromExecutionName(res.Name)
		results = append(results, res)
	}
	if r.json() {
		return r.writeDoc(struct {
			Executions []Result `json:"executions"`
		}{results})
	}
	tw := tabwriter.NewWriter(r.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tSTARTED\tTOOK\tRUN ID")
	for _, res := range results {
		started, took := "", ""
		if res.StartDate != nil {
			started = res.StartDate.In(r.loc()).Format(time.DateTime)
			if res.StopDate != nil {
				took = duration(res.StopDate.Sub(*res.StartDate))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", res.Name, res.Status, started, took, res.RunID)
	}
	return tw.Flush()
}

// sameJSON reports whether two JSON texts hold the same value.
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return a == b
	}
	return reflect.DeepEqual(va, vb)
}

// VerifyOptions sets `amifleet verify`.
type VerifyOptions struct {
	// Requests and Timeout bound the GETs (defaults: the run's config.verify).
	Requests int
	Timeout  time.Duration
	// HTTP sends them (its Transport's proxy settings from the environment apply).
	HTTP *http.Client
}

// Verify fetches a succeeded run's pages from here, as its Verify stage does from the
// function: every answer 200, and as many distinct pages as the stage requires. It
// prints what it saw; a failure exits ExitFailed. This is how a run whose load
// balancer admits only the user's ranges is checked (its Verify stage cannot look).
func (r *Runner) Verify(ctx context.Context, execution string, opts VerifyOptions) error {
	desc, res, err := r.lookup(ctx, execution)
	if err != nil {
		return err
	}
	var doc pipeline.Document
	if desc.Status != types.ExecutionStatusSucceeded || desc.Output == nil || json.Unmarshal([]byte(*desc.Output), &doc) != nil {
		return exitf(ExitFailed, "%s has no fleet to verify: it is %s", res.Name, desc.Status)
	}
	v, lookErr := r.lookFromHere(ctx, doc, opts)
	url := doc.Resources.LoadBalancer.Address()
	if r.json() {
		out := struct {
			Name   string                 `json:"name"`
			URL    string                 `json:"url"`
			Verify *pipeline.VerifyResult `json:"verify,omitempty"`
			Error  string                 `json:"error,omitempty"`
		}{Name: res.Name, URL: url, Verify: v}
		if lookErr != nil {
			out.Error = lookErr.Error()
		}
		if err := r.writeDoc(out); err != nil {
			return err
		}
	} else if lookErr == nil {
		fmt.Fprintf(r.Stdout, "passed: %s\n", v.Reason)
	}
	if lookErr != nil {
		return exitf(ExitFailed, "verify %s failed: %v", res.Name, lookErr)
	}
	return nil
}

// lookFromHere fetches the fleet's pages from this machine (stages.Look).
func (r *Runner) lookFromHere(ctx context.Context, doc pipeline.Document, opts VerifyOptions) (*pipeline.VerifyResult, error) {
	url := doc.Resources.LoadBalancer.Address()
	if url == "" {
		return nil, errors.New("no load balancer address in the run's output")
	}
	requests, timeout := opts.Requests, opts.Timeout
	if requests <= 0 {
		requests = max(doc.Config.Verify.Requests, 1)
	}
	if timeout <= 0 {
		timeout = time.Duration(max(doc.Config.Verify.TimeoutSeconds, 1)) * time.Second
	}
	need := 1
	if doc.Resources.Fleet != nil {
		need = max(min(len(doc.Resources.Fleet.InstanceIDs), 2), 1)
	}
	client := opts.HTTP
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}}
	}
	return stages.Look(ctx, client, url, requests, timeout, need, doc.Config.PageTemplate)
}
