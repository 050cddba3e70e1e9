package server

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// FuzzServeHTTP sends the public handler any method, request target
// (path, query: ?exclude, ?verbose, ?format, "*", absolute URLs) and
// Accept header, as net/http would parse them off the wire, while every
// check fails. The answer is never a redirect, and never a 2xx except
// from /metrics and /events, or from a verdict whose failing checks were
// all excluded by name (kube-apiserver's ?exclude).
func FuzzServeHTTP(f *testing.F) {
	for _, target := range []string{"/", "*", "/healthz", "/livez", "/readyz", "/startupz", "/readyz/db", "/livez/web",
		"/readyz?verbose", "/healthz?exclude=web&exclude=db", "/healthz?format=json", "/readyz?exclude=db&verbose",
		"//readyz", "/readyz/", "/x/../readyz", "http://x/readyz", "http://x", "/metrics", "/events", "/%2e%2e/readyz",
		"/readyz/db?exclude=db", "/livez/web?exclude=web", "/?exclude=web&exclude=db&exclude=boot", "/startupz?exclude=boot", "/readyz?exclude=web&exclude=db"} {
		for _, method := range []string{"GET", "HEAD", "OPTIONS", "POST"} {
			f.Add(method, target, "*/*", false)
		}
	}
	f.Add("GET", "/", "text/html", true)
	f.Add("GET", "/readyz", "application/health+json", true)
	f.Fuzz(func(t *testing.T, method, target, accept string, shuttingDown bool) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: x\r\nAccept: " + accept + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http refuses it before any handler
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // an /events stream ends at once
		req = req.WithContext(ctx)
		s := newStore()
		for _, c := range []string{"web", "db", "boot"} {
			record(s, c, probe.OutcomeFailure, "down")
		}
		if shuttingDown {
			s.SetShuttingDown()
		}
		h := New(s, Options{ExposeOutput: true})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		code := w.Code
		if code >= 300 && code < 400 || w.Header().Get("Location") != "" {
			t.Fatalf("%q: %d Location %q: a redirect", raw, code, w.Header().Get("Location"))
		}
		if code < 200 || code >= 300 {
			return
		}
		switch req.URL.Path {
		case "/metrics", "/events":
			return
		}
		if !allFailingExcluded(req.URL) {
			t.Fatalf("%q: %d while every check fails:\n%s", raw, code, w.Body.String())
		}
	})
}

// allFailingExcluded reports whether u's ?exclude names every check its
// endpoint covers in newStore (web: liveness and readiness; db:
// readiness; boot: startup), so that a passing answer is the apiserver's
// rule and not a lie.
func allFailingExcluded(u *url.URL) bool {
	ex := map[string]bool{}
	for _, n := range u.Query()["exclude"] {
		ex[n] = true
	}
	switch scope, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/"); scope {
	case "livez":
		return ex["web"]
	case "readyz":
		return ex["web"] && ex["db"]
	case "startupz":
		return ex["boot"]
	default:
		return ex["web"] && ex["db"] && ex["boot"]
	}
}

// FuzzAgentLine: whatever a check outputs, the HAProxy agent's answer is
// one line: exactly one '\n', at its end, and no '\r' or NUL (HAProxy ends
// the answer at the first of them).
func FuzzAgentLine(f *testing.F) {
	f.Add("connection refused", uint8(1), true, 50, false)
	f.Add("a\r\nb\x00c", uint8(1), true, 0, false)
	f.Add(strings.Repeat("é", 150), uint8(1), true, 0, false)
	f.Add("", uint8(0), false, 10, true)
	f.Fuzz(func(t *testing.T, output string, outcome uint8, expose bool, warnWeight int, shuttingDown bool) {
		s := newStore()
		o := []probe.Outcome{probe.OutcomeSuccess, probe.OutcomeFailure, probe.OutcomeWarning, probe.OutcomeUnknown}[outcome%4]
		for _, c := range []string{"web", "db", "boot"} {
			record(s, c, o, output)
		}
		if shuttingDown {
			s.SetShuttingDown()
		}
		line := AgentLine(s.Snapshot(), state.ScopeReadiness, expose, warnWeight%101)
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || strings.ContainsAny(line, "\r\x00") {
			t.Fatalf("agent line %q", line)
		}
	})
}
