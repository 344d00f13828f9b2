package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// The roles of the IAM tests: policies like cdk/amifleet/iam.go's, with the ARNs CloudFormation
// resolves in moto.
const (
	iamLaunchFunction  = "LaunchBase-iamtest"
	iamLaunchRole      = "amifleet-iamtest-launch"
	iamCleanupFunction = "Cleanup-iamtest"
	iamCleanupRole     = "amifleet-iamtest-cleanup"
	iamLBFunction      = "CreateLoadBalancer-iamtest"
	iamLBRole          = "amifleet-iamtest-lb"
	iamPolicyName      = "DefaultPolicy"
)

var (
	iamRunTagOnCreate = map[string]any{"Null": map[string]any{"aws:RequestTag/" + pipeline.TagRunID: "false"}}
	iamRunTagged      = map[string]any{"Null": map[string]any{"aws:ResourceTag/" + pipeline.TagRunID: "false"}}
)

func iamStatement(actions []string, resources []string, cond map[string]any) map[string]any {
	s := map[string]any{"Effect": "Allow", "Action": actions, "Resource": resources}
	if cond != nil {
		s["Condition"] = cond
	}
	return s
}

func ec2TestARN(resource string) string {
	return "arn:aws:ec2:" + testRegion + ":" + testAccount + ":" + resource
}

func elbTestARN(resource string) string {
	return "arn:aws:elasticloadbalancing:" + testRegion + ":" + testAccount + ":" + resource
}

// launchStatements are LaunchBase's grants (cdk/amifleet/iam.go), the instance/volume
// statement replaced by narrowed when it is set.
func launchStatements(narrowed map[string]any) []map[string]any {
	runTagged := iamStatement([]string{"ec2:RunInstances"}, []string{ec2TestARN("instance/*"), ec2TestARN("volume/*")}, iamRunTagOnCreate)
	if narrowed != nil {
		runTagged = narrowed
	}
	return []map[string]any{
		iamStatement([]string{"ec2:DescribeInstances", "ec2:DescribeImages"}, []string{"*"}, nil),
		iamStatement([]string{"ssm:GetParameter"}, []string{"arn:aws:ssm:" + testRegion + "::parameter/aws/service/*"}, nil),
		runTagged,
		iamStatement([]string{"ec2:RunInstances"}, []string{ec2TestARN("security-group/*")}, iamRunTagged),
		iamStatement([]string{"ec2:RunInstances"}, []string{ec2TestARN("subnet/*"), ec2TestARN("network-interface/*"), ec2TestARN("key-pair/*")}, nil),
		iamStatement([]string{"ec2:RunInstances"}, []string{"arn:aws:ec2:" + testRegion + "::image/*"}, nil),
		iamStatement([]string{"ec2:CreateTags"}, []string{ec2TestARN("instance/*"), ec2TestARN("volume/*")},
			map[string]any{"StringEquals": map[string]any{"ec2:CreateAction": []string{"RunInstances"}}}),
	}
}

func cleanupStatements() []map[string]any {
	return []map[string]any{
		iamStatement([]string{"ec2:DescribeInstances", "elasticloadbalancing:DescribeLoadBalancers"}, []string{"*"}, nil),
		iamStatement([]string{"ec2:TerminateInstances"}, []string{ec2TestARN("instance/*")}, iamRunTagged),
		iamStatement([]string{"elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup"},
			[]string{elbTestARN("listener/app/amifleet-*/*/*"), elbTestARN("loadbalancer/app/amifleet-*/*"), elbTestARN("targetgroup/amifleet-*/*")}, iamRunTagged),
	}
}

