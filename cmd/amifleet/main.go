// Command amifleet starts, follows and tears down amifleet runs: the Pipeline
// state machine that turns one EC2 instance into a load-balanced fleet. It is the
// CI way in (the console and schedules are the others; see docs/cli.md).
//
// Exit codes: 0 succeeded, 1 the run failed (its cause printed) or an AWS call
// failed, 2 bad usage or input (nothing started), 3 timed out or aborted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/amifleet/amifleet/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return cli.ExitOK
	}
	var ee *cli.ExitError
	if !errors.As(err, &ee) {
		// What a command's RunE returns is an ExitError (failedCalls makes the
		// rest, the AWS calls that failed, exit 1): this is cobra's own (unknown
		// command or flag, a flag's bad value, wrong number of arguments).
		fmt.Fprintf(stderr, "amifleet: %v\nSee 'amifleet --help'.\n", err)
		return cli.ExitUsage
	}
	if ee.Err != nil {
		fmt.Fprintf(stderr, "amifleet: %v\n", ee.Err)
	}
	return ee.Code
}
