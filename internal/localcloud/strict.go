package localcloud

// The strict cloud: where moto is more lenient than AWS, the gateway refuses what AWS
// refuses. Each check can be turned off on its own (Strictness.Relax), to find which
// one bites. Up turns them all on by default; a bare NewGateway has them off.
//
//   - iam.go: every call a function makes is evaluated against its role's policies as
//     deployed, by an independent engine (@cloud-copilot/iam-simulate, run by Node).
//   - strict_ec2.go: instance type offerings per zone, the running On-Demand vCPU
//     quota, RunInstances' ClientToken, eventual consistency of new resources, and a
//     deleted load balancer's network interfaces that linger.

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Strictness says which of AWS's refusals the local cloud enforces. The zero value
// enforces none (moto as it is).
type Strictness struct {
	// IAM evaluates every call a function makes against its role's policies.
	IAM bool
	// Offerings answers DescribeInstanceTypeOfferings from a fixture with AWS's real
	// gaps, and refuses RunInstances in a zone that does not offer the type.
	Offerings bool
	// VCPULimit is the running On-Demand Standard (A, C, D, H, I, M, R, T, Z) vCPU
	// quota, L-1216C47A; 0 means no limit.
	VCPULimit int
	// ClientTokens keeps RunInstances' ClientToken as EC2 does.
	ClientTokens bool
	// Consistency is how long a new resource stays invisible to describes.
	Consistency time.Duration
	// ENILinger is how long a deleted load balancer's network interfaces keep its
	// security groups in use.
	ENILinger time.Duration
}

// The checks' names, for Relax and the CLI's --lenient.
const (
	CheckIAM          = "iam"
	CheckOfferings    = "offerings"
	CheckQuota        = "quota"
	CheckClientTokens = "tokens"
	CheckConsistency  = "consistency"
	CheckENILinger    = "eni"
)

// DefaultVCPULimit is the quota of the strict cloud: AWS's default for a new account
// is lower in some regions, but a fleet of a few dozen small instances fits.
const DefaultVCPULimit = 64

// DefaultStrictness is every check on, with delays that make each visible.
func DefaultStrictness() Strictness {
	return Strictness{
		IAM:          true,
		Offerings:    true,
		VCPULimit:    DefaultVCPULimit,
		ClientTokens: true,
		Consistency:  time.Second,
		ENILinger:    3 * time.Second,
	}
}

// Relax turns off the named checks (comma-separated: iam, offerings, quota, tokens,
// consistency, eni; "all" turns every one off).
func (s *Strictness) Relax(names string) error {
	for _, n := range strings.Split(names, ",") {
		switch strings.TrimSpace(strings.ToLower(n)) {
		case "":
		case "all":
			*s = Strictness{}
		case CheckIAM:
			s.IAM = false
		case CheckOfferings:
			s.Offerings = false
		case CheckQuota:
			s.VCPULimit = 0
		case CheckClientTokens:
			s.ClientTokens = false
		case CheckConsistency:
			s.Consistency = 0
		case CheckENILinger:
			s.ENILinger = 0
		default:
			return fmt.Errorf("no strict check %q: the checks are %s (or all)", n, strings.Join(StrictChecks(), ", "))
		}
	}
	return nil
}

// StrictChecks names the checks Relax knows.
func StrictChecks() []string {
	c := []string{CheckIAM, CheckOfferings, CheckQuota, CheckClientTokens, CheckConsistency, CheckENILinger}
	sort.Strings(c)
	return c
}

// SetStrictness changes the checks in force, for the calls that come after; a test
// lowers the vCPU quota with it, as an account with a smaller one would have.
func (g *Gateway) SetStrictness(s Strictness) {
	g.strictMu.Lock()
	defer g.strictMu.Unlock()
	g.opts.Strict = s
}

// Strictness is the checks in force (SetStrictness changes them while the gateway
// runs).
func (g *Gateway) Strictness() Strictness {
	g.strictMu.RLock()
	defer g.strictMu.RUnlock()
	return g.opts.Strict
}
