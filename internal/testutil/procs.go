package testutil

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/proc"
)

// AssertPidFileDead reads a pid from file and fails the test unless that
// process is gone within 5 s (a zombie awaiting its reaper counts as gone);
// a survivor is killed so it does not outlive the test.
func AssertPidFileDead(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if !proc.Running(pid) {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d outlived what spawned it", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// KillTree sends SIGKILL to pid, its process group, and every descendant
// and its process group: `healthbridge run` puts its child in a group of
// its own (as tini does), so killing healthbridge's group alone would
// leave the child running, holding the test's pipes.
func KillTree(pid int) {
	for _, p := range descendants(pid) {
		_ = syscall.Kill(-p, syscall.SIGKILL)
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// descendants lists pid's descendants, from /proc/PID/task/*/children.
func descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	return out
}
