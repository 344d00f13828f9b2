package localcloud

// The instances' data plane. An image made from an instance whose software the guest OS
// ran carries that instance's disk (CreateImage copies it). An instance launched from
// such an image boots: its disk is the image's, the boot unit's page writer (installed
// at userdata.PageWriterPath) runs with the instance's own metadata, and its httpd
// stand-in serves the disk's /var/www/html over HTTP on loopback. StopInstances stops
// serving; StartInstances boots again (the writer runs again, then it serves);
// TerminateInstances ends it and its disk. With no index.html, "/" answers 403, as
// Amazon Linux 2023's httpd does with its welcome configuration.

import (
	"context"
	"encoding/xml"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amifleet/amifleet/internal/userdata"
)

// instancePlane is the data plane's state; the zero value is ready.
type instancePlane struct {
	mu        sync.Mutex
	failBoots int                           // the next launches from a carried image whose software does not come up
	images    map[string]bool               // AMIs that carry a disk (at imageDisk)
	serving   map[string]*httpdStandIn      // instance id → its web server, while running
	booting   map[string]context.CancelFunc // instance id → a boot in progress
}

// httpdStandIn is one instance's web server.
type httpdStandIn struct {
	srv  *http.Server
	addr string
}

// FailBoots makes the software of the next n instances launched from an image the data
// plane carries not come up (no web server), as a broken boot would; n <= 0 cancels.
func (g *Gateway) FailBoots(n int) {
	g.instances.mu.Lock()
	defer g.instances.mu.Unlock()
	g.instances.failBoots = max(n, 0)
}

// InstanceAddress is where the instance's httpd stand-in listens ("127.0.0.1:PORT"),
// or "" when it is not serving (not booted, stopped, terminated, or no software).
func (g *Gateway) InstanceAddress(instanceID string) string {
	g.instances.mu.Lock()
	defer g.instances.mu.Unlock()
	if h := g.instances.serving[instanceID]; h != nil {
		return h.addr
	}
	return ""
}

// imageDisk is the directory that stands for the AMI's root snapshot.
func (g *Gateway) imageDisk(imageID string) string {
	return filepath.Join(g.workDir, "images", imageID)
}

// instancesChanged follows the EC2 calls that change what runs.
func (g *Gateway) instancesChanged(call apiCall, body []byte) {
	inRegion := func(o *ec2.Options) { o.Region = call.Region }
	switch call.Action {
	case "CreateImage":
		var resp struct {
			ImageID string `xml:"imageId"`
		}
		if xml.Unmarshal(body, &resp) != nil || resp.ImageID == "" {
			return
		}
		g.recordImage(call.Form.Get("InstanceId"), resp.ImageID)
	case "RunInstances":
		g.instances.mu.Lock()
		carried := g.instances.images[call.Form.Get("ImageId")]
		g.instances.mu.Unlock()
		if !carried {
			return
		}
		var resp runInstancesResponse
		if xml.Unmarshal(body, &resp) != nil {
			return
		}
		for _, in := range resp.Instances {
			// The answer holds the metadata: boot need not ask moto for it (at 200
			// replicas, 200 describes at once, queued before the pipeline's own).
			if in.PrivateDNSName != "" {
				g.imds.register(in.InstanceID, in.PrivateDNSName, in.HTTPTokens == string(ec2types.HttpTokensStateRequired))
			}
			if err := copyDir(g.imageDisk(call.Form.Get("ImageId")), g.InstanceDisk(in.InstanceID)); err != nil {
				g.log.Error("data plane: the image's disk", "instance", in.InstanceID, "error", err.Error())
				continue
			}
			g.instances.mu.Lock()
			fail := takeOne(&g.instances.failBoots)
			g.instances.mu.Unlock()
			if fail {
				g.log.Info("data plane: boot fails, httpd does not come up", "instance", in.InstanceID)
				continue
			}
			g.boot(in.InstanceID, inRegion)
		}
	case "StartInstances":
		for _, id := range formList(call, "InstanceId") {
			if _, err := os.Stat(g.InstanceDisk(id)); err == nil {
				g.boot(id, inRegion)
			}
		}
	case "StopInstances":
		for _, id := range formList(call, "InstanceId") {
			g.checkDataPlane(call.Action, id)
			g.shutdown(id)
		}
	case "TerminateInstances":
		for _, id := range formList(call, "InstanceId") {
			g.checkDataPlane(call.Action, id)
			g.shutdown(id)
			g.imds.forget(id)
			_ = os.RemoveAll(g.InstanceDisk(id))
		}
	}
}

// recordImage makes the AMI carry the instance's disk, as its root snapshot does.
func (g *Gateway) recordImage(instanceID, imageID string) {
	disk := g.InstanceDisk(instanceID)
	if _, err := os.Stat(disk); err != nil {
		return // no software ran on it: an image of nothing the data plane knows
	}
	if err := copyDir(disk, g.imageDisk(imageID)); err != nil {
		g.log.Error("data plane: image the disk", "instance", instanceID, "image", imageID, "error", err.Error())
		return
	}
	g.instances.mu.Lock()
	if g.instances.images == nil {
		g.instances.images = map[string]bool{}
	}
	g.instances.images[imageID] = true
	g.instances.mu.Unlock()
	g.log.Info("data plane: image carries the disk", "image", imageID, "instance", instanceID)
}

