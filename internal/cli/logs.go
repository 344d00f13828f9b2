package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// CloudWatchLogs is the part of the CloudWatch Logs API the CLI calls.
type CloudWatchLogs interface {
	FilterLogEvents(context.Context, *cloudwatchlogs.FilterLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error)
}

// OutputLogGroupSuffix ends the stack's output keys that name each function's log
// group: <Stage>LogGroupName.
const OutputLogGroupSuffix = "LogGroupName"

const (
	// maxLogPages bounds the FilterLogEvents pages read from one group in one poll.
	maxLogPages = 1000
	// followOverlap is how far back a --follow poll reads before the newest line it
	// has: a line may be ingested after a later one. Lines seen already are skipped.
	followOverlap = 5 * time.Minute
	// executionStartSlack is read before an execution's start: clocks differ.
	executionStartSlack = time.Minute
)

// logCallSpacing keeps FilterLogEvents under its account quota (5 calls per second
// per region) when a poll reads every function's group.
var logCallSpacing = 250 * time.Millisecond

// LogsOptions are the options of `amifleet logs`.
type LogsOptions struct {
	// Stage, when set, reads only that function's group (a pipeline.Functions name).
	Stage string
	// Since reads lines no older than this; 0 reads from the execution's start (from
	// the groups' beginning when RUN names no execution).
	Since time.Duration
	// Follow keeps reading until the execution has ended and a poll after that found
	// nothing new, or until Timeout.
	Follow  bool
	Timeout time.Duration
}

// CheckLogsOptions refuses a --stage that names no function and a negative --since,
// naming the flag.
func CheckLogsOptions(opts LogsOptions) error {
	if opts.Stage != "" && !slices.ContainsFunc(pipeline.Functions, func(f pipeline.Function) bool { return f.Name == opts.Stage }) {
		names := make([]string, 0, len(pipeline.Functions))
		for _, f := range pipeline.Functions {
			names = append(names, f.Name)
		}
		return exitf(ExitUsage, "--stage %q: want one of %s", opts.Stage, strings.Join(names, ", "))
	}
	if opts.Since < 0 {
		return exitf(ExitUsage, "--since %s: want a positive duration, such as 30m or 2h", opts.Since)
	}
	return nil
}

// logGroup is one function's log group.
type logGroup struct{ stage, name string }

// logLine is one line of a run, as read from CloudWatch Logs.
type logLine struct {
	id      string
	at      int64 // the event's timestamp, ms
	stage   string
	message string
	// written is the line's own time field (when the function wrote it, to the
	// nanosecond), else the event's timestamp: lines are merged by it.
	written time.Time
}

// Logs prints a run's lines from every function's CloudWatch log group (the stack's
// <Stage>LogGroupName outputs), in time order: run is an execution's name or ARN, or
// a run id. The groups are filtered by the run id, on the server with a JSON pattern
// and here again, so that only lines whose runId is the run's are printed.
func (r *Runner) Logs(ctx context.Context, run string, opts LogsOptions) error {
	if err := CheckLogsOptions(opts); err != nil {
		return err
	}
	if r.CloudWatchLogs == nil {
		return errors.New("no CloudWatch Logs client")
	}
	runID, execARN, started, err := r.logsRun(ctx, run)
	if err != nil {
		return err
	}
	groups, err := r.logGroups(ctx, opts.Stage)
	if err != nil {
		return err
	}
	var from int64
	switch {
	case opts.Since > 0:
		from = r.now().Add(-opts.Since).UnixMilli()
	case started != nil:
		from = started.Add(-executionStartSlack).UnixMilli()
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	seen := map[string]bool{}
	newest := from
	for {
		// An execution that had ended before this poll began has written all it will:
		// a poll that finds nothing new then is the last.
		over := false
		if opts.Follow && execARN != "" {
			desc, err := r.describe(ctx, execARN)
			if err != nil {
				return r.logsStopped(ctx, err)
			}
			over = ended(desc.Status)
		}
		pollFrom := from
		if len(seen) > 0 {
			pollFrom = max(from, newest-followOverlap.Milliseconds())
		}
		lines, err := r.readRunLines(ctx, groups, runID, pollFrom)
		if err != nil {
			return r.logsStopped(ctx, err)
		}
		fresh := 0
		for _, l := range lines {
			if seen[l.id] {
				continue
			}
			seen[l.id] = true
			newest = max(newest, l.at)
			fresh++
			if err := r.printLogLine(l); err != nil {
				return err
			}
		}
		if !opts.Follow || (over && fresh == 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return r.logsStopped(ctx, ctx.Err())
		case <-time.After(r.interval()):
		}
	}
}

// logsStopped turns the end of the wait's own deadline into exit 3; Ctrl-C and AWS
// errors go on as they are.
func (r *Runner) logsStopped(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		return exitf(ExitTimeout, "logs --follow: timed out; the execution goes on")
	}
	return err
}

