package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// healthJSON is the IETF draft "Health Check Response Format for HTTP APIs"
// (draft-inadarei-api-health-check): status pass/fail/warn and checks keyed
// by name, each an array of one object.
type healthJSON struct {
	Status      string                     `json:"status"`
	Description string                     `json:"description,omitempty"`
	Notes       []string                   `json:"notes,omitempty"`
	Checks      map[string][]checkJSONItem `json:"checks"`
	// Child is `healthbridge run`'s child (an extension).
	Child *childJSON `json:"child,omitempty"`
}

type childJSON struct {
	Pid            int               `json:"pid"`
	Up             bool              `json:"up"`
	Started        time.Time         `json:"started"`
	Restarts       map[string]uint64 `json:"restarts"`
	LastExitCode   *int              `json:"lastExitCode,omitempty"`
	BackoffSeconds float64           `json:"backoffSeconds"`
}

func childDoc(c *state.ChildState) *childJSON {
	if c == nil {
		return nil
	}
	d := &childJSON{Pid: c.Pid, Up: c.Pid != 0, Started: c.Started.UTC(), Restarts: c.Restarts, BackoffSeconds: c.Backoff.Seconds()}
	if d.Restarts == nil {
		d.Restarts = map[string]uint64{}
	}
	if c.LastExitCode >= 0 {
		ec := c.LastExitCode
		d.LastExitCode = &ec
	}
	return d
}

type checkJSONItem struct {
	ComponentType string  `json:"componentType"`
	Status        string  `json:"status"`
	Time          string  `json:"time,omitempty"`
	ObservedValue float64 `json:"observedValue"`
	ObservedUnit  string  `json:"observedUnit"`
	Output        string  `json:"output,omitempty"`
	// Extensions: the thresholded state, as docker inspect shows it.
	State         string `json:"state"`
	Excluded      bool   `json:"excluded,omitempty"`
	FailingStreak int    `json:"failingStreak"`
	// TLSCertExpiry is the server certificate's earliest expiry
	// (RFC 3339), from the latest result over TLS.
	TLSCertExpiry string       `json:"tlsCertExpiry,omitempty"`
	Results       []resultJSON `json:"results"`
}

type resultJSON struct {
	Start      time.Time     `json:"start"`
	End        time.Time     `json:"end"`
	Outcome    probe.Outcome `json:"outcome"`
	ExitCode   *int          `json:"exitCode,omitempty"`
	HTTPStatus int           `json:"httpStatus,omitempty"`
	CertExpiry *time.Time    `json:"certExpiry,omitempty"`
	Output     string        `json:"output,omitempty"`
}

// entryStatus maps an entry to pass/fail/warn: warn is a passing check whose
// last run did not pass cleanly (a failure still below failureThreshold, or
// a warning).
func entryStatus(e state.Entry) string {
	if !e.OK {
		return "fail"
	}
	if last, ok := e.Check.State.Last(); ok && last.Outcome != probe.OutcomeSuccess {
		return "warn"
	}
	return "pass"
}

func (h *Handler) writeJSON(w http.ResponseWriter, code int, sc state.Scope, v state.Verdict, child *state.ChildState) {
	doc := healthJSON{Status: "pass", Description: sc.String(), Checks: map[string][]checkJSONItem{}, Child: childDoc(child)}
	if v.ShuttingDown {
		doc.Notes = append(doc.Notes, "shutting down")
	}
	anyWarn := false
	for _, e := range v.Entries {
		c := e.Check
		item := checkJSONItem{
			ComponentType: c.Kind,
			Status:        entryStatus(e),
			ObservedUnit:  "s",
			State:         c.State.Status.String(),
			Excluded:      e.Excluded,
			FailingStreak: c.State.FailureStreak,
			Results:       make([]resultJSON, 0, len(c.State.Results)),
		}
		if t, ok := c.State.CertExpiry(); ok {
			item.TLSCertExpiry = t.UTC().Format(time.RFC3339)
		}
		if item.Status == "warn" && !e.Excluded {
			anyWarn = true
		}
		if last, ok := c.State.Last(); ok {
			item.Time = last.End.UTC().Format(time.RFC3339Nano)
			item.ObservedValue = last.Duration().Seconds()
			if h.opts.ExposeOutput {
				item.Output = last.Output
			}
		}
		for _, r := range c.State.Results {
			rj := resultJSON{Start: r.Start.UTC(), End: r.End.UTC(), Outcome: r.Outcome, HTTPStatus: r.HTTPStatus}
			if !r.CertExpiry.IsZero() {
				t := r.CertExpiry.UTC()
				rj.CertExpiry = &t
			}
			if c.ExitCodes {
				ec := r.ExitCode
				rj.ExitCode = &ec
			}
			if h.opts.ExposeOutput {
				rj.Output = r.Output
			}
			item.Results = append(item.Results, rj)
		}
		doc.Checks[c.Name] = []checkJSONItem{item}
	}
	switch {
	case !v.OK:
		doc.Status = "fail"
	case anyWarn:
		doc.Status = "warn"
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/health+json")
	hd["X-Content-Type-Options"] = nosniff
	hd["Cache-Control"] = noStore
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
