package localcloud

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/userdata"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

const (
	testAccount = "123456789012"
	testRegion  = "us-east-1"
	// cdkAssetsBucket is where `cdk deploy` puts Lambda code in the local cloud.
	cdkAssetsBucket = "cdk-hnb659fds-assets-" + testAccount + "-" + testRegion
	testRoleName    = "amifleet-gateway-test"
	testRoleARN     = "arn:aws:iam::" + testAccount + ":role/" + testRoleName
)

// localCloud is moto behind a gateway, as the CLI runs them: moto's interpreter sends
// Lambda Invoke to the gateway's port.
type localCloud struct {
	moto *Moto
	gw   *Gateway
	cfg  aws.Config // every client through the gateway, no SDK retries
}

func startLocalCloud(t *testing.T, opts GatewayOptions) *localCloud {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	logw := tWriter{t}
	m, err := StartMoto(ctx, MotoOptions{LambdaPort: port, LogWriter: nopWriter{}})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stopping moto: %v", err)
		}
	})
	opts.Upstream = m.Endpoint()
	if opts.LogWriter == nil {
		opts.LogWriter = logw
	}
	gw, err := NewGateway(opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	gw.Serve(ln)
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("closing the gateway: %v", err)
		}
	})
	cfg := AWSConfig(gw.URL(), testRegion)
	cfg.RetryMaxAttempts = 1
	return &localCloud{moto: m, gw: gw, cfg: cfg}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// createRole makes the IAM role moto requires a function to have, with a raw query
// call through the gateway (the project has no IAM client module).
func (lc *localCloud) createRole(t *testing.T) {
	t.Helper()
	form := url.Values{
		"Action":                   {"CreateRole"},
		"Version":                  {"2010-05-08"},
		"RoleName":                 {testRoleName},
		"AssumeRolePolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`},
	}
	req, _ := http.NewRequest(http.MethodPost, lc.gw.URL()+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=amifleet-local/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateRole: %s", resp.Status)
	}
}

// deployEcho puts the echo function in moto as `cdk deploy` does: its zip in the CDK
// assets bucket under <sha256 hex>.zip, the function created from S3.
func (lc *localCloud) deployEcho(t *testing.T, name string, timeoutSeconds int32) *lambda.CreateFunctionOutput {
	t.Helper()
	ctx := context.Background()
	_, pkg := echoLambda(t)
	s3c := s3.NewFromConfig(lc.cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(cdkAssetsBucket)}); err != nil {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(cdkAssetsBucket)}); err != nil {
			t.Fatal(err)
		}
		// Another object first, so that the search has something to skip.
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cdkAssetsBucket), Key: aws.String("0000.zip"), Body: strings.NewReader("not this one")}); err != nil {
			t.Fatal(err)
		}
		lc.createRole(t)
	}
	sum := sha256.Sum256(pkg)
	key := hex.EncodeToString(sum[:]) + ".zip"
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cdkAssetsBucket), Key: aws.String(key), Body: strings.NewReader(string(pkg))}); err != nil {
		t.Fatal(err)
	}
	out, err := lambda.NewFromConfig(lc.cfg).CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(name),
		Role:         aws.String(testRoleARN),
		Runtime:      lambdatypes.RuntimeProvidedal2023,
		Handler:      aws.String("bootstrap"),
		Timeout:      aws.Int32(timeoutSeconds),
		MemorySize:   aws.Int32(256),
		Code:         &lambdatypes.FunctionCode{S3Bucket: aws.String(cdkAssetsBucket), S3Key: aws.String(key)},
		Environment:  &lambdatypes.Environment{Variables: map[string]string{"ECHO_VAR": "set-in-" + name}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := aws.ToString(out.CodeSha256), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("moto's CodeSha256 %s, want %s", got, want)
	}
	return out
}

