package ttl

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/scheduler"
	"github.com/healthbridge/healthbridge/internal/state"
)

// TestExpiryAndRecovery runs a ttl check through the real scheduler and
// store under synctest: expiry is seen within one period (1 s) of the TTL.
func TestExpiryAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &config.Check{Name: "beat", TTL: &config.TTLAction{Seconds: 10}}
		Kind.Defaults(c)
		c.SetDefaults(nil)
		pk := Kind.Push([]*config.Check{c}, nil)
		board := pk.Handler.(*Admin).board
		p, err := pk.New(c, probe.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if c.PeriodSeconds != 1 || c.FailureThreshold != 1 {
			t.Fatalf("ttl defaults: period %d, failureThreshold %d", c.PeriodSeconds, c.FailureThreshold)
		}
		store := state.NewStore([]state.Spec{{Name: "beat", Kind: "ttl", Policy: state.Policy{FailureThreshold: int(c.FailureThreshold)},
			Timing: state.Timing{Period: c.Period(), Timeout: c.Timeout()}}}, time.Now())
		s := scheduler.New([]scheduler.Check{{Slot: store.Slots()[0], Prober: p}}, nil)
		s.Start(t.Context())
		defer s.Stop()
		status := func() (state.Status, string) {
			ck, _ := store.Snapshot().Get("beat")
			last, _ := ck.State.Last()
			return ck.State.Status, last.Output
		}
		time.Sleep(500 * time.Millisecond)
		if st, out := status(); st != state.StatusUnhealthy || out != "TTL expired: no report yet (ttl 10s)" {
			t.Fatalf("before a report: %v %q", st, out)
		}
		if !board.Report("beat", probe.OutcomeSuccess, "fine") || board.Report("other", probe.OutcomeSuccess, "") {
			t.Fatal("Report accepted the wrong names")
		}
		s.RunNow("beat")
		time.Sleep(10 * time.Millisecond)
		if st, out := status(); st != state.StatusHealthy || out != "fine" {
			t.Fatalf("after pass: %v %q", st, out)
		}
		time.Sleep(10 * time.Second) // report now 10s old: still within the TTL
		if st, _ := status(); st != state.StatusHealthy {
			t.Fatalf("at the TTL: %v", st)
		}
		time.Sleep(time.Second) // the next run sees it expired
		// The last output is kept, in Consul's words.
		if st, out := status(); st != state.StatusUnhealthy || out != "TTL expired (last output before timeout follows): fine" {
			t.Fatalf("after expiry: %v %q", st, out)
		}
		board.Report("beat", probe.OutcomeSuccess, "")
		time.Sleep(11 * time.Second)
		if st, out := status(); st != state.StatusUnhealthy || !strings.HasPrefix(out, "TTL expired: last report 10.") || !strings.HasSuffix(out, "s ago (ttl 10s)") {
			t.Fatalf("after expiry of a report without output: %v %q", st, out)
		}
		board.Report("beat", probe.OutcomeWarning, "slow")
		s.RunNow("beat")
		time.Sleep(10 * time.Millisecond)
		if st, out := status(); st != state.StatusHealthy || out != "slow" {
			t.Fatalf("after warn: %v %q", st, out)
		}
	})
}
