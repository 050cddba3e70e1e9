package state

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func outcomes(s string) []probe.Outcome {
	m := map[rune]probe.Outcome{'S': probe.OutcomeSuccess, 'F': probe.OutcomeFailure, 'U': probe.OutcomeUnknown,
		'W': probe.OutcomeWarning, '2': probe.OutcomeStarting}
	var out []probe.Outcome
	for _, r := range s {
		out = append(out, m[r])
	}
	return out
}

func statuses(s string) []Status {
	m := map[rune]Status{'s': StatusStarting, 'h': StatusHealthy, 'u': StatusUnhealthy}
	var out []Status
	for _, r := range s {
		out = append(out, m[r])
	}
	return out
}

func TestNextThresholds(t *testing.T) {
	tests := []struct {
		name       string
		policy     Policy
		results    string // one letter per result, one second apart
		want       string // status after each result
		wantStreak int    // failure streak at the end
	}{
		{"issue example: success 3 failure 2 over F,S,S,F,S,S,S", Policy{SuccessThreshold: 3, FailureThreshold: 2}, "FSSFSSS", "ssssssh", 0},
		{"kubelet defaults: three failures to unhealthy", Policy{SuccessThreshold: 1, FailureThreshold: 3}, "SFFFS", "hhhuh", 0},
		{"failure streak broken by a success", Policy{SuccessThreshold: 1, FailureThreshold: 2}, "SFSFSF", "hhhhhh", 1},
		{"unknown counts as failure", Policy{SuccessThreshold: 1, FailureThreshold: 2}, "UU", "su", 2},
		{"warning counts as success", Policy{SuccessThreshold: 2, FailureThreshold: 1}, "WW", "sh", 0},
		{"docker retries 1: first failure is unhealthy", Policy{FailureThreshold: 1}, "FS", "uh", 0},
		{"successThreshold 3 from unhealthy", Policy{SuccessThreshold: 3, FailureThreshold: 1}, "FSSFSSS", "uuuuuuh", 0},
		{"zero thresholds mean 1", Policy{}, "SF", "hu", 1},
		{"exit code 2 while starting is not counted", Policy{FailureThreshold: 1}, "22S", "ssh", 0},
		{"exit code 2 after starting is a failure", Policy{FailureThreshold: 1}, "S2", "hu", 1},
		{"exit code 2 while unhealthy stays unhealthy", Policy{FailureThreshold: 1}, "F2S", "uuh", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Initial(t0)
			want := statuses(tt.want)
			for i, o := range outcomes(tt.results) {
				now := t0.Add(time.Duration(i+1) * time.Second)
				st = Next(st, probe.Result{Outcome: o, End: now}, now, tt.policy)
				if st.Status != want[i] {
					t.Fatalf("after result %d (%s): status %v, want %v", i+1, tt.results[:i+1], st.Status, want[i])
				}
			}
			if st.FailureStreak != tt.wantStreak {
				t.Errorf("failure streak %d, want %d", st.FailureStreak, tt.wantStreak)
			}
		})
	}
}

