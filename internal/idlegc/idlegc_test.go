package idlegc

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
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
	trims := make(chan uint64, 10) // the allocation count at each trim
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, tick, allocated.Load, func() { trims <- allocated.Load() }, func(uint64, bool) {})
	}()
	wait := func() uint64 {
		t.Helper()
		select {
		case at := <-trims:
			return at
		case <-time.After(time.Minute):
			t.Fatal("no trim")
			return 0
		}
	}
	allocated.Store(1 << 20)
	tick <- time.Time{}
	if at := wait(); at != 1<<20 {
		t.Fatalf("first trim at %d", at)
	}
	allocated.Add(QuietBytes) // busy: no trim for this tick
	tick <- time.Time{}
	tick <- time.Time{} // taken only once the busy tick is done; quiet since
	if at := wait(); at != 1<<20+QuietBytes {
		t.Fatalf("second trim at %d", at)
	}
	// One more busy tick: taken only once the quiet one is done, so every
	// trim so far is in the channel, and there was exactly one.
	allocated.Add(QuietBytes)
	tick <- time.Time{}
	select {
	case at := <-trims:
		t.Fatalf("a busy tick trimmed (at %d)", at)
	default:
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
