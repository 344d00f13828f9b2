// amifleet's input rules: ParseConfig reads a run's input and Validate checks it
// against the limits below and the rules of each field, naming the field at fault.

package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the input, beside the reason for each. docs/input.md lists them.
const (
	// MaxReplicasCeiling bounds maxReplicas itself, so that no input (a typo of
	// 2000 for 20) can launch thousands of instances. 500 keeps a fleet well under
	// an ALB's quota of 1,000 targets per load balancer, and one check poll
	// describes the whole fleet in a single DescribeInstances page (1,000 results).
	// Fleets larger than that want an Auto Scaling group, not amifleet.
	MaxReplicasCeiling = 500
	// MaxCIDRs per list: each CIDR is one inbound rule, and a security group holds
	// 60 inbound rules by default (per IP version); amifleet adds its own rules.
	MaxCIDRs = 50
	// MinSSHPrefixIPv4 and MinSSHPrefixIPv6: SSH ranges broader than these are
	// refused unless allowSshFromAnywhere is set. Without this rule the check on
	// 0.0.0.0/0 is bypassed by 0.0.0.0/1 + 128.0.0.0/1; no office or VPN needs more
	// than a /8 (16 million addresses).
	MinSSHPrefixIPv4 = 8
	MinSSHPrefixIPv6 = 32
	// MaxTags: AWS allows 50 tags per resource; amifleet adds amifleet:run-id,
	// amifleet:role, Name and (on instances, images and snapshots)
	// amifleet:generation, and keeps some room for tags that AWS services add.
	MaxTags = 40
	// MaxPageTemplateBytes: the page travels inside the user data, which EC2 caps
	// at 16 KB, beside the provisioning script.
	MaxPageTemplateBytes = 4096
	// MaxPollIntervalSeconds bounds intervalSeconds and each firstWaitSeconds: a
	// longer wait notices a ready resource so late that the run is better started
	// again.
	MaxPollIntervalSeconds = 3600
	// MaxWaitSeconds bounds each wait (maxPolls × intervalSeconds): nothing the
	// pipeline waits for takes a day when it works.
	MaxWaitSeconds = 24 * 60 * 60
	// MaxTotalPolls bounds the sum of every wait's maxPolls. A Step Functions
	// Standard execution keeps at most 25,000 history events and each poll
	// (Wait + Task + Choice) writes about 9; 2,000 polls leave room for the rest
	// of the run and for retries.
	MaxTotalPolls = 2000
	// MaxVerifyRequests, MaxVerifyTimeoutSeconds and MaxVerifySeconds bound Verify:
	// in the worst case every request times out, one after another, and that must
	// fit in the Verify Lambda's timeout (the stack gives it more than
	// MaxVerifySeconds).
	MaxVerifyRequests       = 100
	MaxVerifyTimeoutSeconds = 60
	MaxVerifySeconds        = 300
	// MaxTeardownAfterMinutes (7 days): the time to live is for temporary fleets
	// (demos, CI), and a value in the wrong unit (seconds for minutes) would leave
	// a fleet running and billing for months. A fleet meant to stay longer is left
	// without a time to live and torn down by hand.
	MaxTeardownAfterMinutes = 7 * 24 * 60
	// MaxHourlyCostCeiling (USD per hour) bounds maxHourlyCost: a larger limit is
	// no limit for a fleet of at most MaxReplicasCeiling instances, and more likely
	// a value in the wrong unit (per month for per hour).
	MaxHourlyCostCeiling = 10000
)

