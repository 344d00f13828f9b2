package stepfunctions

import (
	"fmt"
	"strings"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// names checks that a state keeps the one name of what it does (pipeline/steps.go):
//
//   - a Lambda Task is named after the function it calls (${<Name>FunctionArn});
//   - a wait's Choice, the Choice that bounds $.polls.<key>, is the wait's ChoiceState,
//     for a key of pipeline.Waits; it goes on when $.polls.<key>.ready, gives up to the
//     wait's TimedOutState, and otherwise goes back to its WaitState;
//   - a wait's Wait state goes on to the wait's check function's Task, and waits as
//     long as the last check said ($.polls.<key>.waitSeconds: the check alone
//     decides, from config.poll, how long to let the resource go);
//   - a Pass state that records an error writes it at $.errors.<its own name>.
func (c *checker) names(where, name string, s *state, states map[string]*state) {
	switch s.Type {
	case "Task":
		fn := s.Parameters.FunctionName
		if !strings.HasPrefix(fn, "${") || !strings.HasSuffix(fn, "FunctionArn}") {
			return // rendered, or not a Lambda: the placeholder is gone
		}
		if called := strings.TrimSuffix(strings.TrimPrefix(fn, "${"), "FunctionArn}"); called != name {
			c.add(where, name, fmt.Sprintf("calls the %s function: a Lambda Task is named after its function (%q)", called, called))
		}
	case "Choice":
		c.waitChoice(where, name, s, states)
	case "Wait":
		w, ok := waitOfState(name)
		if !ok {
			return
		}
		if s.Next != w.Check {
			c.add(where, name, fmt.Sprintf("goes to %q; the %s wait's Wait goes to its check, %q", s.Next, w.Name, w.Check))
		}
		if want := "$.polls." + w.Key() + ".waitSeconds"; s.SecondsPath != want {
			c.add(where, name, fmt.Sprintf("has SecondsPath %q; the %s wait waits what its last check said, %q", s.SecondsPath, w.Name, want))
		}
	case "Pass":
		if len(s.ResultPath) > 0 && strings.HasPrefix(string(s.ResultPath), `"$.errors.`) {
			if want := `"$.errors.` + name + `"`; string(s.ResultPath) != want {
				c.add(where, name, fmt.Sprintf("records its error at %s; want %s (a failure is recorded under the state that the console graph shows)", s.ResultPath, want))
			}
		}
	}
}

func (c *checker) waitChoice(where, name string, s *state, states map[string]*state) {
	var key, timedOut string
	for _, r := range s.Choices {
		if m := attemptsRE.FindStringSubmatch(r.Variable); m != nil && r.NumericGreaterThanEqualsPath != "" {
			key, timedOut = m[1], r.Next
		}
	}
	if key == "" {
		return // not a wait's Choice
	}
	var w pipeline.Wait
	for _, cand := range pipeline.Waits {
		if cand.Key() == key {
			w = cand
		}
	}
	if w.Name == "" {
		c.add(where, name, fmt.Sprintf("bounds $.polls.%s, which is not the key of a wait in pipeline.Waits", key))
		return
	}
	if name != w.ChoiceState() {
		c.add(where, name, fmt.Sprintf("is the %s wait's Choice: name it %q", w.Name, w.ChoiceState()))
	}
	if timedOut != w.TimedOutState() {
		c.add(where, name, fmt.Sprintf("gives up to %q; the %s wait gives up to %q", timedOut, w.Name, w.TimedOutState()))
	}
	if s.Default != w.WaitState() {
		c.add(where, name, fmt.Sprintf("goes back to %q; the %s wait goes back to %q", s.Default, w.Name, w.WaitState()))
	}
	ready := false
	for _, r := range s.Choices {
		if r.Variable == "$.polls."+key+".ready" && r.BooleanEquals != nil && *r.BooleanEquals {
			ready = true
		}
	}
	if !ready {
		c.add(where, name, fmt.Sprintf("has no rule that goes on when $.polls.%s.ready is true", key))
	}
	if _, ok := states[w.Check]; !ok {
		c.add(where, name, fmt.Sprintf("the %s wait's check %q is not a state here", w.Name, w.Check))
	}
}

// waitEntries checks that only a wait's own Choice goes to its Wait state: a loop
// starts with its check, the only state that writes $.polls.<key>.waitSeconds,
// which the Wait reads (entered first, it would fail the run with States.Runtime).
func (c *checker) waitEntries(where string, names []string, reverse map[string][]string) {
	for _, name := range names {
		w, ok := waitOfState(name)
		if !ok {
			continue
		}
		for _, from := range reverse[name] {
			if from != w.ChoiceState() {
				c.add(where, from, fmt.Sprintf("goes to %q: the %s wait starts with its check, %q, which says how long its Wait waits", name, w.Name, w.Check))
			}
		}
	}
}

// waitOfState is the wait whose WaitState is name.
func waitOfState(name string) (pipeline.Wait, bool) {
	for _, w := range pipeline.Waits {
		if w.WaitState() == name {
			return w, true
		}
	}
	return pipeline.Wait{}, false
}
