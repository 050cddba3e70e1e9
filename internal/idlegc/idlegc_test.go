package idlegc

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/cgmem"
)

func TestQuiet(t *testing.T) {
	for _, tt := range []struct {
		last, now uint64
		want      bool
	}{
		{0, 0, true},
		{100, 100 + QuietBytes - 1, true},
		{100, 100 + QuietBytes, false},
		{100, 100 + 10*QuietBytes, false},
	} {
		if got := quiet(tt.last, tt.now); got != tt.want {
			t.Errorf("quiet(%d, %d) = %v, want %v", tt.last, tt.now, got, tt.want)
		}
	}
}

// TestRunTrimsOnAQuietTickAndStops: a tick after little allocation trims;
// a tick after much does not (the next quiet one does); Run returns when
// its context ends.
func TestRunTrimsOnAQuietTickAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	var allocated atomic.Uint64
	var trimmedAt uint64        // the allocation count at the last trim; read after its look
	looks := make(chan bool, 1) // whether each look trimmed, sent at its end
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, tick, allocated.Load, func() { trimmedAt = allocated.Load() }, func(_ uint64, trimmed bool) { looks <- trimmed })
	}()
	// step sends one tick and waits until run has finished that look: the
	// counter is changed only between looks.
	step := func() bool {
		t.Helper()
		tick <- time.Time{}
		select {
		case trimmed := <-looks:
			return trimmed
		case <-time.After(time.Minute):
			t.Fatal("no look after a tick")
			return false
		}
	}
	allocated.Store(1 << 20)
	if !step() || trimmedAt != 1<<20 {
		t.Fatalf("a quiet first tick: no trim at 1 MiB (last trim at %d)", trimmedAt)
	}
	allocated.Add(QuietBytes)
	if step() {
		t.Fatalf("a busy tick trimmed (at %d)", trimmedAt)
	}
	if !step() || trimmedAt != 1<<20+QuietBytes {
		t.Fatalf("a quiet tick after a busy one: no trim (last trim at %d)", trimmedAt)
	}
	allocated.Add(QuietBytes)
	if step() {
		t.Fatalf("a busy tick trimmed (at %d)", trimmedAt)
	}
	cancel()
	<-done
}

// TestAllocatedCounts reads the runtime's own counter: it grows by at least
// what is allocated.
func TestAllocatedCounts(t *testing.T) {
	before := Allocated()
	b := make([]byte, 1<<20)
	runtime.KeepAlive(b)
	if after := Allocated(); after-before < 1<<20 {
		t.Fatalf("Allocated grew by %d after a 1 MiB allocation", after-before)
	}
}

// TestSetMemoryLimitFollowsTheCgroup runs this test binary in a memory
// cgroup limited to 200 MiB, as a container runtime would, and reads the
// soft limit SetMemoryLimit gave Go's collector: 90 % of it; with
// $GOMEMLIMIT set, the variable's; with $AUTOMEMLIMIT=off, none.
func TestSetMemoryLimitFollowsTheCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a memory cgroup needs root")
	}
	cg, err := cgmem.New("idlegc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Remove() })
	const limit = 200 << 20
	if err := cg.SetLimit(limit); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  string
		want int64
	}{
		{"", int64(MemoryLimitRatio * limit)},
		{"GOMEMLIMIT=50MiB", 50 << 20},
		{"AUTOMEMLIMIT=off", math.MaxInt64},
	} {
		cmd := cg.Command(os.Args[0], "-test.run=^TestSetMemoryLimitFollowsTheCgroup$")
		cmd.Env = append(os.Environ(), "IDLEGC_HELPER=1", c.env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.env, err, out)
		}
		got, _, _ := strings.Cut(string(out), "\n")
		if got != fmt.Sprint("limit ", c.want) {
			t.Errorf("with %q in a cgroup of %d bytes: %q, want limit %d", c.env, limit, out, c.want)
		}
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("IDLEGC_HELPER") == "1" {
		_, err := SetMemoryLimit()
		fmt.Printf("limit %d\n", debug.SetMemoryLimit(-1))
		if err != nil {
			fmt.Println("error:", err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
