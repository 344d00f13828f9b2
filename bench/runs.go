package main

// Part 2: the pipeline in the local cloud, once per replica count, with the counts
// that show how it scales; part 3's timeline comes from the same histories.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/amifleet/amifleet/stepfunctions"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// runTimeout bounds one execution (200 replicas polled every second finish in a
// few minutes here).
const runTimeout = 20 * time.Minute

// RunResults are part 2's and 3's figures.
type RunResults struct {
	Measured time.Time `json:"measured"`
	// Up is how long the local cloud took to come up (build, moto, synth, deploy).
	UpSeconds float64 `json:"upSeconds"`
	Input     string  `json:"input"`
	// Parallel is the state machine's Parallel; ImageBranch and ALBBranch index
	// its branches.
	Parallel    Parallel    `json:"parallel"`
	ImageBranch int         `json:"imageBranch"`
	ALBBranch   int         `json:"albBranch"`
	Runs        []RunFigure `json:"runs"`
}

// RunFigure is one pipeline run.
type RunFigure struct {
	Replicas    int     `json:"replicas"`
	Execution   string  `json:"execution"`
	Status      string  `json:"status"`
	WallSeconds float64 `json:"wallSeconds"`
	// Transitions counts StateEntered events; LambdaInvocations the gateway's
	// lambda:Invoke count, and ScheduledTasks the history's Lambda task schedules
	// (the two agree unless an invoke was refused before reaching a function).
	Transitions       int `json:"transitions"`
	LambdaInvocations int `json:"lambdaInvocations"`
	ScheduledTasks    int `json:"scheduledTasks"`
	HistoryEvents     int `json:"historyEvents"`
	// Calls are the gateway's counts, service:Action, for this run alone.
	Calls map[string]int `json:"calls"`
	// Invocations per function (from the history's task schedules).
	Invocations map[string]int `json:"invocations"`
	// Instances is how many instances the run registered as targets; Subnets how
	// many distinct subnets its replicas were launched in.
	Instances int `json:"instances"`
	Subnets   int `json:"subnets"`
	// NetworkSubnets is how many subnets the run used (the ALB has a node in each).
	NetworkSubnets int `json:"networkSubnets"`
	// TaskSeconds is, per function, the time its Task states took.
	TaskSeconds map[string]float64 `json:"taskSeconds"`
	// Timeline of the Parallel's branches (seconds from the execution's start).
	Timeline        []Span  `json:"timeline"`
	TeardownStatus  string  `json:"teardownStatus"`
	TeardownSeconds float64 `json:"teardownSeconds"`
}

// benchInput is events/local-input.json with the replica count (and the cap above
// it) set, the verify skipped and polls every second: what every run is given.
func benchInput(local []byte, replicas int) (string, error) {
	var in map[string]any
	if err := json.Unmarshal(local, &in); err != nil {
		return "", fmt.Errorf("events/local-input.json: %w", err)
	}
	in["replicaCount"] = replicas
	in["maxReplicas"] = max(replicas, pipeline.DefaultMaxReplicas)
	in["verify"] = map[string]any{"skip": true, "skipReason": "the local cloud has no data plane"}
	poll, _ := in["poll"].(map[string]any)
	if poll == nil {
		poll = map[string]any{}
	}
	poll["intervalSeconds"] = 1
	in["poll"] = poll
	b, err := json.Marshal(in)
	return string(b), err
}

