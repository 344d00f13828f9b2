package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// sleeper starts a process that stands in for `local up` or moto: its own process
// group, reaped in the background; the test kills it if it is still there.
func sleeper(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return cmd, done
}

func writeStateFile(t *testing.T, st State) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "amifleet-local.json")
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStopFromState(t *testing.T) {
	t.Run("stops both processes and removes the file", func(t *testing.T) {
		up, upDone := sleeper(t)
		moto, motoDone := sleeper(t)
		upStart, err := procStartTime(up.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		motoStart, _ := procStartTime(moto.Process.Pid)
		path := writeStateFile(t, State{PID: up.Process.Pid, StartTime: upStart, MotoPID: moto.Process.Pid, MotoStartTime: motoStart})

		stopped, err := StopFromState(context.Background(), path)
		if err != nil || !stopped {
			t.Fatalf("StopFromState = %v, %v; want true, nil", stopped, err)
		}
		for name, done := range map[string]<-chan struct{}{"up": upDone, "moto": motoDone} {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Errorf("the %s process is still running", name)
			}
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state file still there: %v", err)
		}
	})

	t.Run("a reused PID is not signalled", func(t *testing.T) {
		other, done := sleeper(t)
		start, _ := procStartTime(other.Process.Pid)
		path := writeStateFile(t, State{PID: other.Process.Pid, StartTime: start + 1, MotoPID: other.Process.Pid, MotoStartTime: start + 1})
		stopped, err := StopFromState(context.Background(), path)
		if err != nil || stopped {
			t.Fatalf("StopFromState = %v, %v; want false, nil", stopped, err)
		}
		select {
		case <-done:
			t.Fatal("a process that is not the recorded one was stopped")
		case <-time.After(300 * time.Millisecond):
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale state file kept: %v", err)
		}
	})

	t.Run("no file", func(t *testing.T) {
		stopped, err := StopFromState(context.Background(), filepath.Join(t.TempDir(), "none.json"))
		if err != nil || stopped {
			t.Fatalf("StopFromState = %v, %v; want false, nil", stopped, err)
		}
	})
}

func TestStatFields(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	stat := []byte("1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10")
	f := statFields(stat)
	if len(f) < 20 || f[0] != "S" || f[19] != "987654" {
		t.Fatalf("statFields = %q; want state S and start time 987654 at index 19", f)
	}
	if statFields([]byte("garbage")) != nil {
		t.Error("statFields of a line without ')' should be nil")
	}
}

func TestDeployerEnv(t *testing.T) {
	t.Setenv("AWS_PROFILE", "production")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
	t.Setenv("CDK_DEFAULT_ACCOUNT", "999999999999")
	d, err := newDeployer("/repo", "http://localhost:4566", "x86_64", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	env := d.env("eu-west-1")
	for _, kv := range env {
		if strings.Contains(kv, "production") || strings.Contains(kv, "AKIAREAL") || strings.Contains(kv, "999999999999") {
			t.Errorf("the user's %s reaches the CDK CLI", kv)
		}
	}
	for _, want := range []string{
		"AWS_ENDPOINT_URL=http://localhost:4566", "AWS_REGION=eu-west-1", "AWS_ACCESS_KEY_ID=amifleet-local",
		"CDK_DEFAULT_ACCOUNT=" + Account, "CDK_DEFAULT_REGION=eu-west-1",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("env lacks %s", want)
		}
	}
}

func TestRules(t *testing.T) {
	perms := []ec2types.IpPermission{
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80),
			IpRanges:         []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}, {CidrIp: aws.String("0.0.0.0/0")}},
			UserIdGroupPairs: []ec2types.UserIdGroupPair{{GroupId: aws.String("sg-1")}}},
		{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22),
			Ipv6Ranges: []ec2types.Ipv6Range{{CidrIpv6: aws.String("::/0")}}},
	}
	var got []string
	for _, r := range rules(perms) {
		got = append(got, r.String())
	}
	want := []string{"tcp 22-22 from ::/0", "tcp 80-80 from 0.0.0.0/0", "tcp 80-80 from 10.0.0.0/8", "tcp 80-80 from sg-1"}
	if !slices.Equal(got, want) {
		t.Errorf("rules = %q, want %q", got, want)
	}
}

func TestRemaining(t *testing.T) {
	tests := []struct {
		name string
		run  RunResources
		want []string
	}{
		{"nothing", RunResources{}, nil},
		{"terminated instances and deregistered images are gone", RunResources{
			Instances: []Instance{{ID: "i-1", State: "terminated"}},
			Images:    []Image{{ID: "ami-1", State: "deregistered"}},
		}, nil},
		{"everything else remains", RunResources{
			Instances:      []Instance{{ID: "i-1", State: "shutting-down"}, {ID: "i-2", State: "terminated"}},
			Images:         []Image{{ID: "ami-1", State: "available"}},
			Snapshots:      []Snapshot{{ID: "snap-1"}},
			SecurityGroups: []SecurityGroup{{ID: "sg-1"}},
			LoadBalancers:  []LoadBalancer{{Name: "amifleet-x-alb"}},
			TargetGroups:   []TargetGroup{{Name: "amifleet-x-tg"}},
		}, []string{"instance i-1 shutting-down", "image ami-1", "snapshot snap-1", "security group sg-1",
			"load balancer amifleet-x-alb", "target group amifleet-x-tg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.run.Remaining(); !slices.Equal(got, tt.want) {
				t.Errorf("Remaining = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTargetGroupName(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/amifleet-x-tg/0123456789abcdef": "amifleet-x-tg",
		"not-an-arn": "not-an-arn",
	} {
		if got := targetGroupName(arn); got != want {
			t.Errorf("targetGroupName(%q) = %q, want %q", arn, got, want)
		}
	}
}
