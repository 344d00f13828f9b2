package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// validateRecorder stands in for the AWS APIs in Validate's tests. It answers only
// the reads Validate makes (the default VPC, subnets, image, instance type, its
// offerings, the vCPU quota and the running instances), records every call, and
// fails the test on any call that would create, change or delete something. The
// embedded interfaces are nil: a read it does not answer panics, which runValidate
// turns into a test failure.
type validateRecorder struct {
	t     *testing.T
	calls []string

	vpcs []ec2types.Vpc

	subnetInputs []*ec2.DescribeSubnetsInput
	subnets      []ec2types.Subnet
	subnetsErr   error

	imageInputs []*ec2.DescribeImagesInput
	images      []ec2types.Image
	imagesErr   error

	// vcpus are the instance types EC2 knows, with their vCPUs; offered are the
	// zones that offer each.
	vcpus       map[string]int32
	offered     map[string][]string
	offerInputs []*ec2.DescribeInstanceTypeOfferingsInput

	// quota is the vCPU quota GetServiceQuota answers; quotaErr its error instead.
	quota    float64
	quotaErr error
	// running are the account's pending and running instances.
	running []ec2types.Instance
}

type validateEC2 struct {
	EC2API
	r *validateRecorder
}

type validateELB struct {
	ELBAPI
	r *validateRecorder
}

type validateSSM struct {
	SSMAPI
	r *validateRecorder
}

type validateQuotas struct {
	r *validateRecorder
}

// newValidateRecorder is an account with a default VPC whose default subnets are
// subnetA and subnetB, t2.micro (1 vCPU) and t3.micro (2 vCPUs) offered in both
// their zones, and a vCPU quota of 32 with nothing running.
func newValidateRecorder(t *testing.T) *validateRecorder {
	return &validateRecorder{t: t,
		vpcs:    []ec2types.Vpc{{VpcId: aws.String("vpc-00000001"), IsDefault: aws.Bool(true)}},
		subnets: []ec2types.Subnet{subnetA, subnetB},
		vcpus:   map[string]int32{"t2.micro": 1, "t3.micro": 2},
		offered: map[string][]string{"t2.micro": {"us-east-1a", "us-east-1b"}, "t3.micro": {"us-east-1a", "us-east-1b"}},
		quota:   32,
	}
}

func (r *validateRecorder) stages() *Stages {
	return &Stages{EC2: validateEC2{r: r}, ELB: validateELB{r: r}, SSM: validateSSM{r: r}, Quotas: validateQuotas{r: r}, Region: "us-east-1"}
}

// reads are the calls Validate makes for an input that names no subnet and no image.
var validateReads = []string{"DescribeVpcs", "DescribeSubnets", "DescribeInstanceTypes", "DescribeInstanceTypeOfferings",
	"GetServiceQuota", "DescribeInstances"}

func (e validateEC2) DescribeVpcs(_ context.Context, in *ec2.DescribeVpcsInput, _ ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error) {
	e.r.calls = append(e.r.calls, "DescribeVpcs")
	recordFake("DescribeVpcs")
	return &ec2.DescribeVpcsOutput{Vpcs: e.r.vpcs}, nil
}

func (e validateEC2) DescribeInstanceTypes(_ context.Context, in *ec2.DescribeInstanceTypesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	e.r.calls = append(e.r.calls, "DescribeInstanceTypes")
	recordFake("DescribeInstanceTypes")
	out := &ec2.DescribeInstanceTypesOutput{}
	for _, t := range in.InstanceTypes {
		v, ok := e.r.vcpus[string(t)]
		if !ok {
			return nil, apiError("InvalidInstanceType", fmt.Sprintf("The following supplied instance types do not exist: [%s]", t))
		}
		out.InstanceTypes = append(out.InstanceTypes, ec2types.InstanceTypeInfo{InstanceType: t, VCpuInfo: &ec2types.VCpuInfo{DefaultVCpus: aws.Int32(v)}})
	}
	return out, nil
}

