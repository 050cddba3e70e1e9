package state

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

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
