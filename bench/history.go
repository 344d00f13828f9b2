package main

// Reading an execution history: transitions, Lambda tasks per function, and the
// timeline of the Parallel's branches. Pure functions over the events and the ASL.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Transitions counts the states entered: what Step Functions Standard bills (a
// state transition is each step of an execution, one per state entered).
func Transitions(events []sfntypes.HistoryEvent) int {
	n := 0
	for _, e := range events {
		if strings.HasSuffix(string(e.Type), "StateEntered") {
			n++
		}
	}
	return n
}

// isLambdaSchedule reports whether e schedules a Lambda invocation: a
// lambda:invoke task, or a task whose resource is a function ARN.
func isLambdaSchedule(e sfntypes.HistoryEvent) bool {
	switch e.Type {
	case sfntypes.HistoryEventTypeLambdaFunctionScheduled:
		return true
	case sfntypes.HistoryEventTypeTaskScheduled:
		return e.TaskScheduledEventDetails != nil && aws.ToString(e.TaskScheduledEventDetails.ResourceType) == "lambda"
	}
	return false
}

// ScheduledTasks counts the Lambda invocations the history scheduled, retries
// included.
func ScheduledTasks(events []sfntypes.HistoryEvent) int {
	n := 0
	for _, e := range events {
		if isLambdaSchedule(e) {
			n++
		}
	}
	return n
}

// stateOfEvents names, for every event, the state it belongs to: entered and
// exited events name their state, and every other event follows its
// previousEventId back to one.
func stateOfEvents(events []sfntypes.HistoryEvent) map[int64]string {
	names := map[int64]string{}
	for _, e := range events {
		switch {
		case e.StateEnteredEventDetails != nil:
			names[e.Id] = aws.ToString(e.StateEnteredEventDetails.Name)
		case e.StateExitedEventDetails != nil:
			names[e.Id] = aws.ToString(e.StateExitedEventDetails.Name)
		default:
			names[e.Id] = names[e.PreviousEventId]
		}
	}
	return names
}

// InvocationsByFunction counts the Lambda invocations scheduled per function, by
// the state that scheduled them; tasks maps a Task state to its function.
// Invocations whose state cannot be told are counted under "unknown".
func InvocationsByFunction(events []sfntypes.HistoryEvent, tasks map[string]string) map[string]int {
	names := stateOfEvents(events)
	out := map[string]int{}
	for _, e := range events {
		if !isLambdaSchedule(e) {
			continue
		}
		fn, ok := tasks[names[e.Id]]
		if !ok {
			fn = "unknown"
		}
		out[fn]++
	}
	return out
}

// Span is one state's time in the timeline, in seconds from the execution's start.
type Span struct {
	State string `json:"state"`
	// Branch is the Parallel's branch index, or -1 for the Parallel itself.
	Branch int     `json:"branch"`
	Start  float64 `json:"start"`
	End    float64 `json:"end"`
}

// spans pairs each state's entered and exited events, in order.
func spans(events []sfntypes.HistoryEvent, start time.Time) []Span {
	open := map[string][]int{}
	var out []Span
	for _, e := range events {
		at := aws.ToTime(e.Timestamp).Sub(start).Seconds()
		switch {
		case e.StateEnteredEventDetails != nil:
			name := aws.ToString(e.StateEnteredEventDetails.Name)
			open[name] = append(open[name], len(out))
			out = append(out, Span{State: name, Start: at, End: -1})
		case e.StateExitedEventDetails != nil:
			name := aws.ToString(e.StateExitedEventDetails.Name)
			if q := open[name]; len(q) > 0 {
				out[q[0]].End = at
				open[name] = q[1:]
			}
		}
	}
	// A state never exited (a Fail state, an execution cut short) ends where it began.
	for i := range out {
		if out[i].End < 0 {
			out[i].End = out[i].Start
		}
	}
	return out
}

// BranchTimeline is the spans of the Parallel and of every state in its branches.
func BranchTimeline(events []sfntypes.HistoryEvent, p Parallel, start time.Time) []Span {
	var out []Span
	for _, s := range spans(events, start) {
		if s.State == p.Name {
			s.Branch = -1
			out = append(out, s)
			continue
		}
		for i, b := range p.Branches {
			if slices.Contains(b, s.State) {
				s.Branch = i
				out = append(out, s)
			}
		}
	}
	return out
}

// TaskSeconds sums, per function, the time its Task states took, entered to exited
// (retries and the interpreter's own work included).
func TaskSeconds(events []sfntypes.HistoryEvent, tasks map[string]string) map[string]float64 {
	out := map[string]float64{}
	if len(events) == 0 {
		return out
	}
	for _, s := range spans(events, aws.ToTime(events[0].Timestamp)) {
		if fn, ok := tasks[s.State]; ok {
			out[fn] += s.End - s.Start
		}
	}
	return out
}

// ---- The state machine's shape, read from its ASL.

type aslMachine struct {
	StartAt string              `json:"StartAt"`
	States  map[string]aslState `json:"States"`
}

type aslState struct {
	Type       string         `json:"Type"`
	Next       string         `json:"Next"`
	Resource   string         `json:"Resource"`
	Parameters map[string]any `json:"Parameters"`
	Branches   []aslMachine   `json:"Branches"`
}

// Parallel is a Parallel state and the states of each of its branches.
type Parallel struct {
	Name     string     `json:"name"`
	Branches [][]string `json:"branches"`
}

// taskFunctions maps every Task state (branches included) to the function its
// ${<Name>FunctionArn} placeholder names.
func taskFunctions(def []byte) (map[string]string, error) {
	var m aslMachine
	if err := json.Unmarshal(def, &m); err != nil {
		return nil, fmt.Errorf("state machine: %w", err)
	}
	out := map[string]string{}
	var walk func(aslMachine)
	walk = func(m aslMachine) {
		for name, s := range m.States {
			for _, b := range s.Branches {
				walk(b)
			}
			if s.Type != "Task" {
				continue
			}
			ref := s.Resource
			if fn, ok := s.Parameters["FunctionName"].(string); ok {
				ref = fn
			}
			for _, f := range pipeline.Functions {
				if strings.Contains(ref, "${"+f.Placeholder()+"}") {
					out[name] = f.Name
				}
			}
		}
	}
	walk(m)
	if len(out) == 0 {
		return nil, fmt.Errorf("state machine: no Task calls a pipeline function")
	}
	return out, nil
}

// parallelBranches finds the top-level Parallel state.
func parallelBranches(def []byte) (Parallel, error) {
	var m aslMachine
	if err := json.Unmarshal(def, &m); err != nil {
		return Parallel{}, fmt.Errorf("state machine: %w", err)
	}
	for name, s := range m.States {
		if s.Type != "Parallel" {
			continue
		}
		p := Parallel{Name: name}
		for _, b := range s.Branches {
			var states []string
			for n := range b.States {
				states = append(states, n)
			}
			slices.Sort(states)
			p.Branches = append(p.Branches, states)
		}
		return p, nil
	}
	return Parallel{}, fmt.Errorf("state machine: no Parallel state")
}

// branchOf is the index of the branch holding state, or -1.
func (p Parallel) branchOf(state string) int {
	for i, b := range p.Branches {
		if slices.Contains(b, state) {
			return i
		}
	}
	return -1
}
