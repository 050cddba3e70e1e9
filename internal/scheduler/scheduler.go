// Package scheduler runs each check's probe on its schedule and records the
// results in the state store.
//
// One goroutine per check, as moby's health monitor: the first run after
// initialDelaySeconds, then a timer reset after each run completes, so runs
// of one check never overlap; each run gets its own context.WithTimeout (the
// only timeout a probe sees); a panic in a probe becomes an Unknown result.
// Checks with the startup role gate the others: liveness and readiness
// checks do not run until every startup check is healthy, and a startup
// check stops running once it is healthy (the kubelet's rules).
//
// First runs are spread, never a burst: check i's first run waits
// i × Spacing more (Spacing is 1 ms, less when that would push the last
// first run past the shortest period), so 10,000 checks dial 1,000 a
// second instead of 10,000 at once — the kubelet, likewise, staggers its
// workers' first probes when it starts many at once.
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// Check is one check as the scheduler runs it: its prober, and its slot in
// the store, which holds its spec (name, kind, roles, timing, policy) and
// takes its results.
type Check struct {
	// Slot is where the check's results go; Slot.Spec() is the check.
	Slot *state.Slot
	// Prober runs one probe.
	Prober probe.Prober
}

// Scheduler runs checks until stopped. Create it with New, then call Start
// once and Stop once (Stop is idempotent).
type Scheduler struct {
	log    *slog.Logger
	checks []Check

	runNow map[string]chan struct{} // by check name, 1-buffered; read-only after New

	// mu guards startupLeft, cancel and started.
	mu          sync.Mutex
	startupLeft int
	gate        chan struct{} // closed when every startup check is healthy
	cancel      context.CancelFunc
	started     bool
	wg          sync.WaitGroup
}

// New returns a scheduler for checks, logging to log (nil discards). A
// check with the startup role gates the others.
func New(checks []Check, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		log:    log,
		checks: checks,
		runNow: make(map[string]chan struct{}, len(checks)),
		gate:   make(chan struct{}),
	}
	for _, c := range checks {
		s.runNow[c.Slot.Spec().Name] = make(chan struct{}, 1)
		if startup(c) {
			s.startupLeft++
		}
	}
	if s.startupLeft == 0 {
		close(s.gate)
	}
	return s
}

// startup reports whether c is a startup check: it gates the non-startup
// checks and stops once healthy (the kubelet's rules).
func startup(c Check) bool { return c.Slot.Spec().HasRole(config.RoleStartup) }

// Start starts one goroutine per check. The checks run until ctx is done or
// Stop is called. Start may be called once.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("scheduler: Start called twice")
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	start := time.Now()
	spacing := Spacing(s.checks)
	for i := range s.checks {
		c := &s.checks[i]
		offset := time.Duration(i) * spacing
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, c, start, offset)
		}()
	}
}

// MaxSpacing is the largest gap between two checks' first runs.
const MaxSpacing = time.Millisecond

// Spacing is the gap between consecutive checks' first runs: MaxSpacing,
// or the shortest period divided by the number of checks when that is
// less, so every first run falls within the shortest period.
func Spacing(checks []Check) time.Duration {
	sp := MaxSpacing
	for _, c := range checks {
		if p := c.Slot.Spec().Timing.Period; p > 0 {
			sp = min(sp, p/time.Duration(len(checks)))
		}
	}
	return sp
}

// Stop cancels every check, including runs in flight (their contexts are
// cancelled, which kills exec process groups), and waits for all of them
// to return. It is idempotent and safe to call without Start.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// RunNow asks the named check to run as soon as its current run (if any)
// ends, without waiting for its timer. It never blocks; it reports false for
// an unknown name.
func (s *Scheduler) RunNow(name string) bool {
	ch, ok := s.runNow[name]
	if !ok {
		return false
	}
	select {
	case ch <- struct{}{}:
	default: // a run is already requested
	}
	return true
}

// loop runs one check: its first run offset after start plus its initial
// delay (or offset after the startup gate opens, if later), then each
// period after the previous run ended.
func (s *Scheduler) loop(ctx context.Context, c *Check, start time.Time, offset time.Duration) {
	spec := c.Slot.Spec()
	t := spec.Timing
	log := s.log.With("check", spec.Name, "kind", spec.Kind)
	isStartup := startup(*c)
	if !isStartup {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return
		}
	}
	// initialDelaySeconds counts from start, as the kubelet counts it from
	// the container's start, not from the end of the startup gate.
	timer := time.NewTimer(max(offset, time.Until(start.Add(t.InitialDelay+offset))))
	defer timer.Stop()
	var w worker
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.runNow[spec.Name]:
			timer.Stop()
		}
		r := s.runOnce(ctx, c, &w)
		if ctx.Err() != nil {
			return // stopped mid-run: the result says nothing about the target
		}
		if r.Detail != "" {
			log.Debug("probe detail", "detail", r.Detail)
			r.Detail = "" // never stored or served
		}
		tr, next := c.Slot.Record(r, time.Now())
		s.logRun(log, r, tr)
		if isStartup && tr.To == state.StatusHealthy {
			s.startupHealthy()
			return // the kubelet stops a startup probe once it succeeded
		}
		if first {
			// Checks started together with equal periods would otherwise run
			// in lock step forever; the first result is never delayed.
			next -= min(t.Phase, next-1)
			first = false
		}
		timer.Reset(next)
	}
}

func (s *Scheduler) startupHealthy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startupLeft--
	if s.startupLeft == 0 {
		close(s.gate)
	}
}

// runOnce runs the probe once under its timeout (probe.Run: a panic is an
// Unknown result, a run that cannot be stopped is abandoned at its timeout
// plus probe.AbandonGrace). While an abandoned run of the check has not
// returned, no new run starts: each period records probe.StillRunning
// instead, and probing resumes normally once it ends.
func (s *Scheduler) runOnce(ctx context.Context, c *Check, w *worker) probe.Result {
	if w.stuck != nil {
		select {
		case <-w.stuck: // it finally ended; its result is stale
			w.stuck = nil
		default:
			return probe.StillRunning(w.stuckSince, time.Now())
		}
	}
	r, stuck := probe.Run(ctx, c.Prober, c.Slot.Spec().Timing.Timeout)
	if stuck != nil {
		w.stuck, w.stuckSince = stuck, r.Start
	}
	return r
}

// worker is one check's loop state, owned by its goroutine.
type worker struct {
	// stuck, when not nil, delivers the result of an abandoned run that
	// has not returned yet; stuckSince is when that run started.
	stuck      <-chan probe.Result
	stuckSince time.Time
}

func (s *Scheduler) logRun(log *slog.Logger, r probe.Result, tr state.Transition) {
	if tr.Changed() {
		log.Info("check state changed", "from", tr.From.String(), "to", tr.To.String(),
			"outcome", r.Outcome.String(), "output", r.Output,
			"success_streak", tr.State.SuccessStreak, "failure_streak", tr.State.FailureStreak)
	}
	if r.Outcome == probe.OutcomeUnknown {
		log.Warn("probe could not run", "error", r.Output)
		return
	}
	log.Debug("probe ran", "outcome", r.Outcome.String(), "duration", r.Duration(),
		"exit_code", r.ExitCode, "http_status", r.HTTPStatus, "output", r.Output)
}
