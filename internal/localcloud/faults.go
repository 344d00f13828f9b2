package localcloud

// Fault injection and call counts, driven from Go (the Gateway's methods) or over
// HTTP from other processes (the control API under /_amifleet/, and ControlClient).
//
// Calls are named "service:Action" with the SigV4 signing name as the service, as in
// IAM actions: "ec2:DescribeInstances", "elasticloadbalancing:CreateLoadBalancer",
// "lambda:Invoke", "states:StartExecution", "ssm:GetParameter", "s3:PutObject".

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
)

// controlPrefix is where the control API lives on the gateway's endpoint.
const controlPrefix = "/_amifleet/"

// APIFault makes matching API calls fail with an AWS error instead of reaching moto.
type APIFault struct {
	// Action is "service:Action"; shell-style patterns match too ("ec2:Create*",
	// "elasticloadbalancing:*").
	Action string `json:"action"`
	// Code is the AWS error code, for example "RequestLimitExceeded".
	Code string `json:"code"`
	// Message is the error message; empty gives a generic one.
	Message string `json:"message,omitempty"`
	// Status is the HTTP status; 0 means 400 (429 for TooManyRequestsException, 503
	// for RequestLimitExceeded and Throttling, as AWS answers them).
	Status int `json:"status,omitempty"`
	// Count is how many matching calls fail before calls pass again; 0 or less means
	// every matching call fails until the faults are cleared.
	Count int `json:"count"`
	// Match, when set, limits the fault to the query-protocol calls (EC2, ELBv2) one
	// of whose parameters contains it, and to the JSON-protocol calls (DynamoDB, SSM,
	// Step Functions) whose body does: a run id is in every name, tag and ARN of its
	// run, and in the key of its record, so faults that match it hit that run only, and
	// runs can fail side by side. REST calls (Lambda, S3) never carry a match.
	Match string `json:"match,omitempty"`
}

// CrashFault makes the next Times invocations of the functions whose name matches
// Function (a name or a shell-style pattern such as "*LaunchBase*") crash: the
// process is killed mid-invoke and the answer is a Runtime.ExitError.
type CrashFault struct {
	Function string `json:"function"`
	Times    int    `json:"times"`
	// AfterCall, when set ("ec2:RunInstances"), crashes the function not when it is
	// invoked but once moto has answered that call of it: what it created exists, and
	// the invocation ends in a Runtime.ExitError before it can say so.
	AfterCall string `json:"afterCall,omitempty"`
	// Match, when set, limits the crash to the invocations whose payload contains it
	// (a run id: the document carries it), or, with AfterCall, to the calls that
	// carry it (see APIFault.Match).
	Match string `json:"match,omitempty"`
}

// faultState holds the faults and the counts; the zero value is ready.
type faultState struct {
	mu      sync.Mutex
	api     []*activeFault
	crashes []*CrashFault
	counts  map[string]int
}

type activeFault struct {
	APIFault
	used int
}

func (f *faultState) count(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts = map[string]int{}
	}
	f.counts[key]++
}

// takeAPIFault returns the first fault matching call that still applies, using it up.
func (f *faultState) takeAPIFault(call apiCall) *APIFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.api {
		if ok, _ := path.Match(a.Action, call.key()); !ok || !callCarries(call, a.Match) {
			continue
		}
		if a.Count > 0 && a.used >= a.Count {
			continue
		}
		a.used++
		out := a.APIFault
		return &out
	}
	return nil
}

// takeCrash takes a crash of function due at an invocation with payload.
func (f *faultState) takeCrash(function string, payload []byte) bool {
	return f.take(function, "", func(match string) bool { return bytes.Contains(payload, []byte(match)) })
}

// takeCrashAfter takes a crash of function due after call.
func (f *faultState) takeCrashAfter(function string, call apiCall) bool {
	return f.take(function, call.key(), func(match string) bool { return callCarries(call, match) })
}

