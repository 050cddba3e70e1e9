//go:build !lean

package server

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

func TestMetrics(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	record(s, "db", probe.OutcomeFailure, "")
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(s))
	want := `
# HELP healthbridge_check_up 1 when the check is healthy, else 0.
# TYPE healthbridge_check_up gauge
healthbridge_check_up{check="boot",kind="tcpSocket"} 0
healthbridge_check_up{check="db",kind="exec"} 0
healthbridge_check_up{check="web",kind="httpGet"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "healthbridge_check_up"); err != nil {
		t.Fatal(err)
	}
	// The handler writes the check metrics itself: its gatherer has the rest.
	r := get(t, New(s, Options{Metrics: MetricsWriters{}}), "GET", "/metrics")
	if r.code != 200 || !strings.Contains(r.body, `healthbridge_check_probe_total{check="db",kind="exec",result="failure"} 1`) {
		t.Fatalf("%d %s", r.code, r.body)
	}
}

// TestMetricsLint: the exported metrics pass client_golang's linter
// (Prometheus naming: base units, _total counters, a real histogram), with
// a run recorded so that every family is present.
func TestMetricsLint(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	record(s, "db", probe.OutcomeFailure, "down")
	problems, err := testutil.CollectAndLint(NewCollector(s))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	n, err := testutil.GatherAndCount(prometheusRegistry(t, s), "healthbridge_check_duration_seconds", "healthbridge_check_transitions_total")
	if err != nil || n != 6 {
		t.Fatalf("%d series, %v", n, err)
	}
}

func prometheusRegistry(t *testing.T, s *state.Store) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(s)); err != nil {
		t.Fatal(err)
	}
	return reg
}
