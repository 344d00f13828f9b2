package localcloud

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// Each strict check is tested with only itself on, against the real moto; TestStrictOff
// runs the same calls with every check off and shows moto's own, lenient, answers (so
// that each strict test fails without its check).

// strictCloud is a local cloud whose gateway enforces s; log has the gateway's lines.
func strictCloud(t *testing.T, s Strictness) (*localCloud, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	lc := startLocalCloud(t, GatewayOptions{Strict: s, LogWriter: log})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", log.String())
		}
	})
	return lc, log
}

func ec2In(lc *localCloud, region string) *ec2.Client {
	return ec2.NewFromConfig(lc.cfg, func(o *ec2.Options) { o.Region = region })
}

// anyImage is an AMI moto has in the client's region.
func anyImage(t *testing.T, c *ec2.Client) string {
	t.Helper()
	out, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(out.Images) == 0 {
		t.Fatalf("no image to launch: %v", err)
	}
	return aws.ToString(out.Images[0].ImageId)
}

// defaultSubnet is the region's default subnet in zone.
func defaultSubnet(t *testing.T, c *ec2.Client, zone string) string {
	t.Helper()
	out, err := c.DescribeSubnets(context.Background(), &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		{Name: aws.String("availability-zone"), Values: []string{zone}}, {Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil || len(out.Subnets) != 1 {
		t.Fatalf("default subnet of %s: %v", zone, err)
	}
	return aws.ToString(out.Subnets[0].SubnetId)
}

func launch(c *ec2.Client, image string, typ ec2types.InstanceType, minCount, maxCount int32, with ...func(*ec2.RunInstancesInput)) (*ec2.RunInstancesOutput, error) {
	in := &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: typ, MinCount: aws.Int32(minCount), MaxCount: aws.Int32(maxCount)}
	for _, f := range with {
		f(in)
	}
	return c.RunInstances(context.Background(), in)
}

func inZone(zone string) func(*ec2.RunInstancesInput) {
	return func(in *ec2.RunInstancesInput) {
		in.Placement = &ec2types.Placement{AvailabilityZone: aws.String(zone)}
	}
}

func withToken(token string) func(*ec2.RunInstancesInput) {
	return func(in *ec2.RunInstancesInput) { in.ClientToken = aws.String(token) }
}

func withTag(key, value string) func(*ec2.RunInstancesInput) {
	return func(in *ec2.RunInstancesInput) {
		in.TagSpecifications = []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
			Tags: []ec2types.Tag{{Key: aws.String(key), Value: aws.String(value)}}}}
	}
}

func instanceIDs(out *ec2.RunInstancesOutput) []string {
	var ids []string
	for _, in := range out.Instances {
		ids = append(ids, aws.ToString(in.InstanceId))
	}
	sort.Strings(ids)
	return ids
}

// taggedInstances is how many instances carry the tag, whatever their state.
func taggedInstances(t *testing.T, c *ec2.Client, key, value string) int {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:" + key), Values: []string{value}}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range out.Reservations {
		n += len(r.Instances)
	}
	return n
}

// wantCode fails unless err carries the AWS error code and, when given, message.
func wantCode(t *testing.T, what string, err error, code, message string) {
	t.Helper()
	if got := errorCode(err); got != code {
		t.Fatalf("%s: error %v, want %s", what, err, code)
	}
	if message != "" && !strings.Contains(err.Error(), message) {
		t.Fatalf("%s: error %q, want the message %q", what, err.Error(), message)
	}
}

// wantRefusalLogged fails unless the log has the strict check's refusal of call, for
// a resource that contains resource.
func wantRefusalLogged(t *testing.T, log *syncBuffer, check, call, resource string) {
	t.Helper()
	for _, line := range strings.Split(log.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e["component"] == "strict" && e["msg"] == "refused" && e["check"] == check && e["call"] == call &&
			strings.Contains(e["resource"].(string), resource) && e["code"] != "" {
			return
		}
	}
	t.Errorf("no refusal logged with component strict, check %s, call %s, resource %s", check, call, resource)
}

