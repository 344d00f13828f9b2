package stages

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// LaunchReplicas launches config.replicaCount instances from the run's AMI, spread
// evenly over the network's subnets in the zones that offer the instance type (one
// zone each), with one RunInstances call per subnet. They need no user data: the
// AMI's boot-time unit writes each one's page. They get no public IPv4 address (AWS
// bills each one; the load balancer reaches them privately) unless config.sshCidrs
// asks for SSH.
// When config.keepBaseInstance is set, it also starts the base instance again, so
// that it joins the fleet. A second run counts the replicas already there, per
// subnet, and launches only the missing ones.
func (s *Stages) LaunchReplicas(ctx context.Context, doc pipeline.Document) (pipeline.Document, error) {
	net, img := doc.Resources.Network, doc.Resources.Image
	switch {
	case net == nil || len(net.SubnetIDs) == 0 || net.InstanceSecurityGroupID == "":
		return doc, notYet("resources.network", pipeline.CreateSecurityGroups)
	case img == nil || img.ImageID == "":
		return doc, notYet("resources.image.imageId", pipeline.CreateImage)
	case doc.Config.KeepBase() && img.BaseInstanceID == "":
		return doc, notYet("resources.image.baseInstanceId", pipeline.LaunchBase)
	}
	subnets, err := instanceSubnets(doc)
	if err != nil {
		return doc, err
	}
	seed, err := tokenSeedOf(doc)
	if err != nil {
		return doc, err
	}

	existing, err := s.findInstances(ctx, doc.RunID, pipeline.RoleReplica, doc.Gen(), liveInstanceStates...)
	if err != nil {
		return doc, err
	}
	have := map[string]int{}
	for _, in := range existing {
		have[aws.ToString(in.SubnetId)]++
	}
	replicas := instanceIDs(existing)
	shares := spread(doc.Config.ReplicaCount, len(subnets))
	var root rootVolume
	for i, subnet := range subnets {
		missing := shares[i] - have[subnet]
		if missing <= 0 {
			continue
		}
		if root.DeviceName == "" {
			if root, err = s.imageRootVolume(ctx, img.ImageID); err != nil {
				return doc, err
			}
		}
		in := runInstancesInput(doc, img.ImageID, root, pipeline.RoleReplica, int32(missing))
		// With a network interface given, its subnet and groups go inside it.
		in.NetworkInterfaces = []ec2types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:              aws.Int32(0),
			SubnetId:                 aws.String(subnet),
			Groups:                   []string{net.InstanceSecurityGroupID},
			AssociatePublicIpAddress: aws.Bool(len(doc.Config.SSHCIDRs) > 0),
			DeleteOnTermination:      aws.Bool(true),
		}}
		// The token changes with what is already there, so that a retry of this very
		// call is idempotent on AWS, and a later top-up is a new request.
		in.ClientToken = aws.String(genToken(seed, doc, pipeline.RoleReplica, subnet, fmt.Sprint(have[subnet])))
		out, err := s.EC2.RunInstances(ctx, in)
		if cerr := capacityError(doc, missing, "in "+subnet, err); cerr != nil {
			return doc, cerr
		}
		if err != nil {
			return doc, fmt.Errorf("launch %d replicas in %s from %s: %w", missing, subnet, img.ImageID, err)
		}
		ids := instanceIDs(out.Instances)
		Log(ctx).Info("launched replicas", "subnetId", subnet, "instanceIds", ids, "imageId", img.ImageID)
		replicas = append(replicas, ids...)
	}

	fleet := &pipeline.Fleet{ReplicaInstanceIDs: replicas, InstanceIDs: append([]string(nil), replicas...)}
	if doc.Config.KeepBase() {
		// Starting an instance that is already pending or running changes nothing.
		_, err := s.EC2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{img.BaseInstanceID}})
		if cerr := capacityError(doc, 1, "for the base instance "+img.BaseInstanceID+", started again", err); cerr != nil {
			return doc, cerr
		}
		if err != nil {
			return doc, fmt.Errorf("start the base instance %s again: %w", img.BaseInstanceID, err)
		}
		Log(ctx).Info("started the base instance again", "instanceId", img.BaseInstanceID)
		fleet.InstanceIDs = append(fleet.InstanceIDs, img.BaseInstanceID)
	}
	doc.Resources.Fleet = fleet
	return doc, nil
}

// spread splits n instances over k subnets as evenly as possible, the first
// subnets taking one more when n does not divide.
func spread(n, k int) []int {
	shares := make([]int, k)
	for i := range shares {
		shares[i] = n / k
		if i < n%k {
			shares[i]++
		}
	}
	return shares
}

// imageRootVolume is the run's AMI's root volume.
func (s *Stages) imageRootVolume(ctx context.Context, imageID string) (rootVolume, error) {
	out, err := s.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{imageID}})
	if err != nil {
		return rootVolume{}, fmt.Errorf("describe image %s: %w", imageID, err)
	}
	if len(out.Images) == 0 || aws.ToString(out.Images[0].RootDeviceName) == "" {
		return rootVolume{}, &pipeline.StageError{Err: fmt.Errorf("image %s: no root device name", imageID)}
	}
	return rootVolumeOf(out.Images[0]), nil
}

// undoReplicas terminates the run's replicas. Those not terminated yet are
// remaining: the security groups cannot go before them.
func (s *Stages) undoReplicas(ctx context.Context, runID string) (remaining []string, err error) {
	return s.terminateRun(ctx, runID, pipeline.RoleReplica)
}
