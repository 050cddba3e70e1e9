// Package ttl is the push check, as Consul's TTL checks: the application
// reports pass, warn or fail (with an optional output) to healthbridge's
// admin server, and a report older than the TTL fails with "TTL expired".
//
// The Board holds the reports; the admin server writes it and the ttl
// Prober reads it on each run.
package ttl

import (
	"context"
	"sync"
	"time"

	"healthbridge/internal/config"
	"healthbridge/internal/probe"
)

// Board holds the last report of each ttl check. It is safe for concurrent
// use; the zero value is not: use NewBoard.
type Board struct {
	// mu guards last.
	mu    sync.Mutex
	names map[string]bool // the ttl checks; read-only after NewBoard
	last  map[string]probe.Push
}

// NewBoard returns a board that accepts reports for the named checks only.
func NewBoard(names []string) *Board {
	b := &Board{names: map[string]bool{}, last: map[string]probe.Push{}}
	for _, n := range names {
		b.names[n] = true
	}
	return b
}

// Report records a report for the named check; outcome must be success,
// warning or failure. Output is cut at probe.MaxOutput bytes. It returns
// false for a name that is not a ttl check.
func (b *Board) Report(name string, outcome probe.Outcome, output string) bool {
	if !b.names[name] {
		return false
	}
	if len(output) > probe.MaxOutput {
		output = output[:probe.MaxOutput] + probe.Truncated
	}
	b.mu.Lock()
	b.last[name] = probe.Push{Outcome: outcome, Output: output, At: time.Now()}
	b.mu.Unlock()
	return true
}

// LastPush implements probe.PushSource.
func (b *Board) LastPush(name string) (probe.Push, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.last[name]
	return p, ok
}

// Prober judges the last report of one check against its TTL.
type Prober struct {
	name string
	ttl  time.Duration
	src  probe.PushSource
}

// New builds a ttl prober from c.TTL. d.Pushed must be set.
func New(c *config.Check, d probe.Deps) (probe.Prober, error) {
	if c.TTL == nil {
		return nil, config.Errorf("ttl", "required")
	}
	if d.Pushed == nil {
		return nil, config.Errorf("ttl", "no report board (internal wiring error)")
	}
	return &Prober{name: c.Name, ttl: time.Duration(c.TTL.Seconds) * time.Second, src: d.Pushed}, nil
}

// Probe returns the last report's outcome and output while it is younger
// than the TTL; otherwise a failure "TTL expired", which keeps the last
// report's output as Consul does: "TTL expired (last output before timeout
// follows): <output>".
func (p *Prober) Probe(context.Context) probe.Result {
	last, ok := p.src.LastPush(p.name)
	if !ok {
		return probe.Failure("TTL expired: no report yet (ttl %v)", p.ttl)
	}
	if age := time.Since(last.At); age > p.ttl {
		if last.Output != "" {
			// Consul's words: the last output is kept, not lost.
			return probe.Failure("TTL expired (last output before timeout follows): %s", last.Output)
		}
		return probe.Failure("TTL expired: last report %v ago (ttl %v)", age.Round(time.Millisecond), p.ttl)
	}
	return probe.Result{Outcome: last.Outcome, Output: last.Output}
}
