package state

import (
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// Spec is one check as healthbridge runs it, derived once from its config
// (app.Build) and immutable after: what it is, what it gates, when it runs
// and how its results are judged. The store holds it beside the check's
// state; the scheduler reads its timing through the check's Slot.
type Spec struct {
	// Name is the check's unique name.
	Name string
	// Kind is its probe kind (exec, httpGet, …).
	Kind string
	// ExitCodes says that its results carry a process exit code (the
	// kind's probe.Kind.ExitCodes).
	ExitCodes bool
	// Roles are the endpoints it gates.
	Roles []config.Role
	// Policy holds its thresholds.
	Policy Policy
	// Timing is when it runs.
	Timing Timing
}

// Timing is when a check runs: the kubelet's and Docker's schedule fields
// as durations.
type Timing struct {
	// InitialDelay is how long after start the first run happens
	// (initialDelaySeconds).
	InitialDelay time.Duration
	// Period is the time between the end of one run and the start of the
	// next (Docker's interval, the kubelet's periodSeconds).
	Period time.Duration
	// StartInterval replaces Period while the check is starting within its
	// start period (Docker's --start-interval). Zero means Period.
	StartInterval time.Duration
	// Timeout bounds each run (timeoutSeconds).
	Timeout time.Duration
	// Phase, in [0, Period), shortens the wait before the second run, once,
	// so that checks started together with the same period do not run in
	// lock step (as the kubelet jitters its workers). Zero: none.
	Phase time.Duration
}

// HasRole reports whether r is one of the check's roles.
func (sp *Spec) HasRole(r config.Role) bool { return slices.Contains(sp.Roles, r) }

// Check is one check in a Snapshot.
type Check struct {
	Spec
	State CheckState
}

// Why `healthbridge run` restarted its child: the values of
// healthbridge_child_restarts_total's reason label.
const (
	// ReasonExit: the child exited and restartPolicy restarts it.
	ReasonExit = "exit"
	// ReasonLiveness: the liveness verdict failed (onLivenessFailure:
	// restart).
	ReasonLiveness = "liveness"
	// ReasonStartup: a startup check failed failureThreshold times in a
	// row (onLivenessFailure: restart), as the kubelet kills a container
	// whose startup probe fails ("Container ... failed startup probe,
	// will be restarted").
	ReasonStartup = "startup"
)

// RestartReasons lists the restart reasons in the order metrics show them.
var RestartReasons = []string{ReasonExit, ReasonLiveness, ReasonStartup}

// ChildState is `healthbridge run`'s child, as snapshots show it.
type ChildState struct {
	// Pid is the running child's pid, 0 while none runs.
	Pid int
	// Started is when the current (or last) child started.
	Started time.Time
	// Restarts counts restarts by reason (RestartReasons).
	Restarts map[string]uint64
	// LastExitCode is the last child's exit code (128+N for signal N); -1
	// before any exited.
	LastExitCode int
	// Backoff is the wait the next restart would get (CrashLoopBackOff).
	Backoff time.Duration
}

// Snapshot is an immutable view of every check, published by the Store.
// Readers must not modify it, nor the Checks it returns.
//
// The checks are held in chunks of chunkSize pointers that snapshots
// share: a new result replaces its check's pointer in a copy of its chunk,
// so a publication copies N/chunkSize chunk pointers and one chunk, not N
// pointers (at 10,000 checks and 1,000 results a second: 2 KB of garbage
// per result, not 80 KB).
type Snapshot struct {
	chunks [][]*Check
	n      int
	// ShuttingDown is set once SIGTERM arrived: readiness fails.
	ShuttingDown bool
	// Child is `healthbridge run`'s child; nil in the other modes.
	Child *ChildState

	index map[string]int
	plain [scopeCount]bool // verdict without exclusions, per scope
}

// chunkSize is how many checks a snapshot chunk holds.
const chunkSize = 64

// Len is the number of checks.
func (s *Snapshot) Len() int { return s.n }

// At returns check i, 0 <= i < Len(), in config order.
func (s *Snapshot) At(i int) *Check { return s.chunks[i/chunkSize][i%chunkSize] }

// Checks yields every check in config order.
func (s *Snapshot) Checks() iter.Seq[*Check] {
	return func(yield func(*Check) bool) {
		for _, ch := range s.chunks {
			for _, c := range ch {
				if !yield(c) {
					return
				}
			}
		}
	}
}

// Get returns the named check and true, or false if there is none.
func (s *Snapshot) Get(name string) (*Check, bool) {
	i, ok := s.index[name]
	if !ok {
		return nil, false
	}
	return s.At(i), true
}

// Transition describes what Record changed.
type Transition struct {
	// From and To are the statuses before and after; equal when nothing
	// changed.
	From, To Status
	// State is the check's new state.
	State CheckState
	// Warns is set when the result is a warning after one that was not:
	// a passing run with a concern (a certificate within
	// tls.minValidity, a ttl report of "warn") begins.
	Warns bool
}

// Changed reports whether the status changed.
func (t Transition) Changed() bool { return t.From != t.To }

// Store holds every check's state. Writers (the scheduler) serialise on a
// mutex; readers (the HTTP server, at any rate) load an immutable snapshot
// through an atomic pointer and never block. Readers that wait for a change
// (gRPC Watch) take the Changed channel, closed by the next publication.
//
// A publication costs one pointer per check (the changed check is a new
// immutable Check) and the per-scope verdicts are kept as counts of
// failing checks, updated by each result: at 10,000 checks a result costs
// microseconds, not a copy of every check and a walk over all of them.
// SetShuttingDown does not wait for the writers' mutex: readiness fails
// at once however busy they are.
type Store struct {
	// mu guards everything below but shutting, snap and changed, and orders
	// snapshot publication. specs, slots and index are replaced whole by a
	// reload (Replace), never modified in place: a snapshot keeps the index
	// it was published with.
	mu      sync.Mutex
	specs   []*Spec
	slots   []*Slot
	chunks  [][]*Check      // the published form of states, in chunks
	shared  []bool          // chunks[k] is in the published snapshot: copy before writing
	rings   []ring          // each check's timeline marks
	epoch   time.Time       // what the marks' start times count from
	failing [scopeCount]int // covered checks not passing, per scope
	child   *ChildState     // immutable once set; replaced whole by SetChild
	index   map[string]int
	// shutting is set once by SetShuttingDown, read without mu.
	shutting atomic.Bool

	events  []Event // ring of the last EventBacklog transitions
	eventID uint64  // ID of the last event appended; IDs start at 1

	snap atomic.Pointer[Snapshot]
	// changed is closed, and replaced, by every publication: a broadcast
	// to watchers (gRPC Watch) that never blocks the writer.
	changed atomic.Pointer[chan struct{}]
}

// Changed returns a channel closed when a snapshot newer than the current
// one is published. Take it before reading Snapshot, so that no
// publication can fall between the two unseen. It never blocks the writer:
// a watcher that does not look just misses intermediate snapshots, never
// the latest.
func (s *Store) Changed() <-chan struct{} { return *s.changed.Load() }

// NewStore returns a store holding specs, every check starting at now.
// Names must be unique (config validation guarantees it).
func NewStore(specs []Spec, now time.Time) *Store {
	s := &Store{}
	s.epoch = now.Add(-time.Hour) // results may have started a little before
	s.layout(len(specs))
	for i := range specs {
		sp := specs[i]
		s.place(i, &Slot{store: s, spec: &sp, i: i}, Initial(now))
	}
	first := make(chan struct{})
	s.changed.Store(&first)
	s.publish()
	return s
}

// layout makes fresh per-check structures for n checks; s.mu must be held
// (or the store not yet shared).
func (s *Store) layout(n int) {
	s.specs = make([]*Spec, n)
	s.slots = make([]*Slot, n)
	s.index = make(map[string]int, n)
	s.chunks = nil
	for k := 0; k < n; k += chunkSize {
		s.chunks = append(s.chunks, make([]*Check, min(chunkSize, n-k)))
	}
	s.shared = make([]bool, len(s.chunks))
	s.rings = make([]ring, n)
	s.failing = [scopeCount]int{}
}

// place puts the check of slot sl at index i of a fresh layout, in state
// st, and counts it in the verdicts; s.mu must be held (or the store not
// yet shared).
func (s *Store) place(i int, sl *Slot, st CheckState) {
	s.specs[i], s.slots[i] = sl.spec, sl
	s.index[sl.spec.Name] = i
	s.chunks[i/chunkSize][i%chunkSize] = &Check{Spec: *sl.spec, State: st}
	s.count(i, st.Status, +1)
}

// Slot is one check's place in a Store: its spec, and where its results
// go. The scheduler records through it, never looking a check up by name
// nor reading a snapshot back. A check kept by a reload keeps its Slot.
type Slot struct {
	store *Store
	spec  *Spec // immutable
	i     int   // index in store.specs; -1 once a reload removed the check. Guarded by store.mu
}

// Slots returns the current checks' slots, in config order.
func (s *Store) Slots() []*Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.slots)
}

