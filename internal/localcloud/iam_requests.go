package localcloud

// What AWS authorizes for each call a function makes, following the Service
// Authorization Reference (iam-data carries it; TestIAMMappingFollowsIAMData holds
// this table to it): the action, every resource ARN the action is evaluated on, and
// the condition keys in play, with the tags read from moto. A create is evaluated on
// the ARN to be ("instance/*") with the tags requested (aws:RequestTag/*,
// aws:TagKeys), and the tagging it implies (ec2:CreateTags with ec2:CreateAction,
// elasticloadbalancing:AddTags with elasticloadbalancing:CreateAction) on each tagged
// resource; a change or delete is evaluated on the named resource with its tags
// (aws:ResourceTag/*). Describe calls have no resource-level permissions: "*".
//
// iam-data merges ELB's two versions under one prefix and keeps Classic's entry
// where both name an action, so it lists no target group or listener for AddTags;
// it also has no ARN without an account for SSM's public parameters. Those resources
// are evaluated unvalidated (iamEval.Unsafe), each one declared here.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/smithy-go"
)

// iamRequest is one call being mapped.
type iamRequest struct {
	g         *Gateway
	call      apiCall
	region    string
	partition string
	account   string
	body      []byte // a JSON-protocol request's body
}

// iamMapper returns what AWS evaluates for a call; an *iamNotFound error means the
// call names a resource that does not exist (moto answers it).
type iamMapper func(ctx context.Context, q *iamRequest) ([]iamEval, error)

// iamUnmapped is a call of a known action in a form the mapping does not know (a
// RunInstances from a launch template): refused, as an unknown action is.
type iamUnmapped struct{ why string }

func (e *iamUnmapped) Error() string { return e.why }

// iamNotFound is a resource a call names that does not exist.
type iamNotFound struct{ what string }

func (e *iamNotFound) Error() string { return e.what + " does not exist" }

// iamDescribes are the describe calls the functions make (and their neighbours): no
// resource-level permissions, so AWS evaluates them on "*".
var iamDescribes = []string{
	"ec2:DescribeAvailabilityZones", "ec2:DescribeImages", "ec2:DescribeInstanceStatus",
	"ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
	"ec2:DescribeKeyPairs", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRegions",
	"ec2:DescribeSecurityGroups", "ec2:DescribeSnapshots", "ec2:DescribeSubnets", "ec2:DescribeTags",
	"ec2:DescribeVolumes", "ec2:DescribeVpcs",
	"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancerAttributes",
	"elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeRules",
	"elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTargetGroupAttributes",
	"elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
}

// iamActions maps "service:Action" to what AWS evaluates for it. An action missing
// here is refused (iamCheck).
var iamActions = func() map[string]iamMapper {
	m := map[string]iamMapper{
		"ec2:RunInstances":                  iamMapRunInstances,
		"ec2:CreateImage":                   iamMapCreateImage,
		"ec2:CreateSecurityGroup":           iamMapCreateSecurityGroup,
		"ec2:AuthorizeSecurityGroupIngress": iamMapAuthorizeIngress,
		"ec2:TerminateInstances":            iamMapInstances("InstanceId"),
		"ec2:StopInstances":                 iamMapInstances("InstanceId"),
		"ec2:StartInstances":                iamMapInstances("InstanceId"),
		"ec2:RebootInstances":               iamMapInstances("InstanceId"),
		"ec2:GetConsoleOutput":              iamMapInstances("InstanceId"),
		"ec2:DeregisterImage":               iamMapDeregisterImage,
		"ec2:DeleteSnapshot":                iamMapDeleteSnapshot,
		"ec2:DeleteSecurityGroup":           iamMapDeleteSecurityGroup,

		"elasticloadbalancing:CreateLoadBalancer":          iamMapCreateLoadBalancer,
		"elasticloadbalancing:CreateTargetGroup":           iamMapCreateTargetGroup,
		"elasticloadbalancing:CreateListener":              iamMapCreateListener,
		"elasticloadbalancing:RegisterTargets":             iamMapELBResource("TargetGroupArn"),
		"elasticloadbalancing:DeregisterTargets":           iamMapELBResource("TargetGroupArn"),
		"elasticloadbalancing:ModifyTargetGroupAttributes": iamMapELBResource("TargetGroupArn"),
		"elasticloadbalancing:DeleteListener":              iamMapELBResource("ListenerArn"),
		"elasticloadbalancing:DeleteLoadBalancer":          iamMapELBResource("LoadBalancerArn"),
		"elasticloadbalancing:DeleteTargetGroup":           iamMapELBResource("TargetGroupArn"),

		"ssm:GetParameter":              iamMapGetParameter,
		"servicequotas:GetServiceQuota": iamMapGetServiceQuota,

		"dynamodb:GetItem":    iamMapItem("Key"),
		"dynamodb:PutItem":    iamMapItem("Item"),
		"dynamodb:UpdateItem": iamMapItem("Key"),
		"dynamodb:DeleteItem": iamMapItem("Key"),

		"states:DescribeExecution": iamMapExecution,
		"states:StopExecution":     iamMapExecution,
	}
	for _, a := range iamDescribes {
		m[a] = iamMapDescribe
	}
	return m
}()

