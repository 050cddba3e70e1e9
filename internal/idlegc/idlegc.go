// Package idlegc returns an idle healthbridge's garbage to the operating
// system.
//
// Go's collector lets the heap grow to its goal before it collects, and
// the goal is at least 4 MB × GOGC/100: 2 MB at healthbridge's GOGC of 50.
// A sidecar's live heap is well under 1 MB, and at one check a second the
// headroom fills with garbage within a minute and stays resident between
// collections: bench/idle measured the RssAnon of the lean build growing
// from 1.5 MB five seconds after start to 3.5 MB a minute later. Memory
// that every pod pays for is worth a collection now and then.
//
// Every Interval, if the process allocated less than QuietBytes since the
// last look, Run forces a collection and hands the freed pages back
// (runtime/debug.FreeOSMemory: about a millisecond of CPU for a
// sidecar's heap). Under load, when more than QuietBytes were allocated,
// it does nothing: the collector's own pacing is cheaper there. This
// shows in the container's working set, what a cluster bills: the
// anonymous pages handed back leave it (bench/idle).
package idlegc

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultGOGC is the garbage collector's target every healthbridge
// process (healthbridge in each mode, its kubernetesPod helper) runs with
// unless $GOGC says otherwise: 50, not Go's 100. A sidecar's live heap is
// small and its memory is multiplied by every pod: halving the headroom
// the collector leaves above the live heap costs little CPU (measured with
// bench/scale: 10,000 checks at 1,000 probes/s stay at the bare dial loop's
// CPU per probe) and lowers resident memory (there, from 63 MB to 54 MB).
const DefaultGOGC = 50

// SetGCPercent applies DefaultGOGC unless $GOGC is set. Call it first in
// main.
func SetGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGOGC)
	}
}

const (
	// Interval is how often Run looks.
	Interval = 10 * time.Second
	// QuietBytes is the most a process may allocate in an Interval and
	// still count as idle: 8 MiB, about 200 exec, tcpSocket or httpGet
	// probe runs.
	QuietBytes = 8 << 20
)

// Run trims until ctx is done. Its first look is logged to log at debug
// level (nil: not logged): what the process allocated since it started
// running, and whether it trimmed.
func Run(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(Interval)
	defer t.Stop()
	first := true
	run(ctx, t.C, Allocated, func() { debug.FreeOSMemory() }, func(allocated uint64, trimmed bool) {
		if first {
			first = false
			log.Debug("idle collector: first look", "allocated_bytes", allocated, "trimmed", trimmed, "heap_released_bytes", released())
		}
	})
}

// released is the heap memory returned to the operating system
// (runtime/metrics' /memory/classes/heap/released:bytes).
func released() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// run is Run with its clock, allocation counter and trim injected; looked
// is told what was allocated since the last look and whether it trimmed.
func run(ctx context.Context, tick <-chan time.Time, allocated func() uint64, free func(), looked func(uint64, bool)) {
	last := allocated()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		now := allocated()
		delta, trim := now-last, quiet(last, now)
		if trim {
			free()
			now = allocated()
		}
		last = now
		looked(delta, trim)
	}
}

// quiet reports whether allocating from last to now (cumulative bytes)
// leaves the process idle.
func quiet(last, now uint64) bool { return now-last < QuietBytes }

// Allocated returns the bytes the process has allocated on the heap since
// it started (runtime/metrics' /gc/heap/allocs:bytes).
func Allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