// Spec returns the check's spec. It must not be modified.
func (sl *Slot) Spec() *Spec { return sl.spec }

// Record applies result r at time now (state.Next), publishes a new
// snapshot, and returns what changed and how long to wait before the next
// run: the period, or the start interval while the check is starting
// within its start period (Docker's --start-interval). The result of a
// check a reload removed is dropped (no change, the period).
func (sl *Slot) Record(r probe.Result, now time.Time) (Transition, time.Duration) {
	s := sl.store
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := sl.spec
	if sl.i < 0 {
		return Transition{}, sp.Timing.Period
	}
	prev := s.state(sl.i)
	next := Next(prev, r, now, sp.Policy)
	warns := r.Outcome == probe.OutcomeWarning && !lastWarned(prev)
	s.set(sl.i, next)
	s.rings[sl.i].add(r, now, s.epoch)
	switch {
	case next.Status != prev.Status:
		s.event(sl.i, prev.Status, next.Status, now, r, "")
	case warns:
		// A passing run with a concern, once when it begins: the status
		// stays, so no transition would tell.
		s.event(sl.i, prev.Status, next.Status, now, r, ReasonWarn)
	}
	s.publish()
	wait := sp.Timing.Period
	if sp.Timing.StartInterval > 0 && next.Status == StatusStarting && next.InStartPeriod(now, sp.Policy) {
		wait = sp.Timing.StartInterval
	}
	return Transition{From: prev.Status, To: next.Status, State: next, Warns: warns}, wait
}

