package stepfunctions

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// The subset of ASL (JSONPath) that the checks read.
type machine struct {
	StartAt string            `json:"StartAt"`
	States  map[string]*state `json:"States"`
}

type state struct {
	Type        string       `json:"Type"`
	Next        string       `json:"Next"`
	End         bool         `json:"End"`
	Default     string       `json:"Default"`
	Resource    string       `json:"Resource"`
	SecondsPath string       `json:"SecondsPath"`
	Choices     []choiceRule `json:"Choices"`
	Branches    []machine    `json:"Branches"`
	Retry       []retrier    `json:"Retry"`
	Catch       []catcher    `json:"Catch"`
	Parameters  struct {
		FunctionName string `json:"FunctionName"`
	} `json:"Parameters"`
	// ResultPath is kept raw, as in catcher.
	ResultPath json.RawMessage `json:"ResultPath"`
}

type choiceRule struct {
	Variable                     string `json:"Variable"`
	BooleanEquals                *bool  `json:"BooleanEquals"`
	NumericGreaterThanEqualsPath string `json:"NumericGreaterThanEqualsPath"`
	Next                         string `json:"Next"`
}

type retrier struct {
	ErrorEquals []string `json:"ErrorEquals"`
	MaxAttempts *int     `json:"MaxAttempts"`
	BackoffRate *float64 `json:"BackoffRate"`
}

// retries reports whether r retries at least once (MaxAttempts defaults to 3).
func (r retrier) retries() bool { return r.MaxAttempts == nil || *r.MaxAttempts > 0 }

// backoff is r's BackoffRate (default 2.0).
func (r retrier) backoff() float64 {
	if r.BackoffRate == nil {
		return 2
	}
	return *r.BackoffRate
}

type catcher struct {
	ErrorEquals []string `json:"ErrorEquals"`
	// ResultPath is kept raw: absent (the caught error replaces the whole input),
	// null (it is discarded) and a path are three different things.
	ResultPath json.RawMessage `json:"ResultPath"`
	Next       string          `json:"Next"`
}

// lambdaServiceErrors are the Lambda service's own errors that every Lambda Task
// retries. Lambda.TooManyRequestsException is the one the CDK's default leaves out.
var lambdaServiceErrors = []string{
	"Lambda.ServiceException",
	"Lambda.AWSLambdaException",
	"Lambda.SdkClientException",
	"Lambda.TooManyRequestsException",
}

// functionTimedOut is what Step Functions reports when a Lambda function runs past its
// timeout (the runtime's errorType; Lambda.Unknown only for a payload without one).
// Every Lambda Task retries it: the stages are idempotent, and a timeout is most often
// an AWS API that answered slowly once.
const functionTimedOut = "Sandbox.Timedout"

// neverRetried are errors no retry can cure: bad input, a resource in a state it
// cannot leave, a stage's failure, and an exhausted wait. States.ALL and
// States.TaskFailed would match them too.
var neverRetried = []string{
	pipeline.ErrBadInput, pipeline.ErrCapacity, pipeline.ErrResourceFailed, pipeline.ErrStage, pipeline.ErrWaitTimedOut,
	"States.ALL", "States.TaskFailed",
}

var (
	attemptsRE = regexp.MustCompile(`^\$\.polls\.([A-Za-z0-9]+)\.attempts$`)
	stateTypes = []string{"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel"}
)

