package pricing

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The regions of the local cloud's offerings fixture, and the types users pick.
var fixtureRegions = []string{"us-east-1", "us-west-2", "eu-west-1"}

func TestTableCoversEventsAndDefaults(t *testing.T) {
	files, err := filepath.Glob("../../events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no events: %v", err)
	}
	// The default instanceType (pipeline.DefaultInstanceType), and every one the
	// events name.
	types := map[string]bool{"t2.micro": true}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var in struct {
			InstanceType string `json:"instanceType"`
		}
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if in.InstanceType != "" {
			types[in.InstanceType] = true
		}
	}
	for _, r := range fixtureRegions {
		for typ := range types {
			if _, ok := InstanceHour(r, typ); !ok {
				t.Errorf("no price for %s in %s", typ, r)
			}
		}
	}
}

func TestTableIsSane(t *testing.T) {
	sizes := []string{"nano", "micro", "small", "medium", "large", "xlarge"}
	for _, name := range Regions() {
		r, _ := Lookup(name)
		if r.ALBHour <= 0 || r.LCUHour <= 0 || r.GP3GBMonth <= 0 || r.SnapshotGBMonth <= 0 || r.PublicIPv4Hour != 0.005 {
			t.Errorf("%s: missing a service price: %+v", name, r)
		}
		for _, fam := range []string{"t2", "t3", "t3a", "t4g", "m5", "m6i", "c5", "r5"} {
			prev := 0.0
			for _, s := range sizes {
				p, ok := r.Instances[fam+"."+s]
				if !ok {
					continue
				}
				// Each size costs about twice the one below it (t2.small is $0.023, not $0.0232).
				if prev > 0 && math.Abs(p/prev-2) > 0.05 {
					t.Errorf("%s %s.%s: $%v is not about twice the size below ($%v)", name, fam, s, p, prev)
				}
				if p <= 0 || p > 1 {
					t.Errorf("%s %s.%s: $%v an hour", name, fam, s, p)
				}
				prev = p
			}
			if prev == 0 {
				t.Errorf("%s: no %s prices", name, fam)
			}
		}
	}
	for _, fam := range []string{"m7g", "c6g", "c7g"} {
		for _, s := range []string{"large", "xlarge"} {
			if _, ok := InstanceHour("us-east-1", fam+"."+s); !ok {
				t.Errorf("us-east-1: no %s.%s", fam, s)
			}
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestEstimateDefaults(t *testing.T) {
	// The console input in us-east-1: 2 t2.micro replicas and the kept base
	// instance, SSH closed, the default VPC's six zones, 8 GiB volumes.
	e := Fleet{Region: "us-east-1", InstanceType: "t2.micro", Replicas: 2, KeepBase: true, PublicBase: true,
		LoadBalancerZones: 6, PollIntervalSeconds: 15}.Estimate()
	if !e.Complete || len(e.Unknown) > 0 {
		t.Fatalf("incomplete: %v", e.Unknown)
	}
	want := 3*0.0116 + // instances
		3*8*0.08/730 + 8*0.05/730 + // volumes and snapshot
		0.0225 + 0.008 + // ALB and one LCU
		(6+1)*0.005 // the ALB's addresses and the base instance's
	if !near(e.PerHour, want) {
		t.Errorf("per hour %v, want %v", e.PerHour, want)
	}
	if !near(e.PerMonth, want*730) {
		t.Errorf("per month %v", e.PerMonth)
	}
	sum := 0.0
	for _, l := range e.Lines {
		sum += l.PerHour
		if l.Count < 1 || l.UnitPrice <= 0 {
			t.Errorf("line %+v", l)
		}
	}
	if !near(sum, e.PerHour) {
		t.Errorf("lines add up to %v, total %v", sum, e.PerHour)
	}
	// About 7 minutes until Verify; the ALB and its LCU bill a full hour.
	if e.RunMinutes < 5 || e.RunMinutes > 10 {
		t.Errorf("run of %v minutes", e.RunMinutes)
	}
	if e.Run < 0.0225+0.008 || e.Run > e.PerHour {
		t.Errorf("run $%v: want at least the ALB's hour and less than an hour of the fleet ($%v)", e.Run, e.PerHour)
	}
}

func TestEstimateCountsWhatIsBilled(t *testing.T) {
	base := Fleet{Region: "eu-west-1", InstanceType: "t3.small", Replicas: 4, KeepBase: true, LoadBalancerZones: 3, PollIntervalSeconds: 15}
	kept := base.Estimate()
	notKept := base
	notKept.KeepBase = false
	if d := kept.PerHour - notKept.Estimate().PerHour; !near(d, 0.0228) {
		t.Errorf("keeping the base instance adds $%v an hour, want its price $0.0228", d)
	}
	ssh := base
	ssh.PublicReplicas = true
	if d := ssh.Estimate().PerHour - kept.PerHour; !near(d, 4*0.005) {
		t.Errorf("sshCidrs add $%v an hour, want 4 addresses", d)
	}
	big := base
	big.RootVolumeGiB = 30
	if d := big.Estimate().PerHour - kept.PerHour; !near(d, (5*22*0.088+22*0.05)/730) {
		t.Errorf("30 GiB volumes add $%v an hour", d)
	}
	slow := base
	slow.PollIntervalSeconds = 60
	if s := slow.Estimate(); s.RunMinutes <= kept.RunMinutes || s.Run <= kept.Run {
		t.Errorf("a longer poll interval: %v min $%v, not more than %v min $%v", s.RunMinutes, s.Run, kept.RunMinutes, kept.Run)
	}
}

func TestEstimateUnknown(t *testing.T) {
	e := Fleet{Region: "us-east-1", InstanceType: "x2iedn.32xlarge", Replicas: 2, LoadBalancerZones: 2}.Estimate()
	if e.Complete || len(e.Unknown) != 1 || !strings.Contains(e.Unknown[0], "x2iedn.32xlarge") {
		t.Errorf("unknown type: complete %v, unknown %v", e.Complete, e.Unknown)
	}
	for _, l := range e.Lines {
		if strings.Contains(l.Item, "instance x2iedn") {
			t.Errorf("priced an unknown type: %+v", l)
		}
	}
	e = Fleet{Region: "mars-north-1", InstanceType: "t2.micro", Replicas: 2}.Estimate()
	if e.Complete || e.PerHour != 0 || len(e.Lines) != 0 || !strings.Contains(e.Unknown[0], "mars-north-1") {
		t.Errorf("unknown region: %+v", e)
	}
}

func TestUSD(t *testing.T) {
	for v, want := range map[float64]string{0.06: "$0.0600", 0.12345: "$0.1235", 12.345: "$12.35"} {
		if got := USD(v); got != want {
			t.Errorf("USD(%v) = %s, want %s", v, got, want)
		}
	}
}