// ReasonReload is an Event's Reason when a config reload added, changed or
// removed the check.
const ReasonReload = "reload"

// ReasonWarn is an Event's Reason when a check's run warns (a certificate
// within tls.minValidity, a ttl report of "warn") after one that did not:
// From and To are the same status.
const ReasonWarn = "warn"

// lastWarned reports whether c's last result was a warning.
func lastWarned(c CheckState) bool {
	last, ok := c.Last()
	return ok && last.Outcome == probe.OutcomeWarning
}

// Replace is a config reload: the store then holds specs, in that order.
// keep[j], when not nil, is a current slot whose check specs[j] is
// unchanged: it keeps its slot, spec (specs[j] is ignored), state, history
// and timeline, and no event is recorded for it. Every other spec is a new
// check, starting at now; a current slot not kept is removed (its later
// results are dropped). Added, changed and removed checks are each one
// event with Reason "reload" (StatusAbsent on the missing side). It
// returns the slots of specs, in order. Names must be unique.
func (s *Store) Replace(specs []Spec, keep []*Slot, now time.Time) []*Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	type old struct {
		st   CheckState
		ring ring
	}
	kept := map[*Slot]old{}
	for _, sl := range keep {
		if sl != nil && sl.i >= 0 {
			kept[sl] = old{s.state(sl.i), s.rings[sl.i]}
		}
	}
	// Removed checks: each a last event, from its status to absent.
	for i, sl := range s.slots {
		if _, ok := kept[sl]; !ok {
			s.event(i, s.state(i).Status, StatusAbsent, now, probe.Result{}, ReasonReload)
			sl.i = -1
		}
	}
	s.layout(len(specs))
	for j := range specs {
		sl := keep[j]
		if o, ok := kept[sl]; ok && sl != nil {
			sl.i = j
			s.place(j, sl, o.st)
			s.rings[j] = o.ring
			continue
		}
		sp := specs[j]
		s.place(j, &Slot{store: s, spec: &sp, i: j}, Initial(now))
		s.event(j, StatusAbsent, StatusStarting, now, probe.Result{}, ReasonReload)
	}
	s.publish()
	return slices.Clone(s.slots)
}

// Snapshot returns the current snapshot. It never blocks and never returns
// nil.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// Record is Slot.Record for the named check, for callers that hold a name
// rather than a slot (tests, tools). It panics on an unknown name, a
// programming error.
func (s *Store) Record(name string, r probe.Result, now time.Time) Transition {
	s.mu.Lock()
	i, ok := s.index[name]
	var sl *Slot
	if ok {
		sl = s.slots[i]
	}
	s.mu.Unlock()
	if !ok {
		panic(fmt.Sprintf("state: Record of unknown check %q", name))
	}
	tr, _ := sl.Record(r, now)
	return tr
}

// EventBacklog is how many transitions the store keeps for /events
// clients that resume (Last-Event-ID) or fall behind.
const EventBacklog = 1024

// Event is one state change of a check, as /events streams it, in the
// spirit of Docker's health_status events.
type Event struct {
	// ID increases by one per event, from 1.
	ID uint64
	// Check and Kind name the check.
	Check, Kind string
	// From and To are the statuses before and after.
	From, To Status
	// At is when it changed.
	At time.Time
	// Result is the run that changed it (zero for a reset or a reload).
	Result probe.Result
	// Reason is "reload" (ReasonReload) for a check a config reload added,
	// changed or removed; empty for a change a result made.
	Reason string
}

