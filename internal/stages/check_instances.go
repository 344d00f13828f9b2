package stages

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// consoleTailBytes is how much of the base instance's console output the last poll
// of the "baseStopped" wait puts in its reason: enough for the failing command and
// its error, small enough for a Step Functions cause.
const consoleTailBytes = 2000

// CheckInstances is one poll of a wait on instances, with one DescribeInstances call:
//   - "baseStopped": ready when the base instance has stopped (its user data powers
//     it off when provisioning is done). On the last allowed poll, the reason carries
//     the tail of its console output: a user data script that failed leaves the
//     instance running, and its output says why.
//   - "instancesRunning": ready when every instance of the fleet is running.
//
// An instance that terminated will never get there: ResourceFailedError. An instance
// not visible yet right after launch is "not ready", not an error.
func (s *Stages) CheckInstances(ctx context.Context, in pipeline.CheckInput) (pipeline.Document, error) {
	doc := in.Document
	polls := pipeline.Polls{}
	if doc.Polls != nil {
		polls = *doc.Polls // a copy: the caller's document stays as it was
	}
	switch in.Wait {
	case pipeline.WaitBaseStopped:
		poll, err := s.checkBaseStopped(ctx, doc, attemptAfter(polls.BaseStopped))
		if err != nil {
			return doc, err
		}
		polls.BaseStopped = poll
	case pipeline.WaitInstancesRunning:
		poll, err := s.checkInstancesRunning(ctx, doc, attemptAfter(polls.InstancesRunning))
		if err != nil {
			return doc, err
		}
		polls.InstancesRunning = poll
	default:
		return doc, &pipeline.BadInputError{Field: "wait", Message: fmt.Sprintf(
			"%q is not a wait of CheckInstances (%q or %q)", in.Wait, pipeline.WaitBaseStopped, pipeline.WaitInstancesRunning)}
	}
	doc.Polls = &polls
	return doc, nil
}

// attemptAfter numbers this poll: one more than the last.
func attemptAfter(prev *pipeline.PollResult) int {
	if prev == nil {
		return 1
	}
	return prev.Attempts + 1
}

func (s *Stages) checkBaseStopped(ctx context.Context, doc pipeline.Document, attempt int) (*pipeline.PollResult, error) {
	if doc.Resources.Image == nil || doc.Resources.Image.BaseInstanceID == "" {
		return nil, &pipeline.StageError{Err: errors.New("resources.image.baseInstanceId is empty: LaunchBase has not run")}
	}
	id := doc.Resources.Image.BaseInstanceID
	states, err := s.describeStates(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	poll := &pipeline.PollResult{Attempts: attempt}
	inst, visible := states[id]
	switch state := stateOf(inst); {
	case !visible:
		poll.State = "unknown"
		poll.Reason = fmt.Sprintf("base instance %s is not visible yet", id)
	case state == "stopped":
		poll.Ready, poll.State = true, state
		poll.Reason = fmt.Sprintf("base instance %s provisioned and stopped", id)
		return poll, nil
	case state == "terminated" || state == "shutting-down":
		return nil, &pipeline.ResourceFailedError{Resource: "base instance " + id, State: state, Reason: stateReason(inst)}
	default:
		poll.State = state
		poll.Reason = fmt.Sprintf("base instance %s is %s: its user data has not powered it off yet", id, state)
	}
	if limit := doc.Config.Poll.MaxPolls.BaseStopped; limit > 0 && attempt >= limit {
		poll.Reason += "; " + s.consoleTail(ctx, id)
	}
	return poll, nil
}

func (s *Stages) checkInstancesRunning(ctx context.Context, doc pipeline.Document, attempt int) (*pipeline.PollResult, error) {
	if doc.Resources.Fleet == nil || len(doc.Resources.Fleet.InstanceIDs) == 0 {
		return nil, &pipeline.StageError{Err: errors.New("resources.fleet.instanceIds is empty: LaunchReplicas has not run")}
	}
	ids := doc.Resources.Fleet.InstanceIDs
	states, err := s.describeStates(ctx, ids)
	if err != nil {
		return nil, err
	}
	poll := &pipeline.PollResult{Attempts: attempt}
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
			return nil, &pipeline.ResourceFailedError{Resource: "instance " + id, State: state, Reason: stateReason(inst)}
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
		return poll, nil
	}
	poll.Reason = fmt.Sprintf("%d of %d instances running; waiting for %s", running, len(ids), strings.Join(waiting, ", "))
	return poll, nil
}

// describeStates describes the instances in one call. Right after RunInstances an
// id may not be visible yet (InvalidInstanceID.NotFound): then the answer is empty,
// and the instances count as not visible, for the next poll to see.
func (s *Stages) describeStates(ctx context.Context, ids []string) (map[string]ec2types.Instance, error) {
	out, err := s.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if ErrorCode(err) == "InvalidInstanceID.NotFound" {
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

// consoleTail is the end of the instance's console output, in words for a reason.
// It never fails the poll: the output is a help, not the answer.
func (s *Stages) consoleTail(ctx context.Context, id string) string {
	out, err := s.EC2.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	if err != nil {
		return fmt.Sprintf("console output unavailable: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if err != nil {
		return fmt.Sprintf("console output unreadable: %v", err)
	}
	text := strings.TrimSpace(string(raw))
	if text == "" {
		return "console output is empty (EC2 keeps it only a while after boot)"
	}
	if len(text) > consoleTailBytes {
		text = text[len(text)-consoleTailBytes:]
		// Do not start in the middle of a multi-byte character.
		for len(text) > 0 && !utf8.RuneStart(text[0]) {
			text = text[1:]
		}
		text = "..." + text
	}
	return "console output tail:\n" + strings.ToValidUTF8(text, "?")
}
