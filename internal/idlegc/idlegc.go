// Package idlegc returns an idle healthbridge's garbage to the operating
// system.
//
// Go's collector lets the heap grow to its goal before it collects, and
// the goal is at least 4 MB × GOGC/100.
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
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// MemoryLimitRatio is the share of its container's memory limit that a
// healthbridge process gives Go's collector as a soft limit (GOMEMLIMIT):
// near the limit the collector runs as often as it must to stay under it,
// instead of letting the heap double (GOGC 100) into an OOM kill. The rest
// is left for what the collector does not govern (stacks, the binary's
// pages, a child's memory).
const MemoryLimitRatio = 0.9

// SetMemoryLimit sets Go's soft memory limit to MemoryLimitRatio × the
// memory limit of the cgroup the process runs in (v1 memory.limit_in_bytes
// or v2 memory.max, read with github.com/KimMachineGun/automemlimit), unless
// $GOMEMLIMIT is set, which wins as the runtime reads it
// ($AUTOMEMLIMIT=off turns this off; a number in (0, 1] replaces the
// ratio, as the library defines). The collector's
// target stays Go's GOGC 100 unless $GOGC says otherwise: an idle
// healthbridge collects every Interval anyway, and under load GOGC 100
// costs less CPU for a few MB more (bench/scale, bench/readyz). With no
// limit (none set, or no cgroup to read) nothing changes. It returns the
// limit in effect, in bytes (math.MaxInt64: none), and an error when the
// cgroup could not be read (then nothing changed). Call it first in main.
func SetMemoryLimit() (int64, error) {
	return memlimit.Set(
		memlimit.WithRatio(MemoryLimitRatio),
		memlimit.WithProvider(memlimit.FromCgroup),
	)
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
