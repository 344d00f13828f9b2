package stages

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// EC2API is the part of the EC2 API that amifleet calls. Tests give a fake that
// records the requests; Lambdas give *ec2.Client.
type EC2API interface {
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeInstanceTypeOfferings(context.Context, *ec2.DescribeInstanceTypeOfferingsInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	StartInstances(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	GetConsoleOutput(context.Context, *ec2.GetConsoleOutputInput, ...func(*ec2.Options)) (*ec2.GetConsoleOutputOutput, error)
	CreateImage(context.Context, *ec2.CreateImageInput, ...func(*ec2.Options)) (*ec2.CreateImageOutput, error)
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DeregisterImage(context.Context, *ec2.DeregisterImageInput, ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error)
	DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
}

// ELBAPI is the part of the Elastic Load Balancing v2 API that amifleet calls.
type ELBAPI interface {
	CreateTargetGroup(context.Context, *elb.CreateTargetGroupInput, ...func(*elb.Options)) (*elb.CreateTargetGroupOutput, error)
	DescribeTargetGroups(context.Context, *elb.DescribeTargetGroupsInput, ...func(*elb.Options)) (*elb.DescribeTargetGroupsOutput, error)
	DeleteTargetGroup(context.Context, *elb.DeleteTargetGroupInput, ...func(*elb.Options)) (*elb.DeleteTargetGroupOutput, error)
	DescribeTargetGroupAttributes(context.Context, *elb.DescribeTargetGroupAttributesInput, ...func(*elb.Options)) (*elb.DescribeTargetGroupAttributesOutput, error)
	ModifyTargetGroupAttributes(context.Context, *elb.ModifyTargetGroupAttributesInput, ...func(*elb.Options)) (*elb.ModifyTargetGroupAttributesOutput, error)
	CreateLoadBalancer(context.Context, *elb.CreateLoadBalancerInput, ...func(*elb.Options)) (*elb.CreateLoadBalancerOutput, error)
	DescribeLoadBalancers(context.Context, *elb.DescribeLoadBalancersInput, ...func(*elb.Options)) (*elb.DescribeLoadBalancersOutput, error)
	DeleteLoadBalancer(context.Context, *elb.DeleteLoadBalancerInput, ...func(*elb.Options)) (*elb.DeleteLoadBalancerOutput, error)
	CreateListener(context.Context, *elb.CreateListenerInput, ...func(*elb.Options)) (*elb.CreateListenerOutput, error)
	DescribeListeners(context.Context, *elb.DescribeListenersInput, ...func(*elb.Options)) (*elb.DescribeListenersOutput, error)
	DeleteListener(context.Context, *elb.DeleteListenerInput, ...func(*elb.Options)) (*elb.DeleteListenerOutput, error)
	DescribeTags(context.Context, *elb.DescribeTagsInput, ...func(*elb.Options)) (*elb.DescribeTagsOutput, error)
	RegisterTargets(context.Context, *elb.RegisterTargetsInput, ...func(*elb.Options)) (*elb.RegisterTargetsOutput, error)
	DeregisterTargets(context.Context, *elb.DeregisterTargetsInput, ...func(*elb.Options)) (*elb.DeregisterTargetsOutput, error)
	DescribeTargetHealth(context.Context, *elb.DescribeTargetHealthInput, ...func(*elb.Options)) (*elb.DescribeTargetHealthOutput, error)
}

// SSMAPI resolves the public parameter that names the latest Amazon Linux AMI.
type SSMAPI interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// QuotasAPI reads the account's vCPU quota (Service Quotas) before a run creates
// anything.
type QuotasAPI interface {
	GetServiceQuota(context.Context, *servicequotas.GetServiceQuotaInput, ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error)
}

// StatesAPI tells a refresh whether the execution that holds its run still runs.
type StatesAPI interface {
	DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

// Stages carries what every stage needs. Each exported method is one Lambda's
// handler logic.
type Stages struct {
	EC2    EC2API
	ELB    ELBAPI
	SSM    SSMAPI
	Quotas QuotasAPI
	// Runs is the runs table's API, RunsTable its name (pipeline.EnvRunsTable; ""
	// where the deployment has none).
	Runs      RunsAPI
	RunsTable string
	States    StatesAPI
	HTTP      *http.Client
	// Region is where the run creates its resources (the Lambda's own region).
	Region string
	// Now is time.Now, replaceable in tests.
	Now func() time.Time
	// CreateTimeout is the deployed timeout of the longest function that creates
	// something (pipeline.EnvCreateTimeout; pipeline.CreateTimeoutSeconds when unset):
	// after a stopped Parallel branch, Cleanup's clean looks span it.
	CreateTimeout time.Duration
}

// FromEnvironment builds Stages with real clients from the Lambda's environment
// (AWS_REGION, credentials, and AWS_ENDPOINT_URL when the local cloud sets it).
func FromEnvironment(ctx context.Context) (*Stages, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryMaxAttempts(5))
	if err != nil {
		return nil, err
	}
	s := New(cfg)
	s.RunsTable = os.Getenv(pipeline.EnvRunsTable)
	if v := os.Getenv(pipeline.EnvCreateTimeout); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs <= 0 {
			return nil, fmt.Errorf("%s=%q is not a number of seconds", pipeline.EnvCreateTimeout, v)
		}
		s.CreateTimeout = time.Duration(secs) * time.Second
	}
	return s, nil
}

// createTimeout is CreateTimeout, or pipeline.CreateTimeoutSeconds when unset.
func (s *Stages) createTimeout() time.Duration {
	if s.CreateTimeout > 0 {
		return s.CreateTimeout
	}
	return pipeline.CreateTimeoutSeconds * time.Second
}

// New builds Stages with real clients from an AWS configuration. The EC2 client
// retries InsufficientInstanceCapacity as it retries throttling, whatever HTTP status
// it comes with (RunInstances always carries a ClientToken, so a retry cannot launch
// twice); once those retries are spent, the launch stages end the run with a
// CapacityError, which the state machine does not retry.
func New(cfg aws.Config) *Stages {
	return &Stages{
		EC2: ec2.NewFromConfig(cfg, func(o *ec2.Options) {
			o.Retryer = retry.AddWithErrorCodes(o.Retryer, codeInsufficientCapacity)
		}),
		ELB:    elb.NewFromConfig(cfg),
		SSM:    ssm.NewFromConfig(cfg),
		Quotas: servicequotas.NewFromConfig(cfg),
		Runs:   dynamodb.NewFromConfig(cfg),
		States: sfn.NewFromConfig(cfg),
		HTTP:   &http.Client{Timeout: 10 * time.Second},
		Region: cfg.Region,
		Now:    time.Now,
	}
}

// Logger is the JSON logger every Lambda writes with; Handle adds runId and stage.
func Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, nil))
}
