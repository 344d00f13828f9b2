// Command echolambda is a tiny Lambda for the local runtime's tests. Its input says
// what to do: answer (echoing the input with a few facts about its process), return
// a named error, panic, exit, or sleep first.
package main

import (
	"context"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Input tells the function what to do.
type Input struct {
	// Mode is "ok" (default), "error", "panic" or "exit".
	Mode    string `json:"mode"`
	Message string `json:"message,omitempty"`
	// SleepMS is slept before anything else.
	SleepMS int `json:"sleepMs,omitempty"`
}

// Output echoes the input with facts the tests check.
type Output struct {
	Input     Input             `json:"input"`
	PID       int               `json:"pid"`
	RequestID string            `json:"requestId"`
	Env       map[string]string `json:"env"`
	// DeadlineMS is how long the runtime's deadline left the handler.
	DeadlineMS int64 `json:"deadlineMs"`
	// StartedNS and EndedNS (Unix nanoseconds) bound the handler's run, for tests of
	// concurrency.
	StartedNS int64 `json:"startedNs"`
	EndedNS   int64 `json:"endedNs"`
}

// EchoError is the named error type the tests expect as errorType.
type EchoError struct{ Message string }

func (e *EchoError) Error() string { return e.Message }

// reported lists the environment variables echoed back.
var reported = []string{
	"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
	"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
	"AWS_LAMBDA_FUNCTION_VERSION", "_HANDLER", "LAMBDA_TASK_ROOT", "ECHO_VAR", "HOME_SECRET",
}

func handle(ctx context.Context, in Input) (Output, error) {
	started := time.Now().UnixNano()
	// Sleeps past the context's deadline on purpose: a stuck function, for the
	// runtime's timeout to end.
	time.Sleep(time.Duration(in.SleepMS) * time.Millisecond)
	switch in.Mode {
	case "error":
		return Output{}, &EchoError{Message: in.Message}
	case "panic":
		panic(in.Message)
	case "exit":
		os.Exit(3)
	}
	out := Output{Input: in, PID: os.Getpid(), Env: map[string]string{}, StartedNS: started}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		out.RequestID = lc.AwsRequestID
	}
	if d, ok := ctx.Deadline(); ok {
		out.DeadlineMS = time.Until(d).Milliseconds()
	}
	for _, k := range reported {
		if v, ok := os.LookupEnv(k); ok {
			out.Env[k] = v
		}
	}
	out.EndedNS = time.Now().UnixNano()
	return out, nil
}

func main() { lambda.Start(handle) }
