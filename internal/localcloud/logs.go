package localcloud

// Function output to CloudWatch Logs, as Lambda sends it: every line a bootstrap
// process writes goes to the function's log group in moto, in a log stream of its own
// per process named as Lambda names them (YYYY/MM/DD/[$LATEST]<32 hex>), each event
// stamped with the time the line was written. Lines are kept as written (the
// functions log slog JSON), batched within PutLogEvents' limits and sent on a short
// timer and when the process exits. Sending never holds up an invocation: a line is
// only appended to a buffer, and a failed call is logged once to the gateway's log
// and dropped.
//
// moto 5.2.1 does not keep a function's LoggingConfig, so the log group is found as
// CloudFormation set it: the function's LoggingConfig.LogGroup in its stack's
// template (a name, or a Ref to the stack's log group), else Lambda's default
// /aws/lambda/<FunctionName>.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// PutLogEvents' limits (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html).
const (
	maxBatchEvents   = 10000
	maxBatchBytes    = 1 << 20 // the sum of the messages' UTF-8 bytes plus eventOverhead each
	eventOverhead    = 26
	maxMessageBytes  = 256<<10 - eventOverhead
	logFlushInterval = 500 * time.Millisecond
	// maxPendingBytes bounds what one stream holds while moto is slow or down; lines
	// beyond it are dropped (and counted in the gateway's log).
	maxPendingBytes = 8 << 20
	// logCallTimeout bounds each CloudWatch Logs call.
	logCallTimeout = 10 * time.Second
	// logCloseTimeout bounds how long Close waits for the last lines to be sent.
	logCloseTimeout = 15 * time.Second
	// maxStackPages bounds the ListStacks pages read to find a function's stack.
	maxStackPages = 10
)

// logShipper sends the output of every function's processes to CloudWatch Logs.
type logShipper struct {
	logs *cloudwatchlogs.Client
	cfn  *cloudformation.Client
	log  *slog.Logger
	wg   sync.WaitGroup // one per open stream's sender
}

func newLogShipper(endpoint, region string, log *slog.Logger) *logShipper {
	cfg := AWSConfig(endpoint, region)
	return &logShipper{logs: cloudwatchlogs.NewFromConfig(cfg), cfn: cloudformation.NewFromConfig(cfg), log: log}
}

// wait waits, at most logCloseTimeout, for every stream that has been closed to send
// its last lines.
func (s *logShipper) wait() {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(logCloseTimeout):
		s.log.Warn("function logs: gave up waiting for the last lines to reach CloudWatch Logs", "waited", logCloseTimeout.String())
	}
}

// logStreamName is a stream name as Lambda makes them: the date, the version, and a
// random 32-hex-digit id of the execution environment.
func logStreamName(at time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return at.UTC().Format("2006/01/02") + "/[$LATEST]" + hex.EncodeToString(b[:])
}

// logStream is one process's log stream: lines are appended by the process's output
// writer and sent by the stream's own goroutine.
type logStream struct {
	s      *logShipper
	region string
	group  string
	name   string

	mu      sync.Mutex
	pending []logstypes.InputLogEvent
	size    int   // bytes of pending, as PutLogEvents counts them
	last    int64 // the last event's timestamp: events go out in order
	dropped int
	closed  bool

	wake chan struct{} // buffered: a batch is full
	done chan struct{} // closed by close
	// Only the sender goroutine touches these.
	created bool
	failed  bool // an error was logged already
}

