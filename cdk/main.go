// Command cdk is amifleet's CDK app: it synthesizes the AmiFleet stack, which holds
// one amifleet.AmiFleet construct (package cdk/amifleet: the stage Lambdas, the
// Pipeline and Teardown state machines, their roles, logs and an optional schedule),
// which a team can add to its own Go CDK app instead. cdk.json at the repository root runs it; `make synth`,
// `make deploy` and `make destroy` drive it through the pinned CDK CLI.
//
// Context (-c key=value):
//
//	arch      arm64 (default) or x86_64: the Lambdas' architecture; the zips are read
//	          from build/<goarch>/ (`make build ARCH=arm64|amd64`)
//	schedule  an EventBridge Scheduler expression, e.g. "cron(0 6 * * ? *)", that
//	          starts the Pipeline with events/scheduled-input.json; none when unset
//	refreshSchedule  an EventBridge Scheduler expression, e.g. "cron(0 2 * * ? *)",
//	          that starts the Refresh with events/scheduled-refresh-input.json (a live
//	          run's runId); none when unset
//	local     "true" when deploying into the local cloud (no bootstrap version rule)
//	createTimeoutSeconds  the timeout of every function that creates something, which
//	          Cleanup waits out after a failed Parallel branch (default and most
//	          pipeline.CreateTimeoutSeconds; the local cloud deploys 20)
//	buildDir  where the zips are, relative to the repository root (default build/<goarch>)
//	region    synthesize for this region only, e.g. cn-north-1 or us-gov-west-1 (the
//	          CDK then resolves what differs by region, such as service principals);
//	          unset, the stack is environment-agnostic and deploys to any region of
//	          any partition (the local cloud deploys one synthesis to several regions)
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/amifleet/amifleet/cdk/amifleet"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

// StackName is the CloudFormation stack's name.
const StackName = "AmiFleet"

// cdk.json builds this program into build/ and runs it from the repository root,
// where the CLI's relative paths (CDK_OUTDIR, ...) and the zips are; `go run` in
// cdk/ would write cdk.out inside cdk/. The tests run in cdk/, one level down.

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	if _, err := newApp(app, "."); err != nil {
		fmt.Fprintln(os.Stderr, "amifleet cdk:", err)
		os.Exit(1)
	}
	app.Synth(nil)
}

// newApp adds the stack to app as the context asks, reading the zips and the
// scheduled input under root.
func newApp(app awscdk.App, root string) (*AmiFleetStack, error) {
	arch := contextString(app, "arch", amifleet.ArchARM64)
	local := contextString(app, "local", "false") == "true"
	schedule := contextString(app, "schedule", "")

	props := &AmiFleetStackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("amifleet: turns one EC2 instance into a load-balanced fleet (Lambdas + Step Functions)"),
		},
		AmiFleetProps: amifleet.AmiFleetProps{
			Architecture: arch,
			BuildDir:     underRoot(root, contextString(app, "buildDir", filepath.Join("build", amifleet.GoArch(arch)))),
			Schedule:     schedule,
		},
	}
	if v := contextString(app, "createTimeoutSeconds", ""); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < amifleet.MinCreateTimeoutSeconds || secs > pipeline.CreateTimeoutSeconds {
			return nil, fmt.Errorf("context createTimeoutSeconds=%q: want whole seconds from %d to %d", v, amifleet.MinCreateTimeoutSeconds, pipeline.CreateTimeoutSeconds)
		}
		props.CreateTimeoutSeconds = secs
	}
	if region := contextString(app, "region", ""); region != "" {
		props.Env = &awscdk.Environment{Region: jsii.String(region)}
	}
	if local {
		// The local cloud keeps no SSM parameter with the bootstrap version, and
		// updates fail on the rule that checks it.
		props.Synthesizer = awscdk.NewDefaultStackSynthesizer(&awscdk.DefaultStackSynthesizerProps{
			GenerateBootstrapVersionRule: jsii.Bool(false),
		})
	}
	if schedule != "" {
		input, err := os.ReadFile(filepath.Join(root, "events", "scheduled-input.json"))
		if err != nil {
			return nil, fmt.Errorf("schedule set: %w", err)
		}
		props.ScheduledInput = string(input)
	}
	if refresh := contextString(app, "refreshSchedule", ""); refresh != "" {
		input, err := os.ReadFile(filepath.Join(root, "events", "scheduled-refresh-input.json"))
		if err != nil {
			return nil, fmt.Errorf("refreshSchedule set: %w", err)
		}
		props.RefreshSchedule, props.RefreshScheduledInput = refresh, string(input)
	}
	return NewAmiFleetStack(app, StackName, props)
}

func contextString(app awscdk.App, key, def string) string {
	v := app.Node().TryGetContext(jsii.String(key))
	switch s := v.(type) {
	case string:
		if s != "" {
			return s
		}
	case bool:
		return fmt.Sprint(s)
	}
	return def
}

// underRoot resolves a path given relative to the repository root.
func underRoot(root, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(root, path)
}