// Lint reports every way def breaks the rules amifleet's state machines keep, one
// line per problem, naming the state; nil when it keeps them all. def may be
// rendered or not: placeholders left in it must be known ones. The rules:
//
//   - valid JSON; StartAt and every Next, Default, Choice and Catch target exist in
//     their own scope (each Parallel branch is one); every state is reachable from
//     StartAt, and from every state an end (Succeed, Fail, End) is reachable.
//   - every Lambda Task retries the Lambda service's errors, Lambda.TooManyRequestsException
//     included, a function's timeout (Sandbox.Timedout), and RetryableError with a
//     BackoffRate above 1; no Task or Parallel retries BadInputError, CapacityError,
//     ResourceFailedError, StageError, WaitTimedOutError (nor
//     States.ALL or States.TaskFailed, which match them).
//   - every Task and Parallel has a Catch for States.ALL; a Catch that does not go
//     straight to a Fail state keeps the document and records the error at
//     $.errors.<StateName>, except one that discards what it caught (ResultPath
//     null): it names errors that mean success (no States.*), and goes on as
//     success would (to a Succeed state, or to the state its Next goes to).
//   - in a machine with a Cleanup state, every failure on the way (a Catch that
//     records an error, a Pass that records one) goes to the KeepOnFailure?
//     Choice, whose Default is Cleanup: no failure skips the choice, and none
//     skips Cleanup unless the run keeps its resources. States on the failure path
//     itself (those reachable from KeepOnFailure?) may go straight to Cleanup. In
//     a machine with a PruneGenerations state (Refresh), every failure goes to it.
//   - every loop passes through a Choice rule that leaves the loop when
//     $.polls.<key>.attempts NumericGreaterThanEqualsPath $.config.poll.maxPolls.<key>,
//     and through a Wait with SecondsPath: no loop is unbounded or busy.
//   - states keep the names of pipeline.Functions and pipeline.Waits (names.go); a
//     wait loop starts with its check, and its Wait waits what the check said
//     ($.polls.<key>.waitSeconds).
//   - a definition still to be rendered (one with placeholders) names no partition:
//     its ARNs read arn:${Partition}:..., never arn:aws:... (nor aws-cn, aws-us-gov),
//     so that it deploys in every partition. A rendered one carries its deployment's.
func Lint(def []byte) error {
	var m machine
	if err := json.Unmarshal(def, &m); err != nil {
		return fmt.Errorf("state machine is not valid JSON: %w", err)
	}
	var c checker
	if m.States == nil {
		c.add("", "", "no States")
	} else {
		c.scope("", m)
	}
	known := KnownPlaceholders()
	placeholders := Placeholders(def)
	for _, name := range placeholders {
		if !slices.Contains(known, name) {
			c.add("", "", fmt.Sprintf("unknown placeholder ${%s} (known: %s)", name, list(known)))
		}
	}
	if len(placeholders) > 0 {
		c.partitions(def)
	}
	return errors.Join(c.problems...)
}

// partitionRE matches an ARN's partition written out: arn:aws:, arn:aws-cn:,
// arn:aws-us-gov:, arn:aws-iso-b: ...
var partitionRE = regexp.MustCompile(`arn:aws(-[a-z]+)*:`)

// partitions reports every string in def that names a partition, with the state it
// is in (Comments included: they reach the template too).
func (c *checker) partitions(def []byte) {
	var doc any
	if json.Unmarshal(def, &doc) != nil {
		return // reported already
	}
	var walk func(where, state string, v any)
	walk = func(where, state string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				switch {
				case k == "States":
					if states, ok := v[k].(map[string]any); ok {
						for _, name := range slices.Sorted(maps.Keys(states)) {
							walk(where, name, states[name])
						}
						continue
					}
				case k == "Branches":
					for i, b := range asList(v[k]) {
						walk(fmt.Sprintf("%sstate %q branch %d", prefix(where), state, i+1), "", b)
					}
					continue
				}
				walk(where, state, v[k])
			}
		case []any:
			for _, e := range v {
				walk(where, state, e)
			}
		case string:
			if m := partitionRE.FindString(v); m != "" {
				c.add(where, state, fmt.Sprintf("hard-codes the partition (%s in %q): write arn:${%s}:, which the deployment fills in (aws, aws-cn, aws-us-gov)",
					strings.TrimSuffix(m, ":"), v, PartitionPlaceholder))
			}
		}
	}
	walk("", "", doc)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

type checker struct{ problems []error }

func (c *checker) add(scope, name, msg string) {
	if name != "" {
		msg = fmt.Sprintf("state %q: %s", name, msg)
	}
	if scope != "" {
		msg = scope + ": " + msg
	}
	c.problems = append(c.problems, errors.New(msg))
}

