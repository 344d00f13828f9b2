package localcloud

// Up and Down: the whole local cloud in one call. Up starts the gateway and moto
// (wired so that moto's Step Functions interpreter sends Lambda Invoke to the
// gateway), builds the Lambdas for this machine, and deploys the CDK stack into it
// with the CDK CLI (deploy.go). Down stops everything Up started, by PID. A state
// file (state.go) lets `amifleet local down` stop, from another process, what
// `local up` left running.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// DefaultRegion is where the stack is deployed when no region is given.
const DefaultRegion = "us-east-1"

// Account is the one account moto puts everything in.
const Account = "123456789012"

// Options configures Up.
type Options struct {
	// Port is the gateway's port on 127.0.0.1; 0 takes a free port (tests). The
	// CLI passes DefaultGatewayPort.
	Port int
	// Region is where the stack is deployed first (default DefaultRegion). Deploy
	// adds more regions.
	Region string
	// Root is the repository (where the Makefile and cdk.json are); empty means
	// the one that holds the working directory.
	Root string
	// Progress gets one line per step, for people; nil discards them.
	Progress io.Writer
	// LogWriter gets moto's, the gateway's, the functions' and the CDK CLI's output;
	// nil discards it.
	LogWriter io.Writer
	// StateFile, when set, is written once the cloud is up (see State) and removed
	// by Down, so that StopFromState can stop the cloud from another process.
	StateFile string
	// Python has moto installed; empty means $AMIFLEET_PYTHON, the repository's
	// .venv/, or python3 (pythonOr).
	Python string
	// GuestOSDelay: see GatewayOptions (default 2 s).
	GuestOSDelay time.Duration
	// TimeScale and Latency: see GatewayOptions (default 0.1, and no model). With a
	// model, the executions' Wait states and Retry intervals run on the same
	// scaled clock (MotoOptions.WaitScale): the pipeline's waits are AWS seconds,
	// like the model's durations. Without one they last what they say.
	TimeScale float64
	Latency   *LatencyModel
	// OnLoadBalancer: see GatewayOptions.
	OnLoadBalancer func(dnsName, localURL string)
	// PageDelay: see GatewayOptions (0: pages at once). Gateway.SetPageDelay changes
	// it once the cloud is up.
	PageDelay time.Duration
	// Lenient names the strict checks to turn off (Strictness.Relax: "iam,quota",
	// "all"); every check is on by default.
	Lenient string
	// VCPULimit, when above 0, replaces DefaultVCPULimit (a fleet bigger than the
	// default quota: as a user asks AWS for an increase).
	VCPULimit int
}

// waitScale is MotoOptions.WaitScale: the time scale with a latency model, else 1.
func (o Options) waitScale() float64 {
	switch {
	case o.Latency == nil:
		return 1
	case o.TimeScale > 0:
		return o.TimeScale
	}
	return defaultTimeScale
}

// Timings says how long Up's steps took.
type Timings struct {
	Build     time.Duration            // make build ARCH=<host>
	Moto      time.Duration            // moto started and ready
	Synth     time.Duration            // cdk synth (the Go CDK app built and run)
	Bootstrap map[string]time.Duration // cdk bootstrap, per region
	Deploy    map[string]time.Duration // cdk deploy, per region
	Up        time.Duration            // all of Up
}

// Stack is the deployed stack's outputs in one region.
type Stack struct {
	Region      string
	PipelineARN string
	TeardownARN string
	RefreshARN  string
	// Outputs holds every output by key (the functions' names too:
	// "<Stage>FunctionName").
	Outputs map[string]string
}

// Cloud is a running local cloud. Call Down when done.
type Cloud struct {
	// Endpoint is the gateway's URL: every AWS service, for every region.
	Endpoint string
	// Region is the first region the stack was deployed into.
	Region string
	// Gateway is the running gateway (faults, counts).
	Gateway *Gateway
	// Moto is the emulator behind the gateway.
	Moto    *Moto
	Timings Timings

	opts     Options
	root     string
	progress io.Writer
	deployer *deployer

	mu     sync.Mutex
	stacks map[string]Stack

	downOnce sync.Once
	downErr  error
}

