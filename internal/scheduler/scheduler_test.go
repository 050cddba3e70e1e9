package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// scripted is an in-process target: it returns the scripted outcomes in
// turn (the last one repeats), records when each run started, and takes
// `took` to answer (or until ctx is done).
type scripted struct {
	mu       sync.Mutex
	outcomes []probe.Outcome
	took     time.Duration
	starts   []time.Time
	running  atomic.Int32
	overlaps atomic.Int32
}

func (s *scripted) Probe(ctx context.Context) probe.Result {
	if s.running.Add(1) > 1 {
		s.overlaps.Add(1)
	}
	defer s.running.Add(-1)
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	o := s.outcomes[0]
	if len(s.outcomes) > 1 {
		s.outcomes = s.outcomes[1:]
	}
	s.mu.Unlock()
	if s.took > 0 {
		select {
		case <-time.After(s.took):
		case <-ctx.Done():
			return probe.Failure("timeout")
		}
	}
	return probe.Result{Outcome: o}
}

func (s *scripted) startOffsets(base time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for _, t := range s.starts {
		out = append(out, t.Sub(base))
	}
	return out
}

// tcheck is a check as a test describes it.
type tcheck struct {
	Name, Kind                                          string
	Prober                                              probe.Prober
	InitialDelay, Period, StartInterval, Timeout, Phase time.Duration
	Startup                                             bool
}

// newSched builds the store (with each check's policy from policies) and
// the scheduler for checks, as app.Build does.
func newSched(policies map[string]state.Policy, checks []tcheck, log *slog.Logger) (*Scheduler, *state.Store) {
	var specs []state.Spec
	for _, c := range checks {
		sp := state.Spec{Name: c.Name, Kind: c.Kind, Policy: policies[c.Name], Timing: state.Timing{
			InitialDelay: c.InitialDelay, Period: c.Period, StartInterval: c.StartInterval, Timeout: c.Timeout, Phase: c.Phase,
		}}
		if c.Startup {
			sp.Roles = []config.Role{config.RoleStartup}
		}
		specs = append(specs, sp)
	}
	store := state.NewStore(specs, time.Now())
	var sc []Check
	for i, slot := range store.Slots() {
		sc = append(sc, Check{Slot: slot, Prober: checks[i].Prober, Inflight: new(Inflight)})
	}
	return New(sc, log), store
}

// checksOf returns the checks s was built with (before Start).
func checksOf(s *Scheduler) []Check {
	var out []Check
	for _, w := range s.initial {
		out = append(out, w.c)
	}
	return out
}

func TestScheduleInitialDelayPeriodAndNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}, took: 3 * time.Second}
		s, _ := newSched(nil, []tcheck{{Name: "c", Prober: p, InitialDelay: 5 * time.Second, Period: 10 * time.Second, Timeout: 4 * time.Second}}, nil)
		s.Start(t.Context())
		time.Sleep(40 * time.Second)
		s.Stop()
		// Runs start at 5s, then each 10s after the previous run ended (3s).
		want := []time.Duration{5 * time.Second, 18 * time.Second, 31 * time.Second}
		if got := p.startOffsets(start); !slices.Equal(got, want) {
			t.Fatalf("runs started at %v, want %v", got, want)
		}
		if p.overlaps.Load() != 0 {
			t.Fatal("runs overlapped")
		}
	})
}

func TestScheduleTimeoutIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}, took: time.Hour}
		s, store := newSched(map[string]state.Policy{"c": {FailureThreshold: 1}}, []tcheck{{Name: "c", Prober: p, Period: 10 * time.Second, Timeout: time.Second}}, nil)
		s.Start(t.Context())
		time.Sleep(1500 * time.Millisecond)
		c, _ := store.Snapshot().Get("c")
		if c.State.Status != state.StatusUnhealthy {
			t.Fatalf("after a timed-out run: %v, want unhealthy", c.State.Status)
		}
		if last, _ := c.State.Last(); last.Duration() != time.Second {
			t.Fatalf("run took %v, want the 1s timeout", last.Duration())
		}
		s.Stop()
	})
}

func TestScheduleStartInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := &scripted{outcomes: []probe.Outcome{probe.OutcomeFailure}}
		s, _ := newSched(map[string]state.Policy{"c": {FailureThreshold: 1, StartPeriod: 12 * time.Second}}, []tcheck{{Name: "c", Prober: p, Period: 30 * time.Second, StartInterval: 5 * time.Second, Timeout: time.Second}}, nil)
		s.Start(t.Context())
		time.Sleep(50 * time.Second)
		s.Stop()
		// Every 5s while starting inside the 12s start period; the run at
		// 15s counts (unhealthy), then every 30s.
		want := []time.Duration{0, 5 * time.Second, 10 * time.Second, 15 * time.Second, 45 * time.Second}
		if got := p.startOffsets(start); !slices.Equal(got, want) {
			t.Fatalf("runs started at %v, want %v", got, want)
		}
	})
}

func TestStartupGatesOtherChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		boot := &scripted{outcomes: []probe.Outcome{probe.OutcomeFailure, probe.OutcomeFailure, probe.OutcomeSuccess}}
		live := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		s, _ := newSched(nil, []tcheck{
			{Name: "boot", Prober: boot, Period: 2 * time.Second, Timeout: time.Second, Startup: true},
			{Name: "live", Prober: live, Period: 10 * time.Second, Timeout: time.Second, InitialDelay: time.Second},
		}, nil)
		s.Start(t.Context())
		time.Sleep(30 * time.Second)
		s.Stop()
		// boot fails at 0s and 2s, succeeds at 4s, then stops running.
		if got, want := boot.startOffsets(start), []time.Duration{0, 2 * time.Second, 4 * time.Second}; !slices.Equal(got, want) {
			t.Fatalf("startup check ran at %v, want %v", got, want)
		}
		// live waits for the gate (its 1s initial delay has passed by then),
		// then its first-run spacing (second check: 1 ms).
		ms := time.Millisecond
		if got, want := live.startOffsets(start), []time.Duration{4*time.Second + ms, 14*time.Second + ms, 24*time.Second + ms}; !slices.Equal(got, want) {
			t.Fatalf("liveness check ran at %v, want %v", got, want)
		}
	})
}

type panicky struct{}

func (panicky) Probe(context.Context) probe.Result { panic("boom") }

func TestPanicBecomesUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, store := newSched(map[string]state.Policy{"c": {FailureThreshold: 1}}, []tcheck{{Name: "c", Prober: panicky{}, Period: time.Second, Timeout: time.Second}}, nil)
		s.Start(t.Context())
		time.Sleep(2500 * time.Millisecond)
		s.Stop()
		c, _ := store.Snapshot().Get("c")
		last, _ := c.State.Last()
		if c.State.Runs != 3 || last.Outcome != probe.OutcomeUnknown || last.Output != "probe panicked: boom" {
			t.Fatalf("runs %d, last %+v", c.State.Runs, last)
		}
		if c.State.Status != state.StatusUnhealthy {
			t.Fatalf("unknown must count as failure: %v", c.State.Status)
		}
	})
}

func TestStopCancelsInFlightRunAndIsIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}, took: time.Hour}
		s, store := newSched(nil, []tcheck{{Name: "c", Prober: p, Period: time.Second, Timeout: time.Hour}}, nil)
		s.Start(t.Context())
		time.Sleep(time.Minute)
		if p.running.Load() != 1 {
			t.Fatal("run not in flight")
		}
		s.Stop()
		if p.running.Load() != 0 {
			t.Fatal("Stop returned with a run in flight")
		}
		s.Stop()
		if c, _ := store.Snapshot().Get("c"); c.State.Runs != 0 {
			t.Fatalf("a cancelled run was recorded: %d runs", c.State.Runs)
		}
	})
}

func TestRunNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		s, _ := newSched(nil, []tcheck{{Name: "c", Prober: p, Period: time.Hour, Timeout: time.Second}}, nil)
		s.Start(t.Context())
		time.Sleep(10 * time.Second)
		if !s.RunNow("c") || s.RunNow("nope") {
			t.Fatal("RunNow result wrong")
		}
		time.Sleep(time.Second)
		s.Stop()
		if got, want := p.startOffsets(start), []time.Duration{0, 10 * time.Second}; !slices.Equal(got, want) {
			t.Fatalf("runs at %v, want %v", got, want)
		}
	})
}

// recordingHandler keeps the messages and attributes logged.
type recordingHandler struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{h, as}
}
func (h *recordingHandler) WithGroup(string) slog.Handler { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	return h.handle(r, nil)
}
func (h *recordingHandler) handle(r slog.Record, extra []slog.Attr) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	for _, a := range extra {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	h.recs = append(h.recs, m)
	h.mu.Unlock()
	return nil
}

type attrHandler struct {
	*recordingHandler
	as []slog.Attr
}

func (h *attrHandler) Handle(_ context.Context, r slog.Record) error { return h.handle(r, h.as) }

func TestEveryStateChangeLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &scripted{outcomes: outcomesOf("FFSSFFF")}
		h := &recordingHandler{}
		s, _ := newSched(map[string]state.Policy{"c": {FailureThreshold: 2}}, []tcheck{{Name: "c", Kind: "exec", Prober: p, Period: time.Second, Timeout: time.Second}}, slog.New(h))
		s.Start(t.Context())
		time.Sleep(6500 * time.Millisecond)
		s.Stop()
		var got []string
		for _, r := range h.recs {
			if r["msg"] == "check state changed" {
				if r["check"] != "c" || r["kind"] != "exec" || r["level"] != "INFO" {
					t.Fatalf("attributes: %v", r)
				}
				got = append(got, r["from"]+">"+r["to"])
			}
		}
		want := "starting>unhealthy unhealthy>healthy healthy>unhealthy"
		if strings.Join(got, " ") != want {
			t.Fatalf("transitions logged: %q, want %q", got, want)
		}
	})
}

func outcomesOf(s string) []probe.Outcome {
	var out []probe.Outcome
	for _, r := range s {
		if r == 'S' {
			out = append(out, probe.OutcomeSuccess)
		} else {
			out = append(out, probe.OutcomeFailure)
		}
	}
	return out
}

// unkillable ignores its context, as a process in uninterruptible I/O on a
// hung mount ignores SIGKILL: it returns only when released.
type unkillable struct {
	release chan struct{}
	calls   atomic.Int32
}

func (u *unkillable) Probe(context.Context) probe.Result {
	if u.calls.Add(1) == 1 {
		<-u.release
		return probe.Failure("finally returned")
	}
	return probe.Success("ok")
}

func TestStuckRunIsAbandonedAndNeverDoubled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		u := &unkillable{release: make(chan struct{})}
		s, store := newSched(map[string]state.Policy{"c": {FailureThreshold: 1}}, []tcheck{{Name: "c", Prober: u, Period: 3 * time.Second, Timeout: time.Second}}, nil)
		s.Start(t.Context())
		defer s.Stop()

		// At the timeout plus the grace: a failure in Docker's words.
		time.Sleep(time.Second + probe.AbandonGrace + time.Millisecond)
		c, _ := store.Snapshot().Get("c")
		last, _ := c.State.Last()
		if c.State.Status != state.StatusUnhealthy || c.State.Runs != 1 ||
			!strings.HasPrefix(last.Output, "Health check exceeded timeout (1s): the probe did not stop when cancelled") {
			t.Fatalf("at the timeout: %v, %d runs, last %q", c.State.Status, c.State.Runs, last.Output)
		}
		// Each further period: a failure saying so, and no second instance.
		time.Sleep(2 * 3 * time.Second)
		c, _ = store.Snapshot().Get("c")
		last, _ = c.State.Last()
		if c.State.Runs != 3 || u.calls.Load() != 1 || !strings.HasPrefix(last.Output, "the previous run, started 8s ago, is still terminating") {
			t.Fatalf("while stuck: %d runs, %d calls, last %q", c.State.Runs, u.calls.Load(), last.Output)
		}
		// Once it ends, normal probing resumes at the next period.
		close(u.release)
		time.Sleep(3 * time.Second)
		c, _ = store.Snapshot().Get("c")
		last, _ = c.State.Last()
		if u.calls.Load() != 2 || last.Outcome != probe.OutcomeSuccess || c.State.Status != state.StatusHealthy {
			t.Fatalf("after it ended: %d calls, last %+v, %v (at %v)", u.calls.Load(), last, c.State.Status, time.Since(start))
		}
	})
}

