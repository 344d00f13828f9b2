package stages

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// laggingEC2 is the fake cloud as EC2 answers right after a create: the resource
// exists (a create of the same name is refused as a duplicate), but a filtered
// describe does not list it yet.
type laggingEC2 struct {
	EC2API
}

func (l laggingEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, opts ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	if len(in.Filters) > 0 {
		return &ec2.DescribeImagesOutput{}, nil
	}
	return l.EC2API.DescribeImages(ctx, in, opts...)
}

func (l laggingEC2) DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	if len(in.Filters) > 0 {
		return &ec2.DescribeSecurityGroupsOutput{}, nil
	}
	return l.EC2API.DescribeSecurityGroups(ctx, in, opts...)
}

// A second run whose first run's resource is not visible yet must neither make a
// second one under another name nor call it someone else's: it is retried.
func TestDuplicateNotVisibleYetIsRetryable(t *testing.T) {
	tests := []struct {
		name    string
		run     func(t *testing.T, c *fakeCloud) error
		creates func(c *fakeCloud) int
		// want: the first run's creates, and the one refused as a duplicate.
		want int
	}{
		{"image", func(t *testing.T, c *fakeCloud) error {
			doc := stoppedBase(t, c)
			mustRun(t)(c.stages().CreateImage(context.Background(), doc))
			s := c.stages()
			s.EC2 = laggingEC2{c.EC2}
			_, err := s.CreateImage(context.Background(), doc)
			return err
		}, func(c *fakeCloud) int { return len(fakeInputs[ec2.CreateImageInput](c, "CreateImage")) }, 1 + 1},
		{"security group", func(t *testing.T, c *fakeCloud) error {
			mustRun(t)(c.stages().CreateSecurityGroups(context.Background(), testDoc()))
			s := c.stages()
			s.EC2 = laggingEC2{c.EC2}
			_, err := s.CreateSecurityGroups(context.Background(), testDoc())
			return err
		}, func(c *fakeCloud) int {
			return len(fakeInputs[ec2.CreateSecurityGroupInput](c, "CreateSecurityGroup"))
		}, 2 + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCloud(t)
			err := tc.run(t, c)
			var retry *pipeline.RetryableError
			if !errors.As(err, &retry) {
				t.Fatalf("got %v (%s), want a RetryableError", err, pipeline.ErrorName(Classify("X", err)))
			}
			if n := tc.creates(c); n != tc.want {
				t.Errorf("%d creates, want %d: a retry must not create under another name", n, tc.want)
			}
		})
	}
}

// ELBv2 answers NotFound for a load balancer or target group created a moment before
// (the strict cloud does too): a stage that meets it is retried, not failed.
func TestELBNotFoundRightAfterACreateIsRetryable(t *testing.T) {
	for _, code := range []string{"LoadBalancerNotFound", "TargetGroupNotFound"} {
		err := &smithy.GenericAPIError{Code: code, Message: "One or more load balancers not found"}
		if !IsRetryable(fmt.Errorf("describe listeners: %w", err)) {
			t.Errorf("%s is not retryable", code)
		}
	}
}

// untilVisible calls again while the answer is a NotFound of a resource just
// created, and gives up after notVisibleTries with that error, retryable; any other
// answer ends it at once.
func TestUntilVisible(t *testing.T) {
	defer func(w time.Duration) { firstVisibleWait = w }(firstVisibleWait)
	firstVisibleWait = time.Millisecond
	notFound := &smithy.GenericAPIError{Code: "LoadBalancerNotFound"}
	for _, tc := range []struct {
		name      string
		notFounds int   // answers NotFound this many times first
		other     error // then this
		calls     int
		wantErr   bool
	}{
		{"visible after two", 2, nil, 3, false},
		{"never visible", 100, nil, notVisibleTries, true},
		{"another error", 0, errors.New("boom"), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := untilVisible(context.Background(), func() error {
				calls++
				if calls <= tc.notFounds {
					return fmt.Errorf("describe: %w", notFound)
				}
				return tc.other
			}, "LoadBalancerNotFound")
			if calls != tc.calls || (err != nil) != tc.wantErr {
				t.Fatalf("%d calls, error %v; want %d calls, error %v", calls, err, tc.calls, tc.wantErr)
			}
			if tc.notFounds > tc.calls && !IsRetryable(err) {
				t.Errorf("the last NotFound %v is not retryable", err)
			}
		})
	}
}
