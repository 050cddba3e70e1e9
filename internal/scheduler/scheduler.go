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
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// Check is one check as the scheduler runs it.
type Check struct {
	// Name is the check's name in the store.
	Name string
	// Kind is its probe kind, for logs.
	Kind string
	// Prober runs one probe.
	Prober probe.Prober
	// InitialDelay is how long after Start the first run happens.
	InitialDelay time.Duration
	// Period is the time between the end of one run and the start of the
	// next (Docker's interval, the kubelet's periodSeconds). Must be > 0.
	Period time.Duration
	// StartInterval replaces Period while the check is starting and within
	// its start period (Docker's --start-interval). Zero means Period.
	StartInterval time.Duration
	// Timeout bounds each run. Must be > 0.
	Timeout time.Duration
	// Phase, in [0, Period), shortens the wait before the second run, once:
	// a stable offset that spreads checks started at the same instant with
	// the same period over that period instead of running them in lock
	// step (as the kubelet jitters its probe workers). The first run is
	// never delayed by it. Zero: no offset.
	Phase time.Duration
	// Startup marks a startup check: it gates the non-startup checks and
	// stops once healthy.
	Startup bool
}

// Scheduler runs checks until stopped. Create it with New, then call Start
// once and Stop once (Stop is idempotent).
type Scheduler struct {
	store  *state.Store
	log    *slog.Logger
	checks []Check

	runNow map[string]chan struct{} // 1-buffered; read-only after New

	// mu guards startupLeft, cancel and started.
	mu          sync.Mutex
	startupLeft int
	gate        chan struct{} // closed when every startup check is healthy
	cancel      context.CancelFunc
	started     bool
	wg          sync.WaitGroup
}

// New returns a scheduler for checks, recording into store, logging to log
// (nil discards). Every check's name must be in the store.
func New(store *state.Store, checks []Check, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		store:  store,
		log:    log,
		checks: checks,
		runNow: make(map[string]chan struct{}, len(checks)),
		gate:   make(chan struct{}),
	}
	for _, c := range checks {
		s.runNow[c.Name] = make(chan struct{}, 1)
		if c.Startup {
			s.startupLeft++
		}
	}
	if s.startupLeft == 0 {
		close(s.gate)
	}
	return s
}

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
	for i := range s.checks {
		c := &s.checks[i]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, c, start)
		}()
	}
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

func (s *Scheduler) loop(ctx context.Context, c *Check, start time.Time) {
	log := s.log.With("check", c.Name, "kind", c.Kind)
	if !c.Startup {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return
		}
	}
	// initialDelaySeconds counts from start, as the kubelet counts it from
	// the container's start, not from the end of the startup gate.
	timer := time.NewTimer(max(0, time.Until(start.Add(c.InitialDelay))))
	defer timer.Stop()
	var w worker
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.runNow[c.Name]:
			timer.Stop()
		}
		r := s.runOnce(ctx, c, &w)
		if ctx.Err() != nil {
			return // stopped mid-run: the result says nothing about the target
		}
		now := time.Now()
		if r.Detail != "" {
			log.Debug("probe detail", "detail", r.Detail)
			r.Detail = "" // never stored or served
		}
		tr := s.store.Record(c.Name, r, now)
		s.logRun(log, r, tr)
		if c.Startup && tr.To == state.StatusHealthy {
			s.startupHealthy()
			return // the kubelet stops a startup probe once it succeeded
		}
		next := c.Period
		if c.StartInterval > 0 && tr.To == state.StatusStarting && s.inStartPeriod(c.Name, tr.State, now) {
			next = c.StartInterval
		}
		if first {
			// Checks started together with equal periods would otherwise run
			// in lock step forever; the first result is never delayed.
			next -= min(c.Phase, next-1)
			first = false
		}
		timer.Reset(next)
	}
}

func (s *Scheduler) inStartPeriod(name string, st state.CheckState, now time.Time) bool {
	c, ok := s.store.Snapshot().Get(name)
	return ok && st.InStartPeriod(now, c.Policy)
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
	r, stuck := probe.Run(ctx, c.Prober, c.Timeout)
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
