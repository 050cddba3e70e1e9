// Package scheduler runs each check's probe on its schedule and records the
// results in the state store.
//
// The rules are moby's health monitor's and the kubelet's worker's: the
// first run after initialDelaySeconds, then the next one a period after
// each run completes, so runs of one check never overlap; each run gets
// its own context.WithTimeout (the only timeout a probe sees); a panic in
// a probe becomes an Unknown result. Checks with the startup role gate the
// others: liveness and readiness checks do not run until every startup
// check is healthy, and a startup check stops running once it is healthy.
//
// The mechanism is one dispatcher goroutine over a heap of next-run times
// (not a goroutine per check): a due check's run gets a goroutine of its
// own for its duration, and reports back when recorded. A process with
// 10,000 checks then holds a few goroutines, not 10,000 idle stacks
// (8 KiB each, 80 MB), and its timers are one.
//
// First runs are spread, never a burst: check i's first run waits
// i × Spacing more (Spacing is 1 ms, less when that would push the last
// first run past half the shortest period), so 10,000 checks dial 2,000 a
// second at start instead of 10,000 at once — the kubelet, likewise,
// staggers its workers' first probes when it starts many at once.
package scheduler

import (
	"container/heap"
	"context"
	"log/slog"
	"slices"
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
	// Inflight records a run of this check that could not be stopped. Give
	// the same Inflight to every scheduler that ever runs the check (a
	// restart of `healthbridge run`'s child builds a new scheduler): the
	// record outlives the scheduler, so a run that ignores cancellation is
	// never joined by a second instance, restarts or not. Nil: New gives
	// the check one of its own.
	Inflight *Inflight
}

// Inflight is one check's record of an abandoned run (see probe.Run): a
// run that did not return within its timeout plus probe.AbandonGrace.
// While it has not returned, no new run of the check starts (Docker's
// daemon/health.go: "we don't want dying probes to pile up"). The zero
// value is ready; it is safe for concurrent use.
type Inflight struct {
	mu    sync.Mutex
	stuck <-chan probe.Result // receives the abandoned run's result; nil when none
	since time.Time           // when the abandoned run started
}

// busy reports whether an abandoned run has still not returned, and since
// when; an abandoned run that has returned is forgotten.
func (f *Inflight) busy() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stuck == nil {
		return time.Time{}, false
	}
	select {
	case <-f.stuck: // it finally ended; its result is stale
		f.stuck = nil
		return time.Time{}, false
	default:
		return f.since, true
	}
}

// abandon records a run, started at since, that could not be stopped.
func (f *Inflight) abandon(stuck <-chan probe.Result, since time.Time) {
	f.mu.Lock()
	f.stuck, f.since = stuck, since
	f.mu.Unlock()
}

// Scheduler runs checks until stopped. Create it with New, then call Start
// once and Stop once (Stop is idempotent).
type Scheduler struct {
	log     *slog.Logger
	checks  []Check
	workers []worker
	byName  map[string]int // read-only after New

	// RunNow requests: pending lists the checks asked (each once, marked
	// in asked), kick wakes the dispatcher.
	pendingMu sync.Mutex
	pending   []int
	asked     []bool
	kick      chan struct{}
	done      chan done // runs that ended and were recorded

	// mu guards cancel and started.
	mu      sync.Mutex
	cancel  context.CancelFunc
	started bool
	wg      sync.WaitGroup // the dispatcher and the runs in flight
}

// worker is one check's scheduling state, owned by the dispatcher.
type worker struct {
	startup bool          // a startup check: gates the others, stops once healthy
	offset  time.Duration // first-run spread
	first   bool          // no run has completed yet
	running bool          // a run is in flight
	again   bool          // RunNow while running or not yet scheduled
	stopped bool          // a startup check that passed: never runs again
	queued  *item         // its heap entry while waiting, else nil
}

// done is what a run reports to the dispatcher.
type done struct {
	i       int
	next    time.Duration // wait before the next run
	healthy bool          // the check is healthy after this run
}

// New returns a scheduler for checks, logging to log (nil discards). A
// check with the startup role gates the others.
func New(checks []Check, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		log:     log,
		checks:  slices.Clone(checks),
		workers: make([]worker, len(checks)),
		byName:  make(map[string]int, len(checks)),
		asked:   make([]bool, len(checks)),
		kick:    make(chan struct{}, 1),
		done:    make(chan done, 64),
	}
	spacing := Spacing(checks)
	for i, c := range s.checks {
		if c.Inflight == nil {
			s.checks[i].Inflight = new(Inflight)
		}
		s.byName[c.Slot.Spec().Name] = i
		s.workers[i] = worker{startup: startup(c), offset: time.Duration(i) * spacing, first: true}
	}
	return s
}

// startup reports whether c is a startup check: it gates the non-startup
// checks and stops once healthy (the kubelet's rules).
func startup(c Check) bool { return c.Slot.Spec().HasRole(config.RoleStartup) }

// MaxSpacing is the largest gap between two checks' first runs.
const MaxSpacing = time.Millisecond

// Spacing is the gap between consecutive checks' first runs: MaxSpacing,
// or half the shortest period divided by the number of checks when that is
// less, so every first run falls within the first half of the shortest
// period.
func Spacing(checks []Check) time.Duration {
	sp := MaxSpacing
	for _, c := range checks {
		if p := c.Slot.Spec().Timing.Period; p > 0 {
			sp = min(sp, p/time.Duration(2*len(checks)))
		}
	}
	return sp
}