func loadBalancerStatements() []map[string]any {
	tg, lb, listener := elbTestARN("targetgroup/amifleet-*/*"), elbTestARN("loadbalancer/app/amifleet-*/*"), elbTestARN("listener/app/amifleet-*/*/*")
	return []map[string]any{
		iamStatement([]string{"elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:CreateLoadBalancer"}, []string{tg, lb}, iamRunTagOnCreate),
		iamStatement([]string{"elasticloadbalancing:CreateListener"}, []string{lb}, iamRunTagged),
		iamStatement([]string{"elasticloadbalancing:CreateListener"}, []string{listener}, iamRunTagOnCreate),
		iamStatement([]string{"elasticloadbalancing:AddTags"}, []string{tg, lb, listener},
			map[string]any{"StringEquals": map[string]any{"elasticloadbalancing:CreateAction": []string{"CreateTargetGroup", "CreateLoadBalancer", "CreateListener"}}}),
		iamStatement([]string{"iam:CreateServiceLinkedRole"},
			[]string{"arn:aws:iam::" + testAccount + ":role/aws-service-role/elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing"},
			map[string]any{"StringEquals": map[string]any{"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}),
		iamStatement([]string{"elasticloadbalancing:RegisterTargets"}, []string{tg}, iamRunTagged),
		iamStatement([]string{"elasticloadbalancing:ModifyTargetGroupAttributes"}, []string{tg}, iamRunTagged),
	}
}

// iamQueryThroughGateway makes an IAM call through the gateway, signed with the CLI's
// key (the project has no IAM client module).
func iamQueryThroughGateway(t *testing.T, lc *localCloud, action string, params url.Values) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {"2010-05-08"}}
	for k, v := range params {
		form[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, lc.gw.URL()+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=amifleet-local/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("IAM %s: %s: %s", action, resp.Status, body)
	}
}

func putRolePolicy(t *testing.T, lc *localCloud, role string, statements []map[string]any) {
	t.Helper()
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	iamQueryThroughGateway(t, lc, "PutRolePolicy", url.Values{"RoleName": {role}, "PolicyName": {iamPolicyName}, "PolicyDocument": {string(doc)}})
}

// makeFunctionRole makes role with statements, and tells the gateway that function
// runs as it (what loading the function does).
func makeFunctionRole(t *testing.T, lc *localCloud, function, role string, statements []map[string]any) aws.Config {
	t.Helper()
	iamQueryThroughGateway(t, lc, "CreateRole", url.Values{"RoleName": {role},
		"AssumeRolePolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`}})
	putRolePolicy(t, lc, role, statements)
	lc.gw.iam.learnFunction(testRegion, &lambdatypes.FunctionConfiguration{
		FunctionName: aws.String(function),
		Role:         aws.String("arn:aws:iam::" + testAccount + ":role/" + role),
	})
	return functionConfig(lc, function)
}

// functionConfig is an SDK configuration signed as function's processes sign.
func functionConfig(lc *localCloud, function string) aws.Config {
	cfg := lc.cfg.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(functionAccessKey(testRegion, function), "amifleet-local", "amifleet-local")
	return cfg
}

func apiError(err error) (code, message string) {
	var api interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if errors.As(err, &api) {
		return api.ErrorCode(), api.ErrorMessage()
	}
	return "", ""
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// iamLogLines are the gateway's log lines of the IAM check.
func iamLogLines(log string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["component"] == "iam" {
			out = append(out, m)
		}
	}
	return out
}

func runTags(runID string, types ...ec2types.ResourceType) []ec2types.TagSpecification {
	var specs []ec2types.TagSpecification
	for _, typ := range types {
		specs = append(specs, ec2types.TagSpecification{ResourceType: typ, Tags: []ec2types.Tag{
			{Key: aws.String(pipeline.TagRunID), Value: aws.String(runID)}, {Key: aws.String("Name"), Value: aws.String("amifleet-" + runID)},
		}})
	}
	return specs
}

// TestIAMStrictCloud: calls signed with a function's key are evaluated against its
// role as deployed in moto's IAM, by the real evaluator; denied calls are answered as
// AWS answers them and logged; the role narrowed through the gateway takes effect on
// the next call; calls signed with another key are not checked.
func TestIAMStrictCloud(t *testing.T) {
	logs := &syncBuffer{}
	lc := startLocalCloud(t, GatewayOptions{Strict: Strictness{IAM: true}, LogWriter: logs})
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range iamLogLines(logs.String()) {
				b, _ := json.Marshal(l)
				t.Log(string(b))
			}
		}
	})
	admin := ec2.NewFromConfig(lc.cfg)
	image, _ := baseImageAndScript(t, lc, "<h1>x</h1>")

	// The run's security group, made by the CLI's key (not checked).
	sg, err := admin.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("amifleet-iamtest"), Description: aws.String("iam test"),
		TagSpecifications: runTags("run1", ec2types.ResourceTypeSecurityGroup)})
	if err != nil {
		t.Fatal(err)
	}
	subnets, err := admin.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("default subnets: %v (%d)", err, len(subnets.Subnets))
	}
	subnet := aws.ToString(subnets.Subnets[0].SubnetId)

	launch := ec2.NewFromConfig(makeFunctionRole(t, lc, iamLaunchFunction, iamLaunchRole, launchStatements(nil)))
	cleanup := ec2.NewFromConfig(makeFunctionRole(t, lc, iamCleanupFunction, iamCleanupRole, cleanupStatements()))
	runInput := func(specs []ec2types.TagSpecification) *ec2.RunInstancesInput {
		return &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: ec2types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			SubnetId: aws.String(subnet), SecurityGroupIds: []string{aws.ToString(sg.GroupId)}, TagSpecifications: specs}
	}
	countInstances := func() int {
		out, err := admin.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range out.Reservations {
			n += len(r.Instances)
		}
		return n
	}
	var tagged string

	t.Run("run-tagged RunInstances is allowed, in moto's one account", func(t *testing.T) {
		out, err := launch.RunInstances(ctx, runInput(runTags("run1", ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume)))
		if err != nil {
			t.Fatal(err)
		}
		tagged = aws.ToString(out.Instances[0].InstanceId)
		if owner := aws.ToString(out.OwnerId); owner != testAccount {
			t.Errorf("the function's instance belongs to %q, want moto's account %s: moto derived another account from the function's key", owner, testAccount)
		}
		// The CLI's key sees what the function's key made, and the reverse.
		if _, err := admin.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{tagged}}); err != nil {
			t.Errorf("the CLI does not see the function's instance: %v", err)
		}
		if _, err := launch.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}}); errorCode(err) != "UnauthorizedOperation" {
			t.Errorf("DescribeSecurityGroups, which the role does not grant: %v, want UnauthorizedOperation", err)
		}
		if _, err := launch.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{tagged}}); err != nil {
			t.Errorf("DescribeInstances, granted on *: %v", err)
		}
		// As the replicas launch: subnet, groups and public address on the network
		// interface.
		in := runInput(runTags("run1", ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume))
		in.SubnetId, in.SecurityGroupIds = nil, nil
		in.NetworkInterfaces = []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SubnetId: aws.String(subnet),
			Groups: []string{aws.ToString(sg.GroupId)}, AssociatePublicIpAddress: aws.Bool(false)}}
		if _, err := launch.RunInstances(ctx, in); err != nil {
			t.Fatalf("with a network interface: %v", err)
		}
		for _, r := range lc.gw.IAMRecord().Functions[iamLaunchFunction].Actions["ec2:RunInstances"].Resources {
			if r.Type == "network-interface" && !slices.Contains(r.ConditionKeys, "ec2:AssociatePublicIpAddress") {
				t.Errorf("network-interface keys %v, want ec2:AssociatePublicIpAddress", r.ConditionKeys)
			}
		}
	})

	t.Run("RunInstances without the run tag is denied", func(t *testing.T) {
		before := countInstances()
		nameOnly := []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("x")}}}}
		_, err := launch.RunInstances(ctx, runInput(nameOnly))
		code, msg := apiError(err)
		if code != "UnauthorizedOperation" || httpStatus(err) != http.StatusForbidden {
			t.Fatalf("error %v (HTTP %d), want UnauthorizedOperation, 403", err, httpStatus(err))
		}
		want := "You are not authorized to perform this operation. User: arn:aws:sts::" + testAccount + ":assumed-role/" + iamLaunchRole + "/" + iamLaunchFunction +
			" is not authorized to perform: ec2:RunInstances on resource: " + ec2TestARN("instance/*") + " because no identity-based policy allows the ec2:RunInstances action"
		if msg != want {
			t.Errorf("message\n%s\nwant\n%s", msg, want)
		}
		if after := countInstances(); after != before {
			t.Errorf("%d instances after the denied call, %d before: the call reached moto", after, before)
		}
		var line map[string]any
		for _, l := range iamLogLines(logs.String()) {
			if l["msg"] == "denied" && l["action"] == "ec2:RunInstances" && l["function"] == iamLaunchFunction {
				line = l
			}
		}
		if line == nil {
			t.Fatal("no log line for the denial")
		}
		if line["resource"] != ec2TestARN("instance/*") || !strings.Contains(line["reason"].(string), "aws:RequestTag/"+pipeline.TagRunID) {
			t.Errorf("log line %v: want the resource instance/* and a reason naming aws:RequestTag/%s", line, pipeline.TagRunID)
		}
		t.Logf("denial logged: %v", line["reason"])
	})

	t.Run("TerminateInstances on an untagged instance is denied, on a run-tagged one allowed", func(t *testing.T) {
		out, err := admin.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(image), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		untagged := aws.ToString(out.Instances[0].InstanceId)
		_, err = cleanup.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{untagged}})
		if code, msg := apiError(err); code != "UnauthorizedOperation" || !strings.Contains(msg, "on resource: "+ec2TestARN("instance/"+untagged)) {
			t.Fatalf("error %v, want UnauthorizedOperation on instance/%s", err, untagged)
		}
		if _, err := cleanup.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{tagged}}); err != nil {
			t.Fatalf("terminating the run-tagged instance: %v", err)
		}
		// One untagged instance among tagged ones: the whole call is refused.
		_, err = cleanup.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{tagged, untagged}})
		if code, _ := apiError(err); code != "UnauthorizedOperation" {
			t.Fatalf("error %v, want UnauthorizedOperation", err)
		}
		// A resource that does not exist is moto's to answer, as AWS answers it.
		_, err = cleanup.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
		if code, _ := apiError(err); code != "InvalidInstanceID.NotFound" {
			t.Fatalf("error %v, want InvalidInstanceID.NotFound", err)
		}
	})

	t.Run("the role narrowed through the gateway takes effect on the next call", func(t *testing.T) {
		in := runInput(runTags("run1", ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume))
		if _, err := launch.RunInstances(ctx, in); err != nil {
			t.Fatalf("before narrowing: %v", err)
		}
		// One statement narrowed: instances only, no more volumes.
		putRolePolicy(t, lc, iamLaunchRole, launchStatements(
			iamStatement([]string{"ec2:RunInstances"}, []string{ec2TestARN("instance/*")}, iamRunTagOnCreate)))
		_, err := launch.RunInstances(ctx, in)
		if code, msg := apiError(err); code != "UnauthorizedOperation" || !strings.Contains(msg, "on resource: "+ec2TestARN("volume/*")) {
			t.Fatalf("after narrowing: %v, want UnauthorizedOperation on volume/*", err)
		}
		putRolePolicy(t, lc, iamLaunchRole, launchStatements(nil))
		if _, err := launch.RunInstances(ctx, in); err != nil {
			t.Fatalf("after widening again: %v", err)
		}
	})

	t.Run("tagging at launch needs ec2:CreateTags with ec2:CreateAction", func(t *testing.T) {
		putRolePolicy(t, lc, iamLaunchRole, launchStatements(nil)[:6])
		defer putRolePolicy(t, lc, iamLaunchRole, launchStatements(nil))
		_, err := launch.RunInstances(ctx, runInput(runTags("run1", ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume)))
		if code, msg := apiError(err); code != "UnauthorizedOperation" || !strings.Contains(msg, "perform: ec2:CreateTags on resource: "+ec2TestARN("instance/*")) {
			t.Fatalf("without CreateTags: %v, want UnauthorizedOperation for ec2:CreateTags on instance/*", err)
		}
	})

	t.Run("a call signed with another key is not checked", func(t *testing.T) {
		checks := lc.gw.IAMStats().Checks
		if _, err := admin.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(image), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(testRegion + "a"), Size: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		if n := lc.gw.IAMStats().Checks; n != checks {
			t.Errorf("%d checks for calls signed with the CLI's key", n-checks)
		}
	})

	t.Run("an action the local cloud does not know is refused", func(t *testing.T) {
		_, err := launch.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(testRegion + "a"), Size: aws.Int32(1)})
		if code, msg := apiError(err); code != "UnauthorizedOperation" || !strings.Contains(msg, "does not know") {
			t.Fatalf("error %v, want UnauthorizedOperation saying the local cloud does not know the action", err)
		}
		d := lc.gw.Denials()
		if last := d[len(d)-1]; last.Action != "ec2:CreateVolume" || last.Decision != iamUnknownAction {
			t.Errorf("last denial %+v", last)
		}
	})

	t.Run("SSM's public parameters", func(t *testing.T) {
		name := "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
		if _, err := ssm.NewFromConfig(functionConfig(lc, iamLaunchFunction)).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)}); err != nil {
			t.Fatalf("LaunchBase's role grants it: %v", err)
		}
		_, err := ssm.NewFromConfig(functionConfig(lc, iamCleanupFunction)).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
		if code, msg := apiError(err); code != "AccessDeniedException" || !strings.Contains(msg, "arn:aws:ssm:"+testRegion+"::parameter"+name) {
			t.Fatalf("Cleanup's role does not grant it: %v, want AccessDeniedException on the parameter", err)
		}
	})

	t.Run("load balancing", func(t *testing.T) {
		lb := elb.NewFromConfig(makeFunctionRole(t, lc, iamLBFunction, iamLBRole, loadBalancerStatements()))
		elbCleanup := elb.NewFromConfig(functionConfig(lc, iamCleanupFunction))
		tags := []elbtypes.Tag{{Key: aws.String(pipeline.TagRunID), Value: aws.String("run1")}}
		_, err := lb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("amifleet-run1"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
			VpcId: subnets.Subnets[0].VpcId})
		if code, _ := apiError(err); code != "AccessDenied" || httpStatus(err) != http.StatusForbidden {
			t.Fatalf("an untagged target group: %v (HTTP %d), want AccessDenied, 403", err, httpStatus(err))
		}
		_, err = lb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("other-run1"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
			VpcId: subnets.Subnets[0].VpcId, Tags: tags})
		if code, _ := apiError(err); code != "AccessDenied" {
			t.Fatalf("a target group named outside amifleet-*: %v, want AccessDenied", err)
		}
		tg, err := lb.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("amifleet-run1"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
			VpcId: subnets.Subnets[0].VpcId, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		// CreateLoadBalancer's role sets the run's target group's deregistration delay;
		// Cleanup's role may not.
		delay := &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: tg.TargetGroups[0].TargetGroupArn, Attributes: []elbtypes.TargetGroupAttribute{
			{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("30")}}}
		if _, err := lb.ModifyTargetGroupAttributes(ctx, delay); err != nil {
			t.Fatalf("the run's target group's deregistration delay: %v", err)
		}
		if _, err := elbCleanup.ModifyTargetGroupAttributes(ctx, delay); func() bool { code, _ := apiError(err); return code != "AccessDenied" }() {
			t.Fatalf("Cleanup's role changed a target group's attributes: %v, want AccessDenied", err)
		}
		balancer, err := lb.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("amifleet-run1"),
			Subnets: []string{subnet, aws.ToString(subnets.Subnets[1].SubnetId)}, SecurityGroups: []string{aws.ToString(sg.GroupId)}, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		lbARN := balancer.LoadBalancers[0].LoadBalancerArn
		listener, err := lb.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: lbARN, Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80), Tags: tags,
			DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: tg.TargetGroups[0].TargetGroupArn}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := elbCleanup.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: listener.Listeners[0].ListenerArn}); err != nil {
			t.Fatal(err)
		}
		if _, err := elbCleanup.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: lbARN}); err != nil {
			t.Fatal(err)
		}
		// Gone: ELB's own answer, not a denial.
		_, err = elbCleanup.DeleteListener(ctx, &elb.DeleteListenerInput{ListenerArn: listener.Listeners[0].ListenerArn})
		if code, _ := apiError(err); code == "AccessDenied" {
			t.Fatalf("deleting a listener that is gone: %v", err)
		}
		rec := lc.gw.IAMRecord().Functions[iamLBFunction]
		if got := rec.Actions["iam:CreateServiceLinkedRole"]; got.Allowed != 1 || len(got.ImpliedBy) != 1 || got.ImpliedBy[0] != "elasticloadbalancing:CreateLoadBalancer" {
			t.Errorf("iam:CreateServiceLinkedRole record %+v, want one allowed, implied by CreateLoadBalancer", got)
		}
		if got := rec.Actions["elasticloadbalancing:AddTags"]; got.Allowed != 3 {
			t.Errorf("elasticloadbalancing:AddTags record %+v, want 3 allowed (target group, load balancer, listener)", got)
		}
	})

	t.Run("the record", func(t *testing.T) {
		rec := lc.gw.IAMRecord()
		run := rec.Functions[iamLaunchFunction].Actions["ec2:RunInstances"]
		var types []string
		for _, r := range run.Resources {
			types = append(types, r.Type)
			if r.Type == "instance" && !slices.Contains(r.ConditionKeys, "aws:RequestTag/"+pipeline.TagRunID) {
				t.Errorf("instance keys %v, want aws:RequestTag/%s", r.ConditionKeys, pipeline.TagRunID)
			}
		}
		if want := "image instance network-interface security-group subnet volume"; strings.Join(types, " ") != want {
			t.Errorf("RunInstances evaluated on %v, want %s", types, want)
		}
		if run.Allowed < 4 || run.Denied < 2 {
			t.Errorf("RunInstances allowed %d, denied %d", run.Allowed, run.Denied)
		}
		if tags := rec.Functions[iamLaunchFunction].Actions["ec2:CreateTags"]; len(tags.ImpliedBy) != 1 || tags.ImpliedBy[0] != "ec2:RunInstances" {
			t.Errorf("ec2:CreateTags %+v, want implied by ec2:RunInstances", tags)
		}
		if rec.Engine["@cloud-copilot/iam-simulate"] == "" {
			t.Errorf("engine %v: no iam-simulate version", rec.Engine)
		}
		// The control API answers the same record, in a stable shape.
		viaHTTP, err := ControlClient{URL: lc.gw.URL()}.IAMRecord(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(rec)
		b, _ := json.Marshal(viaHTTP)
		if string(a) != string(b) {
			t.Errorf("GET /_amifleet/iam\n%s\nwant\n%s", b, a)
		}
		denials, err := ControlClient{URL: lc.gw.URL()}.IAMDenials(ctx)
		if err != nil || len(denials) == 0 {
			t.Fatalf("denials %v, %v", denials, err)
		}
		out, _ := json.MarshalIndent(rec.Functions[iamLaunchFunction], "", "  ")
		t.Logf("LaunchBase's record:\n%s", out)
	})

	t.Run("many calls in flight at once", func(t *testing.T) {
		const workers, each = 16, 5
		errs := make(chan error, workers*each*2)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := launch.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{tagged}}); err != nil {
						errs <- fmt.Errorf("allowed DescribeInstances: %w", err)
					}
					if _, err := launch.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{}); errorCode(err) != "UnauthorizedOperation" {
						errs <- fmt.Errorf("denied DescribeSecurityGroups: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("latency", func(t *testing.T) {
		in := runInput(runTags("run1", ec2types.ResourceTypeInstance, ec2types.ResourceTypeVolume))
		measure := func(what string, call func() error) {
			lc.gw.ResetIAMRecord()
			const n = 30
			var wall []time.Duration
			for range n {
				start := time.Now()
				if err := call(); err != nil {
					t.Fatal(err)
				}
				wall = append(wall, time.Since(start))
			}
			sort.Slice(wall, func(i, j int) bool { return wall[i] < wall[j] })
			s := lc.gw.IAMStats()
			t.Logf("%s, %d calls: IAM check median %s (reading moto %s, evaluator %s), p95 %s, max %s; the call's round trip median %s",
				what, s.Checks, s.Median.Round(time.Microsecond), s.MedianRead.Round(time.Microsecond), s.MedianEvaluate.Round(time.Microsecond),
				s.P95.Round(time.Microsecond), s.Max.Round(time.Microsecond), wall[n/2].Round(time.Microsecond))
		}
		measure("RunInstances (8 evaluations)", func() error { _, err := launch.RunInstances(ctx, in); return err })
		measure("DescribeInstances (1 evaluation)", func() error { _, err := launch.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); return err })
		measure("TerminateInstances, denied (1 evaluation)", func() error {
			_, err := cleanup.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{tagged}})
			return err
		})
	})
}

