package localcloud

// Reading a run's resources back from the emulator by its run tag: what `amifleet
// local run` prints after a run, and what the end-to-end tests assert on. Every
// read is a describe; nothing here changes anything.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/amifleet/amifleet/internal/pipeline"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// RunResources is everything in one region that carries a run's tag.
type RunResources struct {
	RunID          string
	Instances      []Instance
	Images         []Image
	Snapshots      []Snapshot
	SecurityGroups []SecurityGroup
	LoadBalancers  []LoadBalancer
	// TargetGroups carry the run tag; those of LoadBalancers' listeners are there too.
	TargetGroups []TargetGroup
}

// Instance is one tagged instance.
type Instance struct {
	ID, State, ImageID, Role string
	// PrivateDNSName is the hostname the instance's own pages show.
	PrivateDNSName string
	// HTTPTokens is the metadata options' HttpTokens ("required" is IMDSv2 only).
	HTTPTokens     string
	SecurityGroups []string
	// PublicIP is the instance's public IPv4 address ("" when it has none).
	PublicIP string
	// AvailabilityZone is where it runs.
	AvailabilityZone string
	// RootDevice is the root device's name; RootVolumeID and RootEncrypted come
	// from the volume attached there (DescribeVolumes).
	RootDevice, RootVolumeID string
	RootEncrypted            bool
	Tags                     map[string]string
}

// Image is one tagged AMI.
type Image struct {
	ID, State, Name string
	// SnapshotIDs and SnapshotsEncrypted are read from the block device mappings.
	SnapshotIDs        []string
	SnapshotsEncrypted []bool
	Tags               map[string]string
}

// Snapshot is one tagged snapshot.
type Snapshot struct {
	ID, State, VolumeID string
	Encrypted           bool
	Tags                map[string]string
}

// SecurityGroup is one tagged security group with its inbound rules.
type SecurityGroup struct {
	ID, Name, Role string
	Ingress        []Rule
	Tags           map[string]string
}

// Rule is one inbound permission, one source per rule.
type Rule struct {
	Protocol string
	FromPort int32
	ToPort   int32
	// Source is a CIDR or a security group id.
	Source string
}

func (r Rule) String() string {
	return fmt.Sprintf("%s %d-%d from %s", r.Protocol, r.FromPort, r.ToPort, r.Source)
}

// LoadBalancer is one tagged load balancer with its listeners.
type LoadBalancer struct {
	ARN, Name, DNSName, State, Scheme, Type string
	SecurityGroups                          []string
	Listeners                               []Listener
	Tags                                    map[string]string
}

// Listener is one listener and where it forwards.
type Listener struct {
	ARN      string
	Protocol string
	Port     int32
	// ForwardTo are the target groups of its default forward actions.
	ForwardTo []string
}

// TargetGroup is one tagged target group and its targets' health.
type TargetGroup struct {
	ARN, Name, Protocol string
	Port                int32
	// Targets maps instance id to health state.
	Targets map[string]string
	Tags    map[string]string
}

// Remaining lists, in words, what of the run still exists: everything but
// terminated instances (which EC2 keeps listing for a while) and deregistered
// images.
func (r RunResources) Remaining() []string {
	var out []string
	for _, in := range r.Instances {
		if in.State != string(ec2types.InstanceStateNameTerminated) {
			out = append(out, fmt.Sprintf("instance %s %s", in.ID, in.State))
		}
	}
	for _, im := range r.Images {
		if im.State != string(ec2types.ImageStateDeregistered) {
			out = append(out, "image "+im.ID)
		}
	}
	for _, s := range r.Snapshots {
		out = append(out, "snapshot "+s.ID)
	}
	for _, g := range r.SecurityGroups {
		out = append(out, "security group "+g.ID)
	}
	for _, lb := range r.LoadBalancers {
		out = append(out, "load balancer "+lb.Name)
	}
	for _, tg := range r.TargetGroups {
		out = append(out, "target group "+tg.Name)
	}
	return out
}

