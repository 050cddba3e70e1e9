package exec

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/testutil"
)

func newProber(t *testing.T, timeout time.Duration, startingCode int, argv ...string) *Prober {
	t.Helper()
	p, err := NewArgv(argv, timeout, startingCode)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, p *Prober, timeout time.Duration) (probe.Result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	r := p.Probe(ctx)
	return r, time.Since(start)
}

func TestExecOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		argv     []string
		starting int
		want     probe.Outcome
		code     int
		output   string
	}{
		{"exit 0 is success", []string{"sh", "-c", "echo ok"}, 0, probe.OutcomeSuccess, 0, "ok\n"},
		{"exit 1 is failure", []string{"sh", "-c", "echo bad >&2; exit 1"}, 0, probe.OutcomeFailure, 1, "bad\n"},
		{"exit 2 is failure by default", []string{"sh", "-c", "exit 2"}, 0, probe.OutcomeFailure, 2, ""},
		{"a silent failure has empty output, as docker inspect", []string{"false"}, 0, probe.OutcomeFailure, 1, ""},
		{"exit 2 is starting with startingExitCode 2", []string{"sh", "-c", "exit 2"}, 2, probe.OutcomeStarting, 2, ""},
		{"stdout and stderr together, in order", []string{"sh", "-c", "echo a; echo b >&2; echo c"}, 0, probe.OutcomeSuccess, 0, "a\nb\nc\n"},
		{"argv without a shell: the sh -c pitfall", []string{"echo", "ps -ef | grep python"}, 0, probe.OutcomeSuccess, 0, "ps -ef | grep python\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := run(t, newProber(t, 5*time.Second, tt.starting, tt.argv...), 5*time.Second)
			if r.Outcome != tt.want || r.ExitCode != tt.code || r.Output != tt.output {
				t.Fatalf("got %v code %d output %q; want %v code %d output %q", r.Outcome, r.ExitCode, r.Output, tt.want, tt.code, tt.output)
			}
		})
	}
}

func TestExecTimeoutKillsWholeGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	// The grandchild ignores nothing but would outlive its parent if only
	// the parent were killed.
	script := "sleep 300 & echo $! > " + pidFile + "; echo partial; sleep 300"
	p := newProber(t, time.Second, 0, "sh", "-c", script)
	r, took := run(t, p, time.Second)
	if took > 3*time.Second {
		t.Fatalf("timeout took %v", took)
	}
	if r.Outcome != probe.OutcomeFailure || r.ExitCode != -1 {
		t.Fatalf("got %v code %d", r.Outcome, r.ExitCode)
	}
	if want := "Health check exceeded timeout (1s): partial\n"; r.Output != want {
		t.Fatalf("output %q, want %q", r.Output, want)
	}
	testutil.AssertPidFileDead(t, pidFile)
}

func TestExecBackgroundChildHoldingStdoutReturnsPromptly(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "bg")
	p := newProber(t, 10*time.Second, 0, "sh", "-c", "sleep 300 & echo $! > "+pidFile+"; echo ok")
	r, took := run(t, p, 10*time.Second)
	if took > 2*time.Second {
		t.Fatalf("took %v with a background child holding stdout", took)
	}
	if r.Outcome != probe.OutcomeSuccess || r.Output != "ok\n" {
		t.Fatalf("got %v %q", r.Outcome, r.Output)
	}
	testutil.AssertPidFileDead(t, pidFile)
}

