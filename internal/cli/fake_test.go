package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

const (
	testPipelineARN = "arn:aws:states:us-east-1:123456789012:stateMachine:Pipeline"
	testTeardownARN = "arn:aws:states:us-east-1:123456789012:stateMachine:Teardown"
	testRefreshARN  = "arn:aws:states:us-east-1:123456789012:stateMachine:AmiFleet-Refresh"
)

// fakeExecution is an execution that moves one step on at every DescribeExecution:
// step i shows steps[i]'s status and the first steps[i].events history events.
type fakeExecution struct {
	desc   sfn.DescribeExecutionOutput
	events []types.HistoryEvent
	steps  []fakeStep
	step   int // the step the last DescribeExecution showed
}

type fakeStep struct {
	status types.ExecutionStatus
	events int
}

// fakeSFN is a hand-written Step Functions that records the requests it gets.
type fakeSFN struct {
	mu       sync.Mutex
	execs    map[string]*fakeExecution
	pageSize int // caps MaxResults, to make paging happen with a few events

	startErr error
	// scripts are the executions that StartExecution starts, by ARN.
	scripts map[string]*fakeExecution
	// racing are executions that appear just before StartExecution (started by
	// someone else), which then answers ExecutionAlreadyExists.
	racing map[string]*fakeExecution

	starts    []*sfn.StartExecutionInput
	describes []string
	histories []*sfn.GetExecutionHistoryInput
	lists     []*sfn.ListExecutionsInput
	listItems []types.ExecutionListItem
	stops     []*sfn.StopExecutionInput
}

func newFakeSFN() *fakeSFN {
	return &fakeSFN{execs: map[string]*fakeExecution{}, scripts: map[string]*fakeExecution{}, racing: map[string]*fakeExecution{}}
}

// script makes StartExecution start arn as add describes it.
func (f *fakeSFN) script(arn string, desc sfn.DescribeExecutionOutput, events []types.HistoryEvent, steps ...fakeStep) {
	f.add(arn, desc, events, steps...)
	f.scripts[arn] = f.execs[arn]
	delete(f.execs, arn)
}

// add registers an execution; with no steps it has ended with all its events.
func (f *fakeSFN) add(arn string, desc sfn.DescribeExecutionOutput, events []types.HistoryEvent, steps ...fakeStep) {
	desc.ExecutionArn = aws.String(arn)
	desc.Name = aws.String(executionName(arn))
	if len(steps) == 0 {
		steps = []fakeStep{{desc.Status, len(events)}}
	}
	f.execs[arn] = &fakeExecution{desc: desc, events: events, steps: steps, step: -1}
}

func (f *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, in)
	if f.startErr != nil {
		return nil, f.startErr
	}
	arn := executionARN(aws.ToString(in.StateMachineArn), aws.ToString(in.Name))
	if e, ok := f.racing[arn]; ok {
		f.execs[arn] = e
	}
	if _, ok := f.execs[arn]; ok {
		return nil, &types.ExecutionAlreadyExists{Message: aws.String("Execution Already Exists: '" + arn + "'")}
	}
	if e, ok := f.scripts[arn]; ok {
		f.execs[arn] = e
		return &sfn.StartExecutionOutput{ExecutionArn: aws.String(arn), StartDate: e.desc.StartDate}, nil
	}
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.add(arn, sfn.DescribeExecutionOutput{Status: types.ExecutionStatusRunning, StartDate: &start, Input: in.Input}, nil)
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String(arn), StartDate: &start}, nil
}

// StopExecution aborts a running execution, as Step Functions does.
func (f *fakeSFN) StopExecution(_ context.Context, in *sfn.StopExecutionInput, _ ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, in)
	e, ok := f.execs[aws.ToString(in.ExecutionArn)]
	if !ok {
		return nil, &types.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist")}
	}
	stop := time.Date(2026, 11, 27, 12, 30, 0, 0, time.UTC)
	e.steps = []fakeStep{{types.ExecutionStatusAborted, len(e.events)}}
	e.step = 0
	e.desc.StopDate, e.desc.Error, e.desc.Cause = &stop, in.Error, in.Cause
	return &sfn.StopExecutionOutput{StopDate: &stop}, nil
}

func (f *fakeSFN) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := aws.ToString(in.ExecutionArn)
	f.describes = append(f.describes, arn)
	e, ok := f.execs[arn]
	if !ok {
		return nil, &types.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist: '" + arn + "'")}
	}
	if e.step < len(e.steps)-1 {
		e.step++
	}
	d := e.desc
	d.Status = e.steps[e.step].status
	if !ended(d.Status) {
		d.StopDate, d.Output, d.Error, d.Cause = nil, nil, nil, nil
	}
	return &d, nil
}

