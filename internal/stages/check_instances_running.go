package stages

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// CheckInstancesRunning is one poll of the InstancesRunning wait, with one
// DescribeInstances call: ready when every instance of the fleet is running. An
// instance that terminated will never run: ResourceFailedError. One not visible yet
// right after launch is "not ready".
func (s *Stages) CheckInstancesRunning(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	if doc.Resources.Fleet == nil || len(doc.Resources.Fleet.InstanceIDs) == 0 {
		return doc, notYet("resources.fleet.instanceIds", pipeline.LaunchReplicas)
	}
	return poll(doc, pipeline.WaitInstancesRunning, func(doc *pipeline.Document, poll *pipeline.PollResult) error {
		return s.checkInstancesRunning(ctx, doc.Resources.Fleet.InstanceIDs, poll)
	})
}

func (s *Stages) checkInstancesRunning(ctx context.Context, ids []string, poll *pipeline.PollResult) error {
	states, err := s.describeStates(ctx, ids)
	if err != nil {
		return err
	}
	var waiting []string
	running := 0
	for _, id := range ids {
		inst, visible := states[id]
		state := stateOf(inst)
		switch {
		case !visible:
			waiting = append(waiting, id+" not visible yet")
			state = "pending"
		case state == "running":
			running++
		case state == "terminated" || state == "shutting-down":
			return &pipeline.ResourceFailedError{Resource: "instance " + id, State: state, Reason: stateReason(inst)}
		default:
			waiting = append(waiting, id+" "+state)
		}
		if state != "running" && poll.State == "" {
			poll.State = state
		}
	}
	if running == len(ids) {
		poll.Ready, poll.State = true, "running"
		poll.Reason = fmt.Sprintf("all %d instances running", len(ids))
		return nil
	}
	poll.Reason = fmt.Sprintf("%d of %d instances running; waiting for %s", running, len(ids), strings.Join(waiting, ", "))
	return nil
}

// describeStates describes the instances in one call. Right after RunInstances an
// id may not be visible yet (InvalidInstanceID.NotFound): then the answer is empty,
// and the instances count as not visible, for the next poll to see.
func (s *Stages) describeStates(ctx context.Context, ids []string) (map[string]ec2types.Instance, error) {
	out, err := s.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if ErrorCode(err) == codeInstanceNotFound {
		Log(ctx).Info("instances not visible yet", "instanceIds", ids, "error", err.Error())
		return map[string]ec2types.Instance{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe instances %v: %w", ids, err)
	}
	states := map[string]ec2types.Instance{}
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			states[aws.ToString(inst.InstanceId)] = inst
		}
	}
	return states, nil
}

func stateReason(inst ec2types.Instance) string {
	if inst.StateReason != nil && aws.ToString(inst.StateReason.Message) != "" {
		return aws.ToString(inst.StateReason.Message)
	}
	if r := aws.ToString(inst.StateTransitionReason); r != "" {
		return r
	}
	return "no reason given"
}