func TestNextStartPeriod(t *testing.T) {
	p := Policy{FailureThreshold: 2, StartPeriod: 10 * time.Second}
	st := Initial(t0)
	// Failures within the start period are recorded but not counted.
	for i := 1; i <= 4; i++ {
		now := t0.Add(time.Duration(i*2) * time.Second)
		st = Next(st, probe.Result{Outcome: probe.OutcomeFailure}, now, p)
		if st.Status != StatusStarting || st.FailureStreak != 0 {
			t.Fatalf("at %ds: %v streak %d, want starting streak 0", i*2, st.Status, st.FailureStreak)
		}
	}
	if st.Runs != 4 || len(st.Results) != 4 {
		t.Fatalf("runs %d results %d, want 4 and 4", st.Runs, len(st.Results))
	}
	// After the start period they count: two more make it unhealthy.
	st = Next(st, probe.Result{Outcome: probe.OutcomeFailure}, t0.Add(11*time.Second), p)
	if st.Status != StatusStarting || st.FailureStreak != 1 {
		t.Fatalf("first counted failure: %v streak %d", st.Status, st.FailureStreak)
	}
	st = Next(st, probe.Result{Outcome: probe.OutcomeFailure}, t0.Add(12*time.Second), p)
	if st.Status != StatusUnhealthy {
		t.Fatalf("second counted failure: %v, want unhealthy", st.Status)
	}

	// A success during the start period ends it (healthy), and later
	// failures count even inside the period.
	st = Initial(t0)
	st = Next(st, probe.Result{Outcome: probe.OutcomeSuccess}, t0.Add(time.Second), p)
	st = Next(st, probe.Result{Outcome: probe.OutcomeFailure}, t0.Add(2*time.Second), p)
	st = Next(st, probe.Result{Outcome: probe.OutcomeFailure}, t0.Add(3*time.Second), p)
	if st.Status != StatusUnhealthy {
		t.Fatalf("failures after healthy inside the start period: %v, want unhealthy", st.Status)
	}
}

// TestNextStartPeriodByRunStart is the case: runs of ~1.15s, a 3s
// start period, retries 2. Docker (moby handleProbeResult) judges a run by
// its start: the run that started at 2.2s and ended at 3.35s is not counted.
func TestNextStartPeriodByRunStart(t *testing.T) {
	p := Policy{FailureThreshold: 2, StartPeriod: 3 * time.Second}
	st := Initial(t0)
	run := 1150 * time.Millisecond
	var at []Status
	for i := range 5 {
		start := t0.Add(time.Duration(i) * 1100 * time.Millisecond)
		end := start.Add(run)
		st = Next(st, probe.Result{Outcome: probe.OutcomeFailure, Start: start, End: end}, end, p)
		at = append(at, st.Status)
	}
	// Runs start at 0, 1.1, 2.2 (all inside), 3.3 and 4.4 (counted).
	if want := statuses("ssssu"); !slices.Equal(at, want) {
		t.Fatalf("statuses %v, want %v", at, want)
	}
}

func TestNextKeepsLastFiveAndDoesNotShare(t *testing.T) {
	st := Initial(t0)
	var prevs []CheckState
	for i := range 8 {
		prevs = append(prevs, st)
		st = Next(st, probe.Result{Outcome: probe.OutcomeSuccess, Output: string(rune('a' + i))}, t0, Policy{})
	}
	var got []string
	for _, r := range st.Results {
		got = append(got, r.Output)
	}
	if strings.Join(got, "") != "defgh" {
		t.Fatalf("kept %q, want defgh (oldest first)", got)
	}
	if st.Outcomes[probe.OutcomeSuccess] != 8 || st.Runs != 8 {
		t.Fatalf("counted %d successes, %d runs; want 8, 8", st.Outcomes[probe.OutcomeSuccess], st.Runs)
	}
	// Earlier states are untouched.
	if n := len(prevs[3].Results); n != 3 || prevs[3].Results[2].Output != "c" {
		t.Fatalf("state 3 changed: %+v", prevs[3].Results)
	}
}

func TestNextSinceOnlyMovesOnChange(t *testing.T) {
	st := Initial(t0)
	st = Next(st, probe.Result{Outcome: probe.OutcomeSuccess}, t0.Add(time.Second), Policy{})
	st = Next(st, probe.Result{Outcome: probe.OutcomeSuccess}, t0.Add(2*time.Second), Policy{})
	if !st.Since.Equal(t0.Add(time.Second)) {
		t.Fatalf("since %v, want the first transition", st.Since)
	}
}

