package localcloud

// The state file: what `local up` left running, for `local down`.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// State is what the state file records.
type State struct {
	// PID is the process that ran Up (and serves the gateway); StartTime is its
	// start time in clock ticks since boot (/proc/PID/stat), so that a reused PID is
	// never signalled.
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	// MotoPID leads moto's process group.
	MotoPID       int    `json:"motoPid"`
	MotoStartTime uint64 `json:"motoStartTime"`
	Endpoint      string `json:"endpoint"`
	Region        string `json:"region"`
	// Env is what Env printed for Region.
	Env     []string  `json:"env"`
	Started time.Time `json:"started"`
}

// DefaultStateFile is where `amifleet local up` records what it started:
// $XDG_RUNTIME_DIR/amifleet-local.json, or the temporary directory's.
func DefaultStateFile() string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "amifleet-local.json")
}

func (c *Cloud) writeState(path string) error {
	if old, err := ReadState(path); err == nil && old.alive() {
		return errAlreadyRunning(old)
	}
	st := State{
		PID:      os.Getpid(),
		MotoPID:  c.Moto.PID(),
		Endpoint: c.Endpoint,
		Region:   c.Region,
		Env:      c.Env(c.Region),
		Started:  time.Now().UTC(),
	}
	st.StartTime, _ = procStartTime(st.PID)
	st.MotoStartTime, _ = procStartTime(st.MotoPID)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return os.Rename(tmp, path)
}

func errAlreadyRunning(st State) error {
	return fmt.Errorf("a local cloud is already running (pid %d, %s): stop it with `amifleet local down`", st.PID, st.Endpoint)
}

// ReadState reads a state file.
func ReadState(path string) (State, error) {
	var st State
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state file %s: %w", path, err)
	}
	return st, nil
}

// alive reports whether the process that ran Up is still the one recorded.
func (st State) alive() bool { return sameProcess(st.PID, st.StartTime) }

// StopFromState stops the local cloud a state file describes: SIGTERM to the
// process that ran Up (which then runs Down), and, if moto outlives it, moto's
// process group. It reports false when nothing was running.
func StopFromState(ctx context.Context, path string) (bool, error) {
	st, err := ReadState(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	stopped := false
	if st.PID > 0 && st.PID != os.Getpid() && sameProcess(st.PID, st.StartTime) {
		stopped = true
		_ = syscall.Kill(st.PID, syscall.SIGTERM)
		waitGone(ctx, st.PID, st.StartTime, 20*time.Second)
		if sameProcess(st.PID, st.StartTime) {
			_ = syscall.Kill(st.PID, syscall.SIGKILL)
		}
	}
	if st.MotoPID > 0 && sameProcess(st.MotoPID, st.MotoStartTime) {
		stopped = true
		_ = syscall.Kill(-st.MotoPID, syscall.SIGTERM)
		waitGone(ctx, st.MotoPID, st.MotoStartTime, motoStopTimeout)
		_ = syscall.Kill(-st.MotoPID, syscall.SIGKILL)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return stopped, err
	}
	return stopped, nil
}

func waitGone(ctx context.Context, pid int, start uint64, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && sameProcess(pid, start) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sameProcess reports whether pid runs and started at start (0: any start time).
// A zombie counts as gone.
func sameProcess(pid int, start uint64) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := statFields(b)
	if len(f) < 20 || f[0] == "Z" {
		return false
	}
	got, _ := strconv.ParseUint(f[19], 10, 64)
	return start == 0 || got == start
}

func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	f := statFields(b)
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// statFields are /proc/PID/stat's fields after "(comm)": state first, starttime
// (field 22 of the file) at index 19.
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}