// iamDataGaps are the (action, resource type) pairs AWS evaluates that iam-data does
// not list: evaluated with iamEval.Unsafe.
var iamDataGaps = map[string]string{
	"elasticloadbalancing:AddTags targetgroup":  "iam-data keeps Classic ELB's AddTags (load balancers only) where ELBv2's also names target groups",
	"elasticloadbalancing:AddTags listener/app": "iam-data keeps Classic ELB's AddTags (load balancers only) where ELBv2's also names listeners",
	"elasticloadbalancing:AddTags listener/net": "iam-data keeps Classic ELB's AddTags (load balancers only) where ELBv2's also names listeners",
	"ssm:GetParameter parameter":                "iam-data's parameter ARN has an account; AWS's public parameters (/aws/service/...) have none",
}

func (q *iamRequest) form() url.Values {
	if q.call.Form == nil {
		return url.Values{}
	}
	return q.call.Form
}

// eval is an evaluation of the call's own action.
func (q *iamRequest) eval(typ, resource string, ctx map[string]any) iamEval {
	return iamEval{Action: q.call.key(), Resource: resource, Type: typ, Context: q.serviceContext(ctx)}
}

// implied is an evaluation of another action AWS authorizes for the call.
func (q *iamRequest) implied(action, typ, resource string, ctx map[string]any) iamEval {
	ev := iamEval{Action: action, Resource: resource, Type: typ, Context: q.serviceContext(ctx), ImpliedBy: q.call.key()}
	if _, gap := iamDataGaps[action+" "+typ]; gap {
		ev.Unsafe = true
	}
	return ev
}

// serviceContext adds the keys every call of the service has (ec2:Region).
func (q *iamRequest) serviceContext(ctx map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range ctx {
		out[k] = v
	}
	if q.call.Service == "ec2" {
		out["ec2:Region"] = q.region
	}
	return out
}

func (q *iamRequest) ec2ARN(resource string) string {
	return "arn:" + q.partition + ":ec2:" + q.region + ":" + q.account + ":" + resource
}

// ec2RegionalARN is an EC2 resource whose ARN has no account (images, snapshots).
func (q *iamRequest) ec2RegionalARN(resource string) string {
	return "arn:" + q.partition + ":ec2:" + q.region + "::" + resource
}

func (q *iamRequest) elbARN(resource string) string {
	return "arn:" + q.partition + ":elasticloadbalancing:" + q.region + ":" + q.account + ":" + resource
}

func (q *iamRequest) ec2Opt(o *ec2.Options)      { o.Region = q.region }
func (q *iamRequest) ddbOpt(o *dynamodb.Options) { o.Region = q.region }
func (q *iamRequest) elbOpt(o *elb.Options)      { o.Region = q.region }

// --- context keys

// iamRequestTags are the keys of tags a create asks for.
func iamRequestTags(tags map[string]string) map[string]any {
	if len(tags) == 0 {
		return map[string]any{}
	}
	out := map[string]any{}
	keys := make([]string, 0, len(tags))
	for k, v := range tags {
		out["aws:RequestTag/"+k] = v
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out["aws:TagKeys"] = keys
	return out
}

// iamResourceTags are the keys of an existing resource's tags, under aws:ResourceTag/
// and the service's own prefix (ec2:ResourceTag/, elasticloadbalancing:ResourceTag/).
func iamResourceTags(service string, tags map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range tags {
		out["aws:ResourceTag/"+k] = v
		out[service+":ResourceTag/"+k] = v
	}
	return out
}

func iamWith(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// --- query parameters

// iamFormList is prefix.1, prefix.2, ... in index order.
func iamFormList(form url.Values, prefix string) []string {
	type item struct {
		i int
		v string
	}
	var items []item
	for k, v := range form {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok || len(v) == 0 {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil {
			items = append(items, item{i, v[0]})
		}
	}
	sort.Slice(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, len(items))
	for n, it := range items {
		out[n] = it.v
	}
	return out
}

// iamIndexed groups prefix.N.rest parameters by N: N → rest → value.
func iamIndexed(form url.Values, prefix string) map[int]url.Values {
	out := map[int]url.Values{}
	for k, v := range form {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		n, sub, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if out[i] == nil {
			out[i] = url.Values{}
		}
		out[i][sub] = v
	}
	return out
}

// iamTagList reads Tag.N.Key / Tag.N.Value style lists under prefix.
func iamTagList(form url.Values, prefix string) map[string]string {
	out := map[string]string{}
	for _, t := range iamIndexed(form, prefix) {
		if k := t.Get("Key"); k != "" {
			out[k] = t.Get("Value")
		}
	}
	return out
}

// iamTagSpecs reads TagSpecification.N: resource type → tags.
func iamTagSpecs(form url.Values) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, spec := range iamIndexed(form, "TagSpecification") {
		typ := spec.Get("ResourceType")
		if typ == "" {
			continue
		}
		if out[typ] == nil {
			out[typ] = map[string]string{}
		}
		for k, v := range iamTagList(spec, "Tag") {
			out[typ][k] = v
		}
	}
	return out
}

// --- reading resources from moto

// iamLookupErr turns an EC2 or ELB error saying a resource does not exist into
// *iamNotFound.
func iamLookupErr(what string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		if strings.Contains(code, "NotFound") || strings.Contains(code, "Malformed") || code == "ValidationError" ||
			code == "ValidationException" {
			return &iamNotFound{what: what}
		}
	}
	return fmt.Errorf("reading %s from moto: %w", what, err)
}

func (q *iamRequest) instanceTags(ctx context.Context, ids []string) (map[string]map[string]string, error) {
	out, err := q.g.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, q.ec2Opt)
	if err != nil {
		return nil, iamLookupErr("instance "+strings.Join(ids, ", "), err)
	}
	tags := map[string]map[string]string{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			tags[aws.ToString(in.InstanceId)] = ec2TagMap(in.Tags)
		}
	}
	for _, id := range ids {
		if _, ok := tags[id]; !ok {
			return nil, &iamNotFound{what: "instance " + id}
		}
	}
	return tags, nil
}

