package main

import (
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		status string
		want   int64
		err    bool
	}{
		{"Name:\tbootstrap\nVmPeak:\t 1265364 kB\nVmHWM:\t   15080 kB\nVmRSS:\t   15080 kB\n", 15080, false},
		{"Name:\tbootstrap\nVmRSS:\t 1 kB\n", 0, true},
		{"VmHWM:\t 12 MB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseVmHWM(tt.status)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("parseVmHWM(%q) = %d, %v; want %d, error %v", tt.status, got, err, tt.want, tt.err)
		}
	}
}

func TestTemplateFigures(t *testing.T) {
	tmpl := `{"Resources":{
		"ValidateFunctionC496E7E7":{"Type":"AWS::Lambda::Function","Properties":{"MemorySize":128,"Description":"amifleet stage Validate"}},
		"CleanupFunction1604930F":{"Type":"AWS::Lambda::Function","Properties":{"MemorySize":256,"Description":"amifleet stage Cleanup"}},
		"Other":{"Type":"AWS::Lambda::Function","Properties":{"MemorySize":1024,"Description":"a custom resource"}},
		"Role":{"Type":"AWS::IAM::Role","Properties":{"Description":"amifleet stage Validate"}}}}`
	n, memory, err := templateFigures([]byte(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || len(memory) != 2 || memory["Validate"] != 128 || memory["Cleanup"] != 256 {
		t.Errorf("templateFigures = %d, %v; want 4 resources, Validate 128, Cleanup 256", n, memory)
	}
	if _, _, err := templateFigures([]byte("not json")); err == nil {
		t.Error("want an error for a template that is not JSON")
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{9, 1, 5}, 5}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestMachineParsing(t *testing.T) {
	if got := cpuModel("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n"); got != "Intel(R) Xeon(R) Processor" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := memTotalGiB("MemTotal:       24641536 kB\nMemFree: 1 kB\n"); math.Abs(got-23.5) > 0.01 {
		t.Errorf("memTotalGiB = %v, want 23.5", got)
	}
}

// Every cold-start input is one the function's handler accepts the shape of, and
// the runs' input passes the pipeline's own validation.
func TestInputs(t *testing.T) {
	for _, f := range pipeline.Functions {
		desc, payload := coldInput(f.Name)
		if desc == "" || !json.Valid(payload) {
			t.Errorf("%s: cold input %q %s", f.Name, desc, payload)
		}
	}
	local, err := os.ReadFile(filepath.Join("..", "events", "local-input.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 200} {
		in, err := benchInput(local, n)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := pipeline.ParseConfig(json.RawMessage(in))
		if err != nil {
			t.Fatalf("%d replicas: the input fails validation: %v\n%s", n, err, in)
		}
		if cfg.ReplicaCount != n || cfg.MaxReplicas < n || cfg.Poll.IntervalSeconds != 1 || !cfg.Verify.Skip {
			t.Errorf("%d replicas: config %+v", n, cfg)
		}
	}
	if _, err := benchInput([]byte("{"), 1); err == nil {
		t.Error("a broken local input: want an error")
	}
	if _, err := parseReplicas("1, 2,x"); err == nil {
		t.Error("parseReplicas accepted x")
	}
	if got, err := parseReplicas("1, 2,200"); err != nil || len(got) != 3 || got[2] != 200 {
		t.Errorf("parseReplicas = %v, %v", got, err)
	}
}

func TestDurationEstimate(t *testing.T) {
	seq, par := SequentialPlan(), ParallelPlan()
	// The parallel plan saves the ALB's time and pays up to one poll per wait.
	alb := latency(stALB)
	if math.Abs((seq.Low-par.Low)-alb.Low) > 1e-9 {
		t.Errorf("low: sequential %v - parallel %v != ALB %v", seq.Low, par.Low, alb.Low)
	}
	if math.Abs((seq.High-par.High)-(alb.High-4*PollSlack)) > 1e-9 {
		t.Errorf("high: sequential %v - parallel %v != ALB %v - 4 polls", seq.High, par.High, alb.High)
	}
	for _, l := range Latencies {
		if l.Low <= 0 || l.High < l.Low || l.Assumption == "" || l.Source == "" {
			t.Errorf("latency %+v: want low > 0, high >= low, an assumption and a source", l)
		}
	}
}

func TestEstimateCost(t *testing.T) {
	p := Prices{TransitionPer1000: 0.025, LambdaGBSecondARM: 0.0000133334, LambdaPerMillionReqs: 0.20,
		T2MicroHour: 0.0116, ALBHour: 0.0225, LCUHour: 0.008, EBSSnapshotGBMonth: 0.05, GP3GBMonth: 0.08, PublicIPv4Hour: 0.005}
	c := EstimateCost(CostInput{
		Transitions: 1000,
		Invocations: map[string]int{"A": 4, "B": 2},
		MemoryMB:    map[string]int{"A": 128, "B": 256},
		// 4 × 0.5 s × 0.125 GB + 2 × 0.5 s × 0.25 GB = 0.5 GB-s
		BilledSecondsPerInvocation: 0.5,
		Instances:                  3, RootGiB: 8, RunMinutes: 60, PublicIPv4s: 9,
	}, p)
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("transitions", c.Transitions, 0.025)
	near("GB-s", c.GBSeconds, 0.5)
	near("Lambda compute", c.LambdaCompute, 0.5*0.0000133334)
	near("Lambda requests", c.LambdaRequests, 6*0.20/1e6)
	near("instances", c.Instances, 3*0.0116)
	near("volumes", c.Volumes, 3*8*0.08/730)
	near("ALB", c.ALB, 0.0225+0.008)
	near("IPv4", c.IPv4, 9*0.005)
	near("snapshot month", c.SnapshotMonth, 0.4)
	near("fleet hour", c.FleetHour, c.Instances+c.Volumes+c.ALB+c.IPv4)
	near("run", c.Run(), c.Pipeline()+c.Instances+c.Volumes+c.ALB+c.IPv4)
}

func TestPlotAndReport(t *testing.T) {
	res := goodResults()
	res.Runs.Runs[1].Calls["ec2:DescribeInstances"] = 7
	series := ScalingSeries([]RunFigure{res.Runs.Runs[3], res.Runs.Runs[0], res.Runs.Runs[1]})
	if len(series) != 6 || series[0].Name != "state transitions" {
		t.Fatalf("series: %+v", series)
	}
	if pts := series[3].Points; len(pts) != 3 || pts[0].X != 1 || pts[2].X != 200 || pts[1].Y != 7 {
		t.Errorf("DescribeInstances points %v, want sorted by replicas, 7 at 2", pts)
	}
	path := filepath.Join(t.TempDir(), "plot.png")
	if err := WritePlot(path, series); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the plot is no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 {
		t.Errorf("plot is %v", b)
	}

	res.Lambdas.Functions[0].MemoryMB = 128
	res.Lambdas.Functions[1].MemoryMB = 256
	doc := Render(res, Check(res), "benchmarks.png")
	for _, want := range []string{
		"## Targets", "| each arm64 bootstrap at most 15 MB |", "![calls and transitions against replica count](benchmarks.png)",
		"| `ec2:DescribeInstances` | 5 | 7 | 5 | 5 |", "## 3. The critical path", "## 4. A real run on AWS", "## 5. What one default run costs",
		"the original exercise", "Free tier", ListPrices.Date,
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the document lacks %q", want)
		}
	}
	res.Runs = nil
	doc = Render(res, Check(res), "benchmarks.png")
	if !strings.Contains(doc, "Not measured yet") || strings.Contains(doc, "![calls") {
		t.Error("without runs the document must say they were not measured, and show no plot")
	}
}
