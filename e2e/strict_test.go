package e2e

// What the strict cloud refuses, as AWS would, and how amifleet copes. These run one
// at a time after TestFleets, like TestFaults: they change the gateway's checks, a
// role, or inject faults, all of which every run would see.

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amifleet/amifleet/internal/localcloud"
	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

func TestStrict(t *testing.T) {
	if s := lc.Gateway.Strictness(); !s.IAM || s.VCPULimit == 0 {
		t.Fatalf("the local cloud is not strict (%+v): unset AMIFLEET_LENIENT", s)
	}

	// LaunchReplicas' role without the one statement that lets it launch from the run's
	// image: the run fails on that denial, the cause says so, and Cleanup, with its
	// own role, deletes everything.
	t.Run("NarrowedRole", func(t *testing.T) {
		clearFaults(t)
		fn := functionName(t, primary, pipeline.LaunchReplicas)
		narrowRole(t, fn, func(st map[string]any) bool {
			return slices.Contains(strs(st["Action"]), "ec2:RunInstances") &&
				slices.ContainsFunc(strs(st["Resource"]), func(r string) bool { return strings.Contains(r, ":image/") })
		})
		before := len(lc.Gateway.Denials())
		e := start(t, primary, "e2e-narrowed-role", localInput(t, nil)).wait(t)
		if e.desc.Status != sfntypes.ExecutionStatusFailed {
			t.Fatalf("%s, want FAILED", e.desc.Status)
		}
		cause := aws.ToString(e.desc.Cause)
		if !strings.HasPrefix(cause, "LaunchReplicas failed: ") || !strings.Contains(cause, "UnauthorizedOperation") {
			t.Errorf("cause %q: want LaunchReplicas failed on UnauthorizedOperation", cause)
		}
		denials := lc.Gateway.Denials()[before:]
		if !slices.ContainsFunc(denials, func(d localcloud.IAMDenial) bool {
			return d.Function == fn && d.Action == "ec2:RunInstances" && strings.Contains(d.Resource, ":image/")
		}) {
			t.Errorf("no denial of ec2:RunInstances on the image for %s: %+v", fn, denials)
		}
		cleanup := functionName(t, primary, pipeline.Cleanup)
		for _, d := range denials {
			if d.Function == cleanup {
				t.Errorf("Cleanup was denied %s on %s: %s", d.Action, d.Resource, d.Reason)
			}
		}
		nothingLeft(t, primary, e.runID)
	})

	// A quota the fleet does not fit in, read before anything is created: Validate
	// refuses the run, naming the quota and the vCPUs asked for, and nothing is made.
	t.Run("QuotaTooSmall", func(t *testing.T) {
		clearFaults(t)
		inUse := vcpusInUse(t, primary)
		setVCPULimit(t, inUse+2) // the default fleet asks for 3: the base and 2 replicas
		lc.Gateway.ResetCounts()
		e := start(t, primary, "e2e-quota-too-small", localInput(t, nil)).wait(t)
		if e.desc.Status != sfntypes.ExecutionStatusFailed || aws.ToString(e.desc.Error) != pipeline.ErrCapacity {
			t.Fatalf("%s %s, want FAILED with %s", e.desc.Status, aws.ToString(e.desc.Error), pipeline.ErrCapacity)
		}
		cause := aws.ToString(e.desc.Cause)
		if !strings.Contains(cause, "L-1216C47A") || !strings.Contains(cause, "3 vCPU") {
			t.Errorf("cause %q: want the quota (L-1216C47A) and the 3 vCPUs asked for named", cause)
		}
		if c := createCalls(lc.Gateway.Counts()); len(c) > 0 {
			t.Errorf("create calls made for a fleet the quota refuses: %v", c)
		}
		nothingLeft(t, primary, e.runID)
	})

	// The same, when the quota cannot be read first: RunInstances refuses the replicas
	// (VcpuLimitExceeded), the run ends on a CapacityError naming the quota, and
	// Cleanup deletes the base, the image and the rest.
	t.Run("QuotaAtLaunch", func(t *testing.T) {
		clearFaults(t)
		lc.Gateway.AddFault(localcloud.APIFault{Action: "servicequotas:GetServiceQuota", Code: "AccessDeniedException"})
		setVCPULimit(t, vcpusInUse(t, primary)+1) // the base fits; its replicas do not
		e := start(t, primary, "e2e-quota-at-launch", localInput(t, nil)).wait(t)
		if e.desc.Status != sfntypes.ExecutionStatusFailed || aws.ToString(e.desc.Error) != pipeline.ErrCapacity {
			t.Fatalf("%s %s (%s), want FAILED with %s", e.desc.Status, aws.ToString(e.desc.Error), aws.ToString(e.desc.Cause), pipeline.ErrCapacity)
		}
		cause := aws.ToString(e.desc.Cause)
		if !strings.HasPrefix(cause, "LaunchReplicas failed: ") || !strings.Contains(cause, "L-1216C47A") || !strings.Contains(cause, "VcpuLimitExceeded") {
			t.Errorf("cause %q: want LaunchReplicas failed on VcpuLimitExceeded, the quota named", cause)
		}
		nothingLeft(t, primary, e.runID)
	})

	// LaunchReplicas crashes right after RunInstances answered: the retry of the same
	// execution finds (or, by its ClientToken, is given back) what the first attempt
	// launched, and the fleet has its two replicas, not four.
	t.Run("RetriedAfterCrash", func(t *testing.T) {
		clearFaults(t)
		lc.Gateway.CrashFunctionAfter(functionName(t, primary, pipeline.LaunchReplicas), "ec2:RunInstances", 1)
		e := start(t, primary, "e2e-retried-after-crash", localInput(t, nil)).wait(t).succeeded(t)
		checkFleet(t, e, 2)
		if n := crashes(t, e); n != 1 {
			t.Errorf("%d tasks crashed, want the one crash after RunInstances", n)
		}
	})
}

