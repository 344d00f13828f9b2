package localcloud

// The guest OS stand-in. moto runs no guest OS: an instance launched with amifleet's
// user data would stay "running" for ever, where on AWS its script installs httpd and
// powers the instance off. So when a RunInstances call through the gateway carries
// that user data, the gateway runs the instance's software and then stops it, as the
// script's poweroff would: after a short delay (with a latency model, at the end of
// the user data's modelled time: latency_ec2.go), the page writer, exactly as the user
// data carries it (userdata.PageWriter), runs with the instance's own directory as its
// root (its disk, InstanceDisk) and the instance's own metadata service (imds.go); a
// writer that fails leaves the instance running, as a failed script does. Other
// launches (the replicas, anything else) are left alone. FailGuestOS makes the next
// launches "fail" (never stop), as a broken script would, so that the pipeline's
// bounded wait can be tested.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/amifleet/amifleet/internal/userdata"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// UserDataMarker is a line the guest OS stand-in recognises amifleet's user data by.
// The rendered user data does not carry it yet, so the page writer's install path
// (userdata.PageWriterPath), which every rendering contains, is recognised too.
const UserDataMarker = "# amifleet-user-data"

// guestOS is the stand-in's state; the zero value with a delay is ready.
type guestOS struct {
	delay    time.Duration
	mu       sync.Mutex
	failNext int
}

// guestLaunch is what the gateway keeps of a RunInstances that carried amifleet's user
// data until moto answers it.
type guestLaunch struct {
	region   string
	userData string // as the request carried it: base64
}

// isAmifleetUserData reports whether a RunInstances UserData parameter (base64, of a
// script that may itself be gzipped, as cloud-init allows) is amifleet's.
func isAmifleetUserData(param string) bool {
	s := decodeUserData(param)
	return s != "" && (strings.Contains(s, UserDataMarker) || strings.Contains(s, userdata.PageWriterPath))
}

// decodeUserData is the script a RunInstances UserData parameter carries, or "".
func decodeUserData(param string) string {
	if param == "" {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(param)
	if err != nil {
		return ""
	}
	return string(gunzipped(raw, 1<<20))
}

// FailGuestOS makes the next n launches with amifleet's user data never stop, as if
// their script had failed; n <= 0 cancels.
func (g *Gateway) FailGuestOS(n int) {
	g.guest.mu.Lock()
	defer g.guest.mu.Unlock()
	g.guest.failNext = max(n, 0)
}

// runInstancesResponse is the part of EC2's RunInstances answer the stand-in reads.
type runInstancesResponse struct {
	Instances []struct {
		InstanceID     string `xml:"instanceId"`
		PrivateDNSName string `xml:"privateDnsName"`
		HTTPTokens     string `xml:"metadataOptions>httpTokens"`
	} `xml:"instancesSet>item"`
}

// guestLaunched is called with the answer to a RunInstances that carried amifleet's
// user data: after the delay (or the model's time), it stops the instances (through
// moto directly: the stop is the guest's doing, not an API call anyone made, so it is
// not counted).
func (g *Gateway) guestLaunched(launch guestLaunch, body []byte) {
	region := launch.region
	var resp runInstancesResponse
	if err := xml.Unmarshal(body, &resp); err != nil {
		g.log.Error("guest OS: unreadable RunInstances answer", "error", err.Error())
		return
	}
	ids := make([]string, 0, len(resp.Instances))
	for _, in := range resp.Instances {
		if in.InstanceID != "" {
			ids = append(ids, in.InstanceID)
		}
	}
	if len(ids) == 0 {
		return
	}
	g.guest.mu.Lock()
	fail := takeOne(&g.guest.failNext)
	g.guest.mu.Unlock()
	if fail {
		g.log.Info("guest OS: user data script fails, instances keep running", "instances", ids)
		return
	}
	for _, p := range g.guestPowerOffs(ids, g.guest.delay) {
		g.log.Info("guest OS: user data running, will power off", "instances", p.ids, "after", time.Until(p.at).Round(time.Millisecond).String())
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			t := time.NewTimer(time.Until(p.at))
			defer t.Stop()
			select {
			case <-t.C:
			case <-g.ctx.Done():
				return
			}
			g.powerOff(launch, p.ids, region)
		}()
	}
}

