package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// MetricsWriter writes metric families in the Prometheus text format
// (0.0.4), each family's series together.
type MetricsWriter interface {
	WriteMetrics(w io.Writer) error
}

// MetricsWriters writes each of ws in turn; nil entries are skipped.
type MetricsWriters []MetricsWriter

// WriteMetrics implements MetricsWriter.
func (ws MetricsWriters) WriteMetrics(w io.Writer) error {
	for _, mw := range ws {
		if mw != nil {
			if err := mw.WriteMetrics(w); err != nil {
				return err
			}
		}
	}
	return nil
}

// textFormat is the Prometheus text exposition format's content type.
const textFormat = "text/plain; version=0.0.4; charset=utf-8"

// metricsHandler serves /metrics in the Prometheus text format (0.0.4):
// the check families, written straight from the snapshot at scrape time
// (so the scheduler needs no metrics hooks), then what others writes (the
// Go and process collectors, notifications):
//
//	healthbridge_check_probe_total{check,kind,result}   counter of runs by outcome
//	healthbridge_check_status{check,kind,status}        1 for the current status
//	healthbridge_check_up{check,kind}                   1 when healthy, as blackbox's probe_success
//	healthbridge_check_last_duration_seconds{check,kind} duration of the last run
//	healthbridge_check_failing_streak{check,kind}        consecutive failures counted
//	healthbridge_check_tls_cert_expiry_timestamp_seconds{check,kind} earliest server certificate expiry (TLS checks)
//	healthbridge_check_transitions_total{check,kind}     status changes
//	healthbridge_check_duration_seconds{check,kind}      histogram of run durations
//	healthbridge_shutting_down                          1 after SIGTERM
//	healthbridge_child_up                               1 while `run`'s child runs (run mode only)
//	healthbridge_child_restarts_total{reason}           its restarts: exit, liveness, startup (run mode only)
//
// These are the same series that client_golang's metric types give (a
// test compares them with such a collector, collector_test.go), written
// without building a metric object per series: at 10,000 checks that is
// 250,000 series, which client_golang gathers in seconds and tens of MB of
// garbage, and this writes in a fraction of that with one buffer. It needs no Prometheus
// client, so the lean build links none.
type metricsHandler struct {
	store  *state.Store
	others MetricsWriter // must not write the check families
}

func (m *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rest bytes.Buffer
	if err := m.others.WriteMetrics(&rest); err != nil {
		http.Error(w, "gathering metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", textFormat)
	w.Header().Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		// What Prometheus asks for. BestSpeed: at 10,000 checks the text is
		// about 21 MB, and the default level costs several times the CPU
		// for a few per cent less.
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		defer gz.Close()
		out = gz
	}
	bw := bufio.NewWriterSize(out, 32<<10)
	writeCheckMetrics(bw, m.store.Snapshot())
	_, _ = bw.Write(rest.Bytes())
	_ = bw.Flush()
}

// acceptsGzip reports whether an Accept-Encoding header value accepts gzip:
// a "gzip" (or "*") element whose q is not 0 (RFC 9110, 12.5.3).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		if name, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(strings.TrimSpace(name), "q") {
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
				continue
			}
		}
		return true
	}
	return false
}

