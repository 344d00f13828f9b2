package localcloud

// The strict cloud's EC2 and ELB checks (strict.go has the switches). Where moto is
// more lenient than EC2 and ELB, the gateway answers as they would, one file per check:
//
//   - strict_offerings.go: instance type offerings per zone (Offerings);
//   - strict_quota.go: the running On-Demand Standard vCPU quota (VCPULimit);
//   - strict_tokens.go: RunInstances' ClientToken (ClientTokens);
//   - strict_consistency.go: a new resource is not yet visible to describes by id
//     (Consistency);
//   - strict_eni.go: a deleted load balancer's network interfaces keep its security
//     groups in use (ENILinger).
//
// RunInstances goes through its checks and to moto under one lock per region
// (strictLaunch), so that concurrent launches neither overshoot the quota nor launch
// twice for one token. Every refusal is logged (component "strict", the check, the
// call, the resource).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// strictState is what the checks remember; the zero value is ready (strictState()).
type strictState struct {
	once sync.Once
	log  *slog.Logger
	now  func() time.Time // time.Now; tests move it

	mu          sync.Mutex
	launchLocks map[string]*sync.Mutex    // region → held from a launch's checks to moto's answer
	subnetZones map[string]string         // region/subnet → zone
	vcpus       map[string]int            // instance type → default vCPUs, read from moto
	tokens      map[string]*launchToken   // region/ClientToken → the launch it made
	launching   map[string]string         // region/ClientToken → fingerprint of the launch under way
	fresh       map[string]time.Time      // instance, image, group id or ELB ARN → when describes see it
	lbGroups    map[string]lbBeingDeleted // load balancer ARN → its groups, read before its deletion
	lingering   map[string]time.Time      // security group id → when its last interface is gone
}

func (g *Gateway) strictState() *strictState {
	s := &g.strict
	s.once.Do(func() {
		s.log = slog.New(slog.NewJSONHandler(g.logw, nil)).With("component", "strict")
		s.now = time.Now
		s.launchLocks = map[string]*sync.Mutex{}
		s.subnetZones = map[string]string{}
		s.vcpus = map[string]int{}
		s.tokens = map[string]*launchToken{}
		s.launching = map[string]string{}
		s.fresh = map[string]time.Time{}
		s.lbGroups = map[string]lbBeingDeleted{}
		s.lingering = map[string]time.Time{}
	})
	return s
}

func (g *Gateway) strictLog() *slog.Logger { return g.strictState().log }

// ec2Refuses answers what EC2, ELB and Service Quotas refuse (or answer themselves)
// where moto does not; false lets the call through.
func (g *Gateway) ec2Refuses(w http.ResponseWriter, r *http.Request, call apiCall) bool {
	st := g.Strictness()
	switch call.key() {
	case "ec2:DescribeInstanceTypeOfferings":
		return st.Offerings && g.answerOfferings(w, call)
	case "servicequotas:GetServiceQuota":
		return st.VCPULimit > 0 && g.answerServiceQuota(w, r, call)
	case "ec2:RunInstances":
		if st.Offerings || st.VCPULimit > 0 || st.ClientTokens {
			g.strictLaunch(w, r, call)
			return true
		}
	case "elasticloadbalancing:DeleteLoadBalancer":
		if st.ENILinger > 0 {
			g.noteLoadBalancerGroups(r.Context(), call)
		}
	case "ec2:DeleteSecurityGroup":
		if st.ENILinger > 0 && g.groupInUse(w, call) {
			return true
		}
	}
	return st.Consistency > 0 && g.notYetVisible(w, call)
}

// strictSaw is told each watched call's answer from moto (200 only).
func (g *Gateway) strictSaw(call apiCall, body []byte) {
	st := g.Strictness()
	switch call.key() {
	case "ec2:RunInstances":
		if st.ClientTokens {
			g.rememberToken(call, body)
		}
	case "elasticloadbalancing:DeleteLoadBalancer":
		if st.ENILinger > 0 {
			g.lingerAfterDelete(call)
		}
	}
	if st.Consistency > 0 {
		g.rememberCreated(call, body)
	}
}

