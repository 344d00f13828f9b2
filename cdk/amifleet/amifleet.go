// Package amifleet is amifleet as a CDK construct, for a Go CDK app: the stage
// Lambdas, the Pipeline and Teardown state machines, their least-privilege roles and
// logs, an optional schedule, and the stack outputs that the amifleet CLI reads.
// amifleet's own app (cdk/main.go) is one use of it: a stack holding one AmiFleet.
//
// In a team's own app:
//
//	stack := awscdk.NewStack(app, jsii.String("Tools"), nil)
//	amifleet.NewAmiFleet(stack, "AmiFleet", &amifleet.AmiFleetProps{
//		Architecture: amifleet.ArchARM64,
//		BuildDir:     "third_party/amifleet/build/arm64", // `make build ARCH=arm64` in amifleet's checkout
//	})
//
// and then `amifleet run --stack Tools ...`. The construct reads the Lambdas' zips
// from BuildDir, so build them first. A stack holds at most one AmiFleet: its
// outputs (PipelineStateMachineArn, TeardownStateMachineArn, <Stage>FunctionName,
// <Stage>LogGroupName) are added to the stack under those plain keys, which is how the CLI finds it, and
// its state machines' log groups are named after the stack.
//
// The module github.com/amifleet/amifleet/cdk depends on github.com/amifleet/amifleet
// (the stage names, the state machine definitions) through a replace directive,
// which Go ignores in a dependency: until versions are tagged, an app that imports
// this package adds both to its go.mod from a checkout:
//
//	require github.com/amifleet/amifleet/cdk v0.0.0
//	replace github.com/amifleet/amifleet => ../amifleet
//	replace github.com/amifleet/amifleet/cdk => ../amifleet/cdk
package amifleet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/stepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
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

// Lambda architectures, as AmiFleetProps.Architecture (and the app's `arch` context)
// names them.
const (
	ArchARM64 = "arm64"
	ArchX8664 = "x86_64"
)

// Output keys that the construct adds to its stack, which the amifleet CLI reads
// (and, per stage, <Stage>FunctionName and <Stage>LogGroupName).
const (
	OutputPipelineARN = "PipelineStateMachineArn"
	OutputTeardownARN = "TeardownStateMachineArn"
	OutputRefreshARN  = "RefreshStateMachineArn"
	OutputRunsTable   = "RunsTableName"
)

// AmiFleetProps configures NewAmiFleet.
type AmiFleetProps struct {
	// Architecture of every Lambda: ArchARM64 (the default, Graviton) or ArchX8664
	// ("amd64" is accepted too); it must match the zips in BuildDir.
	Architecture string
	// BuildDir holds one <dir>.zip per stage (`make build ARCH=arm64|amd64` writes
	// build/<goarch>/); required.
	BuildDir string
	// Schedule, when set, is an EventBridge Scheduler expression, for example
	// "cron(0 6 * * ? *)" or "rate(1 day)", that starts the Pipeline with
	// ScheduledInput.
	Schedule string
	// ScheduledInput is the Pipeline's input on a scheduled run (JSON text, for
	// example events/scheduled-input.json); required with Schedule.
	ScheduledInput string
	// RefreshSchedule, when set, is an EventBridge Scheduler expression that starts
	// the Refresh state machine with RefreshScheduledInput (for example nightly:
	// "cron(0 2 * * ? *)").
	RefreshSchedule string
	// RefreshScheduledInput is the Refresh's input on a scheduled refresh (JSON text
	// with the runId of a live run, for example events/scheduled-refresh-input.json);
	// required with RefreshSchedule.
	RefreshScheduledInput string
	// CreateTimeoutSeconds bounds the timeout of every function that creates
	// something, and is what Cleanup waits out after a stopped Parallel branch (its
	// AMIFLEET_CREATE_TIMEOUT_SECONDS): 10 to pipeline.CreateTimeoutSeconds (120), or
	// 0 for that default. The local cloud, where a create takes a second, deploys 20.
	CreateTimeoutSeconds int
}

// MinCreateTimeoutSeconds is the shortest AmiFleetProps.CreateTimeoutSeconds.
const MinCreateTimeoutSeconds = 10