// Start starts the checks. They run until ctx is done or Stop is called.
// Start may be called once.
func (s *Scheduler) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("scheduler: Start called twice")
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.dispatch(ctx, time.Now())
	}()
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
	i, ok := s.byName[name]
	if !ok {
		return false
	}
	s.pendingMu.Lock()
	if !s.asked[i] {
		s.asked[i] = true
		s.pending = append(s.pending, i)
	}
	s.pendingMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // the dispatcher is already woken
	}
	return true
}

// dispatch is the scheduler's one loop: it starts each check's run when
// it is due, and schedules its next run when it reports back.
func (s *Scheduler) dispatch(ctx context.Context, start time.Time) {
	var q queue
	startupLeft := 0
	for i := range s.workers {
		if s.workers[i].startup {
			startupLeft++
		}
	}
	// schedule puts check i in the queue, due after wait (now when a RunNow
	// is pending).
	schedule := func(i int, due time.Time) {
		w := &s.workers[i]
		if w.again {
			w.again, due = false, time.Now()
		}
		w.queued = &item{i: i, due: due}
		heap.Push(&q, w.queued)
	}
	// gateOpen schedules the non-startup checks: initialDelaySeconds
	// counts from start, as the kubelet counts it from the container's
	// start, not from the end of the startup gate.
	gateOpen := func() {
		now := time.Now()
		for i := range s.workers {
			w := &s.workers[i]
			if !w.startup {
				schedule(i, maxTime(now.Add(w.offset), start.Add(s.checks[i].Slot.Spec().Timing.InitialDelay+w.offset)))
			}
		}
	}
	for i := range s.workers {
		if w := &s.workers[i]; w.startup {
			schedule(i, start.Add(s.checks[i].Slot.Spec().Timing.InitialDelay+w.offset))
		}
	}
	if startupLeft == 0 {
		gateOpen()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due <-chan time.Time
		if len(q) > 0 {
			timer.Reset(max(0, time.Until(q[0].due)))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-due:
			now := time.Now()
			for len(q) > 0 && !q[0].due.After(now) {
				it := heap.Pop(&q).(*item)
				s.launch(ctx, it.i)
			}
		case <-s.kick:
			s.pendingMu.Lock()
			asked := s.pending
			s.pending = nil
			for _, i := range asked {
				s.asked[i] = false
			}
			s.pendingMu.Unlock()
			for _, i := range asked {
				w := &s.workers[i]
				switch {
				case w.stopped:
				case w.queued != nil:
					w.queued.due = time.Now()
					heap.Fix(&q, w.queued.index)
				default: // running, or waiting for the startup gate
					w.again = true
				}
			}
		case d := <-s.done:
			w := &s.workers[d.i]
			w.running = false
			if w.startup && d.healthy {
				// The kubelet stops a startup probe once it succeeded.
				w.stopped = true
				if startupLeft--; startupLeft == 0 {
					gateOpen()
				}
				continue
			}
			next := d.next
			if w.first {
				// Checks started together with equal periods would otherwise
				// run in lock step forever; the first result is never delayed.
				next -= min(s.checks[d.i].Slot.Spec().Timing.Phase, next-1)
				w.first = false
			}
			schedule(d.i, time.Now().Add(next))
		}
	}
}

// launch starts check i's run in its own goroutine; the run records its
// result and reports to the dispatcher.
func (s *Scheduler) launch(ctx context.Context, i int) {
	w := &s.workers[i]
	w.queued, w.running = nil, true
	c := &s.checks[i]
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		spec := c.Slot.Spec()
		r := s.runOnce(ctx, c)
		if ctx.Err() != nil {
			return // stopped mid-run: the result says nothing about the target
		}
		if r.Detail != "" {
			s.log.Debug("probe detail", "check", spec.Name, "kind", spec.Kind, "detail", r.Detail)
			r.Detail = "" // never stored or served
		}
		tr, next := c.Slot.Record(r, time.Now())
		s.logRun(spec, r, tr)
		select {
		case s.done <- done{i: i, next: next, healthy: tr.To == state.StatusHealthy}:
		case <-ctx.Done():
		}
	}()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// item is a check waiting in the queue.
type item struct {
	i     int
	due   time.Time
	index int // in the heap
}

// queue is a min-heap of items by due time, then check order (so checks
// due together start in config order).
type queue []*item

func (q queue) Len() int { return len(q) }
func (q queue) Less(a, b int) bool {
	if !q[a].due.Equal(q[b].due) {
		return q[a].due.Before(q[b].due)
	}
	return q[a].i < q[b].i
}
func (q queue) Swap(a, b int) {
	q[a], q[b] = q[b], q[a]
	q[a].index, q[b].index = a, b
}
func (q *queue) Push(x any) {
	it := x.(*item)
	it.index = len(*q)
	*q = append(*q, it)
}
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return it
}

// runOnce runs the probe once under its timeout (probe.Run: a panic is an
// Unknown result, a run that cannot be stopped is abandoned at its timeout
// plus probe.AbandonGrace). While an abandoned run of the check has not
// returned (c.Inflight, which outlives this scheduler), no new run starts:
// each period records probe.StillRunning instead, and probing resumes
// normally once it ends.
func (s *Scheduler) runOnce(ctx context.Context, c *Check) probe.Result {
	if since, busy := c.Inflight.busy(); busy {
		return probe.StillRunning(since, time.Now())
	}
	r, stuck := probe.Run(ctx, c.Prober, c.Slot.Spec().Timing.Timeout)
	if stuck != nil {
		c.Inflight.abandon(stuck, r.Start)
	}
	return r
}

func (s *Scheduler) logRun(spec *state.Spec, r probe.Result, tr state.Transition) {
	if !tr.Changed() && r.Outcome != probe.OutcomeUnknown && !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return // the common case: no logger built
	}
	log := s.log.With("check", spec.Name, "kind", spec.Kind)
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
