package server

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newStore() *state.Store {
	one := state.Policy{FailureThreshold: 1}
	return state.NewStore([]state.Spec{
		{Name: "web", Kind: "httpGet", Roles: []config.Role{config.RoleLiveness, config.RoleReadiness}, Policy: one},
		{Name: "db", Kind: "exec", ExitCodes: true, Roles: []config.Role{config.RoleReadiness}, Policy: one},
		{Name: "boot", Kind: "tcpSocket", Roles: []config.Role{config.RoleStartup}, Policy: one},
	}, t0)
}

func record(s *state.Store, name string, o probe.Outcome, output string) {
	s.Record(name, probe.Result{Outcome: o, Output: output, Start: t0, End: t0.Add(20 * time.Millisecond), ExitCode: 3}, t0)
}

type resp struct {
	code int
	body string
	hdr  http.Header
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) resp {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	return resp{w.Code, string(b), w.Result().Header}
}

func TestEndpoints(t *testing.T) {
	s := newStore()
	h := New(s, Options{})

	// Everything starting: livez passes, the rest fail verbosely.
	if r := get(t, h, "GET", "/livez"); r.code != 200 || r.body != "ok" {
		t.Fatalf("livez while starting: %d %q", r.code, r.body)
	}
	r := get(t, h, "GET", "/readyz")
	want := "[-]web failed: reason withheld\n[-]db failed: reason withheld\nreadyz check failed\n"
	if r.code != 503 || r.body != want {
		t.Fatalf("readyz while starting: %d %q", r.code, r.body)
	}

	record(s, "web", probe.OutcomeSuccess, "")
	record(s, "db", probe.OutcomeFailure, "connection refused\nsecret")
	record(s, "boot", probe.OutcomeSuccess, "")
	tests := []struct {
		target string
		code   int
		body   string
	}{
		{"/livez", 200, "ok"},
		{"/livez?verbose", 200, "[+]web ok\nlivez check passed\n"},
		{"/startupz", 200, "ok"},
		{"/readyz", 503, "[+]web ok\n[-]db failed: reason withheld\nreadyz check failed\n"},
		{"/readyz?exclude=db", 200, "ok"},
		{"/readyz?exclude=db&verbose=1", 200, "[+]web ok\n[+]db excluded: ok\nreadyz check passed\n"},
		{"/readyz?exclude=db&exclude=web", 200, "ok"},
		// kube-apiserver: excluding names that match nothing warns (sorted,
		// quoted), only in verbose output, and changes no status.
		{"/readyz?exclude=zz&exclude=db&exclude=aa", 200, "ok"},
		{"/readyz?exclude=zz&exclude=db&exclude=aa&verbose", 200, "[+]web ok\n[+]db excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"aa\",\"zz\"\nreadyz check passed\n"},
		{"/readyz?exclude=boot", 503, "[+]web ok\n[-]db failed: reason withheld\nwarn: some health checks cannot be excluded: no matches for \"boot\"\nreadyz check failed\n"},
		{"/healthz", 503, "[+]web ok\n[-]db failed: reason withheld\n[+]boot ok\nhealthz check failed\n"},
		{"/readyz/web", 200, "ok"},
		{"/readyz/db", 503, "[-]db failed: reason withheld\nreadyz/db check failed\n"},
		{"/livez/web?verbose", 200, "[+]web ok\nlivez/web check passed\n"},
		{"/healthz/boot", 200, "ok"},
		{"/livez/db", 404, "404 page not found\n"},    // db is not a liveness check
		{"/readyz/nope", 404, "404 page not found\n"}, // no such check
		{"/nope", 404, "404 page not found\n"},
		{"//readyz", 404, "404 page not found\n"}, // never a redirect
		{"/readyz/", 404, "404 page not found\n"},
		{"/readyz/../livez", 404, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := get(t, h, "GET", tt.target)
			if r.code != tt.code || r.body != tt.body {
				t.Fatalf("%d %q, want %d %q", r.code, r.body, tt.code, tt.body)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	h := New(s, Options{})
	for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
		if r := get(t, h, m, "/livez"); r.code != 200 {
			t.Errorf("%s /livez: %d", m, r.code)
		}
		if r := get(t, h, m, "/readyz"); r.code != 503 {
			t.Errorf("%s /readyz: %d", m, r.code)
		}
	}
	if r := get(t, h, "POST", "/livez"); r.code != 405 || r.hdr.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("POST: %d allow %q", r.code, r.hdr.Get("Allow"))
	}
}

func TestExposeOutputAndFailureCode(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	record(s, "db", probe.OutcomeFailure, "connection refused\nsecret")
	h := New(s, Options{ExposeOutput: true, FailureStatusCode: 500})
	r := get(t, h, "GET", "/readyz")
	if r.code != 500 || !strings.Contains(r.body, "[-]db failed: unhealthy: connection refused secret\n") {
		t.Fatalf("%d %q", r.code, r.body)
	}
	// A single check's path answers as kube-apiserver's single-check
	// handler: the check's error alone, no state before it.
	if r := get(t, h, "GET", "/readyz/db"); r.code != 500 || r.body != "internal server error: connection refused secret\n" {
		t.Fatalf("/readyz/db: %d %q", r.code, r.body)
	}
	if r := get(t, h, "GET", "/healthz/web"); r.code != 200 || r.body != "ok" {
		t.Fatalf("/healthz/web: %d %q", r.code, r.body)
	}
	record(s, "db", probe.OutcomeFailure, "")
	if r := get(t, h, "GET", "/readyz/db"); r.body != "internal server error: failure\n" {
		t.Fatalf("/readyz/db without output: %d %q", r.code, r.body)
	}
}

// TestEveryAnswerIsNosniff: kube-apiserver sets X-Content-Type-Options:
// nosniff on every answer, the plain passing poll included.
func TestEveryAnswerIsNosniff(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	record(s, "db", probe.OutcomeSuccess, "")
	record(s, "boot", probe.OutcomeSuccess, "")
	h := New(s, Options{})
	for _, target := range []string{"/healthz", "/livez", "/readyz", "/startupz", "/readyz/web", "/healthz?verbose", "/nope"} {
		if r := get(t, h, "GET", target); r.hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d without X-Content-Type-Options: nosniff", target, r.code)
		}
	}
}