// take takes a crash of function due after call ("" at invocation) whose Match, if
// any, carries says holds.
func (f *faultState) take(function, call string, carries func(match string) bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.crashes {
		if c.Times <= 0 || c.AfterCall != call || (c.Match != "" && !carries(c.Match)) {
			continue
		}
		if ok, _ := path.Match(c.Function, function); ok || c.Function == function {
			c.Times--
			return true
		}
	}
	return false
}

// callCarries reports whether call carries match (see APIFault.Match); an empty
// match is carried by every call.
func callCarries(call apiCall, match string) bool {
	if match == "" {
		return true
	}
	if call.Protocol == "json" {
		return jsonCarries(call.Body, match)
	}
	return formCarries(call.Form, match)
}

// jsonCarries reports whether a JSON body contains match: as it is sent, or in one of
// its strings once unescaped (an encoder may write "/" or "<" escaped).
func jsonCarries(body []byte, match string) bool {
	if bytes.Contains(body, []byte(match)) {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.Contains(s, match) {
			return true
		}
	}
}

// formCarries reports whether one of a query-protocol call's parameters contains
// match.
func formCarries(form url.Values, match string) bool {
	for _, values := range form {
		for _, v := range values {
			if strings.Contains(v, match) {
				return true
			}
		}
	}
	return false
}

// InjectAPIError makes the first firstK calls of action ("ec2:DescribeInstances",
// patterns allowed) answer the AWS error code with httpStatus (0: see APIFault.Status)
// instead of reaching moto; firstK <= 0 fails every matching call until ClearFaults.
// Faults added earlier are checked first.
func (g *Gateway) InjectAPIError(action, code string, httpStatus, firstK int) {
	g.AddFault(APIFault{Action: action, Code: code, Status: httpStatus, Count: firstK})
}

// AddFault adds an API fault (see APIFault).
func (g *Gateway) AddFault(fault APIFault) {
	if fault.Status == 0 {
		fault.Status = defaultErrorStatus(fault.Code)
	}
	if fault.Message == "" {
		fault.Message = "injected by the amifleet gateway"
	}
	g.faults.mu.Lock()
	defer g.faults.mu.Unlock()
	g.faults.api = append(g.faults.api, &activeFault{APIFault: fault})
}

// CrashFunction makes the next times invocations of the function named name (or
// matching it as a shell-style pattern) crash mid-invoke.
func (g *Gateway) CrashFunction(name string, times int) {
	g.AddCrash(CrashFault{Function: name, Times: times})
}

// AddCrash adds a crash (see CrashFault).
func (g *Gateway) AddCrash(crash CrashFault) {
	g.faults.mu.Lock()
	defer g.faults.mu.Unlock()
	g.faults.crashes = append(g.faults.crashes, &crash)
}

// CrashFunctionAfter makes the function named name (or matching it) crash, times
// times, right after moto has answered its call ("ec2:RunInstances"); see
// CrashFault.AfterCall. Functions are known by their own credentials.
func (g *Gateway) CrashFunctionAfter(name, call string, times int) {
	g.AddCrash(CrashFault{Function: name, Times: times, AfterCall: call})
}

// ClearFaults removes every API fault, crash and guest OS failure still pending.
func (g *Gateway) ClearFaults() {
	g.faults.mu.Lock()
	g.faults.api, g.faults.crashes = nil, nil
	g.faults.mu.Unlock()
	g.guest.mu.Lock()
	g.guest.failNext = 0
	g.guest.mu.Unlock()
	g.FailBoots(0)
}

// Counts returns how many calls the gateway received per "service:Action" since it
// started or since ResetCounts, faulted calls included. Calls the gateway makes
// itself (to read a function's configuration, to stop an instance) are not counted.
func (g *Gateway) Counts() map[string]int {
	g.faults.mu.Lock()
	defer g.faults.mu.Unlock()
	out := make(map[string]int, len(g.faults.counts))
	for k, v := range g.faults.counts {
		out[k] = v
	}
	return out
}

