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
// once and Stop once (Stop is idempotent). Update changes the checks while
// it runs (a config reload).
type Scheduler struct {
	log     *slog.Logger
	initial []*worker // the checks given to New; then the dispatcher's own list

	// pendingMu guards byName, the workers' asked flags and pending:
	// RunNow requests (each check once), kick wakes the dispatcher.
	pendingMu sync.Mutex
	byName    map[string]*worker
	pending   []*worker
	kick      chan struct{}
	done      chan done      // runs that ended and were recorded
	update    chan updateReq // Update's requests

	// mu guards cancel and started.
	mu      sync.Mutex
	cancel  context.CancelFunc
	started bool
	stopped chan struct{}  // closed when the dispatcher returns
	wg      sync.WaitGroup // the dispatcher and the runs in flight
}

// worker is one check's scheduling state, owned by the dispatcher (asked:
// by pendingMu).
type worker struct {
	c       Check
	order   int           // its place in the config, for ties in the queue
	startup bool          // a startup check: gates the others, stops once healthy
	offset  time.Duration // first-run spread
	first   bool          // no run has completed yet
	running bool          // a run is in flight
	again   bool          // RunNow while running or not yet scheduled
	stopped bool          // a startup check that passed: never runs again
	removed bool          // a reload removed it: a run in flight ends unrecorded
	after   *worker       // a removed check of the same name whose run is still in flight: wait for it
	waiting bool          // due while after runs
	asked   bool          // in pending (pendingMu)
	queued  *item         // its heap entry while waiting, else nil
}

// done is what a run reports to the dispatcher.
type done struct {
	w       *worker
	next    time.Duration // wait before the next run
	healthy bool          // the check is healthy after this run
}

// updateReq is one Update: the new checks, and a channel closed once the
// dispatcher runs them.
type updateReq struct {
	checks  []Check
	applied chan struct{}
}

// New returns a scheduler for checks, logging to log (nil discards). A
// check with the startup role gates the others.
func New(checks []Check, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		log:     log,
		byName:  make(map[string]*worker, len(checks)),
		kick:    make(chan struct{}, 1),
		done:    make(chan done, 64),
		update:  make(chan updateReq),
		stopped: make(chan struct{}),
	}
	s.initial = newWorkers(checks)
	for _, w := range s.initial {
		s.byName[w.c.Slot.Spec().Name] = w
	}
	return s
}

// newWorkers makes a worker per check, their first runs spread Spacing
// apart.
func newWorkers(checks []Check) []*worker {
	spacing := Spacing(checks)
	ws := make([]*worker, len(checks))
	for i, c := range checks {
		if c.Inflight == nil {
			c.Inflight = new(Inflight)
		}
		ws[i] = &worker{c: c, order: i, startup: startup(c), offset: time.Duration(i) * spacing, first: true}
	}
	return ws
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
		defer close(s.stopped)
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

// Update replaces the checks while the scheduler runs (a config reload),
// without stopping or cancelling anything that runs. A check whose Slot is
// among the current ones is kept as it is: its schedule (next due time,
// phase), a run in flight, a pending RunNow. Any other check is new: it
// starts as at start-up, its initialDelaySeconds counted from now (a
// startup check added by a reload runs until healthy but holds back no
// check already running). A current check not in checks is removed: it is
// never run again, and a run of it still in flight ends unrecorded. A new
// check named as a removed one whose run is still in flight waits for that
// run to end: two instances of a check never run at once. Give a changed
// check the Inflight of the check it replaces, for the same reason.
// Update returns once the dispatcher has applied it, or false at once when
// the scheduler is not running.
func (s *Scheduler) Update(checks []Check) bool {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return false
	}
	req := updateReq{checks: checks, applied: make(chan struct{})}
	select {
	case s.update <- req:
		<-req.applied
		return true
	case <-s.stopped:
		return false
	}
}

