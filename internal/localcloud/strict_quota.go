package localcloud

// The running On-Demand Standard instances vCPU quota (Strictness.VCPULimit; quota
// L-1216C47A): the A, C, D, H, I, M, R, T and Z families share one vCPU limit per
// region. A RunInstances counts the vCPUs of the pending and running instances of
// those families (moto's, times each type's default vCPUs) plus its own: past the
// limit it fails with VcpuLimitExceeded, as EC2 answers, unless a smaller launch
// still fits between MinCount and MaxCount: EC2 launches the largest number that does
// (moto would launch MinCount, so it is asked for that number). Service Quotas'
// GetServiceQuota answers the limit.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The quota as Service Quotas names it.
const (
	standardVCPUQuotaCode = "L-1216C47A"
	standardVCPUQuotaName = "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"
)

// standardFamily matches the instance families of the Standard bucket: a1, c6in, d3en,
// h1, i4i, im4gn, is4gen, m7i-flex, r6idn, t2, z1d (not inf, dl, hpc, trn, mac, u-,
// x, g, p, f or vt, which have quotas of their own).
var standardFamily = regexp.MustCompile(`^(a|c|d|h|i|im|is|m|r|t|z)[0-9]`)

func standardBucket(instanceType string) bool {
	return standardFamily.MatchString(instanceType)
}

// ec2DefaultInstanceType is what RunInstances launches when it names no type.
const ec2DefaultInstanceType = "m1.small"

func vcpuLimitMessage(limit int) string {
	return fmt.Sprintf("You have requested more vCPU capacity than your current vCPU limit of %d allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.", limit)
}

// overQuota refuses a RunInstances (and says so) that even at MinCount would take the
// region's Standard vCPUs past the limit; otherwise set asks moto for as many as fit,
// up to MaxCount.
func (g *Gateway) overQuota(ctx context.Context, w http.ResponseWriter, call apiCall, region string, set url.Values) bool {
	typ := call.Form.Get("InstanceType")
	if typ == "" {
		typ = ec2DefaultInstanceType
	}
	minCount, err1 := strconv.Atoi(call.Form.Get("MinCount"))
	maxCount, err2 := strconv.Atoi(call.Form.Get("MaxCount"))
	if !standardBucket(typ) || err1 != nil || err2 != nil || minCount < 1 || maxCount < minCount {
		return false // another bucket, or counts moto refuses itself
	}
	log := g.strictLog().With("check", CheckQuota, "call", call.key())
	each, err := g.defaultVCPUs(ctx, region, typ)
	if err != nil || each == 0 {
		log.Info("not checked: no vCPU count for the type", "resource", typ, "error", fmt.Sprint(err))
		return false
	}
	running, err := g.runningStandardVCPUs(ctx, region)
	if err != nil {
		log.Error("not checked: running instances unreadable", "error", err.Error())
		return false
	}
	limit := g.Strictness().VCPULimit
	fits := max(limit-running, 0) / each
	resource := fmt.Sprintf("%d-%d × %s (%d vCPUs each) in %s, %d of %d vCPUs running", minCount, maxCount, typ, each, region, running, limit)
	if fits < minCount {
		g.refuse(w, call, CheckQuota, resource, "VcpuLimitExceeded", vcpuLimitMessage(limit))
		return true
	}
	// EC2 launches as many as it can up to MaxCount; moto launches MinCount: ask moto
	// for what EC2 would launch.
	n := min(fits, maxCount)
	if n < maxCount {
		log.Info("launch made smaller to fit the vCPU limit", "resource", resource, "launching", n)
	}
	if n != minCount {
		set.Set("MinCount", strconv.Itoa(n))
		set.Set("MaxCount", strconv.Itoa(n))
	}
	return false
}

