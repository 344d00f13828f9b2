// Command loglambda is a tiny Lambda for the tests of function logs: it logs the
// lines its input asks for as the stages do (slog JSON with runId and stage), then
// answers, or exits when asked.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

// Input tells the function what to log.
type Input struct {
	RunID string `json:"runId"`
	Lines int    `json:"lines"`
	// Stderr is written to stderr as it is, without a newline, after the lines.
	Stderr string `json:"stderr,omitempty"`
	// Exit makes the process exit after logging, before answering.
	Exit bool `json:"exit,omitempty"`
}

func handle(_ context.Context, in Input) (string, error) {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("runId", in.RunID, "stage", "Test")
	for i := range in.Lines {
		log.Info("line", "n", i)
	}
	if in.Stderr != "" {
		fmt.Fprint(os.Stderr, in.Stderr)
	}
	if in.Exit {
		os.Exit(0)
	}
	return "logged", nil
}

func main() { lambda.Start(handle) }
