package localcloud

// The gateway: the local cloud's one endpoint. It forwards AWS API calls to moto,
// answers Lambda Invoke itself by running the deployed function's real bootstrap
// (runtime.go), stands in for the guest OS (guestos.go), injects faults and counts
// calls (faults.go). moto's Step Functions interpreter is started with MOTO_PORT set
// to the gateway's port, so the state machines' Lambda tasks come here too.

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultGatewayPort is the usual local-AWS port, the CLI's default. Tests always
// take a free port.
const DefaultGatewayPort = 4566

// maxFormBody bounds the query-protocol bodies the gateway reads to find the action.
const maxFormBody = 32 << 20

// GatewayOptions configures NewGateway.
type GatewayOptions struct {
	// Upstream is moto's endpoint, for example http://localhost:5000.
	Upstream string
	// Region is used where a request does not say its own (default us-east-1).
	Region string
	// URL is the gateway's own URL as functions reach it (their AWS_ENDPOINT_URL).
	// Empty means http://localhost:<port> once Start or Serve has a listener; the host
	// must be "localhost" for moto to read path-style S3 bucket names.
	URL string
	// WorkDir is where deployment packages are unpacked; empty means a temporary
	// directory that Close removes.
	WorkDir string
	// ZipDirs are local directories (searched two levels deep) whose *.zip files are
	// matched by CodeSha256 before moto's S3 is searched, for functions created with
	// a ZipFile, whose code moto keeps nowhere it serves.
	ZipDirs []string
	// LogWriter gets the gateway's log (JSON lines) and the functions' output; nil
	// discards them.
	LogWriter io.Writer
	// MaxProcsPerFunction bounds each function's pool of processes (default 4).
	MaxProcsPerFunction int
	// GuestOSDelay is how long after RunInstances a base instance launched with
	// amifleet's user data is stopped (default 2 s).
	GuestOSDelay time.Duration
}

// Gateway is the local cloud's endpoint; see the file's comment. It is an
// http.Handler; Start or Serve run it on a listener.
type Gateway struct {
	opts     GatewayOptions
	upstream *url.URL
	proxy    *httputil.ReverseProxy
	log      *slog.Logger
	logw     io.Writer

	lambda *lambda.Client
	s3     *s3.Client
	ec2    *ec2.Client

	workDir    string
	ownWorkDir bool

	srv  *http.Server
	url  string
	ctx  context.Context // ended by Close: background work stops
	stop context.CancelFunc
	bg   sync.WaitGroup

	mu        sync.Mutex
	functions map[string]*deployedFunction // region + "/" + name

	codeMu    sync.Mutex        // one package fetch at a time: no double download
	codeDirs  map[string]string // CodeSha256 → unpacked directory
	zipHashes map[string]string // "s3:bucket/key@etag" or "file:path@size@mtime" → CodeSha256

	faults faultState
	guest  guestOS
}

// deployedFunction is one function's runtime and the code it runs.
type deployedFunction struct {
	sha string
	env string // fingerprint of the configuration the runtime was made with
	rt  *Runtime
}

// NewGateway returns a gateway in front of opts.Upstream. Call Start or Serve, then
// Close.
func NewGateway(opts GatewayOptions) (*Gateway, error) {
	if opts.Upstream == "" {
		return nil, errors.New("gateway: no upstream (moto's endpoint)")
	}
	up, err := url.Parse(opts.Upstream)
	if err != nil || up.Host == "" {
		return nil, fmt.Errorf("gateway: bad upstream %q", opts.Upstream)
	}
	up.Host = localhostForLoopback(up.Host)
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.MaxProcsPerFunction <= 0 {
		opts.MaxProcsPerFunction = 4
	}
	if opts.GuestOSDelay <= 0 {
		opts.GuestOSDelay = 2 * time.Second
	}
	logw := opts.LogWriter
	if logw == nil {
		logw = io.Discard
	}
	g := &Gateway{
		opts:      opts,
		upstream:  up,
		logw:      logw,
		log:       slog.New(slog.NewJSONHandler(logw, nil)).With("component", "gateway"),
		workDir:   opts.WorkDir,
		functions: map[string]*deployedFunction{},
		codeDirs:  map[string]string{},
		zipHashes: map[string]string{},
	}
	if g.workDir == "" {
		if g.workDir, err = os.MkdirTemp("", "amifleet-gateway-"); err != nil {
			return nil, err
		}
		g.ownWorkDir = true
	}
	g.ctx, g.stop = context.WithCancel(context.Background())
	cfg := AWSConfig(up.String(), opts.Region)
	g.lambda = lambda.NewFromConfig(cfg)
	g.s3 = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	g.ec2 = ec2.NewFromConfig(cfg)
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			// moto routes on the Host header (and reads path-style S3 bucket names
			// only from "localhost"): keep the client's.
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: g.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.Error("upstream failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
			http.Error(w, "amifleet gateway: moto did not answer: "+err.Error(), http.StatusBadGateway)
		},
	}
	g.guest.delay = opts.GuestOSDelay
	return g, nil
}

