package tools

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check-tools.sh: Go, git and Node.js with npm, installed with apt-get where it may.
func TestCheckTools(t *testing.T) {
	script, err := filepath.Abs("check-tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	_, goVersion, _ := strings.Cut(string(mod), "\ngo ")
	goVersion, _, _ = strings.Cut(goVersion, "\n")
	const node16 = "#!/bin/sh\ncase \"$1\" in -p) echo 16 ;; *) echo v16.20.2 ;; esac\n"
	const node20 = "#!/bin/sh\ncase \"$1\" in -p) echo 20 ;; *) echo v20.20.2 ;; esac\n"
	tests := []struct {
		name    string
		tools   map[string]string // on the PATH besides the ordinary ones
		root    bool
		calls   []string
		message string
	}{
		{name: "all there", tools: map[string]string{"go": "", "git": "", "node": node20, "npm": ""}},
		{name: "no Go", tools: map[string]string{"git": "", "node": node20, "npm": ""},
			message: "Go is missing: install Go " + goVersion + " (go.mod) from https://go.dev/dl/ and put its bin/ on the PATH"},
		{name: "no Node.js, as root", root: true, tools: map[string]string{"go": "", "git": "", "nodejs.deb": node20,
			"apt-get": "#!/bin/sh\necho \"apt-get $*\" >>\"$FAKE_LOG\"\ncp \"$FAKE_BIN/nodejs.deb\" \"$FAKE_BIN/node\" && cp \"$FAKE_BIN/id\" \"$FAKE_BIN/npm\"\n"},
			calls: []string{"apt-get install -y -qq nodejs npm"}},
		{name: "no Node.js, no way to install it", tools: map[string]string{"go": "", "git": "", "apt-get": ""},
			message: "Node.js and npm are missing: install Node.js 20 from https://nodejs.org/en/download (npm comes with it)"},
		{name: "no git, no apt-get", root: true, tools: map[string]string{"go": "", "node": node20, "npm": ""},
			message: "git is missing: run 'sudo apt-get install git' (or see https://git-scm.com/downloads)"},
		{name: "Node.js 16", tools: map[string]string{"go": "", "git": "", "node": node16, "npm": ""},
			message: "Node.js v16.20.2 is too old for the CDK CLI: install Node.js 20 from https://nodejs.org/en/download"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := machine{}
			if tt.root {
				m.uid = "0"
			}
			s := newSandbox(t, m)
			s.script = script
			for name, content := range tt.tools {
				if content == "" {
					content = "#!/bin/sh\n"
				}
				s.write(name, content)
			}
			r := s.run(nil)
			if strings.Join(r.calls, "\n") != strings.Join(tt.calls, "\n") {
				t.Errorf("calls %q, want %q", r.calls, tt.calls)
			}
			if tt.message == "" {
				if r.err != nil {
					t.Fatalf("%v; stderr:\n%s", r.err, r.stderr)
				}
				return
			}
			lines := strings.Split(r.stderr, "\n")
			if r.err == nil || lines[len(lines)-1] != tt.message {
				t.Errorf("%v, its message is\n%s\nwant\n%s", r.err, r.stderr, tt.message)
			}
		})
	}
}