func (q *iamRequest) imageTags(ctx context.Context, id string) (map[string]string, error) {
	out, err := q.g.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}}, q.ec2Opt)
	if err != nil {
		return nil, iamLookupErr("image "+id, err)
	}
	if len(out.Images) == 0 {
		return nil, &iamNotFound{what: "image " + id}
	}
	return ec2TagMap(out.Images[0].Tags), nil
}

func (q *iamRequest) snapshotTags(ctx context.Context, id string) (map[string]string, error) {
	out, err := q.g.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}}, q.ec2Opt)
	if err != nil {
		return nil, iamLookupErr("snapshot "+id, err)
	}
	if len(out.Snapshots) == 0 {
		return nil, &iamNotFound{what: "snapshot " + id}
	}
	return ec2TagMap(out.Snapshots[0].Tags), nil
}

// securityGroups reads groups by id (and by name, in the default VPC, as EC2-Classic
// style calls name them): id → tags.
func (q *iamRequest) securityGroups(ctx context.Context, ids, names []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if len(ids) > 0 {
		res, err := q.g.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: ids}, q.ec2Opt)
		if err != nil {
			return nil, iamLookupErr("security group "+strings.Join(ids, ", "), err)
		}
		for _, sg := range res.SecurityGroups {
			out[aws.ToString(sg.GroupId)] = ec2TagMap(sg.Tags)
		}
		for _, id := range ids {
			if _, ok := out[id]; !ok {
				return nil, &iamNotFound{what: "security group " + id}
			}
		}
	}
	if len(names) > 0 {
		vpc, _, err := q.defaultVPC(ctx)
		if err != nil {
			return nil, err
		}
		res, err := q.g.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
			{Name: aws.String("group-name"), Values: names}, {Name: aws.String("vpc-id"), Values: []string{vpc}},
		}}, q.ec2Opt)
		if err != nil {
			return nil, iamLookupErr("security group "+strings.Join(names, ", "), err)
		}
		if len(res.SecurityGroups) < len(names) {
			return nil, &iamNotFound{what: "security group " + strings.Join(names, ", ")}
		}
		for _, sg := range res.SecurityGroups {
			out[aws.ToString(sg.GroupId)] = ec2TagMap(sg.Tags)
		}
	}
	return out, nil
}

func (q *iamRequest) subnet(ctx context.Context, id string) (vpc string, tags map[string]string, err error) {
	out, err := q.g.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{id}}, q.ec2Opt)
	if err != nil {
		return "", nil, iamLookupErr("subnet "+id, err)
	}
	if len(out.Subnets) == 0 {
		return "", nil, &iamNotFound{what: "subnet " + id}
	}
	return aws.ToString(out.Subnets[0].VpcId), ec2TagMap(out.Subnets[0].Tags), nil
}

// defaultSubnet is the default VPC's subnet a launch that names none gets (in zone,
// if given).
func (q *iamRequest) defaultSubnet(ctx context.Context, zone string) (id, vpc string, tags map[string]string, err error) {
	filters := []ec2types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}}
	if zone != "" {
		filters = append(filters, ec2types.Filter{Name: aws.String("availability-zone"), Values: []string{zone}})
	}
	out, err := q.g.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: filters}, q.ec2Opt)
	if err != nil {
		return "", "", nil, fmt.Errorf("reading the default subnets from moto: %w", err)
	}
	if len(out.Subnets) == 0 {
		return "", "", nil, &iamNotFound{what: "a default subnet"}
	}
	sort.Slice(out.Subnets, func(i, j int) bool {
		return aws.ToString(out.Subnets[i].AvailabilityZone) < aws.ToString(out.Subnets[j].AvailabilityZone)
	})
	sn := out.Subnets[0]
	return aws.ToString(sn.SubnetId), aws.ToString(sn.VpcId), ec2TagMap(sn.Tags), nil
}

