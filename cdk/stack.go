package main

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/stepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	sfn "github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Lambda architectures, as the `arch` context names them.
const (
	ArchARM64 = "arm64"
	ArchX8664 = "x86_64"
)

// AmiFleetStackProps configures NewAmiFleetStack.
type AmiFleetStackProps struct {
	awscdk.StackProps
	// Architecture of every Lambda: ArchARM64 (the default, Graviton) or ArchX8664
	// (the local cloud runs the binaries on this machine).
	Architecture string
	// BuildDir holds one <dir>.zip per pipeline.Functions entry (`make build`).
	BuildDir string
	// Schedule, when set, is an EventBridge Scheduler expression, for example
	// "cron(0 6 * * ? *)", that starts the Pipeline with ScheduledInput.
	Schedule string
	// ScheduledInput is the Pipeline's input on a scheduled run (JSON text).
	ScheduledInput string
	// CreateTimeoutSeconds bounds the timeout of every function that creates
	// something, and is what Cleanup waits out after a stopped Parallel branch (its
	// AMIFLEET_CREATE_TIMEOUT_SECONDS); 0 means pipeline.CreateTimeoutSeconds. The local
	// cloud, where a create takes a second, deploys a shorter one.
	CreateTimeoutSeconds int
}

// creates are the functions that create resources: none runs longer than the create
// timeout, which Cleanup waits out.
var creates = []string{pipeline.CreateSecurityGroups, pipeline.LaunchBase, pipeline.CreateImage,
	pipeline.CreateLoadBalancer, pipeline.LaunchReplicas}

// sizing is what one function gets: checks only describe, creates wait on AWS APIs
// that can be slow (RunInstances for 20 replicas, CreateLoadBalancer). No function
// that creates something gets more than pipeline.CreateTimeoutSeconds: Cleanup's
// clean looks span it (a test holds the table to it).
type sizing struct {
	memoryMB       float64
	timeoutSeconds float64
}

var sizes = map[string]sizing{
	pipeline.Validate:                {128, 30},
	pipeline.CreateSecurityGroups:    {256, 60},
	pipeline.LaunchBase:              {256, 60},
	pipeline.CheckBaseStopped:        {128, 30},
	pipeline.CreateImage:             {256, 60},
	pipeline.CheckImageAvailable:     {128, 30},
	pipeline.CreateLoadBalancer:      {256, pipeline.CreateTimeoutSeconds},
	pipeline.CheckLoadBalancerActive: {128, 30},
	pipeline.LaunchReplicas:          {256, pipeline.CreateTimeoutSeconds},
	pipeline.CheckInstancesRunning:   {128, 30},
	pipeline.RegisterTargets:         {256, 60},
	pipeline.CheckTargetsHealthy:     {128, 30},
	// Verify sends config.verify.requests GETs with their own timeouts: Validate
	// accepts up to pipeline.MaxVerifySeconds of them (the default 12 × 5 s is 60 s
	// alone), and a Lambda timeout is a Sandbox.Timedout that no Retry catches.
	pipeline.Verify: {128, pipeline.MaxVerifySeconds + 30},
	// Cleanup deletes in reverse order and may be called many times by its poll loop.
	pipeline.Cleanup: {256, 120},
}

// AmiFleetStack is what NewAmiFleetStack returns: the stack and the parts that the
// app's outputs and the tests refer to.
type AmiFleetStack struct {
	awscdk.Stack
	Functions map[string]awslambda.Function
	Pipeline  sfn.StateMachine
	Teardown  sfn.StateMachine
	Schedule  awsscheduler.Schedule
}

