package localcloud

// Instance type offerings per Availability Zone (Strictness.Offerings). moto offers
// every instance type in every zone; EC2 does not: t2.micro is not offered in
// us-west-2d, t3.micro not in us-east-1e. The gateway answers
// DescribeInstanceTypeOfferings from a fixture that carries AWS's real gaps
// (testdata/instance-type-offerings.json, which says where its facts come from), and
// refuses a RunInstances whose zone does not offer the type with EC2's Unsupported.
// The fixture covers a few regions and the instance families it names: in those
// regions it is the whole truth (a type it does not list is offered nowhere), in any
// other region moto answers as it does.

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

//go:embed testdata/instance-type-offerings.json
var offeringsJSON []byte

// offeringsFixture is testdata/instance-type-offerings.json.
type offeringsFixture struct {
	About    []string                    `json:"about"`
	Families []string                    `json:"families"`
	Regions  map[string]*regionOfferings `json:"regions"`
	// VCPUs is each listed type's default vCPUs (DescribeInstanceTypes'
	// VCpuInfo.DefaultVCpus), for the vCPU quota.
	VCPUs map[string]int `json:"vcpus"`
}

// regionOfferings is one region's zones and which of them offer each type.
type regionOfferings struct {
	// Zones maps the zone names to their zone ids, as moto names them.
	Zones map[string]string `json:"zones"`
	// Offerings lists, per instance type, the zones (by name) that offer it.
	Offerings map[string][]string `json:"offerings"`
}

// offerings is the fixture, read once.
var offerings = func() offeringsFixture {
	var f offeringsFixture
	if err := json.Unmarshal(offeringsJSON, &f); err != nil {
		panic("localcloud: testdata/instance-type-offerings.json: " + err.Error())
	}
	return f
}()

// zonesOffering is the zones of the region that offer typ, sorted; none when the
// fixture does not list the type (or the region).
func (r *regionOfferings) zonesOffering(typ string) []string {
	if r == nil {
		return nil
	}
	return r.Offerings[typ]
}

// offeringRow is one InstanceTypeOffering.
type offeringRow struct{ instanceType, locationType, location string }

// rows lists the region's offerings for a location type, sorted by type, then
// location, as EC2 lists them.
func (r *regionOfferings) rows(region, locationType string) []offeringRow {
	var out []offeringRow
	for typ, zones := range r.Offerings {
		switch locationType {
		case "region":
			out = append(out, offeringRow{typ, locationType, region})
		case "availability-zone":
			for _, z := range zones {
				out = append(out, offeringRow{typ, locationType, z})
			}
		case "availability-zone-id":
			for _, z := range zones {
				out = append(out, offeringRow{typ, locationType, r.Zones[z]})
			}
		}
	}
	slices.SortFunc(out, func(a, b offeringRow) int {
		if c := strings.Compare(a.instanceType, b.instanceType); c != 0 {
			return c
		}
		return strings.Compare(a.location, b.location)
	})
	return out
}

// EC2's page bounds for DescribeInstanceTypeOfferings' MaxResults.
const (
	offeringsMinPage = 5
	offeringsMaxPage = 1000
)

