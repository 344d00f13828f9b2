// Tests of the strict JSON reader, through ParseConfig: input that is not one JSON
// object, unknown fields, values of the wrong JSON type and keys given twice.

package pipeline_test

import "testing"

// strictInputs are inputs that the strict JSON reader refuses before any of
// amifleet's rules runs. (input_rules_test.go has the rule cases, badInput
// and testRefused.)
var strictInputs = []badInput{
	{"replica count as a string", `{"replicaCount": "two"}`, "replicaCount", `want a number, got "two"`},
	{"replica count fractional", `{"replicaCount": 2.5}`, "replicaCount", "want a whole number, got 2.5"},
	{"replica count huge", `{"replicaCount": 99999999999999999999}`, "replicaCount", "out of range"},
	{"unknown field", `{"replicas": 3}`, "replicas", `unknown field (did you mean "replicaCount"?)`},
	{"field in the wrong case", `{"ReplicaCount": 3}`, "ReplicaCount", `did you mean "replicaCount"?`},
	{"unknown nested field", `{"poll": {"maxPolls": {"imageAvailble": 3}}}`, "poll.maxPolls.imageAvailble", `did you mean "imageAvailable"?`},
	{"a wait's key before the one-name rename", `{"poll": {"maxPolls": {"image": 3}}}`, "poll.maxPolls.image", `did you mean "imageAvailable"?`},
	{"unknown field far from any", `{"flavour": "vanilla"}`, "flavour", "the fields here are allowSshFromAnywhere"},
	{"keep base as a string", `{"keepBaseInstance": "yes"}`, "keepBaseInstance", `want true or false, got "yes"`},
	{"cidrs as a string", `{"httpCidrs": "0.0.0.0/0"}`, "httpCidrs", `want an array, got "0.0.0.0/0"`},
	{"cidr as a number", `{"sshCidrs": [10]}`, "sshCidrs[0]", "want a string, got 10"},
	{"null inside an array", `{"httpCidrs": [null]}`, "httpCidrs[0]", "want a string, got null"},
	{"poll as an array", `{"poll": []}`, "poll", "want an object, got an array"},
	{"tags as an array", `{"tags": ["a"]}`, "tags", "want an object of strings, got an array"},
	{"tag value as a number", `{"tags": {"team": 7}}`, `tags["team"]`, "want a string, got 7"},
	{"input is an array", `[1, 2]`, "", "must be a JSON object, got an array"},
	{"input is a string", `"replicaCount=2"`, "", "must be a JSON object"},
	{"input is not JSON", `{"replicaCount": 2,}`, "", "not valid JSON"},
	{"input ends early", `{"replicaCount": 2`, "", "not valid JSON"},
	{"two JSON values", `{} {}`, "", "more than one JSON value"},
	{"field given twice", `{"replicaCount": "x", "replicaCount": 1}`, "replicaCount", "more than once"},
	{"nested field given twice", `{"poll": {"maxPolls": {"imageAvailable": 1, "imageAvailable": 2}}}`, "poll.maxPolls.imageAvailable", "more than once"},
	{"tag given twice", `{"tags": {"team": "a", "team": "b"}}`, `tags["team"]`, "more than once"},
	{"object given twice", `{"verify": {"requests": 3}, "httpCidrs": ["10.0.0.0/8"], "verify": {}}`, "verify", "more than once"},
}

func TestParseConfigRefusesMalformedInput(t *testing.T) {
	testRefused(t, strictInputs)
}
