package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/spf13/cobra"
)

// localFlags are what every `local` subcommand that starts the cloud takes; the
// global --region (default us-east-1 here) is where the stack is deployed.
type localFlags struct {
	port    int
	lenient string
}

func (lf *localFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&lf.port, "port", localcloud.DefaultGatewayPort, "the local cloud's endpoint port on 127.0.0.1")
	cmd.Flags().StringVar(&lf.lenient, "lenient", "", "turn off strict checks, to find which one bites (comma-separated: "+
		strings.Join(localcloud.StrictChecks(), ", ")+", or all); by default the local cloud refuses what AWS refuses")
}

func localCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "local",
		Short: "The local cloud: the real pipeline on this machine, no AWS account (moto + a gateway + the CDK stack)",
		Long: `local stands up the local cloud: moto's server as the AWS control plane, amifleet's
gateway in front of it on one endpoint (it runs the deployed Lambdas' real
bootstrap binaries), and the stack deployed into it with the CDK CLI.

It needs Python 3 with moto[server] 5.2.1, Node.js with npm (the CDK CLI pinned
in package.json), Go and make, and runs from the repository.`,
	}
	cmd.AddCommand(localUpCmd(g), localDownCmd(g), localRunCmd(g))
	return cmd
}

// startLocal starts the cloud, its log in a temporary file whose path it prints.
func startLocal(ctx context.Context, g *globals, lf localFlags, stateFile string) (*localcloud.Cloud, *os.File, error) {
	logf, err := os.CreateTemp("", "amifleet-local-*.log")
	if err != nil {
		return nil, nil, &cli.ExitError{Code: cli.ExitFailed, Err: err}
	}
	fmt.Fprintf(g.stderr, "amifleet local: the emulator's, the gateway's and the functions' log: %s\n", logf.Name())
	c, err := localcloud.Up(ctx, localcloud.Options{
		Port:      lf.port,
		Lenient:   lf.lenient,
		Region:    g.region, // empty: localcloud.DefaultRegion
		Progress:  g.stderr,
		LogWriter: logf,
		StateFile: stateFile,
		OnLoadBalancer: func(dnsName, localURL string) {
			fmt.Fprintf(g.stderr, "amifleet local: load balancer %s answers at %s (open it in a browser)\n", dnsName, localURL)
		},
	})
	if err != nil {
		logf.Close()
		code := cli.ExitFailed
		if ctx.Err() != nil {
			code = cli.ExitTimeout
		}
		return nil, nil, &cli.ExitError{Code: code, Err: fmt.Errorf("local cloud: %w", err)}
	}
	return c, logf, nil
}

func localUpCmd(g *globals) *cobra.Command {
	var lf localFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local cloud, deploy the stack, print the environment to use it; runs until Ctrl-C or `amifleet local down`",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, logf, err := startLocal(ctx, g, lf, localcloud.DefaultStateFile())
			if err != nil {
				return err
			}
			defer logf.Close()
			defer c.Down()
			fmt.Fprintf(g.stdout, "# the local cloud is up at %s; in another shell:\n", c.Endpoint)
			for _, kv := range c.Env(c.Region) {
				fmt.Fprintf(g.stdout, "export %s\n", kv)
			}
			fmt.Fprintf(g.stdout, "# then: amifleet run --input events/local-input.json --wait\n# stop it with Ctrl-C here, or: amifleet local down\n")
			<-ctx.Done()
			fmt.Fprintln(g.stderr, "amifleet local: stopping")
			if err := c.Down(); err != nil {
				return &cli.ExitError{Code: cli.ExitFailed, Err: err}
			}
			return nil
		},
	}
	lf.add(cmd)
	return cmd
}

func localDownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop the local cloud that `amifleet local up` started",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := localcloud.DefaultStateFile()
			stopped, err := localcloud.StopFromState(cmd.Context(), path)
			if err != nil {
				return &cli.ExitError{Code: cli.ExitFailed, Err: fmt.Errorf("local down: %w", err)}
			}
			if stopped {
				fmt.Fprintln(g.stdout, "amifleet local: stopped")
			} else {
				fmt.Fprintf(g.stdout, "amifleet local: nothing running (no live cloud in %s)\n", path)
			}
			return nil
		},
	}
}