// strictLaunch answers a RunInstances: a token's earlier launch, a refusal, or moto's
// answer to the launch as EC2 would make it (other counts or zone: set). The
// region's launch lock is held until moto has answered, so that the next launch's
// checks see this one's instances and token.
func (g *Gateway) strictLaunch(w http.ResponseWriter, r *http.Request, call apiCall) {
	region := g.callRegion(call)
	s := g.strictState()
	s.mu.Lock()
	lock := s.launchLocks[region]
	if lock == nil {
		lock = &sync.Mutex{}
		s.launchLocks[region] = lock
	}
	s.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()

	st := g.Strictness()
	if st.ClientTokens && g.answerToken(w, call, region) {
		return
	}
	set := url.Values{}
	if st.Offerings && g.unsupportedLaunch(r.Context(), w, call, region, set) {
		return
	}
	if st.VCPULimit > 0 && g.overQuota(r.Context(), w, call, region, set) {
		return
	}
	if len(set) > 0 {
		call = rewriteForm(r, call, set)
	}
	g.serveAPI(w, r, call)
	g.launched(call, region)
}

// refuse answers AWS's error code and message for call, and logs the refusal.
func (g *Gateway) refuse(w http.ResponseWriter, call apiCall, check, resource, code, message string) {
	g.strictLog().Info("refused", "check", check, "call", call.key(), "resource", resource, "code", code, "message", message)
	writeAPIError(w, call, code, message, defaultErrorStatus(code))
}

// callRegion is the call's signing region, or the gateway's.
func (g *Gateway) callRegion(call apiCall) string {
	if call.Region != "" {
		return call.Region
	}
	return g.opts.Region
}

// writeEC2Answer writes a 200 EC2 answer.
func writeEC2Answer(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

var requestIDElement = regexp.MustCompile(`<requestId>[^<]*</requestId>`)

// withNewRequestID is an EC2 answer with a request id of its own.
func withNewRequestID(body []byte) string {
	return requestIDElement.ReplaceAllLiteralString(string(body), "<requestId>"+newRequestID()+"</requestId>")
}

// canonicalForm is form's parameters but those named in skip, in one order: two
// requests with the same parameters give the same string whatever their order.
func canonicalForm(form url.Values, skip ...string) string {
	keep := url.Values{}
	for k, v := range form {
		if !slices.Contains(skip, k) {
			keep[k] = v
		}
	}
	return keep.Encode() // sorted by key
}

func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// rewriteForm sets parameters of a query-protocol request, in its body (for moto) and
// in the call (for the checks and the watchers after it).
func rewriteForm(r *http.Request, call apiCall, set url.Values) apiCall {
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	form, err := url.ParseQuery(string(body))
	if err != nil {
		form = url.Values{}
	}
	merged := url.Values{}
	for k, v := range call.Form {
		merged[k] = v
	}
	for k, v := range set {
		form[k] = v
		merged[k] = v
	}
	encoded := form.Encode()
	r.Body = io.NopCloser(strings.NewReader(encoded))
	r.ContentLength = int64(len(encoded))
	r.Header.Set("Content-Length", strconv.Itoa(len(encoded)))
	call.Form = merged
	return call
}

// xmlValues is the text of every element named name in an XML answer, in order.
func xmlValues(body []byte, name string) []string {
	var out []string
	d := xml.NewDecoder(strings.NewReader(string(body)))
	in := false
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			in, text = t.Name.Local == name, strings.Builder{}
		case xml.CharData:
			if in {
				text.Write(t)
			}
		case xml.EndElement:
			if in && t.Name.Local == name {
				out = append(out, strings.TrimSpace(text.String()))
			}
			in = false
		}
	}
}

// sortedList is formList sorted (messages name ids in a stable order).
func sortedList(call apiCall, name string) []string {
	l := formList(call, name)
	sort.Strings(l)
	return l
}
