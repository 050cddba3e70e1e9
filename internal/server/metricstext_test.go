package server

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// exposition parses text-format metrics and re-encodes them family by
// family, lines sorted, so that two expositions of the same series compare
// equal whatever their order.
func exposition(t *testing.T, text string) map[string][]string {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("not valid text format: %v\n%s", err, text)
	}
	out := map[string][]string{}
	for name, mf := range mfs {
		var b bytes.Buffer
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		slices.Sort(lines)
		out[name] = lines
	}
	return out
}

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

// TestMetricsEndpointIsOneValidExposition: /metrics with other collectors
// is one valid exposition (no family twice) with both parts.
func TestMetricsEndpointIsOneValidExposition(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "healthbridge_notifications_total", Help: "x"})
	c.Add(3)
	reg.MustRegister(c)
	r := get(t, New(s, Options{Gatherer: reg}), "GET", "/metrics")
	if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("%d %q", r.code, r.hdr.Get("Content-Type"))
	}
	fams := exposition(t, r.body)
	if _, ok := fams["healthbridge_notifications_total"]; !ok {
		t.Error("the gathered counter is missing")
	}
	if _, ok := fams["healthbridge_check_up"]; !ok {
		t.Error("the check metrics are missing")
	}
	// The endpoint's own text passes client_golang's linter.
	problems, err := promlint.New(strings.NewReader(r.body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