// scope checks one set of States (the machine, or a Parallel branch) and recurses
// into its branches.
func (c *checker) scope(where string, m machine) {
	names := slices.Sorted(maps.Keys(m.States))
	if m.StartAt == "" {
		c.add(where, "", "no StartAt")
	} else if m.States[m.StartAt] == nil {
		c.add(where, "", fmt.Sprintf("StartAt %q is not a state", m.StartAt))
	}

	edges := map[string][]string{}
	for _, name := range names {
		s := m.States[name]
		c.state(where, name, s, m.States)
		for _, to := range targets(s) {
			if m.States[to] == nil {
				c.add(where, name, fmt.Sprintf("goes to %q, which is not a state here", to))
				continue
			}
			edges[name] = append(edges[name], to)
		}
		for i, b := range s.Branches {
			c.scope(fmt.Sprintf("%sstate %q branch %d", prefix(where), name, i+1), b)
		}
	}
	if m.States[m.StartAt] == nil {
		return // reachability means nothing without a start
	}

	reached := walk([]string{m.StartAt}, edges)
	for _, name := range names {
		if !reached[name] {
			c.add(where, name, "unreachable from StartAt "+quote(m.StartAt))
		}
	}

	reverse := map[string][]string{}
	var ends []string
	for _, name := range names {
		if isEnd(m.States[name]) {
			ends = append(ends, name)
		}
		for _, to := range edges[name] {
			reverse[to] = append(reverse[to], name)
		}
	}
	ending := walk(ends, reverse)
	for _, name := range names {
		if reached[name] && !ending[name] {
			c.add(where, name, "no end (Succeed, Fail or End) is reachable from it: a dead loop")
		}
	}

	c.loops(where, m.States, edges)
	c.failurePath(where, m.States, edges)
	c.waitEntries(where, names, reverse)
}

// KeepChoice is the Choice every failure of the Pipeline goes to, before Cleanup:
// a run with config.keepOnFailure keeps its resources, any other is cleaned up.
const KeepChoice = "KeepOnFailure?"

// failurePath checks that every failure of a scope goes where its machine undoes
// what it made: in a scope with a Cleanup state (the Pipeline), to KeepChoice,
// whose Default is Cleanup; in a scope with a PruneGenerations state (Refresh),
// to PruneGenerations, which removes every generation that does not serve. States
// on the failure path itself (those reachable from its entry) are exempt.
func (c *checker) failurePath(where string, states map[string]*state, edges map[string][]string) {
	var entry, says string
	switch {
	case states[pipeline.Cleanup] != nil:
		entry = KeepChoice
		says = fmt.Sprintf("a failure goes to %s (which goes on to %s, or keeps the resources)", KeepChoice, pipeline.Cleanup)
		if k := states[KeepChoice]; k != nil && (k.Type != "Choice" || k.Default != pipeline.Cleanup) {
			c.add(where, KeepChoice, fmt.Sprintf("must be a Choice whose Default is %s (Type %q, Default %q)", pipeline.Cleanup, k.Type, k.Default))
		}
	case states[pipeline.PruneGenerations] != nil:
		entry = pipeline.PruneGenerations
		says = fmt.Sprintf("a refresh's failure goes to %s (which removes the generation that does not serve)", pipeline.PruneGenerations)
	default:
		return
	}
	var onPath map[string]bool
	if states[entry] != nil {
		onPath = walk([]string{entry}, edges)
	}
	for _, name := range slices.Sorted(maps.Keys(states)) {
		s := states[name]
		if s == nil || onPath[name] {
			continue
		}
		for _, k := range s.Catch {
			to := states[k.Next]
			if to == nil || to.Type == "Fail" || to.Type == "Succeed" || string(k.ResultPath) == "null" {
				continue
			}
			if k.Next != entry {
				c.add(where, name, fmt.Sprintf("Catch %v goes to %q: %s", k.ErrorEquals, k.Next, says))
			}
		}
		if s.Type == "Pass" && strings.HasPrefix(string(s.ResultPath), `"$.errors.`) && states[s.Next] != nil && states[s.Next].Type != "Fail" && s.Next != entry {
			c.add(where, name, fmt.Sprintf("records an error and goes to %q: %s", s.Next, says))
		}
	}
}