// NewAmiFleetStack builds amifleet's stack: one Lambda per pipeline.Functions entry,
// each with its own log group and least-privilege role, the Pipeline and Teardown
// state machines from stepfunctions/*.asl.json, an optional schedule, and outputs.
func NewAmiFleetStack(scope constructs.Construct, id string, props *AmiFleetStackProps) (*AmiFleetStack, error) {
	if props == nil {
		props = &AmiFleetStackProps{}
	}
	arch, err := architecture(props.Architecture)
	if err != nil {
		return nil, err
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	s := &AmiFleetStack{Stack: stack, Functions: map[string]awslambda.Function{}}
	a := newARNs()

	createTimeout := float64(pipeline.CreateTimeoutSeconds)
	if props.CreateTimeoutSeconds > 0 {
		createTimeout = float64(props.CreateTimeoutSeconds)
	}
	for _, f := range pipeline.Functions {
		size, ok := sizes[f.Name]
		if !ok {
			return nil, fmt.Errorf("no memory and timeout for function %s", f.Name)
		}
		var env map[string]*string
		switch {
		case slices.Contains(creates, f.Name):
			size.timeoutSeconds = min(size.timeoutSeconds, createTimeout)
		case f.Name == pipeline.Cleanup:
			env = map[string]*string{pipeline.EnvCreateTimeout: jsii.String(fmt.Sprint(createTimeout))}
		}
		perms, ok := permissions[f.Name]
		if !ok {
			return nil, fmt.Errorf("no IAM permissions for function %s", f.Name)
		}
		logs := awslogs.NewLogGroup(stack, jsii.String(f.Name+"Logs"), &awslogs.LogGroupProps{
			Retention:     awslogs.RetentionDays_ONE_MONTH,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		role := awsiam.NewRole(stack, jsii.String(f.Name+"Role"), &awsiam.RoleProps{
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String("amifleet " + f.Name + ": only the AWS actions this stage calls"),
		})
		// Instead of AWSLambdaBasicExecutionRole: write to this function's own log group only.
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
			Resources: jsii.Strings(*logs.LogGroupArn()),
		}))
		for _, g := range perms(a) {
			role.AddToPolicy(g.statement())
		}
		fn := awslambda.NewFunction(stack, jsii.String(f.Name+"Function"), &awslambda.FunctionProps{
			Description:           jsii.String("amifleet stage " + f.Name),
			Code:                  awslambda.Code_FromAsset(jsii.String(filepath.Join(props.BuildDir, f.Dir()+".zip")), nil),
			Runtime:               awslambda.Runtime_PROVIDED_AL2023(),
			Handler:               jsii.String("bootstrap"),
			Architecture:          arch,
			MemorySize:            jsii.Number(size.memoryMB),
			Timeout:               awscdk.Duration_Seconds(jsii.Number(size.timeoutSeconds)),
			Environment:           &env,
			Role:                  role,
			LogGroup:              logs,
			LoggingFormat:         awslambda.LoggingFormat_JSON,
			ApplicationLogLevelV2: awslambda.ApplicationLogLevel_INFO,
			SystemLogLevelV2:      awslambda.SystemLogLevel_WARN,
			Tracing:               awslambda.Tracing_ACTIVE,
		})
		s.Functions[f.Name] = fn
		cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
			Id:        jsii.String("AwsSolutions-IAM5"),
			Reason:    jsii.String(reasonWildcards),
			AppliesTo: wildcardFindings(),
		}}, jsii.Bool(true))
		awscdk.NewCfnOutput(stack, jsii.String(f.Name+"FunctionName"), &awscdk.CfnOutputProps{
			Value:       fn.FunctionName(),
			Description: jsii.String("Lambda function of stage " + f.Name),
		})
	}

	teardown, err := s.stateMachine("Teardown", stepfunctions.Teardown(), []string{"Cleanup"}, nil)
	if err != nil {
		return nil, err
	}
	s.Teardown = teardown
	all := make([]string, 0, len(pipeline.Functions))
	for _, f := range pipeline.Functions {
		all = append(all, f.Name)
	}
	p, err := s.stateMachine("Pipeline", stepfunctions.Pipeline(), all, map[string]string{
		"TeardownStateMachineArn": *teardown.StateMachineArn(),
	})
	if err != nil {
		return nil, err
	}
	s.Pipeline = p
	// A run with teardownAfterMinutes starts Teardown (with its delay) by itself.
	p.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("states:StartExecution"),
		Resources: jsii.Strings(*teardown.StateMachineArn()),
	}))

	if props.Schedule != "" {
		s.Schedule = s.schedule(props.Schedule, props.ScheduledInput)
	}

	awscdk.NewCfnOutput(stack, jsii.String("PipelineStateMachineArn"), &awscdk.CfnOutputProps{
		Value:       p.StateMachineArn(),
		Description: jsii.String("Start a fleet: StartExecution with a name and a config as input"),
	})
	awscdk.NewCfnOutput(stack, jsii.String("TeardownStateMachineArn"), &awscdk.CfnOutputProps{
		Value:       teardown.StateMachineArn(),
		Description: jsii.String(`Delete a run's resources: StartExecution with {"runId": "..."}`),
	})
	return s, nil
}

