// Package server serves check results over HTTP from the state store's
// in-memory snapshot; no request ever runs a probe.
//
// Endpoints (GET, HEAD and OPTIONS answer alike; other methods 405):
//
//	/livez /readyz /startupz   checks of that role; 200 or the failure code
//	/healthz                   every check
//	/<endpoint>/<check>        one check
//	/metrics                   Prometheus metrics
//	/events                    Server-Sent Events: one per check state change
//	/                          every check, verbosely, for people
//
// Bodies follow kube-apiserver's conventions: "ok"; ?verbose lists
// "[+]name ok" / "[-]name failed: reason withheld"; a failure always answers
// verbosely; ?exclude=name (repeatable) leaves a check out. JSON in the shape
// of the IETF draft "Health Check Response Format for HTTP APIs" is served
// for Accept: application/health+json or ?format=json. Unknown paths are 404,
// never a redirect.
package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/healthbridge/healthbridge/internal/state"
)

// Options configure a Handler. The zero value serves with status 503 on
// failure and withholds probe output.
type Options struct {
	// FailureStatusCode is the status of a failing endpoint; default 503.
	FailureStatusCode int
	// ExposeOutput puts probe output in bodies instead of "reason withheld".
	ExposeOutput bool
	// Metrics, when set, makes /metrics serve the store's check metrics
	// (written from the snapshot) followed by what it writes (the Go and
	// process metrics, notifications). It must not write the check
	// families again.
	Metrics MetricsWriter
}

// Server timeouts: a slow client cannot hold a server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
)

// NewHTTPServer returns the http.Server every healthbridge listener uses:
// bounded header, read, write and idle times, errors logged at warn, and
// Go's built-in "OPTIONS *" answer turned off. net/http answers
// "OPTIONS * HTTP/1.1" itself with 200 unless DisableGeneralOptionsHandler
// is set, and that is HAProxy's classic health check (option httpchk
// OPTIONS *): it must reach h and get the verdict, never a blanket 200.
// The caller serves and shuts it down.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:                      h,
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            readHeaderTimeout,
		ReadTimeout:                  readTimeout,
		WriteTimeout:                 writeTimeout,
		IdleTimeout:                  idleTimeout,
		ErrorLog:                     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Handler serves a store's snapshots. It is safe for concurrent use.
type Handler struct {
	store   *state.Store
	opts    Options
	metrics http.Handler
	events  *events
}

// CloseStreams ends every /events stream. Register it with the server's
// RegisterOnShutdown: http.Server.Shutdown waits for active connections,
// and a stream is one until it ends.
func (h *Handler) CloseStreams() { h.events.close() }

// New returns a Handler for store.
func New(store *state.Store, opts Options) *Handler {
	if opts.FailureStatusCode == 0 {
		opts.FailureStatusCode = http.StatusServiceUnavailable
	}
	h := &Handler{store: store, opts: opts, events: &events{store: store, expose: opts.ExposeOutput, writeTimeout: eventWriteTimeout, done: make(chan struct{})}}
	if opts.Metrics != nil {
		h.metrics = &metricsHandler{store: store, others: opts.Metrics}
	}
	return h
}

