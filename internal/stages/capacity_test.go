package stages

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// A launch the quota or AWS's capacity refuses ends the run with a CapacityError,
// which no Retry of the state machine matches, naming the quota and the vCPUs asked
// for; Cleanup then leaves nothing.
func TestLaunchQuotaAndCapacityEndTheRun(t *testing.T) {
	tests := []struct {
		name  string
		stage string
		setup func(c *fakeCloud)
		code  string
		asks  string // the vCPUs the message says were asked for
		quota bool   // the message names the quota as the cause
	}{
		{name: "base over the vCPU quota", stage: pipeline.LaunchBase,
			setup: func(c *fakeCloud) { c.vcpuLimit = 0 },
			code:  "VcpuLimitExceeded", asks: "1 vCPU: 1 × t2.micro", quota: true},
		{name: "replicas over the vCPU quota", stage: pipeline.LaunchReplicas,
			setup: func(c *fakeCloud) { c.vcpuLimit = 2 }, // the base runs again, and one replica fits
			code:  "VcpuLimitExceeded", asks: "1 vCPU: 1 × t2.micro", quota: true},
		{name: "replicas over an instance limit", stage: pipeline.LaunchReplicas,
			setup: func(c *fakeCloud) {
				c.fail("RunInstances", fakeErr("InstanceLimitExceeded", "Your quota allows for 0 more running instance(s)."))
			},
			code: "InstanceLimitExceeded", asks: "1 vCPU: 1 × t2.micro", quota: true},
		{name: "no capacity left for the base", stage: pipeline.LaunchBase,
			setup: func(c *fakeCloud) {
				c.fail("RunInstances", fakeErr("InsufficientInstanceCapacity", "We currently do not have sufficient t2.micro capacity in the Availability Zone you requested (us-east-1a)."))
			},
			code: "InsufficientInstanceCapacity", asks: "1 vCPU: 1 × t2.micro"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := newFakeCloud(t)
			s := c.stages()
			doc := withNetwork(t, c, testDoc())
			if tc.stage == pipeline.LaunchReplicas {
				doc = withImage(t, c, testDoc())
			}
			tc.setup(c)
			stage := map[string]func(context.Context, pipeline.Document) (pipeline.Document, error){
				pipeline.LaunchBase: s.LaunchBase, pipeline.LaunchReplicas: s.LaunchReplicas}[tc.stage]
			_, err := Handle(tc.stage, stage)(ctx, doc)
			if got := pipeline.ErrorName(err); got != pipeline.ErrCapacity {
				t.Fatalf("got %v (%s), want %s", err, got, pipeline.ErrCapacity)
			}
			msg := err.Error()
			for _, want := range []string{tc.code, pipeline.VCPUQuotaCode, pipeline.VCPUQuotaName, "t2.micro", tc.asks} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not say %q", msg, want)
				}
			}
			if isQuota := strings.Contains(msg, "Service Quotas"); isQuota != tc.quota {
				t.Errorf("message %q: sends to Service Quotas %v, want %v", msg, isQuota, tc.quota)
			}

			// The state machine's Catch sends it to Cleanup, which leaves nothing.
			c.clearFail("RunInstances")
			doc.Errors = map[string]pipeline.CaughtError{tc.stage: {Error: pipeline.ErrCapacity,
				Cause: fmt.Sprintf(`{"errorType":%q,"errorMessage":%q}`, pipeline.ErrCapacity, msg)}}
			done := cleanupUntilReady(t, c, doc)
			if left := c.tagged(testRunID); len(left) != 0 {
				t.Errorf("left with the run tag: %v", left)
			}
			if f := done.Error; f == nil || f.Type != pipeline.ErrCapacity || !strings.Contains(f.Cause, pipeline.VCPUQuotaCode) {
				t.Errorf("the run's error %+v, want the CapacityError naming the quota", f)
			}
		})
	}
}

// InsufficientInstanceCapacity is retried by the EC2 client, as throttling is, and
// only what is left after those retries reaches the stage. EC2 lists it among its
// server errors, and the SDK retries any 5xx answer; the client retries the code
// itself too, whatever the status it comes with (here 400).
func TestEC2ClientRetriesInsufficientCapacity(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InsufficientInstanceCapacity</Code>`+
			`<Message>We currently do not have sufficient t2.micro capacity.</Message></Error></Errors><RequestID>r-1</RequestID></Response>`)
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 4
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		}}
	_, err := New(cfg).EC2.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String("ami-1"),
		InstanceType: ec2types.InstanceTypeT2Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("t")})
	if ErrorCode(err) != "InsufficientInstanceCapacity" {
		t.Fatalf("got %v, want InsufficientInstanceCapacity", err)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("%d calls, want 4: the first and 3 retries", n)
	}
}

func TestIsStandardFamily(t *testing.T) {
	for typ, want := range map[string]bool{
		"t2.micro": true, "t3a.nano": true, "m7g.large": true, "c6in.2xlarge": true, "r7iz.large": true,
		"z1d.large": true, "i4i.large": true, "d3.xlarge": true, "h1.2xlarge": true, "a1.large": true,
		"m7i-flex.large": true, "x2idn.large": false, "p5.48xlarge": false, "g5.xlarge": false,
		"inf2.xlarge": false, "dl1.24xlarge": false, "trn1.2xlarge": false, "hpc7g.4xlarge": false,
		"mac2.metal": false, "u-6tb1.metal": false, "f1.2xlarge": false, "vt1.3xlarge": false,
	} {
		if got := isStandardFamily(typ); got != want {
			t.Errorf("isStandardFamily(%q) = %v, want %v", typ, got, want)
		}
	}
}
