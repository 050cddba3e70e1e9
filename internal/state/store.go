package state

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// Info is what the store knows of a check besides its state.
type Info struct {
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
}

// HasRole reports whether r is one of the check's roles.
func (i *Info) HasRole(r config.Role) bool { return slices.Contains(i.Roles, r) }

// Check is one check in a Snapshot.
type Check struct {
	Info
	State CheckState
}

// Snapshot is an immutable view of every check, published by the Store.
// Readers must not modify it.
type Snapshot struct {
	// Checks are in config order.
	Checks []Check
	// ShuttingDown is set once SIGTERM arrived: readiness fails.
	ShuttingDown bool

	index map[string]int
	plain [scopeCount]bool // verdict without exclusions, per scope
}

// Get returns the named check and true, or false if there is none.
func (s *Snapshot) Get(name string) (*Check, bool) {
	i, ok := s.index[name]
	if !ok {
		return nil, false
	}
	return &s.Checks[i], true
}

// Transition describes what Record changed.
type Transition struct {
	// From and To are the statuses before and after; equal when nothing
	// changed.
	From, To Status
	// State is the check's new state.
	State CheckState
}

// Changed reports whether the status changed.
func (t Transition) Changed() bool { return t.From != t.To }

// Store holds every check's state. Writers (the scheduler) serialise on a
// mutex; readers (the HTTP server, at any rate) load an immutable snapshot
// through an atomic pointer and never block. Nothing subscribes to changes:
// readers that need one (HAProxy's agent, the HTTP server) read on demand.
type Store struct {
	// mu guards infos, states and shutting, and orders snapshot publication.
	mu       sync.Mutex
	infos    []Info
	states   []CheckState
	shutting bool
	index    map[string]int

	snap atomic.Pointer[Snapshot]
}

// NewStore returns a store holding infos, every check starting at now.
// Names must be unique (config validation guarantees it).
func NewStore(infos []Info, now time.Time) *Store {
	s := &Store{
		infos:  append([]Info(nil), infos...),
		states: make([]CheckState, len(infos)),
		index:  make(map[string]int, len(infos)),
	}
	for i, in := range infos {
		s.index[in.Name] = i
		s.states[i] = Initial(now)
	}
	s.publish()
	return s
}

// Snapshot returns the current snapshot. It never blocks and never returns
// nil.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// Record applies result r of the named check at time now (state.Next) and
// publishes a new snapshot. It panics on an unknown name, a programming
// error.
func (s *Store) Record(name string, r probe.Result, now time.Time) Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[name]
	if !ok {
		panic(fmt.Sprintf("state: Record of unknown check %q", name))
	}
	prev := s.states[i]
	next := Next(prev, r, now, s.infos[i].Policy)
	s.states[i] = next
	s.publish()
	return Transition{From: prev.Status, To: next.Status, State: next}
}

// SetShuttingDown marks the store as shutting down: from now on readiness
// fails. It is idempotent.
func (s *Store) SetShuttingDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shutting {
		s.shutting = true
		s.publish()
	}
}

// publish builds and stores a new snapshot; s.mu must be held.
func (s *Store) publish() {
	snap := &Snapshot{
		Checks:       make([]Check, len(s.infos)),
		ShuttingDown: s.shutting,
		index:        s.index, // never modified after NewStore
	}
	for i := range s.infos {
		snap.Checks[i] = Check{Info: s.infos[i], State: s.states[i]}
	}
	for sc := Scope(1); sc < scopeCount; sc++ {
		snap.plain[sc] = snap.Evaluate(sc, nil).OK
	}
	s.snap.Store(snap)
}
