package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/spf13/cobra"
)

// globals are the flags every command takes.
type globals struct {
	stack, pipelineARN, teardownARN, refreshARN string
	region, profile, output                     string
	pollInterval                                time.Duration
	stdout, stderr                              io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "amifleet",
		Short: "Turn one EC2 instance into a load-balanced fleet, through Step Functions",
		Long: `amifleet starts the Pipeline state machine (deployed by the CDK app), follows it,
and tears its fleet down.

The state machines are found from the stack's outputs (--stack), or given with
--pipeline-arn/--teardown-arn or AMIFLEET_PIPELINE_ARN/AMIFLEET_TEARDOWN_ARN.
AWS_REGION (or --region), AWS_PROFILE (or --profile) and AWS_ENDPOINT_URL are
honoured as by every AWS SDK tool.

Exit codes: 0 succeeded, 1 the run failed (its cause printed) or an AWS call
failed, 2 bad usage or input (nothing started), 3 timed out or aborted.`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != cli.FormatText && g.output != cli.FormatJSON && g.output != cli.FormatJSONL {
				return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("--output %q: want text, json or jsonl", g.output)}
			}
			if g.pollInterval <= 0 {
				return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("--poll-interval must be positive")}
			}
			// A --timeout of 0 or less would not bound the wait: refuse it rather
			// than wait for the default.
			if d, err := cmd.Flags().GetDuration("timeout"); err == nil && d <= 0 {
				return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("--timeout %s: want a positive duration, such as 30m or 2h", d)}
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}")
	// `amifleet completion bash|zsh|fish|powershell` is cobra's own command.
	root.CompletionOptions.DisableDefaultCmd = false
	f := root.PersistentFlags()
	f.StringVar(&g.stack, "stack", cli.DefaultStack, "CloudFormation stack whose outputs name the state machines")
	f.StringVar(&g.pipelineARN, "pipeline-arn", os.Getenv("AMIFLEET_PIPELINE_ARN"), "Pipeline state machine ARN (env AMIFLEET_PIPELINE_ARN; default from the stack)")
	f.StringVar(&g.teardownARN, "teardown-arn", os.Getenv("AMIFLEET_TEARDOWN_ARN"), "Teardown state machine ARN (env AMIFLEET_TEARDOWN_ARN; default from the stack)")
	f.StringVar(&g.refreshARN, "refresh-arn", os.Getenv("AMIFLEET_REFRESH_ARN"), "Refresh state machine ARN (env AMIFLEET_REFRESH_ARN; default from the stack)")
	f.StringVar(&g.region, "region", "", "AWS region (default AWS_REGION or the profile's)")
	f.StringVar(&g.profile, "profile", "", "AWS shared-config profile for every AWS call (default AWS_PROFILE, or the default profile)")
	f.StringVarP(&g.output, "output", "o", cli.FormatText, "text; json: one JSON document on stdout, progress on stderr; jsonl: one JSON object per line as it happens (type event, then the result)")
	f.DurationVar(&g.pollInterval, "poll-interval", cli.DefaultPollInterval, "how often a wait reads the execution's history")

	root.AddCommand(runCmd(g), watchCmd(g), statusCmd(g), outputsCmd(g), verifyCmd(g), listCmd(g), teardownCmd(g))
	root.AddCommand(localCmd(g)) // the local cloud: local.go
	root.AddCommand(versionCmd(g))
	root.AddCommand(abortCmd(g))
	root.AddCommand(logsCmd(g))
	root.AddCommand(planCmd(g))
	root.AddCommand(refreshCmd(g))
	awsFailuresExit1(root)
	return root
}

// awsFailuresExit1 makes every error that a command's RunE returns, and that is
// not an ExitError already, exit 1: the commands turn usage and input errors into
// ExitErrors with ExitUsage themselves, so what is left is an AWS call that failed
// (no credentials, the endpoint unreachable, throttled past the retries), whose
// message names the call ("operation error SFN: DescribeExecution, ..."); one cut
// short by Ctrl-C exits 3, aborted.
func awsFailuresExit1(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		awsFailuresExit1(sub)
	}
	run := cmd.RunE
	if run == nil {
		return
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		var ee *cli.ExitError
		switch {
		case err == nil || errors.As(err, &ee):
			return err
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			// Ctrl-C (or a deadline) in the middle of an AWS call: aborted.
			return &cli.ExitError{Code: cli.ExitTimeout, Err: err}
		}
		return &cli.ExitError{Code: cli.ExitFailed, Err: err}
	}
}

