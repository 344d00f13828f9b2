package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine is where the figures came from.
type Machine struct {
	Date       time.Time `json:"date"`
	CPU        string    `json:"cpu"`
	Cores      int       `json:"cores"`
	MemoryGiB  float64   `json:"memoryGiB"`
	Kernel     string    `json:"kernel"`
	Go         string    `json:"go"`
	Moto       string    `json:"moto"`
	Python     string    `json:"python"`
	Node       string    `json:"node"`
	CDKCLI     string    `json:"cdkCli"`
	LoadAvgAt  string    `json:"loadAvgAtStart"`
	SharedNote string    `json:"sharedNote,omitempty"`
}

func describeMachine(ctx context.Context, root string) Machine {
	m := Machine{Date: time.Now().UTC(), Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryGiB = memTotalGiB(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvgAt = strings.Join(f[:3], " ")
		}
	}
	m.Moto = output(ctx, "python3", "-c", "import moto; print(moto.__version__)")
	m.Python = strings.TrimPrefix(output(ctx, "python3", "--version"), "Python ")
	m.Node = output(ctx, "node", "--version")
	m.CDKCLI = output(ctx, filepath.Join(root, "node_modules", ".bin", "cdk"), "--version")
	return m
}

func output(ctx context.Context, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	b, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// memTotalGiB is /proc/meminfo's MemTotal in GiB.
func memTotalGiB(meminfo string) float64 {
	for _, line := range strings.Split(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / (1024 * 1024)
			}
		}
	}
	return 0
}
