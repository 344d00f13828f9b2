package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantType  string
		wantStage string // in the error's Stage; "" when the type carries none
	}{
		{"a throttle code the SDK knows", fakeErr("EC2ThrottledException", "slow"), pipeline.ErrRetryable, "LaunchBase"},
		{"the SDK's request timeout", fakeErr("RequestTimeout", "late"), pipeline.ErrRetryable, "LaunchBase"},
		{"prior request not complete", fakeErr("PriorRequestNotComplete", "wait"), pipeline.ErrRetryable, "LaunchBase"},
		{"EC2 throttling", fakeErr("RequestLimitExceeded", "slow down"), pipeline.ErrRetryable, "LaunchBase"},
		{"ELB throttling", fakeErr("Throttling", "Rate exceeded"), pipeline.ErrRetryable, "LaunchBase"},
		{"SSM internal error", fakeErr("InternalServerError", "oops"), pipeline.ErrRetryable, "LaunchBase"},
		{"instance not visible yet, wrapped", fmt.Errorf("describe: %w", fakeErr("InvalidInstanceID.NotFound", "no")), pipeline.ErrRetryable, "LaunchBase"},
		{"base still stopping", fakeErr("IncorrectInstanceState", "stopping"), pipeline.ErrRetryable, "LaunchBase"},
		// The EC2 client retries InsufficientInstanceCapacity itself; the launch
		// stages turn what is left of it into a CapacityError.
		{"no capacity, once the client's retries are spent", fakeErr("InsufficientInstanceCapacity", "none"), pipeline.ErrStage, "LaunchBase"},
		{"capacity error keeps its type", &pipeline.CapacityError{Code: "VcpuLimitExceeded", Message: "quota"}, pipeline.ErrCapacity, "LaunchBase"},
		{"capacity error wrapped", fmt.Errorf("launch: %w", &pipeline.CapacityError{Message: "quota"}), pipeline.ErrCapacity, "LaunchBase"},
		{"deadline", context.DeadlineExceeded, pipeline.ErrRetryable, "LaunchBase"},
		{"access denied", fakeErr("UnauthorizedOperation", "not allowed"), pipeline.ErrStage, "LaunchBase"},
		{"quota", fakeErr("InstanceLimitExceeded", "limit"), pipeline.ErrStage, "LaunchBase"},
		{"bad parameter", fakeErr("InvalidParameterValue", "no"), pipeline.ErrStage, "LaunchBase"},
		{"plain error", errors.New("boom"), pipeline.ErrStage, "LaunchBase"},
		{"bad input", &pipeline.BadInputError{Field: "instanceType", Message: "no"}, pipeline.ErrBadInput, ""},
		{"bad input inside a StageError", &pipeline.StageError{Err: &pipeline.BadInputError{Field: "x", Message: "no"}}, pipeline.ErrBadInput, ""},
		{"bad input wrapped", fmt.Errorf("launch: %w", &pipeline.BadInputError{Field: "x", Message: "no"}), pipeline.ErrBadInput, ""},
		{"stage error keeps its type", &pipeline.StageError{Err: errors.New("no")}, pipeline.ErrStage, "LaunchBase"},
		{"resource failed", &pipeline.ResourceFailedError{Resource: "image", State: "failed"}, pipeline.ErrResourceFailed, "LaunchBase"},
		{"a stage already named is kept", &pipeline.RetryableError{Stage: "CheckImageAvailable", Err: errors.New("x")}, pipeline.ErrRetryable, "CheckImageAvailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify("LaunchBase", tc.err)
			if name := pipeline.ErrorName(got); name != tc.wantType {
				t.Errorf("type %s, want %s (%v)", name, tc.wantType, got)
			}
			var bad *pipeline.BadInputError
			if errors.As(got, &bad) && got != error(bad) {
				t.Errorf("bad input wrapped in %T: the ASL matches the outer type", got)
			}
			if stage := stageOf(got); stage != tc.wantStage {
				t.Errorf("stage %q, want %q", stage, tc.wantStage)
			}
			// Step Functions records the error under the Task state, named after the
			// stage: the message does not say it again.
			if strings.HasPrefix(got.Error(), "LaunchBase") || strings.HasPrefix(got.Error(), "CheckImageAvailable") {
				t.Errorf("message %q names the stage", got.Error())
			}
		})
	}
}

func stageOf(err error) string {
	switch e := err.(type) {
	case *pipeline.RetryableError:
		return e.Stage
	case *pipeline.StageError:
		return e.Stage
	case *pipeline.ResourceFailedError:
		return e.Stage
	case *pipeline.WaitTimedOutError:
		return e.Stage
	case *pipeline.CapacityError:
		return e.Stage
	}
	return ""
}