// RunNow asks the named check to run as soon as its current run (if any)
// ends, without waiting for its timer. It never blocks; it reports false for
// an unknown name.
func (s *Scheduler) RunNow(name string) bool {
	s.pendingMu.Lock()
	w, ok := s.byName[name]
	if ok && !w.asked {
		w.asked = true
		s.pending = append(s.pending, w)
	}
	s.pendingMu.Unlock()
	if !ok {
		return false
	}
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
	workers := s.initial
	s.initial = nil
	startupLeft, gateOpened := 0, false
	// zombies are the removed checks whose run is still in flight, by
	// name: a new check of the same name waits for it, however many
	// reloads came between.
	zombies := map[string]*worker{}
	for _, w := range workers {
		if w.startup {
			startupLeft++
		}
	}
	// schedule puts w in the queue, due at due (now when a RunNow is
	// pending).
	schedule := func(w *worker, due time.Time) {
		if w.again {
			w.again, due = false, time.Now()
		}
		w.queued = &item{w: w, due: due}
		heap.Push(&q, w.queued)
	}
	// gateOpen schedules the non-startup checks: initialDelaySeconds
	// counts from start, as the kubelet counts it from the container's
	// start, not from the end of the startup gate.
	gateOpen := func() {
		gateOpened = true
		now := time.Now()
		for _, w := range workers {
			if !w.startup && w.queued == nil && !w.running {
				schedule(w, maxTime(now.Add(w.offset), start.Add(w.c.Slot.Spec().Timing.InitialDelay+w.offset)))
			}
		}
	}
	// launch starts w's run, unless the run of a removed check of the same
	// name is still in flight: then it starts when that one ends.
	launch := func(w *worker) {
		w.queued = nil
		if w.after != nil {
			if w.after.running {
				w.waiting = true
				return
			}
			w.after = nil
		}
		s.launch(ctx, w)
	}
	for _, w := range workers {
		if w.startup {
			schedule(w, start.Add(w.c.Slot.Spec().Timing.InitialDelay+w.offset))
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
				launch(heap.Pop(&q).(*item).w)
			}
		case <-s.kick:
			s.pendingMu.Lock()
			asked := s.pending
			s.pending = nil
			for _, w := range asked {
				w.asked = false
			}
			s.pendingMu.Unlock()
			for _, w := range asked {
				switch {
				case w.stopped || w.removed:
				case w.queued != nil:
					w.queued.due = time.Now()
					heap.Fix(&q, w.queued.index)
				default: // running, or waiting for the startup gate
					w.again = true
				}
			}
		case d := <-s.done:
			w := d.w
			w.running = false
			if w.removed {
				if name := w.c.Slot.Spec().Name; zombies[name] == w {
					delete(zombies, name)
				}
				// A new check waiting for this one's run may start now.
				for _, n := range workers {
					if n.after == w && n.waiting {
						n.waiting = false
						launch(n)
					}
				}
				continue
			}
			if w.startup && d.healthy {
				// The kubelet stops a startup probe once it succeeded.
				w.stopped = true
				if startupLeft--; startupLeft == 0 && !gateOpened {
					gateOpen()
				}
				continue
			}
			next := d.next
			if w.first {
				// Checks started together with equal periods would otherwise
				// run in lock step forever; the first result is never delayed.
				next -= min(w.c.Slot.Spec().Timing.Phase, next-1)
				w.first = false
			}
			schedule(w, time.Now().Add(next))
		case req := <-s.update:
			workers = s.apply(req.checks, workers, &q, &startupLeft, gateOpened, zombies, schedule)
			if startupLeft == 0 && !gateOpened {
				gateOpen()
			}
			close(req.applied)
		}
	}
}

// apply is Update in the dispatcher: it returns the new worker list, with
// the kept workers as they were, the removed ones out of the queue and
// marked, and the new ones scheduled.
func (s *Scheduler) apply(checks []Check, workers []*worker, q *queue, startupLeft *int, gateOpened bool,
	zombies map[string]*worker, schedule func(*worker, time.Time)) []*worker {
	current := make(map[*state.Slot]*worker, len(workers))
	for _, w := range workers {
		current[w.c.Slot] = w
	}
	next := make([]*worker, len(checks))
	var added []Check
	var addedAt []int
	for i, c := range checks {
		if w, ok := current[c.Slot]; ok {
			delete(current, c.Slot)
			w.order = i
			next[i] = w
			continue
		}
		added, addedAt = append(added, c), append(addedAt, i)
	}
	for _, w := range current {
		w.removed = true
		if w.queued != nil {
			heap.Remove(q, w.queued.index)
			w.queued = nil
		}
		if w.startup && !w.stopped {
			*startupLeft--
		}
		if w.running {
			zombies[w.c.Slot.Spec().Name] = w
		}
	}
	now := time.Now()
	for k, w := range newWorkers(added) {
		w.order = addedAt[k]
		next[addedAt[k]] = w
		w.after = zombies[w.c.Slot.Spec().Name]
		switch {
		case w.startup:
			*startupLeft++
			schedule(w, now.Add(w.c.Slot.Spec().Timing.InitialDelay+w.offset))
		case gateOpened:
			schedule(w, now.Add(w.c.Slot.Spec().Timing.InitialDelay+w.offset))
		}
	}
	byName := make(map[string]*worker, len(next))
	for _, w := range next {
		byName[w.c.Slot.Spec().Name] = w
	}
	s.pendingMu.Lock()
	s.byName = byName
	s.pendingMu.Unlock()
	return next
}

// launch starts w's run in its own goroutine; the run records its result
// and reports to the dispatcher.
func (s *Scheduler) launch(ctx context.Context, w *worker) {
	w.running = true
	c := &w.c
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
		case s.done <- done{w: w, next: next, healthy: tr.To == state.StatusHealthy}:
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
	w     *worker
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
	return q[a].w.order < q[b].w.order
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
	if !tr.Changed() && !tr.Warns && r.Outcome != probe.OutcomeUnknown && !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return // the common case: no logger built
	}
	log := s.log.With("check", spec.Name, "kind", spec.Kind)
	if tr.Warns {
		// A passing run with a concern (a certificate within
		// tls.minValidity, a ttl report of "warn"), logged once when it
		// begins: the status does not change, so nothing else would say it.
		log.Warn("check warns", "output", r.Output)
	}
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
