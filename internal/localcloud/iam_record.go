package localcloud

// What the IAM check evaluated, kept for people and for docs/iam.md: per function,
// per action, the resource types evaluated and the condition keys in play, and how
// many calls each was allowed and denied; and every denial with its reason.

import (
	"sort"
	"sync"
	"time"
)

// IAMRecord is what the strict cloud's IAM check evaluated since the gateway started
// (or since ResetIAMRecord). Its JSON is stable: maps are written in key order and
// every list is sorted.
type IAMRecord struct {
	// Engine names the evaluator and the versions it runs (node and the npm packages).
	Engine map[string]string `json:"engine"`
	// GlobalConditionKeys are the global keys every evaluation has (aws:PrincipalArn,
	// aws:RequestedRegion, ...); they are not repeated per resource.
	GlobalConditionKeys []string `json:"globalConditionKeys"`
	// Functions is keyed by the function's name.
	Functions map[string]IAMFunctionRecord `json:"functions"`
}

// IAMFunctionRecord is one function's evaluations.
type IAMFunctionRecord struct {
	Role string `json:"role"`
	// Actions is keyed by IAM action ("ec2:RunInstances", and the actions calls
	// imply, such as "ec2:CreateTags").
	Actions map[string]IAMActionRecord `json:"actions"`
}

// IAMActionRecord is one action's evaluations for one function.
type IAMActionRecord struct {
	// ImpliedBy lists the calls that made AWS authorize this action too (an
	// ec2:CreateTags by "ec2:RunInstances"); empty when the function calls it.
	ImpliedBy []string `json:"impliedBy,omitempty"`
	// Resources are the resource types evaluated ("*" for an action with no
	// resource-level permissions), sorted by type.
	Resources []IAMResourceRecord `json:"resources"`
	// Allowed and Denied count the calls in which this action was allowed on every
	// resource, or denied on one.
	Allowed int `json:"allowed"`
	Denied  int `json:"denied"`
}

// IAMResourceRecord is one resource type an action was evaluated on.
type IAMResourceRecord struct {
	Type string `json:"type"`
	// ConditionKeys are the non-global keys the requests had for it, sorted.
	ConditionKeys []string `json:"conditionKeys"`
	// Unvalidated says iam-data does not list this resource type for the action
	// (iamDataGaps): the simulator evaluated it without validation.
	Unvalidated bool `json:"unvalidated,omitempty"`
}

// IAMDenial is one refused call.
type IAMDenial struct {
	Time     time.Time `json:"time"`
	Function string    `json:"function"`
	Role     string    `json:"role"`
	// Call is the API call ("ec2:RunInstances"); Action the IAM action that was not
	// allowed (the call's, or one it implies, such as "ec2:CreateTags").
	Call         string `json:"call"`
	Action       string `json:"action"`
	Resource     string `json:"resource"`
	ResourceType string `json:"resourceType,omitempty"`
	// Decision is ImplicitlyDenied, ExplicitlyDenied, or UnknownAction (the local
	// cloud does not know what AWS evaluates for the action).
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
}

// IAMStats are the check's counters and latency (one call's whole check: reading
// resources and policies from moto, and the evaluation).
type IAMStats struct {
	Checks int           `json:"checks"`
	Denied int           `json:"denied"`
	Median time.Duration `json:"median"`
	P95    time.Duration `json:"p95"`
	Max    time.Duration `json:"max"`
	// MedianRead and MedianEvaluate split the median check: reading the call's
	// resources and the role's policies from moto, and the evaluator's answer.
	MedianRead     time.Duration `json:"medianRead"`
	MedianEvaluate time.Duration `json:"medianEvaluate"`
}

const maxIAMDenials = 1000
const maxIAMSamples = 4096

type iamActionAcc struct {
	impliedBy map[string]bool
	resources map[string]map[string]bool // type → keys
	unsafe    map[string]bool            // type → unvalidated
	allowed   int
	denied    int
}

type iamRecorder struct {
	mu        sync.Mutex
	functions map[string]*iamFunctionAcc
	denials   []IAMDenial
	checks    int
	denied    int
	samples   []iamSample
	nextSlot  int
}

type iamSample struct{ total, read, evaluated time.Duration }

type iamFunctionAcc struct {
	role    string
	actions map[string]*iamActionAcc
}