// Start listens on addr ("127.0.0.1:0" takes a free port) and serves in the
// background.
func (g *Gateway) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.Serve(ln)
	return nil
}

// Serve serves on ln in the background (a listener made before moto starts lets moto
// be told the gateway's port). Close closes ln.
func (g *Gateway) Serve(ln net.Listener) {
	g.url = g.opts.URL
	if g.url == "" {
		g.url = "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = g.srv.Serve(ln) }()
	g.log.Info("gateway listening", "url", g.url, "upstream", g.upstream.String())
}

// URL is the gateway's endpoint, once Start or Serve has run.
func (g *Gateway) URL() string { return g.url }

// Close stops serving, stops every function's processes and the guest OS's pending
// stops, and removes the unpacked code if the gateway made its work directory.
func (g *Gateway) Close() error {
	var err error
	if g.srv != nil {
		err = g.srv.Close()
	}
	g.stop()
	g.mu.Lock()
	fns := g.functions
	g.functions = map[string]*deployedFunction{}
	g.mu.Unlock()
	for _, f := range fns {
		f.rt.Close()
	}
	g.bg.Wait()
	if g.ownWorkDir {
		if rerr := os.RemoveAll(g.workDir); err == nil {
			err = rerr
		}
	}
	return err
}

// ServeHTTP answers one request: the control API, an injected fault, Lambda Invoke,
// or moto's answer.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		g.serveControl(w, r)
		return
	}
	r.Host = localhostForLoopback(r.Host)
	call, err := identify(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.faults.count(call.key())
	if f := g.faults.takeAPIFault(call.key()); f != nil {
		g.log.Info("fault injected", "call", call.key(), "code", f.Code)
		writeAPIError(w, call, f.Code, f.Message, f.Status)
		return
	}
	if call.Service == "lambda" && call.Action == "Invoke" {
		g.serveInvoke(w, r, call)
		return
	}
	if call.Service == "ec2" && call.Action == "RunInstances" && isAmifleetUserData(call.Form.Get("UserData")) {
		r = r.WithContext(context.WithValue(r.Context(), guestWatchKey{}, call.Region))
	}
	g.proxy.ServeHTTP(w, r)
}

// localhostForLoopback turns 127.0.0.1:PORT and [::1]:PORT into localhost:PORT: moto
// reads path-style S3 bucket names only from a "localhost" host.
func localhostForLoopback(host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return net.JoinHostPort("localhost", port)
	}
	return host
}

// apiCall is what the gateway makes of a request.
type apiCall struct {
	// Service is the SigV4 signing name ("ec2", "elasticloadbalancing", "lambda",
	// "states", "s3", ...), as in IAM actions.
	Service string
	// Action is the API operation ("DescribeInstances", "Invoke", ...).
	Action string
	// Region is the request's signing region ("" when unsigned).
	Region string
	// Protocol says how errors are written: "ec2", "query", "json", "rest-json",
	// "rest-xml".
	Protocol string
	// Form is a query-protocol request's parameters.
	Form url.Values
}

func (c apiCall) key() string { return c.Service + ":" + c.Action }

