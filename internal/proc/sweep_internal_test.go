package proc

import (
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestSweepStopsAtAnUncollectedCommand: the kernel offers a started
// command's zombie first; sweep leaves it (its status belongs to Wait),
// says it was held up, and the command's Wait wakes Reap once it has
// collected it.
func TestSweepStopsAtAnUncollectedCommand(t *testing.T) {
	held := exec.Command("sh", "-c", "exit 3")
	if err := Start(held); err != nil {
		t.Fatal(err)
	}
	path := "/proc/" + strconv.Itoa(held.Process.Pid) + "/stat"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _, ok := ReadStat(path); ok && st == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the started command did not exit")
		}
	}
	if got := waitable(); got != held.Process.Pid {
		t.Fatalf("waitable() = %d, want the command's pid %d", got, held.Process.Pid)
	}
	if n, h := sweep(); n != 0 || h != held.Process.Pid || !blocked.Load() {
		t.Fatalf("sweep() = %d, %d (blocked %v); want 0, %d, true", n, h, blocked.Load(), held.Process.Pid)
	}
	if st, _, ok := ReadStat(path); !ok || st != 'Z' {
		t.Fatalf("the command's zombie is gone after sweep (state %q)", st)
	}
	select {
	case <-collected: // drain a wake-up left by another test
	default:
	}
	_ = Wait(held)
	if code := held.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("Wait: exit code %d, want 3", code)
	}
	select {
	case <-collected:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake the reaper")
	}
	if n, h := sweep(); n != 0 || h != 0 || blocked.Load() {
		t.Fatalf("sweep() after Wait = %d, %d (blocked %v); want 0, 0, false", n, h, blocked.Load())
	}
}
