// Package cli is what the amifleet command does, kept apart from the command line
// parsing (cmd/amifleet) so that tests can drive it with a fake Step Functions
// client: starting Pipeline and Teardown executions, following an execution's
// history, formatting runs for people (text) and scripts (one JSON document), and
// the exit codes that CI jobs branch on.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
)

// Exit codes, a documented contract (docs/cli.md): CI jobs branch on them.
const (
	// ExitOK: the command did its job; a waited-for execution SUCCEEDED.
	ExitOK = 0
	// ExitFailed: the execution FAILED (its cause is printed), or an AWS call failed.
	ExitFailed = 1
	// ExitUsage: bad usage or bad input; nothing was started.
	ExitUsage = 2
	// ExitTimeout: the wait timed out (the execution goes on), or the execution
	// was ABORTED or TIMED_OUT.
	ExitTimeout = 3
)

// ExitError is an error that carries the process's exit code. A nil Err means
// the command already said everything on its output.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// exitf makes an ExitError with a formatted message.
func exitf(code int, format string, args ...any) error {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// ExitCode is the exit code for err: 0 for nil, the code of an ExitError, and
// ExitFailed for anything else (an AWS call that failed).
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailed
}

// SFN is the part of the Step Functions API the CLI calls.
type SFN interface {
	StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	GetExecutionHistory(context.Context, *sfn.GetExecutionHistoryInput, ...func(*sfn.Options)) (*sfn.GetExecutionHistoryOutput, error)
	ListExecutions(context.Context, *sfn.ListExecutionsInput, ...func(*sfn.Options)) (*sfn.ListExecutionsOutput, error)
	StopExecution(context.Context, *sfn.StopExecutionInput, ...func(*sfn.Options)) (*sfn.StopExecutionOutput, error)
}

// CloudFormation is the part of the CloudFormation API the CLI calls: reading the
// stack's outputs to find the state machines.
type CloudFormation interface {
	DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// Output formats.
const (
	FormatText = "text"
	FormatJSON = "json"
	// FormatJSONL streams, for machines: one JSON object per line on stdout as it
	// happens ({"type":"event",...} for each state's line), the final document last
	// ({"type":"result",...}); the lines for people go to stderr.
	FormatJSONL = "jsonl"
)

// DefaultPollInterval is how often a wait reads the execution's history: often
// enough to show a stage as it passes, well inside GetExecutionHistory's quota.
const DefaultPollInterval = 2 * time.Second

// DefaultTimeout bounds a wait when no --timeout is given. The default poll
// limits let a run take about an hour and a half in the worst case.
const DefaultTimeout = 2 * time.Hour

// Runner runs the CLI's commands.
type Runner struct {
	SFN SFN
	// Machines finds the state machines' ARNs.
	Machines *Machines
	// CloudWatchLogs reads the functions' log groups (amifleet logs).
	CloudWatchLogs CloudWatchLogs
	// Runs reads the runs table (what serves now); nil leaves it unread.
	Runs Runs
	// Stdout gets the command's result; Stderr gets notes and, with JSON output,
	// the progress lines.
	Stdout, Stderr io.Writer
	// Format is FormatText or FormatJSON.
	Format string
	// PollInterval between two reads of a running execution; 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Location of the times printed; nil means time.Local.
	Location *time.Location
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) loc() *time.Location {
	if r.Location != nil {
		return r.Location
	}
	return time.Local
}

func (r *Runner) interval() time.Duration {
	if r.PollInterval > 0 {
		return r.PollInterval
	}
	return DefaultPollInterval
}

func (r *Runner) json() bool { return r.Format == FormatJSON || r.Format == FormatJSONL }

func (r *Runner) jsonl() bool { return r.Format == FormatJSONL }

// writeDoc writes a command's document on stdout: indented with --output json, one
// line tagged "type":"result" with --output jsonl.
func (r *Runner) writeDoc(v any) error {
	if !r.jsonl() {
		return writeJSON(r.Stdout, v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > 1 && b[0] == '{' {
		sep := ","
		if b[1] == '}' {
			sep = ""
		}
		b = append([]byte(`{"type":"result"`+sep), b[1:]...)
	}
	_, err = fmt.Fprintf(r.Stdout, "%s\n", b)
	return err
}

// progress is where the lines that follow an execution go: stdout for people,
// stderr when stdout is kept for the one JSON document.
func (r *Runner) progress() io.Writer {
	if r.json() {
		return r.Stderr
	}
	return r.Stdout
}
