package server

import (
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/probe"
)

// TestMetricsGzip: /metrics answers gzip when the scraper asks for it (as
// Prometheus does), with the same text, and plain text otherwise.
func TestMetricsGzip(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	h := New(s, Options{Metrics: MetricsWriters{}})
	plain := get(t, h, "GET", "/metrics")
	if plain.hdr.Get("Content-Encoding") != "" || !strings.Contains(plain.body, "healthbridge_check_up") {
		t.Fatalf("plain: %v %q", plain.hdr, plain.body)
	}
	for hdr, want := range map[string]bool{
		"gzip": true, "gzip, deflate, br": true, "deflate;q=1, GZIP;q=0.5": true, "*": true,
		"gzip;q=0": false, "gzip; q=0.0": false, "identity": false, "deflate": false, "": false,
	} {
		r := get(t, h, "GET", "/metrics", "Accept-Encoding", hdr)
		if got := r.hdr.Get("Content-Encoding") == "gzip"; got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", hdr, got, want)
			continue
		}
		if !strings.Contains(r.hdr.Get("Vary"), "Accept-Encoding") {
			t.Errorf("Accept-Encoding %q: no Vary", hdr)
		}
		if !want {
			continue
		}
		zr, err := gzip.NewReader(strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil || string(b) != plain.body {
			t.Errorf("Accept-Encoding %q: decompressed text differs (%v)", hdr, err)
		}
	}
}