// openStream starts a log stream in group for one process; close ends it.
func (s *logShipper) openStream(region, group string) *logStream {
	ls := &logStream{
		s: s, region: region, group: group, name: logStreamName(time.Now()),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	s.wg.Add(1)
	go ls.run()
	return ls
}

// add queues one line (its trailing newline dropped) stamped at; it never blocks on
// CloudWatch Logs.
func (ls *logStream) add(line []byte, at time.Time) {
	if ls == nil {
		return
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return // CloudWatch Logs refuses empty messages
	}
	if len(line) > maxMessageBytes {
		line = line[:maxMessageBytes]
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return
	}
	if ls.size+len(line)+eventOverhead > maxPendingBytes {
		ls.dropped++
		return
	}
	ts := max(at.UnixMilli(), ls.last)
	ls.last = ts
	ls.pending = append(ls.pending, logstypes.InputLogEvent{Message: aws.String(string(line)), Timestamp: aws.Int64(ts)})
	ls.size += len(line) + eventOverhead
	if len(ls.pending) >= maxBatchEvents || ls.size >= maxBatchBytes {
		select {
		case ls.wake <- struct{}{}:
		default:
		}
	}
}

// close takes no more lines; the sender sends what is left and ends.
func (ls *logStream) close() {
	if ls == nil {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if !ls.closed {
		ls.closed = true
		close(ls.done)
	}
}

func (ls *logStream) run() {
	defer ls.s.wg.Done()
	tick := time.NewTicker(logFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ls.wake:
		case <-ls.done:
			ls.flush()
			ls.mu.Lock()
			dropped := ls.dropped
			ls.mu.Unlock()
			if dropped > 0 {
				ls.s.log.Warn("function logs: lines dropped", "logGroup", ls.group, "logStream", ls.name, "lines", dropped)
			}
			return
		}
		ls.flush()
	}
}

// flush sends everything pending, a batch at a time; a batch that fails is dropped.
func (ls *logStream) flush() {
	for {
		batch := ls.take()
		if len(batch) == 0 {
			return
		}
		if err := ls.put(batch); err != nil {
			if !ls.failed {
				ls.failed = true
				ls.s.log.Error("function logs: CloudWatch Logs refused lines; this stream's later failures are not logged",
					"logGroup", ls.group, "logStream", ls.name, "lines", len(batch), "error", err.Error())
			}
		}
	}
}

// take removes one PutLogEvents batch from pending.
func (ls *logStream) take() []logstypes.InputLogEvent {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	n, bytes := 0, 0
	for n < len(ls.pending) && n < maxBatchEvents {
		b := len(aws.ToString(ls.pending[n].Message)) + eventOverhead
		if bytes+b > maxBatchBytes {
			break
		}
		bytes += b
		n++
	}
	batch := ls.pending[:n:n]
	ls.pending = ls.pending[n:]
	ls.size -= bytes
	if len(ls.pending) == 0 {
		ls.pending = nil
	}
	return batch
}

func (ls *logStream) put(batch []logstypes.InputLogEvent) error {
	ctx, cancel := context.WithTimeout(context.Background(), logCallTimeout)
	defer cancel()
	region := func(o *cloudwatchlogs.Options) { o.Region = ls.region }
	if !ls.created {
		if err := ls.create(ctx, region); err != nil {
			return err
		}
		ls.created = true
	}
	_, err := ls.s.logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{
		LogGroupName: aws.String(ls.group), LogStreamName: aws.String(ls.name), LogEvents: batch,
	}, region)
	return err
}

// create makes the stream, and the group first when it is missing, as Lambda does
// for its default group.
func (ls *logStream) create(ctx context.Context, region func(*cloudwatchlogs.Options)) error {
	in := &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(ls.group), LogStreamName: aws.String(ls.name)}
	_, err := ls.s.logs.CreateLogStream(ctx, in, region)
	var missing *logstypes.ResourceNotFoundException
	if errors.As(err, &missing) {
		_, err = ls.s.logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(ls.group)}, region)
		var exists *logstypes.ResourceAlreadyExistsException
		if err != nil && !errors.As(err, &exists) {
			return err
		}
		_, err = ls.s.logs.CreateLogStream(ctx, in, region)
	}
	var exists *logstypes.ResourceAlreadyExistsException
	if errors.As(err, &exists) {
		return nil
	}
	return err
}

