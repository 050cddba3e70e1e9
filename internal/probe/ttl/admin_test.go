package ttl

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/server"
)

func TestAdminPushLimits(t *testing.T) {
	board := NewBoard([]string{"beat"})
	srv := httptest.NewUnstartedServer(nil)
	mux := http.NewServeMux()
	probe.PushKind{Patterns: AdminPatterns, Handler: NewAdmin(board, nil)}.Register(mux)
	srv.Config = server.NewHTTPServer(server.CanonicalPaths(mux), slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)
	post := func(path string, body io.Reader) int {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := post("/checks/beat/pass", strings.NewReader("beat-1")); code != 200 {
		t.Fatalf("small report: %d", code)
	}
	if p, _ := board.Last("beat"); p.Output != "beat-1" || p.Outcome != probe.OutcomeSuccess {
		t.Fatalf("recorded %+v", p)
	}
	// 100 MB (streamed, never held): refused whole, the last report stays.
	big := io.LimitReader(zeros{}, 100<<20)
	if code := post("/checks/beat/fail", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("100 MB report: %d, want 413", code)
	}
	if p, _ := board.Last("beat"); p.Output != "beat-1" {
		t.Fatalf("an oversized report was recorded: %q", p.Output[:min(20, len(p.Output))])
	}
	// Up to the limit: accepted, stored up to 4096 bytes.
	if code := post("/checks/beat/warn", strings.NewReader(strings.Repeat("w", MaxPushBody))); code != 200 {
		t.Fatalf("report at the limit: %d", code)
	}
	if p, _ := board.Last("beat"); len(p.Output) != 4096+len("...") {
		t.Fatalf("stored %d bytes", len(p.Output))
	}
	if code := post("/checks/other/pass", nil); code != 404 {
		t.Fatalf("unknown check: %d", code)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}