// ReadRun reads back, in cfg's region, everything tagged with runID.
func ReadRun(ctx context.Context, cfg aws.Config, runID string) (RunResources, error) {
	r := RunResources{RunID: runID}
	e := ec2.NewFromConfig(cfg)
	filter := []ec2types.Filter{{Name: aws.String("tag:" + pipeline.TagRunID), Values: []string{runID}}}

	var volumeIDs []string
	pi := ec2.NewDescribeInstancesPaginator(e, &ec2.DescribeInstancesInput{Filters: filter})
	for pi.HasMorePages() {
		page, err := pi.NextPage(ctx)
		if err != nil {
			return r, fmt.Errorf("describe instances: %w", err)
		}
		for _, res := range page.Reservations {
			for _, in := range res.Instances {
				x := Instance{
					ID:         aws.ToString(in.InstanceId),
					ImageID:    aws.ToString(in.ImageId),
					RootDevice: aws.ToString(in.RootDeviceName),
					Tags:       ec2TagMap(in.Tags),
				}
				x.Role = x.Tags[pipeline.TagRole]
				x.PrivateDNSName = aws.ToString(in.PrivateDnsName)
				if in.State != nil {
					x.State = string(in.State.Name)
				}
				if in.MetadataOptions != nil {
					x.HTTPTokens = string(in.MetadataOptions.HttpTokens)
				}
				x.SecurityGroups = instanceGroups(in)
				x.PublicIP = aws.ToString(in.PublicIpAddress)
				if in.Placement != nil {
					x.AvailabilityZone = aws.ToString(in.Placement.AvailabilityZone)
				}
				for _, bd := range in.BlockDeviceMappings {
					if aws.ToString(bd.DeviceName) == x.RootDevice && bd.Ebs != nil {
						x.RootVolumeID = aws.ToString(bd.Ebs.VolumeId)
						volumeIDs = append(volumeIDs, x.RootVolumeID)
					}
				}
				r.Instances = append(r.Instances, x)
			}
		}
	}
	if len(volumeIDs) > 0 {
		encrypted := map[string]bool{}
		out, err := e.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: volumeIDs})
		if err != nil {
			return r, fmt.Errorf("describe volumes: %w", err)
		}
		for _, v := range out.Volumes {
			encrypted[aws.ToString(v.VolumeId)] = aws.ToBool(v.Encrypted)
		}
		for i := range r.Instances {
			r.Instances[i].RootEncrypted = encrypted[r.Instances[i].RootVolumeID]
		}
	}

	images, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filter})
	if err != nil {
		return r, fmt.Errorf("describe images: %w", err)
	}
	for _, im := range images.Images {
		x := Image{ID: aws.ToString(im.ImageId), State: string(im.State), Name: aws.ToString(im.Name), Tags: ec2TagMap(im.Tags)}
		for _, bd := range im.BlockDeviceMappings {
			if bd.Ebs != nil && bd.Ebs.SnapshotId != nil {
				x.SnapshotIDs = append(x.SnapshotIDs, aws.ToString(bd.Ebs.SnapshotId))
				x.SnapshotsEncrypted = append(x.SnapshotsEncrypted, aws.ToBool(bd.Ebs.Encrypted))
			}
		}
		r.Images = append(r.Images, x)
	}

	snaps, err := e.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: filter})
	if err != nil {
		return r, fmt.Errorf("describe snapshots: %w", err)
	}
	for _, s := range snaps.Snapshots {
		r.Snapshots = append(r.Snapshots, Snapshot{
			ID: aws.ToString(s.SnapshotId), State: string(s.State), VolumeID: aws.ToString(s.VolumeId),
			Encrypted: aws.ToBool(s.Encrypted), Tags: ec2TagMap(s.Tags),
		})
	}

	sgs, err := e.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: filter})
	if err != nil {
		return r, fmt.Errorf("describe security groups: %w", err)
	}
	for _, g := range sgs.SecurityGroups {
		x := SecurityGroup{ID: aws.ToString(g.GroupId), Name: aws.ToString(g.GroupName), Tags: ec2TagMap(g.Tags)}
		x.Role = x.Tags[pipeline.TagRole]
		x.Ingress = rules(g.IpPermissions)
		r.SecurityGroups = append(r.SecurityGroups, x)
	}

	if err := readLoadBalancing(ctx, elb.NewFromConfig(cfg), runID, &r); err != nil {
		return r, err
	}
	sortRun(&r)
	return r, nil
}

