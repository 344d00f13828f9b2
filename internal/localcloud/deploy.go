package localcloud

// Deploying the stack into the local cloud with the CDK CLI that package.json pins:
// synthesize once (the Go CDK app is built and run once per Up), then bootstrap and
// deploy that cloud assembly into each region with `--method=direct` (change-set
// deploys leave the outputs empty in moto).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
)

// StackName is the CDK app's stack (cdk/main.go).
const StackName = "AmiFleet"

// Output keys the stack declares.
const (
	OutputPipelineARN = "PipelineStateMachineArn"
	OutputTeardownARN = "TeardownStateMachineArn"
	OutputRefreshARN  = "RefreshStateMachineArn"
)

// deployer runs the CDK CLI against the local cloud.
type deployer struct {
	root     string // the repository: cdk.json, package.json, node_modules
	endpoint string
	arch     string // the CDK app's arch context: x86_64 or arm64
	logw     io.Writer
	cli      string // node_modules/.bin/cdk
	// assembly is the synthesized cloud assembly (a temporary directory, so two
	// local clouds on one checkout do not share it); home isolates the CLI from the
	// user's ~/.aws.
	assembly, home string
}

func newDeployer(root, endpoint, arch string, logw io.Writer) (*deployer, error) {
	home, err := os.MkdirTemp("", "amifleet-cdk-")
	if err != nil {
		return nil, err
	}
	return &deployer{
		root:     root,
		endpoint: endpoint,
		arch:     arch,
		logw:     logw,
		cli:      filepath.Join(root, "node_modules", ".bin", "cdk"),
		assembly: filepath.Join(home, "cdk.out"),
		home:     home,
	}, nil
}

func (d *deployer) close() error { return os.RemoveAll(d.home) }

// checkNode says what to install when node or npm is missing.
func checkNode() error {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the local cloud deploys the stack with the AWS CDK CLI, which needs Node.js 20 or later and npm: %s not found (https://nodejs.org, or apt-get install nodejs npm)", tool)
		}
	}
	return nil
}

// ensureCLI installs the Node packages pinned in package.json (the CDK CLI, the IAM
// evaluator) with npm ci when node_modules lacks one of them at its pinned version.
func (d *deployer) ensureCLI(ctx context.Context, stepf func(string, ...any)) error {
	missing := missingNodePackages(d.root)
	if fileExists(d.cli) && len(missing) == 0 {
		return nil
	}
	stepf("installing the Node packages pinned in package.json (npm ci): %s", strings.Join(missing, ", "))
	if err := runLogged(ctx, d.root, d.logw, nil, "npm", "ci", "--no-audit", "--no-fund"); err != nil {
		return fmt.Errorf("installing the CDK CLI: %w", err)
	}
	if !fileExists(d.cli) {
		return fmt.Errorf("npm ci did not install %s: check package.json", d.cli)
	}
	return nil
}

// env is the CDK CLI's environment: everything at the gateway, fake credentials,
// and nothing of the user's AWS profile.
func (d *deployer) env(region string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "CDK_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_ENDPOINT_URL="+d.endpoint,
		"AWS_REGION="+region,
		"AWS_DEFAULT_REGION="+region,
		"AWS_ACCESS_KEY_ID=amifleet-local",
		"AWS_SECRET_ACCESS_KEY=amifleet-local",
		"AWS_CONFIG_FILE="+filepath.Join(d.home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(d.home, "aws-credentials"),
		"CDK_DEFAULT_ACCOUNT="+Account,
		"CDK_DEFAULT_REGION="+region,
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20",
	)
}

// LocalCreateTimeoutSeconds is the create functions' timeout in the local cloud, where
// a create takes a second: Cleanup waits it out after a failed Parallel branch, as it
// waits out the stack's 120 s on AWS.
const LocalCreateTimeoutSeconds = 20

// synth builds and runs the CDK app once, into the assembly directory.
func (d *deployer) synth(ctx context.Context) error {
	err := runLogged(ctx, d.root, d.logw, d.env(DefaultRegion), d.cli, "synth", "--quiet",
		"--output", d.assembly, "-c", "local=true", "-c", "arch="+d.arch,
		"-c", "createTimeoutSeconds="+strconv.Itoa(LocalCreateTimeoutSeconds))
	if err != nil {
		return fmt.Errorf("cdk synth: %w", err)
	}
	return nil
}

func (d *deployer) bootstrap(ctx context.Context, region string) error {
	err := runLogged(ctx, d.root, d.logw, d.env(region), d.cli, "bootstrap", "--app", d.assembly,
		"aws://"+Account+"/"+region)
	if err != nil {
		return fmt.Errorf("cdk bootstrap in %s: %w", region, err)
	}
	return nil
}

func (d *deployer) deploy(ctx context.Context, region string) error {
	err := runLogged(ctx, d.root, d.logw, d.env(region), d.cli, "deploy", "--app", d.assembly,
		"--require-approval", "never", "--method=direct", "--progress", "events", StackName)
	if err != nil {
		return fmt.Errorf("cdk deploy in %s: %w", region, err)
	}
	return nil
}

// readStack reads the stack's outputs in region.
func (c *Cloud) readStack(ctx context.Context, region string) (Stack, error) {
	cfn := cloudformation.NewFromConfig(c.DirectConfig(region))
	out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(StackName)})
	if err != nil {
		return Stack{}, fmt.Errorf("reading the %s stack's outputs in %s: %w", StackName, region, err)
	}
	if len(out.Stacks) != 1 {
		return Stack{}, fmt.Errorf("%d stacks named %s in %s", len(out.Stacks), StackName, region)
	}
	s := Stack{Region: region, Outputs: map[string]string{}}
	for _, o := range out.Stacks[0].Outputs {
		s.Outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	s.PipelineARN, s.TeardownARN = s.Outputs[OutputPipelineARN], s.Outputs[OutputTeardownARN]
	s.RefreshARN = s.Outputs[OutputRefreshARN]
	if s.PipelineARN == "" || s.TeardownARN == "" {
		return Stack{}, errors.New("the deployed stack has no " + OutputPipelineARN + " or " + OutputTeardownARN + " output")
	}
	return s, nil
}

// missingNodePackages lists package.json's devDependencies that node_modules does not
// hold at their pinned version.
func missingNodePackages(root string) []string {
	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	b, err := os.ReadFile(filepath.Join(root, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return []string{"package.json unreadable"}
	}
	var missing []string
	for name, version := range pkg.DevDependencies {
		var got struct {
			Version string `json:"version"`
		}
		b, err := os.ReadFile(filepath.Join(root, "node_modules", name, "package.json"))
		if err != nil || json.Unmarshal(b, &got) != nil || got.Version != version {
			missing = append(missing, name+"@"+version)
		}
	}
	sort.Strings(missing)
	return missing
}
