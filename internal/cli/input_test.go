package cli

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPrepareRun(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 3, 4, 0, time.FixedZone("CET", 3600))
	three := 3
	tests := []struct {
		name string
		opts RunOptions
		// wantInput is the execution's input as a JSON value; "" skips the check.
		wantInput    string
		wantName     string
		wantRunID    string
		wantReplicas int
		wantErr      string // the message must hold this (exit 2)
	}{
		{name: "no input, default name", opts: RunOptions{},
			wantInput: `{}`, wantName: "261127-110304-0a0b", wantRunID: "261127-110304-0a0b", wantReplicas: 2},
		{name: "flags over the file", opts: RunOptions{Input: []byte(`{"replicaCount": 5, "tags": {"team": "web"}}`), Replicas: &three, InstanceType: "t3.small", Name: "ci-1"},
			wantInput: `{"replicaCount":3,"instanceType":"t3.small","tags":{"team":"web"}}`, wantName: "ci-1", wantRunID: "ci-1", wantReplicas: 3},
		{name: "the file kept as it is without flags", opts: RunOptions{Input: []byte(`{"replicaCount": 4}`), Name: "x"},
			wantInput: `{"replicaCount": 4}`, wantReplicas: 4},
		{name: "a CI name is sanitised", opts: RunOptions{Name: "octo/web-app-0123abcd-2"},
			wantName: "octo-web-app-0123abcd-2", wantRunID: "octo-web-x9d8eb638"}, // too long to be its own run id
		{name: "unknown field named", opts: RunOptions{Input: []byte(`{"replicaCont": 3}`), InputName: "in.json"},
			wantErr: `in.json: bad input: replicaCont: unknown field`},
		{name: "bad flag value named", opts: RunOptions{Replicas: new(int)},
			wantErr: "replicaCount"},
		{name: "wrong type named", opts: RunOptions{Input: []byte(`{"poll": {"intervalSeconds": "1"}}`)},
			wantErr: "poll.intervalSeconds"},
		{name: "not an object, with a flag", opts: RunOptions{Input: []byte(`[1]`), Replicas: &three},
			wantErr: "JSON object"},
		{name: "not JSON", opts: RunOptions{Input: []byte(`{"replicaCount": 3`)},
			wantErr: "bad input"},
		{name: "a name with no letters", opts: RunOptions{Name: "///"},
			wantErr: `--name "///"`},
		{name: "an empty file is refused, named", opts: RunOptions{Input: []byte{}, InputName: "ci-input.json"},
			wantErr: `--input ci-input.json is empty`},
		{name: "a file of white space is refused", opts: RunOptions{Input: []byte(" \n\t\n"), InputName: "in.json"},
			wantErr: `--input in.json is empty`},
		{name: "empty stdin is refused", opts: RunOptions{Input: nil, InputName: "-"},
			wantErr: `--input stdin is empty`},
		{name: "{} is the defaults", opts: RunOptions{Input: []byte(" {}\n"), InputName: "in.json"},
			wantInput: `{}`, wantReplicas: 2},
		{name: "a negative timeout is refused", opts: RunOptions{Timeout: -5 * time.Minute},
			wantErr: `--timeout -5m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := PrepareRun(tt.opts, now, bytes.NewReader([]byte{10, 11}))
			if tt.wantErr != "" {
				if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v (exit %d), want exit 2 with %q", err, ExitCode(err), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantInput != "" && !sameJSON(plan.Input, tt.wantInput) {
				t.Errorf("input %s, want %s", plan.Input, tt.wantInput)
			}
			if tt.wantInput != "" && !json.Valid([]byte(plan.Input)) {
				t.Errorf("input is not JSON: %s", plan.Input)
			}
			if tt.wantName != "" && plan.Name != tt.wantName {
				t.Errorf("name %q, want %q", plan.Name, tt.wantName)
			}
			if tt.wantRunID != "" && !strings.HasPrefix(plan.RunID, tt.wantRunID) {
				t.Errorf("run id %q, want it to start with %q", plan.RunID, tt.wantRunID)
			}
			if tt.wantReplicas != 0 && plan.Config.ReplicaCount != tt.wantReplicas {
				t.Errorf("replicaCount %d, want %d", plan.Config.ReplicaCount, tt.wantReplicas)
			}
			if plan.Renamed != (tt.opts.Name != "" && tt.opts.Name != plan.Name) {
				t.Errorf("renamed %v", plan.Renamed)
			}
			if plan.Timeout != DefaultTimeout {
				t.Errorf("timeout %s, want the default", plan.Timeout)
			}
		})
	}
}

func TestSanitizeExecutionName(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct{ in, want string }{
		{"ci-1_A", "ci-1_A"},
		{"owner/repo-abc-1", "owner-repo-abc-1"},
		{"a b:c", "a-b-c"},
	}
	for _, tt := range tests {
		got := SanitizeExecutionName(tt.in)
		if got != tt.want {
			t.Errorf("SanitizeExecutionName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := SanitizeExecutionName(long); len(got) != MaxExecutionNameLength || !strings.HasPrefix(got, strings.Repeat("a", 71)+"-") {
		t.Errorf("long name: %q", got)
	}
	// Two long names that differ only past the cut stay apart; the same name is the same.
	a, b := SanitizeExecutionName(long+"x"), SanitizeExecutionName(long+"y")
	if a == b || a != SanitizeExecutionName(long+"x") {
		t.Errorf("long names: %q %q", a, b)
	}
}

// TestExecutionNameForm holds the form the help and the docs give to what
// NewExecutionName makes: its example is what the generator makes of the same time
// and random digits.
func TestExecutionNameForm(t *testing.T) {
	example := regexp.MustCompile(`\d{6}-\d{6}-[0-9a-f]{4}`).FindString(ExecutionNameForm)
	if example == "" || !strings.HasPrefix(ExecutionNameForm, "<UTC yymmdd-hhmmss>-<4 random hex digits>") {
		t.Fatalf("ExecutionNameForm %q: want the form and an example", ExecutionNameForm)
	}
	at, err := time.Parse("060102-150405", example[:13])
	if err != nil {
		t.Fatal(err)
	}
	digits, err := hex.DecodeString(example[14:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewExecutionName(at.In(time.FixedZone("CET", 3600)), bytes.NewReader(digits))
	if err != nil {
		t.Fatal(err)
	}
	if got != example {
		t.Errorf("NewExecutionName(%s) = %q, the form's example is %q", at, got, example)
	}
	if len(got) != len("yymmdd-hhmmss-xxxx") {
		t.Errorf("%q is not yymmdd-hhmmss-xxxx long", got)
	}
}