func offeringLocations(out *ec2.DescribeInstanceTypeOfferingsOutput) []string {
	var l []string
	for _, o := range out.InstanceTypeOfferings {
		l = append(l, aws.ToString(o.Location))
	}
	sort.Strings(l)
	return l
}

func typeFilter(values ...string) []ec2types.Filter {
	return []ec2types.Filter{{Name: aws.String("instance-type"), Values: values}}
}

// TestStrictOfferings: DescribeInstanceTypeOfferings answers AWS's gaps, and a launch
// into a zone that does not offer its type fails with Unsupported.
func TestStrictOfferings(t *testing.T) {
	lc, log := strictCloud(t, Strictness{Offerings: true})
	ctx := context.Background()
	usw2, use1 := ec2In(lc, "us-west-2"), ec2In(lc, "us-east-1")

	t.Run("offerings by zone, zone id and region", func(t *testing.T) {
		cases := []struct {
			client       *ec2.Client
			locationType ec2types.LocationType
			typ          string
			want         string
		}{
			{usw2, ec2types.LocationTypeAvailabilityZone, "t2.micro", "us-west-2a us-west-2b us-west-2c"},
			{usw2, ec2types.LocationTypeAvailabilityZone, "t3.micro", "us-west-2a us-west-2b us-west-2c us-west-2d"},
			{use1, ec2types.LocationTypeAvailabilityZone, "t3.micro", "us-east-1a us-east-1b us-east-1c us-east-1d us-east-1f"},
			{use1, ec2types.LocationTypeAvailabilityZone, "t2.micro", "us-east-1a us-east-1b us-east-1c us-east-1d us-east-1e us-east-1f"},
			{usw2, ec2types.LocationTypeAvailabilityZoneId, "t2.micro", "usw2-az1 usw2-az2 usw2-az3"},
			{usw2, ec2types.LocationTypeRegion, "t2.micro", "us-west-2"},
			{usw2, ec2types.LocationTypeRegion, "x2idn.16xlarge", ""}, // not in the fixture's families
		}
		for _, c := range cases {
			out, err := c.client.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{LocationType: c.locationType, Filters: typeFilter(c.typ)})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(offeringLocations(out), " "); got != c.want {
				t.Errorf("%s by %s: %q, want %q", c.typ, c.locationType, got, c.want)
			}
			for _, o := range out.InstanceTypeOfferings {
				if string(o.InstanceType) != c.typ || o.LocationType != c.locationType {
					t.Errorf("offering %+v for %s by %s", o, c.typ, c.locationType)
				}
			}
		}
	})

	t.Run("filters: location, wildcards", func(t *testing.T) {
		out, err := usw2.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{LocationType: ec2types.LocationTypeAvailabilityZone,
			Filters: append(typeFilter("t2.*", "t3.micro"), ec2types.Filter{Name: aws.String("location"), Values: []string{"us-west-2d"}})})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.InstanceTypeOfferings) != 1 || out.InstanceTypeOfferings[0].InstanceType != "t3.micro" {
			t.Errorf("t2.* and t3.micro in us-west-2d: %+v, want t3.micro only", out.InstanceTypeOfferings)
		}
		_, err = usw2.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{Filters: []ec2types.Filter{{Name: aws.String("vcpus"), Values: []string{"2"}}}})
		wantCode(t, "unknown filter", err, "InvalidParameterValue", "The filter 'vcpus' is invalid")
	})

	t.Run("pages", func(t *testing.T) {
		in := &ec2.DescribeInstanceTypeOfferingsInput{LocationType: ec2types.LocationTypeAvailabilityZone, Filters: typeFilter("t3*")}
		all, err := usw2.DescribeInstanceTypeOfferings(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if all.NextToken != nil || len(all.InstanceTypeOfferings) < 20 {
			t.Fatalf("one page of %d offerings, token %v", len(all.InstanceTypeOfferings), all.NextToken)
		}
		paged := *in
		paged.MaxResults = aws.Int32(5)
		p := ec2.NewDescribeInstanceTypeOfferingsPaginator(usw2, &paged)
		var got []ec2types.InstanceTypeOffering
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.InstanceTypeOfferings) > 5 {
				t.Fatalf("page of %d, MaxResults 5", len(out.InstanceTypeOfferings))
			}
			got = append(got, out.InstanceTypeOfferings...)
			pages++
		}
		if pages != (len(all.InstanceTypeOfferings)+4)/5 || len(got) != len(all.InstanceTypeOfferings) {
			t.Fatalf("%d pages of %d offerings, want %d offerings in pages of 5", pages, len(got), len(all.InstanceTypeOfferings))
		}
		for i := range got {
			if got[i].InstanceType != all.InstanceTypeOfferings[i].InstanceType || aws.ToString(got[i].Location) != aws.ToString(all.InstanceTypeOfferings[i].Location) {
				t.Fatalf("offering %d: paged %+v, unpaged %+v", i, got[i], all.InstanceTypeOfferings[i])
			}
		}
		first, err := usw2.DescribeInstanceTypeOfferings(ctx, &paged)
		if err != nil {
			t.Fatal(err)
		}
		other := paged
		other.Filters = typeFilter("m5*")
		other.NextToken = first.NextToken
		_, err = usw2.DescribeInstanceTypeOfferings(ctx, &other)
		wantCode(t, "another query's token", err, "InvalidPaginationToken", "")
		tooMany := *in
		tooMany.MaxResults = aws.Int32(1001)
		_, err = usw2.DescribeInstanceTypeOfferings(ctx, &tooMany)
		wantCode(t, "MaxResults 1001", err, "InvalidParameterValue", "maxResults")
	})

	image := anyImage(t, usw2)
	t.Run("launch where the type is not offered", func(t *testing.T) {
		_, err := launch(usw2, image, "t2.micro", 1, 1, inZone("us-west-2d"))
		wantCode(t, "t2.micro in us-west-2d", err, "Unsupported",
			"Your requested instance type (t2.micro) is not supported in your requested Availability Zone (us-west-2d). Please retry your request by not specifying an Availability Zone or choosing us-west-2a, us-west-2b, us-west-2c.")
		wantRefusalLogged(t, log, CheckOfferings, "ec2:RunInstances", "t2.micro in us-west-2d")

		subnet := defaultSubnet(t, usw2, "us-west-2d")
		_, err = launch(usw2, image, "t2.micro", 1, 1, func(in *ec2.RunInstancesInput) { in.SubnetId = aws.String(subnet) })
		wantCode(t, "t2.micro in the us-west-2d subnet", err, "Unsupported", "Availability Zone (us-west-2d)")
		_, err = launch(usw2, image, "t2.micro", 1, 1, func(in *ec2.RunInstancesInput) {
			in.NetworkInterfaces = []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SubnetId: aws.String(subnet)}}
		})
		wantCode(t, "t2.micro on an interface in the us-west-2d subnet", err, "Unsupported", "Availability Zone (us-west-2d)")

		subnet = defaultSubnet(t, use1, "us-east-1e")
		_, err = launch(use1, anyImage(t, use1), "t3.micro", 1, 1, func(in *ec2.RunInstancesInput) { in.SubnetId = aws.String(subnet) })
		wantCode(t, "t3.micro in us-east-1e", err, "Unsupported",
			"Your requested instance type (t3.micro) is not supported in your requested Availability Zone (us-east-1e). Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f.")

		_, err = launch(usw2, image, "x2idn.16xlarge", 1, 1)
		wantCode(t, "a type offered nowhere in the region", err, "Unsupported", unsupportedConfiguration)
	})

	t.Run("launch where the type is offered", func(t *testing.T) {
		for _, c := range []struct {
			typ  ec2types.InstanceType
			with []func(*ec2.RunInstancesInput)
			zone string
		}{
			{"t2.micro", []func(*ec2.RunInstancesInput){inZone("us-west-2a")}, "us-west-2a"},
			{"t3.micro", []func(*ec2.RunInstancesInput){inZone("us-west-2d")}, "us-west-2d"},
			{"t2.micro", nil, "us-west-2a"}, // no zone named: moto's default
		} {
			out, err := launch(usw2, image, c.typ, 1, 1, c.with...)
			if err != nil {
				t.Fatalf("%s: %v", c.typ, err)
			}
			if z := aws.ToString(out.Instances[0].Placement.AvailabilityZone); z != c.zone {
				t.Errorf("%s launched in %s, want %s", c.typ, z, c.zone)
			}
		}
	})

	t.Run("a launch naming no zone goes to one that offers the type", func(t *testing.T) {
		// No type of the fixture misses a region's "a" zone, where moto puts a
		// launch that names no zone: take t3.nano out of us-west-2a for the test.
		r := offerings.Regions["us-west-2"]
		saved := r.Offerings["t3.nano"]
		r.Offerings["t3.nano"] = []string{"us-west-2c", "us-west-2d"}
		defer func() { r.Offerings["t3.nano"] = saved }()
		out, err := launch(usw2, image, "t3.nano", 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if z := aws.ToString(out.Instances[0].Placement.AvailabilityZone); z != "us-west-2c" {
			t.Errorf("t3.nano launched in %s, want us-west-2c (EC2 picks a zone that offers the type)", z)
		}
		_, err = launch(usw2, image, "t3.nano", 1, 1, inZone("us-west-2a"))
		wantCode(t, "t3.nano named in us-west-2a", err, "Unsupported", "choosing us-west-2c, us-west-2d.")
	})

	t.Run("regions the fixture does not cover are moto's", func(t *testing.T) {
		euc1 := ec2In(lc, "eu-central-1")
		if _, err := launch(euc1, anyImage(t, euc1), "x2idn.16xlarge", 1, 1); err != nil {
			t.Fatalf("launch in eu-central-1: %v", err)
		}
		out, err := euc1.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{Filters: typeFilter("t2.micro")})
		if err != nil || len(out.InstanceTypeOfferings) != 1 {
			t.Fatalf("offerings in eu-central-1 (moto's): %v %+v", err, out)
		}
	})
}