// state checks the rules of one state.
func (c *checker) state(where, name string, s *state, states map[string]*state) {
	if s == nil {
		c.add(where, name, "is null")
		return
	}
	c.names(where, name, s, states)
	if !slices.Contains(stateTypes, s.Type) {
		c.add(where, name, fmt.Sprintf("Type %q is not one these checks know (%s)", s.Type, strings.Join(stateTypes, ", ")))
	}
	switch s.Type {
	case "Choice":
		if len(s.Choices) == 0 {
			c.add(where, name, "a Choice without Choices")
		}
	case "Succeed", "Fail":
		if s.Next != "" || s.End {
			c.add(where, name, s.Type+" states take neither Next nor End")
		}
	default:
		if (s.Next == "") == !s.End {
			c.add(where, name, "needs exactly one of Next and End")
		}
	}
	if s.Type == "Parallel" && len(s.Branches) == 0 {
		c.add(where, name, "a Parallel without Branches")
	}
	if s.Type != "Task" && s.Type != "Parallel" {
		return
	}

	for _, r := range s.Retry {
		for _, e := range r.ErrorEquals {
			if slices.Contains(neverRetried, e) && r.retries() {
				c.add(where, name, fmt.Sprintf("retries %s, which no retry can cure (BadInputError, CapacityError, ResourceFailedError, StageError and WaitTimedOutError are never retried)", e))
			}
		}
	}
	if isLambdaTask(s) {
		for _, e := range lambdaServiceErrors {
			if !slices.ContainsFunc(s.Retry, func(r retrier) bool { return r.retries() && slices.Contains(r.ErrorEquals, e) }) {
				c.add(where, name, "does not retry the Lambda service error "+e)
			}
		}
		if !slices.ContainsFunc(s.Retry, func(r retrier) bool { return r.retries() && slices.Contains(r.ErrorEquals, functionTimedOut) }) {
			c.add(where, name, "does not retry "+functionTimedOut+" (the function ran past its timeout)")
		}
		if !slices.ContainsFunc(s.Retry, func(r retrier) bool {
			return r.retries() && slices.Contains(r.ErrorEquals, pipeline.ErrRetryable) && r.backoff() > 1
		}) {
			c.add(where, name, "does not retry "+pipeline.ErrRetryable+" with a BackoffRate above 1")
		}
	}

	if !slices.ContainsFunc(s.Catch, func(k catcher) bool { return slices.Contains(k.ErrorEquals, "States.ALL") }) {
		c.add(where, name, "has no Catch for States.ALL: a failure here would skip Cleanup")
	}
	want := `"$.errors.` + name + `"`
	for _, k := range s.Catch {
		if to := states[k.Next]; to != nil && to.Type == "Fail" {
			continue // the Fail state reads the error wherever the Catch put it
		}
		if to := states[k.Next]; to != nil && to.Type == "Succeed" {
			// An error that means the work is done (ExecutionAlreadyExists for a start
			// that did happen): named exactly, and not recorded as a failure.
			for _, e := range k.ErrorEquals {
				if strings.HasPrefix(e, "States.") {
					c.add(where, name, fmt.Sprintf("Catch %v to the Succeed state %q: only an error that means success may end a run well, never %s", k.ErrorEquals, k.Next, e))
				}
			}
			if string(k.ResultPath) != "null" {
				c.add(where, name, fmt.Sprintf("Catch %v to the Succeed state %q has ResultPath %s; want null (an error that means success is not recorded in $.errors)", k.ErrorEquals, k.Next, orAbsent(k.ResultPath)))
			}
			continue
		}
		if string(k.ResultPath) == "null" {
			// An error that means success, on the way on: the same as a Succeed's,
			// and it goes where the state's success goes.
			for _, e := range k.ErrorEquals {
				if strings.HasPrefix(e, "States.") {
					c.add(where, name, fmt.Sprintf("Catch %v discards what it caught (ResultPath null): only an error that means success may, never %s", k.ErrorEquals, e))
				}
			}
			if k.Next != s.Next {
				c.add(where, name, fmt.Sprintf("Catch %v discards what it caught (ResultPath null) and goes to %q; want %q, where success goes", k.ErrorEquals, k.Next, s.Next))
			}
			continue
		}
		if string(k.ResultPath) != want {
			c.add(where, name, fmt.Sprintf("Catch %v to %q has ResultPath %s; want %s", k.ErrorEquals, k.Next, orAbsent(k.ResultPath), want))
		}
	}
}

func orAbsent(resultPath json.RawMessage) string {
	if len(resultPath) == 0 {
		return "absent (the error would replace the document)"
	}
	return string(resultPath)
}

// loops checks that every cycle in one scope is bounded by a poll counter and waits.
func (c *checker) loops(where string, states map[string]*state, edges map[string][]string) {
	for _, scc := range components(edges) {
		in := map[string]bool{}
		for _, n := range scc {
			in[n] = true
		}
		if len(scc) == 1 && !slices.Contains(edges[scc[0]], scc[0]) {
			continue // no cycle
		}
		bounded := map[string]bool{}
		for _, n := range scc {
			if isBound(states[n], in) {
				bounded[n] = true
			}
		}
		if cycle := findCycle(scc, edges, bounded); cycle != nil {
			c.add(where, "", fmt.Sprintf("unbounded loop %s: no Choice on it leaves the loop when $.polls.<key>.attempts NumericGreaterThanEqualsPath $.config.poll.maxPolls.<key>", strings.Join(cycle, " → ")))
		}
		waits := map[string]bool{}
		for _, n := range scc {
			if s := states[n]; s.Type == "Wait" && s.SecondsPath != "" {
				waits[n] = true
			}
		}
		if cycle := findCycle(scc, edges, waits); cycle != nil {
			c.add(where, "", fmt.Sprintf("busy loop %s: no Wait with SecondsPath on it", strings.Join(cycle, " → ")))
		}
	}
}

