package localcloud

// The instance metadata service, for the instances whose software the guest OS
// stand-in runs. One server on loopback serves every instance under its own prefix
// (http://127.0.0.1:PORT/<instance-id>/), which the guest hands to the instance's
// software as AWS_EC2_METADATA_SERVICE_ENDPOINT. As EC2 answers: PUT
// latest/api/token gives a session token for X-aws-ec2-metadata-token-ttl-seconds
// (1 to 21600); with HttpTokens "required", a metadata read without a valid token is a
// 401; with "optional", IMDSv1 reads work too.

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metadata is what the service knows of one instance.
type metadata struct {
	instanceID     string
	hostname       string // the private DNS name, as EC2 reports it
	tokensRequired bool
	tokens         map[string]time.Time // token → expiry
}

type imdsServer struct {
	srv *http.Server
	url string

	mu        sync.Mutex
	instances map[string]*metadata
}

func startIMDS() (*imdsServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &imdsServer{url: "http://" + ln.Addr().String(), instances: map[string]*metadata{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *imdsServer) close() error { return s.srv.Close() }

// endpoint is the instance's AWS_EC2_METADATA_SERVICE_ENDPOINT.
func (s *imdsServer) endpoint(instanceID string) string { return s.url + "/" + instanceID + "/" }

func (s *imdsServer) register(instanceID, hostname string, tokensRequired bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[instanceID] = &metadata{instanceID: instanceID, hostname: hostname,
		tokensRequired: tokensRequired, tokens: map[string]time.Time{}}
}

// knows reports whether the instance has its metadata.
func (s *imdsServer) knows(instanceID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instances[instanceID] != nil
}

func (s *imdsServer) forget(instanceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.instances, instanceID)
}

func (s *imdsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	md := s.instances[id]
	if md == nil {
		http.NotFound(w, r)
		return
	}
	if path == "latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		token := hex.EncodeToString(b)
		md.tokens[token] = time.Now().Add(time.Duration(ttl) * time.Second)
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		_, _ = io.WriteString(w, token)
		return
	}
	if token := r.Header.Get("X-aws-ec2-metadata-token"); token != "" {
		if exp, ok := md.tokens[token]; !ok || time.Now().After(exp) {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
	} else if md.tokensRequired {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	switch path {
	case "latest/meta-data/local-hostname", "latest/meta-data/hostname":
		_, _ = io.WriteString(w, md.hostname)
	case "latest/meta-data/instance-id":
		_, _ = io.WriteString(w, md.instanceID)
	default:
		http.NotFound(w, r)
	}
}
