package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// RunOptions is what `amifleet run` was asked to do.
type RunOptions struct {
	// Input is the input file's content (a pipeline.Config as JSON). Without an
	// InputName, empty means the defaults; a named input that is empty (or only
	// white space) is refused: a broken redirect would start a default fleet, and
	// {} is how to ask for the defaults. InputName names it in messages.
	Input     []byte
	InputName string
	// Replicas and InstanceType, when set, replace the input's replicaCount and
	// instanceType.
	Replicas     *int
	InstanceType string
	// Name is the execution name; empty means a new one (NewExecutionName).
	Name string
	// Wait follows the execution to its end, or Timeout.
	Wait    bool
	Timeout time.Duration
}

// RunPlan is a checked `run`: what will be started. Nothing is started while
// making it, so bad input costs nothing.
type RunPlan struct {
	// Name is the execution name, RunID the run id the pipeline derives from it.
	Name  string
	RunID string
	// Input is the execution's input: the user's input with the flags applied,
	// left for Validate to fill the defaults in (so the console shows what the
	// user asked for).
	Input string
	// Config is Input as Validate will see it, defaults filled in.
	Config pipeline.Config
	// Renamed is set when --name (Requested) had to be changed to be a valid
	// execution name.
	Renamed   bool
	Requested string
	Wait      bool
	Timeout   time.Duration
}

// ExecutionNameForm says what NewExecutionName makes, for the help and the docs,
// with an example (a test holds the example to the generator).
const ExecutionNameForm = "<UTC yymmdd-hhmmss>-<4 random hex digits>, as 261127-120001-0a0b"

// MaxExecutionNameLength is Step Functions' limit.
const MaxExecutionNameLength = 80

// PrepareRun builds the input from the file and flags, validates it as the
// pipeline's Validate stage will, and settles the execution name. Every error is
// an ExitError with ExitUsage that names the field or flag.
func PrepareRun(opts RunOptions, now time.Time, random io.Reader) (RunPlan, error) {
	source := opts.InputName
	if source == "" {
		source = "input"
	}
	if opts.InputName != "" && len(bytes.TrimSpace(opts.Input)) == 0 {
		what := opts.InputName
		if what == "-" {
			what = "stdin"
		}
		return RunPlan{}, exitf(ExitUsage, "--input %s is empty: refused, as a broken redirect would start a default fleet; "+
			"to ask for the defaults, pass {} (or no --input)", what)
	}
	if opts.Timeout < 0 {
		return RunPlan{}, exitf(ExitUsage, "--timeout %s: want a positive duration, such as 30m or 2h", opts.Timeout)
	}
	input, err := applyFlags(opts)
	if err != nil {
		return RunPlan{}, &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: %w", source, err)}
	}
	cfg, err := pipeline.ParseConfig(input)
	if err != nil {
		return RunPlan{}, &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: %w", source, err)}
	}

	plan := RunPlan{Input: string(input), Config: cfg, Wait: opts.Wait, Timeout: opts.Timeout}
	if opts.Name == "" {
		plan.Name, err = NewExecutionName(now, random)
		if err != nil {
			return RunPlan{}, err
		}
	} else {
		plan.Name = SanitizeExecutionName(opts.Name)
		plan.Renamed, plan.Requested = plan.Name != opts.Name, opts.Name
	}
	if plan.RunID, err = pipeline.RunIDFromExecutionName(plan.Name); err != nil {
		return RunPlan{}, exitf(ExitUsage, "--name %q: %v", opts.Name, err)
	}
	if plan.Timeout <= 0 {
		plan.Timeout = DefaultTimeout
	}
	return plan, nil
}

// applyFlags returns the input with the flags written over it. Without flags the
// input is passed on byte for byte; with flags it must be a JSON object, and
// fields the flags do not touch are kept as they are (unknown ones included, so
// that validation reports them by name).
func applyFlags(opts RunOptions) (json.RawMessage, error) {
	raw := bytes.TrimSpace(opts.Input)
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if opts.Replicas == nil && opts.InstanceType == "" {
		return raw, nil
	}
	fields := map[string]json.RawMessage{}
	if !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &fields); err != nil {
			// Let validation say what is wrong with it, as it would without flags.
			if _, perr := pipeline.ParseConfig(raw); perr != nil {
				return nil, perr
			}
			return nil, &pipeline.BadInputError{Message: "input must be a JSON object"}
		}
	}
	set := func(key string, v any) {
		b, _ := json.Marshal(v) // an int or a string: cannot fail
		fields[key] = b
	}
	if opts.Replicas != nil {
		set("replicaCount", *opts.Replicas)
	}
	if opts.InstanceType != "" {
		set("instanceType", opts.InstanceType)
	}
	return json.Marshal(fields)
}

// NewExecutionName is a fresh execution name: <UTC yymmdd-hhmmss>-<4 hex digits>,
// 18 characters, so that it is the run id unchanged (at most pipeline.MaxRunIDLength)
// and resources read amifleet-261127-110304-0a0b-alb, not a cut, hashed name.
// The random part keeps two runs started in the same second apart.
func NewExecutionName(now time.Time, random io.Reader) (string, error) {
	if random == nil {
		random = rand.Reader
	}
	var b [2]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("execution name: %w", err)
	}
	return now.UTC().Format("060102-150405") + "-" + hex.EncodeToString(b[:]), nil
}

// SanitizeExecutionName makes name a valid execution name that is the same every
// time for the same name (so a CI retry finds its first attempt): every
// character outside [A-Za-z0-9_-] becomes '-' ("owner/repo" → "owner-repo"), and
// a name longer than 80 characters is cut and ended with a short hash of the
// whole, so two long names that differ at the end stay apart.
func SanitizeExecutionName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > MaxExecutionNameLength {
		sum := sha256.Sum256([]byte(name))
		suffix := hex.EncodeToString(sum[:])[:8]
		s = s[:MaxExecutionNameLength-len(suffix)-1] + "-" + suffix
	}
	return s
}

// CheckRunID refuses a run id that the pipeline could not have made (teardown
// --run-id): lowercase letters and digits in groups joined by single dashes, at most
// 19 characters, as both kinds are (spring-demo, demo-x8a2cc067).
func CheckRunID(id string) error {
	if id == "" {
		return exitf(ExitUsage, "--run-id is required (the run id is in `amifleet run` and `amifleet outputs`)")
	}
	if !pipeline.IsRunID(id) {
		hint := ""
		if derived, err := pipeline.RunIDFromExecutionName(id); err == nil && derived != id {
			hint = fmt.Sprintf(" (if %q is the execution's name, its run id is %s)", id, derived)
		}
		return exitf(ExitUsage, "--run-id %q is not a run id: %s%s", id, pipeline.RunIDForm, hint)
	}
	return nil
}
