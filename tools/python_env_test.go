package tools

// Tests of python-env.sh: its decisions (use python3, build the virtual environment,
// refuse with the command to run) against stand-in Pythons on a PATH of their own, and
// its answer on this machine.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakePython stands in for python3 and, copied by "-m venv", for the virtual
// environment's python. What it has installed are files beside it: "moto" holds moto's
// version (absent: moto does not import), "no-venv" means the venv module is missing.
// "-m pip install" installs moto 5.2.1 and cfn-lint beside it, unless $FAKE_PIP_FAIL is
// set (PyPI unreachable). Every -m call is appended to $FAKE_LOG.
const fakePython = `#!/bin/sh
dir=$(dirname "$0")
case "$1" in
-c)
	case "$2" in
	*moto*)
		[ -f "$dir/moto" ] || { echo "ModuleNotFoundError: No module named 'moto'" >&2; exit 1; }
		cat "$dir/moto" ;;
	*ensurepip*)
		[ ! -f "$dir/no-venv" ] || { echo "ModuleNotFoundError: No module named 'ensurepip'" >&2; exit 1; } ;;
	*) echo "unexpected code: $2" >&2; exit 3 ;;
	esac ;;
-m)
	echo "$0 $*" >>"$FAKE_LOG"
	case "$2" in
	venv)
		[ ! -f "$dir/no-venv" ] || { echo "ensurepip is not available" >&2; exit 1; }
		mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && : >"$3/bin/activate" ;;
	pip)
		[ -z "$FAKE_PIP_FAIL" ] || { echo "Could not find a version that satisfies the requirement moto==5.2.1" >&2; exit 1; }
		echo 5.2.1 >"$dir/moto" && printf '#!/bin/sh\necho cfn-lint 1.51.0\n' >"$dir/cfn-lint" && chmod +x "$dir/cfn-lint" ;;
	*) echo "unexpected module: $2" >&2; exit 3 ;;
	esac ;;
*) echo "unexpected arguments: $*" >&2; exit 3 ;;
esac
`

// A stand-in apt-get that installs the venv module (removes the python's no-venv).
const fakeAptGet = `#!/bin/sh
echo "apt-get $*" >>"$FAKE_LOG"
rm -f "$FAKE_BIN/no-venv"
`

type machine struct {
	python3  string // "": none; "none": moto does not import; else moto's version
	cfnLint  bool   // cfn-lint on the PATH
	noVenv   bool   // python3 lacks the venv module
	aptGet   bool
	uid      string // what id -u answers
	sudo     bool   // a sudo that needs no password
	pipFails bool
}

type run struct {
	stdout, stderr string
	err            error
	calls          []string // the -m and apt-get calls, with the temp dir as $T
}

type sandbox struct {
	t                   *testing.T
	dir, bin, venv, log string
	script, bash        string
	env                 []string
}

