package localcloud

// The gateway: the local cloud's one endpoint. It names each request's service and
// action (identify.go), forwards AWS API calls to moto (proxy.go), answers Lambda
// Invoke itself (invoke.go) by running the deployed function's real bootstrap
// (runtime.go) from its deployment package (packages.go), stands in for the guest OS
// (guestos.go), injects faults and counts calls (faults.go). moto's Step Functions
// interpreter is started with MOTO_PORT set to the gateway's port, so the state
// machines' Lambda tasks come here too.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultGatewayPort is the usual local-AWS port, the CLI's default. Tests always
// take a free port.
const DefaultGatewayPort = 4566

// defaultTimeScale is GatewayOptions.TimeScale when unset: AWS's durations 10 times
// faster.
const defaultTimeScale = 0.1

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
	// TimeScale (in (0, 1]) turns AWS's durations into local ones for the data plane: a target
	// group's 10 s health check interval runs every 10 s × TimeScale (default 0.1).
	TimeScale float64
	// PageDelay, when above 0, is how long each instance's httpd stand-in waits
	// before it answers a request (real time, not scaled): pages that take a while,
	// so that requests through a load balancer are still in flight while targets
	// are deregistered and instances terminated. The load balancers' health checks
	// are GETs like any other (on AWS too) and wait as well, so PageDelay must stay
	// well below the target groups' scaled health check timeout (amifleet's 4 s ×
	// the default 0.1 = 400 ms), or no target ever passes them (the gateway logs a
	// warning when a group's timeout is not above it). SetPageDelay changes it.
	PageDelay time.Duration
	// UserAddress is the public address of the person running the local cloud, as a
	// load balancer's security groups see their requests (default DefaultUserAddress).
	UserAddress string
	// OnLoadBalancer, when set, is told each load balancer that starts listening, with
	// its local URL (`amifleet local up` prints them).
	OnLoadBalancer func(dnsName, localURL string)
	// Strict says where the gateway refuses what AWS refuses (strict.go); the zero
	// value refuses nothing.
	Strict Strictness
	// Latency, when set, gives state changes AWS's timing on the TimeScale
	// (latency.go); nil keeps moto's instant changes.
	Latency *LatencyModel
	// Root is the amifleet repository, whose node_modules holds the IAM evaluator's
	// packages (Strict.IAM, iam.go); empty means the one that holds the working
	// directory (RepoRoot).
	Root string
}

