package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/amifleet/amifleet/internal/cli"
	"github.com/spf13/cobra"
)

// An error a command returns exits 1 (an AWS call that failed), 3 when Ctrl-C or a
// deadline cut the call short, and keeps its own code when it has one.
func TestCommandErrorsExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("operation error SFN: DescribeExecution: %w", errors.New("connection refused")), cli.ExitFailed},
		{fmt.Errorf("operation error SFN: DescribeExecution: %w", context.Canceled), cli.ExitTimeout},
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), cli.ExitTimeout},
		{&cli.ExitError{Code: cli.ExitUsage, Err: errors.New("bad input")}, cli.ExitUsage},
	} {
		root := &cobra.Command{Use: "root"}
		root.AddCommand(&cobra.Command{Use: "sub", RunE: func(*cobra.Command, []string) error { return tc.err }})
		awsFailuresExit1(root)
		err := root.Commands()[0].RunE(root.Commands()[0], nil)
		var ee *cli.ExitError
		if !errors.As(err, &ee) || ee.Code != tc.want {
			t.Errorf("%v: exit %v, want %d", tc.err, err, tc.want)
		}
	}
}
