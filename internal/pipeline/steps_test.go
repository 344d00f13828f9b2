package pipeline_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

func TestDerivedNames(t *testing.T) {
	f := pipeline.Function{Name: "CheckLoadBalancerActive"}
	if f.Dir() != "check-load-balancer-active" || f.File() != "check_load_balancer_active.go" || f.Placeholder() != "CheckLoadBalancerActiveFunctionArn" {
		t.Errorf("derived %q, %q, %q", f.Dir(), f.File(), f.Placeholder())
	}
	w, ok := pipeline.WaitNamed(pipeline.WaitBaseStopped)
	if !ok || w.Key() != "baseStopped" || w.WaitState() != "WaitBaseStopped" || w.ChoiceState() != "BaseStopped?" || w.TimedOutState() != "BaseStoppedTimedOut" || w.Check != "CheckBaseStopped" {
		t.Errorf("BaseStopped wait: %+v %q %q %q %q", w, w.Key(), w.WaitState(), w.ChoiceState(), w.TimedOutState())
	}
	if got, ok := pipeline.WaitOf(pipeline.Cleanup); !ok || got.Name != pipeline.WaitCleanupDone {
		t.Errorf("WaitOf(Cleanup) = %+v, %v", got, ok)
	}
	if _, ok := pipeline.WaitOf(pipeline.LaunchBase); ok {
		t.Error("LaunchBase polls a wait")
	}
}

// TestPollKeysAreTheWaits: $.polls and config.poll.maxPolls have one field per wait,
// spelled as its Key, and Of/Set reach that field.
func TestPollKeysAreTheWaits(t *testing.T) {
	var keys []string
	for _, w := range pipeline.Waits {
		keys = append(keys, w.Key())
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[pipeline.Polls](), reflect.TypeFor[pipeline.PerWait]()} {
		var fields []string
		for f := range typ.Fields() {
			fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		if !slices.Equal(fields, keys) {
			t.Errorf("%s fields %v; want the waits' keys in order %v", typ.Name(), fields, keys)
		}
	}
	var p pipeline.Polls
	for i, w := range pipeline.Waits {
		p.Set(w.Name, &pipeline.PollResult{Attempts: i + 1})
		v := reflect.ValueOf(p).FieldByName(w.Name)
		if !v.IsValid() || v.IsNil() || v.Interface().(*pipeline.PollResult).Attempts != i+1 {
			t.Errorf("Polls.Set(%s) did not set the field %s", w.Name, w.Name)
		}
		if p.Of(w.Name).Attempts != i+1 {
			t.Errorf("Polls.Of(%s) = %+v", w.Name, p.Of(w.Name))
		}
		m := pipeline.PerWait{}
		reflect.ValueOf(&m).Elem().FieldByName(w.Name).SetInt(int64(10 + i))
		if m.Of(w.Name) != 10+i {
			t.Errorf("MaxPolls.Of(%s) = %d; want %d", w.Name, m.Of(w.Name), 10+i)
		}
	}
	if (*pipeline.Polls)(nil).Of(pipeline.WaitBaseStopped) != nil {
		t.Error("a nil Polls answers")
	}
}
