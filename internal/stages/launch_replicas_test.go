package stages

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amifleet/amifleet/internal/pipeline"
)

func TestLaunchReplicasSpreadsOneCallPerSubnet(t *testing.T) {
	tests := []struct {
		replicas   int
		subnets    []string
		wantCounts map[string]int32 // RunInstances count per subnet
	}{
		{2, nil, map[string]int32{"subnet-0a": 1, "subnet-0b": 1}},
		{5, nil, map[string]int32{"subnet-0a": 2, "subnet-0b": 2, "subnet-0c": 1}},
		{3, []string{"subnet-0c", "subnet-0a"}, map[string]int32{"subnet-0c": 2, "subnet-0a": 1}},
		{1, nil, map[string]int32{"subnet-0a": 1}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d over %v", tc.replicas, tc.subnets), func(t *testing.T) {
			c := newFakeCloud(t)
			doc := testDoc()
			doc.Config.ReplicaCount, doc.Config.SubnetIDs = tc.replicas, tc.subnets
			doc = withImage(t, c, doc)
			mark := c.count("RunInstances")
			out := mustRun(t)(c.stages().LaunchReplicas(context.Background(), doc))

			runs := fakeInputs[ec2.RunInstancesInput](c, "RunInstances")[mark:]
			got := map[string]int32{}
			for _, in := range runs {
				subnet, _, _ := placementOf(in)
				if _, twice := got[subnet]; twice {
					t.Errorf("two RunInstances calls for %s", subnet)
				}
				if aws.ToInt32(in.MinCount) != aws.ToInt32(in.MaxCount) {
					t.Errorf("%s: MinCount %d, MaxCount %d; want equal", subnet, aws.ToInt32(in.MinCount), aws.ToInt32(in.MaxCount))
				}
				got[subnet] = aws.ToInt32(in.MaxCount)
				if aws.ToString(in.ImageId) != doc.Resources.Image.ImageID {
					t.Errorf("%s: image %s, want the run's AMI %s", subnet, aws.ToString(in.ImageId), doc.Resources.Image.ImageID)
				}
				if in.UserData != nil {
					t.Errorf("%s: replicas got user data; the AMI's unit writes their page", subnet)
				}
				assertSecureInstance(t, in, doc.Resources.Network, pipeline.RoleReplica)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantCounts) {
				t.Errorf("launches per subnet = %v, want %v", got, tc.wantCounts)
			}
			fleet := out.Resources.Fleet
			if len(fleet.ReplicaInstanceIDs) != tc.replicas {
				t.Errorf("replicas recorded %v, want %d", fleet.ReplicaInstanceIDs, tc.replicas)
			}
			for _, id := range fleet.ReplicaInstanceIDs {
				if c.instances[id].Tags[pipeline.TagRole] != pipeline.RoleReplica {
					t.Errorf("%s is not a replica", id)
				}
			}
		})
	}
}

func TestLaunchReplicasKeepBase(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name     string
		keep     *bool
		wantBase bool
	}{
		{"unset means keep", nil, true},
		{"keep", &yes, true},
		{"do not keep", &no, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCloud(t)
			doc := testDoc()
			doc.Config.KeepBaseInstance = tc.keep
			doc = withImage(t, c, doc)
			base := doc.Resources.Image.BaseInstanceID
			out := mustRun(t)(c.stages().LaunchReplicas(context.Background(), doc))

			starts := fakeInputs[ec2.StartInstancesInput](c, "StartInstances")
			fleet := out.Resources.Fleet
			if tc.wantBase {
				if len(starts) != 1 || !slices.Equal(starts[0].InstanceIds, []string{base}) {
					t.Errorf("StartInstances calls %v, want one for the base %s", starts, base)
				}
				if want := append(slices.Clone(fleet.ReplicaInstanceIDs), base); !slices.Equal(fleet.InstanceIDs, want) {
					t.Errorf("instanceIds %v, want %v", fleet.InstanceIDs, want)
				}
				return
			}
			if len(starts) != 0 {
				t.Errorf("base started without keepBaseInstance: %v", starts)
			}
			if !slices.Equal(fleet.InstanceIDs, fleet.ReplicaInstanceIDs) {
				t.Errorf("instanceIds %v, want the replicas %v", fleet.InstanceIDs, fleet.ReplicaInstanceIDs)
			}
		})
	}
}

func hasSubnet(in *ec2.RunInstancesInput, subnet string) bool {
	got, _, _ := placementOf(in)
	return got == subnet
}