func (q *iamRequest) vpcTags(ctx context.Context, id string) (map[string]string, error) {
	out, err := q.g.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}}, q.ec2Opt)
	if err != nil {
		return nil, iamLookupErr("VPC "+id, err)
	}
	if len(out.Vpcs) == 0 {
		return nil, &iamNotFound{what: "VPC " + id}
	}
	return ec2TagMap(out.Vpcs[0].Tags), nil
}

func (q *iamRequest) defaultVPC(ctx context.Context) (string, map[string]string, error) {
	out, err := q.g.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []ec2types.Filter{
		{Name: aws.String("is-default"), Values: []string{"true"}},
	}}, q.ec2Opt)
	if err != nil {
		return "", nil, fmt.Errorf("reading the default VPC from moto: %w", err)
	}
	if len(out.Vpcs) == 0 {
		return "", nil, &iamNotFound{what: "a default VPC"}
	}
	return aws.ToString(out.Vpcs[0].VpcId), ec2TagMap(out.Vpcs[0].Tags), nil
}

// defaultGroup is a VPC's default security group.
func (q *iamRequest) defaultGroup(ctx context.Context, vpc string) (string, map[string]string, error) {
	out, err := q.g.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
		{Name: aws.String("group-name"), Values: []string{"default"}}, {Name: aws.String("vpc-id"), Values: []string{vpc}},
	}}, q.ec2Opt)
	if err != nil {
		return "", nil, fmt.Errorf("reading the default security group from moto: %w", err)
	}
	if len(out.SecurityGroups) == 0 {
		return "", nil, &iamNotFound{what: "the default security group of " + vpc}
	}
	return aws.ToString(out.SecurityGroups[0].GroupId), ec2TagMap(out.SecurityGroups[0].Tags), nil
}

func (q *iamRequest) keyPairTags(ctx context.Context, name string) (map[string]string, error) {
	out, err := q.g.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}}, q.ec2Opt)
	if err != nil {
		return nil, iamLookupErr("key pair "+name, err)
	}
	if len(out.KeyPairs) == 0 {
		return nil, &iamNotFound{what: "key pair " + name}
	}
	return ec2TagMap(out.KeyPairs[0].Tags), nil
}

// elbTags reads an ELBv2 resource's tags, after checking that it exists (moto's
// DescribeTags answers for any ARN).
func (q *iamRequest) elbTags(ctx context.Context, arn string) (map[string]string, error) {
	var err error
	switch {
	case strings.Contains(arn, ":loadbalancer/"):
		var out *elb.DescribeLoadBalancersOutput
		if out, err = q.g.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{arn}}, q.elbOpt); err == nil && len(out.LoadBalancers) == 0 {
			return nil, &iamNotFound{what: arn}
		}
	case strings.Contains(arn, ":targetgroup/"):
		var out *elb.DescribeTargetGroupsOutput
		if out, err = q.g.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{arn}}, q.elbOpt); err == nil && len(out.TargetGroups) == 0 {
			return nil, &iamNotFound{what: arn}
		}
	case strings.Contains(arn, ":listener/"):
		var out *elb.DescribeListenersOutput
		if out, err = q.g.elb.DescribeListeners(ctx, &elb.DescribeListenersInput{ListenerArns: []string{arn}}, q.elbOpt); err == nil && len(out.Listeners) == 0 {
			return nil, &iamNotFound{what: arn}
		}
	default:
		return nil, &iamNotFound{what: arn}
	}
	if err != nil {
		return nil, iamLookupErr(arn, err)
	}
	out, err := q.g.elb.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: []string{arn}}, q.elbOpt)
	if err != nil {
		return nil, iamLookupErr(arn, err)
	}
	tags := map[string]string{}
	for _, d := range out.TagDescriptions {
		for _, t := range d.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return tags, nil
}

// --- EC2

func iamMapDescribe(_ context.Context, q *iamRequest) ([]iamEval, error) {
	return []iamEval{q.eval("", "*", nil)}, nil
}

// createTags is the ec2:CreateTags AWS authorizes for tags a create asks for, on
// each tagged resource, with ec2:CreateAction naming the create.
func (q *iamRequest) createTags(typ, arn string, tags map[string]string) []iamEval {
	if len(tags) == 0 {
		return nil
	}
	return []iamEval{q.implied("ec2:CreateTags", typ, arn, iamWith(iamRequestTags(tags), map[string]any{"ec2:CreateAction": q.call.Action}))}
}

