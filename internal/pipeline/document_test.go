package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLoadBalancerAddress(t *testing.T) {
	for _, tt := range []struct {
		lb   *LoadBalancer
		want string
	}{
		{nil, ""},
		{&LoadBalancer{}, ""},
		{&LoadBalancer{DNSName: "a-1.us-east-1.elb.amazonaws.com"}, "http://a-1.us-east-1.elb.amazonaws.com/"},
		{&LoadBalancer{DNSName: "ignored", URL: "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080/"},
	} {
		if got := tt.lb.Address(); got != tt.want {
			t.Errorf("%+v.Address() = %q, want %q", tt.lb, got, tt.want)
		}
	}
}

func TestDocumentGeneration(t *testing.T) {
	// A run's document from before generations has no "generation": it is generation 1.
	var old Document
	if err := json.Unmarshal([]byte(`{"runId":"demo","config":{},"resources":{}}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Generation != 0 || old.Gen() != PipelineGeneration {
		t.Errorf("document without generation: Generation %d, Gen() %d, want 0 and %d", old.Generation, old.Gen(), PipelineGeneration)
	}
	if out, err := json.Marshal(old); err != nil || strings.Contains(string(out), `"generation"`) {
		t.Errorf("an unset generation is written: %s, %v", out, err)
	}
	for _, tc := range []struct{ generation, want int }{{-1, 1}, {0, 1}, {1, 1}, {2, 2}, {7, 7}} {
		if got := (Document{Generation: tc.generation}).Gen(); got != tc.want {
			t.Errorf("Document{Generation: %d}.Gen() = %d, want %d", tc.generation, got, tc.want)
		}
	}
	var refresh Document
	if err := json.Unmarshal([]byte(`{"runId":"demo","generation":2,"config":{},"resources":{}}`), &refresh); err != nil {
		t.Fatal(err)
	}
	if refresh.Gen() != 2 {
		t.Errorf("generation 2 read back as %d", refresh.Gen())
	}
}
