package stages

import (
	"context"
	"fmt"
	"maps"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Finding a run's instances and terminating them: the undo of LaunchBase and
// LaunchReplicas.

// liveInstanceStates are the states of an instance that still counts as the run's:
// one that is shutting down or terminated is gone for every purpose but cleanup's
// wait.
var liveInstanceStates = []string{"pending", "running", "stopping", "stopped"}

// notTerminatedStates are the states cleanup must still terminate or wait for.
var notTerminatedStates = []string{"pending", "running", "stopping", "stopped", "shutting-down"}

// findInstances lists the run's instances of role and generation gen (every
// generation: allGenerations) in the given states (any state when none are given),
// oldest launch first. Generation 1 takes the instances with no generation tag too:
// see genFilters.
func (s *Stages) findInstances(ctx context.Context, runID, role string, gen int, states ...string) ([]ec2types.Instance, error) {
	filters := genFilters(runID, role, gen)
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
			for _, in := range r.Instances {
				if inGeneration(in.Tags, gen) {
					out = append(out, in)
				}
			}
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

// terminateRun terminates the run's instances of role, of every generation, that are
// not terminated yet, and lists, in words, those that are still on their way out.
func (s *Stages) terminateRun(ctx context.Context, runID, role string) (remaining []string, err error) {
	instances, err := s.findInstances(ctx, runID, role, allGenerations, notTerminatedStates...)
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
		after, err := s.terminate(ctx, toTerminate, "role", role)
		if err != nil {
			return nil, fmt.Errorf("terminate %s instances %v: %w", role, toTerminate, err)
		}
		if after == nil {
			for _, id := range toTerminate {
				delete(states, id) // gone: nothing to wait for
			}
		}
		maps.Copy(states, after)
	}
	for _, in := range instances {
		id := aws.ToString(in.InstanceId)
		if st, ok := states[id]; ok && st != "terminated" {
			remaining = append(remaining, fmt.Sprintf("instance %s (%s) %s", id, role, st))
		}
	}
	return remaining, nil
}

// terminate terminates ids and answers the states the call reports; nil (and no
// error) when they were gone between a describe and the terminate
// (InvalidInstanceID.NotFound): nothing to wait for. attrs go on the log line.
func (s *Stages) terminate(ctx context.Context, ids []string, attrs ...any) (map[string]string, error) {
	out, err := s.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	switch {
	case ErrorCode(err) == codeInstanceNotFound:
		Log(ctx).Info("instances already gone", append(attrs, "instanceIds", ids)...)
		return nil, nil
	case err != nil:
		return nil, err
	}
	after := map[string]string{}
	for _, ch := range out.TerminatingInstances {
		if ch.CurrentState != nil {
			after[aws.ToString(ch.InstanceId)] = string(ch.CurrentState.Name)
		}
	}
	Log(ctx).Info("terminating instances", append(attrs, "instanceIds", ids)...)
	return after, nil
}