var scopes = map[string]state.Scope{
	"/healthz":  state.ScopeAll,
	"/livez":    state.ScopeLiveness,
	"/readyz":   state.ScopeReadiness,
	"/startupz": state.ScopeStartup,
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !readOnly(w, r) {
		return
	}
	path := r.URL.Path
	if path == "*" || path == "" {
		// "OPTIONS * HTTP/1.1" (HAProxy's classic httpchk) asks about the
		// server as a whole: the same verdict as "/", every check. So does
		// an absolute URL without a path ("GET http://host HTTP/1.1"),
		// whose path is "/" (RFC 9110, 4.2.3).
		path = "/"
	}
	if sc, ok := scopes[path]; ok {
		snap := h.store.Snapshot()
		// Fast path: the common load-balancer poll, answered from the
		// verdict precomputed when the snapshot was published.
		if r.URL.RawQuery == "" && snap.Plain(sc) && !wantsJSON(r) {
			writeOK(w)
			return
		}
		h.serveScope(w, r, snap, sc, "")
		return
	}
	switch path {
	case "/events":
		h.events.ServeHTTP(w, r)
		return
	case "/metrics":
		if h.metrics != nil {
			h.metrics.ServeHTTP(w, r)
			return
		}
	case "/":
		if hasPage && r.URL.Path != "*" && r.Method != http.MethodOptions && wantsHTML(r) {
			snap := h.store.Snapshot()
			code := http.StatusOK
			if !snap.Plain(state.ScopeAll) {
				code = h.opts.FailureStatusCode
			}
			h.servePage(w, r, snap, code)
			return
		}
		q := r.URL.Query()
		q.Set("verbose", "")
		r2 := *r
		r2.URL = &url.URL{Path: "/healthz", RawQuery: q.Encode()}
		h.serveScope(w, &r2, h.store.Snapshot(), state.ScopeAll, "")
		return
	}
	if i := strings.IndexByte(path[1:], '/'); path[0] == '/' && i > 0 {
		if sc, ok := scopes[path[:i+1]]; ok {
			name := path[i+2:]
			snap := h.store.Snapshot()
			if c, ok := snap.Get(name); ok && sc.Covers(&c.Spec) {
				h.serveScope(w, r, snap, sc, name)
				return
			}
		}
	}
	http.NotFound(w, r)
}

// serveScope answers one endpoint, or one check of it when only is set.
func (h *Handler) serveScope(w http.ResponseWriter, r *http.Request, snap *state.Snapshot, sc state.Scope, only string) {
	q := r.URL.Query()
	var exclude map[string]bool
	if ex := q["exclude"]; len(ex) > 0 {
		exclude = make(map[string]bool, len(ex))
		for _, n := range ex {
			exclude[n] = true
		}
	}
	v := snap.Evaluate(sc, exclude)
	if only != "" {
		v = single(v, only)
	}
	code := http.StatusOK
	if !v.OK {
		code = h.opts.FailureStatusCode
	}
	if wantsJSON(r) {
		h.writeJSON(w, code, sc, v, snap.Child)
		return
	}
	if only != "" && !v.OK && h.opts.ExposeOutput && len(v.Entries) == 1 && !v.ShuttingDown {
		// kube-apiserver's single-check handler: the check's error alone.
		writeText(w, code, "internal server error: "+h.errorText(v.Entries[0].Check)+"\n")
		return
	}
	_, verbose := q["verbose"]
	if v.OK && !verbose {
		writeText(w, code, "ok")
		return
	}
	writeText(w, code, h.verboseText(sc, v, only, unmatched(exclude, v), snap.Child))
}