func newSandbox(t *testing.T, m machine) *sandbox {
	t.Helper()
	script, err := filepath.Abs("python-env.sh")
	if err != nil {
		t.Fatal(err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &sandbox{t: t, dir: dir, bin: filepath.Join(dir, "bin"), venv: filepath.Join(dir, "venv"),
		log: filepath.Join(dir, "log"), script: script, bash: bash}
	if err := os.Mkdir(s.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// Only the ordinary tools the script and the stand-ins use, from this machine.
	for _, tool := range []string{"bash", "dirname", "cmp", "cp", "cat", "mkdir", "rm", "chmod", "sed"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(s.bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	uid := m.uid
	if uid == "" {
		uid = "1000"
	}
	s.write("id", "#!/bin/sh\necho "+uid+"\n")
	if m.python3 != "" {
		s.write("python3", fakePython)
		if m.python3 != "none" {
			s.write("moto", m.python3+"\n")
		}
	}
	if m.cfnLint {
		s.write("cfn-lint", "#!/bin/sh\necho cfn-lint 1.51.0\n")
	}
	if m.noVenv {
		s.write("no-venv", "")
	}
	if m.aptGet {
		s.write("apt-get", fakeAptGet)
	}
	if m.sudo {
		s.write("sudo", "#!/bin/sh\n[ \"$1\" = -n ] && shift\n[ \"$1\" = true ] && exit 0\nexec \"$@\"\n")
	}
	s.env = []string{"PATH=" + s.bin, "AMIFLEET_VENV=" + s.venv, "FAKE_LOG=" + s.log, "FAKE_BIN=" + s.bin}
	if m.pipFails {
		s.env = append(s.env, "FAKE_PIP_FAIL=1")
	}
	return s
}

func (s *sandbox) write(name, content string) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.bin, name), []byte(content), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sandbox) run(extraEnv []string, args ...string) run {
	s.t.Helper()
	_ = os.Remove(s.log)
	cmd := exec.Command(s.bash, append([]string{s.script}, args...)...)
	cmd.Env = append(append([]string{}, s.env...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := run{err: cmd.Run(), stdout: strings.TrimSpace(stdout.String()), stderr: strings.TrimSpace(stderr.String())}
	if b, err := os.ReadFile(s.log); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			r.calls = append(r.calls, strings.ReplaceAll(line, s.dir, "$T"))
		}
	}
	return r
}

func TestPythonEnvDecides(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	req := filepath.Join(root, "tools", "python-requirements.txt")
	build := []string{
		"$T/bin/python3 -m venv $T/venv",
		"$T/venv/bin/python -m pip install --disable-pip-version-check -q -r " + req,
	}
	tests := []struct {
		name    string
		machine machine
		env     []string
		python  string   // what it prints; "" when it refuses
		cfnLint string   // what --cfn-lint prints then
		calls   []string // the -m and apt-get calls of the first run
		message string   // in the refusal
	}{
		{name: "python3 has both", machine: machine{python3: "5.2.1", cfnLint: true},
			python: "$T/bin/python3", cfnLint: "$T/bin/cfn-lint"},
		{name: "python3 lacks moto", machine: machine{python3: "none", cfnLint: true},
			python: "$T/venv/bin/python", cfnLint: "$T/venv/bin/cfn-lint", calls: build},
		{name: "python3 has another moto", machine: machine{python3: "5.1.0", cfnLint: true},
			python: "$T/venv/bin/python", cfnLint: "$T/venv/bin/cfn-lint", calls: build},
		{name: "no cfn-lint", machine: machine{python3: "5.2.1"},
			python: "$T/venv/bin/python", cfnLint: "$T/venv/bin/cfn-lint", calls: build},
		{name: "no venv module, root with apt-get", machine: machine{python3: "none", noVenv: true, aptGet: true, uid: "0"},
			python: "$T/venv/bin/python", cfnLint: "$T/venv/bin/cfn-lint",
			calls: append([]string{"apt-get install -y -qq python3-venv"}, build...)},
		{name: "no venv module, sudo without a password", machine: machine{python3: "none", noVenv: true, aptGet: true, sudo: true},
			python: "$T/venv/bin/python", cfnLint: "$T/venv/bin/cfn-lint",
			calls: append([]string{"apt-get install -y -qq python3-venv"}, build...)},
		{name: "no venv module, no way to install it", machine: machine{python3: "none", noVenv: true, aptGet: true},
			message: "Python's venv module is missing: run 'sudo apt-get install python3-venv', then run make again"},
		{name: "no venv module, no apt-get", machine: machine{python3: "none", noVenv: true, uid: "0"},
			message: "Python's venv module is missing: run 'sudo apt-get install python3-venv', then run make again"},
		{name: "PyPI unreachable", machine: machine{python3: "none", cfnLint: true, pipFails: true},
			calls:   build,
			message: "could not install tools/python-requirements.txt into $T/venv (see above; pip needs PyPI or your PIP_INDEX_URL): run '$T/venv/bin/python -m pip install -r tools/python-requirements.txt' once it is reachable, then run make again"},
		{name: "no python3", machine: machine{cfnLint: true},
			message: "python3 is missing: install Python 3.11 ('sudo apt-get install python3 python3-venv' on Debian and Ubuntu), then run make again"},
		{name: "AMIFLEET_PYTHON has both", machine: machine{python3: "none"}, env: []string{"AMIFLEET_PYTHON=$T/good/python"},
			python: "$T/good/python", cfnLint: "$T/good/cfn-lint"},
		{name: "AMIFLEET_PYTHON lacks moto", machine: machine{python3: "none", cfnLint: true}, env: []string{"AMIFLEET_PYTHON=$T/bin/python3"},
			message: "AMIFLEET_PYTHON=$T/bin/python3 lacks moto[server] 5.2.1 or cfn-lint: run '$T/bin/python3 -m pip install -r tools/python-requirements.txt', or unset AMIFLEET_PYTHON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t, tt.machine)
			good := filepath.Join(s.dir, "good")
			if err := os.Mkdir(good, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range map[string]string{"python": fakePython, "moto": "5.2.1\n", "cfn-lint": "#!/bin/sh\n"} {
				if err := os.WriteFile(filepath.Join(good, name), []byte(content), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var env []string
			for _, e := range tt.env {
				env = append(env, strings.ReplaceAll(e, "$T", s.dir))
			}
			expand := func(v string) string { return strings.ReplaceAll(v, "$T", s.dir) }

			r := s.run(env)
			if strings.Join(r.calls, "\n") != strings.Join(tt.calls, "\n") {
				t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(r.calls, "\n"), strings.Join(tt.calls, "\n"))
			}
			if tt.message != "" {
				var exit *exec.ExitError
				if !errors.As(r.err, &exit) || exit.ExitCode() != 1 {
					t.Fatalf("err %v, want exit 1; stderr:\n%s", r.err, r.stderr)
				}
				if r.stdout != "" {
					t.Errorf("stdout %q, want nothing", r.stdout)
				}
				lines := strings.Split(r.stderr, "\n")
				if last := lines[len(lines)-1]; last != expand(tt.message) {
					t.Errorf("its message is\n%s\nwant\n%s", last, expand(tt.message))
				}
				if _, err := os.Stat(filepath.Join(s.venv, "amifleet-requirements.txt")); err == nil {
					t.Error("the virtual environment is marked as installed")
				}
				return
			}
			if r.err != nil {
				t.Fatalf("%v; stderr:\n%s", r.err, r.stderr)
			}
			if r.stdout != expand(tt.python) {
				t.Errorf("it prints %q, want %q", r.stdout, expand(tt.python))
			}
			_, err := os.Stat(s.venv)
			if built := tt.calls != nil; built != (err == nil) {
				t.Errorf("virtual environment built: %v, want %v", err == nil, built)
			}

			// Asked again, for cfn-lint: the same decision, and nothing built twice.
			r = s.run(env, "--cfn-lint")
			if r.err != nil || r.stdout != expand(tt.cfnLint) || len(r.calls) != 0 {
				t.Errorf("--cfn-lint: %v, prints %q (want %q), calls %q; stderr:\n%s", r.err, r.stdout, expand(tt.cfnLint), r.calls, r.stderr)
			}
		})
	}
}

// A virtual environment installed from other pins is installed again.
func TestPythonEnvReinstallsOnNewPins(t *testing.T) {
	s := newSandbox(t, machine{python3: "none"})
	if r := s.run(nil); r.err != nil || r.stdout != filepath.Join(s.venv, "bin", "python") {
		t.Fatalf("first run: %v, %q; stderr:\n%s", r.err, r.stdout, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(s.venv, "amifleet-requirements.txt"), []byte("moto[server]==5.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.run(nil)
	if r.err != nil || r.stdout != filepath.Join(s.venv, "bin", "python") {
		t.Fatalf("%v, %q; stderr:\n%s", r.err, r.stdout, r.stderr)
	}
	if len(r.calls) != 2 || !strings.Contains(r.calls[1], "-m pip install") {
		t.Errorf("calls %q, want venv and pip install again", r.calls)
	}
}

// On this machine: what it picks has moto 5.2.1 with its server's extras, and its
// cfn-lint runs; where python3 has both and no virtual environment was built, python3.
func TestPythonEnvOnThisMachine(t *testing.T) {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AMIFLEET_PYTHON=") && !strings.HasPrefix(e, "AMIFLEET_VENV=") {
			env = append(env, e)
		}
	}
	ask := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("./python-env.sh", args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python-env.sh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	motoOf := func(python string) string {
		out, err := exec.Command(python, "-c", `import importlib.metadata as m, flask, werkzeug; print(m.version("moto"))`).CombinedOutput()
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(string(out))
	}
	_, venvErr := os.Stat(filepath.Join("..", ".venv"))
	python := ask()
	if got := motoOf(python); got != "5.2.1" {
		t.Errorf("%s: moto %q, want 5.2.1 with flask and werkzeug", python, got)
	}
	cfnLint := ask("--cfn-lint")
	if out, err := exec.Command(cfnLint, "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "cfn-lint ") {
		t.Errorf("%s --version: %q, %v", cfnLint, out, err)
	}

	python3, err := exec.LookPath("python3")
	if err != nil || venvErr == nil {
		return // python3 is not the candidate here: the virtual environment is.
	}
	if _, err := exec.LookPath("cfn-lint"); err != nil || motoOf(python3) != "5.2.1" {
		return
	}
	if python != python3 {
		t.Errorf("python3 (%s) has moto and cfn-lint is on the PATH, but it picks %s", python3, python)
	}
	if _, err := os.Stat(filepath.Join("..", ".venv")); err == nil {
		t.Error("it built .venv/ although python3 has what it needs")
	}
}
