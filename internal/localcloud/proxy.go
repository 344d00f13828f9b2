package localcloud

// Forwarding to moto: every call the gateway does not answer itself goes to moto
// through a reverse proxy, which keeps the client's Host header.

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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

// modifyResponse lets the guest OS see RunInstances answers it watches.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	launch, ok := resp.Request.Context().Value(guestWatchKey{}).(guestLaunch)
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if launch.region == "" {
		launch.region = g.opts.Region
	}
	g.guestLaunched(launch, body)
	return nil
}