// GetExecutionHistory pages as Step Functions does: newest first with
// ReverseOrder, NextToken the index of the next event.
func (f *fakeSFN) GetExecutionHistory(_ context.Context, in *sfn.GetExecutionHistoryInput, _ ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *in
	f.histories = append(f.histories, &cp)
	e, ok := f.execs[aws.ToString(in.ExecutionArn)]
	if !ok {
		return nil, &types.ExecutionDoesNotExist{Message: aws.String("no such execution")}
	}
	visible := append([]types.HistoryEvent(nil), e.events[:e.steps[max(e.step, 0)].events]...)
	if in.ReverseOrder {
		sort.Slice(visible, func(i, j int) bool { return visible[i].Id > visible[j].Id })
	}
	from := 0
	if in.NextToken != nil {
		from, _ = strconv.Atoi(*in.NextToken)
	}
	size := int(in.MaxResults)
	if size == 0 || size > 1000 {
		size = 1000
	}
	if f.pageSize > 0 && size > f.pageSize {
		size = f.pageSize
	}
	to := min(from+size, len(visible))
	out := &sfn.GetExecutionHistoryOutput{Events: visible[from:to]}
	if to < len(visible) {
		out.NextToken = aws.String(strconv.Itoa(to))
	}
	return out, nil
}

func (f *fakeSFN) ListExecutions(_ context.Context, in *sfn.ListExecutionsInput, _ ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, in)
	from := 0
	if in.NextToken != nil {
		from, _ = strconv.Atoi(*in.NextToken)
	}
	size := int(in.MaxResults)
	if f.pageSize > 0 && size > f.pageSize {
		size = f.pageSize
	}
	to := min(from+size, len(f.listItems))
	out := &sfn.ListExecutionsOutput{Executions: f.listItems[from:to]}
	if to < len(f.listItems) {
		out.NextToken = aws.String(strconv.Itoa(to))
	}
	return out, nil
}

// fakeCFN answers DescribeStacks with one stack's outputs.
type fakeCFN struct {
	stacks map[string]map[string]string
	calls  []string
}

func (f *fakeCFN) DescribeStacks(_ context.Context, in *cloudformation.DescribeStacksInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	name := aws.ToString(in.StackName)
	f.calls = append(f.calls, name)
	outputs, ok := f.stacks[name]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: fmt.Sprintf("Stack with id %s does not exist", name)}
	}
	stack := cfntypes.Stack{StackName: aws.String(name)}
	for k, v := range outputs {
		stack.Outputs = append(stack.Outputs, cfntypes.Output{OutputKey: aws.String(k), OutputValue: aws.String(v)})
	}
	return &cloudformation.DescribeStacksOutput{Stacks: []cfntypes.Stack{stack}}, nil
}

// events builds a history from (type, state name, details) steps, one second
// apart from 12:00:00 UTC, each event following the one before.
type ev struct {
	typ    types.HistoryEventType
	name   string // state name for entered/exited events
	doc    string // input (entered) or output (exited) or execution output
	err    string
	cause  string
	offset time.Duration // added to the event's time
}

func makeHistory(evs ...ev) []types.HistoryEvent {
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	out := make([]types.HistoryEvent, 0, len(evs))
	var at time.Time
	for i, e := range evs {
		at = base.Add(time.Duration(i)*time.Second + e.offset)
		h := types.HistoryEvent{Id: int64(i + 1), PreviousEventId: int64(i), Type: e.typ, Timestamp: aws.Time(at)}
		switch t := string(e.typ); {
		case len(t) > 12 && t[len(t)-12:] == "StateEntered":
			h.StateEnteredEventDetails = &types.StateEnteredEventDetails{Name: aws.String(e.name), Input: aws.String(e.doc)}
		case len(t) > 11 && t[len(t)-11:] == "StateExited":
			h.StateExitedEventDetails = &types.StateExitedEventDetails{Name: aws.String(e.name), Output: aws.String(e.doc)}
		}
		switch e.typ {
		case types.HistoryEventTypeTaskFailed:
			h.TaskFailedEventDetails = &types.TaskFailedEventDetails{Error: aws.String(e.err), Cause: aws.String(e.cause), Resource: aws.String("invoke"), ResourceType: aws.String("lambda")}
		case types.HistoryEventTypeLambdaFunctionFailed:
			h.LambdaFunctionFailedEventDetails = &types.LambdaFunctionFailedEventDetails{Error: aws.String(e.err), Cause: aws.String(e.cause)}
		case types.HistoryEventTypeExecutionFailed:
			h.ExecutionFailedEventDetails = &types.ExecutionFailedEventDetails{Error: aws.String(e.err), Cause: aws.String(e.cause)}
		case types.HistoryEventTypeExecutionSucceeded:
			h.ExecutionSucceededEventDetails = &types.ExecutionSucceededEventDetails{Output: aws.String(e.doc)}
		}
		out = append(out, h)
	}
	return out
}