// lambdaInvoke invokes function through the gateway and decodes its payload.
func lambdaInvoke(lc *localCloud, function, payload string) (map[string]any, error) {
	out, err := lambda.NewFromConfig(lc.cfg).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(function), Payload: []byte(payload)})
	if err != nil {
		return nil, err
	}
	var body map[string]any
	err = json.Unmarshal(out.Payload, &body)
	return body, err
}

// TestIAMFunctionCredentials: each function process signs with its own access key,
// which the gateway maps to the function and its role when it loads it.
func TestIAMFunctionCredentials(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{})
	lc.deployEcho(t, "echo", 5)
	out, err := lambdaInvoke(lc, "echo", `{"mode":"ok"}`)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := out["env"].(map[string]any)
	key := functionAccessKey(testRegion, "echo")
	if env["AWS_ACCESS_KEY_ID"] != key {
		t.Errorf("AWS_ACCESS_KEY_ID %v, want %s", env["AWS_ACCESS_KEY_ID"], key)
	}
	if !regexp.MustCompile(`^ASIA[0-9A-F]{16}$`).MatchString(key) {
		t.Errorf("key %s does not look like AWS's", key)
	}
	if other := functionAccessKey(testRegion, "echo2"); other == key || functionAccessKey("us-west-2", "echo") == key {
		t.Error("two functions share a key")
	}
	id, ok := lc.gw.iam.identity(key)
	if !ok || id.Function != "echo" || id.RoleARN != testRoleARN || id.principal() != "arn:aws:sts::"+testAccount+":assumed-role/"+testRoleName+"/echo" {
		t.Errorf("identity %+v (known %v)", id, ok)
	}
}