// boot runs the instance's boot in the background: the page writer, then httpd; with
// a latency model, once the instance is running and its services up (latency_ec2.go).
func (g *Gateway) boot(instanceID string, optFns ...func(*ec2.Options)) {
	var wait time.Duration
	if at, ok := g.bootedAt(instanceID); ok {
		wait = max(time.Until(at), 0)
	}
	ctx, cancel := context.WithTimeout(g.ctx, time.Minute+wait)
	g.instances.mu.Lock()
	if g.instances.booting == nil {
		g.instances.booting = map[string]context.CancelFunc{}
	}
	if prev := g.instances.booting[instanceID]; prev != nil {
		prev()
	}
	g.instances.booting[instanceID] = cancel
	g.instances.mu.Unlock()
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		defer cancel()
		if wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return // stopped or terminated while booting
			}
		}
		if err := g.bootNow(ctx, instanceID, optFns...); err != nil {
			g.log.Error("data plane: boot", "instance", instanceID, "error", err.Error())
		}
	}()
}

func (g *Gateway) bootNow(ctx context.Context, id string, optFns ...func(*ec2.Options)) error {
	if !g.imds.knows(id) {
		out, err := g.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, optFns...)
		if err != nil {
			return err
		}
		if len(out.Reservations) == 0 || len(out.Reservations[0].Instances) == 0 {
			return errors.New("not found")
		}
		g.registerMetadata(out.Reservations[0].Instances[0])
	}
	disk := g.InstanceDisk(id)
	// The boot unit: the writer the image carries. httpd starts whatever it did (the
	// unit is ordered before httpd, not required by it).
	if _, err := os.Stat(filepath.Join(disk, userdata.PageWriterPath)); err == nil {
		if err := g.runPageWriter(ctx, disk, id); err != nil {
			g.log.Error("data plane: page writer failed at boot", "instance", id, "error", err.Error())
		}
	}
	if ctx.Err() != nil {
		return ctx.Err() // stopped or terminated while booting
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h := &httpdStandIn{addr: ln.Addr().String(),
		srv: &http.Server{Handler: httpdHandler(filepath.Join(disk, "var/www/html"), g.PageDelay), ReadHeaderTimeout: 10 * time.Second}}
	g.instances.mu.Lock()
	if g.instances.serving == nil {
		g.instances.serving = map[string]*httpdStandIn{}
	}
	if old := g.instances.serving[id]; old != nil {
		_ = old.srv.Close()
	}
	g.instances.serving[id] = h
	g.instances.mu.Unlock()
	go func() { _ = h.srv.Serve(ln) }()
	g.log.Info("data plane: instance serving", "instance", id, "addr", h.addr)
	return nil
}

// shutdown stops the instance's boot and its web server.
func (g *Gateway) shutdown(id string) {
	g.instances.mu.Lock()
	if cancel := g.instances.booting[id]; cancel != nil {
		cancel()
		delete(g.instances.booting, id)
	}
	h := g.instances.serving[id]
	delete(g.instances.serving, id)
	g.instances.mu.Unlock()
	if h != nil {
		_ = h.srv.Close()
		g.log.Info("data plane: instance stopped serving", "instance", id)
	}
}

// closeInstances stops every web server (Close).
func (g *Gateway) closeInstances() {
	g.instances.mu.Lock()
	ids := make([]string, 0, len(g.instances.serving))
	for id := range g.instances.serving {
		ids = append(ids, id)
	}
	g.instances.mu.Unlock()
	for _, id := range ids {
		g.shutdown(id)
	}
}

// httpdHandler serves root as httpd's DocumentRoot: files, index.html for a directory,
// 403 for a directory without one (Amazon Linux 2023's welcome configuration answers
// "/" so), 404 for what is not there. Each GET or HEAD is answered after delay()
// (GatewayOptions.PageDelay), the load balancers' health checks' too: a slow server is
// slow for them as well. A request whose connection closes meanwhile (the instance
// stopped, the client gone) gets no answer, as from a machine that went away.
func httpdHandler(root string, delay func() time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		if d := delay(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		p := filepath.Join(root, filepath.FromSlash(path.Clean("/"+r.URL.Path)))
		st, err := os.Stat(p)
		if err == nil && st.IsDir() {
			p = filepath.Join(p, "index.html")
			if _, err := os.Stat(p); err != nil {
				http.Error(w, "Forbidden", http.StatusForbidden)
				return
			}
		} else if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Server", "Apache/2.4 (Amazon Linux) amifleet-local")
		http.ServeFile(w, r, p)
	})
}

// formList is a query-protocol list parameter: Name.1, Name.2, ...
func formList(call apiCall, name string) []string {
	var out []string
	for k, v := range call.Form {
		if strings.HasPrefix(k, name+".") && len(v) > 0 {
			out = append(out, v[0])
		}
	}
	return out
}

// copyDir copies the tree at src to dst (files and directories, modes kept).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
}
