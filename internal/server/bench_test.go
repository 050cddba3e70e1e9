package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/healthbridge/healthbridge/internal/probe"
)

// The serving path against a bare handler that answers "ok", in the same
// run. Compare: go test -bench . ./internal/server/
//
//	BenchmarkServeBareOK   the baseline
//	BenchmarkServeReadyz   /readyz, healthy (the load balancer's poll)
//	BenchmarkServeReadyzFailing   /readyz, one check failing (verbose body)

func benchHandler(b *testing.B, h http.Handler, target string) {
	req := httptest.NewRequest("GET", target, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func BenchmarkServeBareOK(b *testing.B) {
	benchHandler(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), "/readyz")
}

func BenchmarkServeReadyz(b *testing.B) {
	s := newStore()
	for _, n := range []string{"web", "db", "boot"} {
		record(s, n, probe.OutcomeSuccess, "")
	}
	benchHandler(b, New(s, Options{}), "/readyz")
}

func BenchmarkServeReadyzFailing(b *testing.B) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	record(s, "db", probe.OutcomeFailure, "")
	benchHandler(b, New(s, Options{}), "/readyz")
}