func TestLaunchReplicasTwiceLaunchesOnlyWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := testDoc()
	doc.Config.ReplicaCount = 4
	doc = withImage(t, c, doc)
	first := mustRun(t)(c.stages().LaunchReplicas(ctx, doc))
	c.settle() // replicas and the restarted base are running

	mark := c.mark()
	second := mustRun(t)(c.stages().LaunchReplicas(ctx, doc))
	if got := c.mutations(mark); !slices.Equal(got, []string{"StartInstances"}) {
		t.Errorf("second run: %v, want only the (harmless) start of the running base", got)
	}
	if !slices.Equal(slices.Sorted(slices.Values(second.Resources.Fleet.ReplicaInstanceIDs)),
		slices.Sorted(slices.Values(first.Resources.Fleet.ReplicaInstanceIDs))) {
		t.Errorf("second run recorded %v, first %v", second.Resources.Fleet.ReplicaInstanceIDs, first.Resources.Fleet.ReplicaInstanceIDs)
	}

	// One replica of subnet-0b died: a third run replaces exactly that one.
	var lost string
	for _, id := range first.Resources.Fleet.ReplicaInstanceIDs {
		if c.instances[id].SubnetID == "subnet-0b" {
			lost = id
			break
		}
	}
	c.setInstanceState(lost, "terminated")
	before := c.count("RunInstances")
	third := mustRun(t)(c.stages().LaunchReplicas(ctx, doc))
	runs := fakeInputs[ec2.RunInstancesInput](c, "RunInstances")[before:]
	if len(runs) != 1 || !hasSubnet(runs[0], "subnet-0b") || aws.ToInt32(runs[0].MaxCount) != 1 {
		t.Errorf("after losing a replica in subnet-0b: launches %d", len(runs))
	}
	if len(third.Resources.Fleet.ReplicaInstanceIDs) != 4 || slices.Contains(third.Resources.Fleet.ReplicaInstanceIDs, lost) {
		t.Errorf("replicas %v, want 4 without the lost %s", third.Resources.Fleet.ReplicaInstanceIDs, lost)
	}
}

// A launch that fails halfway (throttled in the second zone) is finished by the retry.
func TestLaunchReplicasRetryAfterPartialFailure(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	doc := testDoc()
	doc.Config.ReplicaCount = 3
	doc = withImage(t, c, doc)
	c.failNth("RunInstances", 2, fakeErr("RequestLimitExceeded", "Request limit exceeded."))
	if _, err := c.stages().LaunchReplicas(ctx, doc); !IsRetryable(err) {
		t.Fatalf("got %v, want the retryable throttling error", err)
	}
	if n := len(c.instancesWith(testRunID, pipeline.RoleReplica)); n != 1 {
		t.Fatalf("%d replicas after the failure, want 1", n)
	}
	out := mustRun(t)(c.stages().LaunchReplicas(ctx, doc))
	if n := len(c.instancesWith(testRunID, pipeline.RoleReplica)); n != 3 || len(out.Resources.Fleet.ReplicaInstanceIDs) != 3 {
		t.Errorf("%d replicas, %d recorded; want 3", n, len(out.Resources.Fleet.ReplicaInstanceIDs))
	}
}

func TestLaunchReplicasNeedsTheImage(t *testing.T) {
	c := newFakeCloud(t)
	doc := withNetwork(t, c, testDoc())
	if _, err := c.stages().LaunchReplicas(context.Background(), doc); err == nil || c.count("RunInstances") != 0 {
		t.Fatalf("got %v, want an error and no launch", err)
	}
}

func TestUndoReplicas(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	doc := mustRun(t)(s.LaunchReplicas(ctx, withImage(t, c, testDoc())))
	remaining, err := s.undoReplicas(ctx, testRunID)
	if err != nil || len(remaining) != 2 {
		t.Fatalf("remaining %v, error %v; want the 2 replicas shutting down", remaining, err)
	}
	terms := fakeInputs[ec2.TerminateInstancesInput](c, "TerminateInstances")
	if len(terms) != 1 || !slices.Equal(slices.Sorted(slices.Values(terms[0].InstanceIds)),
		slices.Sorted(slices.Values(doc.Resources.Fleet.ReplicaInstanceIDs))) {
		t.Errorf("terminated %v, want the replicas %v", terms, doc.Resources.Fleet.ReplicaInstanceIDs)
	}
	if st := c.instances[doc.Resources.Image.BaseInstanceID].State; st == "shutting-down" || st == "terminated" {
		t.Errorf("undoReplicas touched the base (%s)", st)
	}
	c.settle()
	if remaining, err = s.undoReplicas(ctx, testRunID); err != nil || len(remaining) != 0 {
		t.Errorf("once terminated: remaining %v, error %v", remaining, err)
	}
}

