package stages

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

// Start is every Lambda's main: it builds Stages from the environment, then hands
// method (one stage, wrapped by Handle) to lambda.Start. It does not return.
//
//	func main() { stages.Start("CheckImage", (*stages.Stages).CheckImage) }
func Start[In, Out any](stage string, method func(*Stages, context.Context, In) (Out, error)) {
	s, err := FromEnvironment(context.Background())
	if err != nil {
		Logger().Error("cannot build the AWS clients", "stage", stage, "error", err)
		os.Exit(1)
	}
	lambda.Start(Handle(stage, func(ctx context.Context, in In) (Out, error) { return method(s, ctx, in) }))
}
