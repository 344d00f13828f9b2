// Tests of amifleet's input rules: the inputs ParseConfig accepts, the ones its
// rules refuse, and the defaults.

package pipeline_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// A badInput is an input that ParseConfig must refuse: the field its error names,
// and a piece of the message that tells the user what is wrong.
type badInput struct {
	name, input, field, message string
}

// ruleInputs are well-formed inputs that break one of amifleet's rules.
// (strictjson_test.go has the inputs that the strict JSON reader refuses.)
var ruleInputs = []badInput{
	{"replica count negative", `{"replicaCount": -1}`, "replicaCount", "at least 1, got -1"},
	{"replica count zero", `{"replicaCount": 0}`, "replicaCount", "at least 1, got 0"},
	{"replica count over the default cap", `{"replicaCount": 21}`, "replicaCount", "over maxReplicas (20)"},
	{"replica count over a raised cap", `{"replicaCount": 31, "maxReplicas": 30}`, "replicaCount", "over maxReplicas (30)"},
	{"max replicas zero", `{"maxReplicas": 0}`, "maxReplicas", "at least 1"},
	{"max replicas over the ceiling", `{"maxReplicas": 501}`, "maxReplicas", "ceiling of 500"},
	{"instance type without a size", `{"instanceType": "t2"}`, "instanceType", "family.size"},
	{"instance type without a family", `{"instanceType": "micro"}`, "instanceType", "family.size"},
	{"instance type in capitals", `{"instanceType": "T2.MICRO"}`, "instanceType", "in lowercase"},
	{"instance type with a space", `{"instanceType": "t2 .micro"}`, "instanceType", "not an instance type"},
	{"instance type without a digit", `{"instanceType": "large.micro"}`, "instanceType", "not an instance type"},
	{"instance type empty", `{"instanceType": ""}`, "instanceType", "must not be empty"},
	{"http cidrs empty", `{"httpCidrs": []}`, "httpCidrs", "at least one CIDR"},
	{"http cidr malformed", `{"httpCidrs": ["0.0.0.0/0", "10.0.0/8"]}`, "httpCidrs[1]", "not a CIDR"},
	{"http cidr without a length", `{"httpCidrs": ["10.1.2.3"]}`, "httpCidrs[0]", "not a CIDR"},
	{"http cidr with host bits", `{"httpCidrs": ["10.0.0.1/8"]}`, "httpCidrs[0]", "did you mean 10.0.0.0/8?"},
	{"http cidr duplicated", `{"httpCidrs": ["10.0.0.0/8", "10.0.0.0/8"]}`, "httpCidrs[1]", "repeats httpCidrs[0]"},
	{"ssh from anywhere", `{"sshCidrs": ["0.0.0.0/0"]}`, "sshCidrs[0]", "whole internet"},
	{"ssh from anywhere on IPv6", `{"sshCidrs": ["203.0.113.0/24", "::/0"]}`, "sshCidrs[1]", "allowSshFromAnywhere"},
	{"ssh from half the internet", `{"sshCidrs": ["0.0.0.0/1", "128.0.0.0/1"]}`, "sshCidrs[0]", "/8 or narrower"},
	{"ssh IPv6 too broad", `{"sshCidrs": ["2000::/3"]}`, "sshCidrs[0]", "/32 or narrower"},
	{"ssh IPv4 written as IPv6", `{"sshCidrs": ["::ffff:10.0.0.0/104"]}`, "sshCidrs[0]", "write it as IPv4"},
	{"ssh from anywhere, allowed, host bits", `{"allowSshFromAnywhere": true, "sshCidrs": ["0.0.0.1/0"]}`, "sshCidrs[0]", "did you mean 0.0.0.0/0?"},
	{"image id malformed", `{"imageId": "ami-XYZ"}`, "imageId", "not an AMI id"},
	{"image id too short", `{"imageId": "ami-1234"}`, "imageId", "not an AMI id"},
	{"image parameter relative", `{"imageParameter": "aws/service/x"}`, "imageParameter", `must start with "/"`},
	{"image parameter with spaces", `{"imageParameter": "/aws/service/my ami"}`, "imageParameter", "characters"},
	{"one subnet", `{"subnetIds": ["subnet-0123456789abcdef0"]}`, "subnetIds", "two availability zones"},
	{"subnet id malformed", `{"subnetIds": ["subnet-12345678", "sub-12345678"]}`, "subnetIds[1]", "not a subnet id"},
	{"subnet id duplicated", `{"subnetIds": ["subnet-12345678", "subnet-12345678"]}`, "subnetIds[1]", "repeats subnetIds[0]"},
	{"key name too long", fmt.Sprintf(`{"keyName": %q}`, strings.Repeat("k", 256)), "keyName", "at most 255"},
	{"key name not ASCII", `{"keyName": "clé"}`, "keyName", "printable ASCII"},
	{"too many tags", `{"tags": {` + manyTags(41) + `}}`, "tags", "at most 40"},
	{"tag with an aws: key", `{"tags": {"aws:x": "1"}}`, `tags["aws:x"]`, "reserved by AWS"},
	{"tag with an AWS: key", `{"tags": {"AWS:cost": "1"}}`, `tags["AWS:cost"]`, "reserved by AWS"},
	{"tag with an amifleet: key", `{"tags": {"amifleet:run-id": "mine"}}`, `tags["amifleet:run-id"]`, "reserved by amifleet"},
	{"tag named Name", `{"tags": {"Name": "web"}}`, `tags["Name"]`, "set by amifleet"},
	{"tag with an empty key", `{"tags": {"": "v"}}`, `tags[""]`, "must not be empty"},
	{"tag key too long", fmt.Sprintf(`{"tags": {%q: "v"}}`, strings.Repeat("k", 129)), `tags["` + strings.Repeat("k", 129) + `"]`, "at most 128"},
	{"tag value too long", fmt.Sprintf(`{"tags": {"team": %q}}`, strings.Repeat("v", 257)), `tags["team"]`, "at most 256"},
	{"tag key with a forbidden character", `{"tags": {"team#1": "web"}}`, `tags["team#1"]`, "characters AWS tags cannot have"},
	{"tag value with a forbidden character", `{"tags": {"team": "web;rm"}}`, `tags["team"]`, "characters AWS tags cannot have"},
	{"page without hostname", `{"pageTemplate": "<h1>Hello</h1>"}`, "pageTemplate", "{hostname}"},
	{"page empty", `{"pageTemplate": ""}`, "pageTemplate", "must not be empty"},
	{"page too big", fmt.Sprintf(`{"pageTemplate": "{hostname}%s"}`, strings.Repeat("x", 4096)), "pageTemplate", "at most 4096"},
	{"page with a NUL", `{"pageTemplate": "{hostname}\u0000"}`, "pageTemplate", "NUL"},
	{"poll interval zero", `{"poll": {"intervalSeconds": 0}}`, "poll.intervalSeconds", "1 to 3600, got 0"},
	{"poll interval over an hour", `{"poll": {"intervalSeconds": 3601}}`, "poll.intervalSeconds", "1 to 3600"},
	{"negative first wait", `{"poll": {"firstWaitSeconds": {"loadBalancerActive": -1}}}`, "poll.firstWaitSeconds.loadBalancerActive", "got -1"},
	{"first wait over an hour", `{"poll": {"firstWaitSeconds": {"imageAvailable": 3601}}}`, "poll.firstWaitSeconds.imageAvailable", "to 3600, got 3601"},
	{"first wait of an unknown wait", `{"poll": {"firstWaitSeconds": {"imageReady": 10}}}`, "poll.firstWaitSeconds.imageReady", "unknown"},
	{"image wait shorter than a poll", `{"poll": {"maxPolls": {"imageAvailable": 0}}}`, "poll.maxPolls.imageAvailable", "the imageAvailable wait (0 polls of 5 s) is shorter than one poll"},
	{"negative cleanup polls", `{"poll": {"maxPolls": {"cleanupDone": -5}}}`, "poll.maxPolls.cleanupDone", "shorter than one poll"},
	{"image wait over a day", `{"poll": {"intervalSeconds": 60, "maxPolls": {"imageAvailable": 1441}}}`, "poll.maxPolls.imageAvailable", "longer than 24 hours"},
	{"image wait that would overflow", `{"poll": {"maxPolls": {"imageAvailable": 9223372036854775807}}}`, "poll.maxPolls.imageAvailable", "longer than 24 hours"},
	{"too many polls in all", `{"poll": {"intervalSeconds": 1, "maxPolls": {"imageAvailable": 1000, "baseStopped": 1000}}}`, "poll.maxPolls", "at most 2000"},
	{"verify requests zero", `{"verify": {"requests": 0}}`, "verify.requests", "1 to 100, got 0"},
	{"verify requests over 100", `{"verify": {"requests": 101}}`, "verify.requests", "1 to 100"},
	{"verify timeout over a minute", `{"verify": {"timeoutSeconds": 61}}`, "verify.timeoutSeconds", "1 to 60"},
	{"verify would outlast its Lambda", `{"verify": {"requests": 100, "timeoutSeconds": 10}}`, "verify.requests", "could take 1000 s"},
	{"verify one request for a fleet", `{"verify": {"requests": 1}}`, "verify.requests", "cannot reach 2 distinct instances"},
	{"skip reason without skip", `{"verify": {"skipReason": "no data plane"}}`, "verify.skipReason", "verify.skip is not"},
	{"teardown negative", `{"teardownAfterMinutes": -1}`, "teardownAfterMinutes", "0 (keep the fleet) to 10080"},
	{"teardown over a week", `{"teardownAfterMinutes": 10081}`, "teardownAfterMinutes", "7 days"},
	{"keep on failure as a string", `{"keepOnFailure": "true"}`, "keepOnFailure", "want true or false"},
}

