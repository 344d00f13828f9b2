package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// closedEndpoint is an endpoint on loopback where nothing listens: every AWS call
// to it fails with "connection refused".
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// oneAttempt keeps the SDK from retrying a refused connection.
var oneAttempt = []string{"AWS_MAX_ATTEMPTS=1", "AWS_EC2_METADATA_DISABLED=true"}

func TestAWSCallFailedExits1(t *testing.T) {
	endpoint := closedEndpoint(t)
	const machine = "arn:aws:states:us-east-1:123456789012:stateMachine:Pipeline"
	tests := []struct {
		name string
		env  []string
		args []string
		call string // the failed call, named on stderr
	}{
		{"endpoint unreachable, reading the stack", nil, []string{"status", "X"}, "CloudFormation: DescribeStacks"},
		{"endpoint unreachable, describing the execution", nil, []string{"status", "X", "--pipeline-arn", machine}, "SFN: DescribeExecution"},
		{"endpoint unreachable, listing", nil, []string{"list", "--pipeline-arn", machine}, "SFN: ListExecutions"},
		{"endpoint unreachable, starting a run", nil, []string{"run", "--pipeline-arn", machine, "--name", "ci-1"}, "SFN: DescribeExecution"},
		{"no credentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, []string{"status", "X"}, "CloudFormation: DescribeStacks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := amifleet(t, endpoint, append(append([]string{}, oneAttempt...), tt.env...), tt.args...)
			if r.code != cli.ExitFailed {
				t.Errorf("exit %d, want 1 (an AWS call failed)", r.code)
			}
			if !strings.HasPrefix(r.stderr, "amifleet: ") || !strings.Contains(r.stderr, tt.call) {
				t.Errorf("stderr does not name the call %s", tt.call)
			}
			if strings.Contains(r.stderr, "See 'amifleet --help'") {
				t.Error("an AWS failure is told as bad usage")
			}
			if r.stdout != "" {
				t.Error("stdout is not empty")
			}
		})
	}

	t.Run("bad usage still exits 2", func(t *testing.T) {
		for _, args := range [][]string{{"status", "X", "--no-such-flag"}, {"nonsense"}, {"list", "extra"}, {"run", "--replicas", "many"}} {
			r := amifleet(t, endpoint, oneAttempt, args...)
			if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "See 'amifleet --help'") {
				t.Errorf("amifleet %v: exit %d, want 2 with the pointer to --help", args, r.code)
			}
		}
	})
}

func TestRefusesEmptyInputAndNonPositiveTimeout(t *testing.T) {
	// Any AWS call would fail here (exit 1): exit 2 shows that nothing was called.
	endpoint := closedEndpoint(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	empty, blank, defaults := write("empty.json", ""), write("blank.json", " \n\t\n"), write("defaults.json", "{}\n")

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--input", empty}, "--input " + empty + " is empty"},
		{[]string{"run", "--input", blank, "--wait"}, "--input " + blank + " is empty"},
		{[]string{"run", "--input", "-"}, "--input stdin is empty"}, // stdin is /dev/null
		{[]string{"local", "run", "--input", empty}, "--input " + empty + " is empty"},
		{[]string{"run", "--wait", "--timeout", "-5m"}, "--timeout -5m0s"},
		{[]string{"run", "--wait", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"watch", "X", "--timeout", "-1s"}, "--timeout -1s"},
		{[]string{"teardown", "--run-id", "abc", "--wait", "--timeout", "-2h"}, "--timeout -2h0m0s"},
		{[]string{"local", "run", "--timeout", "-1m"}, "--timeout -1m0s"},
	} {
		r := amifleet(t, endpoint, oneAttempt, tt.args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("amifleet %v: exit %d, want 2 with %q", tt.args, r.code, tt.want)
		}
		if strings.Contains(tt.want, "empty") && !strings.Contains(r.stderr, "{}") {
			t.Errorf("amifleet %v: the message does not say that {} asks for the defaults", tt.args)
		}
	}

	// {} is the defaults: past the checks, to the (failing) AWS call.
	r := amifleet(t, endpoint, oneAttempt, "run", "--input", defaults, "--timeout", "5m", "--pipeline-arn",
		"arn:aws:states:us-east-1:123456789012:stateMachine:Pipeline")
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "SFN: ") {
		t.Errorf("run --input {}: exit %d, want 1 from the unreachable endpoint", r.code)
	}
}

// TestHelpNamesTheDefaultExecutionName holds the help and docs/cli.md to what
// cli.NewExecutionName makes.
func TestHelpNamesTheDefaultExecutionName(t *testing.T) {
	form, _, _ := strings.Cut(cli.ExecutionNameForm, ",") // <UTC yymmdd-hhmmss>-<4 random hex digits>
	for _, args := range [][]string{{"run", "--help"}, {"local", "run", "--help"}} {
		r := amifleet(t, closedEndpoint(t), nil, args...)
		if r.code != 0 {
			t.Fatalf("amifleet %v: exit %d", args, r.code)
		}
		if !strings.Contains(r.stdout, cli.ExecutionNameForm) || strings.Contains(r.stdout, "amifleet-<") {
			t.Errorf("amifleet %v does not give the default name as %q", args, cli.ExecutionNameForm)
		}
		example := regexp.MustCompile(`\d{6}-\d{6}-[0-9a-f]{4}`).FindString(r.stdout)
		at, err := time.Parse("060102-150405", example[:min(13, len(example))])
		if err != nil {
			t.Fatalf("amifleet %v: no example name (%v)", args, err)
		}
		digits, _ := hex.DecodeString(example[14:])
		if got, err := cli.NewExecutionName(at, bytes.NewReader(digits)); err != nil || got != example {
			t.Errorf("the help's example %q, the generator makes %q (%v)", example, got, err)
		}
	}
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "`"+form+"`") || strings.Contains(string(doc), "amifleet-<UTC") {
		t.Errorf("docs/cli.md does not give the default name as `%s`", form)
	}
}

