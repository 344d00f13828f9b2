package localcloud

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ec2TestScale turns the test model's AWS seconds into hundredths: 100 s is 1 s here.
const ec2TestScale = 0.01

// ec2TestModel is a model of fixed durations (AWS time), so that every bound below is
// exact: t2.micro's user data has its own.
func ec2TestModel() *LatencyModel {
	s := func(n int) Dist { return Fixed(time.Duration(n) * time.Second) }
	return &LatencyModel{
		Seed: 7,
		Ops: map[LatencyOp]Dist{
			OpRunInstancesAnswer: s(50),
			OpInstanceRunning:    s(100),
			OpUserDataDone:       s(100),
			OpBooted:             s(100),
			OpInstanceStopped:    s(100),
			OpInstanceTerminated: s(100),
			OpImageAvailable:     s(100),
		},
		PerInstanceType: map[string]Dist{"t2.micro": s(150)},
	}
}

// local is an AWS duration of the test model on the test's time scale.
func local(aws time.Duration) time.Duration { return time.Duration(float64(aws) * ec2TestScale) }

// ec2Client is a client of the local cloud with helpers for the tests below.
type ec2Client struct {
	t *testing.T
	c *ec2.Client
}

func (e ec2Client) run(image, userData string) (string, time.Duration) {
	e.t.Helper()
	in := &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: ec2types.InstanceTypeT2Micro,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
	if userData != "" {
		in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(userData)))
	}
	start := time.Now()
	out, err := e.c.RunInstances(context.Background(), in)
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(out.Instances[0].InstanceId), time.Since(start)
}

// state is the instance's state and code as DescribeInstances shows them.
func (e ec2Client) state(id string) (string, int32) {
	e.t.Helper()
	out, err := e.c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		e.t.Fatal(err)
	}
	s := out.Reservations[0].Instances[0].State
	return string(s.Name), aws.ToInt32(s.Code)
}

// filtered are the instances a describe with an instance-state-name filter answers.
func (e ec2Client) filtered(states ...string) []string {
	e.t.Helper()
	out, err := e.c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("instance-state-name"), Values: states}}})
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, r := range out.Reservations {
		if len(r.Instances) == 0 {
			e.t.Errorf("a reservation without instances in a filtered answer: %s", aws.ToString(r.ReservationId))
		}
		for _, in := range r.Instances {
			if !slices.Contains(states, string(in.State.Name)) {
				e.t.Errorf("filter %v answers %s, %s", states, aws.ToString(in.InstanceId), in.State.Name)
			}
			ids = append(ids, aws.ToString(in.InstanceId))
		}
	}
	return ids
}

// stateChange is a state first seen at a time after a call.
type stateChange struct {
	state string
	after time.Duration
}

func (c stateChange) String() string {
	return c.state + " at " + c.after.Round(time.Millisecond).String()
}

// watch polls the instance's state from start until it is final, and answers each
// state change as first seen.
func (e ec2Client) watch(id string, start time.Time, final string) []stateChange {
	e.t.Helper()
	var seen []stateChange
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, code := e.state(id)
		if want := instanceStateCodes[s]; int32(want) != code {
			e.t.Errorf("%s is %s with code %d, want %d", id, s, code, want)
		}
		if len(seen) == 0 || seen[len(seen)-1].state != s {
			seen = append(seen, stateChange{s, time.Since(start)})
		}
		if s == final {
			return seen
		}
	}
	e.t.Fatalf("%s not %s within 20 s: %v", id, final, seen)
	return nil
}

// checkChanges says what is wrong with seen: the states, in order, and the last no
// sooner than its modelled time.
func checkChanges(t *testing.T, what string, seen []stateChange, want []string, notBefore time.Duration) {
	t.Helper()
	var states []string
	for _, c := range seen {
		states = append(states, c.state)
	}
	if !slices.Equal(states, want) {
		t.Errorf("%s: states %v, want %v", what, seen, want)
		return
	}
	if last := seen[len(seen)-1]; last.after < notBefore {
		t.Errorf("%s: %s after %s, before its modelled %s", what, last.state, last.after, notBefore)
	}
	t.Logf("%s: %v (modelled %s)", what, seen, notBefore)
}