// note records one checked call.
func (r *iamRecorder) note(id iamIdentity, call apiCall, d iamDecision, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks++
	sample := iamSample{total: elapsed, read: d.read, evaluated: d.evaluated}
	if len(r.samples) < maxIAMSamples {
		r.samples = append(r.samples, sample)
	} else {
		r.samples[r.nextSlot] = sample
		r.nextSlot = (r.nextSlot + 1) % maxIAMSamples
	}
	if r.functions == nil {
		r.functions = map[string]*iamFunctionAcc{}
	}
	f := r.functions[id.Function]
	if f == nil {
		f = &iamFunctionAcc{actions: map[string]*iamActionAcc{}}
		r.functions[id.Function] = f
	}
	f.role = id.RoleARN
	acc := func(action string) *iamActionAcc {
		a := f.actions[action]
		if a == nil {
			a = &iamActionAcc{impliedBy: map[string]bool{}, resources: map[string]map[string]bool{}, unsafe: map[string]bool{}}
			f.actions[action] = a
		}
		return a
	}
	global := map[string]bool{}
	for _, k := range iamGlobalKeys() {
		global[k] = true
	}
	deniedActions := map[string]bool{}
	seen := map[string]bool{}
	for i, ev := range d.evals {
		a := acc(ev.Action)
		seen[ev.Action] = true
		if ev.ImpliedBy != "" {
			a.impliedBy[ev.ImpliedBy] = true
		}
		typ := ev.Type
		if i < len(d.results) && d.results[i].ResourceType != "" {
			typ = d.results[i].ResourceType
		}
		if typ == "" {
			typ = "*"
		}
		keys := a.resources[typ]
		if keys == nil {
			keys = map[string]bool{}
			a.resources[typ] = keys
		}
		for k := range ev.Context {
			if !global[k] {
				keys[k] = true
			}
		}
		if i < len(d.results) {
			if d.results[i].Unsafe {
				a.unsafe[typ] = true
			}
			if d.results[i].Decision != "Allowed" {
				deniedActions[ev.Action] = true
			}
		}
	}
	if d.denied != nil {
		r.denied++
		den := *d.denied
		den.Time = time.Now().UTC()
		if len(r.denials) >= maxIAMDenials {
			r.denials = r.denials[1:]
		}
		r.denials = append(r.denials, den)
		if !seen[den.Action] {
			// An action the mapping does not know: no evaluation, one denial.
			a := acc(den.Action)
			if a.resources["*"] == nil && den.Resource == "*" {
				a.resources["*"] = map[string]bool{}
			}
			deniedActions[den.Action] = true
			seen[den.Action] = true
		}
	}
	for action := range seen {
		if deniedActions[action] {
			f.actions[action].denied++
		} else {
			f.actions[action].allowed++
		}
	}
}

func iamSortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func iamSortedUnique(s []string) []string {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return iamSortedKeys(m)
}

// IAMRecord returns what the IAM check evaluated.
func (g *Gateway) IAMRecord() IAMRecord {
	out := IAMRecord{
		Engine:              map[string]string{"name": "@cloud-copilot/iam-simulate"},
		GlobalConditionKeys: iamGlobalKeys(),
		Functions:           map[string]IAMFunctionRecord{},
	}
	g.iam.eval.mu.Lock()
	for k, v := range g.iam.eval.versions {
		out.Engine[k] = v
	}
	g.iam.eval.mu.Unlock()
	r := &g.iam.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, f := range r.functions {
		fr := IAMFunctionRecord{Role: f.role, Actions: map[string]IAMActionRecord{}}
		for action, a := range f.actions {
			ar := IAMActionRecord{ImpliedBy: iamSortedKeys(a.impliedBy), Allowed: a.allowed, Denied: a.denied}
			if len(ar.ImpliedBy) == 0 {
				ar.ImpliedBy = nil
			}
			types := make([]string, 0, len(a.resources))
			for t := range a.resources {
				types = append(types, t)
			}
			sort.Strings(types)
			ar.Resources = []IAMResourceRecord{}
			for _, t := range types {
				ar.Resources = append(ar.Resources, IAMResourceRecord{Type: t, ConditionKeys: iamSortedKeys(a.resources[t]), Unvalidated: a.unsafe[t]})
			}
			fr.Actions[action] = ar
		}
		out.Functions[name] = fr
	}
	return out
}

// Denials returns the calls the IAM check refused (the last 1000), oldest first.
func (g *Gateway) Denials() []IAMDenial {
	r := &g.iam.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]IAMDenial{}, r.denials...)
}

// IAMStats returns the check's counters and latency.
func (g *Gateway) IAMStats() IAMStats {
	r := &g.iam.rec
	r.mu.Lock()
	s := IAMStats{Checks: r.checks, Denied: r.denied}
	samples := append([]iamSample{}, r.samples...)
	r.mu.Unlock()
	if len(samples) == 0 {
		return s
	}
	pick := func(f func(iamSample) time.Duration, q int) time.Duration {
		d := make([]time.Duration, len(samples))
		for i, x := range samples {
			d[i] = f(x)
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[min(len(d)-1, len(d)*q/100)]
	}
	total := func(x iamSample) time.Duration { return x.total }
	s.Median, s.P95, s.Max = pick(total, 50), pick(total, 95), pick(total, 100)
	s.MedianRead = pick(func(x iamSample) time.Duration { return x.read }, 50)
	s.MedianEvaluate = pick(func(x iamSample) time.Duration { return x.evaluated }, 50)
	return s
}

// ResetIAMRecord forgets what the IAM check recorded (evaluations, denials, stats).
func (g *Gateway) ResetIAMRecord() {
	r := &g.iam.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	r.functions, r.denials, r.checks, r.denied, r.samples, r.nextSlot = nil, nil, 0, 0, nil, 0
}
