package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// validateRecorder stands in for the AWS APIs in Validate's tests. It answers only
// the two reads Validate makes (DescribeSubnets, DescribeImages), records every
// call, and fails the test on any call that would create, change or delete
// something. The embedded interfaces are nil: a read it does not answer panics,
// which runValidate turns into a test failure.
type validateRecorder struct {
	t     *testing.T
	calls []string

	subnetInputs []*ec2.DescribeSubnetsInput
	subnets      []ec2types.Subnet
	subnetsErr   error

	imageInputs []*ec2.DescribeImagesInput
	images      []ec2types.Image
	imagesErr   error
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

func newValidateRecorder(t *testing.T) *validateRecorder {
	return &validateRecorder{t: t}
}

func (r *validateRecorder) stages() *Stages {
	return &Stages{EC2: validateEC2{r: r}, ELB: validateELB{r: r}, SSM: validateSSM{r: r}, Region: "us-east-1"}
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
	return handler(context.Background(), pipeline.ValidateInput{ExecutionName: execName, Input: json.RawMessage(input)})
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
			field: "imageId", calls: []string{"DescribeImages"},
		},
		{
			name:  "image not listed (deregistered or private)",
			input: `{"imageId": "` + validateImageID + `"}`,
			field: "imageId", calls: []string{"DescribeImages"},
		},
		{
			name:  "image still pending",
			input: `{"imageId": "` + validateImageID + `"}`,
			setup: func(r *validateRecorder) {
				r.images = []ec2types.Image{{ImageId: aws.String(validateImageID), State: ec2types.ImageStatePending}}
			},
			field: "imageId", calls: []string{"DescribeImages"},
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
	t.Run("empty input gives the defaults with no AWS call", func(t *testing.T) {
		r := newValidateRecorder(t)
		doc, err := runValidate(t, r, "Demo_Run_1", `{}`)
		if err != nil {
			t.Fatal(err)
		}
		want := pipeline.Document{RunID: "demo-run-1", Config: pipeline.DefaultConfig()}
		if !reflect.DeepEqual(doc, want) {
			t.Errorf("Validate = %+v\nwant %+v", doc, want)
		}
		if len(r.calls) != 0 {
			t.Errorf("AWS calls %v, want none: nothing in the input names a resource", r.calls)
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
			t.Errorf("Validate filled more than runId and config: %+v", doc)
		}
		if !reflect.DeepEqual(r.calls, []string{"DescribeSubnets", "DescribeImages"}) {
			t.Fatalf("AWS calls %v, want one DescribeSubnets and one DescribeImages", r.calls)
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
