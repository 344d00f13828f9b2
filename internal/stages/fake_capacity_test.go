package stages

// The fake cloud's instance types, their offerings per zone, and the account's vCPU
// quota (see fake_test.go). AWS does not offer every type in every zone, and the
// fixture keeps real gaps: t3.micro is not offered in us-east-1e (as on AWS, and in
// moto's own data), and u-6tb1.metal only in us-east-1f, where the fake's default
// VPC has no subnet. RunInstances in a zone that does not offer the type answers
// Unsupported; past the vCPU quota it answers VcpuLimitExceeded.

import (
	"context"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// fakeZones are the fake region's availability zones.
var fakeZones = []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"}

// fakeInstanceType is one instance type the fake knows: its vCPUs and the zones that
// offer it.
type fakeInstanceType struct {
	vcpus int32
	zones []string
}

// fakeDefaultVCPULimit is the fake account's quota L-1216C47A, in vCPUs.
const fakeDefaultVCPULimit = 64

func fakeInstanceTypes() map[string]fakeInstanceType {
	allBut := func(gaps ...string) []string {
		return slices.DeleteFunc(slices.Clone(fakeZones), func(z string) bool { return slices.Contains(gaps, z) })
	}
	return map[string]fakeInstanceType{
		"t2.micro":     {1, allBut()},
		"t3.micro":     {2, allBut("us-east-1e")},
		"t3.small":     {2, allBut("us-east-1e")},
		"t4g.micro":    {2, allBut("us-east-1e")},
		"m5.large":     {2, allBut()},
		"c5.xlarge":    {4, allBut("us-east-1e")},
		"m7g.large":    {2, allBut("us-east-1e")},
		"u-6tb1.metal": {448, []string{"us-east-1f"}},
	}
}

func (f *fakeEC2) DescribeInstanceTypes(_ context.Context, in *ec2.DescribeInstanceTypesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeInstanceTypes", in); err != nil {
		return nil, err
	}
	if len(in.Filters) > 0 {
		return nil, fakeErr("InvalidParameterValue", "the fake answers DescribeInstanceTypes by name only")
	}
	out := &ec2.DescribeInstanceTypesOutput{}
	var unknown []string
	for _, name := range in.InstanceTypes {
		t, ok := c.instanceTypes[string(name)]
		if !ok {
			unknown = append(unknown, string(name))
			continue
		}
		out.InstanceTypes = append(out.InstanceTypes, ec2types.InstanceTypeInfo{InstanceType: name,
			VCpuInfo: &ec2types.VCpuInfo{DefaultVCpus: aws.Int32(t.vcpus)}})
	}
	if len(unknown) > 0 {
		return nil, fakeErr("InvalidInstanceType", "The following supplied instance types do not exist: %v", unknown)
	}
	return out, nil
}

func (f *fakeEC2) DescribeInstanceTypeOfferings(_ context.Context, in *ec2.DescribeInstanceTypeOfferingsInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("DescribeInstanceTypeOfferings", in); err != nil {
		return nil, err
	}
	if in.LocationType != ec2types.LocationTypeAvailabilityZone {
		return nil, fakeErr("InvalidParameterValue", "the fake answers offerings per availability zone only, not %q", in.LocationType)
	}
	if err := fakeCheckFilters(in.Filters, "instance-type", "location"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeInstanceTypeOfferingsOutput{}
	for _, name := range slices.Sorted(maps.Keys(c.instanceTypes)) {
		for _, zone := range c.instanceTypes[name].zones {
			ok, err := fakeMatchFilters(in.Filters, nil, func(filter string) ([]string, bool) {
				switch filter {
				case "instance-type":
					return fakeOne(name), true
				case "location":
					return fakeOne(zone), true
				}
				return nil, false
			})
			if err != nil {
				return nil, err
			}
			if ok {
				out.InstanceTypeOfferings = append(out.InstanceTypeOfferings, ec2types.InstanceTypeOffering{
					InstanceType: ec2types.InstanceType(name), Location: aws.String(zone),
					LocationType: ec2types.LocationTypeAvailabilityZone})
			}
		}
	}
	return out, nil
}

// checkLaunch is what RunInstances and StartInstances check of count instances of a
// type in a zone: that the zone offers the type, and that the account's running
// On-Demand vCPUs stay within the quota. Callers hold mu.
func (c *fakeCloud) checkLaunch(instanceType, zone string, count int32) error {
	t, ok := c.instanceTypes[instanceType]
	if !ok {
		return fakeErr("InvalidParameterValue", "Invalid value '%s' for InstanceType.", instanceType)
	}
	if !slices.Contains(t.zones, zone) {
		return fakeErr("Unsupported", "Your requested instance type (%s) is not supported in your requested Availability Zone (%s).", instanceType, zone)
	}
	if !isStandardFamily(instanceType) {
		return nil
	}
	var inUse int32
	for _, in := range c.instances {
		if (in.State == "pending" || in.State == "running") && isStandardFamily(in.InstanceType) {
			inUse += c.instanceTypes[in.InstanceType].vcpus
		}
	}
	if inUse+count*t.vcpus > int32(c.vcpuLimit) {
		return fakeErr("VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit of %d allows "+
			"for the instance bucket that the specified instance type belongs to. Please visit "+
			"http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.", c.vcpuLimit)
	}
	return nil
}

// --- Service Quotas ------------------------------------------------------------------

func (f *fakeQuotas) GetServiceQuota(_ context.Context, in *servicequotas.GetServiceQuotaInput, _ ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error) {
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.record("GetServiceQuota", in); err != nil {
		return nil, err
	}
	if aws.ToString(in.ServiceCode) != pipeline.VCPUQuotaService || aws.ToString(in.QuotaCode) != pipeline.VCPUQuotaCode {
		return nil, &sqtypes.NoSuchResourceException{Message: aws.String("The request failed because the specified resource does not exist.")}
	}
	return &servicequotas.GetServiceQuotaOutput{Quota: &sqtypes.ServiceQuota{
		ServiceCode: in.ServiceCode, QuotaCode: in.QuotaCode, QuotaName: aws.String(pipeline.VCPUQuotaName),
		Value: aws.Float64(float64(c.vcpuLimit)), Unit: aws.String("None")}}, nil
}
