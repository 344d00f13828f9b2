// Command cleanup is the Cleanup Lambda; the logic is stages.Stages.Cleanup.
package main

import (
	"context"
	"os"

	"github.com/amifleet/amifleet/internal/stages"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	s, err := stages.FromEnvironment(context.Background())
	if err != nil {
		stages.Logger().Error("cannot build the AWS clients", "error", err)
		os.Exit(1)
	}
	lambda.Start(stages.Handle("Cleanup", s.Cleanup))
}
