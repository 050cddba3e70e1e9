package server

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/healthbridge/healthbridge/internal/probe"
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

// counterText is a MetricsWriter of fixed text.
type counterText string

func (c counterText) WriteMetrics(w io.Writer) error {
	_, err := io.WriteString(w, string(c))
	return err
}

// TestMetricsEndpointIsOneValidExposition: /metrics with other collectors
// is one valid exposition (no family twice) with both parts.
func TestMetricsEndpointIsOneValidExposition(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	other := counterText("# HELP healthbridge_notifications_total Notifications.\n# TYPE healthbridge_notifications_total counter\nhealthbridge_notifications_total{result=\"sent\"} 3\n")
	r := get(t, New(s, Options{Metrics: MetricsWriters{nil, other}}), "GET", "/metrics")
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
