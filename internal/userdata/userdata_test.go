package userdata

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const defaultTemplate = "<h1>Hola desde el EC2: {hostname}</h1>"

// hostile is a template that would run commands, end heredocs or break quoting if
// any of it reached the shell as text.
const hostile = "<p>$(touch /tmp/amifleet-pwned) `id` ${HOME} '\"\\ \nAMIFLEET_PAGE_WRITER\nEOF {hostname}</p>\n"

func render(t *testing.T, template string) string {
	t.Helper()
	out, err := Render(template)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return out
}

// pageWriter is the page-writing script as the user data installs it: the body of
// its heredoc.
func pageWriter(t *testing.T, userData string) string {
	t.Helper()
	w, err := PageWriter(userData)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func shellcheck(t *testing.T, name, script string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("shellcheck", "--shell=bash", path).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck %s: %v\n%s", name, err, out)
	}
}

func TestRenderedScriptsPassShellcheck(t *testing.T) {
	for name, template := range map[string]string{"default": defaultTemplate, "hostile": hostile} {
		t.Run(name, func(t *testing.T) {
			ud := render(t, template)
			shellcheck(t, "user-data.sh", ud)
			shellcheck(t, "amifleet-write-page", pageWriter(t, ud))
		})
	}
}

func TestRenderKeepsTemplateOutOfTheShell(t *testing.T) {
	ud := render(t, hostile)
	for _, raw := range []string{"$(touch", "`id`", "${HOME}", "{hostname}</p>"} {
		if strings.Contains(ud, raw) {
			t.Errorf("user data contains template text %q", raw)
		}
	}
	if strings.Contains(ud, templatePlaceholder) {
		t.Error("placeholder left in the user data")
	}
	if n := strings.Count(ud, "\nAMIFLEET_PAGE_WRITER\n"); n != 1 {
		t.Errorf("page writer heredoc closed %d times, want 1", n)
	}
}

func TestRenderShape(t *testing.T) {
	ud := render(t, defaultTemplate)
	for _, want := range []string{
		"#!/bin/bash\n",
		"set -euo pipefail",
		"dnf install -y httpd",
		"cat > " + PageWriterPath,
		"Before=httpd.service",
		"WantedBy=multi-user.target",
		"systemctl enable httpd.service amifleet-page.service",
		"poweroff",
	} {
		if !strings.Contains(ud, want) {
			t.Errorf("user data lacks %q", want)
		}
	}
	if strings.Contains(ud, "yum ") || strings.Contains(ud, "apt-get") {
		t.Error("user data uses a package manager other than dnf")
	}
	// Power off is the last thing it does: the pipeline images a finished instance.
	lines := strings.Split(strings.TrimSpace(ud), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "poweroff") {
		t.Errorf("last line is %q, want the power off", last)
	}
}

// Every request to the instance metadata service is either the IMDSv2 token PUT or
// carries the token: with HttpTokens=required, IMDSv1 requests fail.
func TestMetadataCallsUseIMDSv2Token(t *testing.T) {
	ud := render(t, defaultTemplate)
	imdsVar := regexp.MustCompile(`(?m)^imds=(\S+)$`).FindStringSubmatch(ud)
	if imdsVar == nil || !strings.Contains(imdsVar[1], "http://169.254.169.254/") {
		t.Fatalf("no imds=...http://169.254.169.254/... variable: %v", imdsVar)
	}
	curls := 0
	for _, line := range strings.Split(ud, "\n") {
		if !strings.Contains(line, "curl ") {
			continue
		}
		curls++
		if !strings.Contains(line, "$imds/") {
			t.Errorf("curl not to the metadata service through $imds: %q", line)
		}
		isTokenPut := strings.Contains(line, "-X PUT") && strings.Contains(line, "$imds/api/token") &&
			strings.Contains(line, "X-aws-ec2-metadata-token-ttl-seconds")
		carriesToken := strings.Contains(line, `-H "X-aws-ec2-metadata-token: $token"`)
		if !isTokenPut && !carriesToken {
			t.Errorf("metadata call without the IMDSv2 token: %q", line)
		}
	}
	if curls == 0 {
		t.Fatal("no metadata call found; the test would pass vacuously")
	}
	if strings.Contains(ud, "169.254.169.254") && strings.Count(ud, "169.254.169.254") != 1 {
		t.Error("the metadata address appears outside the imds variable")
	}
}

func TestPageWriterWritesTheHostnamePage(t *testing.T) {
	tests := []struct {
		name, template, hostname, want string
	}{
		{"default", defaultTemplate, "ip-10-0-0-1.ec2.internal",
			"<h1>Hola desde el EC2: ip-10-0-0-1.ec2.internal</h1>"},
		{"html in the hostname is escaped", defaultTemplate, `<script>alert("x")</script>&'`,
			"<h1>Hola desde el EC2: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</h1>"},
		{"every placeholder, and shell text in the template", hostile + "{hostname}", "h1",
			strings.ReplaceAll(hostile+"{hostname}", "{hostname}", "h1")},
		{"no placeholder", "<p>static</p>", "h2", "<p>static</p>"},
		{"trailing newlines kept", "{hostname}\n\n", "h3", "h3\n\n"},
		{"backslashes and dollars in the hostname", "[{hostname}]", `a\b$c`, `[a\b$c]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			script := filepath.Join(t.TempDir(), "amifleet-write-page")
			if err := os.WriteFile(script, []byte(pageWriter(t, render(t, tc.template))), 0o700); err != nil {
				t.Fatal(err)
			}
			imds := fakeIMDS(t, tc.hostname)
			cmd := exec.Command("bash", script)
			cmd.Env = append(os.Environ(), "AMIFLEET_ROOT="+root, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL+"/")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("page writer: %v\n%s", err, out)
			}
			page, err := os.ReadFile(filepath.Join(root, "var/www/html/index.html"))
			if err != nil {
				t.Fatal(err)
			}
			if string(page) != tc.want {
				t.Errorf("page = %q, want %q", page, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "var/www/html/index.html.tmp")); !os.IsNotExist(err) {
				t.Errorf("temporary file left behind: %v", err)
			}
		})
	}
}

func TestRenderRefusesOversizedUserData(t *testing.T) {
	if _, err := Render(strings.Repeat("x", MaxSize)); err == nil {
		t.Fatal("Render accepted a template that makes the user data exceed 16 KiB")
	}
	if _, err := Render(strings.Repeat("x", 4096)); err != nil {
		t.Fatalf("a 4 KiB template was refused: %v", err)
	}
}

// fakeIMDS answers IMDSv2 as EC2 does with HttpTokens required: a token from PUT
// /latest/api/token, and the hostname only to a request that carries it (401 without).
func fakeIMDS(t *testing.T, hostname string) *httptest.Server {
	t.Helper()
	const token = "tok-123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != "":
			_, _ = io.WriteString(w, token)
		case r.URL.Path == "/latest/meta-data/local-hostname" && r.Header.Get("X-aws-ec2-metadata-token") == token:
			_, _ = io.WriteString(w, hostname)
		case r.URL.Path == "/latest/meta-data/local-hostname":
			w.WriteHeader(http.StatusUnauthorized)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}