// unmatched returns the sorted names in exclude that match no check of v,
// for kube-apiserver's "warn: some health checks cannot be excluded" line.
func unmatched(exclude map[string]bool, v state.Verdict) []string {
	if len(exclude) == 0 {
		return nil
	}
	var out []string
	for n := range exclude {
		if !slices.ContainsFunc(v.Entries, func(e state.Entry) bool { return e.Check.Name == n }) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// readOnly answers 405 to any method but GET, HEAD and OPTIONS and
// reports whether the request may go on.
func readOnly(w http.ResponseWriter, r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	w.Header().Set("Allow", "GET, HEAD, OPTIONS")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// ReadOnly wraps h so that only GET, HEAD and OPTIONS reach it; other
// methods get 405, as on the built-in endpoints. The drop-in modes' own
// handlers go through it.
func ReadOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readOnly(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

// single narrows a verdict to one check; shutdown still fails readiness.
func single(v state.Verdict, name string) state.Verdict {
	out := state.Verdict{OK: !v.ShuttingDown, ShuttingDown: v.ShuttingDown}
	for _, e := range v.Entries {
		if e.Check.Name == name {
			e.Excluded = false
			out.Entries = []state.Entry{e}
			out.OK = out.OK && e.OK
		}
	}
	return out
}

// verboseText renders kube-apiserver's verbose format.
func (h *Handler) verboseText(sc state.Scope, v state.Verdict, only string, unmatched []string, child *state.ChildState) string {
	var b strings.Builder
	for _, e := range v.Entries {
		switch {
		case e.Excluded:
			b.WriteString("[+]" + e.Check.Name + " excluded: ok\n")
		case e.OK:
			b.WriteString("[+]" + e.Check.Name + " ok\n")
		default:
			b.WriteString("[-]" + e.Check.Name + " failed: " + h.reason(e.Check) + "\n")
		}
	}
	if v.ShuttingDown {
		b.WriteString("[-]shutdown failed: shutting down\n")
	}
	if c := child; c != nil && only == "" {
		up := "not running"
		if c.Pid != 0 {
			up = "pid " + strconv.Itoa(c.Pid)
		}
		var total uint64
		var each []string
		for _, reason := range state.RestartReasons {
			total += c.Restarts[reason]
			each = append(each, strconv.FormatUint(c.Restarts[reason], 10)+" on "+reason)
		}
		b.WriteString(fmt.Sprintf("child: %s, restarts %d (%s), next restart after %v\n",
			up, total, strings.Join(each, ", "), c.Backoff))
	}
	if len(unmatched) > 0 {
		quoted := make([]string, len(unmatched))
		for i, n := range unmatched {
			quoted[i] = strconv.Quote(n)
		}
		b.WriteString("warn: some health checks cannot be excluded: no matches for " + strings.Join(quoted, ",") + "\n")
	}
	name := sc.String()
	if only != "" {
		name += "/" + only
	}
	if v.OK {
		b.WriteString(name + " check passed\n")
	} else {
		b.WriteString(name + " check failed\n")
	}
	return b.String()
}

// reason is why a check fails, or "reason withheld" unless ExposeOutput.
func (h *Handler) reason(c *state.Check) string {
	if !h.opts.ExposeOutput {
		return "reason withheld"
	}
	last, ok := c.State.Last()
	if !ok {
		return c.State.Status.String() + ": no result yet"
	}
	out := oneLine(last.Output)
	if out == "" {
		out = last.Outcome.String()
	}
	return c.State.Status.String() + ": " + out
}

// errorText is a failing check's error as kube-apiserver's single-check
// handler prints it after "internal server error: ": the last output on
// one line (or the outcome when there is none), without the state that
// the verbose list puts before it.
func (h *Handler) errorText(c *state.Check) string {
	last, ok := c.State.Last()
	if !ok {
		return "no result yet"
	}
	if out := oneLine(last.Output); out != "" {
		return out
	}
	return last.Outcome.String()
}

// oneLine is s trimmed, with line breaks and other control characters
// (NUL among them) turned into spaces: a reason must stay on its line
// (kube-apiserver's verbose list, HAProxy's agent line, which ends at the
// first '\r', '\n' or NUL).
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
}

func wantsJSON(r *http.Request) bool {
	if r.URL.RawQuery != "" && r.URL.Query().Get("format") == "json" {
		return true
	}
	a := r.Header.Get("Accept")
	return a != "" && (strings.Contains(a, "application/health+json") || strings.Contains(a, "application/json"))
}

var (
	textType = []string{"text/plain; charset=utf-8"}
	nosniff  = []string{"nosniff"}
	noStore  = []string{"no-store"}
)

// writeOK answers the plain passing poll: "ok", text/plain, no-store (a
// cache between a load balancer and healthbridge must never replay a
// verdict) and X-Content-Type-Options: nosniff, which kube-apiserver sets
// on every answer. It sets three headers beyond what net/http writes by
// itself; every header a handler sets moves net/http off its fast path
// (sorting and writing a header map), which is the serving path's main
// cost against a bare handler (bench/readyz measures it).
func writeOK(w http.ResponseWriter) {
	hd := w.Header()
	hd["Content-Type"] = textType
	hd["X-Content-Type-Options"] = nosniff
	hd["Cache-Control"] = noStore
	_, _ = io.WriteString(w, "ok")
}

func writeText(w http.ResponseWriter, code int, body string) {
	hd := w.Header()
	hd["Content-Type"] = textType
	hd["X-Content-Type-Options"] = nosniff
	hd["Cache-Control"] = noStore
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