// serviceQuota calls Service Quotas' GetServiceQuota (JSON protocol) through the
// gateway.
func getServiceQuota(t *testing.T, lc *localCloud, serviceCode, quotaCode string) (int, map[string]any) {
	t.Helper()
	body := `{"ServiceCode":"` + serviceCode + `","QuotaCode":"` + quotaCode + `"}`
	req, _ := http.NewRequest(http.MethodPost, lc.gw.URL()+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "ServiceQuotasV20190624.GetServiceQuota")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=amifleet-local/20260101/us-east-1/servicequotas/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{"body": string(b), "errorType": resp.Header.Get("X-Amzn-Errortype")}
	}
	return resp.StatusCode, out
}

// TestStrictVCPUQuota: the Standard families' running vCPUs stay within the limit;
// MinCount and MaxCount as EC2 reads them; concurrent launches do not overshoot.
func TestStrictVCPUQuota(t *testing.T) {
	const limit = 8
	lc, log := strictCloud(t, Strictness{VCPULimit: limit})
	ctx := context.Background()
	use1 := ec2In(lc, "us-east-1")
	image := anyImage(t, use1)

	t.Run("GetServiceQuota answers the limit", func(t *testing.T) {
		status, out := getServiceQuota(t, lc, "ec2", "L-1216C47A")
		q, _ := out["Quota"].(map[string]any)
		if status != http.StatusOK || q == nil {
			t.Fatalf("GetServiceQuota: %d %v", status, out)
		}
		want := map[string]any{"ServiceCode": "ec2", "QuotaCode": "L-1216C47A", "Value": float64(limit),
			"QuotaName": "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
			"QuotaArn":  "arn:aws:servicequotas:us-east-1:123456789012:ec2/L-1216C47A"}
		for k, v := range want {
			if q[k] != v {
				t.Errorf("Quota.%s = %v, want %v", k, q[k], v)
			}
		}
		if status, out := getServiceQuota(t, lc, "ec2", "L-34B43A08"); status == http.StatusOK {
			t.Errorf("another quota answered by the strict cloud: %v", out)
		}
	})

	t.Run("DescribeInstanceTypes gives the default vCPUs", func(t *testing.T) {
		want := map[ec2types.InstanceType]int32{"t2.micro": 1, "t3.micro": 2, "t3.small": 2, "t3a.micro": 2, "t4g.micro": 2, "m5.large": 2}
		var types []ec2types.InstanceType
		for typ := range want {
			types = append(types, typ)
		}
		out, err := use1.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: types})
		if err != nil || len(out.InstanceTypes) != len(want) {
			t.Fatalf("DescribeInstanceTypes: %v (%d types)", err, len(out.InstanceTypes))
		}
		for _, it := range out.InstanceTypes {
			if it.VCpuInfo == nil || aws.ToInt32(it.VCpuInfo.DefaultVCpus) != want[it.InstanceType] {
				t.Errorf("%s: VCpuInfo %+v, want DefaultVCpus %d", it.InstanceType, it.VCpuInfo, want[it.InstanceType])
			}
			if n := offerings.VCPUs[string(it.InstanceType)]; n != int(want[it.InstanceType]) {
				t.Errorf("%s: the fixture's vCPUs %d, moto's %d", it.InstanceType, n, want[it.InstanceType])
			}
		}
	})

	var t3 []string
	t.Run("up to the limit, then VcpuLimitExceeded", func(t *testing.T) {
		out, err := launch(use1, image, "t3.micro", 1, 3) // 6 vCPUs: EC2 launches MaxCount when it can
		if err != nil {
			t.Fatal(err)
		}
		if t3 = instanceIDs(out); len(t3) != 3 {
			t.Fatalf("MinCount 1, MaxCount 3 with room for 4 launched %d", len(t3))
		}
		if _, err := launch(use1, image, "t2.micro", 2, 2); err != nil { // 8
			t.Fatal(err)
		}
		_, err = launch(use1, image, "t2.micro", 1, 1)
		wantCode(t, "the 9th vCPU", err, "VcpuLimitExceeded",
			"You have requested more vCPU capacity than your current vCPU limit of 8 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.")
		wantRefusalLogged(t, log, CheckQuota, "ec2:RunInstances", "t2.micro")
		// Another bucket (G and VT instances) is not counted here.
		if _, err := launch(use1, image, "g4dn.xlarge", 1, 1); err != nil {
			t.Errorf("g4dn.xlarge: %v", err)
		}
	})

	t.Run("stopped instances free their vCPUs; MaxCount shrinks, MinCount does not", func(t *testing.T) {
		if _, err := use1.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: t3[:2]}); err != nil { // 4 vCPUs free
			t.Fatal(err)
		}
		_, err := launch(use1, image, "t3.micro", 3, 5)
		wantCode(t, "MinCount 3 × 2 vCPUs with 4 free", err, "VcpuLimitExceeded", "limit of 8")
		out, err := launch(use1, image, "t3.micro", 1, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Instances) != 2 {
			t.Errorf("MinCount 1, MaxCount 5 with 4 vCPUs free launched %d t3.micro, want 2", len(out.Instances))
		}
	})

	t.Run("concurrent launches do not overshoot", func(t *testing.T) {
		usw2 := ec2In(lc, "us-west-2")
		image := anyImage(t, usw2)
		var wg sync.WaitGroup
		codes := make([]string, 10)
		for i := range codes {
			wg.Go(func() {
				_, err := launch(usw2, image, "t3.micro", 1, 1)
				codes[i] = errorCode(err)
			})
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			switch c {
			case "":
				ok++
			case "VcpuLimitExceeded":
			default:
				t.Errorf("error %s", c)
			}
		}
		if ok != limit/2 {
			t.Errorf("%d of 10 concurrent t3.micro launched with a limit of %d vCPUs, want %d", ok, limit, limit/2)
		}
	})
}

