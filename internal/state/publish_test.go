package state

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// TestIncrementalVerdictsMatchEvaluate: the per-scope verdicts kept as
// failing counts agree with a full Evaluate after every result and reset,
// over random results on checks of every role combination.
func TestIncrementalVerdictsMatchEvaluate(t *testing.T) {
	roles := [][]config.Role{
		{config.RoleLiveness}, {config.RoleReadiness}, {config.RoleStartup},
		{config.RoleLiveness, config.RoleReadiness}, {},
	}
	var specs []Spec
	for i := range 40 {
		specs = append(specs, Spec{Name: fmt.Sprint("c", i), Roles: roles[i%len(roles)],
			Policy: Policy{SuccessThreshold: 1 + i%2, FailureThreshold: 1 + i%3}})
	}
	s := NewStore(specs, t0)
	rng := rand.New(rand.NewPCG(1, 2))
	outs := []probe.Outcome{probe.OutcomeSuccess, probe.OutcomeFailure, probe.OutcomeUnknown}
	for step := range 5000 {
		if step%997 == 0 {
			s.Reset(t0)
		} else {
			s.Record(specs[rng.IntN(len(specs))].Name, probe.Result{Outcome: outs[rng.IntN(len(outs))]}, t0)
		}
		snap := s.Snapshot()
		for sc := Scope(1); sc < scopeCount; sc++ {
			if got, want := snap.Plain(sc), snap.Evaluate(sc, nil).OK; got != want {
				t.Fatalf("step %d: %v: incremental %v, Evaluate %v", step, sc, got, want)
			}
		}
	}
}

// TestShuttingDownDoesNotWaitForWriters: with the writers' mutex held (as
// when thousands of results queue on it), SetShuttingDown returns and
// readiness fails in the published snapshot; liveness is untouched.
func TestShuttingDownDoesNotWaitForWriters(t *testing.T) {
	s := NewStore([]Spec{{Name: "a", Roles: []config.Role{config.RoleLiveness, config.RoleReadiness}, Policy: Policy{FailureThreshold: 1}}}, t0)
	s.Record("a", probe.Result{Outcome: probe.OutcomeSuccess}, t0)
	changed := s.Changed()
	s.mu.Lock()
	done := make(chan struct{})
	go func() { s.SetShuttingDown(); close(done) }()
	<-done // would hang if SetShuttingDown waited for s.mu
	snap := s.Snapshot()
	if snap.Plain(ScopeReadiness) || !snap.ShuttingDown || !snap.Plain(ScopeLiveness) {
		t.Fatalf("while the writers' mutex is held: readiness %v, shutting %v, liveness %v",
			snap.Plain(ScopeReadiness), snap.ShuttingDown, snap.Plain(ScopeLiveness))
	}
	select {
	case <-changed:
	default:
		t.Fatal("watchers were not told")
	}
	s.mu.Unlock()
}

// TestShuttingDownSurvivesConcurrentResults: a publication racing
// SetShuttingDown never puts back a snapshot without the flag.
func TestShuttingDownSurvivesConcurrentResults(t *testing.T) {
	for range 200 {
		s := NewStore([]Spec{{Name: "a", Roles: []config.Role{config.RoleReadiness}, Policy: Policy{FailureThreshold: 1}}}, t0)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 20 {
				s.Record("a", probe.Result{Outcome: probe.OutcomeSuccess}, t0)
			}
		}()
		go func() { defer wg.Done(); s.SetShuttingDown() }()
		wg.Wait()
		if snap := s.Snapshot(); !snap.ShuttingDown || snap.Plain(ScopeReadiness) {
			t.Fatal("a result published after SetShuttingDown lost the flag")
		}
	}
}

// TestSnapshotsShareUnchangedChunks: a result changes its check in new
// snapshots only; older snapshots keep what they had; chunks without a
// change are shared, not copied.
func TestSnapshotsShareUnchangedChunks(t *testing.T) {
	var specs []Spec
	for i := range 200 {
		specs = append(specs, Spec{Name: fmt.Sprint("c", i), Policy: Policy{FailureThreshold: 1}})
	}
	s := NewStore(specs, t0)
	old := s.Snapshot()
	for _, i := range []int{5, 70, 199} {
		s.Record(specs[i].Name, probe.Result{Outcome: probe.OutcomeSuccess}, t0)
	}
	cur := s.Snapshot()
	if old.Len() != 200 || cur.Len() != 200 {
		t.Fatalf("lengths %d %d", old.Len(), cur.Len())
	}
	for i := range 200 {
		want := StatusStarting
		if i == 5 || i == 70 || i == 199 {
			want = StatusHealthy
		}
		if got := cur.At(i).State.Status; got != want || cur.At(i).Name != specs[i].Name {
			t.Fatalf("check %d: %v %s, want %v", i, got, cur.At(i).Name, want)
		}
		if old.At(i).State.Status != StatusStarting {
			t.Fatalf("the old snapshot's check %d changed", i)
		}
	}
	// Chunk 2 (checks 128-191) saw no result: the same backing array.
	if &old.chunks[2][0] != &cur.chunks[2][0] {
		t.Error("an unchanged chunk was copied")
	}
	if &old.chunks[0][0] == &cur.chunks[0][0] {
		t.Error("a changed chunk was written in place")
	}
	n := 0
	for c := range cur.Checks() {
		if c.Name != specs[n].Name {
			t.Fatalf("Checks() order: %s at %d", c.Name, n)
		}
		n++
	}
	if n != 200 {
		t.Fatalf("Checks() yielded %d", n)
	}
}

// TestTimelineKeepsTheLastResults: each check's timeline holds its last
// TimelineLen results, oldest first, with start and duration.
func TestTimelineKeepsTheLastResults(t *testing.T) {
	s := NewStore([]Spec{{Name: "a", Policy: Policy{FailureThreshold: 1}}, {Name: "b"}}, t0)
	for i := range TimelineLen + 5 {
		o := probe.OutcomeSuccess
		if i%3 == 0 {
			o = probe.OutcomeFailure
		}
		start := t0.Add(time.Duration(i) * time.Second)
		s.Record("a", probe.Result{Outcome: o, Start: start, End: start.Add(1500 * time.Millisecond)}, start)
	}
	tl := s.Timelines()
	if len(tl) != 2 || len(tl[1]) != 0 || len(tl[0]) != TimelineLen {
		t.Fatalf("timelines: %d checks, %d and %d marks", len(tl), len(tl[0]), len(tl[1]))
	}
	for j, m := range tl[0] {
		i := j + 5
		want := probe.OutcomeSuccess
		if i%3 == 0 {
			want = probe.OutcomeFailure
		}
		if !m.Start().Equal(t0.Add(time.Duration(i)*time.Second).Truncate(time.Millisecond)) || m.Duration() != 1500*time.Millisecond || m.Outcome != want {
			t.Fatalf("mark %d: %+v", j, m)
		}
	}
}