func (e validateEC2) DescribeInstanceTypeOfferings(_ context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error) {
	e.r.calls = append(e.r.calls, "DescribeInstanceTypeOfferings")
	recordFake("DescribeInstanceTypeOfferings")
	e.r.offerInputs = append(e.r.offerInputs, in)
	var types, zones []string
	for _, f := range in.Filters {
		switch aws.ToString(f.Name) {
		case "instance-type":
			types = f.Values
		case "location":
			zones = f.Values
		}
	}
	out := &ec2.DescribeInstanceTypeOfferingsOutput{}
	for _, t := range types {
		for _, z := range e.r.offered[t] {
			if slices.Contains(zones, z) {
				out.InstanceTypeOfferings = append(out.InstanceTypeOfferings, ec2types.InstanceTypeOffering{
					InstanceType: ec2types.InstanceType(t), Location: aws.String(z), LocationType: ec2types.LocationTypeAvailabilityZone})
			}
		}
	}
	return out, nil
}

func (e validateEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	e.r.calls = append(e.r.calls, "DescribeInstances")
	recordFake("DescribeInstances")
	if len(e.r.running) == 0 {
		return &ec2.DescribeInstancesOutput{}, nil
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: e.r.running}}}, nil
}

func (q validateQuotas) GetServiceQuota(_ context.Context, in *servicequotas.GetServiceQuotaInput, _ ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error) {
	q.r.calls = append(q.r.calls, "GetServiceQuota")
	recordFake("GetServiceQuota")
	if aws.ToString(in.ServiceCode) != "ec2" || aws.ToString(in.QuotaCode) != "L-1216C47A" {
		q.r.t.Errorf("GetServiceQuota(%s, %s), want ec2, L-1216C47A", aws.ToString(in.ServiceCode), aws.ToString(in.QuotaCode))
	}
	if q.r.quotaErr != nil {
		return nil, q.r.quotaErr
	}
	return &servicequotas.GetServiceQuotaOutput{Quota: &sqtypes.ServiceQuota{Value: aws.Float64(q.r.quota)}}, nil
}

func (r *validateRecorder) refuse(method string) error {
	r.calls = append(r.calls, method)
	r.t.Errorf("Validate called %s; it must only read", method)
	return errors.New("validateRecorder: " + method + " refused")
}

func (e validateEC2) DescribeSubnets(_ context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	e.r.calls = append(e.r.calls, "DescribeSubnets")
	recordFake("DescribeSubnets")
	e.r.subnetInputs = append(e.r.subnetInputs, in)
	if e.r.subnetsErr != nil {
		return nil, e.r.subnetsErr
	}
	return &ec2.DescribeSubnetsOutput{Subnets: e.r.subnets}, nil
}

func (e validateEC2) DescribeImages(_ context.Context, in *ec2.DescribeImagesInput, _ ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	e.r.calls = append(e.r.calls, "DescribeImages")
	recordFake("DescribeImages")
	e.r.imageInputs = append(e.r.imageInputs, in)
	if e.r.imagesErr != nil {
		return nil, e.r.imagesErr
	}
	return &ec2.DescribeImagesOutput{Images: e.r.images}, nil
}

func (e validateEC2) CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	return nil, e.r.refuse("CreateSecurityGroup")
}

func (e validateEC2) AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	return nil, e.r.refuse("AuthorizeSecurityGroupIngress")
}

func (e validateEC2) DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	return nil, e.r.refuse("DeleteSecurityGroup")
}

func (e validateEC2) RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	return nil, e.r.refuse("RunInstances")
}

func (e validateEC2) StartInstances(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	return nil, e.r.refuse("StartInstances")
}

func (e validateEC2) TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	return nil, e.r.refuse("TerminateInstances")
}

func (e validateEC2) CreateImage(context.Context, *ec2.CreateImageInput, ...func(*ec2.Options)) (*ec2.CreateImageOutput, error) {
	return nil, e.r.refuse("CreateImage")
}