// TestStrictClientToken: a token names one launch; moto alone launches again.
func TestStrictClientToken(t *testing.T) {
	lc, log := strictCloud(t, Strictness{ClientTokens: true})
	ctx := context.Background()
	c := ec2In(lc, "us-east-1")
	image := anyImage(t, c)

	first, err := launch(c, image, "t3.micro", 2, 2, withToken("token-1"), withTag("test", "token-1"))
	if err != nil {
		t.Fatal(err)
	}
	ids := instanceIDs(first)
	again := func(t *testing.T, what string) *ec2.RunInstancesOutput {
		t.Helper()
		out, err := launch(c, image, "t3.micro", 2, 2, withToken("token-1"), withTag("test", "token-1"))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := instanceIDs(out); !slices.Equal(got, ids) || aws.ToString(out.ReservationId) != aws.ToString(first.ReservationId) {
			t.Fatalf("%s: reservation %s %v, want the first launch's %s %v", what, aws.ToString(out.ReservationId), got, aws.ToString(first.ReservationId), ids)
		}
		return out
	}

	t.Run("same token, same parameters: the same launch", func(t *testing.T) {
		again(t, "second call")
		if n := taggedInstances(t, c, "test", "token-1"); n != 2 {
			t.Errorf("%d instances, want the first launch's 2", n)
		}
	})

	t.Run("same token, other parameters: IdempotentParameterMismatch", func(t *testing.T) {
		_, err := launch(c, image, "t3.micro", 2, 3, withToken("token-1"), withTag("test", "token-1"))
		wantCode(t, "MaxCount 3", err, "IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
		wantRefusalLogged(t, log, CheckClientTokens, "ec2:RunInstances", "token-1")
	})

	t.Run("terminated instances: still the same launch", func(t *testing.T) {
		if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			t.Fatal(err)
		}
		again(t, "after terminate")
		if n := taggedInstances(t, c, "test", "token-1"); n != 2 {
			t.Errorf("%d instances, want 2", n)
		}
	})

	t.Run("a token in another region is another token", func(t *testing.T) {
		usw2 := ec2In(lc, "us-west-2")
		out, err := launch(usw2, anyImage(t, usw2), "t3.micro", 2, 2, withToken("token-1"))
		if err != nil || slices.Equal(instanceIDs(out), ids) {
			t.Fatalf("us-west-2: %v %v", err, out)
		}
	})

	t.Run("after 24 hours the token is free", func(t *testing.T) {
		s := lc.gw.strictState()
		s.mu.Lock()
		s.now = func() time.Time { return time.Now().Add(clientTokenLifetime + time.Minute) }
		s.mu.Unlock()
		defer func() { s.mu.Lock(); s.now = time.Now; s.mu.Unlock() }()
		out, err := launch(c, image, "t3.micro", 2, 2, withToken("token-1"), withTag("test", "token-1"))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(instanceIDs(out), ids) {
			t.Error("a 24-hour-old token answered its old launch")
		}
	})

	t.Run("concurrent calls with one token: one launch", func(t *testing.T) {
		var wg sync.WaitGroup
		got := make([][]string, 6)
		for i := range got {
			wg.Go(func() {
				out, err := launch(c, image, "t3.micro", 1, 1, withToken("token-concurrent"), withTag("test", "token-concurrent"))
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = instanceIDs(out)
			})
		}
		wg.Wait()
		for _, ids := range got[1:] {
			if !slices.Equal(ids, got[0]) {
				t.Errorf("answers %v and %v: want one launch", got[0], ids)
			}
		}
		if n := taggedInstances(t, c, "test", "token-concurrent"); n != 1 {
			t.Errorf("%d instances launched, want 1", n)
		}
	})

	t.Run("no token: every call launches", func(t *testing.T) {
		for range 2 {
			if _, err := launch(c, image, "t3.micro", 1, 1, withTag("test", "no-token")); err != nil {
				t.Fatal(err)
			}
		}
		if n := taggedInstances(t, c, "test", "no-token"); n != 2 {
			t.Errorf("%d instances, want 2", n)
		}
	})
}