// identify names a request's service and action: the SigV4 credential scope gives the
// service and region; the Action parameter (query protocols), X-Amz-Target (JSON
// protocols) or the method and path (REST: Lambda, S3) give the action.
func identify(r *http.Request) (apiCall, error) {
	var c apiCall
	scope := r.Header.Get("Authorization")
	if i := strings.Index(scope, "Credential="); i >= 0 {
		scope = scope[i+len("Credential="):]
		if j := strings.IndexAny(scope, ", "); j >= 0 {
			scope = scope[:j]
		}
	} else {
		scope = r.URL.Query().Get("X-Amz-Credential")
	}
	// access-key/date/region/service/aws4_request
	if parts := strings.Split(scope, "/"); len(parts) == 5 {
		c.Region, c.Service = parts[2], parts[3]
	}

	form := r.URL.Query()
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody))
		if err != nil {
			return c, fmt.Errorf("reading request: %w", err)
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if bf, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range bf {
				form[k] = v
			}
		}
	}
	target := r.Header.Get("X-Amz-Target")
	switch {
	case target != "":
		c.Protocol = "json"
		c.Action = target[strings.LastIndex(target, ".")+1:]
	case form.Get("Action") != "":
		c.Protocol = "query"
		c.Action = form.Get("Action")
		c.Form = form
	case strings.HasPrefix(r.URL.Path, "/2015-03-31/functions") || c.Service == "lambda":
		c.Protocol = "rest-json"
		if c.Service == "" {
			c.Service = "lambda"
		}
		c.Action = lambdaAction(r.Method, r.URL.Path)
	case c.Service == "s3" || c.Service == "":
		c.Protocol = "rest-xml"
		if c.Service == "" {
			c.Service = "s3"
		}
		c.Action = s3Action(r)
	default:
		c.Protocol = "rest-json"
		c.Action = r.Method + " " + r.URL.Path
	}
	if c.Service == "ec2" {
		c.Protocol = "ec2"
	}
	if c.Service == "" {
		c.Service = "unknown"
	}
	return c, nil
}

