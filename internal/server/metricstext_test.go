//go:build !lean

package server

import (
	"bufio"
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// TestCheckMetricsTextMatchesCollector: the /metrics fast path writes the
// same families and series, with the same values, as Collector through
// client_golang, for checks in every state, with a child, and while
// shutting down.
func TestCheckMetricsTextMatchesCollector(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	record(s, "db", probe.OutcomeFailure, "down")
	now := time.Now()
	s.Record("web", probe.Result{Outcome: probe.OutcomeFailure, Start: now, End: now.Add(1234567 * time.Microsecond)}, now)
	for i, step := range []func(){
		func() {},
		// An HTTPS result: the certificate expiry family appears.
		func() {
			s.Record("web", probe.Result{Outcome: probe.OutcomeWarning, Start: now, End: now, CertExpiry: time.Unix(1893456000, 0)}, now)
		},
		func() { s.SetChild(&state.ChildState{Pid: 42, Restarts: map[string]uint64{"exit": 2}}) },
		s.SetShuttingDown,
	} {
		step()
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(s))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		for _, mf := range mfs {
			_, _ = expfmt.MetricFamilyToText(&want, mf)
		}
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		writeCheckMetrics(bw, s.Snapshot())
		_ = bw.Flush()
		g, w := exposition(t, got.String()), exposition(t, want.String())
		if len(g) != len(w) {
			t.Errorf("step %d: %d families written, client_golang has %d", i, len(g), len(w))
		}
		for name, lines := range w {
			if !slices.Equal(g[name], lines) {
				t.Errorf("step %d: family %s:\n got %q\nwant %q", i, name, g[name], lines)
			}
		}
	}
}
