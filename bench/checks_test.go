package main

import (
	"strings"
	"testing"
)

// goodRun is a run that meets every target, for `replicas` replicas.
func goodRun(replicas int) RunFigure {
	instances := replicas + 1
	subnets := min(replicas, 6)
	return RunFigure{
		Replicas: replicas, Status: "SUCCEEDED", WallSeconds: 8, Transitions: 31,
		Instances: instances, Subnets: subnets, NetworkSubnets: 6,
		Invocations: map[string]int{"LaunchBase": 1, "LaunchReplicas": 1, "CheckBaseStopped": 1, "CheckInstancesRunning": 2, "RegisterTargets": 1},
		Calls: map[string]int{
			"ec2:RunInstances":                     1 + subnets,
			"ec2:DescribeInstances":                3 + 2,
			"elasticloadbalancing:RegisterTargets": ceilDiv(instances, 100),
		},
		Timeline: []Span{{"LaunchBase", 0, 1, 2}, {"CheckImageAvailable", 0, 4, 5}, {"CreateLoadBalancer", 1, 1, 1.5}, {"CheckLoadBalancerActive", 1, 2.5, 3}},
	}
}

func goodResults() *Results {
	fn := func(name string, size int64, coldMS float64) FunctionFigures {
		return FunctionFigures{Name: name, BootstrapBytes: map[string]int64{"arm64": size, "amd64": size + 500_000}, ColdMS: []float64{coldMS}, ColdMedianMS: coldMS}
	}
	return &Results{
		Lambdas: &LambdaResults{ColdRuns: 1, Functions: []FunctionFigures{fn("Validate", 11_000_000, 9), fn("Cleanup", 12_000_000, 12)}},
		Runs:    &RunResults{ImageBranch: 0, ALBBranch: 1, Runs: []RunFigure{goodRun(1), goodRun(2), goodRun(10), goodRun(200)}},
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Results)
		missed string // the target that must be missed; "" for none
	}{
		{"all met", func(*Results) {}, ""},
		{"arm64 bootstrap over 15 MB", func(r *Results) { r.Lambdas.Functions[1].BootstrapBytes["arm64"] = 15_000_001 }, "each arm64 bootstrap"},
		{"amd64 bootstrap over 15 MB", func(r *Results) { r.Lambdas.Functions[0].BootstrapBytes["amd64"] = 16_000_000 }, "each amd64 bootstrap"},
		{"first answer at 50 ms", func(r *Results) { r.Lambdas.Functions[0].ColdMedianMS = 50 }, "start to first answer"},
		{"a run failed", func(r *Results) { r.Runs.Runs[1].Status = "FAILED" }, "every run SUCCEEDED"},
		{"transitions grow 11% at 200", func(r *Results) { r.Runs.Runs[3].Transitions = 35 }, "state transitions within 10%"},
		{"transitions shrink 13% at 10", func(r *Results) { r.Runs.Runs[2].Transitions = 27 }, "state transitions within 10%"},
		{"wall time at 200 over 1.5×", func(r *Results) { r.Runs.Runs[3].WallSeconds = 12.1 }, "local wall time at 200"},
		{"one RunInstances per replica", func(r *Results) { r.Runs.Runs[3].Calls["ec2:RunInstances"] = 201 }, "RunInstances calls"},
		{"no RunInstances for replicas", func(r *Results) { r.Runs.Runs[0].Calls["ec2:RunInstances"] = 1 }, "RunInstances calls"},
		{"a DescribeInstances per instance", func(r *Results) { r.Runs.Runs[3].Calls["ec2:DescribeInstances"] = 205 }, "one DescribeInstances per instance poll"},
		{"Validate's count of the vCPUs in use after its quota read", func(r *Results) {
			for i := range r.Runs.Runs {
				r.Runs.Runs[i].Calls["servicequotas:GetServiceQuota"] = 1
				r.Runs.Runs[i].Calls["ec2:DescribeInstances"]++
			}
		}, ""},
		{"a DescribeInstances more than the polls, lookups and quota reads", func(r *Results) { r.Runs.Runs[1].Calls["ec2:DescribeInstances"]++ }, "one DescribeInstances per instance poll"},
		{"RegisterTargets per instance", func(r *Results) { r.Runs.Runs[3].Calls["elasticloadbalancing:RegisterTargets"] = 201 }, "target registration batched"},
		{"RegisterTargets in one call of 201", func(r *Results) { r.Runs.Runs[3].Calls["elasticloadbalancing:RegisterTargets"] = 1 }, "target registration batched"},
		{"branches in sequence", func(r *Results) {
			r.Runs.Runs[1].Timeline = []Span{{"LaunchBase", 0, 1, 5}, {"CreateLoadBalancer", 1, 5, 7}}
		}, "the load balancer branch runs within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := goodResults()
			tt.change(res)
			checks := Check(res)
			if len(checks) != 10 {
				t.Fatalf("%d checks, want 10: %+v", len(checks), checks)
			}
			var missed []string
			for _, c := range checks {
				if !c.Passed {
					missed = append(missed, c.Target)
				}
			}
			switch {
			case tt.missed == "" && len(missed) > 0:
				t.Errorf("missed %v, want none", missed)
			case tt.missed != "" && (len(missed) != 1 || !strings.HasPrefix(missed[0], tt.missed)):
				t.Errorf("missed %v, want only %q", missed, tt.missed)
			}
		})
	}
}