// metricsWriter appends exposition lines to a buffered writer.
type metricsWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (m *metricsWriter) family(name, help, typ string) {
	m.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

// series writes name{check="…",kind="…"[,extra="…"]} value.
func (m *metricsWriter) series(name string, c *state.Check, extraName, extraValue string, v float64) {
	b := append(m.buf[:0], name...)
	b = append(b, `{check="`...)
	b = appendEscaped(b, c.Name)
	b = append(b, `",kind="`...)
	b = appendEscaped(b, c.Kind)
	if extraName != "" {
		b = append(b, `",`...)
		b = append(b, extraName...)
		b = append(b, `="`...)
		b = appendEscaped(b, extraValue)
	}
	b = append(b, `"} `...)
	b = appendFloat(b, v)
	b = append(b, '\n')
	m.buf = b
	m.w.Write(b)
}

// appendEscaped escapes a label value as the text format wants: UTF-8
// (a byte that is not becomes U+FFFD, so that the text stays parseable),
// with backslash, double quote and newline escaped.
func appendEscaped(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if !strings.ContainsAny(s, "\\\"\n") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}

// appendFloat formats v as client_golang's text encoder does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(b, '1')
	case v == 0:
		return append(b, '0')
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// writeCheckMetrics writes Collector's check families for snap, family by
// family (the text format wants each family's series together), checks in
// config order.
func writeCheckMetrics(w *bufio.Writer, snap *state.Snapshot) {
	m := &metricsWriter{w: w, buf: make([]byte, 0, 256)}
	checks := snap.Checks()
	m.family("healthbridge_check_duration_seconds", "Duration of the check's probe runs in seconds.", "histogram")
	for c := range checks {
		h := &c.State.Durations
		var cum uint64
		for i, le := range state.DurationBuckets {
			cum += h.Buckets[i]
			m.series("healthbridge_check_duration_seconds_bucket", c, "le", strconv.FormatFloat(le, 'g', -1, 64), float64(cum))
		}
		m.series("healthbridge_check_duration_seconds_bucket", c, "le", "+Inf", float64(h.Count))
		m.series("healthbridge_check_duration_seconds_sum", c, "", "", h.Sum)
		m.series("healthbridge_check_duration_seconds_count", c, "", "", float64(h.Count))
	}
	m.family("healthbridge_check_failing_streak", "Consecutive failing results counted toward failureThreshold.", "gauge")
	for c := range checks {
		m.series("healthbridge_check_failing_streak", c, "", "", float64(c.State.FailureStreak))
	}
	m.family("healthbridge_check_last_duration_seconds", "Duration of the check's last probe run in seconds.", "gauge")
	for c := range checks {
		if last, ok := c.State.Last(); ok {
			m.series("healthbridge_check_last_duration_seconds", c, "", "", last.Duration().Seconds())
		}
	}
	m.family("healthbridge_check_probe_total", "Probe runs by outcome (success, failure, unknown, warning, starting).", "counter")
	for c := range checks {
		for o := probe.Outcome(0); o < probe.NumOutcomes; o++ {
			m.series("healthbridge_check_probe_total", c, "result", o.String(), float64(c.State.Outcomes[o]))
		}
	}
	m.family("healthbridge_check_status", "Current thresholded status of the check: 1 for the status it is in.", "gauge")
	for c := range checks {
		for _, st := range []state.Status{state.StatusStarting, state.StatusHealthy, state.StatusUnhealthy} {
			m.series("healthbridge_check_status", c, "status", st.String(), b2f(c.State.Status == st))
		}
	}
	tlsFamily := false
	for c := range checks {
		if t, ok := c.State.CertExpiry(); ok {
			if !tlsFamily {
				m.family("healthbridge_check_tls_cert_expiry_timestamp_seconds", "Earliest expiry of the certificates the check's server presented over TLS, in seconds since the epoch (as blackbox_exporter's probe_ssl_earliest_cert_expiry).", "gauge")
				tlsFamily = true
			}
			m.series("healthbridge_check_tls_cert_expiry_timestamp_seconds", c, "", "", float64(t.Unix()))
		}
	}
	m.family("healthbridge_check_transitions_total", "Status changes of the check (starting, healthy, unhealthy).", "counter")
	for c := range checks {
		m.series("healthbridge_check_transitions_total", c, "", "", float64(c.State.Transitions))
	}
	m.family("healthbridge_check_up", "1 when the check is healthy, else 0.", "gauge")
	for c := range checks {
		m.series("healthbridge_check_up", c, "", "", b2f(c.State.Status == state.StatusHealthy))
	}
	if ch := snap.Child; ch != nil {
		m.family("healthbridge_child_restarts_total", "Restarts of the child of healthbridge run, by reason (exit, liveness, startup).", "counter")
		for _, reason := range state.RestartReasons {
			w.WriteString(`healthbridge_child_restarts_total{reason="` + reason + `"} ` + strconv.FormatUint(ch.Restarts[reason], 10) + "\n")
		}
		m.family("healthbridge_child_up", "1 while the child of healthbridge run is running.", "gauge")
		w.WriteString("healthbridge_child_up " + string(appendFloat(nil, b2f(ch.Pid != 0))) + "\n")
	}
	m.family("healthbridge_shutting_down", "1 once healthbridge received SIGTERM and readiness fails.", "gauge")
	w.WriteString("healthbridge_shutting_down " + string(appendFloat(nil, b2f(snap.ShuttingDown))) + "\n")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