// defaultLogGroup is Lambda's log group for a function without LoggingConfig.LogGroup.
func defaultLogGroup(function string) string { return "/aws/lambda/" + function }

// logGroupOf is the log group a deployed function writes to: its LoggingConfig's,
// else the one its CloudFormation stack's template gives it, else Lambda's default.
func (s *logShipper) logGroupOf(ctx context.Context, region string, conf *lambdatypes.FunctionConfiguration) string {
	name := aws.ToString(conf.FunctionName)
	if conf.LoggingConfig != nil && aws.ToString(conf.LoggingConfig.LogGroup) != "" {
		return aws.ToString(conf.LoggingConfig.LogGroup)
	}
	group, err := s.stackLogGroup(ctx, region, name)
	if err != nil {
		s.log.Warn("function logs: cannot read the function's log group from CloudFormation; using Lambda's default",
			"function", name, "logGroup", defaultLogGroup(name), "error", err.Error())
	}
	if group == "" {
		return defaultLogGroup(name)
	}
	return group
}

// stackLogGroup finds the stack that made the function and reads the function's
// LoggingConfig.LogGroup from its template; "" when no stack made it or the template
// sets none.
func (s *logShipper) stackLogGroup(ctx context.Context, region, function string) (string, error) {
	opt := func(o *cloudformation.Options) { o.Region = region }
	var token *string
	for range maxStackPages {
		page, err := s.cfn.ListStacks(ctx, &cloudformation.ListStacksInput{NextToken: token}, opt)
		if err != nil {
			return "", fmt.Errorf("list stacks: %w", err)
		}
		for _, st := range page.StackSummaries {
			if st.StackStatus == cfntypes.StackStatusDeleteComplete {
				continue
			}
			stack := aws.ToString(st.StackId)
			res, err := s.cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String(stack)}, opt)
			if err != nil {
				return "", fmt.Errorf("describe stack resources of %s: %w", aws.ToString(st.StackName), err)
			}
			physical := map[string]string{}
			logical := ""
			for _, r := range res.StackResources {
				physical[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
				if aws.ToString(r.ResourceType) == "AWS::Lambda::Function" && aws.ToString(r.PhysicalResourceId) == function {
					logical = aws.ToString(r.LogicalResourceId)
				}
			}
			if logical == "" {
				continue
			}
			tpl, err := s.cfn.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String(stack)}, opt)
			if err != nil {
				return "", fmt.Errorf("get template of %s: %w", aws.ToString(st.StackName), err)
			}
			return templateLogGroup(aws.ToString(tpl.TemplateBody), logical, physical)
		}
		if token = page.NextToken; token == nil {
			return "", nil
		}
	}
	return "", fmt.Errorf("more than %d pages of stacks", maxStackPages)
}

// templateLogGroup reads Resources.<logical>.Properties.LoggingConfig.LogGroup from a
// JSON template: a name, or a Ref to a resource of the stack (physical names by
// logical id).
func templateLogGroup(body, logical string, physical map[string]string) (string, error) {
	var tpl struct {
		Resources map[string]struct {
			Properties struct {
				LoggingConfig struct {
					LogGroup json.RawMessage
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &tpl); err != nil {
		return "", fmt.Errorf("template is not JSON: %w", err)
	}
	raw := tpl.Resources[logical].Properties.LoggingConfig.LogGroup
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return name, nil
	}
	var ref struct{ Ref string }
	if json.Unmarshal(raw, &ref) == nil && ref.Ref != "" {
		if p := physical[ref.Ref]; p != "" {
			return p, nil
		}
		return "", fmt.Errorf("LoggingConfig.LogGroup of %s refers to %s, which the stack does not hold", logical, ref.Ref)
	}
	return "", fmt.Errorf("LoggingConfig.LogGroup of %s is neither a name nor a Ref: %s", logical, raw)
}
