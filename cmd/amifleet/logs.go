package main

import (
	"github.com/amifleet/amifleet/internal/cli"
	"github.com/spf13/cobra"
)

func logsCmd(g *globals) *cobra.Command {
	var opts cli.LogsOptions
	cmd := &cobra.Command{
		Use:   "logs RUN [--follow] [--stage S] [--since D]",
		Short: "Print a run's lines from every function's CloudWatch log group, in time order",
		Long: `logs prints the lines that the stage functions logged for one run, read from each
function's CloudWatch log group (the stack's <Stage>LogGroupName outputs) and
filtered by the run id, merged in time order. RUN is an execution's name or ARN,
or a run id.

Text output shows time, stage, level, message and the other fields; with
--output json or jsonl each line is printed as the function wrote it (one JSON
object per line). --follow keeps reading every --poll-interval until the
execution has ended and one more read found nothing new (or --timeout, exit 3).`,
		Example: `  amifleet logs 261127-110304-0a0b
  amifleet logs demo --stage LaunchBase --output json
  amifleet logs "$NAME" --follow`,
		Args: exactArgs("execution (name or ARN) or run id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.CheckLogsOptions(opts); err != nil {
				return err
			}
			r, err := g.runner(cmd.Context())
			if err != nil {
				return err
			}
			return r.Logs(cmd.Context(), args[0], opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines until the execution has ended")
	f.StringVar(&opts.Stage, "stage", "", "only this function's lines (Validate, LaunchBase, ..., Verify, Cleanup)")
	f.DurationVar(&opts.Since, "since", 0, "only lines no older than this, such as 30m (default: from the execution's start)")
	f.DurationVar(&opts.Timeout, "timeout", cli.DefaultTimeout, "with --follow: give up after this long (exit 3)")
	return cmd
}