// isBound reports whether s is a Choice with a rule that leaves the loop (in) once a
// poll counter reaches its configured maximum.
func isBound(s *state, in map[string]bool) bool {
	if s.Type != "Choice" {
		return false
	}
	for _, r := range s.Choices {
		m := attemptsRE.FindStringSubmatch(r.Variable)
		if m != nil && r.NumericGreaterThanEqualsPath == "$.config.poll.maxPolls."+m[1] && !in[r.Next] {
			return true
		}
	}
	return false
}

func targets(s *state) []string {
	if s == nil {
		return nil
	}
	var to []string
	for _, t := range append([]string{s.Next, s.Default}, catchTargets(s)...) {
		if t != "" {
			to = append(to, t)
		}
	}
	for _, r := range s.Choices {
		to = append(to, r.Next)
	}
	return to
}

func catchTargets(s *state) []string {
	var to []string
	for _, k := range s.Catch {
		to = append(to, k.Next)
	}
	return to
}

func isEnd(s *state) bool {
	return s != nil && (s.Type == "Succeed" || s.Type == "Fail" || s.End)
}

// isLambdaTask reports whether s invokes a Lambda function, through the optimised
// integration or by the function's ARN as the Resource, in any partition (a
// placeholder, a token or a name).
func isLambdaTask(s *state) bool {
	return s.Type == "Task" && lambdaResourceRE.MatchString(s.Resource)
}

// lambdaResourceRE matches arn:<partition>:states:::lambda:invoke[...] and
// arn:<partition>:lambda:..., and a Resource that is a ${<Name>FunctionArn}.
var lambdaResourceRE = regexp.MustCompile(`^arn:[^:]+:(states:::lambda:invoke|lambda:)|FunctionArn\}$`)

// walk is every node reachable from starts.
func walk(starts []string, edges map[string][]string) map[string]bool {
	seen := map[string]bool{}
	stack := slices.Clone(starts)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, edges[n]...)
	}
	return seen
}

// components are the strongly connected components of the graph (Tarjan), each
// sorted, in a stable order.
func components(edges map[string][]string) [][]string {
	nodes := map[string]bool{}
	for from, tos := range edges {
		nodes[from] = true
		for _, to := range tos {
			nodes[to] = true
		}
	}
	var (
		index   = map[string]int{}
		low     = map[string]int{}
		onStack = map[string]bool{}
		stack   []string
		out     [][]string
		visit   func(string)
	)
	visit = func(n string) {
		index[n] = len(index)
		low[n] = index[n]
		stack = append(stack, n)
		onStack[n] = true
		for _, to := range edges[n] {
			if _, seen := index[to]; !seen {
				visit(to)
				low[n] = min(low[n], low[to])
			} else if onStack[to] {
				low[n] = min(low[n], index[to])
			}
		}
		if low[n] == index[n] {
			var scc []string
			for {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[top] = false
				scc = append(scc, top)
				if top == n {
					break
				}
			}
			slices.Sort(scc)
			out = append(out, scc)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		if _, seen := index[n]; !seen {
			visit(n)
		}
	}
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// findCycle is one cycle among nodes that avoids every node in cut, as the path
// a → b → … → a, or nil when cutting those nodes leaves no cycle.
func findCycle(nodes []string, edges map[string][]string, cut map[string]bool) []string {
	in := map[string]bool{}
	for _, n := range nodes {
		in[n] = !cut[n]
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var path, cycle []string
	var dfs func(string) bool
	dfs = func(n string) bool {
		color[n] = grey
		path = append(path, n)
		for _, to := range edges[n] {
			if !in[to] {
				continue
			}
			switch color[to] {
			case grey:
				start := slices.Index(path, to)
				cycle = append(slices.Clone(path[start:]), to)
				return true
			case white:
				if dfs(to) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		color[n] = black
		return false
	}
	for _, n := range nodes {
		if in[n] && color[n] == white && dfs(n) {
			return cycle
		}
	}
	return nil
}

func prefix(where string) string {
	if where == "" {
		return ""
	}
	return where + ", "
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