func (e validateEC2) DeregisterImage(context.Context, *ec2.DeregisterImageInput, ...func(*ec2.Options)) (*ec2.DeregisterImageOutput, error) {
	return nil, e.r.refuse("DeregisterImage")
}

func (e validateEC2) DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	return nil, e.r.refuse("DeleteSnapshot")
}

func (e validateELB) CreateTargetGroup(context.Context, *elb.CreateTargetGroupInput, ...func(*elb.Options)) (*elb.CreateTargetGroupOutput, error) {
	return nil, e.r.refuse("CreateTargetGroup")
}

func (e validateELB) DeleteTargetGroup(context.Context, *elb.DeleteTargetGroupInput, ...func(*elb.Options)) (*elb.DeleteTargetGroupOutput, error) {
	return nil, e.r.refuse("DeleteTargetGroup")
}

func (e validateELB) CreateLoadBalancer(context.Context, *elb.CreateLoadBalancerInput, ...func(*elb.Options)) (*elb.CreateLoadBalancerOutput, error) {
	return nil, e.r.refuse("CreateLoadBalancer")
}

func (e validateELB) DeleteLoadBalancer(context.Context, *elb.DeleteLoadBalancerInput, ...func(*elb.Options)) (*elb.DeleteLoadBalancerOutput, error) {
	return nil, e.r.refuse("DeleteLoadBalancer")
}

func (e validateELB) CreateListener(context.Context, *elb.CreateListenerInput, ...func(*elb.Options)) (*elb.CreateListenerOutput, error) {
	return nil, e.r.refuse("CreateListener")
}

func (e validateELB) DeleteListener(context.Context, *elb.DeleteListenerInput, ...func(*elb.Options)) (*elb.DeleteListenerOutput, error) {
	return nil, e.r.refuse("DeleteListener")
}

func (e validateELB) RegisterTargets(context.Context, *elb.RegisterTargetsInput, ...func(*elb.Options)) (*elb.RegisterTargetsOutput, error) {
	return nil, e.r.refuse("RegisterTargets")
}

func (e validateSSM) GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	return nil, e.r.refuse("GetParameter")
}

// runValidate runs the stage as its Lambda does (through Handle), and turns a call
// to a method the recorder does not answer (a nil interface) into a failure.
func runValidate(t *testing.T, r *validateRecorder, execName, input string) (doc pipeline.Document, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Validate called an AWS method the recorder does not answer (calls so far %v): %v", r.calls, p)
		}
	}()
	handler := Handle("Validate", r.stages().Validate)
	return handler(context.Background(), pipeline.ValidateInput{ExecutionName: execName, Input: json.RawMessage(input),
		ExecutionID: fakeExecutionARN(execName), StartTime: fakeStartTime})
}

// Three subnets of one VPC in two zones, and one of another VPC.
func validateSubnet(id, vpc, az string) ec2types.Subnet {
	return ec2types.Subnet{SubnetId: aws.String(id), VpcId: aws.String(vpc), AvailabilityZone: aws.String(az), State: ec2types.SubnetStateAvailable}
}

var (
	subnetA     = validateSubnet("subnet-0000000a", "vpc-00000001", "us-east-1a")
	subnetA2    = validateSubnet("subnet-000000a2", "vpc-00000001", "us-east-1a")
	subnetB     = validateSubnet("subnet-0000000b", "vpc-00000001", "us-east-1b")
	subnetOther = validateSubnet("subnet-0000000c", "vpc-00000002", "us-east-1c")
)

const validateImageID = "ami-0123456789abcdef0"

func apiError(code, msg string) error {
	return &smithy.GenericAPIError{Code: code, Message: msg}
}