func TestVersion(t *testing.T) {
	bin := build(t)
	endpoint := closedEndpoint(t)
	flag, cmd := amifleet(t, endpoint, nil, "--version"), amifleet(t, endpoint, nil, "version")
	if flag.code != 0 || cmd.code != 0 || flag.stdout != cmd.stdout {
		t.Fatalf("--version (exit %d) and version (exit %d) differ", flag.code, cmd.code)
	}
	// What the toolchain stamped into the binary, as `go version -m` reads it.
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	wantVersion, wantCommit := "(devel)", "unknown"
	if m := regexp.MustCompile(`(?m)^\tmod\t\S+\t(\S+)`).FindSubmatch(out); m != nil {
		wantVersion = string(m[1])
	}
	if m := regexp.MustCompile(`(?m)^\tbuild\tvcs\.revision=(\S+)`).FindSubmatch(out); m != nil {
		wantCommit = string(m[1])
	}
	if !strings.HasPrefix(cmd.stdout, "amifleet "+wantVersion+"\ncommit: "+wantCommit) || !strings.Contains(cmd.stdout, "\ndate:   ") {
		t.Errorf("version %q, want version %s and commit %s", cmd.stdout, wantVersion, wantCommit)
	}

	// Stamped and unstamped builds, whatever GOFLAGS says.
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD (the tests run in a checkout): %v", err)
	}
	for _, tt := range []struct {
		buildvcs string
		want     []string
	}{
		{"false", []string{"amifleet (devel)\n", "commit: unknown\n", "date:   unknown\n"}},
		{"true", []string{"commit: " + strings.TrimSpace(string(head)), "date:   20"}},
	} {
		b := filepath.Join(t.TempDir(), "amifleet")
		if out, err := exec.Command("go", "build", "-buildvcs="+tt.buildvcs, "-o", b, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build -buildvcs=%s: %v\n%s", tt.buildvcs, err, out)
		}
		got, err := exec.Command(b, "--version").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(got), w) {
				t.Errorf("-buildvcs=%s: --version %q lacks %q", tt.buildvcs, got, w)
			}
		}
	}
}

func TestCompletion(t *testing.T) {
	endpoint := closedEndpoint(t)
	for shell, want := range map[string]string{
		"bash": "__start_amifleet",
		"zsh":  "#compdef amifleet",
		"fish": "complete -c amifleet",
	} {
		r := amifleet(t, endpoint, nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: exit %d, want a script with %q", shell, r.code, want)
		}
	}
	// The scripts call the hidden __complete command: it completes the commands and flags.
	r := amifleet(t, endpoint, nil, "__complete", "")
	for _, want := range []string{"run\t", "teardown\t", "version\t", "completion\t"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("__complete: exit %d, want %q", r.code, want)
		}
	}
	r = amifleet(t, endpoint, nil, "__complete", "run", "--ti")
	if !strings.Contains(r.stdout, "--timeout") {
		t.Error("__complete run --ti does not offer --timeout")
	}
}

// TestProfileReachesTheConfigLoader: --profile selects the shared-config profile
// of the AWS configuration that every client is made from.
func TestProfileReachesTheConfigLoader(t *testing.T) {
	var got *config.LoadOptions
	stop := errors.New("stop here")
	loadAWSConfig = func(_ context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
		got = &config.LoadOptions{}
		for _, o := range opts {
			if err := o(got); err != nil {
				return aws.Config{}, err
			}
		}
		return aws.Config{}, stop
	}
	t.Cleanup(func() { loadAWSConfig = config.LoadDefaultConfig })

	for _, tt := range []struct {
		args                []string
		profile, wantRegion string
	}{
		{[]string{"--profile", "ci-deploy", "status", "X"}, "ci-deploy", ""},
		{[]string{"list", "--profile", "other", "--region", "eu-west-3"}, "other", "eu-west-3"},
		{[]string{"teardown", "--run-id", "abc"}, "", ""},
	} {
		got = nil
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if got == nil {
			t.Fatalf("%v: the config loader was not called (exit %d: %s)", tt.args, code, stderr.String())
		}
		if got.SharedConfigProfile != tt.profile || got.Region != tt.wantRegion {
			t.Errorf("%v: profile %q region %q, want %q %q", tt.args, got.SharedConfigProfile, got.Region, tt.profile, tt.wantRegion)
		}
		if code != cli.ExitUsage || !strings.Contains(stderr.String(), "AWS configuration: stop here") {
			t.Errorf("%v: exit %d, stderr %q", tt.args, code, stderr.String())
		}
	}
}

func TestUnknownProfileNamed(t *testing.T) {
	r := amifleet(t, closedEndpoint(t), oneAttempt, "--profile", "no-such-profile", "status", "X")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "no-such-profile") {
		t.Errorf("exit %d, want 2 naming the profile", r.code)
	}
}
