package stages

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// pageServer answers GETs with page(n) for the n-th request (from 0) and records
// each request's remote address, to tell connections apart.
type pageServer struct {
	*httptest.Server
	mu      sync.Mutex
	hits    int
	remotes map[string]bool
}

func newPageServer(t *testing.T, page func(n int) (int, string)) *pageServer {
	t.Helper()
	ps := &pageServer{remotes: map[string]bool{}}
	ps.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		n := ps.hits
		ps.hits++
		ps.remotes[r.RemoteAddr] = true
		ps.mu.Unlock()
		status, body := page(n)
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ps.Close)
	return ps
}

func (ps *pageServer) counts() (hits, connections int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.hits, len(ps.remotes)
}

const testTemplate = "<h1>Hola desde el EC2: {hostname}</h1>"

func hostPage(host string) string {
	return strings.Replace(testTemplate, "{hostname}", host, 1) + "\n"
}

func verifyDoc(url string, instances int, v pipeline.VerifyConfig) pipeline.Document {
	ids := make([]string, instances)
	for i := range ids {
		ids[i] = fmt.Sprintf("i-%d", i)
	}
	return pipeline.Document{
		RunID:  "run1",
		Config: pipeline.Config{PageTemplate: testTemplate, Verify: v},
		Resources: pipeline.Resources{
			LoadBalancer: &pipeline.LoadBalancer{URL: url},
			Fleet:        &pipeline.Fleet{InstanceIDs: ids},
		},
	}
}

func rotating(hosts ...string) func(int) (int, string) {
	return func(n int) (int, string) { return http.StatusOK, hostPage(hosts[n%len(hosts)]) }
}

func TestVerify(t *testing.T) {
	three := rotating("ip-10-0-0-1", "ip-10-0-0-2", "ip-10-0-0-3")
	tests := []struct {
		name      string
		page      func(int) (int, string)
		instances int
		verify    pipeline.VerifyConfig
		wantErr   []string // substrings of a RetryableError's message; nil: passes
		wantHosts []string
		wantHits  int
	}{
		{
			name: "rotating across three instances passes", page: three, instances: 3,
			verify:    pipeline.VerifyConfig{Requests: 12, TimeoutSeconds: 5},
			wantHosts: []string{"ip-10-0-0-1", "ip-10-0-0-2", "ip-10-0-0-3"}, wantHits: 12,
		},
		{
			name: "two distinct pages are enough for three instances", page: rotating("a", "b"), instances: 3,
			verify:    pipeline.VerifyConfig{Requests: 6, TimeoutSeconds: 5},
			wantHosts: []string{"a", "b"}, wantHits: 6,
		},
		{
			name: "one page from one instance passes", page: rotating("only"), instances: 1,
			verify:    pipeline.VerifyConfig{Requests: 4, TimeoutSeconds: 5},
			wantHosts: []string{"only"}, wantHits: 4,
		},
		{
			name: "one page from three instances fails", page: rotating("stuck"), instances: 3,
			verify:   pipeline.VerifyConfig{Requests: 12, TimeoutSeconds: 5},
			wantErr:  []string{"12× 200", "1 distinct pages [stuck]", "at least 2 distinct pages"},
			wantHits: 12,
		},
		{
			name: "a 503 fails even with rotating pages", instances: 3,
			page: func(n int) (int, string) {
				if n == 4 {
					return http.StatusServiceUnavailable, "busy"
				}
				return three(n)
			},
			verify:   pipeline.VerifyConfig{Requests: 12, TimeoutSeconds: 5},
			wantErr:  []string{"11× 200", "1× 503", "need every answer 200"},
			wantHits: 12,
		},
		{
			name: "requests are bounded by verify.requests", page: three, instances: 3,
			verify:    pipeline.VerifyConfig{Requests: 5, TimeoutSeconds: 5},
			wantHosts: []string{"ip-10-0-0-1", "ip-10-0-0-2", "ip-10-0-0-3"}, wantHits: 5,
		},
		{
			name: "requests are bounded whatever the input says", page: three, instances: 3,
			verify:    pipeline.VerifyConfig{Requests: 100000, TimeoutSeconds: 5},
			wantHosts: []string{"ip-10-0-0-1", "ip-10-0-0-2", "ip-10-0-0-3"}, wantHits: maxVerifyRequests,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPageServer(t, tc.page)
			s := &Stages{HTTP: srv.Client()}
			doc, err := s.Verify(context.Background(), verifyDoc(srv.URL+"/", tc.instances, tc.verify))
			hits, conns := srv.counts()
			if hits != tc.wantHits {
				t.Errorf("server got %d requests, want %d", hits, tc.wantHits)
			}
			if conns != hits {
				t.Errorf("%d requests came over %d connections, want one connection each (no keep-alive)", hits, conns)
			}
			if tc.wantErr != nil {
				var retry *pipeline.RetryableError
				if !errors.As(err, &retry) {
					t.Fatalf("err = %v (%T), want a RetryableError", err, err)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if doc.Resources.Verify != nil {
					t.Errorf("a failed verify recorded a result: %+v", doc.Resources.Verify)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			got := doc.Resources.Verify
			if got == nil || got.Status != pipeline.VerifyPassed || got.Requests != tc.wantHits {
				t.Fatalf("verify result = %+v, want passed after %d requests", got, tc.wantHits)
			}
			if !reflect.DeepEqual(got.Hostnames, tc.wantHosts) {
				t.Errorf("hostnames = %q, want %q", got.Hostnames, tc.wantHosts)
			}
		})
	}
}

func TestVerifySkip(t *testing.T) {
	tests := []struct {
		name, reason, want string
	}{
		{"default reason", "", defaultSkipReason},
		{"reason from the input", "local cloud has no data plane", "local cloud has no data plane"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPageServer(t, rotating("a", "b"))
			s := &Stages{HTTP: srv.Client()}
			doc, err := s.Verify(context.Background(), verifyDoc(srv.URL+"/", 2,
				pipeline.VerifyConfig{Skip: true, SkipReason: tc.reason, Requests: 12, TimeoutSeconds: 5}))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if hits, _ := srv.counts(); hits != 0 {
				t.Errorf("a skipped verify sent %d requests", hits)
			}
			want := &pipeline.VerifyResult{Status: pipeline.VerifySkipped, Reason: tc.want}
			if !reflect.DeepEqual(doc.Resources.Verify, want) {
				t.Errorf("verify result = %+v, want %+v", doc.Resources.Verify, want)
			}
		})
	}
}

// Without a URL, Verify builds it from the DNS name.
func TestVerifyURLFromDNSName(t *testing.T) {
	srv := newPageServer(t, rotating("a", "b"))
	doc := verifyDoc("", 2, pipeline.VerifyConfig{Requests: 4, TimeoutSeconds: 5})
	doc.Resources.LoadBalancer.DNSName = strings.TrimPrefix(srv.URL, "http://")
	if _, err := (&Stages{HTTP: srv.Client()}).Verify(context.Background(), doc); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if hits, _ := srv.counts(); hits != 4 {
		t.Errorf("server got %d requests, want 4", hits)
	}
}

// A target slower than verify.timeoutSeconds is an error, not a hang.
func TestVerifyTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	_, err := (&Stages{HTTP: srv.Client()}).Verify(context.Background(),
		verifyDoc(srv.URL+"/", 2, pipeline.VerifyConfig{Requests: 1, TimeoutSeconds: 1}))
	var retry *pipeline.RetryableError
	if !errors.As(err, &retry) || !strings.Contains(err.Error(), "1× error") || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("err = %v, want a RetryableError that reports the timed-out request", err)
	}
}