// logsRun finds the run: an execution (its run id, ARN and start), or, for a run id
// that names no execution, the run id alone.
func (r *Runner) logsRun(ctx context.Context, run string) (runID, execARN string, started *time.Time, err error) {
	desc, res, err := r.lookup(ctx, run)
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) && ee.Code == ExitUsage && strings.HasPrefix(ee.Error(), "no execution ") && pipeline.IsRunID(run) {
			return run, "", nil, nil
		}
		return "", "", nil, err
	}
	if res.RunID == "" {
		return "", "", nil, exitf(ExitUsage, "%s: no run id in its input, output or name", res.Name)
	}
	return res.RunID, aws.ToString(desc.ExecutionArn), desc.StartDate, nil
}

// logGroups reads the functions' log groups from the stack's outputs, in
// pipeline.Functions order; with stage, only that function's.
func (r *Runner) logGroups(ctx context.Context, stage string) ([]logGroup, error) {
	outputs, err := r.Machines.stackOutputs(ctx)
	if err != nil {
		return nil, err
	}
	var groups []logGroup
	for _, f := range pipeline.Functions {
		if stage != "" && f.Name != stage {
			continue
		}
		name := outputs[f.Name+OutputLogGroupSuffix]
		if name == "" {
			return nil, exitf(ExitUsage, "stack %s has no output %s%s: deploy the stack of this version of amifleet (make deploy), whose outputs name the log groups",
				r.Machines.Stack, f.Name, OutputLogGroupSuffix)
		}
		groups = append(groups, logGroup{stage: f.Name, name: name})
	}
	return groups, nil
}

// stackOutputs are the stack's outputs, read once.
func (m *Machines) stackOutputs(ctx context.Context) (map[string]string, error) {
	m.once.Do(func() { m.outputs, m.err = m.readStack(ctx) })
	return m.outputs, m.err
}

// runFilterPattern selects the lines whose JSON field runId is runID (a run id holds
// only letters, digits and dashes: nothing to escape).
func runFilterPattern(runID string) string {
	return fmt.Sprintf(`{ $.runId = "%s" }`, runID)
}

