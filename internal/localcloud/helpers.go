package localcloud

// Helpers for Up and the deployer: finding the repository, naming the host's
// architecture for the CDK app, and running the build and the CDK CLI with their
// output logged.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RepoRoot is the amifleet repository that holds the working directory: the
// nearest directory upwards with cdk.json and a Makefile.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if fileExists(filepath.Join(d, "cdk.json")) && fileExists(filepath.Join(d, "Makefile")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("the local cloud runs from the amifleet repository (its Makefile and cdk.json build and deploy the stack): none above %s", dir)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// pythonOr is p, or, where none is given, the Python with moto: $AMIFLEET_PYTHON (make
// sets it from tools/python-env.sh), else the repository's .venv/ (which make builds
// where python3 lacks moto), else python3.
func pythonOr(p string) string {
	if p != "" {
		return p
	}
	if env := os.Getenv("AMIFLEET_PYTHON"); env != "" {
		return env
	}
	if root, err := RepoRoot(); err == nil {
		if venv := filepath.Join(root, ".venv", "bin", "python"); fileExists(venv) {
			return venv
		}
	}
	return "python3"
}

// cdkArch is the CDK app's arch context for a GOARCH.
func cdkArch(goarch string) string {
	if goarch == "amd64" {
		return "x86_64"
	}
	return "arm64"
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

// runLogged runs a command in dir with its output to logw (and the last lines in
// the error), in its own process group, killed with the group when ctx ends.
func runLogged(ctx context.Context, dir string, logw io.Writer, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	tail := NewTailBuffer(4 << 10)
	cmd.Stdout = io.MultiWriter(logw, tail)
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	fmt.Fprintf(logw, "amifleet local: running %s %s\n", name, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s: %w; its output ends with:\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(tail.String()))
	}
	return nil
}