// errorCode is the AWS error code of err, or "".
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// TestGatewayInvoke deploys the echo function the way the CDK does and invokes it
// through the gateway with the SDK's Lambda client, through every kind of answer.
func TestGatewayInvoke(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{})
	ctx := context.Background()
	fn := lc.deployEcho(t, "echo", 1)
	client := lambda.NewFromConfig(lc.cfg)
	lc.gw.ResetCounts()

	invoke := func(t *testing.T, name, payload string) (*lambda.InvokeOutput, map[string]any) {
		t.Helper()
		out, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(out.Payload, &body); err != nil {
			t.Fatalf("payload %q: %v", out.Payload, err)
		}
		return out, body
	}

	t.Run("answer, with the function's environment", func(t *testing.T) {
		start := time.Now()
		out, body := invoke(t, "echo", `{"mode":"ok"}`)
		t.Logf("first invoke through the gateway (GetFunction, code from S3, unzip, cold start): %s", time.Since(start).Round(time.Millisecond))
		if out.StatusCode != 200 || out.FunctionError != nil {
			t.Fatalf("status %d, function error %v", out.StatusCode, aws.ToString(out.FunctionError))
		}
		env, _ := body["env"].(map[string]any)
		want := map[string]string{
			"ECHO_VAR":                        "set-in-echo",
			"AWS_REGION":                      testRegion,
			"AWS_ENDPOINT_URL":                lc.gw.URL(),
			"AWS_LAMBDA_FUNCTION_NAME":        "echo",
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
			"_HANDLER":                        "bootstrap",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %v, want %q", k, env[k], v)
			}
		}
		if !strings.HasPrefix(lc.gw.URL(), "http://localhost:") {
			t.Errorf("gateway URL %s: functions need host localhost for moto's path-style S3", lc.gw.URL())
		}
		start = time.Now()
		const n = 20
		for range n {
			invoke(t, "echo", `{"mode":"ok"}`)
		}
		t.Logf("warm invoke through the gateway (GetFunction + run): %s mean of %d", (time.Since(start) / n).Round(time.Microsecond), n)
	})

	t.Run("by ARN", func(t *testing.T) {
		out, _ := invoke(t, aws.ToString(fn.FunctionArn), `{"mode":"ok"}`)
		if out.FunctionError != nil {
			t.Fatal(aws.ToString(out.FunctionError))
		}
	})

	errCases := []struct {
		name, payload, errorType string
		crash                    bool
	}{
		{name: "named error", payload: `{"mode":"error","message":"boom"}`, errorType: "EchoError"},
		{name: "panic", payload: `{"mode":"panic","message":"kaput"}`, errorType: "string"},
		{name: "timeout from the configuration", payload: `{"sleepMs":3000}`, errorType: ErrTypeTimeout},
		{name: "injected crash", payload: `{"mode":"ok"}`, errorType: ErrTypeExit, crash: true},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.crash {
				lc.gw.CrashFunction("ec*o", 1)
			}
			start := time.Now()
			out, body := invoke(t, "echo", tc.payload)
			if aws.ToString(out.FunctionError) != "Unhandled" || body["errorType"] != tc.errorType {
				t.Fatalf("FunctionError %q, body %v; want Unhandled and errorType %s", aws.ToString(out.FunctionError), body, tc.errorType)
			}
			if tc.errorType == ErrTypeTimeout {
				if took := time.Since(start); took < time.Second || took > 2500*time.Millisecond {
					t.Errorf("timeout answered after %s; the function's timeout is 1 s", took)
				}
			}
			// The function answers again afterwards (a new process where the old
			// one ended).
			if out, _ := invoke(t, "echo", `{}`); out.FunctionError != nil {
				t.Fatalf("after %s: %s", tc.name, aws.ToString(out.FunctionError))
			}
		})
	}

	// A crash with Match takes only an invocation whose payload carries it.
	t.Run("crash matching the payload", func(t *testing.T) {
		lc.gw.AddCrash(CrashFault{Function: "echo", Times: 1, Match: "run-a1"})
		defer lc.gw.ClearFaults()
		if out, _ := invoke(t, "echo", `{"mode":"ok","runId":"run-b2"}`); out.FunctionError != nil {
			t.Errorf("another payload crashed: %s", aws.ToString(out.FunctionError))
		}
		if out, body := invoke(t, "echo", `{"mode":"ok","runId":"run-a1"}`); body["errorType"] != ErrTypeExit {
			t.Errorf("the matching payload: %s %v, want %s", aws.ToString(out.FunctionError), body, ErrTypeExit)
		}
	})

	t.Run("unknown function", func(t *testing.T) {
		_, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("nope")})
		var nf *lambdatypes.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Fatalf("error %v, want ResourceNotFoundException", err)
		}
	})

	t.Run("throttled by a fault", func(t *testing.T) {
		lc.gw.InjectAPIError("lambda:Invoke", "TooManyRequestsException", 0, 1)
		_, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("echo")})
		var tm *lambdatypes.TooManyRequestsException
		if !errors.As(err, &tm) {
			t.Fatalf("error %v, want TooManyRequestsException", err)
		}
		if out, _ := invoke(t, "echo", `{}`); out.FunctionError != nil {
			t.Fatal("second call still faulted")
		}
	})

	stats := lc.gw.FunctionStats()[testRegion+"/echo"]
	// One start, then one after each of panic, timeout and the two crashes.
	if stats.Starts != 5 {
		t.Errorf("%d processes started, want 5 (first, after the panic, the timeout, the two crashes)", stats.Starts)
	}
	counts := lc.gw.Counts()
	// 21 + ARN 1 + 4 errors + 4 after + 2 matching or not + unknown 1 + throttled 1 + after 1.
	if counts["lambda:Invoke"] != 35 {
		t.Errorf("lambda:Invoke counted %d, want 35 (counts %v)", counts["lambda:Invoke"], counts)
	}
}

