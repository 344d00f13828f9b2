package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/amifleet/amifleet/internal/stages"
	"github.com/spf13/cobra"
)

func planCmd(g *globals) *cobra.Command {
	var (
		inputFile string
		opts      cli.RunOptions
		replicas  int
	)
	cmd := &cobra.Command{
		Use:   "plan [--input FILE] [--name NAME] [--region REGION]",
		Short: "Print what a run would create and cost, and start nothing (the same as run --dry-run)",
		Long: `plan validates the input as run does, then runs the pipeline's Validate stage here,
with your AWS credentials: it only reads (the subnets, the image, the instance type's
zones, the vCPU quota), so the plan says what the run's own Validate would. It prints
the input with the defaults filled in, the run id, every resource the run would
create with its name and count, the zones the instances would go to, and the cost
estimate: per hour while the fleet lives, and for one run until Verify, from a dated
table of on-demand prices (docs/pricing.md).

Exit codes: 0 the run would start; 2 it would be refused (bad input, or an estimate
over maxHourlyCost: both figures are named); 1 an AWS call failed. No execution is
started either way.`,
		Example: `  amifleet plan --input events/console-input.json
  amifleet run --dry-run --input events/ci-input.json --replicas 3 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := readRunInput(cmd, inputFile, &opts, replicas); err != nil {
				return err
			}
			plan, err := cli.PrepareRun(opts, time.Now(), nil)
			if err != nil {
				return err
			}
			return g.plan(cmd.Context(), plan)
		},
	}
	runInputFlags(cmd, &inputFile, &replicas, &opts)
	return cmd
}

// runInputFlags declares the flags that say what a run is, for run and plan alike:
// readRunInput reads the first two, PrepareRun the others.
func runInputFlags(cmd *cobra.Command, inputFile *string, replicas *int, opts *cli.RunOptions) {
	f := cmd.Flags()
	f.StringVarP(inputFile, "input", "i", "", "input file: the pipeline's configuration as JSON (- reads stdin; none: the defaults; an empty file is refused, {} asks for the defaults)")
	f.IntVar(replicas, "replicas", 0, "replicaCount: instances launched from the image")
	f.StringVar(&opts.InstanceType, "instance-type", "", "instanceType of every instance")
	f.StringVar(&opts.Name, "name", "", "execution name, and so the run id and the resources' names (default "+cli.ExecutionNameForm+"); characters outside A-Z a-z 0-9 - _ become -")
}

// readRunInput reads --input (a file, or - for stdin) and --replicas into opts,
// for run and plan alike.
func readRunInput(cmd *cobra.Command, inputFile string, opts *cli.RunOptions, replicas int) error {
	if inputFile != "" {
		var err error
		if inputFile == "-" {
			opts.Input, err = io.ReadAll(cmd.InOrStdin())
		} else {
			opts.Input, err = os.ReadFile(inputFile)
		}
		if err != nil {
			return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("--input: %w", err)}
		}
		opts.InputName = inputFile
	}
	if cmd.Flags().Changed("replicas") {
		opts.Replicas = &replicas
	}
	return nil
}

// plan prints what the prepared run would create and cost: the Validate stage runs
// here, with the CLI's AWS configuration, in its region.
func (g *globals) plan(ctx context.Context, plan cli.RunPlan) error {
	r, err := g.runner(ctx)
	if err != nil {
		return err
	}
	cfg, err := loadAWSConfig(ctx, g.awsOptions()...)
	if err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("AWS configuration: %w", err)}
	}
	return r.Plan(ctx, plan, stages.New(cfg), cfg.Region)
}
