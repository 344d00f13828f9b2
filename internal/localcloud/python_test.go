package localcloud

import (
	"os"
	"path/filepath"
	"testing"
)

// The local cloud's Python is the one make picks (tools/python-env.sh): $AMIFLEET_PYTHON,
// else the repository's .venv/, else python3.
func TestPythonOr(t *testing.T) {
	repo := t.TempDir()
	for _, f := range []string{"cdk.json", "Makefile"} {
		if err := os.WriteFile(filepath.Join(repo, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(repo, "cmd", "amifleet")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	t.Setenv("AMIFLEET_PYTHON", "")

	if got := pythonOr(""); got != "python3" {
		t.Errorf("no .venv, no AMIFLEET_PYTHON: %q, want python3", got)
	}
	venv := filepath.Join(repo, ".venv", "bin", "python")
	if err := os.MkdirAll(filepath.Dir(venv), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(venv, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := pythonOr(""); got != venv {
		t.Errorf("with the repository's .venv/: %q, want %q", got, venv)
	}
	t.Setenv("AMIFLEET_PYTHON", "/opt/py/bin/python3")
	if got := pythonOr(""); got != "/opt/py/bin/python3" {
		t.Errorf("with AMIFLEET_PYTHON: %q, want it", got)
	}
	if got := pythonOr("/usr/bin/python3.11"); got != "/usr/bin/python3.11" {
		t.Errorf("given a Python: %q, want it", got)
	}
}