// TestStrictConsistency: for a moment after a create, describes by id do not see the
// new resource; describes by filter do; then everything does.
func TestStrictConsistency(t *testing.T) {
	const moment = 2 * time.Second
	lc, log := strictCloud(t, Strictness{Consistency: moment})
	ctx := context.Background()
	c := ec2In(lc, "us-east-1")
	elbc := elb.NewFromConfig(lc.cfg)
	image := anyImage(t, c)
	subnets, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v", err)
	}

	start := time.Now()
	run, err := launch(c, image, "t3.micro", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	instance := aws.ToString(run.Instances[0].InstanceId)
	img, err := c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(instance), Name: aws.String("consistency")})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("consistency"), Description: aws.String("consistency")})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("consistency"), Protocol: elbtypes.ProtocolEnumHttp, Port: aws.Int32(80),
		VpcId: subnets.Subnets[0].VpcId, TargetType: elbtypes.TargetTypeEnumInstance})
	if err != nil {
		t.Fatal(err)
	}
	tgARN := tg.TargetGroups[0].TargetGroupArn
	lb, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("consistency"),
		Subnets: []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}})
	if err != nil {
		t.Fatal(err)
	}
	lbARN := lb.LoadBalancers[0].LoadBalancerArn
	created := time.Now() // the last create: everything is visible a moment after

	calls := []struct {
		name, code string
		call       func() error
	}{
		{"DescribeInstances", "InvalidInstanceID.NotFound", func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{instance}})
			return err
		}},
		{"DescribeImages", "InvalidAMIID.NotFound", func() error {
			_, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}})
			return err
		}},
		{"DescribeSecurityGroups", "InvalidGroup.NotFound", func() error {
			_, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(sg.GroupId)}})
			return err
		}},
		{"AuthorizeSecurityGroupIngress", "InvalidGroup.NotFound", func() error {
			_, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: []ec2types.IpPermission{{
				IpProtocol: aws.String("tcp"), FromPort: aws.Int32(80), ToPort: aws.Int32(80), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("10.0.0.0/8")}}}}})
			return err
		}},
		{"DescribeLoadBalancers", "LoadBalancerNotFound", func() error {
			_, err := elbc.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{aws.ToString(lbARN)}})
			return err
		}},
		{"DescribeTargetGroups", "TargetGroupNotFound", func() error {
			_, err := elbc.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{aws.ToString(tgARN)}})
			return err
		}},
		{"DescribeTargetHealth", "TargetGroupNotFound", func() error {
			_, err := elbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: tgARN})
			return err
		}},
		{"RegisterTargets", "TargetGroupNotFound", func() error {
			_, err := elbc.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: tgARN, Targets: []elbtypes.TargetDescription{{Id: aws.String(instance)}}})
			return err
		}},
	}
	for _, call := range calls {
		wantCode(t, call.name+" right after the create", call.call(), call.code, "")
	}
	if took := time.Since(start); took >= moment {
		t.Fatalf("the creates and the describes took %s, longer than the %s the test relies on", took, moment)
	}
	wantCode(t, "DescribeInstances", calls[0].call(), "InvalidInstanceID.NotFound", "The instance ID '"+instance+"' does not exist")
	wantRefusalLogged(t, log, CheckConsistency, "ec2:DescribeInstances", instance)
	wantRefusalLogged(t, log, CheckConsistency, "elasticloadbalancing:DescribeTargetHealth", aws.ToString(tgARN))

	// A describe by filter sees the new instance at once.
	byFilter, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String("instance-id"), Values: []string{instance}}}})
	if err != nil || len(byFilter.Reservations) != 1 {
		t.Errorf("describe by filter: %v, %+v", err, byFilter)
	}

	time.Sleep(time.Until(created.Add(moment)))
	for _, call := range calls {
		if err := call.call(); err != nil {
			t.Errorf("%s after %s: %v", call.name, moment, err)
		}
	}
}

