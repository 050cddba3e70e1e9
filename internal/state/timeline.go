package state

import (
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
)

// TimelineLen is how many recent results each check keeps for the status
// page's timeline: 32, in a ring of 8-byte marks, 264 bytes per check
// (2.6 MB for 10,000 checks). The ring lives beside the snapshots, not in
// them, so a result copies nothing of it.
const TimelineLen = 32

// Mark is one result on a timeline, as Store.Timelines returns it.
type Mark struct {
	// start is when the run started, in whole seconds after the store's
	// epoch (136 years of range).
	start uint32
	// durMs is how long it ran, in milliseconds, saturating at 65,535.
	durMs uint16
	// Outcome is the run's outcome.
	Outcome probe.Outcome
	epoch   *epoch
}

// epoch is the time a store's marks count from.
type epoch struct{ t time.Time }

// Start is when the run started, to the second.
func (m Mark) Start() time.Time { return m.epoch.t.Add(time.Duration(m.start) * time.Second) }

// Duration is how long it ran, to the millisecond (at most 65.535 s).
func (m Mark) Duration() time.Duration { return time.Duration(m.durMs) * time.Millisecond }

// mark is a Mark as stored, in 8 bytes: without its epoch, the outcome
// in a byte.
type mark struct {
	start   uint32
	durMs   uint16
	outcome uint8
}

// ring is one check's last TimelineLen marks; n counts every mark ever
// added, so the oldest kept is at n % TimelineLen once full.
type ring struct {
	marks [TimelineLen]mark
	n     uint64
}

func (r *ring) add(res probe.Result, now, epoch time.Time) {
	start := res.Start
	if start.IsZero() {
		start = now
	}
	secs := max(start.Sub(epoch)/time.Second, 0)
	d := res.Duration().Milliseconds()
	r.marks[r.n%TimelineLen] = mark{start: uint32(min(secs, 1<<32-1)), durMs: uint16(min(max(d, 0), 1<<16-1)), outcome: uint8(res.Outcome)}
	r.n++
}

// appendTo appends the marks, oldest first.
func (r *ring) appendTo(out []Mark, e *epoch) []Mark {
	n := min(r.n, TimelineLen)
	first := uint64(0)
	if r.n > TimelineLen {
		first = r.n % TimelineLen
	}
	for k := range n {
		m := r.marks[(first+k)%TimelineLen]
		out = append(out, Mark{start: m.start, durMs: m.durMs, Outcome: probe.Outcome(m.outcome), epoch: e})
	}
	return out
}

// Timelines returns every check's recent marks, oldest first, in config
// order (the status page). It copies them under the writers' mutex, once.
func (s *Store) Timelines() [][]Mark {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]Mark, len(s.rings))
	flat := make([]Mark, 0, len(s.rings)*TimelineLen)
	e := &epoch{t: s.epoch}
	for i := range s.rings {
		start := len(flat)
		flat = s.rings[i].appendTo(flat, e)
		out[i] = flat[start:len(flat):len(flat)]
	}
	return out
}