// Check reports what is wrong with props, naming the field: NewAmiFleet panics
// with it (as CDK constructs do on bad props), so an app can call Check first to
// report it as an error.
func (p *AmiFleetProps) Check() error {
	if p == nil {
		return errors.New("amifleet: AmiFleetProps is nil: props.BuildDir is required")
	}
	var errs []error
	if _, err := architecture(p.Architecture); err != nil {
		errs = append(errs, err)
	}
	if p.CreateTimeoutSeconds != 0 && (p.CreateTimeoutSeconds < MinCreateTimeoutSeconds || p.CreateTimeoutSeconds > pipeline.CreateTimeoutSeconds) {
		errs = append(errs, fmt.Errorf("props.CreateTimeoutSeconds %d: want whole seconds from %d to %d, or 0 for %d",
			p.CreateTimeoutSeconds, MinCreateTimeoutSeconds, pipeline.CreateTimeoutSeconds, pipeline.CreateTimeoutSeconds))
	}
	switch {
	case p.Schedule == "" && p.ScheduledInput != "":
		errs = append(errs, errors.New("props.ScheduledInput is set without a props.Schedule"))
	case p.Schedule != "" && len(bytes.TrimSpace([]byte(p.ScheduledInput))) == 0:
		errs = append(errs, fmt.Errorf("props.Schedule %q: props.ScheduledInput is empty; give the Pipeline's input (JSON, e.g. events/scheduled-input.json)", p.Schedule))
	case p.Schedule != "":
		if _, err := pipeline.ParseConfig([]byte(p.ScheduledInput)); err != nil {
			errs = append(errs, fmt.Errorf("props.ScheduledInput: %w", err))
		}
	}
	switch {
	case p.RefreshSchedule == "" && p.RefreshScheduledInput != "":
		errs = append(errs, errors.New("props.RefreshScheduledInput is set without a props.RefreshSchedule"))
	case p.RefreshSchedule != "":
		if _, err := pipeline.ParseRefreshInput([]byte(p.RefreshScheduledInput)); err != nil {
			errs = append(errs, fmt.Errorf("props.RefreshScheduledInput (for props.RefreshSchedule %q): %w", p.RefreshSchedule, err))
		}
	}
	if p.BuildDir == "" {
		errs = append(errs, errors.New("props.BuildDir is empty: the folder with the stages' zips (`make build` writes build/<goarch>/)"))
	} else {
		for _, f := range RequiredZips(p.BuildDir) {
			if _, err := os.Stat(f); err != nil {
				errs = append(errs, fmt.Errorf("%s is missing: run `make build ARCH=%s` first", f, GoArch(p.Architecture)))
				break
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("amifleet: %w", errors.Join(errs...))
	}
	return nil
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
	pipeline.Verify:    {128, pipeline.MaxVerifySeconds + 30},
	pipeline.RecordRun: {128, 30},
	// Cleanup deletes in reverse order and may be called many times by its poll loop.
	pipeline.Cleanup:          {256, 120},
	pipeline.PrepareRefresh:   {128, 30},
	pipeline.CommitGeneration: {128, 30},
	// PruneGenerations, like Cleanup, deletes and is called again by its poll loop.
	pipeline.PruneGenerations: {256, 120},
}

// AmiFleet is amifleet's construct: the parts that the outputs and tests refer to.
type AmiFleet struct {
	constructs.Construct
	// Functions are the stage Lambdas by pipeline.Functions name ("Validate", ...).
	Functions map[string]awslambda.Function
	Pipeline  sfn.StateMachine
	Teardown  sfn.StateMachine
	Refresh   sfn.StateMachine
	// Runs is the runs table: one item per live run, its configuration and the lock
	// that lets one refresh at a time hold it.
	Runs awsdynamodb.Table
	// Schedule is nil without AmiFleetProps.Schedule, RefreshSchedule without
	// AmiFleetProps.RefreshSchedule.
	Schedule        awsscheduler.Schedule
	RefreshSchedule awsscheduler.Schedule
}

// NewAmiFleet adds amifleet to scope's stack: one Lambda per pipeline.Functions entry,
// each with its own log group and least-privilege role, the Pipeline and Teardown
// state machines from stepfunctions/*.asl.json, an optional schedule, and the stack
// outputs that the amifleet CLI reads. It panics on props that Check refuses, and
// on a stack that already holds an AmiFleet.
//
// Its resources' logical ids derive from id, as usual; with the id "Default" (which
// the CDK leaves out of logical ids) they are those of amifleet's own stack, where
// the resources were the stack's children.
func NewAmiFleet(scope constructs.Construct, id string, props *AmiFleetProps) *AmiFleet {
	if err := props.Check(); err != nil {
		panic(err)
	}
	stack := awscdk.Stack_Of(scope)
	if stack.Node().TryFindChild(jsii.String(OutputPipelineARN)) != nil {
		panic(fmt.Errorf("amifleet: stack %s already holds an AmiFleet: a stack holds one (the amifleet CLI finds it by the stack's outputs); put another in its own stack",
			*stack.Node().Path()))
	}
	arch, _ := architecture(props.Architecture)
	c := constructs.NewConstruct(scope, jsii.String(id))
	s := &AmiFleet{Construct: c, Functions: map[string]awslambda.Function{}}
	a := newARNs()
	s.Runs = awsdynamodb.NewTable(c, jsii.String("Runs"), &awsdynamodb.TableProps{
		PartitionKey: &awsdynamodb.Attribute{Name: jsii.String("runId"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:  awsdynamodb.BillingMode_PAY_PER_REQUEST,
		// Records exist only for live fleets; with the stack gone no refresh can run.
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(s.Runs, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-DDB3"),
		Reason: jsii.String("The table holds only live runs' records and locks, rewritten by every refresh and " +
			"deleted by every teardown; a restored copy would name fleets that no longer exist."),
	}}, jsii.Bool(false))
	a.table = *s.Runs.TableArn()
	// The Refresh state machine's name is known before it exists, so that a role of
	// one of its own functions can name its executions without a dependency cycle.
	refreshName := *stack.StackName() + "-Refresh"
	a.refreshExecutions = "arn:" + a.partition + ":states:" + a.region + ":" + a.account + ":execution:" + refreshName + ":*"

	createTimeout := float64(pipeline.CreateTimeoutSeconds)
	if props.CreateTimeoutSeconds > 0 {
		createTimeout = float64(props.CreateTimeoutSeconds)
	}
	for _, f := range pipeline.Functions {
		size, ok := sizes[f.Name]
		if !ok {
			panic(fmt.Errorf("amifleet: no memory and timeout for function %s", f.Name))
		}
		env := map[string]*string{}
		switch {
		case slices.Contains(creates, f.Name):
			size.timeoutSeconds = min(size.timeoutSeconds, createTimeout)
		case f.Name == pipeline.Cleanup || f.Name == pipeline.PruneGenerations:
			env[pipeline.EnvCreateTimeout] = jsii.String(fmt.Sprint(createTimeout))
		}
		if slices.Contains(recordUsers, f.Name) {
			env[pipeline.EnvRunsTable] = s.Runs.TableName()
		}
		perms, ok := permissions[f.Name]
		if !ok {
			panic(fmt.Errorf("amifleet: no IAM permissions for function %s", f.Name))
		}
		logs := awslogs.NewLogGroup(c, jsii.String(f.Name+"Logs"), &awslogs.LogGroupProps{
			Retention:     awslogs.RetentionDays_ONE_MONTH,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
		role := awsiam.NewRole(c, jsii.String(f.Name+"Role"), &awsiam.RoleProps{
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
		if len(env) == 0 {
			env = nil
		}
		fn := awslambda.NewFunction(c, jsii.String(f.Name+"Function"), &awslambda.FunctionProps{
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
		// The outputs are the stack's own children, so that their keys are these plain
		// names wherever the construct sits: the CLI reads them by name.
		awscdk.NewCfnOutput(stack, jsii.String(f.Name+"FunctionName"), &awscdk.CfnOutputProps{
			Value:       fn.FunctionName(),
			Description: jsii.String("Lambda function of stage " + f.Name),
		})
		// `amifleet logs` reads the run's lines from these groups.
		awscdk.NewCfnOutput(stack, jsii.String(f.Name+"LogGroupName"), &awscdk.CfnOutputProps{
			Value:       logs.LogGroupName(),
			Description: jsii.String("CloudWatch Logs group of stage " + f.Name),
		})
	}

	s.Teardown = s.stateMachine(stack, "Teardown", "", stepfunctions.Teardown(), []string{"Cleanup"}, nil)
	var all []string
	for _, f := range pipeline.Functions {
		if !f.RefreshOnly() {
			all = append(all, f.Name)
		}
	}
	s.Pipeline = s.stateMachine(stack, "Pipeline", "", stepfunctions.Pipeline(), all, map[string]string{
		stepfunctions.TeardownPlaceholder: *s.Teardown.StateMachineArn(),
	})
	s.Refresh = s.stateMachine(stack, "Refresh", refreshName, stepfunctions.Refresh(), pipeline.RefreshFunctions, nil)
	// A run with teardownAfterMinutes starts Teardown (with its delay) by itself.
	s.Pipeline.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings("states:StartExecution"),
		Resources: jsii.Strings(*s.Teardown.StateMachineArn()),
	}))

	if props.Schedule != "" {
		s.Schedule = s.schedule("Schedule", s.Pipeline, props.Schedule, props.ScheduledInput)
	}
	if props.RefreshSchedule != "" {
		s.RefreshSchedule = s.schedule("RefreshSchedule", s.Refresh, props.RefreshSchedule, props.RefreshScheduledInput)
	}

	awscdk.NewCfnOutput(stack, jsii.String(OutputPipelineARN), &awscdk.CfnOutputProps{
		Value:       s.Pipeline.StateMachineArn(),
		Description: jsii.String("Start a fleet: StartExecution with a name and a config as input"),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputTeardownARN), &awscdk.CfnOutputProps{
		Value:       s.Teardown.StateMachineArn(),
		Description: jsii.String(`Delete a run's resources: StartExecution with {"runId": "..."}`),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputRefreshARN), &awscdk.CfnOutputProps{
		Value:       s.Refresh.StateMachineArn(),
		Description: jsii.String(`Roll a live run onto a new image: StartExecution with {"runId": "..."}`),
	})
	awscdk.NewCfnOutput(stack, jsii.String(OutputRunsTable), &awscdk.CfnOutputProps{
		Value:       s.Runs.TableName(),
		Description: jsii.String("DynamoDB table of the live runs' records"),
	})
	return s
}

// recordUsers are the functions that read or write the runs table.
var recordUsers = []string{pipeline.RecordRun, pipeline.Cleanup, pipeline.PrepareRefresh, pipeline.CommitGeneration,
	pipeline.PruneGenerations}

// stateMachine deploys one ASL definition with its ${<Name>FunctionArn} placeholders
// (and extra ones) replaced by the ARNs they name and ${Partition} by AWS::Partition
// (aws, aws-cn, aws-us-gov: the definitions name none), allowed to invoke exactly
// those functions.
func (s *AmiFleet) stateMachine(stack awscdk.Stack, name, machineName string, definition []byte, functions []string, extra map[string]string) sfn.StateMachine {
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
		panic(fmt.Errorf("amifleet: state machine %s: %w", name, err))
	}
	// The ARNs and the partition are tokens: the CDK turns the rendered text into an
	// Fn::Join that CloudFormation fills in at deploy time (not DefinitionSubstitutions,
	// which the local cloud's CloudFormation ignores).
	body, err := stepfunctions.Render(definition, values)
	if err != nil {
		panic(fmt.Errorf("amifleet: state machine %s: %w", name, err))
	}
	logs := awslogs.NewLogGroup(s.Construct, jsii.String(name+"Logs"), &awslogs.LogGroupProps{
		// Step Functions' vended-logs prefix keeps the CloudWatch Logs resource policy
		// small; one AmiFleet per stack keeps the name unique.
		LogGroupName:  jsii.String("/aws/vendedlogs/states/" + *stack.StackName() + "-" + name),
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	var smName *string
	if machineName != "" {
		smName = jsii.String(machineName)
	}
	sm := sfn.NewStateMachine(s.Construct, jsii.String(name), &sfn.StateMachineProps{
		StateMachineName: smName,
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
	return sm
}

// schedule starts a state machine (the Pipeline, or Refresh) on expr with input,
// through EventBridge Scheduler and a role that may start that state machine only.
// A scheduled refresh never starts more than an hour late; a retried start of one
// that did start is refused by the run's lock.
func (s *AmiFleet) schedule(id string, target sfn.StateMachine, expr, input string) awsscheduler.Schedule {
	what := "Pipeline"
	var age awscdk.Duration
	if target == s.Refresh {
		what, age = "Refresh", awscdk.Duration_Hours(jsii.Number(1))
	}
	role := awsiam.NewRole(s.Construct, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), nil),
		Description: jsii.String("amifleet schedule: start the " + what + " state machine only"),
	})
	return awsscheduler.NewSchedule(s.Construct, jsii.String(id), &awsscheduler.ScheduleProps{
		Schedule:    awsscheduler.ScheduleExpression_Expression(jsii.String(expr), nil),
		Description: jsii.String("Starts the amifleet " + what + " with its scheduled input"),
		Target: awsschedulertargets.NewStepFunctionsStartExecution(target, &awsschedulertargets.ScheduleTargetBaseProps{
			Input:       awsscheduler.ScheduleTargetInput_FromText(jsii.String(input)),
			Role:        role,
			MaxEventAge: age,
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

// RequiredZips are the zips NewAmiFleet reads from buildDir.
func RequiredZips(buildDir string) []string {
	zips := make([]string, 0, len(pipeline.Functions))
	for _, f := range pipeline.Functions {
		zips = append(zips, filepath.Join(buildDir, f.Dir()+".zip"))
	}
	return zips
}
