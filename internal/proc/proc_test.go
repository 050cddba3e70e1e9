package proc_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe/exec"
	"github.com/healthbridge/healthbridge/internal/proc"
)

// zombies counts this process's zombie children.
func zombies(t *testing.T) int {
	t.Helper()
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		st, ppid, ok := proc.ReadStat("/proc/" + e.Name() + "/stat")
		if ok && st == 'Z' && ppid == os.Getpid() {
			n++
		}
	}
	return n
}

// subreaperEnv marks the test binary re-run as a child subreaper.
const subreaperEnv = "HEALTHBRIDGE_TEST_SUBREAPER"

// TestReaperKeepsExitCodesAndLeavesNoZombies runs many probes that leave
// orphans behind (one in the probe's group, one escaped with setsid) in a
// child subreaper, as healthbridge is as PID 1.
func TestReaperKeepsExitCodesAndLeavesNoZombies(t *testing.T) {
	inSubreaper(t, "TestReaperKeepsExitCodesAndLeavesNoZombies", reaperBody)
}

// inSubreaper runs body in a re-run of this test binary that is a child
// subreaper: becoming one is for the life of a process, and the other
// tests of this one must not inherit orphans.
func inSubreaper(t *testing.T, name string, body func(*testing.T)) {
	if os.Getenv(subreaperEnv) != name {
		cmd := osexec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), subreaperEnv+"="+name)
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("%s", out)
		}
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("the subreaper run failed (%v):\n%s", err, out)
		}
		return
	}
	if ok, err := proc.ShouldReap(true); !ok || err != nil {
		t.Skipf("cannot become a child subreaper: %v", err)
	}
	body(t)
}

// TestReaperSeesPastAnUncollectedCommand: a started command that has
// exited but whose Wait has not run yet is the first waitable child the
// kernel offers; the orphans behind it are still reaped, and the command's
// exit status is still there for its Wait.
func TestReaperSeesPastAnUncollectedCommand(t *testing.T) {
	inSubreaper(t, "TestReaperSeesPastAnUncollectedCommand", func(t *testing.T) {
		held := osexec.Command("sh", "-c", "exit 3")
		if err := proc.Start(held); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); zombies(t) == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the started command did not exit")
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); proc.Reap(ctx, slog.New(slog.DiscardHandler)) }()
		defer func() { cancel(); wg.Wait() }()
		// Orphans: each run leaves a setsid sleep that comes to this
		// subreaper and exits.
		for range 5 {
			c := osexec.Command("sh", "-c", "setsid sleep 0.01 & exit 0")
			if err := proc.Start(c); err != nil {
				t.Fatal(err)
			}
			if err := proc.Wait(c); err != nil {
				t.Fatal(err)
			}
		}
		// Only the held command's zombie is left, however the kernel orders
		// the children: the orphans were reaped.
		deadline := time.Now().Add(10 * time.Second)
		for zombies(t) > 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d zombies left besides the started command's", zombies(t)-1)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st, _, ok := proc.ReadStat(fmt.Sprintf("/proc/%d/stat", held.Process.Pid)); !ok || st != 'Z' {
			t.Fatalf("the started command's zombie is gone (state %q): the reaper took it", st)
		}
		err := proc.Wait(held)
		if held.ProcessState == nil || held.ProcessState.ExitCode() != 3 {
			t.Fatalf("the started command's Wait: %v, %v; want exit status 3", err, held.ProcessState)
		}
	})
}

func reaperBody(t *testing.T) {
	p, err := exec.NewArgv([]string{"sh", "-c", "sleep 0.2 & setsid sleep 0.01 & exit 7"}, 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	probeOnce := func() int {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return p.Probe(ctx).ExitCode
	}

	// Without a reaper the orphans pile up as zombies: the test can fail.
	for range 5 {
		if code := probeOnce(); code != 7 {
			t.Fatalf("exit code %d, want 7", code)
		}
	}
	// The setsid sleeps end within 10 ms: they come back as zombies.
	for deadline := time.Now().Add(10 * time.Second); zombies(t) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("expected zombies before the reaper runs; is the subreaper set?")
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); proc.Reap(ctx, slog.New(slog.DiscardHandler)) }()

	const runs, workers = 300, 4
	codes := make(chan int, runs)
	var pw sync.WaitGroup
	for range workers {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for range runs / workers {
				codes <- probeOnce()
			}
		}()
	}
	pw.Wait()
	close(codes)
	for c := range codes {
		if c != 7 {
			t.Fatalf("a probe reported exit code %d, want 7: the reaper stole a status", c)
		}
	}
	// Let the last orphans exit, then the reaper must have collected all.
	deadline := time.Now().Add(10 * time.Second)
	for zombies(t) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d zombies left after the reaper ran", zombies(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if n := proc.Tracked(); n != 0 {
		t.Fatalf("%d started commands still tracked", n)
	}
}

func TestReadStatParsesAwkwardNames(t *testing.T) {
	f := t.TempDir() + "/stat"
	// A whole line as the kernel writes it; starttime (field 22) is 93311.
	line := "42 (a) b (c) Z 17 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 93311 2527232 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	if err := os.WriteFile(f, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	st, ppid, ok := proc.ReadStat(f)
	if !ok || st != 'Z' || ppid != 17 {
		t.Fatalf("got %c %d %v", st, ppid, ok)
	}
	if s, ok := proc.ReadStatFields(f); !ok || s.StartTicks != 93311 {
		t.Fatalf("start ticks: %+v %v", s, ok)
	}
	if err := os.WriteFile(f, []byte("42 (a) Z 17 42"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := proc.ReadStat(f); ok {
		t.Fatal("a truncated line parsed")
	}
}

func TestStartTimeOfAChildIsNow(t *testing.T) {
	before := time.Now()
	cmd := osexec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	got, ok := proc.StartTime("/proc", cmd.Process.Pid)
	// btime is whole seconds rounded down, ticks are 10 ms.
	if !ok || got.After(time.Now()) || got.Before(before.Add(-1100*time.Millisecond)) {
		t.Fatalf("start time %v (%v), want within [%v-1.1s, now]", got, ok, before)
	}
}