// event appends a transition to the ring; s.mu must be held.
func (s *Store) event(i int, from, to Status, at time.Time, r probe.Result, reason string) {
	s.eventID++
	e := Event{ID: s.eventID, Check: s.specs[i].Name, Kind: s.specs[i].Kind, From: from, To: to, At: at, Result: r, Reason: reason}
	if len(s.events) < EventBacklog {
		s.events = append(s.events, e)
		return
	}
	s.events[(s.eventID-1)%EventBacklog] = e
}

// LastEventID is the ID of the latest event, 0 before any.
func (s *Store) LastEventID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventID
}

// EventsSince returns the events after id, oldest first, and whether some
// of them are no longer kept (more than EventBacklog happened since).
func (s *Store) EventsSince(id uint64) ([]Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id >= s.eventID {
		return nil, false
	}
	oldest := s.eventID - uint64(len(s.events)) + 1
	lost := id+1 < oldest
	from := max(id+1, oldest)
	out := make([]Event, 0, s.eventID-from+1)
	for n := from; n <= s.eventID; n++ {
		out = append(out, s.events[(n-1)%EventBacklog])
	}
	return out, lost
}

// SetChild publishes the state of `healthbridge run`'s child. c must not
// be modified afterwards.
func (s *Store) SetChild(c *ChildState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.child = c
	s.publish()
}

// Reset puts every check back to its initial state at now (starting, no
// results), as after the kubelet restarts a container: `healthbridge run`
// calls it when it restarts its child, so readiness fails until the checks
// pass again and the start period counts from the new start.
func (s *Store) Reset(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.specs {
		// Counters keep counting (Prometheus counters must not go back).
		prev := s.state(i)
		next := Initial(now)
		next.Runs, next.Outcomes, next.Transitions, next.Durations = prev.Runs, prev.Outcomes, prev.Transitions, prev.Durations
		if prev.Status != next.Status {
			next.Transitions++
			s.event(i, prev.Status, next.Status, now, probe.Result{}, "")
		}
		s.set(i, next)
	}
	s.publish()
}

// SetShuttingDown marks the store as shutting down: from now on readiness
// fails. It is idempotent, and it does not wait for the writers' mutex:
// the published snapshot is copied with the flag set, so /readyz fails at
// once even while thousands of results queue on the mutex.
func (s *Store) SetShuttingDown() {
	if !s.shutting.Swap(true) {
		s.markShutting()
	}
}

// markShutting replaces the published snapshot by a copy with
// ShuttingDown set, unless it has it. It races publish safely: publish
// checks the flag again after storing.
func (s *Store) markShutting() {
	for {
		cur := s.snap.Load()
		if cur.ShuttingDown {
			return
		}
		cp := *cur
		cp.ShuttingDown = true
		cp.plain[ScopeReadiness] = false
		if s.snap.CompareAndSwap(cur, &cp) {
			s.broadcast()
			return
		}
	}
}

// state is check i's current state; s.mu must be held.
func (s *Store) state(i int) CheckState { return s.chunks[i/chunkSize][i%chunkSize].State }

// set stores check i's new state and its published form, and keeps the
// failing counts; s.mu must be held.
func (s *Store) set(i int, st CheckState) {
	if old := s.state(i).Status; old != st.Status {
		s.count(i, old, -1)
		s.count(i, st.Status, +1)
	}
	k := i / chunkSize
	if s.shared[k] {
		s.chunks[k] = slices.Clone(s.chunks[k])
		s.shared[k] = false
	}
	s.chunks[k][i%chunkSize] = &Check{Spec: *s.specs[i], State: st}
}

// count adds d to the failing count of each scope check i is covered by
// and status st does not pass; s.mu must be held (or the store not yet
// shared).
func (s *Store) count(i int, st Status, d int) {
	for sc := Scope(1); sc < scopeCount; sc++ {
		if sc.Covers(s.specs[i]) && !sc.Passes(st) {
			s.failing[sc] += d
		}
	}
}

// publish builds and stores a new snapshot, one pointer per chunk; s.mu
// must be held.
func (s *Store) publish() {
	shutting := s.shutting.Load()
	for k := range s.shared {
		s.shared[k] = true
	}
	snap := &Snapshot{
		chunks:       slices.Clone(s.chunks),
		n:            len(s.specs),
		ShuttingDown: shutting,
		Child:        s.child,
		index:        s.index, // replaced whole by Replace, never modified
	}
	for sc := Scope(1); sc < scopeCount; sc++ {
		snap.plain[sc] = s.failing[sc] == 0 && !(sc == ScopeReadiness && shutting)
	}
	s.snap.Store(snap)
	if !shutting && s.shutting.Load() {
		s.markShutting() // SetShuttingDown ran meanwhile
		return
	}
	s.broadcast()
}

// broadcast closes the Changed channel and makes a new one.
func (s *Store) broadcast() {
	next := make(chan struct{})
	close(*s.changed.Swap(&next))
}