func TestValidateRefusesBadInputBeforeCreatingAnything(t *testing.T) {
	tests := []struct {
		name     string
		execName string
		input    string
		setup    func(*validateRecorder)
		field    string
		calls    []string // the reads Validate may make before it refuses
	}{
		// Refused by the input's own rules: no AWS call at all.
		{name: "execution name without letters", execName: "___", input: `{}`, field: "executionName"},
		{name: "unknown field", input: `{"replicas": 3}`, field: "replicas"},
		{name: "wrong type", input: `{"replicaCount": "two"}`, field: "replicaCount"},
		{name: "negative count", input: `{"replicaCount": -2}`, field: "replicaCount"},
		{name: "zero count", input: `{"replicaCount": 0}`, field: "replicaCount"},
		{name: "over the cap", input: `{"replicaCount": 25}`, field: "replicaCount"},
		{name: "cap over the ceiling", input: `{"maxReplicas": 1000, "replicaCount": 600}`, field: "maxReplicas"},
		{name: "instance type without family", input: `{"instanceType": "micro"}`, field: "instanceType"},
		{name: "instance type in capitals", input: `{"instanceType": "T2.MICRO"}`, field: "instanceType"},
		{name: "malformed http cidr", input: `{"httpCidrs": ["10.0.0.0/33"]}`, field: "httpCidrs[0]"},
		{name: "no http cidr", input: `{"httpCidrs": []}`, field: "httpCidrs"},
		{name: "ssh from anywhere", input: `{"sshCidrs": ["0.0.0.0/0"]}`, field: "sshCidrs[0]"},
		{name: "ssh over-broad", input: `{"sshCidrs": ["0.0.0.0/1"]}`, field: "sshCidrs[0]"},
		{name: "ssh cidr with host bits", input: `{"sshCidrs": ["203.0.113.7/24"]}`, field: "sshCidrs[0]"},
		{name: "malformed image id", input: `{"imageId": "ubuntu"}`, field: "imageId"},
		{name: "relative image parameter", input: `{"imageParameter": "aws/al2023"}`, field: "imageParameter"},
		{name: "malformed subnet", input: `{"subnetIds": ["subnet-0000000a", "vpc-0000000b"]}`, field: "subnetIds[1]"},
		{name: "reserved tag", input: `{"tags": {"aws:createdBy": "me"}}`, field: `tags["aws:createdBy"]`},
		{name: "Name tag", input: `{"tags": {"Name": "web"}}`, field: `tags["Name"]`},
		{name: "tag value too long", input: fmt.Sprintf(`{"tags": {"team": %q}}`, strings.Repeat("v", 300)), field: `tags["team"]`},
		{name: "key name too long", input: fmt.Sprintf(`{"keyName": %q}`, strings.Repeat("k", 300)), field: "keyName"},
		{name: "page without hostname", input: `{"pageTemplate": "<h1>hi</h1>"}`, field: "pageTemplate"},
		{name: "image wait shorter than a poll", input: `{"poll": {"maxPolls": {"image": 0}}}`, field: "poll.maxPolls.image"},
		{name: "poll interval zero", input: `{"poll": {"intervalSeconds": 0}}`, field: "poll.intervalSeconds"},
		{name: "verify timeout too long", input: `{"verify": {"timeoutSeconds": 600}}`, field: "verify.timeoutSeconds"},
		{name: "teardown after a month", input: `{"teardownAfterMinutes": 43200}`, field: "teardownAfterMinutes"},
		{name: "not an object", input: `[]`, field: ""},

		// Refused by what the account says: reads only.
		{
			name:  "subnet that does not exist",
			input: `{"subnetIds": ["subnet-0000000a", "subnet-0000000f"]}`,
			setup: func(r *validateRecorder) {
				r.subnetsErr = apiError("InvalidSubnetID.NotFound", "The subnet ID 'subnet-0000000f' does not exist")
			},
			field: "subnetIds", calls: []string{"DescribeSubnets"},
		},
		{
			name:  "subnet missing from the answer",
			input: `{"subnetIds": ["subnet-0000000a", "subnet-0000000f"]}`,
			setup: func(r *validateRecorder) { r.subnets = []ec2types.Subnet{subnetA} },
			field: "subnetIds", calls: []string{"DescribeSubnets"},
		},
		{
			name:  "subnets of two VPCs",
			input: `{"subnetIds": ["subnet-0000000a", "subnet-0000000c"]}`,
			setup: func(r *validateRecorder) { r.subnets = []ec2types.Subnet{subnetA, subnetOther} },
			field: "subnetIds", calls: []string{"DescribeSubnets"},
		},
		{
			name:  "subnets of one zone",
			input: `{"subnetIds": ["subnet-0000000a", "subnet-000000a2"]}`,
			setup: func(r *validateRecorder) { r.subnets = []ec2types.Subnet{subnetA, subnetA2} },
			field: "subnetIds", calls: []string{"DescribeSubnets"},
		},
		{
			name:  "image that does not exist",
			input: `{"imageId": "` + validateImageID + `"}`,
			setup: func(r *validateRecorder) {
				r.imagesErr = apiError("InvalidAMIID.NotFound", "The image id '["+validateImageID+"]' does not exist")
			},
			field: "imageId", calls: []string{"DescribeVpcs", "DescribeSubnets", "DescribeImages"},
		},
		{
			name:  "image not listed (deregistered or private)",
			input: `{"imageId": "` + validateImageID + `"}`,
			field: "imageId", calls: []string{"DescribeVpcs", "DescribeSubnets", "DescribeImages"},
		},
		{
			name:  "image still pending",
			input: `{"imageId": "` + validateImageID + `"}`,
			setup: func(r *validateRecorder) {
				r.images = []ec2types.Image{{ImageId: aws.String(validateImageID), State: ec2types.ImageStatePending}}
			},
			field: "imageId", calls: []string{"DescribeVpcs", "DescribeSubnets", "DescribeImages"},
		},
		{
			name:  "no default VPC",
			input: `{}`,
			setup: func(r *validateRecorder) { r.vpcs = nil },
			field: "subnetIds", calls: []string{"DescribeVpcs"},
		},
		{
			name:  "instance type EC2 does not know",
			input: `{"instanceType": "t9.nano"}`,
			field: "instanceType", calls: []string{"DescribeVpcs", "DescribeSubnets", "DescribeInstanceTypes"},
		},
		{
			name:  "instance type offered in none of the zones",
			input: `{"instanceType": "t3.micro"}`,
			setup: func(r *validateRecorder) { r.offered["t3.micro"] = []string{"us-east-1e"} },
			field: "instanceType", calls: []string{"DescribeVpcs", "DescribeSubnets", "DescribeInstanceTypes", "DescribeInstanceTypeOfferings"},
		},
		{
			name:  "good subnets, bad image",
			input: `{"subnetIds": ["subnet-0000000a", "subnet-0000000b"], "imageId": "` + validateImageID + `"}`,
			setup: func(r *validateRecorder) {
				r.subnets = []ec2types.Subnet{subnetA, subnetB}
				r.images = []ec2types.Image{{ImageId: aws.String(validateImageID), State: ec2types.ImageStateFailed}}
			},
			field: "imageId", calls: []string{"DescribeSubnets", "DescribeImages"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newValidateRecorder(t)
			if tc.setup != nil {
				tc.setup(r)
			}
			execName := tc.execName
			if execName == "" {
				execName = "test-run"
			}
			doc, err := runValidate(t, r, execName, tc.input)
			var bad *pipeline.BadInputError
			if !errors.As(err, &bad) {
				t.Fatalf("Validate(%s) = %+v, %v; want a *BadInputError", tc.input, doc, err)
			}
			// aws-lambda-go reports the bare type name; the ASL matches on it.
			if name := reflect.TypeOf(err).Elem().Name(); name != pipeline.ErrBadInput {
				t.Errorf("error type %s, want %s", name, pipeline.ErrBadInput)
			}
			if bad.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q names field %q, want %q", err, bad.Field, tc.field)
			}
			if !reflect.DeepEqual(r.calls, tc.calls) {
				t.Errorf("AWS calls %v, want %v", r.calls, tc.calls)
			}
		})
	}
}

