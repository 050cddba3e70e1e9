package compat

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
	"github.com/healthbridge/healthbridge/internal/state"
)

func TestExechealthzAnswers(t *testing.T) {
	e, err := ParseExechealthz([]string{"-cmd", "ls /tmp/test", "-latency", "30s"}, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Port != 8080 || e.Period != 2*time.Second || len(e.Pairs) != 1 || e.Pairs[0].URL != "/healthz" {
		t.Fatalf("defaults: %+v", e)
	}
	cfg := e.Config()
	if err := cfg.Validate(kinds.Rules); err != nil {
		t.Fatal(err)
	}
	if c := cfg.Checks[0]; c.Exec.Command[0] != "sh" || c.Exec.Command[2] != "ls /tmp/test" || c.PeriodSeconds != 2 ||
		c.TimeoutSeconds != 30 || c.FailureThreshold != 1 || cfg.Listen != ":8080" {
		t.Fatalf("config: %+v", c)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	store := state.NewStore([]state.Spec{{Name: e.Pairs[0].Check, Kind: "exec", Policy: state.Policy{FailureThreshold: 1}}}, t0)
	now := t0
	h := &exechealthzHandler{store: store, check: e.Pairs[0].Check, latency: e.Latency, now: func() time.Time { return now }}
	get := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		// Error answers come from http.Error, as exechealthz's did.
		if w.Code != 200 && (w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Content-Type") != "text/plain; charset=utf-8") {
			t.Fatalf("error answer headers: %v", w.Header())
		}
		return w.Code, w.Body.String()
	}

	if code, body := get(); code != 503 || !strings.HasPrefix(body, "Healthz probe error: no result yet") {
		t.Fatalf("before the first result: %d %q", code, body)
	}
	store.Record(e.Pairs[0].Check, probe.Result{Outcome: probe.OutcomeFailure, ExitCode: 2, Output: "ls: cannot access '/tmp/test'\n", End: t0}, t0)
	if code, body := get(); code != 503 || body != "Healthz probe error: Result of last exec: ls: cannot access '/tmp/test'\n, at 2026-01-01 00:00:00 +0000 UTC, error exit status 2\n" {
		t.Fatalf("failure: %d %q", code, body)
	}
	store.Record(e.Pairs[0].Check, probe.Result{Outcome: probe.OutcomeSuccess, End: t0.Add(time.Second)}, t0)
	if code, body := get(); code != 200 || body != "ok" {
		t.Fatalf("success: %d %q", code, body)
	}
	now = t0.Add(32 * time.Second) // last result 31s old, -latency 30s
	if code, body := get(); code != 503 || body != "Latest result too old to be useful: Result of last exec: , at 2026-01-01 00:00:01 +0000 UTC, error None.\n" {
		t.Fatalf("stale: %d %q", code, body)
	}
}

func TestExechealthzFlags(t *testing.T) {
	for args, want := range map[string]string{
		"-cmd x": "cmd", "--cmd=x": "cmd", "-port 8080 -period=1s -port 9": "port period", "-quiet": "quiet",
		"--config f": "", "serve --config f": "", "-- -cmd": "", "--config f -output": "output",
	} {
		if got := strings.Join(ExechealthzFlags(strings.Fields(args)), " "); got != want {
			t.Errorf("%q: %q, want %q", args, got, want)
		}
	}
}

func TestExechealthzSubSecondPeriod(t *testing.T) {
	e, err := ParseExechealthz([]string{"-cmd", "true", "-period", "250ms", "-latency", "500ms"}, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config().Checks[0]
	if c.Period() != 250*time.Millisecond || c.Timeout() != 500*time.Millisecond {
		t.Fatalf("period %v timeout %v", c.Period(), c.Timeout())
	}
	if _, err := ParseExechealthz([]string{"-cmd", "true", "-period", "0s"}, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "-period: must be > 0") {
		t.Fatalf("zero period: %v", err)
	}
}

// TestExechealthzWrap: the mode is middleware: its paths answer as
// exechealthz, read-only; every other path reaches healthbridge's own
// handler.
func TestExechealthzWrap(t *testing.T) {
	e, err := ParseExechealthz([]string{"-url=/a", "-cmd=true"}, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := state.NewStore([]state.Spec{{Name: e.Pairs[0].Check, Kind: "exec", Policy: state.Policy{FailureThreshold: 1}}}, time.Now())
	store.Record(e.Pairs[0].Check, probe.Result{Outcome: probe.OutcomeSuccess, End: time.Now()}, time.Now())
	core := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := e.Wrap(core, store)
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/a", 200}, {"HEAD", "/a", 200}, {"POST", "/a", 405}, {"GET", "/readyz", http.StatusTeapot}, {"GET", "/a/", http.StatusTeapot},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.code {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.code)
		}
	}
}
