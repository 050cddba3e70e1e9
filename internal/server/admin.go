package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"healthbridge/internal/probe"
)

// Pusher accepts reports for ttl checks (ttl.Board).
type Pusher interface {
	// Report records a report; false means name is not a ttl check.
	Report(name string, outcome probe.Outcome, output string) bool
}

// pushVerbs maps the last path element to a report's outcome, as Consul's
// /v1/agent/check/pass|warn|fail.
var pushVerbs = map[string]probe.Outcome{
	"pass": probe.OutcomeSuccess,
	"warn": probe.OutcomeWarning,
	"fail": probe.OutcomeFailure,
}

// MaxPushBody is the largest report body accepted, in bytes: 64 KiB. A
// larger one is answered 413 and not recorded; an accepted body is stored
// up to probe.MaxOutput (4096) bytes, as any probe output.
const MaxPushBody = 64 << 10

// Admin serves the push endpoints for ttl checks:
//
//	POST (or PUT) /checks/<name>/pass|warn|fail   body: optional output
//
// It must only ever be served on the admin address, never on the public
// one. It can report on existing ttl checks only: no check of any kind can
// be created or changed otherwise.
type Admin struct {
	pusher   Pusher
	onReport func(name string)
}

// NewAdmin returns the admin handler. onReport, when not nil, is called
// after each accepted report (to re-run the check at once).
func NewAdmin(p Pusher, onReport func(name string)) *Admin {
	return &Admin{pusher: p, onReport: onReport}
}

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/checks/")
	name, verb, ok2 := strings.Cut(rest, "/")
	outcome, ok3 := pushVerbs[verb]
	if !ok || !ok2 || !ok3 || name == "" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPushBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("report body over %d bytes", MaxPushBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !a.pusher.Report(name, outcome, string(body)) {
		http.Error(w, "no ttl check named "+name, http.StatusNotFound)
		return
	}
	if a.onReport != nil {
		a.onReport(name)
	}
	writeText(w, http.StatusOK, "ok\n")
}
