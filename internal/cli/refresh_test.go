package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRefreshRefusesBadInputBeforeAnyCall: a refresh whose input is wrong on its own,
// or names another run, exits 2 naming the field; nothing is called (the Runner has
// no AWS clients at all).
func TestRefreshRefusesBadInputBeforeAnyCall(t *testing.T) {
	r := &Runner{}
	for _, c := range []struct {
		runID, input, says string
	}{
		{"Not A Run", ``, "run id"},
		{"web", `{"runId": "other"}`, "runId"},
		{"web", `{"pageTemplate": "no hostname"}`, "pageTemplate"},
		{"web", `{"replicaCount": 3}`, "replicaCount"},
		{"web", `[1, 2]`, "refresh input"},
	} {
		err := r.Refresh(context.Background(), c.runID, []byte(c.input), false, time.Minute)
		var exit *ExitError
		if !errors.As(err, &exit) || exit.Code != ExitUsage || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Refresh(%q, %s) = %v; want exit 2 saying %s", c.runID, c.input, err, c.says)
		}
	}
}