func TestShutdownFailsReadinessOnly(t *testing.T) {
	s := newStore()
	for _, n := range []string{"web", "db", "boot"} {
		record(s, n, probe.OutcomeSuccess, "")
	}
	h := New(s, Options{})
	if r := get(t, h, "GET", "/readyz"); r.code != 200 {
		t.Fatalf("before: %d", r.code)
	}
	s.SetShuttingDown()
	r := get(t, h, "GET", "/readyz")
	if r.code != 503 || r.body != "[+]web ok\n[+]db ok\n[-]shutdown failed: shutting down\nreadyz check failed\n" {
		t.Fatalf("readyz during shutdown: %d %q", r.code, r.body)
	}
	if r := get(t, h, "GET", "/readyz/web"); r.code != 503 {
		t.Fatalf("readyz/web during shutdown: %d", r.code)
	}
	if r := get(t, h, "GET", "/livez"); r.code != 200 {
		t.Fatalf("livez during shutdown: %d", r.code)
	}
}

func TestJSON(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	s.Record("db", probe.Result{Outcome: probe.OutcomeSuccess, Start: t0, End: t0.Add(time.Second), ExitCode: 0}, t0)
	s.Record("db", probe.Result{Outcome: probe.OutcomeFailure, Output: "oops", Start: t0, End: t0.Add(time.Second), ExitCode: 3}, t0)
	h := New(s, Options{})
	for _, r := range []resp{
		get(t, h, "GET", "/readyz", "Accept", "application/health+json"),
		get(t, h, "GET", "/readyz?format=json"),
	} {
		if r.code != 503 || r.hdr.Get("Content-Type") != "application/health+json" {
			t.Fatalf("%d %q", r.code, r.hdr.Get("Content-Type"))
		}
		var doc struct {
			Status string
			Checks map[string][]struct {
				ComponentType string
				Status        string
				State         string
				Time          string
				ObservedValue float64
				ObservedUnit  string
				FailingStreak int
				Output        string
				Results       []struct {
					Outcome  string
					ExitCode *int
					Output   string
				}
			}
		}
		if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
			t.Fatal(err)
		}
		db := doc.Checks["db"][0]
		if doc.Status != "fail" || db.Status != "fail" || db.State != "unhealthy" || db.ComponentType != "exec" ||
			db.FailingStreak != 1 || db.ObservedValue != 1 || db.ObservedUnit != "s" || db.Time != "2026-01-01T00:00:01Z" ||
			len(db.Results) != 2 || db.Results[1].Outcome != "failure" || *db.Results[1].ExitCode != 3 ||
			db.Output != "" || db.Results[1].Output != "" {
			t.Fatalf("db: %+v (status %q)", db, doc.Status)
		}
		if web := doc.Checks["web"][0]; web.Status != "pass" || web.Results[0].ExitCode != nil {
			t.Fatalf("web: %+v", web)
		}
	}
	// A passing endpoint whose check failed once (below threshold) is "warn".
	s2 := state.NewStore([]state.Spec{{Name: "a", Kind: "tcpSocket", Roles: []config.Role{config.RoleReadiness}, Policy: state.Policy{FailureThreshold: 3}}}, t0)
	record(s2, "a", probe.OutcomeSuccess, "")
	record(s2, "a", probe.OutcomeFailure, "")
	r := get(t, New(s2, Options{}), "GET", "/readyz?format=json")
	if r.code != 200 || !strings.Contains(r.body, `"status": "warn"`) {
		t.Fatalf("warn: %d %s", r.code, r.body)
	}
}