// readRunLines reads every group's lines of the run from the time from (ms; 0: all),
// merged in time order. Lines whose runId is not runID are dropped here too: a
// CloudWatch Logs that ignores the pattern (the local cloud's) returns them.
func (r *Runner) readRunLines(ctx context.Context, groups []logGroup, runID string, from int64) ([]logLine, error) {
	var lines []logLine
	calls := 0
	for _, g := range groups {
		in := &cloudwatchlogs.FilterLogEventsInput{
			LogGroupName:  aws.String(g.name),
			FilterPattern: aws.String(runFilterPattern(runID)),
		}
		if from > 0 {
			in.StartTime = aws.Int64(from)
		}
		for page := 0; ; page++ {
			if page == maxLogPages {
				return nil, fmt.Errorf("log group %s: more than %d pages of lines for run %s: narrow it with --since or --stage", g.name, maxLogPages, runID)
			}
			if calls > 0 && logCallSpacing > 0 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(logCallSpacing):
				}
			}
			calls++
			out, err := r.CloudWatchLogs.FilterLogEvents(ctx, in)
			if err != nil {
				var missing *logstypes.ResourceNotFoundException
				if errors.As(err, &missing) {
					// The group has not been written yet (its function has not run):
					// no lines.
					break
				}
				return nil, fmt.Errorf("read log group %s: %w", g.name, err)
			}
			for _, e := range out.Events {
				written, ok := ofRun(aws.ToString(e.Message), runID)
				if !ok {
					continue
				}
				at := aws.ToInt64(e.Timestamp)
				if written.IsZero() {
					written = time.UnixMilli(at)
				}
				lines = append(lines, logLine{id: aws.ToString(e.EventId), at: at, stage: g.stage, message: aws.ToString(e.Message), written: written})
			}
			if out.NextToken == nil || aws.ToString(out.NextToken) == aws.ToString(in.NextToken) {
				break
			}
			in.NextToken = out.NextToken
		}
	}
	// By the time each line was written (functions of the pipeline's parallel branch
	// write at once); a stable sort keeps a group's order for equal times.
	slices.SortStableFunc(lines, func(a, b logLine) int { return a.written.Compare(b.written) })
	return lines, nil
}

// ofRun reports whether a line is a JSON object whose runId is runID, and gives its
// time field (zero when it has none).
func ofRun(message, runID string) (time.Time, bool) {
	var v struct {
		RunID *string `json:"runId"`
		Time  string  `json:"time"`
	}
	if json.Unmarshal([]byte(message), &v) != nil || v.RunID == nil || *v.RunID != runID {
		return time.Time{}, false
	}
	written, _ := time.Parse(time.RFC3339Nano, v.Time)
	return written, true
}

func (r *Runner) printLogLine(l logLine) error {
	var err error
	if r.json() {
		_, err = fmt.Fprintln(r.Stdout, strings.TrimRight(l.message, "\n"))
	} else {
		_, err = io.WriteString(r.Stdout, formatLogLine(l, r.loc())+"\n")
	}
	return err
}

// formatLogLine is a slog JSON line for people: time, stage, level, message, then the
// other fields as key=value in the order written (the run id, the same on every
// line, left out).
func formatLogLine(l logLine, loc *time.Location) string {
	at := time.UnixMilli(l.at)
	stage, level, msg := l.stage, "", ""
	var rest []string
	dec := json.NewDecoder(strings.NewReader(l.message))
	dec.UseNumber()
	if tok, err := dec.Token(); err == nil && tok == json.Delim('{') {
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			key, _ := tok.(string)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				break
			}
			var s string
			isString := json.Unmarshal(raw, &s) == nil
			switch key {
			case "time":
				if t, err := time.Parse(time.RFC3339Nano, s); isString && err == nil {
					at = t
				}
			case "level":
				level = s
			case "msg":
				msg = s
			case "stage":
				if isString && s != "" {
					stage = s
				}
			case "runId":
			default:
				rest = append(rest, key+"="+logValue(raw, s, isString))
			}
		}
	} else {
		msg = strings.TrimRight(l.message, "\n")
	}
	line := fmt.Sprintf("%s  %-23s  %-5s  %s", at.In(loc).Format("15:04:05.000"), stage, level, msg)
	if len(rest) > 0 {
		line += "  " + strings.Join(rest, " ")
	}
	return line
}

// logValue prints a field's value: a string bare unless it needs quotes, anything
// else as compact JSON.
func logValue(raw json.RawMessage, s string, isString bool) string {
	if isString {
		if s == "" || strings.ContainsAny(s, " \t\n\"=") {
			return strconv.Quote(s)
		}
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