// loadAWSConfig loads the SDK's configuration; a test replaces it to see the options.
var loadAWSConfig = config.LoadDefaultConfig

// awsOptions are the global flags' options for the AWS configuration.
func (g *globals) awsOptions() []func(*config.LoadOptions) error {
	var opts []func(*config.LoadOptions) error
	if g.region != "" {
		opts = append(opts, config.WithRegion(g.region))
	}
	if g.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(g.profile))
	}
	return opts
}

// runner connects to AWS. Nothing is called yet: the first call is the command's.
func (g *globals) runner(ctx context.Context) (*cli.Runner, error) {
	cfg, err := loadAWSConfig(ctx, g.awsOptions()...)
	if err != nil {
		return nil, &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("AWS configuration: %w", err)}
	}
	if cfg.Region == "" {
		return nil, &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("no AWS region: set AWS_REGION, the profile's region, or --region")}
	}
	return &cli.Runner{
		SFN:            sfn.NewFromConfig(cfg),
		CloudWatchLogs: cloudwatchlogs.NewFromConfig(cfg),
		Runs:           dynamodb.NewFromConfig(cfg),
		Machines: &cli.Machines{
			PipelineARN: g.pipelineARN,
			TeardownARN: g.teardownARN,
			RefreshARN:  g.refreshARN,
			Stack:       g.stack,
			CFN:         cloudformation.NewFromConfig(cfg),
		},
		Stdout:       g.stdout,
		Stderr:       g.stderr,
		Format:       g.output,
		PollInterval: g.pollInterval,
	}, nil
}

// exactArgs is cobra.ExactArgs(1) with the argument's name in the message.
func exactArgs(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("want one %s, got %d arguments", what, len(args))}
		}
		return nil
	}
}

