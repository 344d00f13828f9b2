package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/smithy-go"
)

// The stack's output keys that name the state machines (set by the CDK app).
const (
	OutputPipelineARN = "PipelineStateMachineArn"
	OutputTeardownARN = "TeardownStateMachineArn"
	OutputRefreshARN  = "RefreshStateMachineArn"
	OutputRunsTable   = "RunsTableName"
)

// DefaultStack is the CDK app's stack name.
const DefaultStack = "AmiFleet"

// Machines finds the Pipeline and Teardown state machines: from ARNs given on the
// command line or in the environment, else from the stack's outputs, read once
// and only when an ARN is missing.
type Machines struct {
	// PipelineARN, TeardownARN and RefreshARN, when set, are used as they are.
	PipelineARN, TeardownARN, RefreshARN string
	// Stack is the CloudFormation stack whose outputs name them.
	Stack string
	CFN   CloudFormation

	once    sync.Once
	outputs map[string]string
	err     error
}

// Pipeline is the Pipeline state machine's ARN.
func (m *Machines) Pipeline(ctx context.Context) (string, error) {
	return m.get(ctx, m.PipelineARN, OutputPipelineARN, "--pipeline-arn", "AMIFLEET_PIPELINE_ARN")
}

// Teardown is the Teardown state machine's ARN.
func (m *Machines) Teardown(ctx context.Context) (string, error) {
	return m.get(ctx, m.TeardownARN, OutputTeardownARN, "--teardown-arn", "AMIFLEET_TEARDOWN_ARN")
}

// Refresh is the Refresh state machine's ARN.
func (m *Machines) Refresh(ctx context.Context) (string, error) {
	return m.get(ctx, m.RefreshARN, OutputRefreshARN, "--refresh-arn", "AMIFLEET_REFRESH_ARN")
}

// RunsTable is the runs table's name, "" when it cannot be read (a stack from before
// refreshes, or state machines given by ARN): what serves is then what the
// execution built.
func (m *Machines) RunsTable(ctx context.Context) string {
	if m.CFN == nil || m.Stack == "" {
		return ""
	}
	m.once.Do(func() { m.outputs, m.err = m.readStack(ctx) })
	return m.outputs[OutputRunsTable]
}

func (m *Machines) get(ctx context.Context, given, key, flag, env string) (string, error) {
	if given != "" {
		if !isStateMachineARN(given) {
			return "", exitf(ExitUsage, "%s %q is not a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)", flag, given)
		}
		return given, nil
	}
	m.once.Do(func() { m.outputs, m.err = m.readStack(ctx) })
	if m.err != nil {
		return "", m.err
	}
	arn := m.outputs[key]
	if arn == "" {
		return "", exitf(ExitUsage, "stack %s has no output %s: is it amifleet's stack? Pass --stack, %s or set %s", m.Stack, key, flag, env)
	}
	return arn, nil
}

func (m *Machines) readStack(ctx context.Context) (map[string]string, error) {
	if m.CFN == nil || m.Stack == "" {
		return nil, exitf(ExitUsage, "no stack to read the state machines from: pass --stack, or the ARNs with --pipeline-arn/--teardown-arn")
	}
	out, err := m.CFN.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(m.Stack)})
	if err != nil {
		var ae smithy.APIError
		// CloudFormation answers a missing stack with ValidationError "Stack with id X does not exist".
		if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist") {
			return nil, exitf(ExitUsage, "stack %s does not exist in this account and region: deploy it (make deploy), pass --stack, or the ARNs with --pipeline-arn/--teardown-arn", m.Stack)
		}
		return nil, fmt.Errorf("read stack %s: %w", m.Stack, err)
	}
	if len(out.Stacks) == 0 {
		return nil, exitf(ExitUsage, "stack %s not found", m.Stack)
	}
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return outputs, nil
}

func isStateMachineARN(s string) bool {
	a, err := arn.Parse(s)
	name, ok := strings.CutPrefix(a.Resource, "stateMachine:")
	return err == nil && a.Service == "states" && ok && name != "" && !strings.Contains(name, ":")
}

// executionARN is the ARN Step Functions gives the execution called name of the
// state machine stateMachineARN.
func executionARN(stateMachineARN, name string) string {
	return strings.Replace(stateMachineARN, ":stateMachine:", ":execution:", 1) + ":" + name
}

// executionName is the last part of an execution ARN.
func executionName(arn string) string {
	return arn[strings.LastIndex(arn, ":")+1:]
}