// TestStrictENILinger: a deleted load balancer's groups stay in use for ENILinger.
func TestStrictENILinger(t *testing.T) {
	const linger = 1500 * time.Millisecond
	lc, log := strictCloud(t, Strictness{ENILinger: linger})
	ctx := context.Background()
	c := ec2In(lc, "us-east-1")
	elbc := elb.NewFromConfig(lc.cfg)
	subnets, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if err != nil || len(subnets.Subnets) < 2 {
		t.Fatalf("subnets: %v", err)
	}
	group := func(name string) string {
		out, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.GroupId)
	}
	albSG, otherSG := group("eni-alb"), group("eni-other")
	lb, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("eni"), SecurityGroups: []string{albSG},
		Subnets: []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := elbc.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	_, err = c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(albSG)})
	wantCode(t, "the load balancer's group right after its deletion", err, "DependencyViolation", "resource "+albSG+" has a dependent object")
	wantRefusalLogged(t, log, CheckENILinger, "ec2:DeleteSecurityGroup", albSG)
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(otherSG)}); err != nil {
		t.Errorf("a group the load balancer did not use: %v", err)
	}
	time.Sleep(time.Until(deleted.Add(linger)))
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(albSG)}); err != nil {
		t.Errorf("the load balancer's group after %s: %v", linger, err)
	}
}

