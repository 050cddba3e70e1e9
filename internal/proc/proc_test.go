package proc_test

import (
	"context"
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
// child subreaper, as healthbridge is as PID 1. The subreaper is a
// re-run of this test binary: becoming one is for the life of a process,
// and the other tests of this one must not inherit orphans.
func TestReaperKeepsExitCodesAndLeavesNoZombies(t *testing.T) {
	if os.Getenv(subreaperEnv) == "" {
		cmd := osexec.Command(os.Args[0], "-test.run=^TestReaperKeepsExitCodesAndLeavesNoZombies$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), subreaperEnv+"=1")
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("%s", out)
		}
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("the subreaper run failed (%v):\n%s", err, out)
		}
		return
	}
	reaperBody(t)
}

func reaperBody(t *testing.T) {
	if ok, err := proc.ShouldReap(true); !ok || err != nil {
		t.Skipf("cannot become a child subreaper: %v", err)
	}
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