// Every undo, in the Cleanup's reverse order, leaves nothing of the run behind.
func TestUndosLeaveNothingTagged(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	s := c.stages()
	mustRun(t)(s.LaunchReplicas(ctx, withImage(t, c, testDoc())))
	undos := []func(context.Context, string) ([]string, error){s.undoReplicas, s.undoImage, s.undoBase, s.undoSecurityGroups}
	for round := 0; round < 3; round++ {
		for _, undo := range undos {
			if _, err := undo(ctx, testRunID); err != nil {
				t.Fatal(err)
			}
		}
		c.settle()
	}
	if left := c.tagged(testRunID); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// Not every zone offers every type: t3.micro is not offered in us-east-1e. With a
// subnet there, the load balancer keeps it, but no instance goes to it (on AWS, a
// launch there answers Unsupported).
func TestLaunchesGoOnlyToZonesThatOfferTheType(t *testing.T) {
	ctx := context.Background()
	c := newFakeCloud(t)
	c.addSubnet("subnet-0e", fakeDefaultVPC, "us-east-1e", true)
	doc := testDoc()
	doc.Config.InstanceType, doc.Config.ReplicaCount = "t3.micro", 6
	doc.Placement = &pipeline.Placement{Zones: []string{"us-east-1a", "us-east-1b", "us-east-1c"}, VCPUs: 2}
	doc = withImage(t, c, doc)
	if net := doc.Resources.Network; !slices.Contains(net.SubnetIDs, "subnet-0e") {
		t.Fatalf("network subnets %v: the load balancer's keep subnet-0e", net.SubnetIDs)
	}
	mustRun(t)(c.stages().LaunchReplicas(ctx, doc))
	for _, role := range []string{pipeline.RoleBase, pipeline.RoleReplica} {
		for _, in := range c.instancesWith(testRunID, role) {
			if in.AZ == "us-east-1e" {
				t.Errorf("%s %s in us-east-1e, which does not offer t3.micro", role, in.ID)
			}
		}
	}
	if n := len(c.instancesWith(testRunID, pipeline.RoleReplica)); n != 6 {
		t.Errorf("%d replicas, want 6 over the three zones that offer the type", n)
	}
}

// Replicas get no public IPv4 address (AWS bills each; the load balancer reaches
// them privately) unless config.sshCidrs asks for SSH. Their subnet and group go in
// the network interface, as EC2 requires when one is given.
func TestLaunchReplicasPublicAddress(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ssh    []string
		public bool
	}{
		{"no SSH, no public address", nil, false},
		{"SSH asked for", []string{"203.0.113.0/24"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCloud(t)
			doc := testDoc()
			doc.Config.SSHCIDRs = tc.ssh
			doc = withImage(t, c, doc)
			mark := c.count("RunInstances")
			out := mustRun(t)(c.stages().LaunchReplicas(context.Background(), doc))
			for _, in := range fakeInputs[ec2.RunInstancesInput](c, "RunInstances")[mark:] {
				if in.SubnetId != nil || in.SecurityGroupIds != nil || len(in.NetworkInterfaces) != 1 {
					t.Fatalf("subnet %v, groups %v, interfaces %+v: want one network interface holding them",
						in.SubnetId, in.SecurityGroupIds, in.NetworkInterfaces)
				}
				ni := in.NetworkInterfaces[0]
				if aws.ToInt32(ni.DeviceIndex) != 0 || ni.AssociatePublicIpAddress == nil || *ni.AssociatePublicIpAddress != tc.public {
					t.Errorf("interface %+v: want device 0, AssociatePublicIpAddress %v", ni, tc.public)
				}
			}
			for _, id := range out.Resources.Fleet.ReplicaInstanceIDs {
				if got := c.instances[id].PublicIP != ""; got != tc.public {
					t.Errorf("replica %s has a public address: %v, want %v", id, got, tc.public)
				}
			}
			// The base keeps its default subnet's public address: its script fetches
			// httpd from the package repositories.
			if c.instances[doc.Resources.Image.BaseInstanceID].PublicIP == "" {
				t.Error("the base instance lost its public address")
			}
		})
	}
}

// A retry of the same call (same document) sends the same token; another execution
// of the same run id sends another.
func TestLaunchTokensAreTheExecutions(t *testing.T) {
	tokens := func(seed string) []string {
		t.Helper()
		c := newFakeCloud(t)
		doc := testDoc()
		doc.TokenSeed = seed
		doc = withImage(t, c, doc)
		mustRun(t)(c.stages().LaunchReplicas(context.Background(), doc))
		var out []string
		for _, in := range fakeInputs[ec2.RunInstancesInput](c, "RunInstances") {
			tok := aws.ToString(in.ClientToken)
			if tok == "" || len(tok) > 64 {
				t.Errorf("client token %q: want 1 to 64 characters", tok)
			}
			out = append(out, tok)
		}
		return out
	}
	first := tokens(tokenSeed(fakeExecutionARN(testRunID), fakeStartTime))
	if again := tokens(tokenSeed(fakeExecutionARN(testRunID), fakeStartTime)); !slices.Equal(again, first) {
		t.Errorf("the same execution sent %v, then %v", first, again)
	}
	other := tokens(tokenSeed(fakeExecutionARN(testRunID), "2026-11-27T12:00:01.000Z"))
	for _, tok := range other {
		if slices.Contains(first, tok) {
			t.Errorf("two executions of run %s both sent token %q", testRunID, tok)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(first)))) != len(first) {
		t.Errorf("one execution sent one token for two requests: %v", first)
	}

	c := newFakeCloud(t)
	doc := withImage(t, c, testDoc())
	doc.TokenSeed = ""
	if _, err := c.stages().LaunchReplicas(context.Background(), doc); err == nil || !strings.Contains(err.Error(), "tokenSeed") {
		t.Errorf("without a token seed: %v, want an error naming tokenSeed", err)
	}
}
