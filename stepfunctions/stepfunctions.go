// Package stepfunctions holds amifleet's three state machines, Pipeline, Teardown and
// Refresh, as Amazon States Language files (pipeline.asl.json, teardown.asl.json,
// refresh.asl.json: the one source of truth, loadable in Workflow Studio), embeds
// them, and checks them.
//
// The files name each Lambda by a ${<Name>FunctionArn} placeholder (one per entry of
// pipeline.Functions), the Teardown state machine by ${TeardownStateMachineArn}, and
// the partition of every service integration's ARN by ${Partition}
// (arn:${Partition}:states:::lambda:invoke: aws, aws-cn or aws-us-gov); Render
// substitutes them (the CDK stack does, with the deployed ARNs and AWS::Partition).
// Lint holds the rules every definition must keep: reachable states, an end from
// every state, the retries and catches of each Task, bounded wait loops, known
// placeholders, no hard-coded partition.
// docs/state-machines.md explains the states.
package stepfunctions

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
)

//go:embed pipeline.asl.json
var pipelineASL []byte

//go:embed teardown.asl.json
var teardownASL []byte

//go:embed refresh.asl.json
var refreshASL []byte

// TeardownPlaceholder is the placeholder for the Teardown state machine's ARN, which
// the Pipeline starts when a run has a time to live (config.teardownAfterMinutes).
const TeardownPlaceholder = "TeardownStateMachineArn"

// PartitionPlaceholder is the placeholder for the partition (aws, aws-cn,
// aws-us-gov) in the ARNs the definitions name themselves: a hard-coded arn:aws:
// would not deploy in China or GovCloud.
const PartitionPlaceholder = "Partition"

// Pipeline is the Pipeline state machine's definition, with its placeholders.
func Pipeline() []byte { return bytes.Clone(pipelineASL) }

// Teardown is the Teardown state machine's definition, with its placeholders.
func Teardown() []byte { return bytes.Clone(teardownASL) }

// Refresh is the Refresh state machine's definition, with its placeholders.
func Refresh() []byte { return bytes.Clone(refreshASL) }

// KnownPlaceholders are the placeholders a definition may use: one per function in
// pipeline.Functions, TeardownPlaceholder and PartitionPlaceholder.
func KnownPlaceholders() []string {
	names := make([]string, 0, len(pipeline.Functions)+2)
	for _, f := range pipeline.Functions {
		names = append(names, f.Placeholder())
	}
	return append(names, TeardownPlaceholder, PartitionPlaceholder)
}

// placeholderRE matches ${Name}. Names are identifiers, so that CDK tokens such as
// ${Token[TOKEN.12]} in a rendered definition are not taken for placeholders.
var placeholderRE = regexp.MustCompile(`\$\{([A-Za-z][A-Za-z0-9_]*)\}`)

// Placeholders lists the names of the ${Name} placeholders in def, sorted, each once.
func Placeholders(def []byte) []string {
	var names []string
	for _, m := range placeholderRE.FindAllSubmatch(def, -1) {
		names = append(names, string(m[1]))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Render replaces every ${Name} in def with values[Name], escaped for a JSON string
// (the placeholders sit inside strings). It fails, naming them all, when def uses a
// placeholder that is not one of KnownPlaceholders or that values has no value for.
// Values for placeholders def does not use are ignored, so that one map serves both
// definitions.
func Render(def []byte, values map[string]string) ([]byte, error) {
	known := KnownPlaceholders()
	var unknown, missing []string
	for _, name := range Placeholders(def) {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		} else if _, ok := values[name]; !ok {
			missing = append(missing, name)
		}
	}
	var errs []error
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("unknown placeholders %s (known: %s)", list(unknown), list(known)))
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("no value for placeholders %s", list(missing)))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("render state machine: %w", errors.Join(errs...))
	}
	out := placeholderRE.ReplaceAllFunc(def, func(m []byte) []byte {
		return jsonStringContent(values[string(m[2:len(m)-1])])
	})
	return out, nil
}

// jsonStringContent is s as it appears between the quotes of a JSON string.
func jsonStringContent(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b := bytes.TrimSpace(buf.Bytes())
	return b[1 : len(b)-1]
}

func list(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "${" + n + "}"
	}
	return strings.Join(q, ", ")
}
