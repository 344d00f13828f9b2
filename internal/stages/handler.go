package stages

import (
	"context"
	"errors"
	"log/slog"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/smithy-go"
)

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
	case pipeline.CheckInput:
		return v.Document.RunID
	case pipeline.TeardownInput:
		return v.RunID
	case pipeline.ValidateInput:
		if id, err := pipeline.RunIDFromExecutionName(v.ExecutionName); err == nil {
			return id
		}
	}
	return ""
}

// retryableCodes are AWS error codes that the same call may cure later: throttling,
// and eventual consistency right after a create.
var retryableCodes = map[string]bool{
	"RequestLimitExceeded":         true,
	"Throttling":                   true,
	"ThrottlingException":          true,
	"TooManyRequestsException":     true,
	"RequestThrottled":             true,
	"ServiceUnavailable":           true,
	"InternalError":                true,
	"InternalFailure":              true,
	"InternalServerError":          true, // SSM's
	"Unavailable":                  true,
	"InvalidInstanceID.NotFound":   true,
	"InvalidAMIID.NotFound":        true,
	"InvalidGroup.NotFound":        true,
	"InvalidSnapshot.NotFound":     true,
	"IncorrectInstanceState":       true,
	"DependencyViolation":          true,
	"ResourceInUse":                true,
	"InsufficientInstanceCapacity": true,
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

// IsRetryable reports whether err is an AWS error that a later call may cure, or a
// deadline that ran out.
func IsRetryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return retryableCodes[api.ErrorCode()]
	}
	return false
}

// ErrorCode is the AWS error code in err, or "".
func ErrorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}
