package localcloud

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSandboxStartsABootstrapBusyForAMoment: a bootstrap still open for writing (as a
// process forked elsewhere holds it until it execs) cannot be run ("text file busy");
// the sandbox starts it once the file is free, instead of failing the function.
func TestSandboxStartsABootstrapBusyForAMoment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bootstrap")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("#!/bin/sh\nexit 0\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.Close()
	}()
	sb, err := startSandbox(FunctionConfig{Name: "busy", CodeDir: dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.srv.Close(); _ = sb.ln.Close() })
	select {
	case <-sb.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the bootstrap did not end")
	}
	if sb.cmd == nil || (sb.exitErr != nil && strings.Contains(sb.exitErr.Error(), "text file busy")) {
		t.Errorf("the bootstrap did not start: %v", sb.exitErr)
	}
}