func TestCheckOnlyWhatWasMeasured(t *testing.T) {
	res := goodResults()
	res.Runs = nil
	if got := len(Check(res)); got != 3 {
		t.Errorf("Lambda figures only: %d checks, want 3", got)
	}
	// Without a 2-replica run there is no baseline for transitions or wall time.
	res = goodResults()
	res.Lambdas = nil
	res.Runs.Runs = []RunFigure{goodRun(1), goodRun(10)}
	for _, c := range Check(res) {
		if strings.Contains(c.Target, "within 10%") || strings.Contains(c.Target, "wall time") {
			t.Errorf("checked %q without a 2-replica run", c.Target)
		}
	}
	if got := len(Check(&Results{})); got != 0 {
		t.Errorf("nothing measured: %d checks", got)
	}
}

// Part 6's targets are read at the median of each replica count's seeds.
func TestCheckLatency(t *testing.T) {
	run := func(n int, ratio float64, transitions int, slack float64) LatencyRun {
		r := LatencyRun{Replicas: n, Ratio: ratio, Transitions: transitions}
		for _, w := range latencyWaits {
			r.Slack = append(r.Slack, WaitSlack{Wait: w, Seconds: slack, Known: true})
		}
		return r
	}
	// 2 replicas: medians 1.02, 89 transitions, 3 s; 50: 1.05 (one outlier at 1.20),
	// 95 transitions (+6.7 %), 4 s.
	ok := &LatencyResults{Runs: []LatencyRun{
		run(2, 1.01, 89, 3), run(2, 1.02, 89, 2), run(2, 1.03, 92, 4),
		run(50, 1.04, 95, 4), run(50, 1.05, 134, 4), run(50, 1.20, 83, 9),
	}}
	for _, c := range checkLatency(ok) {
		if !c.Passed {
			t.Errorf("%s: %s, want met", c.Target, c.Measured)
		}
	}
	// One wait late at the median, the ratio over, the transitions up 20 %.
	bad := &LatencyResults{Runs: []LatencyRun{run(2, 1.02, 90, 3), run(50, 1.06, 108, 3)}}
	bad.Runs[1].Slack[3].Seconds = 13.8
	got := checkLatency(bad)
	if len(got) != 3 {
		t.Fatalf("%d checks, want 3", len(got))
	}
	for i, want := range []string{"50: 1.060", "50: InstancesRunning 13.8 s", "50: 108 (+20.0%)"} {
		if got[i].Passed || !strings.Contains(got[i].Measured, want) {
			t.Errorf("%s: %s (passed %v), want missed with %q", got[i].Target, got[i].Measured, got[i].Passed, want)
		}
	}
}