// TestIAMEvaluatorProcess: the evaluator starts on demand, is stopped by Close (no
// process left), and without the npm packages the check fails naming npm ci.
func TestIAMEvaluatorProcess(t *testing.T) {
	g, err := NewGateway(GatewayOptions{Upstream: "http://localhost:1"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.iamProcess()
	if err != nil {
		_ = g.Close()
		t.Fatal(err)
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("evaluator %d not running: %v", pid, err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("evaluator %d still there after Close (%v)", pid, err)
	}

	empty := t.TempDir()
	g, err = NewGateway(GatewayOptions{Upstream: "http://localhost:1", Root: empty})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	_, err = g.iamProcess()
	if err == nil || !strings.Contains(err.Error(), "npm ci") || !strings.Contains(err.Error(), filepath.Join(empty, "node_modules")) {
		t.Fatalf("error %v, want one naming npm ci and %s", err, filepath.Join(empty, "node_modules"))
	}
	if _, err := os.Stat(filepath.Join(empty, "node_modules")); !os.IsNotExist(err) {
		t.Errorf("the check made node_modules: %v", err)
	}
}

// iamExtraActions are actions the functions are about to call (issue 11's quota and
// offerings checks), held to iam-data like those in iam-actions.json.
var iamExtraActions = []string{"ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "servicequotas:GetServiceQuota", "ssm:GetParameter"}

// TestIAMMappingFollowsIAMData maps a call of every action the functions make
// (internal/stages/testdata/iam-actions.json) and every action the mapping knows,
// against real resources in moto, and holds what it evaluates to iam-data (the
// Service Authorization Reference): each resource type is one iam-data lists for the
// action (or a declared gap, which must still be one), each condition key one it lists
// for the action, for that resource type with the action, or for that resource type
// itself; the simulator resolves the same resource
// type and ignores no key.
func TestIAMMappingFollowsIAMData(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{})
	ctx := context.Background()
	admin := ec2.NewFromConfig(lc.cfg)
	elbc := elb.NewFromConfig(lc.cfg)
	image, _ := baseImageAndScript(t, lc, "<h1>x</h1>")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// The resources the calls name, run-tagged as the pipeline tags them.
	sg, err := admin.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("amifleet-map"), Description: aws.String("map"),
		TagSpecifications: runTags("map", ec2types.ResourceTypeSecurityGroup)})
	must(err)
	subnets, err := admin.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	must(err)
	subnet, vpc := aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[0].VpcId)
	_, err = admin.CreateKeyPair(ctx, &ec2.CreateKeyPairInput{KeyName: aws.String("amifleet-map")})
	must(err)
	run, err := admin.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(image), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: runTags("map", ec2types.ResourceTypeInstance)})
	must(err)
	instance := aws.ToString(run.Instances[0].InstanceId)
	img, err := admin.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(instance), Name: aws.String("amifleet-map"),
		TagSpecifications: runTags("map", ec2types.ResourceTypeImage)})
	must(err)
	vol, err := admin.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: subnets.Subnets[0].AvailabilityZone, Size: aws.Int32(1)})
	must(err)
	snap, err := admin.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId, TagSpecifications: runTags("map", ec2types.ResourceTypeSnapshot)})
	must(err)
	elbTags := []elbtypes.Tag{{Key: aws.String(pipeline.TagRunID), Value: aws.String("map")}}
	tg, err := elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("amifleet-map"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		VpcId: aws.String(vpc), Tags: elbTags})
	must(err)
	lbOut, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("amifleet-map"), Tags: elbTags,
		Subnets: []string{subnet, aws.ToString(subnets.Subnets[1].SubnetId)}, SecurityGroups: []string{aws.ToString(sg.GroupId)}})
	must(err)
	lb := aws.ToString(lbOut.LoadBalancers[0].LoadBalancerArn)
	tgARN := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	listener, err := elbc.CreateListener(ctx, &elb.CreateListenerInput{LoadBalancerArn: aws.String(lb), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80), Tags: elbTags,
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String(tgARN)}}})
	must(err)
	listenerARN := aws.ToString(listener.Listeners[0].ListenerArn)
	createRunsTable(t, dynamodb.NewFromConfig(lc.cfg), "amifleet-map", ddbtypes.Tag{Key: aws.String(pipeline.TagRunID), Value: aws.String("map")})

	tag := func(prefix, typ string) url.Values {
		return url.Values{prefix + ".ResourceType": {typ}, prefix + ".Tag.1.Key": {pipeline.TagRunID}, prefix + ".Tag.1.Value": {"map"},
			prefix + ".Tag.2.Key": {"Name"}, prefix + ".Tag.2.Value": {"amifleet-map"}}
	}
	form := func(vs ...url.Values) url.Values {
		out := url.Values{}
		for _, v := range vs {
			for k, x := range v {
				out[k] = x
			}
		}
		return out
	}
	elbTagForm := url.Values{"Tags.member.1.Key": {pipeline.TagRunID}, "Tags.member.1.Value": {"map"}}
	instanceForm := url.Values{"InstanceId.1": {instance}}
	type sample struct {
		form url.Values
		body string
	}
	samples := map[string]sample{
		"ec2:RunInstances": {form: form(url.Values{"ImageId": {image}, "InstanceType": {"t3.micro"}, "MinCount": {"1"}, "MaxCount": {"1"},
			"SubnetId": {subnet}, "SecurityGroupId.1": {aws.ToString(sg.GroupId)}, "KeyName": {"amifleet-map"}},
			tag("TagSpecification.1", "instance"), tag("TagSpecification.2", "volume"), tag("TagSpecification.3", "network-interface"))},
		"ec2:RunInstances (network interface)": {form: form(url.Values{"ImageId": {image}, "InstanceType": {"t3.micro"}, "MinCount": {"1"}, "MaxCount": {"1"},
			"NetworkInterface.1.DeviceIndex": {"0"}, "NetworkInterface.1.SubnetId": {subnet}, "NetworkInterface.1.SecurityGroupId.1": {aws.ToString(sg.GroupId)},
			"NetworkInterface.1.AssociatePublicIpAddress": {"true"}},
			tag("TagSpecification.1", "instance"), tag("TagSpecification.2", "volume"))},
		"ec2:CreateImage": {form: form(url.Values{"InstanceId": {instance}, "Name": {"amifleet-x"}},
			tag("TagSpecification.1", "image"), tag("TagSpecification.2", "snapshot"))},
		"ec2:CreateSecurityGroup": {form: form(url.Values{"GroupName": {"amifleet-y"}, "GroupDescription": {"y"}, "VpcId": {vpc}},
			tag("TagSpecification.1", "security-group"))},
		"ec2:AuthorizeSecurityGroupIngress": {form: form(url.Values{"GroupId": {aws.ToString(sg.GroupId)}, "IpPermissions.1.IpProtocol": {"tcp"}},
			tag("TagSpecification.1", "security-group-rule"))},
		"ec2:TerminateInstances":  {form: instanceForm},
		"ec2:StopInstances":       {form: instanceForm},
		"ec2:StartInstances":      {form: instanceForm},
		"ec2:RebootInstances":     {form: instanceForm},
		"ec2:GetConsoleOutput":    {form: url.Values{"InstanceId": {instance}}},
		"ec2:DeregisterImage":     {form: url.Values{"ImageId": {aws.ToString(img.ImageId)}}},
		"ec2:DeleteSnapshot":      {form: url.Values{"SnapshotId": {aws.ToString(snap.SnapshotId)}}},
		"ec2:DeleteSecurityGroup": {form: url.Values{"GroupId": {aws.ToString(sg.GroupId)}}},

		"elasticloadbalancing:CreateLoadBalancer": {form: form(url.Values{"Name": {"amifleet-z"}, "Subnets.member.1": {subnet}}, elbTagForm)},
		"elasticloadbalancing:CreateTargetGroup":  {form: form(url.Values{"Name": {"amifleet-z"}}, elbTagForm)},
		"elasticloadbalancing:CreateListener":     {form: form(url.Values{"LoadBalancerArn": {lb}, "Protocol": {"HTTP"}, "Port": {"8080"}}, elbTagForm)},
		"elasticloadbalancing:RegisterTargets":    {form: url.Values{"TargetGroupArn": {tgARN}}},
		"elasticloadbalancing:DeregisterTargets":  {form: url.Values{"TargetGroupArn": {tgARN}}},
		"elasticloadbalancing:ModifyTargetGroupAttributes": {form: url.Values{"TargetGroupArn": {tgARN},
			"Attributes.member.1.Key": {"deregistration_delay.timeout_seconds"}, "Attributes.member.1.Value": {"30"}}},
		"elasticloadbalancing:DeleteListener":     {form: url.Values{"ListenerArn": {listenerARN}}},
		"elasticloadbalancing:DeleteLoadBalancer": {form: url.Values{"LoadBalancerArn": {lb}}},
		"elasticloadbalancing:DeleteTargetGroup":  {form: url.Values{"TargetGroupArn": {tgARN}}},

		"ssm:GetParameter":              {body: `{"Name":"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}`},
		"servicequotas:GetServiceQuota": {body: `{"ServiceCode":"ec2","QuotaCode":"L-1216C47A"}`},

		"dynamodb:GetItem": {body: `{"TableName":"amifleet-map","Key":{"runId":{"S":"map"}},"ConsistentRead":true,"ReturnConsumedCapacity":"TOTAL"}`},
		"dynamodb:PutItem": {body: `{"TableName":"amifleet-map","Item":{"runId":{"S":"map"},"state":{"S":"live"}},` +
			`"ConditionExpression":"attribute_not_exists(runId)","ReturnValues":"ALL_OLD"}`},
		"dynamodb:UpdateItem": {body: `{"TableName":"arn:aws:dynamodb:` + testRegion + `:` + testAccount + `:table/amifleet-map","Key":{"runId":{"S":"map"}},` +
			`"UpdateExpression":"SET lastGen = :one","ExpressionAttributeValues":{":one":{"N":"1"}},"ReturnValues":"UPDATED_NEW"}`},
		"dynamodb:DeleteItem": {body: `{"TableName":"amifleet-map","Key":{"runId":{"S":"map"}}}`},

		"states:DescribeExecution": {body: `{"executionArn":"arn:aws:states:` + testRegion + `:` + testAccount + `:execution:AmiFleet-Refresh:refresh-map"}`},
		"states:DescribeExecution (express)": {body: `{"executionArn":"arn:aws:states:` + testRegion + `:` + testAccount +
			`:express:AmiFleet-Express:e1:0b1c2d3e-0000-4000-8000-000000000000"}`},
		"states:StopExecution": {body: `{"executionArn":"arn:aws:states:` + testRegion + `:` + testAccount + `:execution:AmiFleet-Refresh:refresh-map"}`},
	}
	for _, a := range iamDescribes {
		samples[a] = sample{form: url.Values{}}
	}

	// Every action a function calls is one the mapping knows and this test samples;
	// every action the mapping knows is sampled.
	golden, err := os.ReadFile(filepath.Join("..", "stages", "testdata", "iam-actions.json"))
	must(err)
	var byFunction map[string][]string
	must(json.Unmarshal(golden, &byFunction))
	called := map[string]bool{}
	for _, actions := range byFunction {
		for _, a := range actions {
			called[a] = true
		}
	}
	for _, a := range iamExtraActions {
		called[a] = true
	}
	for a := range called {
		if iamActions[a] == nil {
			t.Errorf("%s: a function calls it, iamActions does not know it", a)
		}
	}
	for a := range iamActions {
		if _, ok := samples[a]; !ok {
			t.Errorf("%s: no sample call in this test", a)
		}
	}

	allowAll := []iamNamedPolicy{{Name: "AllowAll", Policy: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)}}
	global := map[string]bool{}
	for _, k := range iamGlobalKeys() {
		global[k] = true
	}
	infos := map[string]*iamActionInfo{}
	info := func(action string) *iamActionInfo {
		if infos[action] == nil {
			i, err := lc.gw.iamActionData(ctx, action)
			if err != nil {
				t.Fatalf("%s: %v", action, err)
			}
			infos[action] = i
		}
		return infos[action]
	}
	// keyListed says whether key is one of the patterns ("aws:RequestTag/${TagKey}").
	keyListed := func(key string, patterns ...[]string) bool {
		for _, ps := range patterns {
			for _, p := range ps {
				if prefix, ok := strings.CutSuffix(p, "${TagKey}"); ok && strings.HasPrefix(strings.ToLower(key), strings.ToLower(prefix)) {
					return true
				}
				if strings.EqualFold(p, key) {
					return true
				}
			}
		}
		return false
	}
	var table []string
	names := make([]string, 0, len(samples))
	for a := range samples {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, name := range names {
		s := samples[name]
		action, _, _ := strings.Cut(name, " ")
		service, op, _ := strings.Cut(action, ":")
		protocol := map[string]string{"ec2": "ec2", "elasticloadbalancing": "query"}[service]
		if protocol == "" {
			protocol = "json"
		}
		q := &iamRequest{g: lc.gw, call: apiCall{Service: service, Action: op, Region: testRegion, Protocol: protocol, Form: s.form},
			region: testRegion, partition: "aws", account: testAccount, body: []byte(s.body)}
		evals, err := iamActions[action](ctx, q)
		if err != nil {
			t.Errorf("%s: mapping: %v", action, err)
			continue
		}
		results, err := lc.gw.iamEvaluate(ctx, iamEvalRequest{Principal: "arn:aws:sts::" + testAccount + ":assumed-role/R/F", Account: testAccount,
			Policies: allowAll, Evaluations: evals})
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		for i, ev := range evals {
			in := info(ev.Action)
			var listed []string
			where := ev.Action + " on " + ev.Resource
			if ev.Resource == "*" {
				if !in.WildcardOnly || ev.Type != "" {
					t.Errorf("%s: evaluated on * but iam-data says it has resource types", where)
				}
			} else {
				found := false
				for _, rt := range in.ResourceTypes {
					if rt.Name == ev.Type {
						// The keys the action lists for the type, and those the type
						// lists itself (DynamoDB's table: aws:ResourceTag).
						found, listed = true, slices.Concat(rt.ConditionKeys, rt.TypeConditionKeys)
					}
				}
				gap, declared := iamDataGaps[ev.Action+" "+ev.Type]
				switch {
				case !found && !declared:
					t.Errorf("%s: resource type %q, which iam-data does not list for %s", where, ev.Type, ev.Action)
				case ev.Unsafe && !declared:
					t.Errorf("%s: evaluated unvalidated, but no gap declared for %s %s", where, ev.Action, ev.Type)
				case ev.Unsafe:
					// The gap is still one: validated, the simulator refuses the ARN.
					strict := ev
					strict.Unsafe = false
					res, err := lc.gw.iamEvaluate(ctx, iamEvalRequest{Principal: "arn:aws:sts::" + testAccount + ":assumed-role/R/F", Account: testAccount,
						Policies: allowAll, Evaluations: []iamEval{strict}})
					if err != nil {
						t.Fatal(err)
					}
					if res[0].Decision != "Error" || !strings.Contains(res[0].Error, "no.resource.types") {
						t.Errorf("%s: declared a gap of iam-data (%s), but iam-data now evaluates it (%+v): drop the gap", where, gap, res[0])
					}
				}
			}
			for k := range ev.Context {
				if !global[k] && !keyListed(k, in.ConditionKeys, listed) {
					t.Errorf("%s: condition key %s, which iam-data does not list for the action or resource type %q", where, k, ev.Type)
				}
			}
			res := results[i]
			if res.Decision != "Allowed" {
				t.Errorf("%s: %s under Allow * on * (%s%s)", where, res.Decision, res.Reason, res.Error)
			}
			if !ev.Unsafe && ev.Type != "" && res.ResourceType != ev.Type {
				t.Errorf("%s: the simulator resolved resource type %q, the mapping says %q", where, res.ResourceType, ev.Type)
			}
			if len(res.IgnoredContextKeys) > 0 {
				t.Errorf("%s: the simulator ignored keys %v", where, res.IgnoredContextKeys)
			}
			keys := make([]string, 0, len(ev.Context))
			for k := range ev.Context {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			typ := ev.Type
			if typ == "" {
				typ = "*"
			}
			if ev.Unsafe {
				typ += " (unvalidated)"
			}
			line := name + ": " + ev.Action + " " + typ + " " + strings.Join(keys, ",")
			if ev.Resource != "*" || !strings.Contains(action, ":Describe") {
				table = append(table, line)
			}
		}
	}
	t.Logf("what the mapping evaluates (Describe* on * left out):\n%s", strings.Join(table, "\n"))
}

// TestIAMRunRecordCalls: a function's DynamoDB item calls are evaluated on the table
// the body names, and its execution calls on the execution: allowed where its role
// grants them, refused as AWS refuses them elsewhere; a table that does not exist is
// DynamoDB's own answer, and a condition that fails still reaches the SDK as
// ConditionalCheckFailedException.
func TestIAMRunRecordCalls(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{Strict: Strictness{IAM: true}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := dynamodb.NewFromConfig(lc.cfg)
	tableA := createRunsTable(t, admin, "Runs-a")
	tableB := createRunsTable(t, admin, "Runs-b")

	// A Refresh-like machine whose executions the role may describe and stop, and
	// another whose it may not; each execution waits, so that it can be stopped.
	states := sfn.NewFromConfig(lc.cfg)
	hold := `{"StartAt":"Hold","States":{"Hold":{"Type":"Wait","Seconds":60,"End":true}}}`
	execution := func(machine string) string {
		sm, err := states.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String(machine), RoleArn: aws.String(testRoleARN), Definition: aws.String(hold)})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := states.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: sm.StateMachineArn, Name: aws.String("held")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = states.StopExecution(context.Background(), &sfn.StopExecutionInput{ExecutionArn: ex.ExecutionArn})
		})
		return aws.ToString(ex.ExecutionArn)
	}
	refresh, other := execution("iamtest-Refresh"), execution("iamtest-Other")

	const function = "PrepareRefresh-iamtest"
	cfg := makeFunctionRole(t, lc, function, "amifleet-iamtest-refresh", []map[string]any{
		iamStatement([]string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}, []string{tableA}, nil),
		iamStatement([]string{"states:DescribeExecution", "states:StopExecution"},
			[]string{"arn:aws:states:" + testRegion + ":" + testAccount + ":execution:iamtest-Refresh:*"}, nil),
	})
	ddb := dynamodb.NewFromConfig(cfg)
	denied := func(t *testing.T, err error, resource string) {
		t.Helper()
		code, msg := apiError(err)
		if code != "AccessDeniedException" || httpStatus(err) != http.StatusBadRequest || !strings.Contains(msg, "on resource: "+resource+" ") {
			t.Fatalf("%v (HTTP %d), want AccessDeniedException, 400, on %s", err, httpStatus(err), resource)
		}
	}
	put := func(table string) error {
		_, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]ddbtypes.AttributeValue{
			"runId": &ddbtypes.AttributeValueMemberS{Value: "spring-demo"}, "state": &ddbtypes.AttributeValueMemberS{Value: "live"}},
			ConditionExpression: aws.String("attribute_not_exists(runId)")})
		return err
	}
	get := func(table string) error {
		_, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: runKey("spring-demo"), ConsistentRead: aws.Bool(true)})
		return err
	}
	update := func(table, state string) error {
		_, err := ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: runKey("spring-demo"),
			UpdateExpression: aws.String("SET lastGen = :one"), ConditionExpression: aws.String("#s = :state"),
			ExpressionAttributeNames: map[string]string{"#s": "state"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":state": &ddbtypes.AttributeValueMemberS{Value: state}, ":one": &ddbtypes.AttributeValueMemberN{Value: "1"}}})
		return err
	}

	t.Run("the granted table", func(t *testing.T) {
		if err := put("Runs-a"); err != nil {
			t.Fatalf("PutItem: %v", err)
		}
		if err := get("Runs-a"); err != nil {
			t.Fatalf("GetItem: %v", err)
		}
		if err := update("Runs-a", "live"); err != nil {
			t.Fatalf("UpdateItem: %v", err)
		}
		// By ARN as well as by name.
		if err := get(tableA); err != nil {
			t.Fatalf("GetItem by the table's ARN: %v", err)
		}
		var failed *ddbtypes.ConditionalCheckFailedException
		if err := update("Runs-a", "tearingDown"); !errors.As(err, &failed) {
			t.Fatalf("UpdateItem on a condition that does not hold: %v, want *types.ConditionalCheckFailedException", err)
		}
		_, err := ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("Runs-a"), Key: runKey("spring-demo")})
		denied(t, err, tableA) // not granted
	})

	t.Run("another table", func(t *testing.T) {
		if _, err := admin.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("Runs-b"), Item: runKey("spring-demo")}); err != nil {
			t.Fatal(err)
		}
		denied(t, put("Runs-b"), tableB)
		denied(t, get("Runs-b"), tableB)
		denied(t, get(tableB), tableB)
		denied(t, update("Runs-b", "live"), tableB)
		d := lc.gw.Denials()
		if last := d[len(d)-1]; last.Action != "dynamodb:UpdateItem" || last.Resource != tableB || last.ResourceType != "table" {
			t.Errorf("last denial %+v", last)
		}
		// moto's answer: the table is unknown, as DynamoDB answers.
		var missing *ddbtypes.ResourceNotFoundException
		if err := get("Runs-none"); !errors.As(err, &missing) {
			t.Errorf("GetItem of a table that does not exist: %v, want ResourceNotFoundException", err)
		}
	})

	t.Run("the partition key is dynamodb:LeadingKeys", func(t *testing.T) {
		own := dynamodb.NewFromConfig(makeFunctionRole(t, lc, "OwnRecord-iamtest", "amifleet-iamtest-own", []map[string]any{
			iamStatement([]string{"dynamodb:GetItem"}, []string{tableA},
				map[string]any{"ForAllValues:StringEquals": map[string]any{"dynamodb:LeadingKeys": []string{"spring-demo"}}}),
		}))
		if _, err := own.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("Runs-a"), Key: runKey("spring-demo")}); err != nil {
			t.Fatalf("its own record: %v", err)
		}
		_, err := own.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("Runs-a"), Key: runKey("winter-demo")})
		denied(t, err, tableA)
	})

	t.Run("executions", func(t *testing.T) {
		sf := sfn.NewFromConfig(cfg)
		out, err := sf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(refresh)})
		if err != nil || out.Status != sfntypes.ExecutionStatusRunning {
			t.Fatalf("DescribeExecution of a Refresh execution: %v (%v)", err, out)
		}
		_, err = sf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(other)})
		denied(t, err, other)
		_, err = sf.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(other)})
		denied(t, err, other)
		if _, err := sf.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(refresh)}); err != nil {
			t.Fatalf("StopExecution of a Refresh execution: %v", err)
		}
		if out := awaitExecution(ctx, t, states, refresh); out.Status != sfntypes.ExecutionStatusAborted {
			t.Errorf("the stopped execution is %s, want ABORTED", out.Status)
		}
		if out, err := states.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(other)}); err != nil || out.Status != sfntypes.ExecutionStatusRunning {
			t.Errorf("the other execution: %v (%v), want it running still", err, out)
		}
		rec := lc.gw.IAMRecord().Functions[function]
		if got := rec.Actions["states:StopExecution"]; got.Allowed != 1 || got.Denied != 1 {
			t.Errorf("states:StopExecution record %+v, want one allowed, one denied", got)
		}
	})
}
