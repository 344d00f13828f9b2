package localcloud

// Forwarding to moto: every call the gateway does not answer itself goes to moto
// through a reverse proxy, which keeps the client's Host header.

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
)

// newProxy returns the reverse proxy that forwards requests to moto at up.
func (g *Gateway) newProxy(up *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			// moto routes on the Host header (and reads path-style S3 bucket names
			// only from "localhost"): keep the client's.
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: g.modifyResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.Error("upstream failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
			http.Error(w, "amifleet gateway: moto did not answer: "+err.Error(), http.StatusBadGateway)
		},
	}
}

// localhostForLoopback turns 127.0.0.1:PORT and [::1]:PORT into localhost:PORT: moto
// reads path-style S3 bucket names only from a "localhost" host.
func localhostForLoopback(host string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return net.JoinHostPort("localhost", port)
	}
	return host
}

// watchedCall is a call whose answer the gateway reads on its way back: the guest OS
// and the instances' data plane follow the EC2 and ELB calls that change what runs, and
// the strict checks the creates and deletes they follow.
type watchedCall struct {
	call   apiCall
	launch *guestLaunch // a RunInstances with amifleet's user data
	states []string     // a describe's state filter, applied by the latency model (latency_ec2.go)
}

type watchKey struct{}

// watched says which calls modifyResponse reads.
func watched(c apiCall) bool {
	switch c.Service + ":" + c.Action {
	case "ec2:RunInstances", "ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances", "ec2:CreateImage",
		// creates the strict cloud's consistency check follows (strict_consistency.go)
		"ec2:CreateSecurityGroup", "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup",
		"elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteLoadBalancer",
		"elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
		"elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:DescribeTargetHealth":
		return true
	case "elasticloadbalancing:DescribeLoadBalancers": // a provisioning state (latency_elb.go)
		return true
	case "ec2:DescribeInstances", "ec2:DescribeImages": // states the latency model times (latency_ec2.go)
		return true
	}
	return false
}

// modifyResponse lets the guest OS and the data plane see the answers they watch.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	w, ok := resp.Request.Context().Value(watchKey{}).(watchedCall)
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	body = gunzipped(body, 0)
	if w.call.Region == "" {
		w.call.Region = g.opts.Region
	}
	if rewritten := g.ec2LatencySaw(w.call, w.states, body); rewritten != nil {
		resp.Body = io.NopCloser(bytes.NewReader(rewritten))
		resp.ContentLength = int64(len(rewritten))
		resp.Header.Set("Content-Length", strconv.Itoa(len(rewritten)))
		resp.Header.Del("Content-Encoding")
	}
	g.strictSaw(w.call, body)
	if w.launch != nil {
		w.launch.region = w.call.Region
		g.guestLaunched(*w.launch, body)
	}
	switch w.call.Service {
	case "ec2":
		g.instancesChanged(w.call, body)
	case "elasticloadbalancing":
		if rewritten := g.loadBalancersChanged(w.call, body); rewritten != nil {
			resp.Body = io.NopCloser(bytes.NewReader(rewritten))
			resp.ContentLength = int64(len(rewritten))
			resp.Header.Set("Content-Length", strconv.Itoa(len(rewritten)))
			resp.Header.Del("Content-Encoding")
		}
	}
	return nil
}

// gunzipped is body, unzipped if it is gzip (at most limit bytes of it when limit > 0);
// body itself when it is not, or does not unzip.
func gunzipped(body []byte, limit int64) []byte {
	if len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b {
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			var r io.Reader = zr
			if limit > 0 {
				r = io.LimitReader(zr, limit)
			}
			if b, err := io.ReadAll(r); err == nil {
				return b
			}
		}
	}
	return body
}
