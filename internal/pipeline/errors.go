package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// An error's message does not name its stage: Step Functions records it under the Task
// state that called the function, whose name is the stage's (steps.go), and the log
// lines carry the stage as a field. Stage is kept for the code that reads the error.
//
// The error types below are a documented contract with the state machines:
// aws-lambda-go reports a returned error's bare type name as errorType, and the
// Retry and Catch rules in stepfunctions/*.asl.json match on those names. Renaming
// one is a breaking change to the ASL files and to anyone who matches on it.
const (
	// ErrBadInput is never retried: the input is wrong and nothing was created.
	ErrBadInput = "BadInputError"
	// ErrRetryable is retried with backoff: throttling, eventual consistency.
	ErrRetryable = "RetryableError"
	// ErrWaitTimedOut ends a wait loop that ran out of polls.
	ErrWaitTimedOut = "WaitTimedOutError"
	// ErrResourceFailed is a resource that reached a state it cannot leave
	// (an AMI "failed", an instance "terminated").
	ErrResourceFailed = "ResourceFailedError"
	// ErrCapacity ends a run that EC2 cannot give the instances it asks for: the
	// account's vCPU quota or instance limit, or AWS's capacity of the type in the
	// zone once the retries are spent. Never retried by the state machine.
	ErrCapacity = "CapacityError"
	// ErrStage is any other failure of a stage (an AWS error no retry can cure).
	ErrStage = "StageError"
)

// BadInputError is input that Validate (or Teardown) refuses. Field names the input
// field in its JSON spelling, for example "poll.maxPolls.imageAvailable".
type BadInputError struct {
	Field   string
	Message string
}

func (e *BadInputError) Error() string {
	if e.Field == "" {
		return "bad input: " + e.Message
	}
	return fmt.Sprintf("bad input: %s: %s", e.Field, e.Message)
}