// readLoadBalancing finds the run's load balancers and target groups: ELBv2 has no
// tag filter, so every one is listed and its tags read.
func readLoadBalancing(ctx context.Context, c *elb.Client, runID string, r *RunResources) error {
	var lbs []elbtypes.LoadBalancer
	pl := elb.NewDescribeLoadBalancersPaginator(c, &elb.DescribeLoadBalancersInput{})
	for pl.HasMorePages() {
		page, err := pl.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe load balancers: %w", err)
		}
		lbs = append(lbs, page.LoadBalancers...)
	}
	var tgs []elbtypes.TargetGroup
	pt := elb.NewDescribeTargetGroupsPaginator(c, &elb.DescribeTargetGroupsInput{})
	for pt.HasMorePages() {
		page, err := pt.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe target groups: %w", err)
		}
		tgs = append(tgs, page.TargetGroups...)
	}
	arns := make([]string, 0, len(lbs)+len(tgs))
	for _, lb := range lbs {
		arns = append(arns, aws.ToString(lb.LoadBalancerArn))
	}
	for _, tg := range tgs {
		arns = append(arns, aws.ToString(tg.TargetGroupArn))
	}
	tags := map[string]map[string]string{}
	for len(arns) > 0 {
		n := min(len(arns), 20) // DescribeTags' limit
		out, err := c.DescribeTags(ctx, &elb.DescribeTagsInput{ResourceArns: arns[:n]})
		if err != nil {
			return fmt.Errorf("describe load balancing tags: %w", err)
		}
		for _, d := range out.TagDescriptions {
			m := map[string]string{}
			for _, t := range d.Tags {
				m[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			tags[aws.ToString(d.ResourceArn)] = m
		}
		arns = arns[n:]
	}

	for _, lb := range lbs {
		arn := aws.ToString(lb.LoadBalancerArn)
		if tags[arn][pipeline.TagRunID] != runID {
			continue
		}
		x := LoadBalancer{
			ARN: arn, Name: aws.ToString(lb.LoadBalancerName), DNSName: aws.ToString(lb.DNSName),
			Scheme: string(lb.Scheme), Type: string(lb.Type), SecurityGroups: lb.SecurityGroups, Tags: tags[arn],
		}
		if lb.State != nil {
			x.State = string(lb.State.Code)
		}
		ls, err := c.DescribeListeners(ctx, &elb.DescribeListenersInput{LoadBalancerArn: aws.String(arn)})
		if err != nil {
			return fmt.Errorf("describe listeners of %s: %w", x.Name, err)
		}
		for _, l := range ls.Listeners {
			y := Listener{ARN: aws.ToString(l.ListenerArn), Protocol: string(l.Protocol), Port: aws.ToInt32(l.Port)}
			for _, a := range l.DefaultActions {
				if a.Type != elbtypes.ActionTypeEnumForward {
					continue
				}
				if a.TargetGroupArn != nil {
					y.ForwardTo = append(y.ForwardTo, aws.ToString(a.TargetGroupArn))
				} else if a.ForwardConfig != nil {
					for _, t := range a.ForwardConfig.TargetGroups {
						y.ForwardTo = append(y.ForwardTo, aws.ToString(t.TargetGroupArn))
					}
				}
			}
			x.Listeners = append(x.Listeners, y)
		}
		r.LoadBalancers = append(r.LoadBalancers, x)
	}
	for _, tg := range tgs {
		arn := aws.ToString(tg.TargetGroupArn)
		if tags[arn][pipeline.TagRunID] != runID {
			continue
		}
		x := TargetGroup{
			ARN: arn, Name: aws.ToString(tg.TargetGroupName), Protocol: string(tg.Protocol),
			Port: aws.ToInt32(tg.Port), Targets: map[string]string{}, Tags: tags[arn],
		}
		h, err := c.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn)})
		if err != nil {
			return fmt.Errorf("describe target health of %s: %w", x.Name, err)
		}
		for _, d := range h.TargetHealthDescriptions {
			state := ""
			if d.TargetHealth != nil {
				state = string(d.TargetHealth.State)
			}
			if d.Target != nil {
				x.Targets[aws.ToString(d.Target.Id)] = state
			}
		}
		r.TargetGroups = append(r.TargetGroups, x)
	}
	return nil
}