func runCmd(g *globals) *cobra.Command {
	var (
		inputFile string
		opts      cli.RunOptions
		replicas  int
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "run [--input FILE] [flags]",
		Short: "Start the Pipeline (or follow the execution that already has --name)",
		Long: `run validates the input here, as the pipeline's Validate stage will (bad input
exits 2 naming the field, and nothing is started), then starts the Pipeline.

With --name, a second run with the same name starts nothing: it follows the
first (so a CI retry cannot start a second fleet). With --wait it follows the
execution to its end and prints the load balancer's URL. With --dry-run it starts
nothing and prints the plan and its cost instead (amifleet plan).`,
		Example: `  amifleet run --input events/ci-input.json --replicas 3 --wait
  amifleet run --name "$GITHUB_REPOSITORY-$GITHUB_SHA-$GITHUB_RUN_ATTEMPT" --wait --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := readRunInput(cmd, inputFile, &opts, replicas); err != nil {
				return err
			}
			plan, err := cli.PrepareRun(opts, time.Now(), nil)
			if err != nil {
				return err
			}
			if dryRun {
				return g.plan(cmd.Context(), plan) // plan.go
			}
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Run(cmd.Context(), plan)
		},
	}
	runInputFlags(cmd, &inputFile, &replicas, &opts) // plan.go
	f := cmd.Flags()
	f.BoolVar(&opts.Wait, "wait", false, "follow the execution to its end")
	f.BoolVar(&dryRun, "dry-run", false, "start nothing: print what the run would create and cost (amifleet plan)")
	f.DurationVar(&opts.Timeout, "timeout", cli.DefaultTimeout, "with --wait: give up waiting after this long (exit 3; the execution goes on)")
	return cmd
}

func watchCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "watch EXECUTION",
		Short: "Follow an execution (name or ARN) live: the stages as they start, succeed, retry or fail",
		Args:  exactArgs("execution name or ARN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Watch(cmd.Context(), args[0], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", cli.DefaultTimeout, "give up waiting after this long (exit 3)")
	return cmd
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status EXECUTION",
		Short: "Print an execution's status (exit code as for run; a running one is 0)",
		Args:  exactArgs("execution name or ARN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Status(cmd.Context(), args[0])
		},
	}
}

func outputsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "outputs EXECUTION",
		Short: "Print what a succeeded run created, and its load balancer's URL",
		Args:  exactArgs("execution name or ARN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Outputs(cmd.Context(), args[0])
		},
	}
}

func verifyCmd(g *globals) *cobra.Command {
	var (
		requests int
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify EXECUTION",
		Short: "Fetch a succeeded run's pages from here through its load balancer: every answer 200, distinct hostnames",
		Long: "verify sends GETs to the run's load balancer from this machine, as the Verify stage does from its\n" +
			"function, and passes when every answer is 200 and enough distinct instances answered. Use it for a\n" +
			"fleet whose httpCidrs admit only your ranges: a Lambda outside a VPC cannot look there. Exit 0 passed,\n" +
			"1 failed. HTTP_PROXY applies (the local cloud's gateway, for its load balancers' names).",
		Args: exactArgs("execution name or ARN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Verify(cmd.Context(), args[0], cli.VerifyOptions{Requests: requests, Timeout: timeout})
		},
	}
	cmd.Flags().IntVar(&requests, "requests", 0, "how many GETs (default: the run's config.verify.requests)")
	cmd.Flags().DurationVar(&timeout, "request-timeout", 0, "each GET's timeout (default: the run's config.verify.timeoutSeconds)")
	return cmd
}

func listCmd(g *globals) *cobra.Command {
	var max int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the Pipeline's recent executions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.List(cmd.Context(), max)
		},
	}
	cmd.Flags().IntVar(&max, "max", 20, "how many executions")
	return cmd
}

func abortCmd(g *globals) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "abort EXECUTION [--wait]",
		Short: "Stop a running execution and start the Teardown of its run (stopping it in the console would leave its resources)",
		Args:  exactArgs("execution (name or ARN)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Abort(cmd.Context(), args[0], wait, timeout)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "follow the teardown to its end")
	f.DurationVar(&timeout, "timeout", cli.DefaultTimeout, "with --wait: give up waiting after this long (exit 3)")
	return cmd
}

func teardownCmd(g *globals) *cobra.Command {
	var (
		runID   string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "teardown --run-id ID [--wait]",
		Short: "Start the Teardown state machine: delete everything tagged with the run id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.CheckRunID(runID); err != nil {
				return err
			}
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Teardown(cmd.Context(), runID, wait, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&runID, "run-id", "", "the run's id (amifleet:run-id tag; printed by run and outputs)")
	f.BoolVar(&wait, "wait", false, "follow the teardown to its end")
	f.DurationVar(&timeout, "timeout", cli.DefaultTimeout, "with --wait: give up waiting after this long (exit 3)")
	return cmd
}

func refreshCmd(g *globals) *cobra.Command {
	var (
		runID, inputFile string
		wait             bool
		timeout          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "refresh --run-id ID [--input FILE] [--wait]",
		Short: "Start the Refresh state machine: roll a live run onto a new image, behind the same address",
		Long: `refresh bakes a new image for a live run (from the latest Amazon Linux, or the
input's imageId), launches a new generation of replicas from it behind the same load
balancer, and once they are healthy drains and deletes the old generation: no
request fails on the way. A refresh that fails removes only what it made; the old
generation keeps serving. One refresh holds a run at a time: a second one is
refused (RefreshInProgress).

The input (JSON) may change the new generation's imageId, instanceType,
pageTemplate and poll settings; its runId, if given, must be --run-id's.`,
		Example: `  amifleet refresh --run-id web --wait
  amifleet refresh --run-id web --input events/refresh-input.json --wait --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.CheckRunID(runID); err != nil {
				return err
			}
			var input []byte
			if inputFile != "" {
				b, err := os.ReadFile(inputFile)
				if err != nil {
					return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("--input: %w", err)}
				}
				input = b
			}
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Refresh(cmd.Context(), runID, input, wait, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&runID, "run-id", "", "the live run to refresh (amifleet:run-id tag; printed by run and outputs)")
	f.StringVar(&inputFile, "input", "", "JSON file with the refresh's input (events/refresh-input.json)")
	f.BoolVar(&wait, "wait", false, "follow the refresh to its end")
	f.DurationVar(&timeout, "timeout", cli.DefaultTimeout, "with --wait: give up waiting after this long (exit 3; the refresh goes on)")
	return cmd
}