// TestGatewayZipFile: a function created with a ZipFile (moto keeps that code nowhere
// it serves) runs when the zip is in one of the gateway's ZipDirs.
func TestGatewayZipFile(t *testing.T) {
	_, pkg := echoLambda(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "amd64", "echo.zip"), pkg, 0o644); err != nil {
		t.Fatal(err)
	}
	lc := startLocalCloud(t, GatewayOptions{ZipDirs: []string{dir}})
	lc.createRole(t)
	ctx := context.Background()
	client := lambda.NewFromConfig(lc.cfg)
	if _, err := client.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("zipped"),
		Role:         aws.String(testRoleARN),
		Runtime:      lambdatypes.RuntimeProvidedal2023,
		Handler:      aws.String("bootstrap"),
		Code:         &lambdatypes.FunctionCode{ZipFile: pkg},
	}); err != nil {
		t.Fatal(err)
	}
	out, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("zipped"), Payload: []byte(`{"mode":"ok"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if out.FunctionError != nil || !strings.Contains(string(out.Payload), `"AWS_LAMBDA_FUNCTION_NAME":"zipped"`) {
		t.Fatalf("answer %s %s", aws.ToString(out.FunctionError), out.Payload)
	}
}

// TestGatewayAPIFaults: calls reach moto; an injected error is answered in each
// protocol so that the SDK reads its code, for the first K calls only; counts see
// every call.
func TestGatewayAPIFaults(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)

	t.Run("EC2 forwarded", func(t *testing.T) {
		out, err := ec2c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
		if err != nil || len(out.Vpcs) == 0 {
			t.Fatalf("DescribeVpcs through the gateway: %v (%d VPCs)", err, len(out.Vpcs))
		}
	})

	t.Run("first K DescribeInstances throttled", func(t *testing.T) {
		lc.gw.ResetCounts()
		lc.gw.InjectAPIError("ec2:DescribeInstances", "RequestLimitExceeded", 0, 2)
		var codes []string
		for range 4 {
			_, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			codes = append(codes, errorCode(err))
		}
		if strings.Join(codes, ",") != "RequestLimitExceeded,RequestLimitExceeded,," {
			t.Errorf("error codes %q, want two RequestLimitExceeded then successes", codes)
		}
		if _, err := ec2c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{}); err != nil {
			t.Errorf("another action was faulted: %v", err)
		}
		counts := lc.gw.Counts()
		if counts["ec2:DescribeInstances"] != 4 || counts["ec2:DescribeVpcs"] != 1 || len(counts) != 2 {
			t.Errorf("counts %v, want DescribeInstances 4 and DescribeVpcs 1", counts)
		}
	})

	// A fault with Match hits only the calls that carry it (one run's, by its id in a
	// name or tag), so that runs can fail side by side.
	t.Run("Match", func(t *testing.T) {
		lc.gw.ClearFaults()
		defer lc.gw.ClearFaults()
		lc.gw.AddFault(APIFault{Action: "ec2:CreateSecurityGroup", Code: "UnauthorizedOperation", Match: "run-a1"})
		create := func(name string) error {
			_, err := ec2c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String("match")})
			return err
		}
		if err := create("amifleet-run-b2-sg"); err != nil {
			t.Errorf("a call of another run was faulted: %v", err)
		}
		for range 2 {
			if err := create("amifleet-run-a1-sg"); errorCode(err) != "UnauthorizedOperation" {
				t.Errorf("the matching call: %v, want UnauthorizedOperation every time", err)
			}
		}
	})

	// One fault per protocol: EC2 query, query (ELBv2), JSON (SSM), REST-XML (S3),
	// REST-JSON (Lambda); each answered so that the SDK sees the code.
	protocols := []struct {
		action, code string
		call         func() error
	}{
		{"ec2:RunInstances", "InvalidParameterValue", func() error {
			_, err := ec2c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-x"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
			return err
		}},
		{"elasticloadbalancing:DescribeLoadBalancers", "Throttling", func() error {
			_, err := elbv2.NewFromConfig(lc.cfg).DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
			return err
		}},
		{"ssm:GetParameter", "ThrottlingException", func() error {
			_, err := ssm.NewFromConfig(lc.cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/x")})
			return err
		}},
		{"dynamodb:GetItem", "ProvisionedThroughputExceededException", func() error {
			_, err := dynamodb.NewFromConfig(lc.cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("x"),
				Key: map[string]ddbtypes.AttributeValue{"runId": &ddbtypes.AttributeValueMemberS{Value: "x"}}})
			return err
		}},
		{"s3:ListBuckets", "AccessDenied", func() error {
			_, err := s3.NewFromConfig(lc.cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		}},
		{"lambda:ListFunctions", "ServiceException", func() error {
			_, err := lambda.NewFromConfig(lc.cfg).ListFunctions(ctx, &lambda.ListFunctionsInput{})
			return err
		}},
		{"states:Start*", "ExecutionLimitExceeded", func() error {
			_, err := sfn.NewFromConfig(lc.cfg).StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:us-east-1:123456789012:stateMachine:x")})
			return err
		}},
	}
	for _, p := range protocols {
		t.Run(p.action, func(t *testing.T) {
			lc.gw.ResetCounts()
			lc.gw.AddFault(APIFault{Action: p.action, Code: p.code, Count: 1})
			if got := errorCode(p.call()); got != p.code {
				t.Errorf("SDK read code %q, want %q", got, p.code)
			}
			if got := errorCode(p.call()); got == p.code {
				t.Errorf("second call still has the injected %s", got)
			}
			if n := len(lc.gw.Counts()); n != 1 {
				t.Errorf("counts %v: want one action", lc.gw.Counts())
			}
		})
	}

	t.Run("control API", func(t *testing.T) {
		cc := ControlClient{URL: lc.gw.URL()}
		if err := cc.ResetCounts(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cc.AddFault(ctx, APIFault{Action: "ec2:DescribeSubnets", Code: "UnauthorizedOperation"}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{}); errorCode(err) != "UnauthorizedOperation" {
				t.Fatalf("fault without a count must apply to every call: %v", err)
			}
		}
		counts, err := cc.Counts(ctx)
		if err != nil || counts["ec2:DescribeSubnets"] != 2 {
			t.Fatalf("counts %v %v", counts, err)
		}
		if err := cc.ClearFaults(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{}); err != nil {
			t.Fatalf("after ClearFaults: %v", err)
		}
		if err := cc.CrashFunction(ctx, "", 1); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("crash without a function: %v, want a 400", err)
		}
		if err := cc.AddFault(ctx, APIFault{Action: "ec2:X"}); err == nil {
			t.Error("fault without a code accepted")
		}
		if err := cc.FailGuestOS(ctx, 1); err != nil {
			t.Error(err)
		}
	})
}

// TestGatewayGuestOS: an instance launched with amifleet's user data stops shortly
// after, as its script's poweroff would; one launched without stays running; with a
// failing script it never stops.
func TestGatewayGuestOS(t *testing.T) {
	const delay = 300 * time.Millisecond
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: delay})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	al2023, script := baseImageAndScript(t, lc, "<h1>{hostname}</h1>")
	launch := func(userData string) string {
		in := &ec2.RunInstancesInput{ImageId: aws.String(al2023), InstanceType: ec2types.InstanceTypeT2Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired}}
		if userData != "" {
			in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(userData)))
		}
		out, err := ec2c.RunInstances(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Instances[0].InstanceId)
	}
	state := func(id string) string {
		out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.Reservations[0].Instances[0].State.Name)
	}

	start := time.Now()
	base := launch(script)
	// A base instance terminated within the delay (a failed run cleaned up at once)
	// must stay terminated: the guest powers off only a running instance.
	terminated := launch(script)
	if _, err := ec2c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{terminated}}); err != nil {
		t.Fatal(err)
	}
	plain := launch("#!/bin/bash\necho not amifleet\n")
	none := launch("")
	lc.gw.FailGuestOS(1)
	failing := launch(script)

	// The guest's scripts run at the lowest CPU priority: on a loaded machine they
	// take seconds more. The bound only keeps the test from hanging.
	var stoppedAfter time.Duration
	for time.Since(start) < 30*time.Second {
		if state(base) == "stopped" {
			stoppedAfter = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if stoppedAfter == 0 {
		t.Fatalf("base instance %s not stopped 30 s after launch (state %s)", base, state(base))
	}
	if stoppedAfter < delay {
		t.Errorf("stopped after %s, before the %s delay", stoppedAfter, delay)
	}
	t.Logf("base instance stopped %s after RunInstances (delay %s)", stoppedAfter.Round(time.Millisecond), delay)
	time.Sleep(2 * delay)
	for _, id := range []string{plain, none, failing} {
		if s := state(id); s != "running" {
			t.Errorf("instance %s is %s, want running", id, s)
		}
	}
	if s := state(terminated); s != "terminated" {
		t.Errorf("instance %s terminated before the guest's poweroff is %s, want terminated", terminated, s)
	}
	// The guest OS's own StopInstances is not an API call anyone made.
	if n := lc.gw.Counts()["ec2:StopInstances"]; n != 0 {
		t.Errorf("ec2:StopInstances counted %d", n)
	}

	// The base instance's software ran before it powered off: the page writer the user
	// data carries wrote the page, on the instance's own disk, with the hostname it read
	// over IMDSv2 (tokens required): the private DNS name EC2 reports.
	out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{base}})
	if err != nil {
		t.Fatal(err)
	}
	dns := aws.ToString(out.Reservations[0].Instances[0].PrivateDnsName)
	page, err := os.ReadFile(filepath.Join(lc.gw.InstanceDisk(base), "var/www/html/index.html"))
	if err != nil {
		t.Fatalf("the base instance's page: %v", err)
	}
	if want := "<h1>" + dns + "</h1>"; dns == "" || string(page) != want {
		t.Errorf("page %q, want %q", page, want)
	}
	if _, err := os.Stat(filepath.Join(lc.gw.InstanceDisk(base), userdata.PageWriterPath)); err != nil {
		t.Errorf("the page writer is not installed on the disk: %v", err)
	}
	for _, id := range []string{plain, none, failing} {
		if _, err := os.Stat(lc.gw.InstanceDisk(id)); !os.IsNotExist(err) {
			t.Errorf("instance %s without amifleet's software ran (disk: %v)", id, err)
		}
	}
}

// TestGatewayStateMachine is the path the whole project relies on: moto's ASL
// interpreter runs a Task that invokes a Lambda, the invoke reaches the gateway (moto
// runs with MOTO_PORT = the gateway's port), the function's real bootstrap answers,
// and the execution succeeds; a crash is retried on Runtime.ExitError as the real
// state machines do, and a named error is caught by name.
func TestGatewayStateMachine(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fn := lc.deployEcho(t, "sfn-echo", 1)
	definition := `{
	  "StartAt": "Echo",
	  "States": {
	    "Echo": {
	      "Type": "Task",
	      "Resource": "arn:aws:states:::lambda:invoke",
	      "Parameters": {"FunctionName": "` + aws.ToString(fn.FunctionArn) + `", "Payload.$": "$"},
	      "OutputPath": "$.Payload",
	      "Retry": [{"ErrorEquals": ["Runtime.ExitError"], "IntervalSeconds": 1, "MaxAttempts": 2}],
	      "Catch": [
	        {"ErrorEquals": ["EchoError"], "ResultPath": "$.caught", "Next": "Caught"},
	        {"ErrorEquals": ["Sandbox.Timedout"], "ResultPath": "$.caught", "Next": "Caught"}
	      ],
	      "End": true
	    },
	    "Caught": {"Type": "Pass", "End": true}
	  }
	}`
	client := sfn.NewFromConfig(lc.cfg)
	sm, err := client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name:       aws.String("gateway-test"),
		RoleArn:    aws.String(testRoleARN),
		Definition: aws.String(definition),
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		input  string
		crash  bool
		output string // in the execution's output
	}{
		{name: "plain", input: `{"mode":"ok","message":"hello"}`, output: `"requestId"`},
		{name: "crash-once-retried", input: `{"mode":"ok"}`, crash: true, output: `"requestId"`},
		{name: "named-error-caught", input: `{"mode":"error","message":"boom"}`, output: `EchoError`},
		// What the interpreter makes of a timed-out function: the error named as AWS
		// Lambda names it in the payload.
		{name: "timeout-caught", input: `{"sleepMs":3000}`, output: `"Error": "Sandbox.Timedout"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.crash {
				lc.gw.CrashFunction("sfn-echo", 1)
			}
			before := lc.gw.Counts()["lambda:Invoke"]
			start := time.Now()
			ex, err := client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: sm.StateMachineArn, Name: aws.String(tc.name), Input: aws.String(tc.input)})
			if err != nil {
				t.Fatal(err)
			}
			out := awaitExecution(ctx, t, client, aws.ToString(ex.ExecutionArn))
			t.Logf("execution %s: %s in %s", tc.name, out.Status, time.Since(start).Round(time.Millisecond))
			if out.Status != sfntypes.ExecutionStatusSucceeded {
				t.Fatalf("execution %s: %s %s %s", tc.name, out.Status, aws.ToString(out.Error), aws.ToString(out.Cause))
			}
			if !strings.Contains(aws.ToString(out.Output), tc.output) {
				t.Errorf("output %s, want %s in it", aws.ToString(out.Output), tc.output)
			}
			invokes := lc.gw.Counts()["lambda:Invoke"] - before
			if want := map[bool]int{false: 1, true: 2}[tc.crash]; invokes != want {
				t.Errorf("%d invokes reached the gateway, want %d", invokes, want)
			}
		})
	}
}