// RetryableError is a failure that the same call may cure if made again later.
type RetryableError struct {
	Stage string
	Err   error
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// WaitTimedOutError is a wait loop that ran out of polls. Reason says what the
// resource was doing at the last poll (and, for a base instance, its console output).
type WaitTimedOutError struct {
	Stage  string
	Wait   string
	Polls  int
	Reason string
}

func (e *WaitTimedOutError) Error() string {
	return fmt.Sprintf("wait %q not done after %d polls: %s", e.Wait, e.Polls, e.Reason)
}

// ResourceFailedError is a resource that reached a state it will not leave.
type ResourceFailedError struct {
	Stage    string
	Resource string
	State    string
	Reason   string
}

func (e *ResourceFailedError) Error() string {
	return fmt.Sprintf("%s is %s: %s", e.Resource, e.State, e.Reason)
}

// CapacityError is a launch that the account's quota or AWS's capacity refuses, or
// that Validate refuses up front because the quota cannot hold it. Its message names
// the quota, the instance type and the vCPUs asked for.
type CapacityError struct {
	Stage string
	// Code is EC2's error code (VcpuLimitExceeded, InstanceLimitExceeded,
	// InsufficientInstanceCapacity), or "" when Validate refused the run up front.
	Code    string
	Message string
}

func (e *CapacityError) Error() string { return e.Message }

// StageError is a stage's failure that no retry can cure.
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// namedError is what every error type above is: its errorType, and a stage it
// takes when it has none yet.
type namedError interface {
	error
	errorName() string
	defaultStage(stage string)
}

func (e *BadInputError) errorName() string       { return ErrBadInput }
func (e *RetryableError) errorName() string      { return ErrRetryable }
func (e *WaitTimedOutError) errorName() string   { return ErrWaitTimedOut }
func (e *ResourceFailedError) errorName() string { return ErrResourceFailed }
func (e *CapacityError) errorName() string       { return ErrCapacity }
func (e *StageError) errorName() string          { return ErrStage }

// BadInputError names a field, not a stage.
func (e *BadInputError) defaultStage(string) {}

func (e *RetryableError) defaultStage(stage string) {
	if e.Stage == "" {
		e.Stage = stage
	}
}

func (e *WaitTimedOutError) defaultStage(stage string) {
	if e.Stage == "" {
		e.Stage = stage
	}
}

func (e *ResourceFailedError) defaultStage(stage string) {
	if e.Stage == "" {
		e.Stage = stage
	}
}

func (e *CapacityError) defaultStage(stage string) {
	if e.Stage == "" {
		e.Stage = stage
	}
}

func (e *StageError) defaultStage(stage string) {
	if e.Stage == "" {
		e.Stage = stage
	}
}

// byPrecedence finds each named type anywhere in an error's chain, in the order
// that wins when a chain holds several: bad input first, wherever it is wrapped,
// because it must never be retried, and a capacity error before a retryable one
// for the same reason.
var byPrecedence = []func(error) namedError{
	as[*BadInputError], as[*RefreshInProgressError], as[*RunNotFoundError], as[*CapacityError], as[*RetryableError], as[*WaitTimedOutError], as[*ResourceFailedError], as[*StageError],
}

func as[T namedError](err error) namedError {
	var t T
	if errors.As(err, &t) {
		return t
	}
	return nil
}

func named(err error) namedError {
	for _, find := range byPrecedence {
		if n := find(err); n != nil {
			return n
		}
	}
	return nil
}

// Named is the named error in err's chain (see byPrecedence), given stage when it
// has none yet; nil when err holds none.
func Named(err error, stage string) error {
	n := named(err)
	if n == nil {
		return nil
	}
	n.defaultStage(stage)
	return n
}

// ErrorName is the errorType aws-lambda-go reports for err: the bare type name.
// It is what the ASL files' ErrorEquals match.
func ErrorName(err error) string {
	if n := named(err); n != nil {
		return n.errorName()
	}
	return ""
}

// LambdaError is the JSON a Lambda function error carries: the Invoke answer's payload,
// and the Cause that Step Functions records for a failed Lambda task.
type LambdaError struct {
	ErrorType    string `json:"errorType"`
	ErrorMessage string `json:"errorMessage"`
}

// ParseLambdaError reads a Lambda error's JSON; ok is false for anything else (a Pass
// state's plain-text cause, a Parallel branch's map of errors).
func ParseLambdaError(s []byte) (e LambdaError, ok bool) {
	if json.Unmarshal(s, &e) != nil || (e.ErrorType == "" && e.ErrorMessage == "") {
		return LambdaError{}, false
	}
	return e, true
}

// ErrRefreshInProgress refuses a refresh of a run that another refresh holds.
const ErrRefreshInProgress = "RefreshInProgressError"

// ErrRunNotFound refuses a refresh of a run that has no live record.
const ErrRunNotFound = "RunNotFoundError"

// RefreshInProgressError is a refresh refused because another one holds the run: it
// allocated no generation and created nothing. Never retried: the holder may run for
// many minutes; the next scheduled refresh, or a person, tries again.
type RefreshInProgressError struct {
	Stage    string
	RunID    string
	Holder   string
	Since    time.Time
	Building int
}

func (e *RefreshInProgressError) Error() string {
	return fmt.Sprintf("run %s: refresh %s is building generation %d since %s; try again when it ends",
		e.RunID, e.Holder, e.Building, e.Since.UTC().Format(time.RFC3339))
}

// RunNotFoundError is a refresh of a run that has no record: never made, torn down,
// being torn down, or made before run records existed.
type RunNotFoundError struct {
	Stage  string
	RunID  string
	Reason string
}

func (e *RunNotFoundError) Error() string {
	return fmt.Sprintf("run %s cannot be refreshed: %s", e.RunID, e.Reason)
}

func (e *RefreshInProgressError) errorName() string { return ErrRefreshInProgress }
func (e *RunNotFoundError) errorName() string       { return ErrRunNotFound }

func (e *RefreshInProgressError) defaultStage(stage string) {
	if e.Stage == "" {
		e.Stage = stage
	}
}

func (e *RunNotFoundError) defaultStage(stage string) {
	if e.Stage == "" {
		e.Stage = stage
	}
}