func iamMapRunInstances(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	form := q.form()
	image := form.Get("ImageId")
	if image == "" {
		return nil, &iamUnmapped{why: "the amifleet local cloud does not know which resources AWS evaluates for a RunInstances without ImageId (from a launch template)"}
	}
	specs := iamTagSpecs(form)
	nics := iamIndexed(form, "NetworkInterface")
	var nic url.Values
	if len(nics) > 0 {
		keys := make([]int, 0, len(nics))
		for k := range nics {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		nic = nics[keys[0]]
	}
	subnetID := form.Get("SubnetId")
	if subnetID == "" && nic != nil {
		subnetID = nic.Get("SubnetId")
	}
	groupIDs := iamFormList(form, "SecurityGroupId")
	for _, n := range nics {
		groupIDs = append(groupIDs, iamFormList(n, "SecurityGroupId")...)
	}
	keyName := form.Get("KeyName")

	// The resources the launch names, read from moto at once.
	var (
		imgTags, subnetTags, keyTags map[string]string
		vpc                          string
		groups                       map[string]map[string]string
	)
	err := iamParallel(
		func() (err error) { imgTags, err = q.imageTags(ctx, image); return err },
		func() (err error) {
			// The subnet: named, on the first network interface, or the default VPC's.
			if subnetID != "" {
				vpc, subnetTags, err = q.subnet(ctx, subnetID)
			} else {
				subnetID, vpc, subnetTags, err = q.defaultSubnet(ctx, form.Get("Placement.AvailabilityZone"))
			}
			return err
		},
		func() (err error) {
			groups, err = q.securityGroups(ctx, groupIDs, iamFormList(form, "SecurityGroup"))
			return err
		},
		func() (err error) {
			if keyName != "" {
				keyTags, err = q.keyPairTags(ctx, keyName)
			}
			return err
		},
	)
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		// No group named: the VPC's default one.
		id, tags, err := q.defaultGroup(ctx, vpc)
		if err != nil {
			return nil, err
		}
		groups[id] = tags
	}

	instanceCtx := iamRequestTags(specs["instance"])
	if t := form.Get("InstanceType"); t != "" {
		instanceCtx["ec2:InstanceType"] = t
	}
	nicCtx := iamRequestTags(specs["network-interface"])
	if nic != nil && nic.Get("AssociatePublicIpAddress") != "" {
		nicCtx["ec2:AssociatePublicIpAddress"] = strings.ToLower(nic.Get("AssociatePublicIpAddress"))
	}
	evals := []iamEval{
		q.eval("image", q.ec2RegionalARN("image/"+image), iamResourceTags("ec2", imgTags)),
		q.eval("instance", q.ec2ARN("instance/*"), instanceCtx),
		// The root volume, created with every instance of an EBS-backed image.
		q.eval("volume", q.ec2ARN("volume/*"), iamRequestTags(specs["volume"])),
		q.eval("network-interface", q.ec2ARN("network-interface/*"), nicCtx),
		q.eval("subnet", q.ec2ARN("subnet/"+subnetID), iamResourceTags("ec2", subnetTags)),
	}
	ids := make([]string, 0, len(groups))
	for id := range groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		evals = append(evals, q.eval("security-group", q.ec2ARN("security-group/"+id), iamResourceTags("ec2", groups[id])))
	}
	if keyName != "" {
		evals = append(evals, q.eval("key-pair", q.ec2ARN("key-pair/"+keyName), iamResourceTags("ec2", keyTags)))
	}
	evals = append(evals, q.createTags("instance", q.ec2ARN("instance/*"), specs["instance"])...)
	evals = append(evals, q.createTags("volume", q.ec2ARN("volume/*"), specs["volume"])...)
	evals = append(evals, q.createTags("network-interface", q.ec2ARN("network-interface/*"), specs["network-interface"])...)
	return evals, nil
}

