package state

import (
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
)

// TimelineLen is how many recent results each check keeps for the status
// page's timeline: 32, in a ring of 16-byte marks, 512 bytes per check
// (5.1 MB for 10,000 checks). The ring lives beside the snapshots, not in
// them, so a result copies nothing of it.
const TimelineLen = 32

// Mark is one result on a timeline.
type Mark struct {
	// StartMs is when the run started, in Unix milliseconds.
	StartMs int64
	// DurMs is how long it ran, in milliseconds (saturating).
	DurMs uint32
	// Outcome is the run's outcome.
	Outcome probe.Outcome
}

// Start is when the run started.
func (m Mark) Start() time.Time { return time.UnixMilli(m.StartMs) }

// Duration is how long it ran.
func (m Mark) Duration() time.Duration { return time.Duration(m.DurMs) * time.Millisecond }

// ring is one check's last TimelineLen marks; n counts every mark ever
// added, so the oldest kept is at n % TimelineLen once full.
type ring struct {
	marks [TimelineLen]Mark
	n     uint64
}

func (r *ring) add(res probe.Result, now time.Time) {
	start := res.Start
	if start.IsZero() {
		start = now
	}
	d := res.Duration().Milliseconds()
	r.marks[r.n%TimelineLen] = Mark{StartMs: start.UnixMilli(), DurMs: uint32(min(max(d, 0), 1<<32-1)), Outcome: res.Outcome}
	r.n++
}

// appendTo appends the marks, oldest first.
func (r *ring) appendTo(out []Mark) []Mark {
	if r.n <= TimelineLen {
		return append(out, r.marks[:r.n]...)
	}
	i := r.n % TimelineLen
	out = append(out, r.marks[i:]...)
	return append(out, r.marks[:i]...)
}

// Timelines returns every check's recent marks, oldest first, in config
// order (the status page). It copies them under the writers' mutex, once.
func (s *Store) Timelines() [][]Mark {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]Mark, len(s.rings))
	flat := make([]Mark, 0, len(s.rings)*TimelineLen)
	for i := range s.rings {
		start := len(flat)
		flat = s.rings[i].appendTo(flat)
		out[i] = flat[start:len(flat):len(flat)]
	}
	return out
}