// crashes counts e's tasks that failed with Runtime.ExitError; any other failure must
// be a RetryableError (a resource a moment old, not visible yet, as on AWS).
func crashes(t *testing.T, e *execution) int {
	t.Helper()
	n := 0
	for _, h := range e.history(t) {
		if d := h.TaskFailedEventDetails; d != nil {
			switch aws.ToString(d.Error) {
			case "Runtime.ExitError":
				n++
			case pipeline.ErrRetryable:
			default:
				t.Errorf("a task failed with %s: %s", aws.ToString(d.Error), aws.ToString(d.Cause))
			}
		}
	}
	return n
}

// setVCPULimit sets the local cloud's vCPU quota until the test ends.
func setVCPULimit(t *testing.T, limit int) {
	t.Helper()
	was := lc.Gateway.Strictness()
	s := was
	s.VCPULimit = limit
	lc.Gateway.SetStrictness(s)
	t.Cleanup(func() { lc.Gateway.SetStrictness(was) })
}

// vcpusInUse counts the vCPUs of region's pending and running instances (t2.micro
// and t3.micro have 1 and 2; the scenarios launch t2.micro).
func vcpusInUse(t *testing.T, region string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := ec2.NewDescribeInstancesPaginator(ec2.NewFromConfig(lc.DirectConfig(region)), &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}},
	})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				if in.InstanceType != ec2types.InstanceTypeT2Micro {
					t.Fatalf("instance %s is a %s: count its vCPUs", aws.ToString(in.InstanceId), in.InstanceType)
				}
				n++
			}
		}
	}
	return n
}

// narrowRole removes the statements drop matches from the inline policies of the
// function's role, through the gateway (so the IAM check reads the role anew), and
// puts them back when the test ends.
func narrowRole(t *testing.T, function string, drop func(statement map[string]any) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf, err := lambda.NewFromConfig(lc.DirectConfig(primary)).GetFunctionConfiguration(ctx,
		&lambda.GetFunctionConfigurationInput{FunctionName: aws.String(function)})
	if err != nil {
		t.Fatal(err)
	}
	role := aws.ToString(conf.Role)
	role = role[strings.LastIndex(role, "/")+1:]
	client := iam.NewFromConfig(lc.Config(primary))
	names, err := client.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(role)})
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, name := range names.PolicyNames {
		got, err := client.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		orig, err := url.QueryUnescape(aws.ToString(got.PolicyDocument))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(orig), &doc); err != nil {
			t.Fatal(err)
		}
		var kept []any
		for _, st := range doc["Statement"].([]any) {
			if drop(st.(map[string]any)) {
				dropped++
				continue
			}
			kept = append(kept, st)
		}
		if len(kept) == len(doc["Statement"].([]any)) {
			continue
		}
		doc["Statement"] = kept
		narrowed, _ := json.Marshal(doc)
		put := func(policy string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(role),
				PolicyName: aws.String(name), PolicyDocument: aws.String(policy)})
			return err
		}
		if err := put(string(narrowed)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := put(orig); err != nil {
				t.Errorf("putting %s's policy %s back: %v", role, name, err)
			}
		})
	}
	if dropped != 1 {
		t.Fatalf("%d statements of %s's role matched, want one", dropped, function)
	}
}

// strs reads an IAM policy element that is a string or a list of strings.
func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