// TestHAProxyDefaultCheck sends HAProxy's bare default health check, an
// OPTIONS / HTTP/1.0 with no Host header, over a real connection.
func TestHAProxyDefaultCheck(t *testing.T) {
	s := newStore()
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = NewHTTPServer(New(s, Options{}), slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)
	send := func(reqLine string, headers ...string) string {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, reqLine+"\r\n"+strings.Join(append(headers, ""), "\r\n")+"\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(line)
	}
	if got := send("OPTIONS / HTTP/1.0"); got != "HTTP/1.0 503 Service Unavailable" {
		t.Fatalf("starting: %q", got)
	}
	// HAProxy's classic "option httpchk OPTIONS * HTTP/1.1\r\nHost:\ www":
	// net/http would answer it 200 by itself.
	if got := send("OPTIONS * HTTP/1.1", "Host: www"); got != "HTTP/1.1 503 Service Unavailable" {
		t.Fatalf("starting, OPTIONS *: %q", got)
	}
	for _, n := range []string{"web", "db"} {
		record(s, n, probe.OutcomeSuccess, "")
	}
	if got := send("OPTIONS * HTTP/1.1", "Host: www"); got != "HTTP/1.1 503 Service Unavailable" {
		t.Fatalf("one check still starting, OPTIONS *: %q", got)
	}
	for _, n := range []string{"web", "db", "boot"} {
		record(s, n, probe.OutcomeSuccess, "")
	}
	if got := send("OPTIONS / HTTP/1.0"); got != "HTTP/1.0 200 OK" {
		t.Fatalf("healthy: %q", got)
	}
	if got := send("OPTIONS /readyz HTTP/1.0"); got != "HTTP/1.0 200 OK" {
		t.Fatalf("healthy /readyz: %q", got)
	}
	if got := send("OPTIONS * HTTP/1.1", "Host: www"); got != "HTTP/1.1 200 OK" {
		t.Fatalf("healthy, OPTIONS *: %q", got)
	}
	record(s, "db", probe.OutcomeFailure, "down")
	record(s, "db", probe.OutcomeFailure, "down")
	record(s, "db", probe.OutcomeFailure, "down")
	for _, req := range []string{"OPTIONS * HTTP/1.1", "GET * HTTP/1.1", "HEAD * HTTP/1.1"} {
		if got := send(req, "Host: www"); got != "HTTP/1.1 503 Service Unavailable" {
			t.Fatalf("unhealthy, %s: %q", req, got)
		}
	}
}

func TestCanonical(t *testing.T) {
	for p, want := range map[string]bool{"/": true, "/checks/": true, "/checks/a/pass": true, "": false, "*": false, "//": false,
		"///": false, "/a//b": false, "/./a": false, "/a/..": false, "/a/../b": false, "/a/.../b": true, "//checks/a": false} {
		if got := Canonical(p); got != want {
			t.Errorf("Canonical(%q) = %v, want %v", p, got, want)
		}
	}
}