func TestValidateGoodInput(t *testing.T) {
	t.Run("empty input gives the defaults, placed in the default subnets' zones", func(t *testing.T) {
		r := newValidateRecorder(t)
		doc, err := runValidate(t, r, "Demo_Run_1", `{}`)
		if err != nil {
			t.Fatal(err)
		}
		want := pipeline.Document{RunID: doc.RunID, Generation: pipeline.PipelineGeneration, Config: pipeline.DefaultConfig(),
			TokenSeed: tokenSeed(fakeExecutionARN("Demo_Run_1"), fakeStartTime),
			Placement: &pipeline.Placement{Zones: []string{"us-east-1a", "us-east-1b"}, VCPUs: 1},
			Estimate:  doc.Estimate} // cost_test.go checks the estimate
		if !reflect.DeepEqual(doc, want) {
			t.Errorf("Validate = %+v\nwant %+v", doc, want)
		}
		if !reflect.DeepEqual(r.calls, validateReads) {
			t.Errorf("AWS calls %v, want %v", r.calls, validateReads)
		}
		if len(r.subnetInputs[0].SubnetIds) != 0 || describeFilters(r.subnetInputs[0].Filters) != "vpc-id=vpc-00000001 default-for-az=true" {
			t.Errorf("DescribeSubnets %+v, want the default VPC's default subnets", r.subnetInputs[0])
		}
		if got := describeFilters(r.offerInputs[0].Filters); r.offerInputs[0].LocationType != ec2types.LocationTypeAvailabilityZone ||
			got != "instance-type=t2.micro location=us-east-1a,us-east-1b" {
			t.Errorf("DescribeInstanceTypeOfferings %s %s, want per zone, t2.micro in the subnets' zones", r.offerInputs[0].LocationType, got)
		}
	})

	t.Run("subnets and image are checked with one read each", func(t *testing.T) {
		r := newValidateRecorder(t)
		r.subnets = []ec2types.Subnet{subnetA, subnetA2, subnetB}
		r.images = []ec2types.Image{{ImageId: aws.String(validateImageID), State: ec2types.ImageStateAvailable}}
		input := `{"replicaCount": 4, "subnetIds": ["subnet-0000000a", "subnet-000000a2", "subnet-0000000b"],
			"imageId": "` + validateImageID + `", "tags": {"team": "web"}}`
		doc, err := runValidate(t, r, "ci-repo-abc123-1", input)
		if err != nil {
			t.Fatal(err)
		}
		want := pipeline.DefaultConfig()
		want.ReplicaCount = 4
		want.SubnetIDs = []string{"subnet-0000000a", "subnet-000000a2", "subnet-0000000b"}
		want.ImageID = validateImageID
		want.Tags = map[string]string{"team": "web"}
		if doc.RunID != "ci-repo-abc123-1" || !reflect.DeepEqual(doc.Config, want) {
			t.Errorf("Validate = %+v\nwant runId ci-repo-abc123-1 and config %+v", doc, want)
		}
		if !reflect.DeepEqual(doc.Resources, pipeline.Resources{}) || doc.Polls != nil || doc.Error != nil {
			t.Errorf("Validate filled more than runId, config, tokenSeed and placement: %+v", doc)
		}
		wantCalls := []string{"DescribeSubnets", "DescribeImages", "DescribeInstanceTypes", "DescribeInstanceTypeOfferings", "GetServiceQuota", "DescribeInstances"}
		if !reflect.DeepEqual(r.calls, wantCalls) {
			t.Fatalf("AWS calls %v, want %v", r.calls, wantCalls)
		}
		if got := r.subnetInputs[0].SubnetIds; !reflect.DeepEqual(got, want.SubnetIDs) || len(r.subnetInputs[0].Filters) != 0 {
			t.Errorf("DescribeSubnets asked for %v (filters %v), want exactly %v", got, r.subnetInputs[0].Filters, want.SubnetIDs)
		}
		if got := r.imageInputs[0].ImageIds; !reflect.DeepEqual(got, []string{validateImageID}) {
			t.Errorf("DescribeImages asked for %v, want [%s]", got, validateImageID)
		}
		// The document is what the next Task gets: it must survive JSON.
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		var back pipeline.Document
		if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back, doc) {
			t.Errorf("document does not survive JSON: %s (%v)", raw, err)
		}
	})

	// Not every zone offers every type (t3.micro is not offered in us-east-1e): the
	// instances go only where it is; the load balancer's subnets are not Validate's
	// to change.
	t.Run("only the zones that offer the type are placed", func(t *testing.T) {
		r := newValidateRecorder(t)
		subnetE := validateSubnet("subnet-0000000e", "vpc-00000001", "us-east-1e")
		r.subnets = []ec2types.Subnet{subnetA, subnetE, subnetB}
		r.vcpus["t3.micro"] = 2
		r.offered["t3.micro"] = []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"}
		doc, err := runValidate(t, r, "gap", `{"instanceType": "t3.micro"}`)
		if err != nil {
			t.Fatal(err)
		}
		if want := (&pipeline.Placement{Zones: []string{"us-east-1a", "us-east-1b"}, VCPUs: 2}); !reflect.DeepEqual(doc.Placement, want) {
			t.Errorf("placement %+v, want %+v", doc.Placement, want)
		}
	})
}

