package state

import (
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

// TestReplaceKeepsUnchangedChecks: a reload keeps an unchanged check's
// state, streaks and timeline with no event; an added and a changed check
// start over, a removed one is gone, each with one "reload" event; a result
// recorded through a removed check's slot afterwards changes nothing; the
// verdicts are counted again over the new set.
func TestReplaceKeepsUnchangedChecks(t *testing.T) {
	now := time.Now()
	pol := Policy{SuccessThreshold: 1, FailureThreshold: 2}
	roles := []config.Role{config.RoleReadiness}
	s := NewStore([]Spec{
		{Name: "kept", Kind: "exec", Roles: roles, Policy: pol},
		{Name: "changed", Kind: "exec", Roles: roles, Policy: pol},
		{Name: "removed", Kind: "exec", Roles: roles, Policy: pol},
	}, now)
	slots := s.Slots()
	for _, sl := range slots {
		sl.Record(probe.Success("ok"), now.Add(time.Second))
	}
	slots[0].Record(probe.Failure("one"), now.Add(2*time.Second)) // kept: healthy, failing streak 1
	before, _ := s.Snapshot().Get("kept")
	lastID := s.LastEventID()

	next := s.Replace([]Spec{
		{Name: "added", Kind: "tcpSocket", Roles: roles, Policy: pol},
		{},
		{Name: "changed", Kind: "httpGet", Roles: roles, Policy: pol},
	}, []*Slot{nil, slots[0], nil}, now.Add(3*time.Second))

	if len(next) != 3 || next[1] != slots[0] {
		t.Fatalf("slots %v: the kept check must keep its slot", next)
	}
	snap := s.Snapshot()
	kept, _ := snap.Get("kept")
	if kept.State.Status != StatusHealthy || kept.State.FailureStreak != 1 || kept.State.Runs != before.State.Runs || len(kept.State.Results) != len(before.State.Results) {
		t.Fatalf("kept check %+v, want its state before the reload %+v", kept.State, before.State)
	}
	if c, _ := snap.Get("changed"); c.Kind != "httpGet" || c.State.Status != StatusStarting || c.State.Runs != 0 {
		t.Fatalf("changed check %+v %+v: want the new definition, starting", c.Spec, c.State)
	}
	if _, ok := snap.Get("removed"); ok || snap.Len() != 3 {
		t.Fatalf("removed check still there (%d checks)", snap.Len())
	}
	evs, _ := s.EventsSince(lastID)
	got := map[string]string{}
	for _, e := range evs {
		if e.Reason != ReasonReload {
			t.Errorf("event %+v: reason %q", e, e.Reason)
		}
		got[e.Check] += e.From.String() + ">" + e.To.String() + " "
	}
	want := map[string]string{"changed": "healthy>absent absent>starting ", "removed": "healthy>absent ", "added": "absent>starting "}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v (none for the kept check)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("events of %s: %q, want %q", k, got[k], v)
		}
	}
	// A late result of a removed check is dropped.
	slots[2].Record(probe.Failure("late"), now.Add(4*time.Second))
	if s.LastEventID() != lastID+uint64(len(evs)) || s.Snapshot().Len() != 3 {
		t.Fatal("a removed check's late result was recorded")
	}
	// Readiness: two new checks starting fail it; recording them healthy passes it.
	if s.Snapshot().Plain(ScopeReadiness) {
		t.Fatal("readiness passes with two starting checks")
	}
	next[0].Record(probe.Success(""), now.Add(5*time.Second))
	next[2].Record(probe.Success(""), now.Add(5*time.Second))
	if !s.Snapshot().Plain(ScopeReadiness) || !s.Snapshot().Evaluate(ScopeReadiness, nil).OK {
		t.Fatal("readiness fails with every check healthy")
	}
}

// TestWarnEventOnceWhenAWarningBegins: a warning run after a clean one is
// one "warn" event with the status unchanged; a second warning in a row
// is none; a clean run then a warning again is another.
func TestWarnEventOnceWhenAWarningBegins(t *testing.T) {
	now := time.Now()
	s := NewStore([]Spec{{Name: "tls", Kind: "httpGet", Roles: []config.Role{config.RoleReadiness}, Policy: Policy{SuccessThreshold: 1, FailureThreshold: 1}}}, now)
	sl := s.Slots()[0]
	warn := probe.Result{Outcome: probe.OutcomeWarning, Output: "certificate expires in 1h"}
	for i, r := range []probe.Result{probe.Success("ok"), warn, warn, probe.Success("ok"), warn} {
		sl.Record(r, now.Add(time.Duration(i+1)*time.Second))
	}
	evs, _ := s.EventsSince(0)
	var warns []Event
	for _, e := range evs {
		if e.Reason == ReasonWarn {
			warns = append(warns, e)
		}
	}
	if len(evs) != 3 || len(warns) != 2 {
		t.Fatalf("events %+v: want starting→healthy and two warn events", evs)
	}
	for _, e := range warns {
		if e.From != StatusHealthy || e.To != StatusHealthy || e.Result.Output != "certificate expires in 1h" {
			t.Errorf("warn event %+v", e)
		}
	}
}
