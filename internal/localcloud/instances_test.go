package localcloud

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestInstancesServeFromTheImage: an image of a provisioned base carries its disk;
// instances launched from it boot, write their own page and serve it; stop, start and
// terminate do what they do on EC2.
func TestInstancesServeFromTheImage(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{GuestOSDelay: 200 * time.Millisecond})
	ctx := context.Background()
	ec2c := ec2.NewFromConfig(lc.cfg)
	al2023, script := baseImageAndScript(t, lc, "<h1>Hola desde el EC2: {hostname}</h1>")
	run := func(image string, n int32, userData string) []string {
		in := &ec2.RunInstancesInput{ImageId: aws.String(image), InstanceType: ec2types.InstanceTypeT2Micro, MinCount: aws.Int32(n), MaxCount: aws.Int32(n),
			MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired}}
		if userData != "" {
			in.UserData = aws.String(base64.StdEncoding.EncodeToString([]byte(userData)))
		}
		out, err := ec2c.RunInstances(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, i := range out.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
		return ids
	}
	dnsName := func(id string) string {
		out, err := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Reservations[0].Instances[0].PrivateDnsName)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("not within 10 s: %s", what)
	}
	get := func(addr string) (int, string, error) {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	base := run(al2023, 1, script)[0]
	waitFor("the base instance's page", func() bool {
		_, err := os.Stat(filepath.Join(lc.gw.InstanceDisk(base), "var/www/html/index.html"))
		return err == nil
	})
	if lc.gw.InstanceAddress(base) != "" {
		t.Error("the base instance serves while it provisions; its user data only enables httpd")
	}
	img, err := ec2c.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(base), Name: aws.String("dataplane-test")})
	if err != nil {
		t.Fatal(err)
	}
	replicas := run(aws.ToString(img.ImageId), 2, "")
	for _, id := range replicas {
		waitFor(id+" serving", func() bool { return lc.gw.InstanceAddress(id) != "" })
		code, page, err := get(lc.gw.InstanceAddress(id))
		if want := "<h1>Hola desde el EC2: " + dnsName(id) + "</h1>"; err != nil || code != 200 || page != want {
			t.Errorf("%s answers %d %q (%v), want 200 %q", id, code, page, err, want)
		}
		// Its metadata, taken from the RunInstances answer: the describe's name, and
		// IMDSv2 as launched.
		lc.gw.imds.mu.Lock()
		m := lc.gw.imds.instances[id]
		lc.gw.imds.mu.Unlock()
		if m == nil || m.hostname != dnsName(id) || !m.tokensRequired {
			t.Errorf("%s metadata %+v, want hostname %s with tokens required", id, m, dnsName(id))
		}
	}

	// Stop: not serving. Start: boots again, the writer runs again, then it serves.
	id := replicas[0]
	addr := lc.gw.InstanceAddress(id)
	if _, err := ec2c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if got := lc.gw.InstanceAddress(id); got != "" {
		t.Errorf("stopped instance still serves at %s", got)
	}
	if _, _, err := get(addr); err == nil {
		t.Errorf("a GET to the stopped instance's old address answered")
	}
	page := filepath.Join(lc.gw.InstanceDisk(id), "var/www/html/index.html")
	if err := os.Remove(page); err != nil {
		t.Fatal(err)
	}
	if _, err := ec2c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitFor(id+" serving again", func() bool { return lc.gw.InstanceAddress(id) != "" })
	if code, body, err := get(lc.gw.InstanceAddress(id)); err != nil || code != 200 || body != "<h1>Hola desde el EC2: "+dnsName(id)+"</h1>" {
		t.Errorf("after start: %d %q %v; want the page written again at boot", code, body, err)
	}

	// Terminate: gone, disk and all.
	if _, err := ec2c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{replicas[1]}}); err != nil {
		t.Fatal(err)
	}
	if lc.gw.InstanceAddress(replicas[1]) != "" {
		t.Error("terminated instance still serves")
	}
	if _, err := os.Stat(lc.gw.InstanceDisk(replicas[1])); !os.IsNotExist(err) {
		t.Errorf("terminated instance's disk: %v", err)
	}

	// An instance from an image the data plane never saw runs no software.
	other := run(al2023, 1, "")[0]
	time.Sleep(300 * time.Millisecond)
	if lc.gw.InstanceAddress(other) != "" {
		t.Error("an instance of a plain image serves")
	}
}

func TestHTTPDStandInAnswersAsAL2023(t *testing.T) {
	root := t.TempDir()
	h := httpdHandler(root, func() time.Duration { return 0 })
	rec := func(path string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://x"+path, nil))
		return w.Code
	}
	if got := rec("/"); got != http.StatusForbidden {
		t.Errorf("GET / without index.html: %d, want 403", got)
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("<h1>x</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := rec("/"); got != http.StatusOK {
		t.Errorf("GET / with index.html: %d, want 200", got)
	}
	if got := rec("/nope.html"); got != http.StatusNotFound {
		t.Errorf("GET of a missing file: %d, want 404", got)
	}
	if got := rec("/../../etc/passwd"); got != http.StatusNotFound {
		t.Errorf("GET outside the document root: %d, want 404", got)
	}
}

// TestHTTPDStandInPageDelay: with a page delay, every answer waits that long (real
// time), and a request whose client goes away meanwhile gets none.
func TestHTTPDStandInPageDelay(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("<h1>x</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	const delay = 80 * time.Millisecond
	h := httpdHandler(root, func() time.Duration { return delay })
	start := time.Now()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://x/", nil))
	if took := time.Since(start); w.Code != http.StatusOK || took < delay {
		t.Errorf("GET / with a %s delay: %d after %s, want 200 after at least the delay", delay, w.Code, took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = httptest.NewRecorder()
	start = time.Now()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://x/", nil).WithContext(ctx))
	if took := time.Since(start); took >= delay || w.Body.Len() != 0 {
		t.Errorf("a request whose client left: answered %q after %s, want nothing at once", w.Body.String(), took)
	}
}