func TestPageHostname(t *testing.T) {
	tests := []struct {
		body, template, want string
	}{
		{"<h1>Hola desde el EC2: ip-172-31-1-2.ec2.internal</h1>", testTemplate, "ip-172-31-1-2.ec2.internal"},
		{"<p>Hello from web-1</p>", "<p>Hello from {hostname}</p>", "web-1"},
		// A page that does not match the template: its text without tags.
		{"<html><body><b>web-2</b></body></html>", testTemplate, "web-2"},
		{"plain", "", "plain"},
	}
	for _, tc := range tests {
		if got := pageHostname(tc.body, tc.template); got != tc.want {
			t.Errorf("pageHostname(%q, %q) = %q, want %q", tc.body, tc.template, got, tc.want)
		}
	}
}

// With httpCidrs narrower than the internet, a Lambda outside a VPC can never reach the
// load balancer: Verify sends nothing, says why, and points at the targets' health;
// with a /0 anywhere in the list it looks as usual.
func TestVerifyCannotLookFromOutsideTheCIDRs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cidrs []string
		looks bool
	}{
		{"one /24", []string{"203.0.113.0/24"}, false},
		{"private ranges", []string{"10.0.0.0/8", "192.168.0.0/16"}, false},
		{"the world", []string{"0.0.0.0/0"}, true},
		{"a range and the world", []string{"10.0.0.0/8", "0.0.0.0/0"}, true},
		{"IPv6 world", []string{"10.0.0.0/8", "::/0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPageServer(t, rotating("a", "b"))
			s := &Stages{HTTP: srv.Client()}
			doc := verifyDoc(srv.URL+"/", 2, pipeline.VerifyConfig{Requests: 4, TimeoutSeconds: 5})
			doc.Config.HTTPCIDRs = tc.cidrs
			doc.RunID = "run-1"
			doc.Polls = &pipeline.Polls{TargetsHealthy: &pipeline.PollResult{Ready: true, State: "2/2 healthy", Attempts: 3}}
			out, err := s.Verify(context.Background(), doc)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			hits, _ := srv.counts()
			v := out.Resources.Verify
			if tc.looks {
				if hits == 0 || v.Status != pipeline.VerifyPassed {
					t.Errorf("sent %d, result %+v; want it to look and pass", hits, v)
				}
				return
			}
			if hits != 0 {
				t.Errorf("sent %d requests it could not have had answered", hits)
			}
			if v.Status != pipeline.VerifySkipped || !v.LookFromHere || !strings.Contains(v.Reason, tc.cidrs[0]) || !strings.Contains(v.Reason, "2/2 healthy") ||
				!strings.Contains(v.Reason, "amifleet verify run-1") {
				t.Errorf("result %+v; want skipped, naming the ranges, the targets' health and the command to look from inside", v)
			}
		})
	}
}
