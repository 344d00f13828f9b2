package pipeline_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

var runIDRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// hashMarkRE matches the end of a derived run id: -x and 8 hex digits.
var hashMarkRE = regexp.MustCompile(`[a-z0-9]-x[0-9a-f]{8}$`)

// derived is the run id of a name that is not its own: slug-x<8 hex of its SHA-256>.
func derived(slug, name string) string {
	sum := sha256.Sum256([]byte(name))
	return slug + "-x" + hex.EncodeToString(sum[:])[:8]
}

// ownRunID reports whether name is its own run id: of the form, without the mark.
func ownRunID(name string) bool { return pipeline.IsRunID(name) && !hashMarkRE.MatchString(name) }

func TestRunIDFromExecutionName(t *testing.T) {
	tests := []struct{ name, want string }{
		// A name of the run id's form is its own run id.
		{"demo", "demo"},
		{"exactly-19-chars-xx", "exactly-19-chars-xx"},
		{"261127-110304-0a0b", "261127-110304-0a0b"}, // the CLI's names
		{"a1-b2-c3", "a1-b2-c3"},
		// Any other name: a slug, "-x" and a hash of the exact name.
		{"Demo-Run", derived("demo-run", "Demo-Run")},
		{"CI_main_42", derived("ci-main-4", "CI_main_42")},
		{"__lead__and__trail__", derived("lead-and", "__lead__and__trail__")},
		{"a..b  c", derived("a-b-c", "a..b  c")},
		{"été-2026", derived("t-2026", "été-2026")},
		{"run--1", derived("run-1", "run--1")},
		{"build-20261127", "build-20261127"},                       // 8 hex digits, but no mark
		{"demo-x8a2cc067", derived("demo-x8a2", "demo-x8a2cc067")}, // the mark: never its own
		{"exactly-20-chars-xxx", derived("exactly-2", "exactly-20-chars-xxx")},
		{"4a1b2c3d-0e5f-4a6b-8c7d-9e0f1a2b3c4d", derived("4a1b2c3d", "4a1b2c3d-0e5f-4a6b-8c7d-9e0f1a2b3c4d")}, // the console's
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
			if !pipeline.IsRunID(got) {
				t.Errorf("IsRunID(%q) = false for the run id of %q", got, tc.name)
			}
		})
	}
}

// Names that differ only in case or punctuation are different executions: they
// must not share a run id, and with it resources, tags and idempotency tokens.
func TestRunIDsOfNamesThatDifferOnlyInCaseOrPunctuation(t *testing.T) {
	for _, names := range [][]string{
		{"Demo", "demo", "de_mo", "DEMO", "de-mo", "de.mo", "De-Mo"},
		{"ci-1", "CI-1", "ci_1", "ci--1", "-ci-1", "ci-1-"},
	} {
		seen := map[string]string{}
		for _, name := range names {
			id, err := pipeline.RunIDFromExecutionName(name)
			if err != nil {
				t.Fatalf("RunIDFromExecutionName(%q): %v", name, err)
			}
			if other, dup := seen[id]; dup {
				t.Errorf("%q and %q both give run id %q", other, name, id)
			}
			seen[id] = name
		}
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
		checkRunID(t, name, id)
		if other, dup := seen[id]; dup {
			t.Errorf("%q and %q both give run id %q", other, name, id)
		}
		seen[id] = name
	}
}

// checkRunID checks what every run id must be: valid in ELBv2 names (lowercase
// [a-z0-9-], no leading, trailing or double dash, at most MaxRunIDLength), accepted
// by IsRunID, the same each time for the same name, the name itself exactly when the
// name is its own run id, and otherwise marked.
func checkRunID(t *testing.T, name, id string) {
	t.Helper()
	if len(id) > pipeline.MaxRunIDLength {
		t.Errorf("run id %q of %q is %d characters, over %d", id, name, len(id), pipeline.MaxRunIDLength)
	}
	if !runIDRE.MatchString(id) {
		t.Errorf("run id %q of %q is not lowercase [a-z0-9] groups joined by single dashes", id, name)
	}
	if !pipeline.IsRunID(id) {
		t.Errorf("IsRunID(%q) = false for the run id of %q", id, name)
	}
	if again, _ := pipeline.RunIDFromExecutionName(name); again != id {
		t.Errorf("RunIDFromExecutionName(%q) is not stable: %q then %q", name, id, again)
	}
	if ownRunID(name) != (id == name) {
		t.Errorf("RunIDFromExecutionName(%q) = %q: a name of the form, unmarked, is its own run id, and only such a name", name, id)
	}
	if ownRunID(name) == hashMarkRE.MatchString(id) {
		t.Errorf("RunIDFromExecutionName(%q) = %q: a derived run id ends in -x<8 hex>, a name's own never", name, id)
	}
	for _, role := range []string{pipeline.RoleLoadBalancer, pipeline.RoleTargetGroup} {
		// ELBv2's target group names: (?!.*--)(?!^-)(?!.*-$)^[A-Za-z0-9-]+$, 32 at most.
		if rn := pipeline.ResourceName(id, role); strings.Contains(rn, "--") || len(rn) > 32 {
			t.Errorf("ResourceName(%q, %q) = %q is not a valid ELBv2 name", id, role, rn)
		}
	}
}