// iamParallel runs fs at once and returns the first error (a not-found one first: the
// call is moto's to answer).
func iamParallel(fs ...func() error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	wg.Wait()
	var first error
	for _, err := range errs {
		var nf *iamNotFound
		if errors.As(err, &nf) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

func iamMapCreateImage(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	form := q.form()
	id := form.Get("InstanceId")
	tags, err := q.instanceTags(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	specs := iamTagSpecs(form)
	evals := []iamEval{
		q.eval("instance", q.ec2ARN("instance/"+id), iamResourceTags("ec2", tags[id])),
		q.eval("image", q.ec2RegionalARN("image/*"), iamRequestTags(specs["image"])),
		// The snapshots of the instance's EBS volumes.
		q.eval("snapshot", q.ec2RegionalARN("snapshot/*"), iamRequestTags(specs["snapshot"])),
	}
	evals = append(evals, q.createTags("image", q.ec2RegionalARN("image/*"), specs["image"])...)
	evals = append(evals, q.createTags("snapshot", q.ec2RegionalARN("snapshot/*"), specs["snapshot"])...)
	return evals, nil
}

func iamMapCreateSecurityGroup(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	form := q.form()
	vpc := form.Get("VpcId")
	var tags map[string]string
	var err error
	if vpc == "" {
		vpc, tags, err = q.defaultVPC(ctx)
	} else {
		tags, err = q.vpcTags(ctx, vpc)
	}
	if err != nil {
		return nil, err
	}
	specs := iamTagSpecs(form)
	evals := []iamEval{
		q.eval("security-group", q.ec2ARN("security-group/*"), iamRequestTags(specs["security-group"])),
		q.eval("vpc", q.ec2ARN("vpc/"+vpc), iamResourceTags("ec2", tags)),
	}
	return append(evals, q.createTags("security-group", q.ec2ARN("security-group/*"), specs["security-group"])...), nil
}

func iamMapAuthorizeIngress(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	form := q.form()
	evals, err := q.namedGroup(ctx)
	if err != nil {
		return nil, err
	}
	if tags := iamTagSpecs(form)["security-group-rule"]; len(tags) > 0 {
		evals = append(evals, q.eval("security-group-rule", q.ec2ARN("security-group-rule/*"), iamRequestTags(tags)))
		evals = append(evals, q.createTags("security-group-rule", q.ec2ARN("security-group-rule/*"), tags)...)
	}
	return evals, nil
}

// iamMapInstances evaluates the call on each instance it names, with its tags.
func iamMapInstances(param string) iamMapper {
	return func(ctx context.Context, q *iamRequest) ([]iamEval, error) {
		ids := iamFormList(q.form(), param)
		if len(ids) == 0 {
			if id := q.form().Get(param); id != "" {
				ids = []string{id}
			}
		}
		if len(ids) == 0 {
			return nil, &iamNotFound{what: "an instance (the call names none)"}
		}
		tags, err := q.instanceTags(ctx, ids)
		if err != nil {
			return nil, err
		}
		evals := make([]iamEval, 0, len(ids))
		for _, id := range ids {
			evals = append(evals, q.eval("instance", q.ec2ARN("instance/"+id), iamResourceTags("ec2", tags[id])))
		}
		return evals, nil
	}
}

func iamMapDeregisterImage(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	id := q.form().Get("ImageId")
	tags, err := q.imageTags(ctx, id)
	if err != nil {
		return nil, err
	}
	return []iamEval{q.eval("image", q.ec2RegionalARN("image/"+id), iamResourceTags("ec2", tags))}, nil
}

func iamMapDeleteSnapshot(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	id := q.form().Get("SnapshotId")
	tags, err := q.snapshotTags(ctx, id)
	if err != nil {
		return nil, err
	}
	return []iamEval{q.eval("snapshot", q.ec2RegionalARN("snapshot/"+id), iamResourceTags("ec2", tags))}, nil
}

func iamMapDeleteSecurityGroup(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	return q.namedGroup(ctx)
}

// namedGroup evaluates the security group a call names, by GroupId or GroupName, with
// its tags.
func (q *iamRequest) namedGroup(ctx context.Context) ([]iamEval, error) {
	form := q.form()
	var ids, names []string
	if id := form.Get("GroupId"); id != "" {
		ids = []string{id}
	} else if name := form.Get("GroupName"); name != "" {
		names = []string{name}
	}
	groups, err := q.securityGroups(ctx, ids, names)
	if err != nil {
		return nil, err
	}
	var evals []iamEval
	for id, tags := range groups {
		evals = append(evals, q.eval("security-group", q.ec2ARN("security-group/"+id), iamResourceTags("ec2", tags)))
	}
	return evals, nil
}

// --- ELBv2

// iamELBType is an ELBv2 ARN's resource type as iam-data names it for action.
func iamELBType(action, arn string) string {
	_, res, _ := strings.Cut(arn, ":elasticloadbalancing:")
	if p := strings.SplitN(res, ":", 3); len(p) == 3 {
		res = p[2]
	}
	parts := strings.Split(res, "/")
	switch parts[0] {
	case "targetgroup":
		return "targetgroup"
	case "listener", "listener-rule":
		if len(parts) > 1 {
			return parts[0] + "/" + parts[1]
		}
	case "loadbalancer":
		// iam-data keeps Classic ELB's entry (type "loadbalancer") for the actions
		// both versions have; ELBv2's own actions name loadbalancer/app/ etc.
		switch action {
		case "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
			"elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags":
			return "loadbalancer"
		}
		if len(parts) > 1 {
			return "loadbalancer/" + parts[1] + "/"
		}
	}
	return parts[0]
}

// addTags is the elasticloadbalancing:AddTags AWS authorizes for tags a create asks
// for, with elasticloadbalancing:CreateAction naming the create.
func (q *iamRequest) addTags(arn string, tags map[string]string) []iamEval {
	if len(tags) == 0 {
		return nil
	}
	const action = "elasticloadbalancing:AddTags"
	return []iamEval{q.implied(action, iamELBType(action, arn), arn,
		iamWith(iamRequestTags(tags), map[string]any{"elasticloadbalancing:CreateAction": q.call.Action}))}
}

var iamELBTypeSegment = map[string]string{"application": "app", "network": "net", "gateway": "gwy"}

func iamMapCreateLoadBalancer(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	form := q.form()
	typ := strings.ToLower(form.Get("Type"))
	if typ == "" {
		typ = "application"
	}
	seg, ok := iamELBTypeSegment[typ]
	if !ok {
		seg = typ
	}
	arn := q.elbARN("loadbalancer/" + seg + "/" + form.Get("Name") + "/*")
	tags := iamTagList(form, "Tags.member")
	ctxKeys := iamRequestTags(tags)
	if typ != "gateway" {
		scheme := form.Get("Scheme")
		if scheme == "" {
			scheme = "internet-facing"
		}
		ctxKeys["elasticloadbalancing:Scheme"] = scheme
	}
	evals := []iamEval{q.eval(iamELBType(q.call.key(), arn), arn, ctxKeys)}
	evals = append(evals, q.addTags(arn, tags)...)
	// The account's first load balancer creates ELB's service-linked role, as the
	// caller.
	const slr = "AWSServiceRoleForElasticLoadBalancing"
	exists, err := q.g.iamRoleExists(ctx, slr)
	if err != nil {
		return nil, fmt.Errorf("reading ELB's service-linked role from moto: %w", err)
	}
	if !exists {
		evals = append(evals, q.implied("iam:CreateServiceLinkedRole", "role",
			"arn:"+q.partition+":iam::"+q.account+":role/aws-service-role/elasticloadbalancing.amazonaws.com/"+slr,
			map[string]any{"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}))
	}
	return evals, nil
}

func iamMapCreateTargetGroup(_ context.Context, q *iamRequest) ([]iamEval, error) {
	form := q.form()
	arn := q.elbARN("targetgroup/" + form.Get("Name") + "/*")
	tags := iamTagList(form, "Tags.member")
	evals := []iamEval{q.eval("targetgroup", arn, iamRequestTags(tags))}
	return append(evals, q.addTags(arn, tags)...), nil
}

// iamMapCreateListener: CreateListener is authorized on the load balancer (the Service
// Authorization Reference lists no listener for it), with the listener's tags as the
// request's; tagging the new listener is AddTags on it.
func iamMapCreateListener(ctx context.Context, q *iamRequest) ([]iamEval, error) {
	form := q.form()
	lb := form.Get("LoadBalancerArn")
	lbTags, err := q.elbTags(ctx, lb)
	if err != nil {
		return nil, err
	}
	tags := iamTagList(form, "Tags.member")
	ctxKeys := iamWith(iamResourceTags("elasticloadbalancing", lbTags), iamRequestTags(tags))
	if p := form.Get("Protocol"); p != "" {
		ctxKeys["elasticloadbalancing:ListenerProtocol"] = p
	}
	evals := []iamEval{q.eval(iamELBType(q.call.key(), lb), lb, ctxKeys)}
	// arn:...:loadbalancer/app/NAME/ID → arn:...:listener/app/NAME/ID/*
	listener := strings.Replace(lb, ":loadbalancer/", ":listener/", 1) + "/*"
	return append(evals, q.addTags(listener, tags)...), nil
}

// iamMapELBResource evaluates the call on the ELBv2 resource its param names.
func iamMapELBResource(param string) iamMapper {
	return func(ctx context.Context, q *iamRequest) ([]iamEval, error) {
		arn := q.form().Get(param)
		tags, err := q.elbTags(ctx, arn)
		if err != nil {
			return nil, err
		}
		return []iamEval{q.eval(iamELBType(q.call.key(), arn), arn, iamResourceTags("elasticloadbalancing", tags))}, nil
	}
}

// --- JSON protocols

func (q *iamRequest) jsonBody() (map[string]any, error) {
	var body map[string]any
	if len(q.body) == 0 {
		return map[string]any{}, nil
	}
	if err := json.Unmarshal(q.body, &body); err != nil {
		return nil, fmt.Errorf("reading the %s request: %w", q.call.key(), err)
	}
	return body, nil
}

func iamMapGetParameter(_ context.Context, q *iamRequest) ([]iamEval, error) {
	body, err := q.jsonBody()
	if err != nil {
		return nil, err
	}
	name, _ := body["Name"].(string)
	if strings.HasPrefix(name, "arn:") {
		ev := q.eval("parameter", name, nil)
		ev.Unsafe = strings.Contains(name, "::parameter/")
		return []iamEval{ev}, nil
	}
	name = strings.TrimPrefix(name, "/")
	// AWS's public parameters belong to no account: their ARN has none.
	if strings.HasPrefix(name, "aws/service/") {
		ev := q.eval("parameter", "arn:"+q.partition+":ssm:"+q.region+"::parameter/"+name, nil)
		ev.Unsafe = true
		return []iamEval{ev}, nil
	}
	return []iamEval{q.eval("parameter", "arn:"+q.partition+":ssm:"+q.region+":"+q.account+":parameter/"+name, nil)}, nil
}

func iamMapGetServiceQuota(_ context.Context, q *iamRequest) ([]iamEval, error) {
	body, err := q.jsonBody()
	if err != nil {
		return nil, err
	}
	service, _ := body["ServiceCode"].(string)
	quota, _ := body["QuotaCode"].(string)
	arn := "arn:" + q.partition + ":servicequotas:" + q.region + ":" + q.account + ":" + service + "/" + quota
	return []iamEval{q.eval("quota", arn, map[string]any{"servicequotas:service": service})}, nil
}

// --- DynamoDB

// iamMapItem evaluates an item call on its table (TableName, a name or an ARN), with
// the table's tags and, as dynamodb:LeadingKeys, the partition key value the call's
// keyMember ("Key", or PutItem's "Item") gives. The other keys the Service
// Authorization Reference lists (dynamodb:Attributes, dynamodb:Select,
// dynamodb:EnclosingOperation) are not computed: amifleet's roles do not use them.
func iamMapItem(keyMember string) iamMapper {
	return func(ctx context.Context, q *iamRequest) ([]iamEval, error) {
		body, err := q.jsonBody()
		if err != nil {
			return nil, err
		}
		name, _ := body["TableName"].(string)
		if name == "" {
			return nil, &iamNotFound{what: "a table (the call names none)"}
		}
		arn := name
		if !strings.HasPrefix(name, "arn:") {
			arn = "arn:" + q.partition + ":dynamodb:" + q.region + ":" + q.account + ":table/" + name
		}
		var (
			hashKey string
			tags    map[string]string
		)
		err = iamParallel(
			func() (err error) { hashKey, err = q.tableHashKey(ctx, name); return err },
			func() (err error) { tags, err = q.tableTags(ctx, arn); return err },
		)
		if err != nil {
			return nil, err
		}
		keys := map[string]any{}
		for k, v := range tags {
			// DynamoDB's tag condition key is aws:ResourceTag only (no
			// dynamodb:ResourceTag).
			keys["aws:ResourceTag/"+k] = v
		}
		item, _ := body[keyMember].(map[string]any)
		if v, ok := iamAttributeValue(item[hashKey]); ok {
			keys["dynamodb:LeadingKeys"] = []string{v}
		}
		for _, k := range []string{"ReturnValues", "ReturnConsumedCapacity"} {
			if v, ok := body[k].(string); ok && v != "" {
				keys["dynamodb:"+k] = v
			}
		}
		return []iamEval{q.eval("table", arn, keys)}, nil
	}
}

// iamAttributeValue is a key attribute's value as IAM compares it: the string of an
// S, N or B attribute value ({"S": "spring-demo"}).
func iamAttributeValue(v any) (string, bool) {
	m, _ := v.(map[string]any)
	for _, typ := range []string{"S", "N", "B"} {
		if s, ok := m[typ].(string); ok {
			return s, true
		}
	}
	return "", false
}

// tableHashKey is the name of a table's partition key.
func (q *iamRequest) tableHashKey(ctx context.Context, table string) (string, error) {
	out, err := q.g.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, q.ddbOpt)
	if err != nil {
		return "", iamLookupErr("table "+table, err)
	}
	for _, k := range out.Table.KeySchema {
		if k.KeyType == ddbtypes.KeyTypeHash {
			return aws.ToString(k.AttributeName), nil
		}
	}
	return "", fmt.Errorf("table %s has no partition key in moto's answer", table)
}

func (q *iamRequest) tableTags(ctx context.Context, arn string) (map[string]string, error) {
	tags := map[string]string{}
	in := &dynamodb.ListTagsOfResourceInput{ResourceArn: aws.String(arn)}
	for {
		out, err := q.g.ddb.ListTagsOfResource(ctx, in, q.ddbOpt)
		if err != nil {
			return nil, iamLookupErr("table "+arn, err)
		}
		for _, t := range out.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		if out.NextToken == nil {
			return tags, nil
		}
		in.NextToken = out.NextToken
	}
}

// --- Step Functions

// iamMapExecution evaluates an execution call on the execution its executionArn
// names: a Standard workflow's ("execution") or an Express one's ("express").
// Executions carry no tags of their own to read.
func iamMapExecution(_ context.Context, q *iamRequest) ([]iamEval, error) {
	body, err := q.jsonBody()
	if err != nil {
		return nil, err
	}
	arn, _ := body["executionArn"].(string)
	parts := strings.SplitN(arn, ":", 7)
	if len(parts) < 7 || parts[0] != "arn" || parts[2] != "states" {
		// Step Functions answers a malformed ARN with InvalidArn: moto does.
		return nil, &iamNotFound{what: "execution " + arn}
	}
	switch parts[5] {
	case "execution", "express":
		return []iamEval{q.eval(parts[5], arn, nil)}, nil
	}
	return nil, &iamNotFound{what: "execution " + arn}
}