var (
	// family.size, as EC2 spells instance types: t2.micro, m7g.large,
	// c6in.2xlarge, m7i-flex.large, u-6tb1.metal, m7i.metal-24xl.
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9]*(?:-[a-z0-9]+)*\.[a-z0-9]+(?:-[a-z0-9]+)*$`)
	imageIDRE      = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	subnetIDRE     = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	// SSM parameter names: letters, digits, _ . - and / for the hierarchy.
	parameterRE = regexp.MustCompile(`^/[A-Za-z0-9_.\-/]+$`)
	// The characters that every service amifleet tags (EC2, ELBv2) accepts.
	tagRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// ParseConfig reads a run's input strictly: unknown fields and values of the wrong
// type are refused by their JSON path; fields left out (or null) take their
// default; empty or null input is the default configuration. The result is
// validated: every error is a *BadInputError.
func ParseConfig(raw json.RawMessage) (Config, error) {
	cfg := DefaultConfig()
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return cfg, nil
	}
	// decodeStrict writes only the fields present, over the defaults.
	if err := decodeStrict(trimmed, &cfg); err != nil {
		return Config{}, err
	}
	// An explicit null resets a slice, map or pointer: it means "unset" too.
	def := DefaultConfig()
	if cfg.HTTPCIDRs == nil {
		cfg.HTTPCIDRs = def.HTTPCIDRs
	}
	if cfg.KeepBaseInstance == nil {
		cfg.KeepBaseInstance = def.KeepBaseInstance
	}
	// Empty lists and maps become nil, as the next stage will decode them after
	// omitempty dropped them: every stage sees the same config. (An empty
	// httpCidrs stays empty, for Validate to refuse.)
	if len(cfg.SSHCIDRs) == 0 {
		cfg.SSHCIDRs = nil
	}
	if len(cfg.SubnetIDs) == 0 {
		cfg.SubnetIDs = nil
	}
	if len(cfg.Tags) == 0 {
		cfg.Tags = nil
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// bad is a *BadInputError on field, its message formatted as by fmt.Sprintf.
func bad(field, format string, args ...any) error {
	return &BadInputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate checks a complete configuration (defaults filled in, as ParseConfig
// leaves it) against every rule, and returns the first broken rule as a
// *BadInputError that names the field by its JSON path.
func (c Config) Validate() error {
	checks := []func() error{
		c.validateInstanceType,
		c.validateCounts,
		c.validateImage,
		func() error { return validateCIDRs("httpCidrs", c.HTTPCIDRs, false, true) },
		func() error { return validateCIDRs("sshCidrs", c.SSHCIDRs, !c.AllowSSHFromAnywhere, false) },
		c.validateSubnets,
		c.validateKeyName,
		c.validateTags,
		c.validatePage,
		c.validatePoll,
		c.validateVerify,
		c.validateTeardown,
		c.validateMaxHourlyCost,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) validateInstanceType() error {
	it := c.InstanceType
	switch {
	case it == "":
		return bad("instanceType", "must not be empty; leave it out for %s", DefaultInstanceType)
	case len(it) > 64 || !instanceTypeRE.MatchString(it) || !strings.ContainsAny(strings.SplitN(it, ".", 2)[0], "0123456789"):
		hint := ""
		if strings.ToLower(it) != it {
			hint = " in lowercase"
		}
		return bad("instanceType", "%s is not an instance type: want family.size%s, like t2.micro, m7g.large or c6in.2xlarge", describe(it), hint)
	}
	return nil
}

func (c Config) validateCounts() error {
	switch {
	case c.MaxReplicas < 1:
		return bad("maxReplicas", "must be at least 1, got %d", c.MaxReplicas)
	case c.MaxReplicas > MaxReplicasCeiling:
		return bad("maxReplicas", "%d is over amifleet's ceiling of %d", c.MaxReplicas, MaxReplicasCeiling)
	case c.ReplicaCount < 1:
		return bad("replicaCount", "must be at least 1, got %d", c.ReplicaCount)
	case c.ReplicaCount > c.MaxReplicas:
		return bad("replicaCount", "%d is over maxReplicas (%d); raise maxReplicas (at most %d) to launch more", c.ReplicaCount, c.MaxReplicas, MaxReplicasCeiling)
	}
	return nil
}

func (c Config) validateImage() error {
	if c.ImageID != "" && !imageIDRE.MatchString(c.ImageID) {
		return bad("imageId", "%s is not an AMI id: want ami- and 8 to 17 hex digits, like ami-0abcdef1234567890", describe(c.ImageID))
	}
	switch p := c.ImageParameter; {
	case p == "":
		return bad("imageParameter", "must not be empty; leave it out for %s", DefaultImageParameter)
	case !strings.HasPrefix(p, "/"):
		return bad("imageParameter", "%s must start with \"/\", like %s", describe(p), DefaultImageParameter)
	case len(p) > 1011:
		return bad("imageParameter", "is %d characters; SSM allows at most 1011", len(p))
	case !parameterRE.MatchString(p):
		return bad("imageParameter", "%s has characters SSM parameter names cannot have (letters, digits, _ . - / only)", describe(p))
	}
	return nil
}

// validateCIDRs checks one list of CIDRs. guardSSH refuses ranges open to the
// world or broader than a /8 (IPv4) or /32 (IPv6).
func validateCIDRs(field string, cidrs []string, guardSSH, required bool) error {
	if required && len(cidrs) == 0 {
		return bad(field, "must list at least one CIDR (0.0.0.0/0 for everyone)")
	}
	if len(cidrs) > MaxCIDRs {
		return bad(field, "has %d CIDRs; at most %d fit in one security group", len(cidrs), MaxCIDRs)
	}
	seen := map[netip.Prefix]int{}
	for i, s := range cidrs {
		f := fmt.Sprintf("%s[%d]", field, i)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return bad(f, "%s is not a CIDR: want an address and a prefix length, like 203.0.113.0/24 or 2001:db8::/32", describe(s))
		}
		if p.Addr().Is4In6() {
			return bad(f, "%s is an IPv4 range written as IPv6; write it as IPv4", describe(s))
		}
		if p.Masked() != p {
			return bad(f, "%s has host bits set; did you mean %s?", describe(s), p.Masked())
		}
		if j, dup := seen[p]; dup {
			return bad(f, "%s repeats %s[%d]; security groups refuse duplicate rules", describe(s), field, j)
		}
		seen[p] = i
		if !guardSSH {
			continue
		}
		if p.Bits() == 0 {
			return bad(f, "%s opens SSH to the whole internet; list your own ranges, or set allowSshFromAnywhere to true if you mean it", describe(s))
		}
		if (p.Addr().Is4() && p.Bits() < MinSSHPrefixIPv4) || (p.Addr().Is6() && p.Bits() < MinSSHPrefixIPv6) {
			limit := MinSSHPrefixIPv4
			if p.Addr().Is6() {
				limit = MinSSHPrefixIPv6
			}
			return bad(f, "%s opens SSH to too much of the internet; list ranges of /%d or narrower, or set allowSshFromAnywhere to true if you mean it", describe(s), limit)
		}
	}
	return nil
}

func (c Config) validateSubnets() error {
	if len(c.SubnetIDs) == 0 {
		return nil
	}
	if len(c.SubnetIDs) < 2 {
		return bad("subnetIds", "lists one subnet; an ALB needs subnets in at least two availability zones (or leave subnetIds out for the default VPC's)")
	}
	seen := map[string]int{}
	for i, id := range c.SubnetIDs {
		f := fmt.Sprintf("subnetIds[%d]", i)
		if !subnetIDRE.MatchString(id) {
			return bad(f, "%s is not a subnet id: want subnet- and 8 to 17 hex digits, like subnet-0abc1234def567890", describe(id))
		}
		if j, dup := seen[id]; dup {
			return bad(f, "%s repeats subnetIds[%d]", describe(id), j)
		}
		seen[id] = i
	}
	return nil
}

func (c Config) validateKeyName() error {
	if len(c.KeyName) > 255 {
		return bad("keyName", "is %d characters; EC2 key pair names have at most 255", len(c.KeyName))
	}
	for _, r := range c.KeyName {
		if r < 0x20 || r > 0x7e {
			return bad("keyName", "%s has a character EC2 key pair names cannot have (printable ASCII only)", describe(c.KeyName))
		}
	}
	return nil
}

func (c Config) validateTags() error {
	if len(c.Tags) > MaxTags {
		return bad("tags", "has %d tags; at most %d (AWS allows 50 per resource, and amifleet adds its own)", len(c.Tags), MaxTags)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Tags)) {
		v := c.Tags[k]
		f := "tags[" + strconv.Quote(k) + "]"
		lower := strings.ToLower(k)
		switch {
		case k == "":
			return bad(f, "a tag key must not be empty")
		case utf8.RuneCountInString(k) > 128:
			return bad(f, "the key is %d characters; AWS allows at most 128", utf8.RuneCountInString(k))
		case strings.HasPrefix(lower, "aws:"):
			return bad(f, "keys starting with aws: are reserved by AWS")
		case strings.HasPrefix(lower, "amifleet:"):
			return bad(f, "keys starting with amifleet: are reserved by amifleet (run id, role, generation)")
		case k == TagName:
			return bad(f, "Name is set by amifleet (amifleet-<runId>-<role>)")
		case !tagRE.MatchString(k):
			return bad(f, "the key has characters AWS tags cannot have (letters, digits, spaces and _ . : / = + - @ only)")
		case utf8.RuneCountInString(v) > 256:
			return bad(f, "the value is %d characters; AWS allows at most 256", utf8.RuneCountInString(v))
		case !tagRE.MatchString(v):
			return bad(f, "the value has characters AWS tags cannot have (letters, digits, spaces and _ . : / = + - @ only)")
		}
	}
	return nil
}

func (c Config) validatePage() error {
	p := c.PageTemplate
	switch {
	case p == "":
		return bad("pageTemplate", "must not be empty; leave it out for %s", DefaultPageTemplate)
	case len(p) > MaxPageTemplateBytes:
		return bad("pageTemplate", "is %d bytes; at most %d fit in the user data", len(p), MaxPageTemplateBytes)
	case strings.ContainsRune(p, 0):
		return bad("pageTemplate", "must not contain a NUL character")
	case !strings.Contains(p, HostnamePlaceholder):
		return bad("pageTemplate", "must contain %s: Verify tells the instances apart by the hostname on their pages", HostnamePlaceholder)
	}
	return nil
}

func (c Config) validatePoll() error {
	interval := c.Poll.IntervalSeconds
	if interval < 1 || interval > MaxPollIntervalSeconds {
		return bad("poll.intervalSeconds", "must be 1 to %d, got %d", MaxPollIntervalSeconds, interval)
	}
	total := 0
	for _, w := range Waits {
		key := w.Key()
		if first := c.Poll.FirstWaitSeconds.Of(w.Name); first < 0 || first > MaxPollIntervalSeconds {
			return bad("poll.firstWaitSeconds."+key, "must be 0 (the interval, %d s) to %d, got %d", interval, MaxPollIntervalSeconds, first)
		}
		polls := c.Poll.MaxPolls.Of(w.Name)
		f := "poll.maxPolls." + key
		if polls < 1 {
			return bad(f, "the %s wait (%d polls of %d s) is shorter than one poll; set at least 1", key, polls, interval)
		}
		// Compared by division: polls × interval could overflow.
		if polls > MaxWaitSeconds/interval {
			return bad(f, "the %s wait (%d polls of %d s) is longer than %d hours", key, polls, interval, MaxWaitSeconds/3600)
		}
		total += polls
	}
	if total > MaxTotalPolls {
		return bad("poll.maxPolls", "the waits add up to %d polls; at most %d fit in one Step Functions execution's history (25,000 events)", total, MaxTotalPolls)
	}
	return nil
}

func (c Config) validateVerify() error {
	v := c.Verify
	switch {
	case v.SkipReason != "" && !v.Skip:
		return bad("verify.skipReason", "is set but verify.skip is not; set skip to true, or leave skipReason out")
	case len(v.SkipReason) > 1024:
		return bad("verify.skipReason", "is %d bytes; at most 1024", len(v.SkipReason))
	case v.Requests < 1 || v.Requests > MaxVerifyRequests:
		return bad("verify.requests", "must be 1 to %d, got %d", MaxVerifyRequests, v.Requests)
	case v.TimeoutSeconds < 1 || v.TimeoutSeconds > MaxVerifyTimeoutSeconds:
		return bad("verify.timeoutSeconds", "must be 1 to %d, got %d", MaxVerifyTimeoutSeconds, v.TimeoutSeconds)
	case v.Requests*v.TimeoutSeconds > MaxVerifySeconds:
		return bad("verify.requests", "%d requests of up to %d s each could take %d s; Verify has %d s", v.Requests, v.TimeoutSeconds, v.Requests*v.TimeoutSeconds, MaxVerifySeconds)
	}
	// Verify passes when at least min(fleet, 2) distinct hostnames answered.
	if need := min(c.FleetSize(), 2); !v.Skip && v.Requests < need {
		return bad("verify.requests", "%d cannot reach %d distinct instances; send at least %d", v.Requests, need, need)
	}
	return nil
}

func (c Config) validateTeardown() error {
	if t := c.TeardownAfterMinutes; t < 0 || t > MaxTeardownAfterMinutes {
		return bad("teardownAfterMinutes", "must be 0 (keep the fleet) to %d (7 days), got %d", MaxTeardownAfterMinutes, t)
	}
	return nil
}

func (c Config) validateMaxHourlyCost() error {
	if m := c.MaxHourlyCost; m != nil && (!(*m > 0) || *m > MaxHourlyCostCeiling) {
		return bad("maxHourlyCost", "must be more than 0 and at most %g (USD per hour), got %g; leave it out for no limit", float64(MaxHourlyCostCeiling), *m)
	}
	return nil
}