// lambdaAction names the Lambda REST operations the project uses; others are named
// by method and path.
func lambdaAction(method, path string) string {
	rest, ok := strings.CutPrefix(path, "/2015-03-31/functions")
	if !ok {
		return method + " " + path
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	switch {
	case len(parts) == 0 && method == http.MethodGet:
		return "ListFunctions"
	case len(parts) == 0 && method == http.MethodPost:
		return "CreateFunction"
	case len(parts) == 1 && method == http.MethodGet:
		return "GetFunction"
	case len(parts) == 1 && method == http.MethodDelete:
		return "DeleteFunction"
	case len(parts) == 2 && parts[1] == "invocations" && method == http.MethodPost:
		return "Invoke"
	case len(parts) == 2 && parts[1] == "configuration" && method == http.MethodGet:
		return "GetFunctionConfiguration"
	case len(parts) == 2 && parts[1] == "configuration" && method == http.MethodPut:
		return "UpdateFunctionConfiguration"
	case len(parts) == 2 && parts[1] == "code" && method == http.MethodPut:
		return "UpdateFunctionCode"
	case len(parts) >= 2 && parts[1] == "policy":
		return map[string]string{http.MethodPost: "AddPermission", http.MethodGet: "GetPolicy", http.MethodDelete: "RemovePermission"}[method]
	case len(parts) == 2 && parts[1] == "versions" && method == http.MethodPost:
		return "PublishVersion"
	}
	return method + " " + path
}

// s3Action names S3 operations from the method, whether a key is addressed, and the
// first sub-resource in the query; best effort, for counts and faults.
func s3Action(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	if host, _, err := net.SplitHostPort(r.Host); err == nil && strings.HasSuffix(host, ".localhost") {
		bucket, key = strings.TrimSuffix(host, ".localhost"), path
	}
	q := r.URL.Query()
	verb := map[string]string{http.MethodGet: "Get", http.MethodPut: "Put", http.MethodDelete: "Delete", http.MethodHead: "Head", http.MethodPost: "Post"}[r.Method]
	switch {
	case bucket == "":
		return "ListBuckets"
	case key != "":
		switch {
		case r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
			return "CopyObject"
		case r.Method == http.MethodPost && q.Has("uploads"):
			return "CreateMultipartUpload"
		case r.Method == http.MethodPut && q.Has("partNumber"):
			return "UploadPart"
		case r.Method == http.MethodPost && q.Has("uploadId"):
			return "CompleteMultipartUpload"
		}
		return verb + "Object"
	case r.Method == http.MethodPost && q.Has("delete"):
		return "DeleteObjects"
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		return "ListObjectsV2"
	}
	subs := make([]string, 0, len(q))
	for k := range q {
		if !strings.Contains(k, "-") && k != "prefix" && k != "delimiter" && k != "marker" {
			subs = append(subs, k)
		}
	}
	sort.Strings(subs)
	if len(subs) > 0 {
		return verb + "Bucket" + strings.ToUpper(subs[0][:1]) + subs[0][1:]
	}
	switch r.Method {
	case http.MethodGet:
		return "ListObjects"
	case http.MethodPut:
		return "CreateBucket"
	}
	return verb + "Bucket"
}

// serveInvoke answers Lambda Invoke by running the function's bootstrap, as Lambda
// does: 200 and the payload; a function error is 200 with X-Amz-Function-Error.
func (g *Gateway) serveInvoke(w http.ResponseWriter, r *http.Request, call apiCall) {
	requestID := newRequestID()
	w.Header().Set("X-Amzn-Requestid", requestID)
	ref := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/2015-03-31/functions/"), "/invocations")
	name, region := parseFunctionRef(ref)
	if region == "" {
		region = call.Region
	}
	if region == "" {
		region = g.opts.Region
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		writeAPIError(w, call, "InvalidRequestContentException", err.Error(), http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}
	fn, err := g.function(r.Context(), region, name)
	if err != nil {
		var nf *lambdatypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			writeAPIError(w, call, "ResourceNotFoundException", "Function not found: "+ref, http.StatusNotFound)
			return
		}
		g.log.Error("function not runnable", "function", name, "region", region, "error", err.Error())
		writeAPIError(w, call, "ServiceException", "amifleet gateway: "+err.Error(), http.StatusInternalServerError)
		return
	}
	crash := g.faults.takeCrash(fn.rt.Config().Name)
	run := func(ctx context.Context) (InvokeResult, error) {
		if crash {
			g.log.Info("crash injected", "function", fn.rt.Config().Name, "requestId", requestID)
			return fn.rt.InvokeAndCrash(ctx, requestID, payload)
		}
		return fn.rt.Invoke(ctx, requestID, payload)
	}
	switch r.Header.Get("X-Amz-Invocation-Type") {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			if _, err := run(g.ctx); err != nil {
				g.log.Error("event invocation", "function", name, "error", err.Error())
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	start := time.Now()
	res, err := run(r.Context())
	if err != nil {
		writeAPIError(w, call, "ServiceException", "amifleet gateway: "+err.Error(), http.StatusInternalServerError)
		return
	}
	g.log.Info("invoked", "function", fn.rt.Config().Name, "requestId", requestID, "errorType", res.ErrorType(), "ms", time.Since(start).Milliseconds())
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amz-Executed-Version", "$LATEST")
	if res.FunctionError != "" {
		h.Set("X-Amz-Function-Error", res.FunctionError)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
}

// parseFunctionRef splits a FunctionName (name, name:qualifier, or ARN) into the name
// and, for an ARN, its region.
func parseFunctionRef(ref string) (name, region string) {
	if strings.HasPrefix(ref, "arn:") {
		// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
		p := strings.Split(ref, ":")
		if len(p) >= 7 {
			return p[6], p[3]
		}
		return ref, ""
	}
	// ACCOUNT:function:NAME (partial ARN)
	if p := strings.Split(ref, ":"); len(p) >= 3 && p[1] == "function" {
		return p[2], ""
	}
	name, _, _ = strings.Cut(ref, ":")
	return name, ""
}

// function returns the runtime of a deployed function, made (or remade after a
// redeploy) from its configuration in moto.
func (g *Gateway) function(ctx context.Context, region, name string) (*deployedFunction, error) {
	out, err := g.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)}, func(o *lambda.Options) { o.Region = region })
	if err != nil {
		return nil, err
	}
	conf := out.Configuration
	if conf == nil || conf.CodeSha256 == nil {
		return nil, fmt.Errorf("function %s: no configuration or CodeSha256 in GetFunction", name)
	}
	sha := *conf.CodeSha256
	env := functionEnv(conf, region, g.url)
	fingerprint := envFingerprint(env, conf)
	key := region + "/" + aws.ToString(conf.FunctionName)

	g.mu.Lock()
	f, ok := g.functions[key]
	g.mu.Unlock()
	if ok && f.sha == sha && f.env == fingerprint {
		return f, nil
	}

	location := ""
	if out.Code != nil {
		location = aws.ToString(out.Code.Location)
	}
	dir, err := g.codeDir(ctx, region, sha, location)
	if err != nil {
		return nil, fmt.Errorf("function %s: %w", name, err)
	}
	timeout := defaultFunctionTimeout
	if conf.Timeout != nil && *conf.Timeout > 0 {
		timeout = time.Duration(*conf.Timeout) * time.Second
	}
	rt := NewRuntime(FunctionConfig{
		Name:    aws.ToString(conf.FunctionName),
		ARN:     aws.ToString(conf.FunctionArn),
		CodeDir: dir,
		Timeout: timeout,
		Env:     env,
	}, g.opts.MaxProcsPerFunction, g.logw)

	g.mu.Lock()
	defer g.mu.Unlock()
	if cur, ok := g.functions[key]; ok {
		if cur.sha == sha && cur.env == fingerprint {
			// Another invocation made it meanwhile.
			go rt.Close()
			return cur, nil
		}
		go cur.rt.Close()
	}
	f = &deployedFunction{sha: sha, env: fingerprint, rt: rt}
	g.functions[key] = f
	g.log.Info("function loaded", "function", key, "codeSha256", sha, "timeout", timeout.String())
	return f, nil
}

// functionEnv is a function's environment as Lambda gives it: its own variables, then
// the reserved ones, with fake credentials and AWS_ENDPOINT_URL pointing back at the
// gateway so that every call the function makes goes through it.
func functionEnv(conf *lambdatypes.FunctionConfiguration, region, gatewayURL string) map[string]string {
	env := map[string]string{}
	if conf.Environment != nil {
		for k, v := range conf.Environment.Variables {
			env[k] = v
		}
	}
	name := aws.ToString(conf.FunctionName)
	memory := int32(128)
	if conf.MemorySize != nil {
		memory = *conf.MemorySize
	}
	version := aws.ToString(conf.Version)
	if version == "" {
		version = "$LATEST"
	}
	for k, v := range map[string]string{
		"AWS_REGION":                      region,
		"AWS_DEFAULT_REGION":              region,
		"AWS_ACCESS_KEY_ID":               "amifleet-local",
		"AWS_SECRET_ACCESS_KEY":           "amifleet-local",
		"AWS_SESSION_TOKEN":               "amifleet-local",
		"AWS_ENDPOINT_URL":                gatewayURL,
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(int(memory)),
		"AWS_LAMBDA_FUNCTION_VERSION":     version,
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      "local/" + name,
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"_HANDLER":                        aws.ToString(conf.Handler),
	} {
		env[k] = v
	}
	return env
}

// envFingerprint changes when anything the runtime was made from changes.
func envFingerprint(env map[string]string, conf *lambdatypes.FunctionConfiguration) string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, env[k])
	}
	fmt.Fprintf(h, "timeout=%d", aws.ToInt32(conf.Timeout))
	return hex.EncodeToString(h.Sum(nil))
}

