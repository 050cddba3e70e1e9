// Package state owns what healthbridge believes about each check: the pure
// threshold machine (Next) and the Store that publishes immutable snapshots
// to the HTTP server.
package state

import (
	"fmt"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
)

// Status is a check's thresholded state, as Docker names them. The zero
// value is StatusUnknown.
type Status int

const (
	// StatusUnknown is the zero value: no such check.
	StatusUnknown Status = iota
	// StatusStarting: no verdict yet (Docker's "starting"). /livez counts it
	// as passing (the kubelet's initial liveness is success); /readyz,
	// /startupz and /healthz as failing.
	StatusStarting
	// StatusHealthy: successThreshold consecutive passing results.
	StatusHealthy
	// StatusUnhealthy: failureThreshold consecutive failing results.
	StatusUnhealthy
	// StatusAbsent is never a check's status: an Event's From for a check
	// a config reload added, and its To for one a reload removed.
	StatusAbsent
)

// String returns starting, healthy, unhealthy, unknown or absent.
func (s Status) String() string {
	switch s {
	case StatusUnknown:
		return "unknown"
	case StatusStarting:
		return "starting"
	case StatusHealthy:
		return "healthy"
	case StatusUnhealthy:
		return "unhealthy"
	case StatusAbsent:
		return "absent"
	default:
		return fmt.Sprintf("status(%d)", int(s))
	}
}

// MarshalText encodes s as its String form.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Policy is the threshold part of a check's config.
type Policy struct {
	// SuccessThreshold is how many consecutive passing results make a check
	// healthy (kubelet successThreshold). Values below 1 mean 1.
	SuccessThreshold int
	// FailureThreshold is how many consecutive failing results make it
	// unhealthy (kubelet failureThreshold, Docker --retries). Below 1 means 1.
	FailureThreshold int
	// StartPeriod is Docker's --start-period: while the check is starting and
	// less than StartPeriod has passed since CheckState.StartedAt, failures
	// are not counted.
	StartPeriod time.Duration
}

// KeepResults is how many recent results a check keeps: 5, as docker inspect.
const KeepResults = 5

// CheckState is one check's thresholded state. Values are immutable once
// published: Next returns a new one and never shares Results with prev.
type CheckState struct {
	// Status is the thresholded state.
	Status Status
	// StartedAt is when the check began; the start period counts from here.
	StartedAt time.Time
	// Since is when Status last changed (StartedAt until the first change).
	Since time.Time
	// SuccessStreak and FailureStreak count consecutive passing and failing
	// results; at most one is non-zero. FailureStreak is Docker's
	// FailingStreak, except that failures ignored during the start period do
	// not count.
	SuccessStreak, FailureStreak int
	// Runs counts the results recorded.
	Runs int
	// Outcomes counts the results recorded by outcome (index: probe.Outcome).
	Outcomes [probe.NumOutcomes]uint64
	// Results holds the last KeepResults results, oldest first.
	Results []probe.Result
	// Transitions counts status changes (starting, healthy, unhealthy).
	Transitions uint64
	// Durations is the histogram of run durations.
	Durations Histogram
}

// DurationBuckets are the upper bounds, in seconds, of the run-duration
// histogram: Prometheus' default buckets, which span a probe's life from
// a fast TCP connect to a slow exec.
var DurationBuckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Histogram counts run durations per bucket of DurationBuckets (not
// cumulative), with their sum in seconds and count.
type Histogram struct {
	Buckets [len(DurationBuckets)]uint64
	Sum     float64
	Count   uint64
}

// observe adds one duration.
func (h *Histogram) observe(d time.Duration) {
	s := d.Seconds()
	for i, le := range DurationBuckets {
		if s <= le {
			h.Buckets[i]++
			break
		}
	}
	h.Sum += s
	h.Count++
}

// Initial returns the state of a check that starts at now: starting, with no
// results.
func Initial(now time.Time) CheckState {
	return CheckState{Status: StatusStarting, StartedAt: now, Since: now}
}

// Last returns the most recent result and true, or false if there is none.
func (c CheckState) Last() (probe.Result, bool) {
	if len(c.Results) == 0 {
		return probe.Result{}, false
	}
	return c.Results[len(c.Results)-1], true
}

// CertExpiry is the server certificate's earliest expiry that the most
// recent kept result over TLS saw (probe.Result.CertExpiry); false when
// none of the kept results spoke TLS.
func (c CheckState) CertExpiry() (time.Time, bool) {
	for i := len(c.Results) - 1; i >= 0; i-- {
		if t := c.Results[i].CertExpiry; !t.IsZero() {
			return t, true
		}
	}
	return time.Time{}, false
}

// InStartPeriod reports whether now is within p's start period of StartedAt.
func (c CheckState) InStartPeriod(now time.Time, p Policy) bool {
	return p.StartPeriod > 0 && now.Before(c.StartedAt.Add(p.StartPeriod))
}

// Next applies one result to prev and returns the new state. It is pure: no
// clock, no goroutines, prev is not modified.
//
// The rules are the kubelet's (prober worker) and Docker's (health monitor):
//   - a passing result (success, warning) ends any failing streak; after
//     SuccessThreshold in a row the check is healthy;
//   - a failing result (failure, unknown) ends any passing streak; after
//     FailureThreshold in a row it is unhealthy;
//   - while the check is starting, failing results of runs that started
//     within the start period are recorded but not counted (Docker);
//   - a "starting" result (Docker's exit code 2) is not counted while the
//     check is starting, and is a failure afterwards (Docker's first HEALTHCHECK design).
func Next(prev CheckState, r probe.Result, now time.Time, p Policy) CheckState {
	next := prev
	next.Runs++
	if r.Outcome >= 0 && r.Outcome < probe.NumOutcomes {
		next.Outcomes[r.Outcome]++
	}
	next.Results = make([]probe.Result, 0, KeepResults)
	if len(prev.Results) >= KeepResults {
		next.Results = append(next.Results, prev.Results[len(prev.Results)-KeepResults+1:]...)
	} else {
		next.Results = append(next.Results, prev.Results...)
	}
	next.Results = append(next.Results, r)
	if !r.Start.IsZero() && !r.End.IsZero() {
		next.Durations.observe(r.Duration())
	}

	succ, fail := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	outcome := r.Outcome
	if outcome == probe.OutcomeStarting {
		if prev.Status == StatusStarting {
			return next // still starting: not counted either way
		}
		outcome = probe.OutcomeFailure
	}
	if outcome.Passing() {
		next.FailureStreak = 0
		next.SuccessStreak++
		if next.SuccessStreak >= succ {
			next.setStatus(StatusHealthy, now)
		}
		return next
	}
	next.SuccessStreak = 0
	// Docker judges the start period by when the run started (moby's
	// handleProbeResult: result.Start), not when it ended: a run that began
	// inside the start period is not counted even if it ends after it.
	at := r.Start
	if at.IsZero() {
		at = now
	}
	if prev.Status == StatusStarting && prev.InStartPeriod(at, p) {
		return next // Docker: failures during the start period do not count
	}
	next.FailureStreak++
	if next.FailureStreak >= fail {
		next.setStatus(StatusUnhealthy, now)
	}
	return next
}

func (c *CheckState) setStatus(s Status, now time.Time) {
	if c.Status != s {
		c.Status = s
		c.Since = now
		c.Transitions++
	}
}