func manyTags(n int) string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = fmt.Sprintf(`"t%d": "v"`, i)
	}
	return strings.Join(tags, ",")
}

func TestParseConfigRefusesBadInput(t *testing.T) {
	testRefused(t, ruleInputs)
}

// testRefused checks that ParseConfig refuses each input with a *BadInputError
// that names the field and says what is wrong.
func testRefused(t *testing.T, cases []badInput) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pipeline.ParseConfig(json.RawMessage(tc.input))
			var bad *pipeline.BadInputError
			if !errors.As(err, &bad) {
				t.Fatalf("ParseConfig(%s) = %+v, %v; want a *BadInputError", tc.input, cfg, err)
			}
			if bad.Field != tc.field {
				t.Errorf("Field = %q, want %q (error: %v)", bad.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the field %q", err, tc.field)
			}
			if !strings.Contains(bad.Message, tc.message) {
				t.Errorf("Message = %q, want it to contain %q", bad.Message, tc.message)
			}
			if pipeline.ErrorName(err) != pipeline.ErrBadInput {
				t.Errorf("ErrorName = %q, want %q (never retried)", pipeline.ErrorName(err), pipeline.ErrBadInput)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	for _, input := range []string{``, `  `, `null`, `{}`, `{"poll": {}, "verify": {}}`, `{"replicaCount": null, "httpCidrs": null, "keepBaseInstance": null, "poll": null}`} {
		t.Run(input, func(t *testing.T) {
			cfg, err := pipeline.ParseConfig(json.RawMessage(input))
			if err != nil {
				t.Fatalf("ParseConfig(%q): %v", input, err)
			}
			if !reflect.DeepEqual(cfg, pipeline.DefaultConfig()) {
				t.Errorf("ParseConfig(%q) = %+v, want the defaults %+v", input, cfg, pipeline.DefaultConfig())
			}
		})
	}
}

// The defaults are the ones the issue and the README promise.
func TestDefaultConfig(t *testing.T) {
	d := pipeline.DefaultConfig()
	checks := []struct {
		name      string
		got, want any
	}{
		{"instanceType", d.InstanceType, "t2.micro"},
		{"replicaCount", d.ReplicaCount, 2},
		{"maxReplicas", d.MaxReplicas, 20},
		{"imageParameter", d.ImageParameter, "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"},
		{"httpCidrs", d.HTTPCIDRs, []string{"0.0.0.0/0"}},
		{"sshCidrs", len(d.SSHCIDRs), 0},
		{"keepBaseInstance", *d.KeepBaseInstance, true},
		{"pageTemplate", d.PageTemplate, "<h1>Hola desde el EC2: {hostname}</h1>"},
		{"poll.intervalSeconds", d.Poll.IntervalSeconds, 5},
		{"poll.firstWaitSeconds", d.Poll.FirstWaitSeconds, pipeline.PerWait{BaseStopped: 45, ImageAvailable: 150, LoadBalancerActive: 120, InstancesRunning: 5, TargetsHealthy: 15, CleanupDone: 30, GenerationsPruned: 30}},
		{"verify", d.Verify, pipeline.VerifyConfig{Requests: 12, TimeoutSeconds: 5}},
		{"fleet size", d.FleetSize(), 3},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	// Each wait's bound, from its first check to its last, in minutes.
	for wait, minutes := range map[string]int{
		pipeline.WaitBaseStopped: 15, pipeline.WaitImageAvailable: 30, pipeline.WaitLoadBalancerActive: 15,
		pipeline.WaitInstancesRunning: 10, pipeline.WaitTargetsHealthy: 15, pipeline.WaitCleanupDone: 20, pipeline.WaitGenerationsPruned: 15,
	} {
		if got := d.Poll.WaitBound(wait); got != minutes*60 {
			t.Errorf("default %s wait = %d s, want %d minutes", wait, got, minutes)
		}
	}
	if err := d.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	// Each call is fresh: changing one default config must not change the next.
	*d.KeepBaseInstance = false
	d.HTTPCIDRs[0] = "10.0.0.0/8"
	if again := pipeline.DefaultConfig(); !*again.KeepBaseInstance || again.HTTPCIDRs[0] != "0.0.0.0/0" {
		t.Errorf("DefaultConfig shares state between calls: %+v", again)
	}
}

func TestParseConfigAcceptsGoodInput(t *testing.T) {
	falseV := false
	tests := []struct {
		name  string
		input string
		want  func(*pipeline.Config) // changes from the defaults
	}{
		{"instance types of many shapes", `{"instanceType": "c6in.2xlarge"}`, func(c *pipeline.Config) { c.InstanceType = "c6in.2xlarge" }},
		{"graviton", `{"instanceType": "m7g.large"}`, func(c *pipeline.Config) { c.InstanceType = "m7g.large" }},
		{"flex family", `{"instanceType": "m7i-flex.large"}`, func(c *pipeline.Config) { c.InstanceType = "m7i-flex.large" }},
		{"metal size with a suffix", `{"instanceType": "m7i.metal-24xl"}`, func(c *pipeline.Config) { c.InstanceType = "m7i.metal-24xl" }},
		{"replicas at the raised cap", `{"replicaCount": 500, "maxReplicas": 500}`, func(c *pipeline.Config) { c.ReplicaCount, c.MaxReplicas = 500, 500 }},
		{"one replica, no base", `{"replicaCount": 1, "keepBaseInstance": false, "verify": {"requests": 1}}`, func(c *pipeline.Config) {
			c.ReplicaCount, c.KeepBaseInstance, c.Verify.Requests = 1, &falseV, 1
		}},
		{"ssh from an office and a v6 range", `{"sshCidrs": ["203.0.113.0/24", "2001:db8::/32"], "keyName": "ops key"}`, func(c *pipeline.Config) {
			c.SSHCIDRs, c.KeyName = []string{"203.0.113.0/24", "2001:db8::/32"}, "ops key"
		}},
		{"ssh from anywhere, allowed", `{"sshCidrs": ["0.0.0.0/0", "::/0"], "allowSshFromAnywhere": true}`, func(c *pipeline.Config) {
			c.SSHCIDRs, c.AllowSSHFromAnywhere = []string{"0.0.0.0/0", "::/0"}, true
		}},
		{"http from two ranges", `{"httpCidrs": ["10.0.0.0/8", "192.168.1.1/32"]}`, func(c *pipeline.Config) { c.HTTPCIDRs = []string{"10.0.0.0/8", "192.168.1.1/32"} }},
		{"image and subnets", `{"imageId": "ami-0abcdef1234567890", "subnetIds": ["subnet-12345678", "subnet-0abcdef1234567890"]}`, func(c *pipeline.Config) {
			c.ImageID, c.SubnetIDs = "ami-0abcdef1234567890", []string{"subnet-12345678", "subnet-0abcdef1234567890"}
		}},
		{"tags with every allowed character", `{"tags": {"team": "web", "cost center": "a_b.c:d/e=f+g-h@i", "projet": "été 2026"}}`, func(c *pipeline.Config) {
			c.Tags = map[string]string{"team": "web", "cost center": "a_b.c:d/e=f+g-h@i", "projet": "été 2026"}
		}},
		{"local-cloud polls", `{"poll": {"intervalSeconds": 1, "maxPolls": {"imageAvailable": 600}}, "verify": {"skip": true, "skipReason": "no data plane"}}`, func(c *pipeline.Config) {
			c.Poll.IntervalSeconds, c.Poll.MaxPolls.ImageAvailable = 1, 600
			c.Verify.Skip, c.Verify.SkipReason = true, "no data plane"
		}},
		{"a page of my own", `{"pageTemplate": "<p>served by <b>{hostname}</b></p>"}`, func(c *pipeline.Config) { c.PageTemplate = "<p>served by <b>{hostname}</b></p>" }},
		{"time to live of a week", `{"teardownAfterMinutes": 10080}`, func(c *pipeline.Config) { c.TeardownAfterMinutes = 10080 }},
		{"keep on failure", `{"keepOnFailure": true}`, func(c *pipeline.Config) { c.KeepOnFailure = true }},
		{"another image parameter", `{"imageParameter": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64", "instanceType": "t4g.micro"}`, func(c *pipeline.Config) {
			c.ImageParameter, c.InstanceType = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64", "t4g.micro"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pipeline.ParseConfig(json.RawMessage(tc.input))
			if err != nil {
				t.Fatalf("ParseConfig(%s): %v", tc.input, err)
			}
			want := pipeline.DefaultConfig()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseConfig(%s)\n got %+v\nwant %+v", tc.input, got, want)
			}
		})
	}
}

// A validated config survives the trip through the document (JSON between
// Lambdas) unchanged, and is still valid input: the later stages see what
// Validate saw.
func TestParsedConfigRoundTrips(t *testing.T) {
	for _, in := range []string{
		`{}`,
		`{"sshCidrs": [], "subnetIds": [], "tags": {}}`,
		`{"replicaCount": 3, "keepBaseInstance": false, "sshCidrs": ["203.0.113.0/24"], "tags": {"team": "web"}, "teardownAfterMinutes": 60}`,
	} {
		cfg, err := pipeline.ParseConfig(json.RawMessage(in))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// What the next stage decodes: plain encoding/json.
		var decoded pipeline.Config
		if err := json.Unmarshal(raw, &decoded); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(decoded, cfg) {
			t.Errorf("%s: the next stage sees another config:\n got %+v\nwant %+v", in, decoded, cfg)
		}
		again, err := pipeline.ParseConfig(raw)
		if err != nil {
			t.Fatalf("ParseConfig(%s): %v", raw, err)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Errorf("%s: parsing the output again changed it:\n got %+v\nwant %+v", in, again, cfg)
		}
		if again.KeepBase() != cfg.KeepBase() {
			t.Errorf("%s: keepBaseInstance was lost on the way: %s", in, raw)
		}
	}
}

// Validate alone (the CLI may build a Config in Go) refuses a zero config by its
// first field, and names every field in the JSON spelling.
func TestValidateZeroConfig(t *testing.T) {
	err := pipeline.Config{}.Validate()
	var bad *pipeline.BadInputError
	if !errors.As(err, &bad) || bad.Field != "instanceType" {
		t.Fatalf("Config{}.Validate() = %v, want a BadInputError on instanceType", err)
	}
}

// A loop waits its first wait after its first check, the interval after the others
// (the interval too when no first wait is set); its bound adds them up to the last
// check.
func TestWaitAfter(t *testing.T) {
	p := pipeline.PollConfig{
		FirstWaitSeconds: pipeline.PerWait{ImageAvailable: 150},
		IntervalSeconds:  5,
		MaxPolls:         pipeline.PerWait{ImageAvailable: 4, BaseStopped: 3, CleanupDone: 1},
	}
	for _, c := range []struct {
		wait     string
		attempts int
		want     int
	}{
		{pipeline.WaitImageAvailable, 1, 150},
		{pipeline.WaitImageAvailable, 2, 5},
		{pipeline.WaitImageAvailable, 40, 5},
		{pipeline.WaitBaseStopped, 1, 5},
		{"NoSuchWait", 1, 5},
	} {
		if got := p.WaitAfter(c.wait, c.attempts); got != c.want {
			t.Errorf("WaitAfter(%s, %d) = %d, want %d", c.wait, c.attempts, got, c.want)
		}
	}
	// Checks at 0, 150, 155, 160: the fourth and last 160 s after the first.
	for wait, want := range map[string]int{pipeline.WaitImageAvailable: 160, pipeline.WaitBaseStopped: 10, pipeline.WaitCleanupDone: 0} {
		if got := p.WaitBound(wait); got != want {
			t.Errorf("WaitBound(%s) = %d, want %d", wait, got, want)
		}
	}
}
