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
// it does nothing: the collector's own pacing is cheaper there.
//
// At its first look, when start-up is long over, Run also unmaps the
// executable's pages that only start-up used (DropStartupPages), once.
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

// Run trims until ctx is done. Whether the start-up pages were dropped is
// logged to log at debug level (nil: not logged); a failure leaves them
// mapped, which costs memory, never correctness.
func Run(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(Interval)
	defer t.Stop()
	run(ctx, t.C, Allocated, debug.FreeOSMemory, func() {
		n, err := DropStartupPages()
		if err != nil {
			log.Debug("start-up pages stay mapped", "err", err)
			return
		}
		log.Debug("start-up pages unmapped", "bytes", n)
	})
}

// run is Run with its clock, allocation counter, trim and start-up page
// drop injected.
func run(ctx context.Context, tick <-chan time.Time, allocated func() uint64, free, drop func()) {
	last := allocated()
	for first := true; ; first = false {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		if first {
			drop()
		}
		now := allocated()
		if quiet(last, now) {
			free()
			now = allocated()
		}
		last = now
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
