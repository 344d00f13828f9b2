package localcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var updateOfferings = flag.Bool("update-offerings", false, "rewrite testdata/instance-type-offerings.json from the installed moto's data")

// The fixture's scope: the regions and instance families amifleet's docs, tests and
// defaults use, and their neighbours a user is likely to pick.
var (
	offeringsRegions  = []string{"us-east-1", "us-west-2", "eu-west-1"}
	offeringsFamilies = []string{"c5", "c6i", "c6in", "c7g", "m5", "m6g", "m6i", "m7g", "m7i", "m7i-flex", "r5", "r6i", "t2", "t3", "t3a", "t4g"}
)

var offeringsAbout = []string{
	"Instance type offerings per Availability Zone, as the strict local cloud answers them (internal/localcloud/strict_offerings.go): in these regions a type offered in no zone listed here is offered nowhere; other regions are moto's.",
	"Source: the data moto 5.2.1 ships, which its maintainers collect from EC2's DescribeInstanceTypeOfferings in a real account (moto's scripts/ec2_get_instance_type_offerings.py): moto/ec2/resources/instance_type_offerings/{availability-zone,availability-zone-id}/<region>.json.gz for the offerings, moto/ec2/models/availability_zones_and_regions.py for the zone names and ids (the zones moto's default VPC has subnets in), moto/ec2/resources/instance_types.json.gz for the vCPUs (VCpuInfo.DefaultVCpus).",
	"Zone names are per account on AWS: one account's us-east-1a is another's us-east-1c. Zone ids (use1-az6) name the same physical zone in every account, and the gaps are facts about zone ids. Here the names map to the ids as moto maps them, which is the mapping of the account the data came from (checked: the offerings by name and by id agree), so a gap listed under a name is its id's gap.",
	"Gaps amifleet meets: t2 is not offered in us-west-2d (usw2-az4, a newer zone); t3, t3a, t4g, m5 and every other newer family here are not offered in us-east-1e (use1-az3, an older zone); c6in is not offered in us-west-2d either.",
	"Regenerate or check it: go test ./internal/localcloud -run TestOfferingsFixture [-args -update-offerings]; the families and regions are listed in strict_fixture_test.go.",
}

// motoOfferingsScript prints the installed moto's offerings, zones and vCPUs for the
// regions named in its arguments.
const motoOfferingsScript = `
import gzip, json, os, sys
import moto
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
base = os.path.join(os.path.dirname(moto.__file__), "ec2", "resources")
def load(*p):
    with gzip.open(os.path.join(base, *p)) as f:
        return json.load(f)
out = {"version": moto.__version__, "regions": {}, "vcpus": {}}
for region in sys.argv[1:]:
    out["regions"][region] = {
        "zones": {z.name: z.zone_id for z in RegionsAndZonesBackend.zones[region]},
        "az": [[o["InstanceType"], o["Location"]] for o in load("instance_type_offerings", "availability-zone", region + ".json.gz")],
        "azid": [[o["InstanceType"], o["Location"]] for o in load("instance_type_offerings", "availability-zone-id", region + ".json.gz")],
    }
for name, t in load("instance_types.json.gz").items():
    out["vcpus"][name] = t.get("VCpuInfo", {}).get("DefaultVCpus", 0)
print(json.dumps(out))
`

