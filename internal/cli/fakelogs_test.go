package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

// fakeLogEvent is a line in a fake log group; after hides it from the group's first
// after FilterLogEvents calls (lines that arrive while a run goes on).
type fakeLogEvent struct {
	id      string
	at      int64
	message string
	after   int
}

// fakeLogs is a hand-written CloudWatch Logs: FilterLogEvents over groups of lines,
// in time order, paged, with the one filter pattern the CLI sends ({ $.runId = "X" })
// applied as on AWS, or ignored as by the local cloud's moto.
type fakeLogs struct {
	mu            sync.Mutex
	groups        map[string][]fakeLogEvent
	pageSize      int
	ignorePattern bool
	calls         []*cloudwatchlogs.FilterLogEventsInput
	groupCalls    map[string]int
	err           error
}

func newFakeLogs() *fakeLogs {
	return &fakeLogs{groups: map[string][]fakeLogEvent{}, groupCalls: map[string]int{}}
}

// add puts a line in group at the time at (ms) with an id of its own.
func (f *fakeLogs) add(group string, at int64, message string, after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, es := range f.groups {
		n += len(es)
	}
	f.groups[group] = append(f.groups[group], fakeLogEvent{id: strconv.Itoa(n + 1), at: at, message: message, after: after})
}

var runIDPattern = regexp.MustCompile(`^\{ \$\.runId = "([^"]*)" \}$`)

func (f *fakeLogs) FilterLogEvents(_ context.Context, in *cloudwatchlogs.FilterLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.FilterLogEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *in
	f.calls = append(f.calls, &cp)
	if f.err != nil {
		return nil, f.err
	}
	name := aws.ToString(in.LogGroupName)
	events, ok := f.groups[name]
	if !ok {
		return nil, &logstypes.ResourceNotFoundException{Message: aws.String("The specified log group does not exist.")}
	}
	f.groupCalls[name]++
	want := ""
	if p := aws.ToString(in.FilterPattern); p != "" && !f.ignorePattern {
		m := runIDPattern.FindStringSubmatch(p)
		if m == nil {
			return nil, &logstypes.InvalidParameterException{Message: aws.String("fake: unknown filter pattern " + p)}
		}
		want = m[1]
	}
	var match []logstypes.FilteredLogEvent
	for _, e := range events {
		if e.after >= f.groupCalls[name] || (in.StartTime != nil && e.at < *in.StartTime) {
			continue
		}
		if want != "" {
			var fields map[string]any
			if json.Unmarshal([]byte(e.message), &fields) != nil || fields["runId"] != want {
				continue
			}
		}
		match = append(match, logstypes.FilteredLogEvent{EventId: aws.String(e.id), Timestamp: aws.Int64(e.at), Message: aws.String(e.message), LogStreamName: aws.String("2026/11/27/[$LATEST]0123")})
	}
	from := 0
	if in.NextToken != nil {
		from, _ = strconv.Atoi(*in.NextToken)
	}
	size := len(match)
	if f.pageSize > 0 {
		size = f.pageSize
	}
	to := min(from+size, len(match))
	out := &cloudwatchlogs.FilterLogEventsOutput{Events: match[from:to]}
	if to < len(match) {
		out.NextToken = aws.String(strconv.Itoa(to))
	}
	return out, nil
}