// powerOff is the end of the user data on the instances ids: the page writer runs,
// then the guest powers off.
func (g *Gateway) powerOff(launch guestLaunch, ids []string, region string) {
	ctx, cancel := context.WithTimeout(g.ctx, 30*time.Second)
	defer cancel()
	inRegion := func(o *ec2.Options) { o.Region = region }
	// Only a running guest powers itself off. An instance terminated meanwhile
	// (a run that failed and was cleaned up within the delay) must stay
	// terminated: moto 5.2.1's StopInstances would turn it back into "stopped",
	// where AWS answers IncorrectInstanceState.
	live, err := g.liveInstances(ctx, ids, inRegion)
	if err != nil {
		g.log.Error("guest OS: poweroff failed", "instances", ids, "error", err.Error())
		return
	}
	if len(live) == 0 {
		g.log.Info("guest OS: instances gone before poweroff", "instances", ids)
		return
	}
	live = g.runUserData(ctx, decodeUserData(launch.userData), live, inRegion)
	if len(live) == 0 {
		return
	}
	g.guestPoweringOff(live)
	if _, err := g.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: live}, inRegion); err != nil {
		g.log.Error("guest OS: poweroff failed", "instances", live, "error", err.Error())
		return
	}
	g.log.Info("guest OS: powered off", "instances", live)
}

// liveInstances are those of ids that are pending or running.
func (g *Gateway) liveInstances(ctx context.Context, ids []string, optFns ...func(*ec2.Options)) ([]string, error) {
	out, err := g.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, optFns...)
	if err != nil {
		return nil, err
	}
	var live []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State == nil {
				continue
			}
			switch in.State.Name {
			case ec2types.InstanceStateNamePending, ec2types.InstanceStateNameRunning:
				live = append(live, aws.ToString(in.InstanceId))
			}
		}
	}
	return live, nil
}

// runUserData runs the instances' software, as far as the local cloud can: the page
// writer the user data installs, each instance with its own disk and metadata. It
// answers the instances whose software finished, and so will power off; one whose
// writer failed keeps running, as on AWS.
func (g *Gateway) runUserData(ctx context.Context, script string, ids []string, optFns ...func(*ec2.Options)) []string {
	writer, err := userdata.PageWriter(script)
	if err != nil {
		g.log.Error("guest OS: user data has no page writer", "instances", ids, "error", err.Error())
		return nil
	}
	out, err := g.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, optFns...)
	if err != nil {
		g.log.Error("guest OS: describe instances", "instances", ids, "error", err.Error())
		return nil
	}
	var done []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			id := aws.ToString(in.InstanceId)
			g.registerMetadata(in)
			disk := g.InstanceDisk(id)
			err := installPageWriter(disk, writer)
			if err == nil {
				err = g.runPageWriter(ctx, disk, id)
			}
			if err != nil {
				g.log.Error("guest OS: page writer failed, the instance keeps running", "instance", id, "error", err.Error())
				continue
			}
			g.log.Info("guest OS: page written", "instance", id, "disk", disk)
			done = append(done, id)
		}
	}
	return done
}

// InstanceDisk is the directory that stands for the instance's root volume.
func (g *Gateway) InstanceDisk(instanceID string) string {
	return filepath.Join(g.workDir, "disks", instanceID)
}

// registerMetadata gives the instance its metadata: its private DNS name as its
// hostname, and whether its HttpTokens require IMDSv2.
func (g *Gateway) registerMetadata(in ec2types.Instance) {
	required := in.MetadataOptions != nil && in.MetadataOptions.HttpTokens == ec2types.HttpTokensStateRequired
	g.imds.register(aws.ToString(in.InstanceId), aws.ToString(in.PrivateDnsName), required)
}

// takeOne uses up one of the next n faults: it reports whether *n was above 0, and
// counts it down. Callers hold the lock that guards n.
func takeOne(n *int) bool {
	if *n <= 0 {
		return false
	}
	*n--
	return true
}

// installPageWriter puts writer on disk where the user data installs it.
func installPageWriter(disk, writer string) error {
	path := filepath.Join(disk, userdata.PageWriterPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(writer), 0o755)
}

// runPageWriter runs the page writer installed on disk, with the instance's metadata
// service, in a bounded time.
func (g *Gateway) runPageWriter(ctx context.Context, disk, instanceID string) error {
	path := filepath.Join(disk, userdata.PageWriterPath)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// At the lowest CPU priority: on AWS each instance boots on its own hardware;
	// here fifty boots at once would share two cores with the control plane and
	// slow the pipeline's own calls, a cost AWS does not have.
	cmd := exec.CommandContext(ctx, "nice", "-n", "19", "bash", path)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"AMIFLEET_ROOT=" + disk,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + g.imds.endpoint(instanceID),
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