// TestLatencyEC2Instances: with a model, RunInstances answers after its time; an
// instance is pending, then running; stopping, then stopped; pending again after a
// start; shutting-down, then terminated; each at its modelled time, never before,
// with state filters that agree; and another call goes on while a launch waits.
func TestLatencyEC2Instances(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{TimeScale: ec2TestScale, Latency: ec2TestModel()})
	ctx := context.Background()
	e := ec2Client{t, ec2.NewFromConfig(lc.cfg)}
	al2023, _ := baseImageAndScript(t, lc, "<p>{hostname}</p>")
	answer, running, stopped, terminated := local(50*time.Second), local(100*time.Second), local(100*time.Second), local(100*time.Second)

	// A call made while a launch waits for its answer is answered first.
	launched := make(chan time.Time, 1)
	go func() {
		_, _ = e.c.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(al2023), InstanceType: ec2types.InstanceTypeT3Micro,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
		launched <- time.Now()
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := e.c.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{}); err != nil {
		t.Fatal(err)
	}
	described := time.Now()
	if at := <-launched; !described.Before(at) {
		t.Errorf("a describe made while a launch waited was answered after it")
	}

	start := time.Now()
	id, took := e.run(al2023, "")
	if took < answer {
		t.Errorf("RunInstances answered after %s, before its modelled %s", took, answer)
	}
	if s, _ := e.state(id); s != "pending" {
		t.Fatalf("%s is %s right after the launch, want pending", id, s)
	}
	if ids := e.filtered("running"); slices.Contains(ids, id) {
		t.Errorf("a pending instance answers a filter for running: %v", ids)
	}
	if ids := e.filtered("pending"); !slices.Contains(ids, id) {
		t.Errorf("a pending instance does not answer a filter for pending: %v", ids)
	}
	if ids := e.filtered("pending", "running"); !slices.Contains(ids, id) {
		t.Errorf("a pending instance does not answer a filter for pending or running: %v", ids)
	}
	checkChanges(t, "launch", e.watch(id, start, "running"), []string{"pending", "running"}, answer+running)

	start = time.Now()
	if _, err := e.c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if ids := e.filtered("stopped"); slices.Contains(ids, id) {
		t.Errorf("a stopping instance answers a filter for stopped: %v", ids)
	}
	if ids := e.filtered("pending", "running", "stopping", "stopped"); !slices.Contains(ids, id) {
		t.Errorf("a stopping instance does not answer a filter for the live states: %v", ids)
	}
	if ids := e.filtered("pending", "running"); slices.Contains(ids, id) {
		t.Errorf("a stopping instance answers a filter for pending or running: %v", ids)
	}
	checkChanges(t, "stop", e.watch(id, start, "stopped"), []string{"stopping", "stopped"}, stopped)

	start = time.Now()
	if _, err := e.c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, "start", e.watch(id, start, "running"), []string{"pending", "running"}, running)

	start = time.Now()
	if _, err := e.c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if ids := e.filtered("shutting-down"); !slices.Contains(ids, id) {
		t.Errorf("a shutting-down instance does not answer a filter for shutting-down: %v", ids)
	}
	if ids := e.filtered("terminated"); slices.Contains(ids, id) {
		t.Errorf("a shutting-down instance answers a filter for terminated: %v", ids)
	}
	checkChanges(t, "terminate", e.watch(id, start, "terminated"), []string{"shutting-down", "terminated"}, terminated)

	// Each change is in the record, with its draw: the start a draw of its own.
	drawn := map[string]time.Duration{}
	for _, ev := range lc.gw.LatencyRecord() {
		drawn[string(ev.Op)+" "+ev.Key] = ev.AWS
	}
	for _, k := range []string{string(OpInstanceRunning) + " " + id, string(OpInstanceStopped) + " " + id,
		string(OpInstanceRunning) + " " + id + "#start2", string(OpInstanceTerminated) + " " + id} {
		if d, ok := drawn[k]; !ok || d != 100*time.Second {
			t.Errorf("%s: drawn %s (in the record: %t), want 100s", k, d, ok)
		}
	}
}