// runningStandardVCPUs adds up the default vCPUs of the region's pending and running
// instances of the Standard bucket, as moto has them.
func (g *Gateway) runningStandardVCPUs(ctx context.Context, region string) (int, error) {
	inRegion := func(o *ec2.Options) { o.Region = region }
	p := ec2.NewDescribeInstancesPaginator(g.ec2, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}},
	})
	total := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx, inRegion)
		if err != nil {
			return 0, err
		}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				typ := string(in.InstanceType)
				if !standardBucket(typ) {
					continue
				}
				n, err := g.defaultVCPUs(ctx, region, typ)
				if err != nil {
					return 0, err
				}
				total += n
			}
		}
	}
	return total, nil
}

// defaultVCPUs is an instance type's default vCPUs: the fixture's, or moto's
// DescribeInstanceTypes' (kept); 0 for a type moto does not know.
func (g *Gateway) defaultVCPUs(ctx context.Context, region, typ string) (int, error) {
	if n, ok := offerings.VCPUs[typ]; ok {
		return n, nil
	}
	s := g.strictState()
	s.mu.Lock()
	n, ok := s.vcpus[typ]
	s.mu.Unlock()
	if ok {
		return n, nil
	}
	out, err := g.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(typ)}},
		func(o *ec2.Options) { o.Region = region })
	if err != nil {
		return 0, err
	}
	if len(out.InstanceTypes) == 1 && out.InstanceTypes[0].VCpuInfo != nil {
		n = int(aws.ToInt32(out.InstanceTypes[0].VCpuInfo.DefaultVCpus))
	}
	s.mu.Lock()
	s.vcpus[typ] = n
	s.mu.Unlock()
	return n, nil
}

// serviceQuota is Service Quotas' ServiceQuota, as GetServiceQuota answers it.
type serviceQuota struct {
	ServiceCode         string      `json:"ServiceCode"`
	ServiceName         string      `json:"ServiceName"`
	QuotaArn            string      `json:"QuotaArn"`
	QuotaCode           string      `json:"QuotaCode"`
	QuotaName           string      `json:"QuotaName"`
	Value               float64     `json:"Value"`
	Unit                string      `json:"Unit"`
	Adjustable          bool        `json:"Adjustable"`
	GlobalQuota         bool        `json:"GlobalQuota"`
	QuotaAppliedAtLevel string      `json:"QuotaAppliedAtLevel"`
	UsageMetric         usageMetric `json:"UsageMetric"`
}

type usageMetric struct {
	MetricNamespace               string            `json:"MetricNamespace"`
	MetricName                    string            `json:"MetricName"`
	MetricDimensions              map[string]string `json:"MetricDimensions"`
	MetricStatisticRecommendation string            `json:"MetricStatisticRecommendation"`
}

// answerServiceQuota answers GetServiceQuota for the Standard vCPU quota with the
// configured limit; any other quota is moto's to answer.
func (g *Gateway) answerServiceQuota(w http.ResponseWriter, r *http.Request, call apiCall) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody))
	r.Body.Close()
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	if err != nil {
		return false
	}
	var in struct{ ServiceCode, QuotaCode string }
	if json.Unmarshal(body, &in) != nil || in.ServiceCode != "ec2" || in.QuotaCode != standardVCPUQuotaCode {
		return false
	}
	region := g.callRegion(call)
	out := map[string]serviceQuota{"Quota": {
		ServiceCode:         "ec2",
		ServiceName:         "Amazon Elastic Compute Cloud (Amazon EC2)",
		QuotaArn:            fmt.Sprintf("arn:%s:servicequotas:%s:%s:ec2/%s", partitionOf(region), region, Account, standardVCPUQuotaCode),
		QuotaCode:           standardVCPUQuotaCode,
		QuotaName:           standardVCPUQuotaName,
		Value:               float64(g.Strictness().VCPULimit),
		Unit:                "None",
		Adjustable:          true,
		QuotaAppliedAtLevel: "ACCOUNT",
		UsageMetric: usageMetric{
			MetricNamespace:               "AWS/Usage",
			MetricName:                    "ResourceCount",
			MetricDimensions:              map[string]string{"Class": "Standard/OnDemand", "Resource": "vCPU", "Service": "EC2", "Type": "Resource"},
			MetricStatisticRecommendation: "Maximum",
		},
	}}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newRequestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return true
}