// TestOfferingsFixture: the embedded fixture is exactly what the installed moto's data
// says for the fixture's regions and families (and carries the gaps the strict cloud
// is about); -update-offerings rewrites it.
func TestOfferingsFixture(t *testing.T) {
	// The facts the strict cloud's tests and amifleet's e2e rely on, whatever moto has.
	for _, c := range []struct {
		region, typ, zone string
		offered           bool
	}{
		{"us-west-2", "t2.micro", "us-west-2d", false},
		{"us-west-2", "t2.micro", "us-west-2a", true},
		{"us-east-1", "t3.micro", "us-east-1e", false},
		{"us-east-1", "t2.micro", "us-east-1e", true},
		{"us-east-1", "t3.micro", "us-east-1a", true},
	} {
		if got := slices.Contains(offerings.Regions[c.region].zonesOffering(c.typ), c.zone); got != c.offered {
			t.Errorf("fixture: %s offered in %s = %v, want %v", c.typ, c.zone, got, c.offered)
		}
	}
	for _, typ := range []string{"t2.micro", "t3.micro", "t3.small", "t3a.micro", "t4g.micro", "m5.large", "m7g.large", "c6in.2xlarge", "m7i-flex.large"} {
		if offerings.VCPUs[typ] == 0 {
			t.Errorf("fixture: no vCPUs for %s", typ)
		}
		for _, region := range offeringsRegions {
			if len(offerings.Regions[region].zonesOffering(typ)) == 0 {
				t.Errorf("fixture: %s offered nowhere in %s", typ, region)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := exec.CommandContext(ctx, "python3", append([]string{"-c", motoOfferingsScript}, offeringsRegions...)...).Output()
	if err != nil {
		t.Skipf("moto's data not readable (%v): the fixture is checked against it where moto is installed", err)
	}
	rendered, err := renderOfferingsFixture(raw)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "instance-type-offerings.json")
	if *updateOfferings {
		if err := os.WriteFile(path, rendered, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(rendered))
		return
	}
	if !bytes.Equal(rendered, offeringsJSON) {
		t.Errorf("%s differs from what the installed moto's data gives; rerun with -args -update-offerings and review the diff", path)
	}
}

// renderOfferingsFixture makes the fixture from motoOfferingsScript's output, one line
// per instance type.
func renderOfferingsFixture(raw []byte) ([]byte, error) {
	var data struct {
		Version string `json:"version"`
		Regions map[string]struct {
			Zones map[string]string `json:"zones"`
			AZ    [][2]string       `json:"az"`
			AZID  [][2]string       `json:"azid"`
		} `json:"regions"`
		VCPUs map[string]int `json:"vcpus"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, err
	}
	if data.Version != "5.2.1" {
		return nil, fmt.Errorf("moto %s is installed; the fixture says its facts come from moto 5.2.1", data.Version)
	}
	inFamilies := func(typ string) bool {
		family, _, _ := strings.Cut(typ, ".")
		return slices.Contains(offeringsFamilies, family)
	}
	q := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	var b strings.Builder
	b.WriteString("{\n  \"about\": [\n")
	for i, line := range offeringsAbout {
		b.WriteString("    " + q(line) + map[bool]string{true: ",\n", false: "\n"}[i < len(offeringsAbout)-1])
	}
	b.WriteString("  ],\n  \"families\": " + q(offeringsFamilies) + ",\n  \"regions\": {\n")
	types := map[string]bool{}
	for ri, region := range offeringsRegions {
		r, ok := data.Regions[region]
		if !ok {
			return nil, fmt.Errorf("no data for %s", region)
		}
		byName, byID := map[string][]string{}, map[string][]string{}
		for _, o := range r.AZ {
			if inFamilies(o[0]) {
				byName[o[0]] = append(byName[o[0]], o[1])
			}
		}
		for _, o := range r.AZID {
			if inFamilies(o[0]) {
				byID[o[0]] = append(byID[o[0]], o[1])
			}
		}
		names := make([]string, 0, len(byName))
		for typ, zones := range byName {
			sort.Strings(zones)
			ids := make([]string, 0, len(zones))
			for _, z := range zones {
				id, ok := r.Zones[z]
				if !ok {
					return nil, fmt.Errorf("%s: zone %s offers %s but is not one of moto's zones", region, z, typ)
				}
				ids = append(ids, id)
			}
			sort.Strings(ids)
			want := slices.Clone(byID[typ])
			sort.Strings(want)
			if !slices.Equal(ids, want) {
				return nil, fmt.Errorf("%s: %s is offered in %v by name (ids %v) but in %v by id: the names do not map to ids as in the data", region, typ, zones, ids, want)
			}
			names = append(names, typ)
			types[typ] = true
		}
		sort.Strings(names)
		zoneNames := make([]string, 0, len(r.Zones))
		for z := range r.Zones {
			zoneNames = append(zoneNames, z)
		}
		sort.Strings(zoneNames)
		b.WriteString("    " + q(region) + ": {\n      \"zones\": {")
		for i, z := range zoneNames {
			b.WriteString(map[bool]string{true: ", ", false: ""}[i > 0] + q(z) + ": " + q(r.Zones[z]))
		}
		b.WriteString("},\n      \"offerings\": {\n")
		for i, typ := range names {
			b.WriteString("        " + q(typ) + ": " + strings.ReplaceAll(q(byName[typ]), ",", ", ") + map[bool]string{true: ",\n", false: "\n"}[i < len(names)-1])
		}
		b.WriteString("      }\n    }" + map[bool]string{true: ",\n", false: "\n"}[ri < len(offeringsRegions)-1])
	}
	b.WriteString("  },\n  \"vcpus\": {\n")
	all := make([]string, 0, len(types))
	for typ := range types {
		if data.VCPUs[typ] == 0 {
			return nil, fmt.Errorf("no vCPUs for %s in moto's instance types", typ)
		}
		all = append(all, typ)
	}
	sort.Strings(all)
	for i, typ := range all {
		b.WriteString(fmt.Sprintf("    %s: %d", q(typ), data.VCPUs[typ]) + map[bool]string{true: ",\n", false: "\n"}[i < len(all)-1])
	}
	b.WriteString("  }\n}\n")
	return []byte(b.String()), nil
}
