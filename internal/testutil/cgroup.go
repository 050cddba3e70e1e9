package testutil

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MemCgroup is a memory cgroup of the test's own (cgroup v1's memory
// controller, or v2), for measuring a process tree's memory as the kubelet
// does a container's. It needs root; it is removed at the test's end,
// after the processes in it are killed.
type MemCgroup struct {
	dir string
	v2  bool
}

// MemUsage is what the kubelet reads of a memory cgroup, in bytes.
type MemUsage struct {
	// WorkingSet is usage minus inactive file pages (v1:
	// memory.usage_in_bytes − total_inactive_file; v2: memory.current −
	// inactive_file), what the kubelet, kubectl top and docker stats show.
	WorkingSet float64
	// Anon is anonymous memory (v1 total_rss, v2 anon).
	Anon float64
	// ActiveFile and InactiveFile are page-cache pages on each list.
	ActiveFile, InactiveFile float64
}

// NewMemCgroup makes a memory cgroup named after the test process and name.
func NewMemCgroup(t *testing.T, name string) *MemCgroup {
	t.Helper()
	name = fmt.Sprintf("healthbridge-test-%d-%s", os.Getpid(), name)
	cg := &MemCgroup{dir: filepath.Join("/sys/fs/cgroup/memory", name)}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = &MemCgroup{dir: filepath.Join("/sys/fs/cgroup", name), v2: true}
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		t.Fatalf("memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Kill what is left in it, then remove it (bounded: a process
		// being killed leaves the cgroup a moment later).
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(cg.Procs())
			pids := strings.Fields(string(b))
			for _, p := range pids {
				if n, err := strconv.Atoi(p); err == nil {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
			if err := os.Remove(cg.dir); err == nil || time.Now().After(deadline) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return cg
}

// Procs is the cgroup's cgroup.procs file: a pid written there moves that
// process (and the children it starts later) into the cgroup.
func (c *MemCgroup) Procs() string { return filepath.Join(c.dir, "cgroup.procs") }

// Read reads the cgroup's usage.
func (c *MemCgroup) Read(t *testing.T) MemUsage {
	t.Helper()
	usageFile, prefix := "memory.usage_in_bytes", "total_"
	if c.v2 {
		usageFile, prefix = "memory.current", ""
	}
	b, err := os.ReadFile(filepath.Join(c.dir, usageFile))
	if err != nil {
		t.Fatal(err)
	}
	usage, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(c.dir, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			st[k], _ = strconv.ParseFloat(v, 64)
		}
	}
	anon := st[prefix+"rss"]
	if c.v2 {
		anon = st["anon"]
	}
	return MemUsage{
		WorkingSet:   usage - st[prefix+"inactive_file"],
		Anon:         anon,
		ActiveFile:   st[prefix+"active_file"],
		InactiveFile: st[prefix+"inactive_file"],
	}
}