// Gateway is the local cloud's endpoint; see the file's comment. It is an
// http.Handler; Start or Serve run it on a listener.
type Gateway struct {
	opts     GatewayOptions
	strictMu sync.RWMutex // guards opts.Strict (SetStrictness)
	upstream *url.URL
	proxy    *httputil.ReverseProxy
	log      *slog.Logger
	logw     io.Writer

	lambda *lambda.Client
	s3     *s3.Client
	ec2    *ec2.Client
	ddb    *dynamodb.Client // the IAM check reads tables' keys and tags

	workDir    string
	ownWorkDir bool

	srv       *http.Server
	url       string
	pageDelay atomic.Int64    // GatewayOptions.PageDelay, as SetPageDelay leaves it
	ctx       context.Context // ended by Close: background work stops
	stop      context.CancelFunc
	bg        sync.WaitGroup

	mu        sync.Mutex
	functions map[string]*deployedFunction // region + "/" + name

	codeMu    sync.Mutex        // one package fetch at a time: no double download
	codeDirs  map[string]string // CodeSha256 → unpacked directory
	zipHashes map[string]string // "s3:bucket/key@etag" or "file:path@size@mtime" → CodeSha256

	faults    faultState
	guest     guestOS
	imds      *imdsServer
	instances instancePlane
	lbs       lbPlane
	elb       *elb.Client
	logs      *logShipper  // function output to CloudWatch Logs (logs.go)
	strict    strictState  // what the strict checks remember (strict_ec2.go)
	iam       iamState     // the IAM check's evaluator, policies and record (iam.go)
	lat       latencyState // AWS's timing, when modelled (latency.go)
	ec2lat    ec2Latency   // the instances the model times (latency_ec2.go)
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
	if opts.TimeScale <= 0 {
		opts.TimeScale = defaultTimeScale
	}
	if opts.UserAddress == "" {
		opts.UserAddress = DefaultUserAddress
	}
	if err := opts.Latency.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
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
	g.ddb = dynamodb.NewFromConfig(cfg)
	g.elb = elb.NewFromConfig(cfg)
	g.logs = newLogShipper(up.String(), opts.Region, g.log)
	g.proxy = g.newProxy(up)
	g.guest.delay = opts.GuestOSDelay
	g.lat.model = opts.Latency
	g.pageDelay.Store(int64(max(opts.PageDelay, 0)))
	if g.imds, err = startIMDS(); err != nil {
		return nil, fmt.Errorf("gateway: instance metadata service: %w", err)
	}
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

// SetPageDelay changes GatewayOptions.PageDelay for the requests the instances' httpd
// stand-ins get from now on (d <= 0: none). Several tests may share one gateway: one
// that wants slow pages sets them for its own duration.
func (g *Gateway) SetPageDelay(d time.Duration) { g.pageDelay.Store(int64(max(d, 0))) }

// PageDelay is the delay the instances' httpd stand-ins answer with (SetPageDelay).
func (g *Gateway) PageDelay() time.Duration { return time.Duration(g.pageDelay.Load()) }

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
	g.logs.wait() // the processes' last lines
	g.closeLoadBalancers()
	g.iam.close()
	g.bg.Wait()
	g.closeInstances()
	if cerr := g.imds.close(); err == nil {
		err = cerr
	}
	if g.ownWorkDir {
		if rerr := os.RemoveAll(g.workDir); err == nil {
			err = rerr
		}
	}
	return err
}

// ServeHTTP answers one request: a load balancer's (the gateway as an HTTP proxy), the
// control API, an injected fault, Lambda Invoke, or moto's answer.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isLoadBalancerRequest(r) {
		g.serveLoadBalancer(w, r)
		return
	}
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
	// As on AWS: the caller's permissions first, then the service's own errors (an
	// injected fault), then what the service refuses that moto does not.
	if g.Strictness().IAM && g.iamRefuses(w, r, call) {
		return
	}
	if f := g.faults.takeAPIFault(call); f != nil {
		g.log.Info("fault injected", "call", call.key(), "code", f.Code)
		writeAPIError(w, call, f.Code, f.Message, f.Status)
		return
	}
	if g.ec2LatencyBefore(w, r, call) {
		return
	}
	if g.ec2Refuses(w, r, call) {
		return
	}
	if g.latencyBefore(w, r, call) {
		return
	}
	g.serveAPI(w, r, call)
}

// serveAPI answers an API call that neither the strict checks nor a fault answered:
// Lambda Invoke, or moto's answer.
func (g *Gateway) serveAPI(w http.ResponseWriter, r *http.Request, call apiCall) {
	if call.Service == "lambda" && call.Action == "Invoke" {
		g.serveInvoke(w, r, call)
		return
	}
	if watched(call) {
		w := watchedCall{call: call}
		if call.Action == "RunInstances" && isAmifleetUserData(call.Form.Get("UserData")) {
			w.launch = &guestLaunch{userData: call.Form.Get("UserData")}
		}
		g.ec2LatencyForward(r, &w)
		r = r.WithContext(context.WithValue(r.Context(), watchKey{}, w))
	}
	g.proxy.ServeHTTP(w, r)
	g.crashAfter(call)
}

// crashAfter kills the processes of the function that made call while they run an
// invocation, when a CrashFault says to (CrashFunctionAfter).
func (g *Gateway) crashAfter(call apiCall) {
	id, ok := g.iam.identity(call.AccessKey)
	if !ok || !g.faults.takeCrashAfter(id.Function, call) {
		return
	}
	g.mu.Lock()
	f := g.functions[id.Region+"/"+id.Function]
	g.mu.Unlock()
	if f != nil {
		n := f.rt.KillBusy()
		g.log.Info("crash injected after a call", "function", id.Function, "call", call.key(), "processes", n)
	}
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