func TestExecHugeOutputIsCappedAndNeverBlocks(t *testing.T) {
	// 1 MiB on stdout and 1 MiB on stderr.
	p := newProber(t, 10*time.Second, 0, "sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; head -c 1048576 /dev/zero | tr '\\0' y >&2; exit 3")
	r, took := run(t, p, 10*time.Second)
	if took > 5*time.Second {
		t.Fatalf("took %v", took)
	}
	if r.Outcome != probe.OutcomeFailure || r.ExitCode != 3 {
		t.Fatalf("got %v code %d: the child must not block on a full pipe", r.Outcome, r.ExitCode)
	}
	// 4096 bytes, as Docker: the documented number, not the constant.
	if want := strings.Repeat("x", 4096) + "..."; r.Output != want {
		t.Fatalf("output is %d bytes (%q...), want 4096 x's and %q", len(r.Output), r.Output[:min(20, len(r.Output))], "...")
	}
}

func TestExecMissingBinary(t *testing.T) {
	c := &config.Check{}
	c.Exec = &config.ExecAction{Command: []string{"no-such-binary-healthbridge"}}
	_, err := New(c, probe.Deps{})
	if err == nil || !strings.HasPrefix(err.Error(), `exec.command[0]: "no-such-binary-healthbridge" not found`) {
		t.Fatalf("New error %v", err)
	}

	// A binary that disappears after start-up is Unknown, not a crash.
	dir := t.TempDir()
	bin := filepath.Join(dir, "check")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := newProber(t, time.Second, 0, bin)
	if r, _ := run(t, p, 5*time.Second); r.Outcome != probe.OutcomeSuccess {
		t.Fatalf("before removal: %v %q", r.Outcome, r.Output)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	r, _ := run(t, p, 5*time.Second)
	if r.Outcome != probe.OutcomeUnknown || r.Err == nil || r.ExitCode != -1 {
		t.Fatalf("after removal: %v code %d err %v", r.Outcome, r.ExitCode, r.Err)
	}
}

func TestCaptureUTF8Boundary(t *testing.T) {
	c := newCapture(5)
	_, _ = c.Write([]byte("abcdé")) // é is 2 bytes: only its first fits
	if got := c.String(); got != "abcd"+probe.Truncated {
		t.Fatalf("got %q", got)
	}
}

// TestExecOutcomeIsDecidedAtExit: a command that exits 0 before its
// timeout succeeds, even when what follows its exit — the group kill and
// the drain of a pipe still held by a process that left the group
// (setsid) — ends after the deadline. (Reported with sh -c 'setsid sleep
// 3 & sleep 0.95; exit 0' and a 1 s timeout, which the 100 ms drain pushed
// past the deadline; the drain is lengthened here so that the same happens
// whatever the machine's load.)
func TestExecOutcomeIsDecidedAtExit(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "escaped")
	// The background process has left the group (setsid) before the
	// command exits: it writes its pid only then.
	escape := "setsid sh -c 'echo $$ > " + pidFile + "; exec sleep 30' & while [ ! -s " + pidFile + " ]; do sleep 0.01; done; "
	p := newProber(t, time.Second, 0, "sh", "-c", escape+"echo done; exit 0")
	p.drain = 3 * time.Second
	r, took := run(t, p, time.Second)
	if took < time.Second {
		t.Fatalf("returned after %v: the drain did not cross the deadline, the test proves nothing", took)
	}
	if r.Outcome != probe.OutcomeSuccess || r.ExitCode != 0 || !strings.HasPrefix(r.Output, "done") {
		t.Fatalf("a command that exited 0 in time: %v exit %d %q", r.Outcome, r.ExitCode, r.Output)
	}
	// The same with a failing exit keeps its exit code.
	killPidFile(pidFile)
	p = newProber(t, time.Second, 0, "sh", "-c", escape+"exit 3")
	p.drain = 3 * time.Second
	if r, took := run(t, p, time.Second); r.Outcome != probe.OutcomeFailure || r.ExitCode != 3 || took < time.Second {
		t.Fatalf("exit 3 in time: %v exit %d %q after %v", r.Outcome, r.ExitCode, r.Output, took)
	}
	killPidFile(pidFile)
}

// killPidFile kills the process whose pid the file holds, and removes it.
func killPidFile(path string) {
	b, _ := os.ReadFile(path)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(path)
}
