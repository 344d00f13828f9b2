package stages

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// consoleTailBytes is how much of the base instance's console output the last poll
// of the "baseStopped" wait puts in its reason: enough for the failing command and
// its error, small enough for a Step Functions cause.
const consoleTailBytes = 2000

// CheckBaseStopped is one poll of the BaseStopped wait, with one DescribeInstances
// call: ready when the base instance has stopped (its user data powers it off when
// provisioning is done). On the last allowed poll, the reason carries the tail of its
// console output: a user data script that failed leaves the instance running, and its
// output says why. A base instance that terminated will never stop:
// ResourceFailedError. One not visible yet right after launch is "not ready".
func (s *Stages) CheckBaseStopped(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	if doc.Resources.Image == nil || doc.Resources.Image.BaseInstanceID == "" {
		return doc, notYet("resources.image.baseInstanceId", pipeline.LaunchBase)
	}
	return poll(doc, pipeline.WaitBaseStopped, func(doc *pipeline.Document, poll *pipeline.PollResult) error {
		return s.checkBaseStopped(ctx, *doc, poll)
	})
}

func (s *Stages) checkBaseStopped(ctx context.Context, doc pipeline.Document, poll *pipeline.PollResult) error {
	id := doc.Resources.Image.BaseInstanceID
	states, err := s.describeStates(ctx, []string{id})
	if err != nil {
		return err
	}
	inst, visible := states[id]
	switch state := stateOf(inst); {
	case !visible:
		poll.State = "unknown"
		poll.Reason = fmt.Sprintf("base instance %s is not visible yet", id)
	case state == "stopped":
		poll.Ready, poll.State = true, state
		poll.Reason = fmt.Sprintf("base instance %s provisioned and stopped", id)
		return nil
	case state == "terminated" || state == "shutting-down":
		return &pipeline.ResourceFailedError{Resource: "base instance " + id, State: state, Reason: stateReason(inst)}
	default:
		poll.State = state
		poll.Reason = fmt.Sprintf("base instance %s is %s: its user data has not powered it off yet", id, state)
	}
	if limit := doc.Config.Poll.MaxPolls.BaseStopped; limit > 0 && poll.Attempts >= limit {
		poll.Reason += "; " + s.consoleTail(ctx, id)
	}
	return nil
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
