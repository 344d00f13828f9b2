package localcloud

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// syncBuffer is a log writer the test can read while moto writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMoto starts the real moto through the launcher and checks what the rest of
// amifleet relies on: EC2 answers with the default VPC, Step Functions executes
// state machines and takes more than one execution (moto issue 10077), Reset clears,
// and Stop leaves no process behind.
func TestMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log syncBuffer
	start := time.Now()
	m, err := StartMoto(ctx, MotoOptions{LogWriter: &log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("moto ready at %s in %s", m.Endpoint(), time.Since(start).Round(time.Millisecond))
	pid := m.PID()
	defer func() {
		if t.Failed() {
			t.Logf("moto's log:\n%s", log.String())
		}
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = m.Stop()
		}
	}()

	if !strings.HasPrefix(m.Endpoint(), "http://localhost:") || m.Port() == 0 {
		t.Fatalf("endpoint %q: want http://localhost:<port>", m.Endpoint())
	}
	cfg := AWSConfig(m.Endpoint(), "us-east-1")

	t.Run("EC2 has the default VPC", func(t *testing.T) {
		out, err := ec2.NewFromConfig(cfg).DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, v := range out.Vpcs {
			if aws.ToBool(v.IsDefault) && aws.ToString(v.CidrBlock) == "172.31.0.0/16" {
				found = true
			}
		}
		if !found {
			t.Fatalf("no default VPC 172.31.0.0/16 in %d VPCs", len(out.Vpcs))
		}
	})

	t.Run("CreateImage tags the image's snapshot", func(t *testing.T) {
		// Without the launcher's workaround moto answers 500 (NotImplementedError).
		client := ec2.NewFromConfig(cfg)
		images, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
		if err != nil || len(images.Images) == 0 {
			t.Fatalf("no public image to launch: %v", err)
		}
		run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: images.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		tag := []ec2types.Tag{{Key: aws.String("amifleet:run-id"), Value: aws.String("moto-test")}}
		img, err := client.CreateImage(ctx, &ec2.CreateImageInput{
			InstanceId: run.Instances[0].InstanceId,
			Name:       aws.String("amifleet-moto-test-image"),
			TagSpecifications: []ec2types.TagSpecification{
				{ResourceType: ec2types.ResourceTypeImage, Tags: tag},
				{ResourceType: ec2types.ResourceTypeSnapshot, Tags: tag},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		filter := []ec2types.Filter{{Name: aws.String("tag:amifleet:run-id"), Values: []string{"moto-test"}}}
		tagged, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filter})
		if err != nil || len(tagged.Images) != 1 || aws.ToString(tagged.Images[0].ImageId) != aws.ToString(img.ImageId) {
			t.Fatalf("images by tag: %v %+v, want %s", err, tagged, aws.ToString(img.ImageId))
		}
		snaps, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: filter})
		if err != nil {
			t.Fatal(err)
		}
		var imageSnapshot string
		for _, bdm := range tagged.Images[0].BlockDeviceMappings {
			if bdm.Ebs != nil {
				imageSnapshot = aws.ToString(bdm.Ebs.SnapshotId)
			}
		}
		if len(snaps.Snapshots) != 1 || aws.ToString(snaps.Snapshots[0].SnapshotId) != imageSnapshot {
			t.Fatalf("snapshots by tag: %d, want the image's %s", len(snaps.Snapshots), imageSnapshot)
		}
	})

	t.Run("two executions in a row both succeed", func(t *testing.T) {
		client := sfn.NewFromConfig(cfg)
		sm, err := client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
			Name:       aws.String("amifleet-moto-test"),
			RoleArn:    aws.String("arn:aws:iam::123456789012:role/amifleet-moto-test"),
			Definition: aws.String(`{"StartAt":"Echo","States":{"Echo":{"Type":"Pass","Result":{"ok":true},"ResultPath":"$.echo","End":true}}}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"first", "second"} {
			// Without the launcher's 10077 workaround the second call answers 500.
			ex, err := client.StartExecution(ctx, &sfn.StartExecutionInput{
				StateMachineArn: sm.StateMachineArn,
				Name:            aws.String(name),
				Input:           aws.String(`{"n":"` + name + `"}`),
			})
			if err != nil {
				t.Fatalf("StartExecution %s: %v", name, err)
			}
			out := waitExecution(ctx, t, client, aws.ToString(ex.ExecutionArn))
			if out.Status != sfntypes.ExecutionStatusSucceeded {
				t.Fatalf("execution %s: %s %s %s", name, out.Status, aws.ToString(out.Error), aws.ToString(out.Cause))
			}
			// The interpreter really ran the Pass state (moto's non-executing mode
			// would echo the input unchanged).
			if want := `"echo"`; !strings.Contains(aws.ToString(out.Output), want) {
				t.Fatalf("execution %s output %s: want %s in it", name, aws.ToString(out.Output), want)
			}
		}
	})

	t.Run("CloudFormation's state machines are visible to the API", func(t *testing.T) {
		// Without the launcher's backends workaround, the stack's state machine
		// lands in a backend that Step Functions' API does not read.
		const template = `{"Resources":{"Machine":{"Type":"AWS::StepFunctions::StateMachine","Properties":{
			"StateMachineName":"amifleet-moto-cfn",
			"RoleArn":"arn:aws:iam::123456789012:role/amifleet-moto-test",
			"DefinitionString":"{\"StartAt\":\"Done\",\"States\":{\"Done\":{\"Type\":\"Succeed\"}}}"}}}}`
		_, err := cloudformation.NewFromConfig(cfg).CreateStack(ctx, &cloudformation.CreateStackInput{
			StackName:    aws.String("amifleet-moto-test"),
			TemplateBody: aws.String(template),
		})
		if err != nil {
			t.Fatal(err)
		}
		client := sfn.NewFromConfig(cfg)
		arn := "arn:aws:states:us-east-1:123456789012:stateMachine:amifleet-moto-cfn"
		if _, err := client.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)}); err != nil {
			t.Fatalf("DescribeStateMachine of the stack's state machine: %v", err)
		}
		ex, err := client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("cfn")})
		if err != nil {
			t.Fatal(err)
		}
		if out := waitExecution(ctx, t, client, aws.ToString(ex.ExecutionArn)); out.Status != sfntypes.ExecutionStatusSucceeded {
			t.Fatalf("execution of the stack's state machine: %s", out.Status)
		}
	})

	t.Run("an execution starts another (states:startExecution)", func(t *testing.T) {
		// Without the launcher's 10076 workaround the Task fails with States.Runtime:
		// the Pipeline's ScheduleTeardown state relies on this integration.
		client := sfn.NewFromConfig(cfg)
		child, err := client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
			Name:       aws.String("amifleet-moto-child"),
			RoleArn:    aws.String("arn:aws:iam::123456789012:role/amifleet-moto-test"),
			Definition: aws.String(`{"StartAt":"Done","States":{"Done":{"Type":"Succeed"}}}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		parent, err := client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
			Name:    aws.String("amifleet-moto-parent"),
			RoleArn: aws.String("arn:aws:iam::123456789012:role/amifleet-moto-test"),
			Definition: aws.String(`{"StartAt":"Start","States":{"Start":{"Type":"Task",
				"Resource":"arn:aws:states:::states:startExecution",
				"Parameters":{"StateMachineArn":"` + aws.ToString(child.StateMachineArn) + `","Name":"from-parent","Input":{"runId":"r1"}},
				"ResultPath":null,"End":true}}}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: parent.StateMachineArn, Name: aws.String("parent")})
		if err != nil {
			t.Fatal(err)
		}
		if out := waitExecution(ctx, t, client, aws.ToString(ex.ExecutionArn)); out.Status != sfntypes.ExecutionStatusSucceeded {
			t.Fatalf("parent execution: %s %s %s", out.Status, aws.ToString(out.Error), aws.ToString(out.Cause))
		}
		started, err := client.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: child.StateMachineArn})
		if err != nil {
			t.Fatal(err)
		}
		if len(started.Executions) != 1 || aws.ToString(started.Executions[0].Name) != "from-parent" {
			t.Fatalf("child executions: %+v, want one named from-parent", started.Executions)
		}
	})

	t.Run("Reset clears the state machines", func(t *testing.T) {
		if err := m.Reset(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := sfn.NewFromConfig(cfg).ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.StateMachines) != 0 {
			t.Fatalf("%d state machines after Reset", len(out.StateMachines))
		}
	})

	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("moto's process %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("moto's process group %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if err := m.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func waitExecution(ctx context.Context, t *testing.T, client *sfn.Client, arn string) *sfn.DescribeExecutionOutput {
	t.Helper()
	for i := 0; ; i++ {
		out, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != sfntypes.ExecutionStatusRunning || i == 100 {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCheckMoto runs CheckMoto against stand-in interpreters that answer as a
// machine without moto, with another version, or without the server extras would.
func TestCheckMoto(t *testing.T) {
	tests := []struct {
		name   string
		answer string // what the stand-in python prints
		want   string // in the error; "" means no error
	}{
		{"supported", "5.2.1", ""},
		{"another version", "5.1.4", `moto 5.1.4 is installed`},
		{"not installed", "none", `cannot import`},
		{"no server extras", "5.2.1\nno-server", `without its server extras`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			python := filepath.Join(t.TempDir(), "python3")
			script := "#!/bin/sh\nprintf '%s\\n' '" + strings.ReplaceAll(tt.answer, "\n", "' '") + "'\n"
			if err := os.WriteFile(python, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			err := CheckMoto(context.Background(), python)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckMoto: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `pip install "moto[server]==5.2.1"`) {
				t.Fatalf("CheckMoto error %v: want %q and the pip command in it", err, tt.want)
			}
		})
	}

	t.Run("no python", func(t *testing.T) {
		err := CheckMoto(context.Background(), filepath.Join(t.TempDir(), "no-such-python"))
		if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "pip install") {
			t.Fatalf("CheckMoto error %v: want not found and the pip command", err)
		}
	})
}

func TestMotoEnv(t *testing.T) {
	env := []string{"PATH=/bin", "MOTO_PORT=4566", "HOME=/root"}
	tests := []struct {
		lambdaPort int
		want       string
	}{
		{0, "PATH=/bin HOME=/root"},
		{4567, "PATH=/bin HOME=/root MOTO_PORT=4567"},
	}
	for _, tt := range tests {
		if got := strings.Join(motoEnv(env, tt.lambdaPort), " "); got != tt.want {
			t.Errorf("motoEnv(%d) = %q, want %q", tt.lambdaPort, got, tt.want)
		}
	}
}

func TestParseListening(t *testing.T) {
	tests := []struct {
		line string
		port int
		ok   bool
	}{
		{"amifleet-moto listening on 127.0.0.1:40123", 40123, true},
		{"amifleet-moto listening on 127.0.0.1:0", 0, false},
		{"127.0.0.1 - - GET /moto-api/data.json 200", 0, false},
	}
	for _, tt := range tests {
		p, ok := parseListening(tt.line)
		if p != tt.port || ok != tt.ok {
			t.Errorf("parseListening(%q) = %d, %v; want %d, %v", tt.line, p, ok, tt.port, tt.ok)
		}
	}
}

// TestMotoWaitScale runs an execution whose Wait (40 s, from the input) and Retry
// interval (20 s) are AWS seconds on a clock 20 times faster: it ends in about 3 s,
// having waited both, where moto's own interpreter would take a minute.
func TestMotoWaitScale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log syncBuffer
	m, err := StartMoto(ctx, MotoOptions{LogWriter: &log, WaitScale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("moto's log:\n%s", log.String())
		}
	}()
	client := sfn.NewFromConfig(AWSConfig(m.Endpoint(), "us-east-1"))
	const def = `{"StartAt":"Wait","States":{
		"Wait":{"Type":"Wait","SecondsPath":"$.seconds","Next":"Try"},
		"Try":{"Type":"Parallel","Branches":[{"StartAt":"Fail","States":{"Fail":{"Type":"Fail","Error":"Again"}}}],
			"Retry":[{"ErrorEquals":["Again"],"IntervalSeconds":20,"MaxAttempts":1}],"End":true}}}`
	sm, err := client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name:       aws.String("amifleet-wait-scale"),
		RoleArn:    aws.String("arn:aws:iam::123456789012:role/amifleet-moto-test"),
		Definition: aws.String(def),
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ex, err := client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: sm.StateMachineArn, Input: aws.String(`{"seconds":40}`)})
	if err != nil {
		t.Fatal(err)
	}
	var out *sfn.DescribeExecutionOutput
	for i := 0; i < 400; i++ { // 20 s at most, a third of the unscaled minute
		if out, err = client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: ex.ExecutionArn}); err != nil {
			t.Fatal(err)
		}
		if out.Status != sfntypes.ExecutionStatusRunning {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	if out.Status != sfntypes.ExecutionStatusFailed || aws.ToString(out.Error) != "Again" {
		t.Fatalf("execution %s %s after %s; want FAILED with Again (retried once) within 20 s", out.Status, aws.ToString(out.Error), took)
	}
	// 40 s × 0.05 + 20 s × 0.05 = 3 s: both waits were kept, shortened.
	if took < 2500*time.Millisecond {
		t.Errorf("ended after %s: the Wait and the Retry (3 s scaled) were not waited", took)
	}
	t.Logf("40 s Wait + 20 s Retry at scale 0.05: %s", took.Round(time.Millisecond))
}