// ResetCounts sets every count back to zero.
func (g *Gateway) ResetCounts() {
	g.faults.mu.Lock()
	defer g.faults.mu.Unlock()
	g.faults.counts = map[string]int{}
}

func defaultErrorStatus(code string) int {
	switch code {
	case "TooManyRequestsException":
		return http.StatusTooManyRequests
	case "RequestLimitExceeded", "Throttling", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "InternalError", "InternalFailure", "ServiceException":
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// writeAPIError answers an AWS error in the call's protocol, so that the SDKs (and
// moto's interpreter, for Lambda) read the code as they would from AWS.
func writeAPIError(w http.ResponseWriter, call apiCall, code, message string, status int) {
	requestID := newRequestID()
	h := w.Header()
	h.Set("X-Amzn-Requestid", requestID)
	esc := func(s string) string {
		var b bytes.Buffer
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	var body string
	switch call.Protocol {
	case "ec2":
		h.Set("Content-Type", "text/xml;charset=UTF-8")
		body = fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`, esc(code), esc(message), requestID)
	case "query":
		h.Set("Content-Type", "text/xml")
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		body = fmt.Sprintf(`<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, typ, esc(code), esc(message), requestID)
	case "rest-xml":
		h.Set("Content-Type", "application/xml")
		h.Set("X-Amz-Request-Id", requestID)
		body = fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>%s</Code><Message>%s</Message><RequestId>%s</RequestId></Error>`, esc(code), esc(message), requestID)
	case "json":
		h.Set("Content-Type", "application/x-amz-json-1.1")
		h.Set("X-Amzn-Errortype", code)
		b, _ := json.Marshal(map[string]string{"__type": code, "message": message})
		body = string(b)
	default: // rest-json (Lambda)
		h.Set("Content-Type", "application/json")
		h.Set("X-Amzn-Errortype", code)
		b, _ := json.Marshal(map[string]string{"Type": "User", "message": message})
		body = string(b)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// guestOSFault is the control API's body for /_amifleet/guestos.
type guestOSFault struct {
	// FailNext makes that many launches with amifleet's user data never stop, as
	// when the script fails.
	FailNext int `json:"failNext"`
}

// serveControl is the control API:
//
//	GET    /_amifleet/health     200 {"upstream": ...}
//	GET    /_amifleet/counts     {"ec2:DescribeInstances": 3, ...}
//	DELETE /_amifleet/counts     reset the counts
//	POST   /_amifleet/faults     an APIFault
//	DELETE /_amifleet/faults     clear every fault (API, crash, guest OS)
//	POST   /_amifleet/crash      a CrashFault
//	POST   /_amifleet/guestos    {"failNext": N}
//	GET    /_amifleet/functions  {"us-east-1/name": RuntimeStats}
//	GET    /_amifleet/iam          IAMRecord: what the IAM check evaluated
//	GET    /_amifleet/iam/denials  []IAMDenial: the calls it refused
//	DELETE /_amifleet/iam          forget both
func (g *Gateway) serveControl(w http.ResponseWriter, r *http.Request) {
	what := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, controlPrefix), "/")
	decode := func(v any) bool {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			http.Error(w, "bad JSON body: "+err.Error(), http.StatusBadRequest)
			return false
		}
		return true
	}
	switch r.Method + " " + what {
	case "GET health":
		writeJSON(w, map[string]string{"upstream": g.upstream.String(), "url": g.url})
	case "GET counts":
		writeJSON(w, g.Counts())
	case "DELETE counts":
		g.ResetCounts()
		w.WriteHeader(http.StatusNoContent)
	case "POST faults":
		var f APIFault
		if !decode(&f) {
			return
		}
		if f.Action == "" || f.Code == "" {
			http.Error(w, "action and code are required", http.StatusBadRequest)
			return
		}
		g.AddFault(f)
		w.WriteHeader(http.StatusNoContent)
	case "DELETE faults":
		g.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case "POST crash":
		var c CrashFault
		if !decode(&c) {
			return
		}
		if c.Function == "" || c.Times <= 0 {
			http.Error(w, "function and times > 0 are required", http.StatusBadRequest)
			return
		}
		g.AddCrash(c)
		w.WriteHeader(http.StatusNoContent)
	case "POST guestos":
		var f guestOSFault
		if !decode(&f) {
			return
		}
		g.FailGuestOS(f.FailNext)
		w.WriteHeader(http.StatusNoContent)
	case "GET functions":
		writeJSON(w, g.FunctionStats())
	case "GET iam":
		writeJSON(w, g.IAMRecord())
	case "GET iam/denials":
		writeJSON(w, g.Denials())
	case "DELETE iam":
		g.ResetIAMRecord()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unknown control call "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ControlClient drives a gateway's control API from another process (the CLI, the
// end-to-end tests).
type ControlClient struct {
	// URL is the gateway's endpoint, for example http://localhost:4566.
	URL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

func (c ControlClient) do(ctx context.Context, method, what string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+controlPrefix+what, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("gateway control %s %s: %w", method, what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("gateway control %s %s: %s: %s", method, what, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Counts reads the gateway's call counts.
func (c ControlClient) Counts(ctx context.Context) (map[string]int, error) {
	var out map[string]int
	err := c.do(ctx, http.MethodGet, "counts", nil, &out)
	return out, err
}

// ResetCounts sets the gateway's counts to zero.
func (c ControlClient) ResetCounts(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "counts", nil, nil)
}

// AddFault adds an API fault.
func (c ControlClient) AddFault(ctx context.Context, f APIFault) error {
	return c.do(ctx, http.MethodPost, "faults", f, nil)
}

// CrashFunction makes the next times invocations of function crash.
func (c ControlClient) CrashFunction(ctx context.Context, function string, times int) error {
	return c.do(ctx, http.MethodPost, "crash", CrashFault{Function: function, Times: times}, nil)
}

// FailGuestOS makes the next n launches with amifleet's user data never stop.
func (c ControlClient) FailGuestOS(ctx context.Context, n int) error {
	return c.do(ctx, http.MethodPost, "guestos", guestOSFault{FailNext: n}, nil)
}

// ClearFaults removes every pending fault.
func (c ControlClient) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "faults", nil, nil)
}

// Functions reads the loaded functions' runtime counters.
func (c ControlClient) Functions(ctx context.Context) (map[string]RuntimeStats, error) {
	var out map[string]RuntimeStats
	err := c.do(ctx, http.MethodGet, "functions", nil, &out)
	return out, err
}

// IAMRecord reads what the gateway's IAM check evaluated.
func (c ControlClient) IAMRecord(ctx context.Context) (IAMRecord, error) {
	var out IAMRecord
	err := c.do(ctx, http.MethodGet, "iam", nil, &out)
	return out, err
}

// IAMDenials reads the calls the gateway's IAM check refused.
func (c ControlClient) IAMDenials(ctx context.Context) ([]IAMDenial, error) {
	var out []IAMDenial
	err := c.do(ctx, http.MethodGet, "iam/denials", nil, &out)
	return out, err
}

// ResetIAMRecord makes the gateway's IAM check forget what it recorded.
func (c ControlClient) ResetIAMRecord(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "iam", nil, nil)
}

// PendingFaults counts the faults whose Match contains match that would still hit:
// API faults with a Count not used up, crashes with Times left. A test that meant
// each fault to fail one step reads 0 once the steps have run.
func (g *Gateway) PendingFaults(match string) int {
	g.faults.mu.Lock()
	defer g.faults.mu.Unlock()
	n := 0
	for _, a := range g.faults.api {
		if strings.Contains(a.Match, match) && a.Count > 0 && a.used < a.Count {
			n++
		}
	}
	for _, c := range g.faults.crashes {
		if strings.Contains(c.Match, match) && c.Times > 0 {
			n++
		}
	}
	return n
}