// stateMachine deploys one ASL definition with its ${<Name>FunctionArn} placeholders
// (and extra ones) replaced by the ARNs they name and ${Partition} by AWS::Partition
// (aws, aws-cn, aws-us-gov: the definitions name none), allowed to invoke exactly
// those functions.
func (s *AmiFleetStack) stateMachine(name string, definition []byte, functions []string, extra map[string]string) (sfn.StateMachine, error) {
	values := map[string]string{stepfunctions.PartitionPlaceholder: *awscdk.Aws_PARTITION()}
	for k, v := range extra {
		values[k] = v
	}
	var invoke []*string
	for _, f := range pipeline.Functions {
		if !slices.Contains(functions, f.Name) {
			continue
		}
		arn := s.Functions[f.Name].FunctionArn()
		values[f.Placeholder()] = *arn
		invoke = append(invoke, arn)
	}
	if err := stepfunctions.Lint(definition); err != nil {
		return nil, fmt.Errorf("state machine %s: %w", name, err)
	}
	// The ARNs and the partition are tokens: the CDK turns the rendered text into an
	// Fn::Join that CloudFormation fills in at deploy time (not DefinitionSubstitutions,
	// which the local cloud's CloudFormation ignores).
	body, err := stepfunctions.Render(definition, values)
	if err != nil {
		return nil, fmt.Errorf("state machine %s: %w", name, err)
	}
	logs := awslogs.NewLogGroup(s.Stack, jsii.String(name+"Logs"), &awslogs.LogGroupProps{
		// Step Functions' vended-logs prefix keeps the CloudWatch Logs resource policy small.
		LogGroupName:  jsii.String("/aws/vendedlogs/states/" + *s.Stack.StackName() + "-" + name),
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	sm := sfn.NewStateMachine(s.Stack, jsii.String(name), &sfn.StateMachineProps{
		DefinitionBody:   sfn.DefinitionBody_FromString(jsii.String(string(body))),
		StateMachineType: sfn.StateMachineType_STANDARD,
		Logs: &sfn.LogOptions{
			Destination: logs,
			Level:       sfn.LogLevel_ALL,
			// The documents carry user tags and DNS names; execution history has them.
			IncludeExecutionData: jsii.Bool(false),
		},
		TracingEnabled: jsii.Bool(true),
		RemovalPolicy:  awscdk.RemovalPolicy_DESTROY,
	})
	sm.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("lambda:InvokeFunction"),
		Resources: &invoke,
	}))
	cdknag.NagSuppressions_AddResourceSuppressions(sm, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Step Functions' log delivery (logs:*LogDelivery, PutResourcePolicy, Describe*) " +
			"and X-Ray (PutTraceSegments, PutTelemetryRecords, GetSampling*) support no resource-level " +
			"permissions; the CDK adds exactly these on Resource *."),
		AppliesTo: &[]interface{}{"Resource::*"},
	}}, jsii.Bool(true))
	return sm, nil
}

// schedule starts the Pipeline on expr with input, through EventBridge Scheduler and a
// role that may start that state machine only.
func (s *AmiFleetStack) schedule(expr, input string) awsscheduler.Schedule {
	role := awsiam.NewRole(s.Stack, jsii.String("ScheduleRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), nil),
		Description: jsii.String("amifleet schedule: start the Pipeline state machine only"),
	})
	return awsscheduler.NewSchedule(s.Stack, jsii.String("Schedule"), &awsscheduler.ScheduleProps{
		Schedule:    awsscheduler.ScheduleExpression_Expression(jsii.String(expr), nil),
		Description: jsii.String("Starts the amifleet Pipeline with events/scheduled-input.json"),
		Target: awsschedulertargets.NewStepFunctionsStartExecution(s.Pipeline, &awsschedulertargets.ScheduleTargetBaseProps{
			Input: awsscheduler.ScheduleTargetInput_FromText(jsii.String(input)),
			Role:  role,
		}),
	})
}

func architecture(name string) (awslambda.Architecture, error) {
	switch name {
	case "", ArchARM64:
		return awslambda.Architecture_ARM_64(), nil
	case ArchX8664, "amd64":
		return awslambda.Architecture_X86_64(), nil
	}
	return nil, fmt.Errorf("architecture %q: want %s or %s", name, ArchARM64, ArchX8664)
}

// GoArch is the GOARCH that `make build ARCH=...` uses for a Lambda architecture,
// and so the folder build/<GoArch>/ that holds its zips.
func GoArch(name string) string {
	if name == ArchX8664 || name == "amd64" {
		return "amd64"
	}
	return "arm64"
}

// requiredZips are the zips NewAmiFleetStack reads from buildDir.
func requiredZips(buildDir string) []string {
	zips := make([]string, 0, len(pipeline.Functions))
	for _, f := range pipeline.Functions {
		zips = append(zips, filepath.Join(buildDir, f.Dir()+".zip"))
	}
	return zips
}
