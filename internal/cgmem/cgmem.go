// Package cgmem measures a process tree's memory the way the kubelet
// measures a container's: a memory cgroup of its own, read as the
// working set (usage minus inactive file pages). The tests and the bench/
// harness use it to put a subject and its floor side by side; healthbridge
// itself does not.
package cgmem

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Group is a memory cgroup made for one measurement (cgroup v1's memory
// controller under /sys/fs/cgroup/memory, or v2's unified hierarchy). Making
// one needs root.
type Group struct {
	dir string
	v2  bool
}

// Usage is what the kubelet reads of a memory cgroup, in bytes.
type Usage struct {
	// WorkingSet is usage minus inactive file pages (v1:
	// memory.usage_in_bytes − total_inactive_file; v2: memory.current −
	// inactive_file), what the kubelet, kubectl top and docker stats show.
	WorkingSet float64
	// Anon is anonymous memory (v1 total_rss, v2 anon).
	Anon float64
	// ActiveFile and InactiveFile are page-cache pages on each list.
	ActiveFile, InactiveFile float64
}

// New makes a memory cgroup named healthbridge-<pid>-<name>. It fails when
// the memory controller is not mounted or the caller may not write there.
func New(name string) (*Group, error) {
	name = fmt.Sprintf("healthbridge-%d-%s", os.Getpid(), name)
	g := &Group{dir: filepath.Join("/sys/fs/cgroup/memory", name)}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		g = &Group{dir: filepath.Join("/sys/fs/cgroup", name), v2: true}
	}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("memory cgroup: %w", err)
	}
	return g, nil
}

// OfPid is the memory cgroup process pid runs in (a container's, read
// from /proc/PID/cgroup: the memory controller's line on cgroup v1, the
// "0::" line on v2). It is not the caller's to Remove.
func OfPid(pid int) (*Group, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "memory") {
			return &Group{dir: filepath.Join("/sys/fs/cgroup/memory", f[2])}, nil
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			return &Group{dir: filepath.Join("/sys/fs/cgroup", rel), v2: true}, nil
		}
	}
	return nil, fmt.Errorf("no memory cgroup for pid %d", pid)
}

// Procs is the cgroup's cgroup.procs file: a pid written there moves that
// process (and the children it starts later) into the cgroup.
func (g *Group) Procs() string { return filepath.Join(g.dir, "cgroup.procs") }

// Command is name with args run inside the cgroup from its first
// instruction: a shell writes its own pid to Procs, then execs name, so
// every page the program touches is charged to the cgroup.
func (g *Group) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, g.Procs(), name}, args...)...)
}

// Read reads the cgroup's usage.
func (g *Group) Read() (Usage, error) {
	usageFile, prefix := "memory.usage_in_bytes", "total_"
	if g.v2 {
		usageFile, prefix = "memory.current", ""
	}
	b, err := os.ReadFile(filepath.Join(g.dir, usageFile))
	if err != nil {
		return Usage{}, err
	}
	usage, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return Usage{}, fmt.Errorf("%s: %w", usageFile, err)
	}
	f, err := os.Open(filepath.Join(g.dir, "memory.stat"))
	if err != nil {
		return Usage{}, err
	}
	defer f.Close()
	st := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			st[k], _ = strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return Usage{}, err
	}
	anon := st[prefix+"rss"]
	if g.v2 {
		anon = st["anon"]
	}
	return Usage{
		WorkingSet:   usage - st[prefix+"inactive_file"],
		Anon:         anon,
		ActiveFile:   st[prefix+"active_file"],
		InactiveFile: st[prefix+"inactive_file"],
	}, nil
}

// Remove kills what is left in the cgroup and removes it, trying for at
// most 10 s (a killed process leaves the cgroup a moment later).
func (g *Group) Remove() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(g.Procs())
		for _, p := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
		err := os.Remove(g.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SetLimit sets the cgroup's memory limit in bytes (v1
// memory.limit_in_bytes, v2 memory.max), as a container runtime does for
// a container's resources.limits.memory.
func (g *Group) SetLimit(bytes int64) error {
	name := "memory.limit_in_bytes"
	if g.v2 {
		name = "memory.max"
	}
	return os.WriteFile(filepath.Join(g.dir, name), []byte(strconv.FormatInt(bytes, 10)), 0o644)
}