func measureRuns(ctx context.Context, root string, replicas []int, lenient string, logw io.Writer) (*RunResults, error) {
	local, err := os.ReadFile(filepath.Join(root, "events", "local-input.json"))
	if err != nil {
		return nil, err
	}
	if _, err := benchInput(local, 1); err != nil {
		return nil, err
	}
	def := stepfunctions.Pipeline()
	tasks, err := taskFunctions(def)
	if err != nil {
		return nil, err
	}
	branches, err := parallelBranches(def)
	if err != nil {
		return nil, err
	}

	progressf("bringing the local cloud up (localcloud.Up)")
	c, stack, err := upBenchCloud(ctx, localcloud.Options{Root: root, LogWriter: logw, Lenient: lenient}, replicas)
	if err != nil {
		return nil, err
	}
	defer c.Down()
	res := &RunResults{Measured: time.Now().UTC(), UpSeconds: c.Timings.Up.Seconds()}
	res.Input, _ = benchInput(local, 2)
	res.Parallel = branches
	res.ImageBranch, res.ALBBranch = branches.branchOf(stateOf(tasks, "CreateImage")), branches.branchOf(stateOf(tasks, "CreateLoadBalancer"))
	// The bench's own calls go straight to moto, so the gateway counts only the
	// pipeline's (the interpreter's Invokes and the functions' AWS calls).
	direct := c.DirectConfig(c.Region)
	sfnc := sfn.NewFromConfig(direct)
	ec2c := ec2.NewFromConfig(direct)

	for _, n := range replicas {
		input, err := benchInput(local, n)
		if err != nil {
			return res, err
		}
		name := fmt.Sprintf("bench-r%d-%d", n, time.Now().Unix()%1000000)
		progressf("run %s: %d replicas", name, n)
		c.Gateway.ResetCounts()
		desc, events, err := execute(ctx, sfnc, stack.PipelineARN, name, input)
		if err != nil {
			return res, err
		}
		counts := c.Gateway.Counts()
		f := RunFigure{
			Replicas:          n,
			Execution:         name,
			Status:            string(desc.Status),
			WallSeconds:       aws.ToTime(desc.StopDate).Sub(aws.ToTime(desc.StartDate)).Seconds(),
			Transitions:       Transitions(events),
			ScheduledTasks:    ScheduledTasks(events),
			LambdaInvocations: counts["lambda:Invoke"],
			HistoryEvents:     len(events),
			Calls:             counts,
			Invocations:       InvocationsByFunction(events, tasks),
			TaskSeconds:       TaskSeconds(events, tasks),
			Timeline:          BranchTimeline(events, branches, aws.ToTime(desc.StartDate)),
		}
		var doc pipeline.Document
		if desc.Output != nil {
			_ = json.Unmarshal([]byte(*desc.Output), &doc)
		}
		if doc.Resources.Fleet != nil {
			f.Instances = len(doc.Resources.Fleet.InstanceIDs)
		}
		if doc.Resources.Network != nil {
			f.NetworkSubnets = len(doc.Resources.Network.SubnetIDs)
		}
		runID, _ := pipeline.RunIDFromExecutionName(name)
		if f.Subnets, err = replicaSubnets(ctx, ec2c, runID); err != nil {
			return res, err
		}
		progressf("run %s: %s in %.1f s, %d transitions, %d invokes, %d API calls",
			name, f.Status, f.WallSeconds, f.Transitions, f.LambdaInvocations, total(counts))

		// Tear down, so that the next run's describes see an emulator as small as
		// the first run's.
		td := pipeline.TeardownInput{RunID: runID, Config: &doc.Config}
		if doc.Config.Poll.IntervalSeconds == 0 {
			td.Config = nil
		}
		tdIn, _ := json.Marshal(td)
		t := time.Now()
		tdDesc, _, err := execute(ctx, sfnc, stack.TeardownARN, "teardown-"+runID, string(tdIn))
		if err != nil {
			return res, fmt.Errorf("teardown of %s: %w", runID, err)
		}
		f.TeardownStatus, f.TeardownSeconds = string(tdDesc.Status), time.Since(t).Seconds()
		res.Runs = append(res.Runs, f)
		if f.Status != string(sfntypes.ExecutionStatusSucceeded) {
			return res, fmt.Errorf("run %s with %d replicas: %s: %s: %s", name, n, f.Status, aws.ToString(desc.Error), aws.ToString(desc.Cause))
		}
	}
	return res, nil
}

// execute starts an execution, follows it to its end and reads its history.
func execute(ctx context.Context, c *sfn.Client, machine, name, input string) (*sfn.DescribeExecutionOutput, []sfntypes.HistoryEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	out, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Name: aws.String(name), Input: aws.String(input)})
	if err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	for {
		desc, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: out.ExecutionArn})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if desc.Status != sfntypes.ExecutionStatusRunning {
			events, err := history(ctx, c, aws.ToString(out.ExecutionArn))
			return desc, events, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%s still running after %s", name, runTimeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// history reads every page of an execution's history, oldest first.
func history(ctx context.Context, c *sfn.Client, arn string) ([]sfntypes.HistoryEvent, error) {
	var events []sfntypes.HistoryEvent
	p := sfn.NewGetExecutionHistoryPaginator(c, &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), MaxResults: 1000})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", arn, err)
		}
		events = append(events, page.Events...)
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Id < events[j].Id })
	return events, nil
}

// replicaSubnets counts the distinct subnets of a run's replicas.
func replicaSubnets(ctx context.Context, c *ec2.Client, runID string) (int, error) {
	subnets := map[string]bool{}
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}},
		{Name: aws.String("tag:" + pipeline.TagRole), Values: []string{pipeline.RoleReplica}},
	}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("reading the replicas of %s back: %w", runID, err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				subnets[aws.ToString(in.SubnetId)] = true
			}
		}
	}
	return len(subnets), nil
}

func total(counts map[string]int) int {
	n := 0
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		n += counts[k]
	}
	return n
}

// stateOf is the Task state that calls function.
func stateOf(tasks map[string]string, function string) string {
	for state, fn := range tasks {
		if fn == function {
			return state
		}
	}
	return ""
}

// upBenchCloud brings up the strict cloud of opts for runs of these replica counts,
// with a vCPU quota raised for their fleets (as a user would ask AWS for): one vCPU
// per t2.micro, every run's base and replicas, with room. The caller calls Down.
func upBenchCloud(ctx context.Context, opts localcloud.Options, replicas []int) (*localcloud.Cloud, localcloud.Stack, error) {
	vcpus := 0
	for _, n := range replicas {
		vcpus += n + 1
	}
	opts.Progress = os.Stderr
	opts.VCPULimit = max(localcloud.DefaultVCPULimit, 2*vcpus)
	upCtx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	c, err := localcloud.Up(upCtx, opts)
	if err != nil {
		return nil, localcloud.Stack{}, fmt.Errorf("the local cloud did not come up: %w", err)
	}
	stack, ok := c.Stack(c.Region)
	if !ok {
		c.Down()
		return nil, localcloud.Stack{}, fmt.Errorf("no stack in %s", c.Region)
	}
	return c, stack, nil
}