// answerOfferings answers DescribeInstanceTypeOfferings from the fixture in the
// regions it covers (false elsewhere: moto answers). Filters instance-type and
// location take EC2's * and ? wildcards; MaxResults and NextToken page as EC2 does.
func (g *Gateway) answerOfferings(w http.ResponseWriter, call apiCall) bool {
	region := g.callRegion(call)
	offers := offerings.Regions[region]
	if offers == nil {
		return false
	}
	bad := func(code, msg string) bool {
		writeAPIError(w, call, code, msg, http.StatusBadRequest)
		return true
	}
	locationType := call.Form.Get("LocationType")
	switch locationType {
	case "":
		locationType = "region"
	case "region", "availability-zone", "availability-zone-id":
	default:
		return bad("InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter locationType is invalid. Valid values are region, availability-zone, availability-zone-id.", locationType))
	}
	filters, empty := ec2Filters(call.Form)
	if empty != "" {
		return bad("InvalidParameterValue", fmt.Sprintf("The filter '%s' has no values", empty))
	}
	for name := range filters {
		if name != "instance-type" && name != "location" {
			return bad("InvalidParameterValue", fmt.Sprintf("The filter '%s' is invalid", name))
		}
	}
	page := offeringsMaxPage
	if s := call.Form.Get("MaxResults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < offeringsMinPage || n > offeringsMaxPage {
			return bad("InvalidParameterValue", fmt.Sprintf("Value ( %s ) for parameter maxResults is invalid. Expecting a value between %d and %d.", s, offeringsMinPage, offeringsMaxPage))
		}
		page = n
	}
	var rows []offeringRow
	for _, o := range offers.rows(region, locationType) {
		if matchesAny(filters["instance-type"], o.instanceType) && matchesAny(filters["location"], o.location) {
			rows = append(rows, o)
		}
	}
	// The token carries the offset and the query it belongs to: a token from another
	// query is refused, as EC2 refuses it.
	query := locationType + "?" + canonicalForm(call.Form, "NextToken", "MaxResults")
	start := 0
	if tok := call.Form.Get("NextToken"); tok != "" {
		n, ok := parseOfferingsToken(tok, query)
		if !ok || n > len(rows) {
			return bad("InvalidPaginationToken", "The specified pagination token is not valid or is expired.")
		}
		start = n
	}
	end := min(start+page, len(rows))
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<DescribeInstanceTypeOfferingsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`)
	fmt.Fprintf(&b, "<requestId>%s</requestId><instanceTypeOfferingSet>", newRequestID())
	for _, o := range rows[start:end] {
		fmt.Fprintf(&b, "<item><instanceType>%s</instanceType><locationType>%s</locationType><location>%s</location></item>", o.instanceType, o.locationType, o.location)
	}
	b.WriteString("</instanceTypeOfferingSet>")
	if end < len(rows) {
		fmt.Fprintf(&b, "<nextToken>%s</nextToken>", offeringsToken(end, query))
	}
	b.WriteString("</DescribeInstanceTypeOfferingsResponse>")
	writeEC2Answer(w, b.String())
	return true
}

func offeringsToken(offset int, query string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + "\n" + fingerprint(query)))
}

func parseOfferingsToken(tok, query string) (int, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	offset, sum, ok := strings.Cut(string(raw), "\n")
	n, err := strconv.Atoi(offset)
	return n, ok && err == nil && n >= 0 && sum == fingerprint(query)
}

// ec2Filters reads EC2's Filter.N.Name / Filter.N.Value.M parameters; empty names a
// filter without values.
func ec2Filters(form url.Values) (filters map[string][]string, empty string) {
	out := map[string][]string{}
	for k, v := range form {
		rest, ok := strings.CutPrefix(k, "Filter.")
		if !ok || !strings.HasSuffix(rest, ".Name") || len(v) == 0 {
			continue
		}
		n := strings.TrimSuffix(rest, ".Name")
		values := formList(apiCall{Form: form}, "Filter."+n+".Value")
		if len(values) == 0 {
			return nil, v[0]
		}
		out[v[0]] = append(out[v[0]], values...)
	}
	return out, ""
}

// matchesAny says whether s matches one of EC2's filter values (* and ? wildcards);
// no values matches everything.
func matchesAny(values []string, s string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		if ok, _ := path.Match(v, s); ok || v == s {
			return true
		}
	}
	return false
}

// Unsupported's messages, as EC2 words them.
const unsupportedConfiguration = "The requested configuration is currently not supported. Please check the documentation for supported configurations."

func unsupportedInZone(typ, zone string, offered []string) string {
	return fmt.Sprintf("Your requested instance type (%s) is not supported in your requested Availability Zone (%s). Please retry your request by not specifying an Availability Zone or choosing %s.", typ, zone, strings.Join(offered, ", "))
}

// unsupportedLaunch refuses a RunInstances (and says so) whose zone does not offer its
// instance type. A launch that names no zone goes where moto puts it (the region's
// "a" zone); where that zone does not offer the type, EC2 would have picked one that
// does, so set steers the launch there.
func (g *Gateway) unsupportedLaunch(ctx context.Context, w http.ResponseWriter, call apiCall, region string, set url.Values) bool {
	offers := offerings.Regions[region]
	typ := call.Form.Get("InstanceType")
	if offers == nil || typ == "" {
		// A region the fixture does not cover, or the type comes from a launch
		// template (or is EC2's default): not checked.
		return false
	}
	offered := offers.zonesOffering(typ)
	zone, named, err := g.launchZone(ctx, call, region)
	if err != nil {
		g.strictLog().Info("not checked: no zone for the launch", "check", CheckOfferings, "call", call.key(), "error", err.Error())
		return false // moto answers the bad subnet
	}
	switch {
	case slices.Contains(offered, zone):
		return false
	case len(offered) == 0:
		g.refuse(w, call, CheckOfferings, typ+" in "+region, "Unsupported", unsupportedConfiguration)
		return true
	case named:
		g.refuse(w, call, CheckOfferings, typ+" in "+zone, "Unsupported", unsupportedInZone(typ, zone, offered))
		return true
	}
	set.Set("Placement.AvailabilityZone", offered[0])
	g.strictLog().Info("launch placed in a zone that offers its type", "check", CheckOfferings, "call", call.key(), "resource", typ+" in "+offered[0], "instead", zone)
	return false
}

// launchZone is the zone a RunInstances launches into: its subnet's (SubnetId, or a
// network interface's), its Placement.AvailabilityZone, or, when it names neither
// (named false), the one moto picks: the region's "a" zone.
func (g *Gateway) launchZone(ctx context.Context, call apiCall, region string) (zone string, named bool, err error) {
	subnet := call.Form.Get("SubnetId")
	if subnet == "" {
		for k, v := range call.Form {
			if strings.HasPrefix(k, "NetworkInterface.") && strings.HasSuffix(k, ".SubnetId") && len(v) > 0 {
				subnet = v[0]
			}
		}
	}
	if subnet != "" {
		zone, err := g.subnetZone(ctx, region, subnet)
		return zone, true, err
	}
	if z := call.Form.Get("Placement.AvailabilityZone"); z != "" {
		return z, true, nil
	}
	return region + "a", false, nil
}

// subnetZone asks moto for a subnet's zone, once per subnet (a subnet never moves).
func (g *Gateway) subnetZone(ctx context.Context, region, subnet string) (string, error) {
	s := g.strictState()
	key := region + "/" + subnet
	s.mu.Lock()
	zone, ok := s.subnetZones[key]
	s.mu.Unlock()
	if ok {
		return zone, nil
	}
	out, err := g.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{subnet}}, func(o *ec2.Options) { o.Region = region })
	if err != nil {
		return "", err
	}
	if len(out.Subnets) != 1 {
		return "", fmt.Errorf("subnet %s: %d subnets", subnet, len(out.Subnets))
	}
	zone = aws.ToString(out.Subnets[0].AvailabilityZone)
	s.mu.Lock()
	s.subnetZones[key] = zone
	s.mu.Unlock()
	return zone, nil
}
