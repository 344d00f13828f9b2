package pipeline

import (
	"strings"
	"unicode"
)

// This file is the one table of names. Every stage and every wait has one identity,
// and everything else is derived from it by the methods below: the Lambda's folder, its
// Go method and file, its ASL states, its poll key and config key, the error key its
// failure is recorded under, and the name a failed run's cause gives. The mains, the ASL
// lint, the CDK stack and the CLI read it; stepfunctions' and stages' tests fail when a
// folder, a main, a method, a state or a poll key disagrees with it.
// docs/state-machines.md ("Names") says the same in words.

// Function is one of amifleet's Lambda functions. Its Name is the Task state that calls
// it (in the Pipeline, and in Teardown for Cleanup), the stages.Stages method that is
// its logic, and the stage in its log lines and errors.
type Function struct {
	Name string
}

// Dir is the folder under lambdas/ that holds its main, and its zip's name under build/
// (build/<arch>/<Dir>.zip): the Name in kebab case ("LaunchBase" → "launch-base").
func (f Function) Dir() string { return joinWords(f.Name, "-") }

// File is the file in internal/stages that holds its method, beside its undo: the Name in
// snake case ("LaunchBase" → "launch_base.go").
func (f Function) File() string { return joinWords(f.Name, "_") + ".go" }

// Placeholder is the ${...} in stepfunctions/*.asl.json that the CDK replaces with the
// function's ARN ("LaunchBaseFunctionArn").
func (f Function) Placeholder() string { return f.Name + "FunctionArn" }

// The functions, by name, for the code that names one.
const (
	Validate                = "Validate"
	CreateSecurityGroups    = "CreateSecurityGroups"
	LaunchBase              = "LaunchBase"
	CheckBaseStopped        = "CheckBaseStopped"
	CreateImage             = "CreateImage"
	CheckImageAvailable     = "CheckImageAvailable"
	CreateLoadBalancer      = "CreateLoadBalancer"
	CheckLoadBalancerActive = "CheckLoadBalancerActive"
	LaunchReplicas          = "LaunchReplicas"
	CheckInstancesRunning   = "CheckInstancesRunning"
	RegisterTargets         = "RegisterTargets"
	CheckTargetsHealthy     = "CheckTargetsHealthy"
	Verify                  = "Verify"
	RecordRun               = "RecordRun"
	Cleanup                 = "Cleanup"
	PrepareRefresh          = "PrepareRefresh"
	CommitGeneration        = "CommitGeneration"
	PruneGenerations        = "PruneGenerations"
)

// Functions lists every Lambda, in pipeline order. The Makefile builds one zip per
// lambdas/ folder (a test holds the folders to this list), the CDK deploys one function
// per entry, and the ASL lint accepts only these placeholders.
var Functions = []Function{
	{Validate},
	{CreateSecurityGroups},
	{LaunchBase},
	{CheckBaseStopped},
	{CreateImage},
	{CheckImageAvailable},
	{CreateLoadBalancer},
	{CheckLoadBalancerActive},
	{LaunchReplicas},
	{CheckInstancesRunning},
	{RegisterTargets},
	{CheckTargetsHealthy},
	{Verify},
	{RecordRun},
	{Cleanup},
	{PrepareRefresh},
	{CommitGeneration},
	{PruneGenerations},
}

// RefreshOnly reports whether only the Refresh state machine calls the function
// (PrepareRefresh, CommitGeneration, PruneGenerations): every other one is a stage of
// the Pipeline (or, for Cleanup, of Teardown too).
func (f Function) RefreshOnly() bool {
	switch f.Name {
	case PrepareRefresh, CommitGeneration, PruneGenerations:
		return true
	}
	return false
}

// RefreshFunctions are the functions the Refresh state machine calls: its own
// (PrepareRefresh, CommitGeneration, PruneGenerations) and the Pipeline's stages it
// reuses on a document of a later generation. Each is deployed once.
var RefreshFunctions = []string{
	PrepareRefresh, LaunchBase, CheckBaseStopped, CreateImage, CheckImageAvailable,
	LaunchReplicas, CheckInstancesRunning, RegisterTargets, CheckTargetsHealthy, Verify,
	CommitGeneration, PruneGenerations,
}

// Wait is one bounded wait loop: a Wait state, a check Task, and a Choice that goes on
// when the check is ready and gives up after config.poll.maxPolls.<Key> checks. Its Name
// is the condition waited for ("BaseStopped").
type Wait struct {
	Name string
	// Check is the Function that polls it: "Check<Name>", except for Cleanup and
	// PruneGenerations, which delete and poll their own progress in one call.
	Check string
}

// Key is the wait's key in $.polls, in config.poll.maxPolls and in the check's poll
// answer: the Name in lowerCamelCase ("baseStopped").
func (w Wait) Key() string { return lowerFirst(w.Name) }

// WaitState is the Wait state before each check ("WaitBaseStopped").
func (w Wait) WaitState() string { return "Wait" + w.Name }

// ChoiceState is the Choice after each check ("BaseStopped?").
func (w Wait) ChoiceState() string { return w.Name + "?" }

// TimedOutState is where the Choice goes when the polls run out ("BaseStoppedTimedOut"):
// a Pass that records WaitTimedOutError under $.errors.<TimedOutState> and goes on to
// the failure path, or (for the cleanup wait, which has nothing left to clean) a Fail.
func (w Wait) TimedOutState() string { return w.Name + "TimedOut" }

// The waits, by name.
const (
	WaitBaseStopped        = "BaseStopped"
	WaitImageAvailable     = "ImageAvailable"
	WaitLoadBalancerActive = "LoadBalancerActive"
	WaitInstancesRunning   = "InstancesRunning"
	WaitTargetsHealthy     = "TargetsHealthy"
	WaitCleanupDone        = "CleanupDone"
	WaitGenerationsPruned  = "GenerationsPruned"
)

// Waits lists every wait loop, in pipeline order (the Refresh machine's own last).
var Waits = []Wait{
	{WaitBaseStopped, CheckBaseStopped},
	{WaitImageAvailable, CheckImageAvailable},
	{WaitLoadBalancerActive, CheckLoadBalancerActive},
	{WaitInstancesRunning, CheckInstancesRunning},
	{WaitTargetsHealthy, CheckTargetsHealthy},
	{WaitCleanupDone, Cleanup},
	{WaitGenerationsPruned, PruneGenerations},
}

// WaitOf is the wait that function polls, if it polls one.
func WaitOf(function string) (Wait, bool) {
	for _, w := range Waits {
		if w.Check == function {
			return w, true
		}
	}
	return Wait{}, false
}

// WaitNamed is the wait of that name.
func WaitNamed(name string) (Wait, bool) {
	for _, w := range Waits {
		if w.Name == name {
			return w, true
		}
	}
	return Wait{}, false
}

// joinWords splits a PascalCase name into its words and joins them lower-cased with sep.
func joinWords(name, sep string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteString(sep)
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
