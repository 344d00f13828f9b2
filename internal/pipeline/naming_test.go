package pipeline_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

var runIDRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func TestRunIDFromExecutionName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"demo", "demo"},
		{"Demo-Run", "demo-run"},
		{"CI_main_42", "ci-main-42"},
		{"__lead__and__trail__", "lead-and-trail"},
		{"a..b  c", "a-b-c"},
		{"été-2026", "t-2026"},
		{"exactly-19-chars-xx", "exactly-19-chars-xx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pipeline.RunIDFromExecutionName(tc.name)
			if err != nil {
				t.Fatalf("RunIDFromExecutionName(%q): %v", tc.name, err)
			}
			if got != tc.want {
				t.Errorf("RunIDFromExecutionName(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

// Long names (CI: repository, commit, attempt) are cut and end with a hash of the
// whole name, so two long names that share their start still differ.
func TestRunIDFromLongExecutionNames(t *testing.T) {
	names := []string{
		"amifleet-ci-0123456789abcdef0123456789abcdef01234567-attempt-1",
		"amifleet-ci-0123456789abcdef0123456789abcdef01234567-attempt-2",
		"AMIFLEET_CI_0123456789ABCDEF0123456789ABCDEF01234567_ATTEMPT_1",
		strings.Repeat("x", 80),
		"exactly-20-chars-xxx",
		"a-very-long-name-with-a-dash-at-the-cut",
	}
	seen := map[string]string{}
	for _, name := range names {
		id, err := pipeline.RunIDFromExecutionName(name)
		if err != nil {
			t.Fatalf("RunIDFromExecutionName(%q): %v", name, err)
		}
		if len(id) > pipeline.MaxRunIDLength {
			t.Errorf("run id %q of %q is %d characters, over %d", id, name, len(id), pipeline.MaxRunIDLength)
		}
		if !runIDRE.MatchString(id) {
			t.Errorf("run id %q of %q is not lowercase [a-z0-9-] without stray dashes", id, name)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%q and %q both give run id %q", other, name, id)
		}
		seen[id] = name
		again, _ := pipeline.RunIDFromExecutionName(name)
		if again != id {
			t.Errorf("RunIDFromExecutionName(%q) is not stable: %q then %q", name, id, again)
		}
	}
}

func TestRunIDFromExecutionNameRefusesNamesWithoutLettersOrDigits(t *testing.T) {
	for _, name := range []string{"", "___", "---", "  ", "é"} {
		id, err := pipeline.RunIDFromExecutionName(name)
		var bad *pipeline.BadInputError
		if !errors.As(err, &bad) || bad.Field != "executionName" {
			t.Errorf("RunIDFromExecutionName(%q) = %q, %v; want a BadInputError on executionName", name, id, err)
		}
	}
}

// Load balancer and target group names are the resource names; ELBv2 allows 32
// characters, letters, digits and dashes, not starting or ending with a dash.
func TestResourceNameFitsELBLimits(t *testing.T) {
	longest, err := pipeline.RunIDFromExecutionName(strings.Repeat("z", 200))
	if err != nil {
		t.Fatal(err)
	}
	if len(longest) != pipeline.MaxRunIDLength {
		t.Fatalf("longest run id %q is %d characters, want %d", longest, len(longest), pipeline.MaxRunIDLength)
	}
	elbName := regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	for _, role := range []string{pipeline.RoleLoadBalancer, pipeline.RoleTargetGroup} {
		name := pipeline.ResourceName(longest, role)
		if len(name) > 32 {
			t.Errorf("ResourceName(%q, %q) = %q is %d characters, over 32", longest, role, name, len(name))
		}
		if !elbName.MatchString(name) {
			t.Errorf("ResourceName(%q, %q) = %q is not a valid ELBv2 name", longest, role, name)
		}
	}
	if got := pipeline.ResourceName("demo", pipeline.RoleLoadBalancer); got != "amifleet-demo-alb" {
		t.Errorf("ResourceName(demo, alb) = %q, want amifleet-demo-alb", got)
	}
}