func TestStoreVerdicts(t *testing.T) {
	infos := []Spec{
		{Name: "live", Kind: "exec", Roles: []config.Role{config.RoleLiveness}, Policy: Policy{FailureThreshold: 1}},
		{Name: "ready", Kind: "tcpSocket", Roles: []config.Role{config.RoleReadiness}, Policy: Policy{FailureThreshold: 1}},
		{Name: "boot", Kind: "httpGet", Roles: []config.Role{config.RoleStartup}, Policy: Policy{FailureThreshold: 1}},
	}
	s := NewStore(infos, t0)
	snap := s.Snapshot()
	// Starting: liveness passes, readiness and startup fail, healthz fails.
	for sc, want := range map[Scope]bool{ScopeLiveness: true, ScopeReadiness: false, ScopeStartup: false, ScopeAll: false} {
		if got := snap.Plain(sc); got != want {
			t.Errorf("starting: %v = %v, want %v", sc, got, want)
		}
	}
	tr := s.Record("ready", probe.Result{Outcome: probe.OutcomeSuccess}, t0)
	if !tr.Changed() || tr.To != StatusHealthy {
		t.Fatalf("transition %+v", tr)
	}
	if !s.Snapshot().Plain(ScopeReadiness) {
		t.Fatal("readiness should pass once ready is healthy")
	}
	if snap.Plain(ScopeReadiness) {
		t.Fatal("an old snapshot changed")
	}
	s.Record("live", probe.Result{Outcome: probe.OutcomeFailure}, t0)
	if s.Snapshot().Plain(ScopeLiveness) {
		t.Fatal("liveness should fail once live is unhealthy")
	}
	v := s.Snapshot().Evaluate(ScopeLiveness, map[string]bool{"live": true})
	if !v.OK || !v.Entries[0].Excluded {
		t.Fatalf("excluded liveness verdict %+v", v)
	}
	s.SetShuttingDown()
	if s.Snapshot().Plain(ScopeReadiness) || !s.Snapshot().Evaluate(ScopeReadiness, nil).ShuttingDown {
		t.Fatal("readiness must fail while shutting down")
	}
}

// TestChangedBroadcastsEachPublication: a channel taken before a
// publication is closed by it; one taken after is not, until the next.
func TestChangedBroadcastsEachPublication(t *testing.T) {
	s := NewStore([]Spec{{Name: "a", Policy: Policy{FailureThreshold: 1}}}, t0)
	before := s.Changed()
	select {
	case <-before:
		t.Fatal("closed before any publication")
	default:
	}
	s.Record("a", probe.Result{Outcome: probe.OutcomeSuccess}, t0)
	after := s.Changed()
	select {
	case <-before:
	default:
		t.Fatal("a publication did not close the channel taken before it")
	}
	select {
	case <-after:
		t.Fatal("the next channel is already closed")
	default:
	}
	s.SetShuttingDown()
	select {
	case <-after:
	default:
		t.Fatal("shutting down did not publish")
	}
}

// TestCountersKeepCounting: transitions and the duration histogram are
// recorded by Next, and survive a Reset (Prometheus counters never go
// back).
func TestCountersKeepCounting(t *testing.T) {
	s := NewStore([]Spec{{Name: "a", Policy: Policy{FailureThreshold: 1}}}, t0)
	run := func(o probe.Outcome, d time.Duration) {
		s.Record("a", probe.Result{Outcome: o, Start: t0, End: t0.Add(d)}, t0)
	}
	run(probe.OutcomeSuccess, 20*time.Millisecond) // starting -> healthy
	run(probe.OutcomeFailure, 3*time.Second)       // healthy -> unhealthy
	run(probe.OutcomeFailure, 30*time.Second)      // beyond the last bucket
	c, _ := s.Snapshot().Get("a")
	h := c.State.Durations
	if c.State.Transitions != 2 || h.Count != 3 || h.Buckets[2] != 1 || h.Buckets[9] != 1 || h.Sum < 33 || h.Sum > 33.03 {
		t.Fatalf("transitions %d, histogram %+v", c.State.Transitions, h)
	}
	s.Reset(t0.Add(time.Minute)) // unhealthy -> starting
	c, _ = s.Snapshot().Get("a")
	if c.State.Status != StatusStarting || c.State.Transitions != 3 || c.State.Durations.Count != 3 || c.State.Runs != 3 || len(c.State.Results) != 0 {
		t.Fatalf("after Reset: %+v", c.State)
	}
}