func TestValidateRefusesAnInstanceTypeNoZoneOffers(t *testing.T) {
	r := newValidateRecorder(t)
	r.offered["t3.micro"] = []string{"us-east-1e"}
	_, err := runValidate(t, r, "nowhere", `{"instanceType": "t3.micro"}`)
	assertBadInput(t, err, "instanceType")
	for _, want := range []string{"t3.micro", "us-east-1a", "us-east-1b"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %s (the type and the zones tried)", err, want)
		}
	}
}

// Two executions never share a token seed, whatever their names or run ids: the seed
// is the execution's id and start time, the same for every retry of one execution.
func TestValidateTokenSeedIsTheExecutions(t *testing.T) {
	seed := func(name, id, start string) string {
		t.Helper()
		r := newValidateRecorder(t)
		doc, err := r.stages().Validate(context.Background(), pipeline.ValidateInput{ExecutionName: name, ExecutionID: id,
			StartTime: start, Input: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.TokenSeed) < 32 {
			t.Fatalf("seed %q, want at least 128 bits", doc.TokenSeed)
		}
		return doc.TokenSeed
	}
	arn := fakeExecutionARN("demo")
	first := seed("demo", arn, fakeStartTime)
	if again := seed("demo", arn, fakeStartTime); again != first {
		t.Errorf("a retry of the same execution got seed %q, the first %q", again, first)
	}
	for name, other := range map[string]string{
		"same name, started again 90 days on": seed("demo", arn, "2027-02-26T12:00:00.000Z"),
		"another execution, a name alike":     seed("Demo", fakeExecutionARN("Demo"), fakeStartTime),
	} {
		if other == first {
			t.Errorf("%s: the same seed %q", name, first)
		}
	}

	r := newValidateRecorder(t)
	_, err := r.stages().Validate(context.Background(), pipeline.ValidateInput{ExecutionName: "demo", Input: json.RawMessage(`{}`)})
	if got := pipeline.ErrorName(Classify(pipeline.Validate, err)); got != pipeline.ErrStage || !strings.Contains(fmt.Sprint(err), "executionId") {
		t.Errorf("without the execution's id: %v (%s), want a StageError naming executionId", err, got)
	}
	if len(r.calls) != 0 {
		t.Errorf("AWS calls %v without the execution's id, want none", r.calls)
	}
}

// Where the quota can be read, a fleet that does not fit is refused before anything
// is created, naming the quota, its limit, the vCPUs in use and those asked for.
// Where it cannot, the run goes on and RunInstances will tell.
func TestValidateVCPUQuota(t *testing.T) {
	running := func(typ string, n int) []ec2types.Instance {
		out := make([]ec2types.Instance, n)
		for i := range out {
			out[i] = ec2types.Instance{InstanceId: aws.String(fmt.Sprintf("i-%017d", i)), InstanceType: ec2types.InstanceType(typ)}
		}
		return out
	}
	tests := []struct {
		name    string
		input   string
		setup   func(*validateRecorder)
		refused bool
		says    []string // in the message when refused
	}{
		{name: "fits", input: `{"replicaCount": 5}`, setup: func(r *validateRecorder) {
			r.quota, r.running = 10, running("t3.micro", 2) // 4 in use + 6 asked = 10
		}},
		{name: "one vCPU over", input: `{"replicaCount": 5}`, setup: func(r *validateRecorder) {
			r.quota, r.running = 10, running("t3.micro", 2)
			r.running = append(r.running, running("t2.micro", 1)...) // 5 in use + 6 asked = 11
		}, refused: true, says: []string{"L-1216C47A", "Running On-Demand Standard", "allows 10 vCPUs", "5 are in use", "6 vCPUs", "t2.micro"}},
		{name: "spot and other families do not count", input: `{"replicaCount": 5}`, setup: func(r *validateRecorder) {
			r.quota = 6
			r.running = []ec2types.Instance{
				{InstanceId: aws.String("i-0spot"), InstanceType: "t3.micro", InstanceLifecycle: ec2types.InstanceLifecycleTypeSpot},
				{InstanceId: aws.String("i-0gpu"), InstanceType: "g5.xlarge"},
				{InstanceId: aws.String("i-0inf"), InstanceType: "inf2.xlarge"},
			}
		}},
		{name: "the quota is not readable", input: `{"replicaCount": 5}`, setup: func(r *validateRecorder) {
			r.quotaErr = apiError("AccessDeniedException", "not authorized to perform servicequotas:GetServiceQuota")
			r.running = running("t2.micro", 1000)
		}},
		{name: "the quota is not answered", input: `{"replicaCount": 5}`, setup: func(r *validateRecorder) {
			r.quotaErr = apiError("NoSuchResourceException", "This service is not available in the current Region.")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newValidateRecorder(t)
			tc.setup(r)
			_, err := runValidate(t, r, "quota", tc.input)
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *pipeline.CapacityError
			if !errors.As(err, &ce) || pipeline.ErrorName(err) != pipeline.ErrCapacity {
				t.Fatalf("got %v (%T), want a CapacityError", err, err)
			}
			for _, want := range tc.says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not say %q", err, want)
				}
			}
		})
	}
}

// A throttled read is not the user's fault: it must come out retryable, not as
// bad input (which is never retried).
func TestValidateThrottledReadIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		setup func(*validateRecorder)
	}{
		{"subnets", `{"subnetIds": ["subnet-0000000a", "subnet-0000000b"]}`, func(r *validateRecorder) {
			r.subnetsErr = apiError("RequestLimitExceeded", "Request limit exceeded.")
		}},
		{"image", `{"imageId": "` + validateImageID + `"}`, func(r *validateRecorder) {
			r.imagesErr = apiError("RequestLimitExceeded", "Request limit exceeded.")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newValidateRecorder(t)
			tc.setup(r)
			_, err := runValidate(t, r, "run", tc.input)
			if got := pipeline.ErrorName(err); got != pipeline.ErrRetryable {
				t.Errorf("error %v is %q, want %q", err, got, pipeline.ErrRetryable)
			}
		})
	}
}
