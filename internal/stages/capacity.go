package stages

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// Quota and capacity: what an account may run, read before anything is created
// (Validate), and the launch errors that end a run with a CapacityError (LaunchBase,
// LaunchReplicas). The up-front check is a courtesy: where the quota cannot be read,
// the run goes on and RunInstances tells.

// isStandardFamily reports whether an instance type counts against the quota of the
// standard families (A, C, D, H, I, M, R, T, Z). Inf, DL, HPC, Mac and Trn types
// start with those letters but have quotas of their own.
func isStandardFamily(instanceType string) bool {
	family, _, _ := strings.Cut(instanceType, ".")
	for _, own := range []string{"inf", "dl", "hpc", "mac", "trn"} {
		if strings.HasPrefix(family, own) {
			return false
		}
	}
	return family != "" && strings.ContainsRune("acdhimrtz", rune(family[0]))
}

// quotaNamed names the quota that bounds instances of the type, for messages.
func quotaNamed(instanceType string) string {
	if isStandardFamily(instanceType) {
		return fmt.Sprintf("the quota %s %q", pipeline.VCPUQuotaCode, pipeline.VCPUQuotaName)
	}
	family, _, _ := strings.Cut(instanceType, ".")
	return fmt.Sprintf("the On-Demand vCPU quota of the %s family (not %s, which is the standard families')", family, pipeline.VCPUQuotaCode)
}

// vcpusAsked says how many vCPUs count instances of the type ask for.
func vcpusAsked(count int, instanceType string, perInstance int32) string {
	if perInstance <= 0 {
		return fmt.Sprintf("%d × %s, vCPUs unknown", count, instanceType)
	}
	return fmt.Sprintf("%s: %d × %s of %s", vcpus(int64(count)*int64(perInstance)), count, instanceType, vcpus(int64(perInstance)))
}

func vcpus(n int64) string {
	if n == 1 {
		return "1 vCPU"
	}
	return fmt.Sprintf("%d vCPUs", n)
}

// capacityError is the CapacityError of a launch (RunInstances, or StartInstances of
// the base instance) of count instances that EC2 refused for quota or capacity, or
// nil for any other error. where says where, for the message ("in subnet-...").
func capacityError(doc pipeline.Document, count int, where string, err error) error {
	code := ErrorCode(err)
	if code != codeVCPULimitExceeded && code != codeInstanceLimitExceeded && code != codeInsufficientCapacity {
		return nil
	}
	var perInstance int32
	if doc.Placement != nil {
		perInstance = doc.Placement.VCPUs
	}
	typ := doc.Config.InstanceType
	asked := vcpusAsked(count, typ, perInstance)
	if code == codeInsufficientCapacity {
		return &pipeline.CapacityError{Code: code, Message: fmt.Sprintf(
			"AWS has no %s capacity left for %d instances %s (%s), after the retries: %s; this is AWS's capacity, "+
				"not %s: try again later, or choose another instanceType", typ, count, where, asked, awsMessage(err), quotaNamed(typ))}
	}
	return &pipeline.CapacityError{Code: code, Message: fmt.Sprintf(
		"the account's quota refused %d more instances of %s %s (%s): %s; %s bounds the vCPUs of the account's running "+
			"On-Demand instances in this region: ask for more in Service Quotas, or lower replicaCount, or choose a smaller instanceType",
		count, typ, where, asked, awsMessage(err), quotaNamed(typ))}
}

// instanceTypeVCPUs is the type's default vCPU count; a type EC2 does not know is bad
// input on instanceType.
func (s *Stages) instanceTypeVCPUs(ctx context.Context, instanceType string) (int32, error) {
	out, err := s.EC2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{
		InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(instanceType)}})
	if ErrorCode(err) == codeInvalidInstanceType {
		return 0, &pipeline.BadInputError{Field: "instanceType", Message: "EC2 does not know it here: " + awsMessage(err)}
	}
	if err != nil {
		return 0, fmt.Errorf("describe instance type %s: %w", instanceType, err)
	}
	for _, t := range out.InstanceTypes {
		if string(t.InstanceType) == instanceType && t.VCpuInfo != nil {
			return aws.ToInt32(t.VCpuInfo.DefaultVCpus), nil
		}
	}
	return 0, &pipeline.BadInputError{Field: "instanceType", Message: fmt.Sprintf("EC2 does not list %s in this region", instanceType)}
}

// checkVCPUQuota refuses a run whose fleet cannot fit in the account's vCPU quota of
// the standard families beside what already runs. It reads the quota
// (servicequotas:GetServiceQuota) and the running On-Demand instances; when either
// cannot be read, it says so in the log and lets the run go on.
func (s *Stages) checkVCPUQuota(ctx context.Context, cfg pipeline.Config, perInstance int32) error {
	if !isStandardFamily(cfg.InstanceType) || perInstance <= 0 || s.Quotas == nil {
		return nil
	}
	q, err := s.Quotas.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{
		ServiceCode: aws.String(pipeline.VCPUQuotaService), QuotaCode: aws.String(pipeline.VCPUQuotaCode)})
	if err != nil || q.Quota == nil || q.Quota.Value == nil {
		Log(ctx).Warn("vCPU quota not read; RunInstances will tell if the fleet does not fit",
			"quotaCode", pipeline.VCPUQuotaCode, "error", fmt.Sprint(err))
		return nil
	}
	limit := int64(aws.ToFloat64(q.Quota.Value))
	inUse, err := s.vcpusInUse(ctx)
	if err != nil {
		Log(ctx).Warn("vCPUs in use not read; RunInstances will tell if the fleet does not fit", "error", err.Error())
		return nil
	}
	need := int64(cfg.FleetSize()) * int64(perInstance)
	Log(ctx).Info("vCPU quota", "quotaCode", pipeline.VCPUQuotaCode, "limit", limit, "inUse", inUse, "asked", need)
	if inUse+need <= limit {
		return nil
	}
	return &pipeline.CapacityError{Message: fmt.Sprintf(
		"the fleet needs %s, and %s allows %s in %s, of which %d are in use by running On-Demand instances: "+
			"ask for more in Service Quotas, or lower replicaCount, or choose a smaller instanceType",
		vcpusAsked(cfg.FleetSize(), cfg.InstanceType, perInstance), quotaNamed(cfg.InstanceType), vcpus(limit), s.Region, inUse)}
}

// vcpusInUse adds up the default vCPUs of the account's pending and running
// On-Demand instances of the standard families (Spot instances have a quota of their
// own).
func (s *Stages) vcpusInUse(ctx context.Context) (int64, error) {
	perType := map[string]int{} // instances of each type
	p := ec2.NewDescribeInstancesPaginator(s.EC2, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("describe the running instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				if in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot || !isStandardFamily(string(in.InstanceType)) {
					continue
				}
				perType[string(in.InstanceType)]++
			}
		}
	}
	var total int64
	types := make([]ec2types.InstanceType, 0, len(perType))
	for t := range perType {
		types = append(types, ec2types.InstanceType(t))
	}
	slices.Sort(types)
	for chunk := range slices.Chunk(types, 100) {
		out, err := s.EC2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: chunk})
		if err != nil {
			return 0, fmt.Errorf("describe the running instance types: %w", err)
		}
		for _, t := range out.InstanceTypes {
			if t.VCpuInfo != nil {
				total += int64(perType[string(t.InstanceType)]) * int64(aws.ToInt32(t.VCpuInfo.DefaultVCpus))
			}
		}
	}
	return total, nil
}
