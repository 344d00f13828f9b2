package localcloud

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestIMDSAnswersAsEC2(t *testing.T) {
	s, err := startIMDS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.close() })
	s.register("i-req", "ip-172-31-1-2.ec2.internal", true)
	s.register("i-opt", "ip-172-31-1-3.ec2.internal", false)

	get := func(method, url string, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	host := func(id string) string { return s.endpoint(id) + "latest/meta-data/local-hostname" }

	if code, _ := get("GET", host("i-req"), nil); code != http.StatusUnauthorized {
		t.Errorf("IMDSv1 read with tokens required: %d, want 401", code)
	}
	if code, _ := get("PUT", s.endpoint("i-req")+"latest/api/token", nil); code != http.StatusBadRequest {
		t.Errorf("token without a TTL: %d, want 400", code)
	}
	code, token := get("PUT", s.endpoint("i-req")+"latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if code != http.StatusOK || token == "" {
		t.Fatalf("token: %d %q", code, token)
	}
	if code, body := get("GET", host("i-req"), map[string]string{"X-aws-ec2-metadata-token": token}); code != 200 || body != "ip-172-31-1-2.ec2.internal" {
		t.Errorf("hostname with the token: %d %q", code, body)
	}
	if code, _ := get("GET", host("i-opt"), map[string]string{"X-aws-ec2-metadata-token": token}); code != http.StatusUnauthorized {
		t.Errorf("another instance's token: %d, want 401", code)
	}
	if code, body := get("GET", host("i-opt"), nil); code != 200 || !strings.HasPrefix(body, "ip-172-31-1-3") {
		t.Errorf("IMDSv1 with tokens optional: %d %q", code, body)
	}
	s.forget("i-opt")
	if code, _ := get("GET", host("i-opt"), nil); code != http.StatusNotFound {
		t.Errorf("a forgotten instance: %d, want 404", code)
	}
}