// TestStrictOff: with every check off (the zero Strictness), moto answers each call the
// strict tests make as it always has: the leniency each check removes.
func TestStrictOff(t *testing.T) {
	lc, log := strictCloud(t, Strictness{})
	ctx := context.Background()
	usw2, use1 := ec2In(lc, "us-west-2"), ec2In(lc, "us-east-1")
	image := anyImage(t, use1)

	t.Run("offerings: moto launches anywhere and does not page", func(t *testing.T) {
		out, err := launch(usw2, anyImage(t, usw2), "t2.micro", 1, 1, inZone("us-west-2d"))
		if err != nil || aws.ToString(out.Instances[0].Placement.AvailabilityZone) != "us-west-2d" {
			t.Fatalf("t2.micro in us-west-2d: %v", err)
		}
		offers, err := usw2.DescribeInstanceTypeOfferings(ctx, &ec2.DescribeInstanceTypeOfferingsInput{LocationType: ec2types.LocationTypeAvailabilityZone,
			Filters: typeFilter("t3.micro", "t3.small"), MaxResults: aws.Int32(5)})
		if err != nil || len(offers.InstanceTypeOfferings) != 8 || offers.NextToken != nil {
			t.Fatalf("moto's offerings, MaxResults 5: %v, %d offerings, token %v", err, len(offers.InstanceTypeOfferings), offers.NextToken)
		}
	})

	t.Run("quota: none", func(t *testing.T) {
		if _, err := launch(use1, image, "m5.large", 40, 40); err != nil { // 80 vCPUs
			t.Fatalf("80 vCPUs: %v", err)
		}
		if status, out := getServiceQuota(t, lc, "ec2", "L-1216C47A"); status == http.StatusOK {
			t.Errorf("moto answered the quota: %v", out)
		}
	})

	t.Run("tokens: moto launches again", func(t *testing.T) {
		a, err := launch(use1, image, "t3.micro", 1, 1, withToken("off"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := launch(use1, image, "t3.micro", 1, 1, withToken("off"))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(instanceIDs(a), instanceIDs(b)) {
			t.Error("moto answered the token's launch again: ClientTokens would not be needed")
		}
	})

	t.Run("consistency: moto sees everything at once", func(t *testing.T) {
		out, err := launch(use1, image, "t3.micro", 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := use1.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: instanceIDs(out)}); err != nil {
			t.Errorf("describe right after launch: %v", err)
		}
	})

	t.Run("network interfaces: gone with the load balancer", func(t *testing.T) {
		subnets, err := use1.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
		if err != nil {
			t.Fatal(err)
		}
		sg, err := use1.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("off"), Description: aws.String("off")})
		if err != nil {
			t.Fatal(err)
		}
		elbc := elb.NewFromConfig(lc.cfg)
		lb, err := elbc.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{Name: aws.String("off"), SecurityGroups: []string{aws.ToString(sg.GroupId)},
			Subnets: []string{aws.ToString(subnets.Subnets[0].SubnetId), aws.ToString(subnets.Subnets[1].SubnetId)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := elbc.DeleteLoadBalancer(ctx, &elb.DeleteLoadBalancerInput{LoadBalancerArn: lb.LoadBalancers[0].LoadBalancerArn}); err != nil {
			t.Fatal(err)
		}
		if _, err := use1.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: sg.GroupId}); err != nil {
			t.Errorf("delete the group right after its load balancer: %v", err)
		}
	})

	if strings.Contains(log.String(), `"component":"strict"`) {
		t.Errorf("the strict checks logged with every check off")
	}
}