// lateStarter cannot even start before its deadline (an exec under load
// waiting for a fork) and reports that it could not run.
type lateStarter struct{}

func (lateStarter) Probe(ctx context.Context) probe.Result {
	<-ctx.Done()
	return probe.Unknown(ctx.Err())
}

func TestDeadlineIsAFailureNeverUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, store := newSched(map[string]state.Policy{"c": {FailureThreshold: 1}}, []tcheck{{Name: "c", Prober: lateStarter{}, Period: 10 * time.Second, Timeout: time.Second}}, nil)
		s.Start(t.Context())
		time.Sleep(1500 * time.Millisecond)
		s.Stop()
		c, _ := store.Snapshot().Get("c")
		last, _ := c.State.Last()
		if last.Outcome != probe.OutcomeFailure || last.Output != "Health check exceeded timeout (1s): context deadline exceeded" {
			t.Fatalf("last %+v", last)
		}
	})
}

func TestPhaseSpreadsLockStepChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		a := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		b := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		s, _ := newSched(nil, []tcheck{
			{Name: "a", Prober: a, Period: 10 * time.Second, Timeout: time.Second},
			{Name: "b", Prober: b, Period: 10 * time.Second, Timeout: time.Second, Phase: 4 * time.Second},
		}, nil)
		s.Start(t.Context())
		time.Sleep(25 * time.Second)
		s.Stop()
		if got, want := a.startOffsets(start), []time.Duration{0, 10 * time.Second, 20 * time.Second}; !slices.Equal(got, want) {
			t.Fatalf("a ran at %v, want %v", got, want)
		}
		// b's first run comes 1 ms after a's (first-run spacing); then b
		// keeps its 4s lead.
		ms := time.Millisecond
		if got, want := b.startOffsets(start), []time.Duration{ms, 6*time.Second + ms, 16*time.Second + ms}; !slices.Equal(got, want) {
			t.Fatalf("b ran at %v, want %v", got, want)
		}
	})
}

// TestFirstRunsAreSpread: 2,000 checks started together do not probe in
// one burst: their first runs are 1 ms apart (Spacing), all within the
// first half period; with a period too short for that, the spacing shrinks
// so that they still all run within it; and every check is healthy within
// one period.
func TestFirstRunsAreSpread(t *testing.T) {
	for _, tc := range []struct {
		period, spacing time.Duration
	}{
		{10 * time.Second, time.Millisecond},
		{time.Second, 250 * time.Microsecond},
	} {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			const n = 2000
			var checks []tcheck
			probers := make([]*scripted, n)
			for i := range n {
				probers[i] = &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
				checks = append(checks, tcheck{Name: fmt.Sprint("c", i), Prober: probers[i], Period: tc.period, Timeout: time.Second})
			}
			s, store := newSched(nil, checks, nil)
			s.Start(t.Context())
			time.Sleep(tc.period - time.Nanosecond)
			synctest.Wait()
			for i, p := range probers {
				got := p.startOffsets(start)
				if len(got) == 0 || got[0] != time.Duration(i)*tc.spacing {
					t.Fatalf("period %v: check %d first ran at %v, want %v", tc.period, i, got, time.Duration(i)*tc.spacing)
				}
			}
			if !store.Snapshot().Plain(state.ScopeReadiness) {
				t.Fatalf("period %v: not every check healthy within one period", tc.period)
			}
			s.Stop()
		})
	}
}

