// Package ttl is the push check, as Consul's TTL checks: the application
// reports pass, warn or fail (with an optional output) to healthbridge's
// admin listener, and a report older than the TTL fails with "TTL expired".
//
// The kind owns everything about it: the Board holds the reports, Admin is
// the handler the sidecar mounts on adminListen (it writes the Board), and
// the Prober reads the Board on each run.
package ttl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// Kind is the ttl kind: `ttl: {seconds}`, a push check.
var Kind = probe.Kind{
	Name: "ttl",
	Has:  func(c *config.Check) bool { return c.TTL != nil },
	// A pushed report is the state: periodSeconds 1 and failureThreshold 1
	// unless set, so expiry is seen within a second, as Consul.
	Defaults: func(c *config.Check) {
		if c.PeriodSeconds == 0 {
			c.PeriodSeconds = 1
		}
		if c.FailureThreshold == 0 {
			c.FailureThreshold = 1
		}
	},
	Validate: func(c *config.Check, path string) []error {
		if c.TTL.Seconds < 1 {
			return []error{config.Errorf(path+".ttl.seconds", "must be >= 1, got %d", c.TTL.Seconds)}
		}
		return nil
	},
	New: func(*config.Check, probe.Deps) (probe.Prober, error) {
		return nil, config.Errorf("ttl", "a push check is built with its admin handler (Kind.Push)")
	},
	Push: func(checks []*config.Check, runNow func(string)) probe.PushKind {
		var names []string
		for _, c := range checks {
			names = append(names, c.Name)
		}
		b := NewBoard(names)
		return probe.PushKind{
			Patterns: AdminPatterns,
			Handler:  NewAdmin(b, runNow),
			New: func(c *config.Check, _ probe.Deps) (probe.Prober, error) {
				return &Prober{name: c.Name, ttl: time.Duration(c.TTL.Seconds) * time.Second, board: b}, nil
			},
		}
	},
}

// Report is what an application pushed for a ttl check.
type Report struct {
	// Outcome is OutcomeSuccess (pass), OutcomeWarning (warn) or
	// OutcomeFailure (fail).
	Outcome probe.Outcome
	// Output is the report's body, at most probe.MaxOutput bytes.
	Output string
	// At is when the report arrived.
	At time.Time
}

// Board holds the last report of each ttl check. It is safe for concurrent
// use; the zero value is not: use NewBoard.
type Board struct {
	// mu guards last.
	mu    sync.Mutex
	names map[string]bool // the ttl checks; read-only after NewBoard
	last  map[string]Report
}

// NewBoard returns a board that accepts reports for the named checks only.
func NewBoard(names []string) *Board {
	b := &Board{names: map[string]bool{}, last: map[string]Report{}}
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
	b.last[name] = Report{Outcome: outcome, Output: output, At: time.Now()}
	b.mu.Unlock()
	return true
}

// Last returns the check's last report, or false if none arrived.
func (b *Board) Last(name string) (Report, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.last[name]
	return r, ok
}

// Prober judges the last report of one check against its TTL.
type Prober struct {
	name  string
	ttl   time.Duration
	board *Board
}

// Probe returns the last report's outcome and output while it is younger
// than the TTL; otherwise a failure "TTL expired", which keeps the last
// report's output as Consul does: "TTL expired (last output before timeout
// follows): <output>".
func (p *Prober) Probe(context.Context) probe.Result {
	last, ok := p.board.Last(p.name)
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

// MaxPushBody is the largest report body accepted, in bytes: 64 KiB. A
// larger one is answered 413 and not recorded; an accepted body is stored
// up to probe.MaxOutput (4096) bytes, as any probe output.
const MaxPushBody = 64 << 10

// pushVerbs maps the last path element to a report's outcome, as Consul's
// /v1/agent/check/pass|warn|fail.
var pushVerbs = map[string]probe.Outcome{
	"pass": probe.OutcomeSuccess,
	"warn": probe.OutcomeWarning,
	"fail": probe.OutcomeFailure,
}

// AdminPatterns are the push endpoints' http.ServeMux patterns.
var AdminPatterns = []string{"POST /checks/{name}/{verb}", "PUT /checks/{name}/{verb}"}

// Admin serves the push endpoints for ttl checks, mounted at
// AdminPatterns:
//
//	POST (or PUT) /checks/<name>/pass|warn|fail   body: optional output
//
// It must only ever be served on the admin address, never on the public
// one. It can report on existing ttl checks only: no check of any kind can
// be created or changed otherwise.
type Admin struct {
	board    *Board
	onReport func(name string)
}

// NewAdmin returns the admin handler writing b. onReport, when not nil, is
// called after each accepted report (to re-run the check at once).
func NewAdmin(b *Board, onReport func(name string)) *Admin {
	return &Admin{board: b, onReport: onReport}
}

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	outcome, ok := pushVerbs[r.PathValue("verb")]
	if !ok || name == "" {
		http.Error(w, "not found: POST /checks/<name>/pass, warn or fail", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPushBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("report body over %d bytes", MaxPushBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !a.board.Report(name, outcome, string(body)) {
		http.Error(w, "no ttl check named "+name, http.StatusNotFound)
		return
	}
	if a.onReport != nil {
		a.onReport(name)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok\n")
}