// TestLatencyEC2GuestOSAndImage: with a model, a base instance with amifleet's user
// data is pending, running, stopping, then stopped, no sooner than its launch, its
// type's user data and its stop take; its image is pending, then available; an
// instance of the image serves only once booted.
func TestLatencyEC2GuestOSAndImage(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{TimeScale: ec2TestScale, Latency: ec2TestModel()})
	ctx := context.Background()
	e := ec2Client{t, ec2.NewFromConfig(lc.cfg)}
	al2023, script := baseImageAndScript(t, lc, "<p>{hostname}</p>")
	answer, running, userData, stopped := local(50*time.Second), local(100*time.Second), local(150*time.Second), local(100*time.Second)

	start := time.Now()
	base, _ := e.run(al2023, script)
	checkChanges(t, "base instance", e.watch(base, start, "stopped"),
		[]string{"pending", "running", "stopping", "stopped"}, answer+running+userData+stopped)
	if _, err := os.Stat(filepath.Join(lc.gw.InstanceDisk(base), "var/www/html/index.html")); err != nil {
		t.Errorf("the base instance's user data did not write its page: %v", err)
	}
	for _, ev := range lc.gw.LatencyRecord() {
		if ev.Op == OpUserDataDone && ev.Key == base && ev.AWS != 150*time.Second {
			t.Errorf("the t2.micro's user data drawn %s, want its type's 150s", ev.AWS)
		}
	}

	start = time.Now()
	img, err := e.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(base), Name: aws.String("latency-test")})
	if err != nil {
		t.Fatal(err)
	}
	image := aws.ToString(img.ImageId)
	describe := func(filters ...ec2types.Filter) []ec2types.Image {
		out, err := e.c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filters})
		if err != nil {
			t.Fatal(err)
		}
		return out.Images
	}
	stateFilter := func(v string) ec2types.Filter {
		return ec2types.Filter{Name: aws.String("state"), Values: []string{v}}
	}
	if imgs := describe(stateFilter("available")); len(imgs) != 0 {
		t.Errorf("a pending image answers a filter for available: %s", imgs[0].State)
	}
	if imgs := describe(stateFilter("pending")); len(imgs) != 1 || aws.ToString(imgs[0].ImageId) != image {
		t.Errorf("a pending image does not answer a filter for pending: %d images", len(imgs))
	}
	var seen []stateChange
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		imgs := describe()
		if len(imgs) != 1 {
			t.Fatalf("%d images, want 1", len(imgs))
		}
		if s := string(imgs[0].State); len(seen) == 0 || seen[len(seen)-1].state != s {
			seen = append(seen, stateChange{s, time.Since(start)})
		}
		if imgs[0].State == ec2types.ImageStateAvailable {
			break
		}
	}
	checkChanges(t, "image", seen, []string{"pending", "available"}, local(100*time.Second))

	// An instance of the image serves once running and booted, not before.
	start = time.Now()
	replica, _ := e.run(image, "")
	var serving time.Duration
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if lc.gw.InstanceAddress(replica) != "" {
			serving = time.Since(start)
			break
		}
	}
	if serving == 0 {
		t.Fatalf("%s not serving within 20 s", replica)
	}
	if booted := answer + running + local(100*time.Second); serving < booted {
		t.Errorf("%s served after %s, before its modelled %s", replica, serving, booted)
	}
	if s, _ := e.state(replica); s != "running" {
		t.Errorf("%s serves while %s", replica, s)
	}
	t.Logf("replica serving after %s", serving)
}

// TestLatencyEC2Visible: with a model that times OpVisible, a new instance is not
// visible by its id for the draw, not for the strict cloud's Consistency.
func TestLatencyEC2Visible(t *testing.T) {
	m := &LatencyModel{Ops: map[LatencyOp]Dist{OpVisible: Fixed(100 * time.Second)}}
	lc := startLocalCloud(t, GatewayOptions{TimeScale: ec2TestScale, Latency: m, Strict: Strictness{Consistency: time.Hour}})
	e := ec2Client{t, ec2.NewFromConfig(lc.cfg)}
	al2023, _ := baseImageAndScript(t, lc, "<p>{hostname}</p>")
	start := time.Now()
	id, _ := e.run(al2023, "")
	_, err := e.c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if errorCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("a new instance described by id at once: %v, want InvalidInstanceID.NotFound", err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, err = e.c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s not visible within 20 s: %v", id, err)
	}
	if after := time.Since(start); after < local(100*time.Second) {
		t.Errorf("visible after %s, before its modelled %s", after, local(100*time.Second))
	}
}

// TestLatencyEC2Off: without a model nothing waits: moto's states at once.
func TestLatencyEC2Off(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{TimeScale: ec2TestScale})
	ctx := context.Background()
	e := ec2Client{t, ec2.NewFromConfig(lc.cfg)}
	al2023, _ := baseImageAndScript(t, lc, "<p>{hostname}</p>")
	id, _ := e.run(al2023, "")
	if s, _ := e.state(id); s != "running" {
		t.Errorf("%s is %s at its first describe, want running (moto's)", id, s)
	}
	if ids := e.filtered("running"); !slices.Contains(ids, id) {
		t.Errorf("a filter for running does not answer %s: %v", id, ids)
	}
	if _, err := e.c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.state(id); s != "stopped" {
		t.Errorf("%s is %s right after StopInstances, want stopped (moto's)", id, s)
	}
	img, err := e.c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("latency-off")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}})
	if err != nil || len(out.Images) != 1 || out.Images[0].State != ec2types.ImageStateAvailable {
		t.Errorf("image at its first describe: %+v %v, want available", out, err)
	}
	if rec := lc.gw.LatencyRecord(); len(rec) != 0 {
		t.Errorf("the record without a model: %v", rec)
	}
}