// codeDir returns the directory holding the deployment package whose base64 SHA-256
// is sha, unpacking it on first use.
func (g *Gateway) codeDir(ctx context.Context, region, sha, location string) (string, error) {
	g.codeMu.Lock()
	defer g.codeMu.Unlock()
	if dir, ok := g.codeDirs[sha]; ok {
		return dir, nil
	}
	pkg, where, err := g.findPackage(ctx, region, sha, location)
	if err != nil {
		return "", err
	}
	raw, _ := base64.StdEncoding.DecodeString(sha)
	dir := filepath.Join(g.workDir, hex.EncodeToString(raw))
	if err := unzip(pkg, dir); err != nil {
		return "", fmt.Errorf("unpacking %s: %w", where, err)
	}
	g.codeDirs[sha] = dir
	g.log.Info("code unpacked", "from", where, "codeSha256", sha, "dir", dir)
	return dir, nil
}

// findPackage finds the zip whose base64 SHA-256 is sha: in the local ZipDirs, then
// in moto's S3 under the key that GetFunction's Code.Location ends with (CDK asset
// buckets first), then in every .zip object of every bucket.
func (g *Gateway) findPackage(ctx context.Context, region, sha, location string) ([]byte, string, error) {
	for _, dir := range g.opts.ZipDirs {
		if pkg, where := g.findLocalZip(dir, sha); pkg != nil {
			return pkg, where, nil
		}
	}
	opt := func(o *s3.Options) { o.Region = region }
	lb, err := g.s3.ListBuckets(ctx, &s3.ListBucketsInput{}, opt)
	if err != nil {
		return nil, "", fmt.Errorf("listing moto's S3 buckets: %w", err)
	}
	var buckets []string
	for _, b := range lb.Buckets {
		buckets = append(buckets, aws.ToString(b.Name))
	}
	// CDK's asset buckets (cdk-hnb659fds-assets-ACCOUNT-REGION) hold deployed code.
	sort.SliceStable(buckets, func(i, j int) bool {
		return strings.Contains(buckets[i], "-assets-") && !strings.Contains(buckets[j], "-assets-")
	})
	key := ""
	if u, err := url.Parse(location); err == nil && strings.Contains(u.Host, "amazonaws.com") {
		key = strings.TrimPrefix(u.Path, "/")
	}
	if key != "" {
		for _, b := range buckets {
			if pkg, ok := g.s3Match(ctx, opt, b, key, "", sha); ok {
				return pkg, "s3://" + b + "/" + key, nil
			}
		}
	}
	for _, b := range buckets {
		p := s3.NewListObjectsV2Paginator(g.s3, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx, opt)
			if err != nil {
				break // a bucket we cannot list holds nothing of ours
			}
			for _, o := range page.Contents {
				k := aws.ToString(o.Key)
				if !strings.HasSuffix(k, ".zip") || k == key {
					continue
				}
				if pkg, ok := g.s3Match(ctx, opt, b, k, aws.ToString(o.ETag), sha); ok {
					return pkg, "s3://" + b + "/" + k, nil
				}
			}
		}
	}
	return nil, "", fmt.Errorf("no deployment package with CodeSha256 %s in moto's S3 (%d buckets) or in %v", sha, len(buckets), g.opts.ZipDirs)
}