// TestRunIDsAreInjective derives the run ids of many random names, drawn from an
// alphabet small enough that case, separators and length make them meet under any
// mapping that folds them (canonical ones, derived ones, long ones), and finds no
// two names with one run id.
func TestRunIDsAreInjective(t *testing.T) {
	const alphabet = "aAbBx09f-_.é"
	rng := rand.New(rand.NewPCG(11, 2026))
	letters := []rune(alphabet)
	seen := map[string]string{}
	canonical, hashed := 0, 0
	for len(seen) < 20000 {
		n := 1 + rng.IntN(8)
		if rng.IntN(10) == 0 {
			n = 15 + rng.IntN(66) // past MaxRunIDLength, up to the 80 of an execution name
		}
		r := make([]rune, n)
		for i := range r {
			r[i] = letters[rng.IntN(len(letters))]
		}
		name := string(r)
		id, err := pipeline.RunIDFromExecutionName(name)
		if err != nil {
			continue
		}
		if other, dup := seen[id]; dup && other != name {
			t.Fatalf("%q and %q both give run id %q", other, name, id)
		}
		seen[id] = name
		checkRunID(t, name, id)
		if id == name {
			canonical++
		} else {
			hashed++
		}
	}
	if canonical < 1000 || hashed < 1000 {
		t.Fatalf("%d canonical and %d derived run ids: the draw does not exercise both kinds", canonical, hashed)
	}
}

// FuzzRunIDFromExecutionName checks, for any two names, the limits of each run id
// and that different names give different run ids (go test -fuzz=FuzzRunID).
func FuzzRunIDFromExecutionName(f *testing.F) {
	for _, seed := range [][2]string{
		{"Demo", "demo"}, {"de_mo", "demo"}, {"de-mo", "de_mo"}, {"run--1", "run-1"},
		{strings.Repeat("z", 200), strings.Repeat("z", 19)}, {"demo-x8a2cc067", "Demo"},
		{"4a1b2c3d-0e5f-4a6b-8c7d-9e0f1a2b3c4d", "4a1b2c3d"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ida, erra := pipeline.RunIDFromExecutionName(a)
		idb, errb := pipeline.RunIDFromExecutionName(b)
		if erra == nil {
			checkRunID(t, a, ida)
		}
		if errb == nil {
			checkRunID(t, b, idb)
		}
		if erra == nil && errb == nil && a != b && ida == idb {
			t.Errorf("%q and %q both give run id %q", a, b, ida)
		}
	})
}

func TestIsRunID(t *testing.T) {
	for id, want := range map[string]bool{
		"demo":                  true,
		"a":                     true,
		"261127-110304-0a0b":    true,
		"demo-x8a2cc067":        true,
		"ci-main-4-x0123abcd":   true,
		"exactly-19-chars-xx":   true,
		"amifleet-ci-3fa2b1":    true,  // an old-style long run id is still one
		"amifleet-ci-0-3fa2b1":  false, // 20 characters
		"":                      false,
		"Demo":                  false,
		"de_mo":                 false,
		"run--1":                false, // ELBv2 refuses "--" in a target group's name
		"demo--8a2cc067":        false,
		"-demo":                 false,
		"demo-":                 false,
		"demo-X8A2CC067":        false,
		strings.Repeat("a", 20): false,
	} {
		if got := pipeline.IsRunID(id); got != want {
			t.Errorf("IsRunID(%q) = %v, want %v", id, got, want)
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

func TestGenerationName(t *testing.T) {
	for _, tc := range []struct {
		gen  int
		want string
	}{
		// Generation 1 (and 0, a document from before generations) keeps today's names.
		{0, "amifleet-demo-replica"},
		{1, "amifleet-demo-replica"},
		{2, "amifleet-demo-replica-g2"},
		{12, "amifleet-demo-replica-g12"},
	} {
		if got := pipeline.GenerationName("demo", pipeline.RoleReplica, tc.gen); got != tc.want {
			t.Errorf("GenerationName(demo, replica, %d) = %q, want %q", tc.gen, got, tc.want)
		}
	}
	if a, b := pipeline.GenerationName("demo", pipeline.RoleImage, 2), pipeline.GenerationName("demo", pipeline.RoleImage, 3); a == b {
		t.Errorf("generations 2 and 3 share the image name %q", a)
	}
}