// TestIdleChecksHoldNoGoroutines: 5,000 checks between runs hold no
// goroutine each (the dispatcher and its heap do the waiting): at 8 KiB of
// stack per goroutine, 10,000 checks would otherwise cost 80 MB.
func TestIdleChecksHoldNoGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5000
		var checks []tcheck
		p := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		for i := range n {
			checks = append(checks, tcheck{Name: fmt.Sprint("c", i), Prober: p, Period: 10 * time.Second, Timeout: time.Second})
		}
		before := runtime.NumGoroutine()
		s, store := newSched(nil, checks, nil)
		s.Start(t.Context())
		time.Sleep(7 * time.Second) // every check ran once and waits
		synctest.Wait()
		if g := runtime.NumGoroutine() - before; g > 5 {
			t.Fatalf("%d goroutines for %d idle checks", g, n)
		}
		if c, _ := store.Snapshot().Get("c4999"); c.State.Status != state.StatusHealthy {
			t.Fatalf("the last check has not run: %v", c.State.Status)
		}
		s.Stop()
	})
}

// concurrent counts the instances of its probe running at once; each run
// ignores cancellation until released.
type concurrent struct {
	release chan struct{}
	running atomic.Int32
	most    atomic.Int32
	calls   atomic.Int32
}

func (c *concurrent) Probe(context.Context) probe.Result {
	c.calls.Add(1)
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	<-c.release
	return probe.Success("finally returned")
}

// A run that cannot be stopped is remembered across schedulers of the same
// checks (what `healthbridge run` builds at each child restart): no second
// instance ever starts while it has not returned.
func TestStuckRunOutlivesTheScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &concurrent{release: make(chan struct{})}
		s, store := newSched(map[string]state.Policy{"c": {FailureThreshold: 1}}, []tcheck{{Name: "c", Prober: c, Period: time.Second, Timeout: time.Second}}, nil)
		checks := checksOf(s)
		for restart := range 3 {
			s.Start(t.Context())
			time.Sleep(5 * time.Second) // the run is abandoned, then periods pass
			s.Stop()
			if got := c.calls.Load(); got != 1 {
				t.Fatalf("after %d restarts: %d calls, want 1 (the stuck one)", restart, got)
			}
			s = New(checks, nil)
		}
		if c.most.Load() != 1 {
			t.Fatalf("%d instances at once", c.most.Load())
		}
		cs, _ := store.Snapshot().Get("c")
		if last, _ := cs.State.Last(); !strings.Contains(last.Output, "still terminating") {
			t.Fatalf("last result %q: want the still-terminating failure", last.Output)
		}
		// Once it returns, the next scheduler probes again.
		close(c.release)
		synctest.Wait()
		s.Start(t.Context())
		time.Sleep(2 * time.Second)
		s.Stop()
		if c.calls.Load() < 2 || c.most.Load() != 1 {
			t.Fatalf("after release: %d calls, %d at once", c.calls.Load(), c.most.Load())
		}
	})
}

