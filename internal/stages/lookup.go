package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// liveInstanceStates are the states of an instance that still counts as the run's:
// one that is shutting down or terminated is gone for every purpose but cleanup's
// wait.
var liveInstanceStates = []string{"pending", "running", "stopping", "stopped"}

// notTerminatedStates are the states cleanup must still terminate or wait for.
var notTerminatedStates = []string{"pending", "running", "stopping", "stopped", "shutting-down"}

// tagFilters are the EC2 filters that find a run's resources of one role (every
// role when role is empty).
func tagFilters(runID, role string) []ec2types.Filter {
	f := []ec2types.Filter{{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}}}
	if role != "" {
		f = append(f, ec2types.Filter{Name: aws.String("tag:" + pipeline.TagRole), Values: []string{role}})
	}
	return f
}

// runTags are the tags of a run's resource, in order: the user's tags, then the
// run id, role and Name, which a user tag of the same key cannot override (the run
// finds and deletes its resources by them). ec2Tags and elbTags spell them for
// each API.
func runTags(runID, role string, userTags map[string]string) [][2]string {
	own := map[string]string{
		pipeline.TagRunID: runID,
		pipeline.TagRole:  role,
		pipeline.TagName:  pipeline.ResourceName(runID, role),
	}
	keys := make([]string, 0, len(userTags))
	for k := range userTags {
		if _, reserved := own[k]; !reserved {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	tags := make([][2]string, 0, len(keys)+len(own))
	for _, k := range keys {
		tags = append(tags, [2]string{k, userTags[k]})
	}
	for _, k := range []string{pipeline.TagRunID, pipeline.TagRole, pipeline.TagName} {
		tags = append(tags, [2]string{k, own[k]})
	}
	return tags
}

// ec2Tags are runTags for EC2.
func ec2Tags(runID, role string, userTags map[string]string) []ec2types.Tag {
	var tags []ec2types.Tag
	for _, kv := range runTags(runID, role, userTags) {
		tags = append(tags, ec2types.Tag{Key: aws.String(kv[0]), Value: aws.String(kv[1])})
	}
	return tags
}

// tagSpecs tags, at create time, every resource type given (an instance and its
// volumes, an image and its snapshots) as the run's resource of role.
func tagSpecs(doc pipeline.Document, role string, resourceTypes ...ec2types.ResourceType) []ec2types.TagSpecification {
	specs := make([]ec2types.TagSpecification, 0, len(resourceTypes))
	for _, rt := range resourceTypes {
		specs = append(specs, ec2types.TagSpecification{ResourceType: rt, Tags: ec2Tags(doc.RunID, role, doc.Config.Tags)})
	}
	return specs
}

// clientToken is an idempotency token for a create call of the run: the parts
// joined, or, past EC2's 64 characters, a hash of them.
func clientToken(runID string, parts ...string) string {
	t := strings.Join(append([]string{pipeline.NamePrefix + runID}, parts...), "-")
	if len(t) <= 64 {
		return t
	}
	sum := sha256.Sum256([]byte(t))
	return pipeline.NamePrefix + hex.EncodeToString(sum[:])[:40]
}

// findInstances lists the run's instances of role in the given states (any state
// when none are given), oldest launch first.
func (s *Stages) findInstances(ctx context.Context, runID, role string, states ...string) ([]ec2types.Instance, error) {
	filters := tagFilters(runID, role)
	if len(states) > 0 {
		filters = append(filters, ec2types.Filter{Name: aws.String("instance-state-name"), Values: states})
	}
	var out []ec2types.Instance
	p := ec2.NewDescribeInstancesPaginator(s.EC2, &ec2.DescribeInstancesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe %s instances of run %s: %w", role, runID, err)
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return aws.ToTime(out[i].LaunchTime).Before(aws.ToTime(out[j].LaunchTime))
	})
	return out, nil
}

// instanceIDs are the ids of instances, in order.
func instanceIDs(instances []ec2types.Instance) []string {
	ids := make([]string, 0, len(instances))
	for _, in := range instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	return ids
}

// stateOf is an instance's state name, or "unknown".
func stateOf(in ec2types.Instance) string {
	if in.State == nil || in.State.Name == "" {
		return "unknown"
	}
	return string(in.State.Name)
}

// terminateRun terminates the run's instances of role that are not terminated yet,
// and lists, in words, those that are still on their way out.
func (s *Stages) terminateRun(ctx context.Context, runID, role string) (remaining []string, err error) {
	instances, err := s.findInstances(ctx, runID, role, notTerminatedStates...)
	if err != nil {
		return nil, err
	}
	var toTerminate []string
	for _, in := range instances {
		if stateOf(in) != "shutting-down" {
			toTerminate = append(toTerminate, aws.ToString(in.InstanceId))
		}
	}
	states := map[string]string{}
	for _, in := range instances {
		states[aws.ToString(in.InstanceId)] = stateOf(in)
	}
	if len(toTerminate) > 0 {
		out, err := s.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: toTerminate})
		switch {
		case ErrorCode(err) == codeInstanceNotFound:
			// Gone between the describe and the terminate: nothing to wait for.
			Log(ctx).Info("instances already gone", "role", role, "instanceIds", toTerminate)
			for _, id := range toTerminate {
				delete(states, id)
			}
		case err != nil:
			return nil, fmt.Errorf("terminate %s instances %v: %w", role, toTerminate, err)
		default:
			for _, ch := range out.TerminatingInstances {
				if ch.CurrentState != nil {
					states[aws.ToString(ch.InstanceId)] = string(ch.CurrentState.Name)
				}
			}
			Log(ctx).Info("terminating instances", "role", role, "instanceIds", toTerminate)
		}
	}
	for _, in := range instances {
		id := aws.ToString(in.InstanceId)
		if st, ok := states[id]; ok && st != "terminated" {
			remaining = append(remaining, fmt.Sprintf("instance %s (%s) %s", id, role, st))
		}
	}
	return remaining, nil
}