func localRunCmd(g *globals) *cobra.Command {
	var (
		lf        localFlags
		inputFile string
		name      string
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run [--input FILE]",
		Short: "Start the local cloud, run the pipeline, print what it made, stop the cloud (what `make local` runs)",
		Long: `run starts the local cloud, runs the Pipeline with the input (events/local-input.json
by default) and follows its stages, prints the run's outputs and the resources
read back from the emulator by the run's tag, and stops the cloud. Verify is
"skipped" here: the emulator has no data plane to send HTTP requests to.

Exit codes are the CLI's: 0 succeeded, 1 the run failed, 2 bad usage or input,
3 timed out or interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			input, err := os.ReadFile(inputFile)
			if err != nil {
				return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("--input: %w", err)}
			}
			plan, err := cli.PrepareRun(cli.RunOptions{Input: input, InputName: inputFile, Name: name, Wait: true, Timeout: timeout}, time.Now(), nil)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, logf, err := startLocal(ctx, g, lf, localcloud.DefaultStateFile())
			if err != nil {
				return err
			}
			defer logf.Close()
			defer c.Down()
			runErr := runLocal(ctx, g, c, plan)
			if err := c.Down(); err != nil {
				fmt.Fprintf(g.stderr, "amifleet local: stopping: %v\n", err)
			}
			fmt.Fprintf(g.stderr, "amifleet local: stopped; the log is %s\n", logf.Name())
			return runErr
		},
	}
	lf.add(cmd)
	f := cmd.Flags()
	f.StringVarP(&inputFile, "input", "i", "events/local-input.json", "input file: the pipeline's configuration as JSON")
	f.StringVar(&name, "name", "", "execution name (default "+cli.ExecutionNameForm+")")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting after this long (exit 3)")
	return cmd
}

// runLocal runs the plan in the cloud's region, following it as `run --wait` does,
// then prints the resources read back by run tag and the verify result.
func runLocal(ctx context.Context, g *globals, c *localcloud.Cloud, plan cli.RunPlan) error {
	stack, _ := c.Stack(c.Region)
	client := sfn.NewFromConfig(c.Config(c.Region))
	r := &cli.Runner{
		SFN:          client,
		Machines:     &cli.Machines{PipelineARN: stack.PipelineARN, TeardownARN: stack.TeardownARN},
		Stdout:       g.stdout,
		Stderr:       g.stderr,
		Format:       cli.FormatText,
		PollInterval: time.Second,
	}
	runErr := r.Run(ctx, plan)

	// What follows reads only: with a fresh context, so that an interrupted run
	// still says what it left.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if runErr == nil {
		fmt.Fprintln(g.stdout, "\noutputs:")
		if err := r.Outputs(rctx, plan.Name); err != nil {
			fmt.Fprintf(g.stderr, "amifleet local: outputs: %v\n", err)
		}
	}
	fmt.Fprintln(g.stdout)
	res, err := localcloud.ReadRun(rctx, c.DirectConfig(c.Region), plan.RunID)
	if err != nil {
		fmt.Fprintf(g.stderr, "amifleet local: reading the run's resources back: %v\n", err)
	} else {
		res.Print(g.stdout)
	}
	arn := strings.Replace(stack.PipelineARN, ":stateMachine:", ":execution:", 1) + ":" + plan.Name
	if desc, err := client.DescribeExecution(rctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)}); err == nil {
		fmt.Fprintln(g.stdout, "\nverify:", verifyLine(desc))
		var doc pipeline.Document
		if desc.Output != nil && json.Unmarshal([]byte(*desc.Output), &doc) == nil && doc.Resources.LoadBalancer != nil {
			if u := c.Gateway.LoadBalancerLocalURL(doc.Resources.LoadBalancer.DNSName); u != "" {
				fmt.Fprintln(g.stdout, "local URL:", u, "(the load balancer, on this machine, while the local cloud runs)")
			}
		}
	}
	return runErr
}

// verifyLine says what Verify reported: "passed: 12 requests answered by h1, h2, h3".
func verifyLine(desc *sfn.DescribeExecutionOutput) string {
	var doc pipeline.Document
	if desc.Output == nil || json.Unmarshal([]byte(*desc.Output), &doc) != nil || doc.Resources.Verify == nil {
		return "not reached (" + string(desc.Status) + ")"
	}
	v := doc.Resources.Verify
	if v.Reason != "" {
		return v.Status + ": " + v.Reason
	}
	return fmt.Sprintf("%s: %d requests answered by %s", v.Status, v.Requests, strings.Join(v.Hostnames, ", "))
}