// TestUpdateKeepsUnchangedSchedules: a reload (Update) while the
// scheduler runs keeps an unchanged check's schedule exactly, starts an
// added check with its initial delay counted from the reload, and never
// runs a removed check again.
func TestUpdateKeepsUnchangedSchedules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		kept := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}, took: time.Second}
		gone := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		s, store := newSched(nil, []tcheck{
			{Name: "kept", Prober: kept, Period: 10 * time.Second, Timeout: 5 * time.Second},
			{Name: "gone", Prober: gone, Period: 10 * time.Second, Timeout: 5 * time.Second},
		}, nil)
		checks := checksOf(s)
		s.Start(t.Context())
		time.Sleep(15 * time.Second)
		added := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		slots := store.Replace([]state.Spec{{Name: "new", Timing: state.Timing{InitialDelay: 2 * time.Second, Period: 10 * time.Second, Timeout: time.Second}}, {}},
			[]*state.Slot{nil, checks[0].Slot}, time.Now())
		if !s.Update([]Check{{Slot: slots[0], Prober: added, Inflight: new(Inflight)}, checks[0]}) {
			t.Fatal("Update on a running scheduler returned false")
		}
		time.Sleep(30 * time.Second)
		s.Stop()
		// kept: 0 s, then 10 s after each 1 s run: 11 s, 22 s, 33 s, 44 s.
		if got, want := kept.startOffsets(start), []time.Duration{0, 11 * time.Second, 22 * time.Second, 33 * time.Second, 44 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("kept check ran at %v, want %v", got, want)
		}
		// gone: before the reload only.
		for _, off := range gone.startOffsets(start) {
			if off > 15*time.Second {
				t.Errorf("a removed check ran at %v, after the reload at 15 s", off)
			}
		}
		// new: 2 s after the reload, then every 10 s.
		if got, want := added.startOffsets(start), []time.Duration{17 * time.Second, 27 * time.Second, 37 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("added check ran at %v, want %v", got, want)
		}
		if _, ok := store.Snapshot().Get("gone"); ok {
			t.Error("the removed check is still in the snapshot")
		}
	})
}

// TestUpdateNeverOverlapsAChangedCheck: a check changed by a reload (twice)
// while its run is in flight: the run is not interrupted, its result is not
// recorded into the new check, and the newest definition's first run waits
// until it ended.
func TestUpdateNeverOverlapsAChangedCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		oldP := &scripted{outcomes: []probe.Outcome{probe.OutcomeFailure}, took: 5 * time.Second}
		s, store := newSched(map[string]state.Policy{"c": {FailureThreshold: 1, SuccessThreshold: 1}},
			[]tcheck{{Name: "c", Prober: oldP, Period: 10 * time.Second, Timeout: 8 * time.Second}}, nil)
		checks := checksOf(s)
		s.Start(t.Context())
		time.Sleep(2 * time.Second) // the first run is in flight until 5 s
		newP := &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}
		slots := store.Replace([]state.Spec{{Name: "c", Policy: state.Policy{FailureThreshold: 1, SuccessThreshold: 1},
			Timing: state.Timing{Period: 10 * time.Second, Timeout: time.Second}}}, []*state.Slot{nil}, time.Now())
		s.Update([]Check{{Slot: slots[0], Prober: &scripted{outcomes: []probe.Outcome{probe.OutcomeSuccess}}, Inflight: checks[0].Inflight}})
		time.Sleep(time.Second)
		// A second reload before the old run ended: the newest definition
		// still waits for it, not for the one in between (which never ran).
		slots = store.Replace([]state.Spec{{Name: "c", Policy: state.Policy{FailureThreshold: 1, SuccessThreshold: 1},
			Timing: state.Timing{Period: 10 * time.Second, Timeout: 2 * time.Second}}}, []*state.Slot{nil}, time.Now())
		s.Update([]Check{{Slot: slots[0], Prober: newP, Inflight: checks[0].Inflight}})
		time.Sleep(3 * time.Second)
		s.Stop()
		if got := oldP.startOffsets(start); len(got) != 1 {
			t.Fatalf("old definition ran at %v, want once", got)
		}
		if got := newP.startOffsets(start); len(got) != 1 || got[0] != 5*time.Second {
			t.Fatalf("new definition ran at %v, want once, at 5 s when the old run ended", got)
		}
		c, _ := store.Snapshot().Get("c")
		if c.State.Status != state.StatusHealthy || c.State.Runs != 1 {
			t.Fatalf("new check's state %+v: the old run's failure must not be recorded in it", c.State)
		}
		if oldP.overlaps.Load()+newP.overlaps.Load() != 0 {
			t.Fatal("overlapping runs")
		}
	})
}
