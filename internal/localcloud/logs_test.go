package localcloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// logLambda builds testdata/loglambda into a directory of the test's and returns the
// directory and a deployment package holding it.
func logLambda(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", filepath.Join(dir, "bootstrap"), "./testdata/loglambda")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build loglambda: %v\n%s", err, out)
	}
	zip, err := zipBootstrap(filepath.Join(dir, "bootstrap"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, zip
}

var lambdaStreamName = regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$`)

// TestFunctionLogs deploys a function with CloudFormation, as the CDK does, with its
// own log group (LoggingConfig.LogGroup a Ref, which moto does not keep), invokes it
// through the gateway, and reads its lines back from moto's CloudWatch Logs: in the
// stack's group, one stream per process named as Lambda names them, each line as
// written, in order, stamped with the time it was written.
func TestFunctionLogs(t *testing.T) {
	_, pkg := logLambda(t)
	gwlog := &syncBuffer{}
	lc := startLocalCloud(t, GatewayOptions{LogWriter: gwlog})
	lc.createRole(t)
	ctx := context.Background()

	s3c := s3.NewFromConfig(lc.cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(cdkAssetsBucket)}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pkg)
	key := hex.EncodeToString(sum[:]) + ".zip"
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cdkAssetsBucket), Key: aws.String(key), Body: strings.NewReader(string(pkg))}); err != nil {
		t.Fatal(err)
	}
	template := fmt.Sprintf(`{"Resources": {
		"FnLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 30}},
		"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
			"FunctionName": "loglambda", "Runtime": "provided.al2023", "Handler": "bootstrap",
			"Role": %q, "Timeout": 10, "Code": {"S3Bucket": %q, "S3Key": %q},
			"LoggingConfig": {"LogFormat": "JSON", "LogGroup": {"Ref": "FnLogs"}}}}}}`, testRoleARN, cdkAssetsBucket, key)
	cfn := cloudformation.NewFromConfig(lc.cfg)
	if _, err := cfn.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("logs-test"), TemplateBody: aws.String(template)}); err != nil {
		t.Fatal(err)
	}
	res, err := cfn.DescribeStackResource(ctx, &cloudformation.DescribeStackResourceInput{StackName: aws.String("logs-test"), LogicalResourceId: aws.String("FnLogs")})
	if err != nil {
		t.Fatal(err)
	}
	group := aws.ToString(res.StackResourceDetail.PhysicalResourceId)
	if group == "" || group == defaultLogGroup("loglambda") {
		t.Fatalf("the stack's log group is %q: want a group of its own", group)
	}

	client := lambda.NewFromConfig(lc.cfg)
	invoke := func(payload string) *lambda.InvokeOutput {
		t.Helper()
		out, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("loglambda"), Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	start := time.Now().UnixMilli()
	// Two invocations in one process; the third makes it exit after a line without
	// a newline; the fourth runs in a new process.
	for _, p := range []string{`{"runId":"r1","lines":3}`, `{"runId":"r2","lines":2}`} {
		if out := invoke(p); out.FunctionError != nil || string(out.Payload) != `"logged"` {
			t.Fatalf("invoke %s: %s %s", p, aws.ToString(out.FunctionError), out.Payload)
		}
	}
	if out := invoke(`{"runId":"r3","lines":1,"stderr":"no newline","exit":true}`); out.FunctionError == nil {
		t.Fatalf("an exiting process answered %s", out.Payload)
	}
	invoke(`{"runId":"r4","lines":1}`)
	end := time.Now().UnixMilli()

	// The processes are alive or just gone: their lines arrive within the flush
	// interval.
	logs := cloudwatchlogs.NewFromConfig(lc.cfg)
	want := 3 + 2 + 1 + 1 + 1
	var events []logstypes.FilteredLogEvent
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		events = filterAll(ctx, t, logs, group)
		if len(events) >= want {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(events) != want {
		t.Fatalf("%d events in %s, want %d: %v\ngateway log:\n%s", len(events), group, want, events, gwlog.String())
	}
	streams := map[string][]logstypes.FilteredLogEvent{}
	var order []string
	for _, e := range events {
		s := aws.ToString(e.LogStreamName)
		if !lambdaStreamName.MatchString(s) {
			t.Errorf("stream %q is not named as Lambda names them", s)
		}
		if _, ok := streams[s]; !ok {
			order = append(order, s)
		}
		streams[s] = append(streams[s], e)
	}
	if len(streams) != 2 {
		t.Fatalf("%d streams, want one per process (2): %v", len(streams), order)
	}
	// The first stream is the first process's: the one with six events.
	slices.SortFunc(order, func(a, b string) int { return len(streams[b]) - len(streams[a]) })
	var got []string
	for _, s := range order {
		last := int64(0)
		for _, e := range streams[s] {
			ts := aws.ToInt64(e.Timestamp)
			if ts < start || ts > end+1000 {
				t.Errorf("event %q at %d: not between the first invocation (%d) and the last answer (%d)", aws.ToString(e.Message), ts, start, end)
			}
			if ts < last {
				t.Errorf("stream %s goes back in time at %q", s, aws.ToString(e.Message))
			}
			last = ts
			msg := aws.ToString(e.Message)
			var line struct {
				Msg   string `json:"msg"`
				RunID string `json:"runId"`
				Stage string `json:"stage"`
				N     int    `json:"n"`
			}
			if json.Unmarshal([]byte(msg), &line) != nil {
				got = append(got, "raw:"+msg)
				continue
			}
			if strings.HasSuffix(msg, "\n") || line.Msg != "line" || line.Stage != "Test" {
				t.Errorf("line %q is not the slog line as written", msg)
			}
			got = append(got, fmt.Sprintf("%s/%d", line.RunID, line.N))
		}
	}
	if w := []string{"r1/0", "r1/1", "r1/2", "r2/0", "r2/1", "r3/0", "raw:no newline", "r4/0"}; !slices.Equal(got, w) {
		t.Errorf("lines %v, want %v", got, w)
	}
	if strings.Contains(gwlog.String(), "function logs:") {
		t.Errorf("the gateway logged a logs problem:\n%s", gwlog.String())
	}
}

func filterAll(ctx context.Context, t *testing.T, logs *cloudwatchlogs.Client, group string) []logstypes.FilteredLogEvent {
	t.Helper()
	var all []logstypes.FilteredLogEvent
	var token *string
	for range 100 {
		out, err := logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String(group), NextToken: token})
		var missing *logstypes.ResourceNotFoundException
		if errors.As(err, &missing) {
			return nil // no stream yet
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out.Events...)
		if token = out.NextToken; token == nil {
			break
		}
	}
	return all
}

// TestFunctionLogsNeverBlock: with CloudWatch Logs unreachable, invocations answer as
// fast as without it, and the failure is logged once per stream, not once per batch.
func TestFunctionLogsNeverBlock(t *testing.T) {
	dir, _ := logLambda(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	gwlog := &syncBuffer{}
	shipper := newLogShipper(dead, testRegion, slog.New(slog.NewJSONHandler(gwlog, nil)))
	rt := NewRuntime(FunctionConfig{
		Name: "loglambda", CodeDir: dir, Timeout: 10 * time.Second,
		LogGroup: defaultLogGroup("loglambda"), Region: testRegion, logs: shipper,
	}, 1, nopWriter{})
	ctx := context.Background()
	var slowest time.Duration
	for i := range 4 {
		if i > 0 {
			time.Sleep(logFlushInterval + 100*time.Millisecond) // a flush, and its failure, between two invocations
		}
		start := time.Now()
		res, err := rt.Invoke(ctx, newRequestID(), []byte(`{"runId":"r","lines":50}`))
		if err != nil || res.FunctionError != "" {
			t.Fatalf("invoke: %v %s", err, res.Payload)
		}
		slowest = max(slowest, time.Since(start))
	}
	rt.Close()
	shipper.wait()
	if slowest > 2*time.Second {
		t.Errorf("an invocation took %s with CloudWatch Logs down", slowest)
	}
	if n := strings.Count(gwlog.String(), "CloudWatch Logs refused lines"); n != 1 {
		t.Errorf("%d error lines for one stream, want 1:\n%s", n, gwlog.String())
	}
}

// TestLogBatches: batches keep PutLogEvents' limits and the lines' order, timestamps
// never go back, an overlong line is cut, and a stream holding too much drops lines.
func TestLogBatches(t *testing.T) {
	ls := &logStream{}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var want []string
	for i := range 25000 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		if i == 100 {
			at = t0 // the clock stepped back
		}
		line := fmt.Sprintf("line %d", i)
		ls.add([]byte(line+"\n"), at)
		want = append(want, line)
	}
	big := strings.Repeat("x", 300<<10)
	for range 6 {
		ls.add([]byte(big), t0.Add(time.Minute))
		want = append(want, big[:maxMessageBytes])
	}
	ls.add([]byte("\n"), t0.Add(time.Minute)) // empty: CloudWatch Logs refuses it
	var got []string
	last := int64(0)
	batches := 0
	for batch := ls.take(); len(batch) > 0; batch = ls.take() {
		batches++
		size := 0
		for _, e := range batch {
			size += len(aws.ToString(e.Message)) + eventOverhead
			if ts := aws.ToInt64(e.Timestamp); ts < last {
				t.Fatalf("timestamp %d after %d", ts, last)
			} else {
				last = ts
			}
			got = append(got, aws.ToString(e.Message))
		}
		if len(batch) > maxBatchEvents || size > maxBatchBytes {
			t.Errorf("batch of %d events, %d bytes: over PutLogEvents' limits", len(batch), size)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%d lines came out of %d, or not in order", len(got), len(want))
	}
	if batches < 3 {
		t.Errorf("%d batches for 25,006 events: want at least 3", batches)
	}
	if ls.size != 0 || len(ls.pending) != 0 {
		t.Errorf("after taking all: size %d, %d pending", ls.size, len(ls.pending))
	}

	for range maxPendingBytes/maxMessageBytes + 2 {
		ls.add([]byte(big), t0)
	}
	if ls.dropped == 0 || ls.size > maxPendingBytes {
		t.Errorf("holding %d bytes, %d dropped: want at most %d held", ls.size, ls.dropped, maxPendingBytes)
	}
}

func TestTemplateLogGroup(t *testing.T) {
	physical := map[string]string{"FnLogs": "stack-FnLogs-ABC"}
	for _, tc := range []struct {
		body, want, err string
	}{
		{`{"Resources":{"Fn":{"Properties":{"LoggingConfig":{"LogGroup":{"Ref":"FnLogs"}}}}}}`, "stack-FnLogs-ABC", ""},
		{`{"Resources":{"Fn":{"Properties":{"LoggingConfig":{"LogGroup":"/my/group"}}}}}`, "/my/group", ""},
		{`{"Resources":{"Fn":{"Properties":{"Runtime":"provided.al2023"}}}}`, "", ""},
		{`{"Resources":{"Fn":{"Properties":{"LoggingConfig":{"LogGroup":{"Ref":"Other"}}}}}}`, "", "Other"},
		{`{"Resources":{"Fn":{"Properties":{"LoggingConfig":{"LogGroup":{"Fn::ImportValue":"x"}}}}}}`, "", "neither"},
		{`Resources: {}`, "", "not JSON"},
	} {
		got, err := templateLogGroup(tc.body, "Fn", physical)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q, %v; want %q, error with %q", tc.body, got, err, tc.want, tc.err)
		}
	}
	if s := logStreamName(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)); !lambdaStreamName.MatchString(s) || !strings.HasPrefix(s, "2026/03/04/") {
		t.Errorf("stream name %q", s)
	}
}
