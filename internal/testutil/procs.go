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