// Up starts the local cloud and deploys the stack into opts.Region. On error,
// whatever it started is stopped again.
func Up(ctx context.Context, opts Options) (c *Cloud, err error) {
	start := time.Now()
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	root := opts.Root
	if root == "" {
		if root, err = RepoRoot(); err != nil {
			return nil, err
		}
	}
	// Commands run in root, so every path made from it must stand on its own.
	if root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	logw := opts.LogWriter
	if logw == nil {
		logw = io.Discard
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	c = &Cloud{
		Region:   opts.Region,
		opts:     opts,
		root:     root,
		progress: progress,
		stacks:   map[string]Stack{},
		Timings:  Timings{Bootstrap: map[string]time.Duration{}, Deploy: map[string]time.Duration{}},
	}
	defer func() {
		if err != nil {
			_ = c.Down()
			c = nil
		}
	}()

	// Checked first, so that these fail in a second, not after a build.
	strict := DefaultStrictness()
	if opts.VCPULimit > 0 {
		strict.VCPULimit = opts.VCPULimit
	}
	if err := strict.Relax(opts.Lenient); err != nil {
		return c, err
	}
	if opts.StateFile != "" {
		if st, err := ReadState(opts.StateFile); err == nil && st.alive() {
			return c, errAlreadyRunning(st)
		}
	}
	if err := CheckMoto(ctx, pythonOr(opts.Python)); err != nil {
		return c, err
	}
	if err := checkNode(); err != nil {
		return c, err
	}

	// The listener comes first: moto must be told the gateway's port.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
	if err != nil {
		if opts.Port != 0 {
			return c, fmt.Errorf("the local cloud's port %d is taken (another local cloud, or LocalStack?): %w; stop it with `amifleet local down`, or choose another port", opts.Port, err)
		}
		return c, fmt.Errorf("gateway: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	t := time.Now()
	c.Moto, err = StartMoto(ctx, MotoOptions{LambdaPort: port, LogWriter: logw, Python: opts.Python, WaitScale: opts.waitScale()})
	if err != nil {
		ln.Close()
		return c, err
	}
	c.Timings.Moto = time.Since(t)
	goarch := runtime.GOARCH
	c.Gateway, err = NewGateway(GatewayOptions{
		Strict:         strict,
		Root:           root,
		Upstream:       c.Moto.Endpoint(),
		Region:         opts.Region,
		LogWriter:      logw,
		GuestOSDelay:   opts.GuestOSDelay,
		TimeScale:      opts.TimeScale,
		Latency:        opts.Latency,
		OnLoadBalancer: opts.OnLoadBalancer,
		PageDelay:      opts.PageDelay,
		// Deterministic zips: the deployed CodeSha256 matches the local file, so the
		// gateway need not download the code back from moto's S3.
		ZipDirs: []string{filepath.Join(root, "build", goarch)},
	})
	if err != nil {
		ln.Close()
		return c, err
	}
	c.Gateway.Serve(ln)
	c.Endpoint = c.Gateway.URL()
	c.stepf("moto %s and the gateway are up at %s (%s)", MotoVersion, c.Endpoint, round(c.Timings.Moto))

	t = time.Now()
	c.stepf("building the Lambdas for %s: make build ARCH=%s", goarch, goarch)
	if err := runLogged(ctx, root, logw, nil, "make", "build", "ARCH="+goarch); err != nil {
		return c, fmt.Errorf("building the Lambdas (make build ARCH=%s): %w", goarch, err)
	}
	c.Timings.Build = time.Since(t)
	c.stepf("built in %s", round(c.Timings.Build))

	c.deployer, err = newDeployer(root, c.Endpoint, cdkArch(goarch), logw)
	if err != nil {
		return c, err
	}
	if err := c.deployer.ensureCLI(ctx, c.stepf); err != nil {
		return c, err
	}
	t = time.Now()
	c.stepf("synthesizing the stack (cdk synth -c local=true -c arch=%s)", c.deployer.arch)
	if err := c.deployer.synth(ctx); err != nil {
		return c, err
	}
	c.Timings.Synth = time.Since(t)
	c.stepf("synthesized in %s", round(c.Timings.Synth))

	if _, err := c.Deploy(ctx, opts.Region); err != nil {
		return c, err
	}
	if opts.StateFile != "" {
		if err := c.writeState(opts.StateFile); err != nil {
			return c, err
		}
	}
	c.Timings.Up = time.Since(start)
	c.stepf("the local cloud is up in %s", round(c.Timings.Up))
	return c, nil
}

// Deploy bootstraps region and deploys the stack there (the assembly Up
// synthesized, so the app is not built again), and returns its outputs. Deploying
// into a region already deployed returns the outputs it has.
func (c *Cloud) Deploy(ctx context.Context, region string) (Stack, error) {
	c.mu.Lock()
	s, ok := c.stacks[region]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	t := time.Now()
	c.stepf("bootstrapping aws://%s/%s", Account, region)
	if err := c.deployer.bootstrap(ctx, region); err != nil {
		return Stack{}, err
	}
	boot := time.Since(t)
	t = time.Now()
	c.stepf("deploying the %s stack into %s (cdk deploy --method=direct)", StackName, region)
	if err := c.deployer.deploy(ctx, region); err != nil {
		return Stack{}, err
	}
	dep := time.Since(t)
	s, err := c.readStack(ctx, region)
	if err != nil {
		return Stack{}, err
	}
	c.mu.Lock()
	c.stacks[region] = s
	c.Timings.Bootstrap[region] = boot
	c.Timings.Deploy[region] = dep
	c.mu.Unlock()
	c.stepf("deployed into %s (bootstrap %s, deploy %s)", region, round(boot), round(dep))
	return s, nil
}

// Stack returns the outputs of the stack deployed in region.
func (c *Cloud) Stack(region string) (Stack, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.stacks[region]
	return s, ok
}

// Config is an AWS configuration for region through the gateway: what the CLI and
// the functions see (counted, subject to faults).
func (c *Cloud) Config(region string) aws.Config { return AWSConfig(c.Endpoint, region) }

// DirectConfig is an AWS configuration for region straight to moto: for reading
// state back without being counted or hit by an injected fault.
func (c *Cloud) DirectConfig(region string) aws.Config {
	return AWSConfig(c.Moto.Endpoint(), region)
}

// Env is what a shell exports to use the cloud in region with the AWS CLI, the SDKs
// and amifleet: KEY=value lines.
func (c *Cloud) Env(region string) []string {
	env := []string{
		"AWS_ENDPOINT_URL=" + c.Endpoint,
		"AWS_REGION=" + region,
		"AWS_DEFAULT_REGION=" + region,
		"AWS_ACCESS_KEY_ID=amifleet-local",
		"AWS_SECRET_ACCESS_KEY=amifleet-local",
		// The load balancers' DNS names resolve nowhere: the gateway is their proxy
		// (`amifleet verify`, curl, a browser's proxy setting).
		"HTTP_PROXY=" + c.Endpoint,
		"http_proxy=" + c.Endpoint,
		"NO_PROXY=localhost,127.0.0.1",
		"no_proxy=localhost,127.0.0.1",
	}
	if s, ok := c.Stack(region); ok {
		env = append(env, "AMIFLEET_PIPELINE_ARN="+s.PipelineARN, "AMIFLEET_TEARDOWN_ARN="+s.TeardownARN, "AMIFLEET_REFRESH_ARN="+s.RefreshARN)
	}
	return env
}

// Down stops the gateway (and the functions' processes) and moto, removes the
// synthesized assembly and the state file. It is safe to call more than once, and
// on a Cloud that Up did not finish.
func (c *Cloud) Down() error {
	c.downOnce.Do(func() {
		var errs []error
		if c.Gateway != nil {
			errs = append(errs, c.Gateway.Close())
		}
		if c.Moto != nil {
			errs = append(errs, c.Moto.Stop())
		}
		if c.deployer != nil {
			errs = append(errs, c.deployer.close())
		}
		if c.opts.StateFile != "" {
			if st, err := ReadState(c.opts.StateFile); err == nil && st.PID == os.Getpid() {
				errs = append(errs, os.Remove(c.opts.StateFile))
			}
		}
		c.downErr = errors.Join(errs...)
	})
	return c.downErr
}

func (c *Cloud) stepf(format string, args ...any) {
	fmt.Fprintf(c.progress, "amifleet local: "+format+"\n", args...)
}