// s3Match downloads bucket/key and reports whether its hash is sha; hashes of objects
// already seen (by ETag) are remembered, so a scan downloads each object once.
func (g *Gateway) s3Match(ctx context.Context, opt func(*s3.Options), bucket, key, etag, sha string) ([]byte, bool) {
	cacheKey := "s3:" + bucket + "/" + key + "@" + etag
	if etag != "" {
		if h, ok := g.zipHashes[cacheKey]; ok && h != sha {
			return nil, false
		}
	}
	obj, err := g.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}, opt)
	if err != nil {
		return nil, false
	}
	defer obj.Body.Close()
	body, err := io.ReadAll(obj.Body)
	if err != nil {
		return nil, false
	}
	h := codeSHA256(body)
	if etag != "" {
		g.zipHashes[cacheKey] = h
	}
	return body, h == sha
}

// findLocalZip looks for a zip with hash sha under dir, two levels deep.
func (g *Gateway) findLocalZip(dir, sha string) ([]byte, string) {
	var found []byte
	var where string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != nil {
			return filepath.SkipDir
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(dir, path); strings.Count(rel, string(filepath.Separator)) >= 2 {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".zip") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		cacheKey := fmt.Sprintf("file:%s@%d@%d", path, info.Size(), info.ModTime().UnixNano())
		if h, ok := g.zipHashes[cacheKey]; ok && h != sha {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		h := codeSHA256(body)
		g.zipHashes[cacheKey] = h
		if h == sha {
			found, where = body, path
			return filepath.SkipAll
		}
		return nil
	})
	return found, where
}

// codeSHA256 is Lambda's CodeSha256 of a package: base64 of its SHA-256.
func codeSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// unzip writes the package's files under dir, keeping their modes.
func unzip(pkg []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unzip-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range zr.File {
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("unsafe path %q in package", f.Name)
		}
		path := filepath.Join(tmp, f.Name)
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		mode := f.Mode().Perm()
		if f.Name == "bootstrap" || mode == 0 {
			// Lambda runs bootstrap whatever mode the zip recorded.
			mode |= 0o755
		}
		if err := writeZipEntry(f, path, mode); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func writeZipEntry(f *zip.File, path string, mode os.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// modifyResponse lets the guest OS see RunInstances answers it watches.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	region, ok := resp.Request.Context().Value(guestWatchKey{}).(string)
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if region == "" {
		region = g.opts.Region
	}
	g.guestLaunched(region, body)
	return nil
}

// FunctionStats reports, per loaded function ("region/name"), its runtime's counters.
func (g *Gateway) FunctionStats() map[string]RuntimeStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]RuntimeStats, len(g.functions))
	for k, f := range g.functions {
		out[k] = f.rt.Stats()
	}
	return out
}
