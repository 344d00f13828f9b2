package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Start is every Lambda's main: it builds Stages from the environment, then hands the
// named function's method (wrapped by Handle) to lambda.Start. It does not return.
//
//	func main() { stages.Start(pipeline.CheckImageAvailable) }
func Start(function string) {
	b, ok := bindings[function]
	if !ok {
		Logger().Error("no such function", "stage", function)
		os.Exit(2)
	}
	s, err := FromEnvironment(context.Background())
	if err != nil {
		Logger().Error("cannot build the AWS clients", "stage", function, "error", err)
		os.Exit(1)
	}
	lambda.Start(b.handler(s))
}

// binding is one function's method, ready to become a Lambda handler.
type binding struct {
	method  any // the method expression, for the test that names it
	handler func(*Stages) any
}

func bind[In, Out any](function string, method func(*Stages, context.Context, In) (Out, error)) binding {
	return binding{method: method, handler: func(s *Stages) any {
		return Handle(function, func(ctx context.Context, in In) (Out, error) { return method(s, ctx, in) })
	}}
}

// bindings binds every pipeline.Functions entry to the Stages method of the same name
// (a test holds the two lists, and each method's file, to each other).
var bindings = map[string]binding{
	pipeline.Validate:                bind(pipeline.Validate, (*Stages).Validate),
	pipeline.CreateSecurityGroups:    bind(pipeline.CreateSecurityGroups, (*Stages).CreateSecurityGroups),
	pipeline.LaunchBase:              bind(pipeline.LaunchBase, (*Stages).LaunchBase),
	pipeline.CheckBaseStopped:        bind(pipeline.CheckBaseStopped, (*Stages).CheckBaseStopped),
	pipeline.CreateImage:             bind(pipeline.CreateImage, (*Stages).CreateImage),
	pipeline.CheckImageAvailable:     bind(pipeline.CheckImageAvailable, (*Stages).CheckImageAvailable),
	pipeline.CreateLoadBalancer:      bind(pipeline.CreateLoadBalancer, (*Stages).CreateLoadBalancer),
	pipeline.CheckLoadBalancerActive: bind(pipeline.CheckLoadBalancerActive, (*Stages).CheckLoadBalancerActive),
	pipeline.LaunchReplicas:          bind(pipeline.LaunchReplicas, (*Stages).LaunchReplicas),
	pipeline.CheckInstancesRunning:   bind(pipeline.CheckInstancesRunning, (*Stages).CheckInstancesRunning),
	pipeline.RegisterTargets:         bind(pipeline.RegisterTargets, (*Stages).RegisterTargets),
	pipeline.CheckTargetsHealthy:     bind(pipeline.CheckTargetsHealthy, (*Stages).CheckTargetsHealthy),
	pipeline.Verify:                  bind(pipeline.Verify, (*Stages).Verify),
	pipeline.RecordRun:               bind(pipeline.RecordRun, (*Stages).RecordRun),
	pipeline.Cleanup:                 bind(pipeline.Cleanup, (*Stages).Cleanup),
	pipeline.PrepareRefresh:          bind(pipeline.PrepareRefresh, (*Stages).PrepareRefresh),
	pipeline.CommitGeneration:        bind(pipeline.CommitGeneration, (*Stages).CommitGeneration),
	pipeline.PruneGenerations:        bind(pipeline.PruneGenerations, (*Stages).PruneGenerations),
}

// notYet is the error of a stage whose document lacks what an earlier stage records
// there: the state machine runs the stages in order, so this is a broken document,
// not a retryable state.
func notYet(field, producer string) error {
	return &pipeline.StageError{Err: fmt.Errorf("%s is not set: %s has not run", field, producer)}
}

type loggerKey struct{}

// Log is the logger of the stage running in ctx, with runId and stage on every line.
func Log(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// WithLog puts a logger in ctx for Log to find.
func WithLog(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Handle adapts one stage to lambda.Start: it logs the start and the end of the
// invocation with the run id and stage, and turns every error into one of the named
// types of package pipeline, so that the state machine's Retry and Catch can tell
// them apart.
func Handle[In, Out any](stage string, fn func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	base := Logger()
	return func(ctx context.Context, in In) (Out, error) {
		log := base.With("runId", runIDOf(in), "stage", stage)
		ctx = WithLog(ctx, log)
		log.Info("stage started")
		out, err := fn(ctx, in)
		if err != nil {
			err = Classify(stage, err)
			log.Error("stage failed", "errorType", pipeline.ErrorName(err), "error", err.Error())
			return out, err
		}
		log.Info("stage finished")
		return out, nil
	}
}

func runIDOf(in any) string {
	switch v := in.(type) {
	case pipeline.Document:
		return v.RunID
	case pipeline.TeardownInput:
		return v.RunID
	case pipeline.ValidateInput:
		// A refresh's input names its run; a Pipeline's run is named by its execution.
		var in struct {
			RunID string `json:"runId"`
		}
		if json.Unmarshal(v.Input, &in) == nil && pipeline.IsRunID(in.RunID) {
			return in.RunID
		}
		if id, err := pipeline.RunIDFromExecutionName(v.ExecutionName); err == nil {
			return id
		}
	}
	return ""
}

// Classify names err for the state machine. Errors already of a named type keep it
// (and get the stage); AWS errors that a later call may cure become RetryableError;
// everything else becomes StageError.
func Classify(stage string, err error) error {
	if named := pipeline.Named(err, stage); named != nil {
		return named
	}
	if IsRetryable(err) {
		return &pipeline.RetryableError{Stage: stage, Err: err}
	}
	return &pipeline.StageError{Stage: stage, Err: err}
}