func rules(perms []ec2types.IpPermission) []Rule {
	var out []Rule
	for _, p := range perms {
		base := Rule{Protocol: aws.ToString(p.IpProtocol), FromPort: aws.ToInt32(p.FromPort), ToPort: aws.ToInt32(p.ToPort)}
		for _, ip := range p.IpRanges {
			x := base
			x.Source = aws.ToString(ip.CidrIp)
			out = append(out, x)
		}
		for _, ip := range p.Ipv6Ranges {
			x := base
			x.Source = aws.ToString(ip.CidrIpv6)
			out = append(out, x)
		}
		for _, g := range p.UserIdGroupPairs {
			x := base
			x.Source = aws.ToString(g.GroupId)
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func ec2TagMap(tags []ec2types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// sortRun orders everything so that printing and comparing are stable: instances
// base first, then by id.
func sortRun(r *RunResources) {
	sort.Slice(r.Instances, func(i, j int) bool {
		a, b := r.Instances[i], r.Instances[j]
		if (a.Role == pipeline.RoleBase) != (b.Role == pipeline.RoleBase) {
			return a.Role == pipeline.RoleBase
		}
		return a.ID < b.ID
	})
	sort.Slice(r.Images, func(i, j int) bool { return r.Images[i].ID < r.Images[j].ID })
	sort.Slice(r.Snapshots, func(i, j int) bool { return r.Snapshots[i].ID < r.Snapshots[j].ID })
	sort.Slice(r.SecurityGroups, func(i, j int) bool { return r.SecurityGroups[i].Role < r.SecurityGroups[j].Role })
}

// Print writes the resources for people, one block per kind.
func (r RunResources) Print(w io.Writer) {
	fmt.Fprintf(w, "resources tagged %s=%s, read back from the emulator:\n", pipeline.TagRunID, r.RunID)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	yesNo := map[bool]string{true: "yes", false: "NO"}
	for _, in := range r.Instances {
		fmt.Fprintf(tw, "  instance\t%s\t%s\trole %s, image %s, IMDSv2 %s, root volume %s encrypted %s\n",
			in.ID, in.State, in.Role, in.ImageID, in.HTTPTokens, in.RootVolumeID, yesNo[in.RootEncrypted])
	}
	for _, im := range r.Images {
		fmt.Fprintf(tw, "  image\t%s\t%s\t%s, snapshots %s, tagged %s\n", im.ID, im.State, im.Name,
			strings.Join(im.SnapshotIDs, " "), im.Tags[pipeline.TagRole])
	}
	for _, s := range r.Snapshots {
		// Not its encryption: moto makes an AMI's snapshot from a fresh volume of its
		// own, unencrypted whatever the instance's root volume was.
		fmt.Fprintf(tw, "  snapshot\t%s\t%s\tfrom %s, tagged %s\n", s.ID, s.State, s.VolumeID, s.Tags[pipeline.TagRole])
	}
	for _, lb := range r.LoadBalancers {
		fmt.Fprintf(tw, "  load balancer\t%s\t%s\t%s %s, %s\n", lb.Name, lb.State, lb.Scheme, lb.Type, lb.DNSName)
		for _, l := range lb.Listeners {
			var names []string
			for _, arn := range l.ForwardTo {
				names = append(names, targetGroupName(arn))
			}
			fmt.Fprintf(tw, "  listener\t%s:%d\t\tforwards to %s\n", l.Protocol, l.Port, strings.Join(names, ", "))
		}
	}
	for _, tg := range r.TargetGroups {
		ids := make([]string, 0, len(tg.Targets))
		for id, state := range tg.Targets {
			ids = append(ids, id+" "+state)
		}
		sort.Strings(ids)
		fmt.Fprintf(tw, "  target group\t%s\t%s:%d\ttargets: %s\n", tg.Name, tg.Protocol, tg.Port, strings.Join(ids, ", "))
	}
	for _, g := range r.SecurityGroups {
		var rs []string
		for _, x := range g.Ingress {
			rs = append(rs, x.String())
		}
		if len(rs) == 0 {
			rs = []string{"none"}
		}
		fmt.Fprintf(tw, "  security group\t%s\t%s\tinbound: %s\n", g.ID, g.Role, strings.Join(rs, "; "))
	}
	_ = tw.Flush()
	if len(r.Remaining()) == 0 && len(r.Instances) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
}

// targetGroupName is the name inside a target group ARN
// (...:targetgroup/NAME/ID).
func targetGroupName(arn string) string {
	_, rest, ok := strings.Cut(arn, ":targetgroup/")
	if !ok {
		return arn
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}