// awaitExecution polls until the execution has ended.
func awaitExecution(ctx context.Context, t *testing.T, client *sfn.Client, arn string) *sfn.DescribeExecutionOutput {
	t.Helper()
	for {
		out, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != sfntypes.ExecutionStatusRunning {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("execution %s still running: %v", arn, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestIdentify names requests as the counts and faults do.
func TestIdentify(t *testing.T) {
	auth := func(service string) string {
		return "AWS4-HMAC-SHA256 Credential=AK/20260101/eu-west-2/" + service + "/aws4_request, SignedHeaders=host, Signature=0"
	}
	cases := []struct {
		name, method, path, body, service, target, host string
		want, region, protocol, contentType             string
	}{
		{name: "ec2 query", method: "POST", path: "/", body: "Action=DescribeInstances&Version=2016-11-15", service: "ec2", want: "ec2:DescribeInstances", region: "eu-west-2", protocol: "ec2"},
		{name: "elbv2 query", method: "POST", path: "/", body: "Action=CreateLoadBalancer", service: "elasticloadbalancing", want: "elasticloadbalancing:CreateLoadBalancer", protocol: "query"},
		{name: "json", method: "POST", path: "/", target: "AmazonSSM.GetParameter", service: "ssm", want: "ssm:GetParameter", protocol: "json"},
		{name: "states", method: "POST", path: "/", target: "AWSStepFunctions.StartExecution", service: "states", want: "states:StartExecution", protocol: "json"},
		{name: "dynamodb", method: "POST", path: "/", target: "DynamoDB_20120810.GetItem", service: "dynamodb", want: "dynamodb:GetItem", protocol: "json",
			body: `{"TableName":"Runs","Key":{"runId":{"S":"spring-demo"}}}`, contentType: "application/x-amz-json-1.0"},
		{name: "lambda invoke", method: "POST", path: "/2015-03-31/functions/f/invocations", service: "lambda", want: "lambda:Invoke", protocol: "rest-json"},
		{name: "lambda invoke unsigned", method: "POST", path: "/2015-03-31/functions/f/invocations", want: "lambda:Invoke"},
		{name: "lambda get", method: "GET", path: "/2015-03-31/functions/f", service: "lambda", want: "lambda:GetFunction"},
		{name: "lambda create", method: "POST", path: "/2015-03-31/functions", service: "lambda", want: "lambda:CreateFunction"},
		{name: "s3 put object", method: "PUT", path: "/b/k.zip", service: "s3", want: "s3:PutObject", protocol: "rest-xml"},
		{name: "s3 list v2", method: "GET", path: "/b?list-type=2", service: "s3", want: "s3:ListObjectsV2"},
		{name: "s3 create bucket", method: "PUT", path: "/b", service: "s3", want: "s3:CreateBucket"},
		{name: "s3 bucket policy", method: "PUT", path: "/b?policy", service: "s3", want: "s3:PutBucketPolicy"},
		{name: "s3 list buckets", method: "GET", path: "/", service: "s3", want: "s3:ListBuckets"},
		{name: "s3 virtual host", method: "GET", path: "/k", host: "b.localhost:4566", service: "s3", want: "s3:GetObject"},
		{name: "cloudformation", method: "POST", path: "/", body: "Action=CreateStack", service: "cloudformation", want: "cloudformation:CreateStack"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(tc.method, "http://localhost:4566"+tc.path, strings.NewReader(tc.body))
			if tc.host != "" {
				r.Host = tc.host
			}
			switch {
			case tc.contentType != "":
				r.Header.Set("Content-Type", tc.contentType)
			case tc.body != "":
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			}
			if tc.service != "" {
				r.Header.Set("Authorization", auth(tc.service))
			}
			if tc.target != "" {
				r.Header.Set("X-Amz-Target", tc.target)
			}
			c, err := identify(r)
			if err != nil {
				t.Fatal(err)
			}
			if c.key() != tc.want {
				t.Errorf("named %q, want %q", c.key(), tc.want)
			}
			if tc.region != "" && c.Region != tc.region {
				t.Errorf("region %q, want %q", c.Region, tc.region)
			}
			if tc.protocol != "" && c.Protocol != tc.protocol {
				t.Errorf("protocol %q, want %q", c.Protocol, tc.protocol)
			}
			if tc.protocol == "json" && string(c.Body) != tc.body {
				t.Errorf("JSON body %q, want %q", c.Body, tc.body)
			}
			// The body is still there for moto.
			if tc.body != "" {
				b := make([]byte, len(tc.body)+1)
				n, _ := r.Body.Read(b)
				if string(b[:n]) != tc.body {
					t.Errorf("body after identify %q", b[:n])
				}
			}
		})
	}
}

func TestParseFunctionRef(t *testing.T) {
	cases := []struct{ ref, name, region string }{
		{"echo", "echo", ""},
		{"echo:live", "echo", ""},
		{"arn:aws:lambda:eu-west-1:123456789012:function:echo", "echo", "eu-west-1"},
		{"arn:aws:lambda:eu-west-1:123456789012:function:echo:$LATEST", "echo", "eu-west-1"},
		{"123456789012:function:echo", "echo", ""},
	}
	for _, tc := range cases {
		name, region := parseFunctionRef(tc.ref)
		if name != tc.name || region != tc.region {
			t.Errorf("%s: %q %q, want %q %q", tc.ref, name, region, tc.name, tc.region)
		}
	}
}

func TestIsAmifleetUserData(t *testing.T) {
	rendered, err := userdata.Render("<p>{hostname}</p>")
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name, param string
		want        bool
	}{
		{"rendered user data", b64(rendered), true},
		{"marker line", b64("#!/bin/bash\n" + UserDataMarker + "\npoweroff\n"), true},
		{"other script", b64("#!/bin/bash\necho hi\n"), false},
		{"empty", "", false},
		{"not base64", "%%%", false},
	}
	for _, tc := range cases {
		if got := isAmifleetUserData(tc.param); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestGatewayCloudFormation runs the deploy path of `cdk deploy --method=direct`
// without the CDK: a stack whose function's code is in the CDK assets bucket and
// whose state machine invokes it by its ARN; the execution succeeds through the
// gateway.
func TestGatewayCloudFormation(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, pkg := echoLambda(t)
	s3c := s3.NewFromConfig(lc.cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(cdkAssetsBucket)}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pkg)
	key := hex.EncodeToString(sum[:]) + ".zip"
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cdkAssetsBucket), Key: aws.String(key), Body: strings.NewReader(string(pkg))}); err != nil {
		t.Fatal(err)
	}
	template := `{
	  "Resources": {
	    "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17",
	      "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
	    "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
	      "Runtime": "provided.al2023", "Handler": "bootstrap", "Timeout": 5,
	      "Role": {"Fn::GetAtt": ["Role", "Arn"]},
	      "Code": {"S3Bucket": "` + cdkAssetsBucket + `", "S3Key": "` + key + `"},
	      "Environment": {"Variables": {"ECHO_VAR": "from-the-stack"}}}},
	    "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
	      "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
	      "DefinitionString": {"Fn::Join": ["", [
	        "{\"StartAt\":\"Echo\",\"States\":{\"Echo\":{\"Type\":\"Task\",\"Resource\":\"arn:aws:states:::lambda:invoke\",\"Parameters\":{\"FunctionName\":\"",
	        {"Fn::GetAtt": ["Fn", "Arn"]},
	        "\",\"Payload.$\":\"$\"},\"OutputPath\":\"$.Payload\",\"End\":true}}}"]]}}}
	  },
	  "Outputs": {"Machine": {"Value": {"Ref": "Machine"}}}
	}`
	cfn := cloudformation.NewFromConfig(lc.cfg)
	if _, err := cfn.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("gateway-test"), TemplateBody: aws.String(template)}); err != nil {
		t.Fatal(err)
	}
	stack, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("gateway-test")})
	if err != nil {
		t.Fatal(err)
	}
	var machine string
	for _, o := range stack.Stacks[0].Outputs {
		if aws.ToString(o.OutputKey) == "Machine" {
			machine = aws.ToString(o.OutputValue)
		}
	}
	if machine == "" {
		t.Fatalf("no state machine in the stack's outputs (status %s)", stack.Stacks[0].StackStatus)
	}
	client := sfn.NewFromConfig(lc.cfg)
	ex, err := client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Name: aws.String("cfn"), Input: aws.String(`{"mode":"ok"}`)})
	if err != nil {
		t.Fatal(err)
	}
	out := awaitExecution(ctx, t, client, aws.ToString(ex.ExecutionArn))
	if out.Status != sfntypes.ExecutionStatusSucceeded {
		t.Fatalf("execution: %s %s %s", out.Status, aws.ToString(out.Error), aws.ToString(out.Cause))
	}
	if !strings.Contains(aws.ToString(out.Output), `"ECHO_VAR": "from-the-stack"`) {
		t.Errorf("output %s: want the stack's environment", aws.ToString(out.Output))
	}
}
