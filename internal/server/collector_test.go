//go:build !lean

package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// Collector is the test oracle for writeCheckMetrics: the same check
// families built through client_golang's metric types, so that a test can
// compare the two series by series and lint them with client_golang's
// linter. The product writes them with writeCheckMetrics.
type Collector struct {
	store *state.Store
}

// NewCollector returns a collector for store.
func NewCollector(store *state.Store) *Collector { return &Collector{store: store} }

var (
	descTotal = prometheus.NewDesc("healthbridge_check_probe_total",
		"Probe runs by outcome (success, failure, unknown, warning, starting).", []string{"check", "kind", "result"}, nil)
	descStatus = prometheus.NewDesc("healthbridge_check_status",
		"Current thresholded status of the check: 1 for the status it is in.", []string{"check", "kind", "status"}, nil)
	descUp = prometheus.NewDesc("healthbridge_check_up",
		"1 when the check is healthy, else 0.", []string{"check", "kind"}, nil)
	descDuration = prometheus.NewDesc("healthbridge_check_last_duration_seconds",
		"Duration of the check's last probe run in seconds.", []string{"check", "kind"}, nil)
	descStreak = prometheus.NewDesc("healthbridge_check_failing_streak",
		"Consecutive failing results counted toward failureThreshold.", []string{"check", "kind"}, nil)
	descTransitions = prometheus.NewDesc("healthbridge_check_transitions_total",
		"Status changes of the check (starting, healthy, unhealthy).", []string{"check", "kind"}, nil)
	descDurations = prometheus.NewDesc("healthbridge_check_duration_seconds",
		"Duration of the check's probe runs in seconds.", []string{"check", "kind"}, nil)
	descShutdown = prometheus.NewDesc("healthbridge_shutting_down",
		"1 once healthbridge received SIGTERM and readiness fails.", nil, nil)
	descChildUp = prometheus.NewDesc("healthbridge_child_up",
		"1 while the child of healthbridge run is running.", nil, nil)
	descCertExpiry = prometheus.NewDesc("healthbridge_check_tls_cert_expiry_timestamp_seconds",
		"Earliest expiry of the certificates the check's server presented over TLS, in seconds since the epoch (as blackbox_exporter's probe_ssl_earliest_cert_expiry).", []string{"check", "kind"}, nil)
	descChildRestarts = prometheus.NewDesc("healthbridge_child_restarts_total",
		"Restarts of the child of healthbridge run, by reason (exit, liveness, startup).", []string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTotal, descStatus, descUp, descDuration, descStreak, descTransitions, descDurations, descShutdown, descChildUp, descChildRestarts, descCertExpiry} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.store.Snapshot()
	for ck := range snap.Checks() {
		for o := probe.Outcome(0); o < probe.NumOutcomes; o++ {
			ch <- prometheus.MustNewConstMetric(descTotal, prometheus.CounterValue, float64(ck.State.Outcomes[o]), ck.Name, ck.Kind, o.String())
		}
		for _, st := range []state.Status{state.StatusStarting, state.StatusHealthy, state.StatusUnhealthy} {
			ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, b2f(ck.State.Status == st), ck.Name, ck.Kind, st.String())
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b2f(ck.State.Status == state.StatusHealthy), ck.Name, ck.Kind)
		if last, ok := ck.State.Last(); ok {
			ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, last.Duration().Seconds(), ck.Name, ck.Kind)
		}
		ch <- prometheus.MustNewConstMetric(descStreak, prometheus.GaugeValue, float64(ck.State.FailureStreak), ck.Name, ck.Kind)
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(ck.State.Transitions), ck.Name, ck.Kind)
		if t, ok := ck.State.CertExpiry(); ok {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(t.Unix()), ck.Name, ck.Kind)
		}
		h := &ck.State.Durations
		buckets := make(map[float64]uint64, len(state.DurationBuckets))
		var cum uint64
		for i, le := range state.DurationBuckets {
			cum += h.Buckets[i]
			buckets[le] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descDurations, h.Count, h.Sum, buckets, ck.Name, ck.Kind)
	}
	ch <- prometheus.MustNewConstMetric(descShutdown, prometheus.GaugeValue, b2f(snap.ShuttingDown))
	if c := snap.Child; c != nil {
		ch <- prometheus.MustNewConstMetric(descChildUp, prometheus.GaugeValue, b2f(c.Pid != 0))
		for _, reason := range state.RestartReasons {
			ch <- prometheus.MustNewConstMetric(descChildRestarts, prometheus.CounterValue, float64(c.Restarts[reason]), reason)
		}
	}
}
