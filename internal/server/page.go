//go:build !lean

package server

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

// The status page: GET / for a client that asks for HTML first (a
// browser's Accept: text/html,…), rendered on the server with html/template
// from embedded files. No external asset, font or script: it works in a
// pod without internet. It updates itself from /events (a re-render on each
// transition, and every 10 s for the timelines and durations), without a
// reload. Its status code is /'s verdict, as for any other client of /: a
// page never turns a failing verdict into a 2xx.

// hasPage: this build serves the status page (the lean build does not:
// html/template's reflection keeps every exported method in the binary,
// 1.9 MB; page_lean.go).
const hasPage = true

//go:embed page/status.html
var pageFS embed.FS

// pageTmpl is parsed on the first page asked for, not at start-up: most
// sidecars never serve one.
var pageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("status.html").ParseFS(pageFS, "page/status.html"))
})

// pageCSP allows the page's own inline style and script and connections
// back to this server (/events, the refresh), and nothing else.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type pageVerdict struct {
	Path string
	OK   bool
	Note string
}

type pageChild struct {
	Up       bool
	Pid      int
	Restarts string
	Backoff  time.Duration
}

type pageResult struct {
	Symbol, Outcome, Start, StartISO, Duration, Code, Output string
}

// pagePath draws every timeline mark of one class as one SVG path.
type pagePath struct {
	Class, D string
}

type pageCheck struct {
	Name, Kind, Roles, State, Symbol, Class, For, Summary string
	Streak                                                int
	Results                                               []pageResult
	Paths                                                 []pagePath
	Width                                                 int
}

type pageData struct {
	AllOK     bool
	Verdicts  []pageVerdict
	Child     *pageChild
	Generated string
	Checks    []pageCheck
}

// markWidth is a timeline mark's slot in the SVG, in pixels.
const markWidth = 8

// servePage renders the status page for snap with code.
func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, snap *state.Snapshot, code int) {
	now := time.Now()
	d := pageData{Generated: now.UTC().Format("15:04:05 UTC"), AllOK: snap.Plain(state.ScopeAll)}
	for _, sc := range []state.Scope{state.ScopeLiveness, state.ScopeReadiness, state.ScopeStartup} {
		v := pageVerdict{Path: "/" + sc.String(), OK: snap.Plain(sc)}
		if sc == state.ScopeReadiness && snap.ShuttingDown {
			v.Note = "shutting down"
		}
		d.Verdicts = append(d.Verdicts, v)
	}
	if c := snap.Child; c != nil {
		d.Child = &pageChild{Up: c.Pid != 0, Pid: c.Pid, Restarts: fmt.Sprintf("%d on exit, %d on liveness failure", c.Restarts["exit"], c.Restarts["liveness"]), Backoff: c.Backoff}
	}
	timelines := h.store.Timelines()
	i := 0
	for c := range snap.Checks() {
		d.Checks = append(d.Checks, h.pageCheck(c, timelines[i], now))
		i++
	}
	var b bytes.Buffer
	if err := pageTmpl().Execute(&b, d); err != nil {
		http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd["X-Content-Type-Options"] = nosniff
	hd["Cache-Control"] = noStore
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("Vary", "Accept")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

func (h *Handler) pageCheck(c *state.Check, marks []state.Mark, now time.Time) pageCheck {
	st := c.State.Status
	pc := pageCheck{Name: c.Name, Kind: c.Kind, Roles: rolesText(c.Roles), State: st.String(), Streak: c.State.FailureStreak,
		For: now.Sub(c.State.Since).Round(time.Second).String(), Width: state.TimelineLen * markWidth}
	switch st {
	case state.StatusHealthy:
		pc.Symbol, pc.Class = "✔", "pass"
	case state.StatusUnhealthy:
		pc.Symbol, pc.Class = "✘", "fail"
	default:
		pc.Symbol, pc.Class = "…", "starting"
	}
	for i := len(c.State.Results) - 1; i >= 0; i-- {
		res := c.State.Results[i]
		pr := pageResult{Symbol: outcomeSymbol(res.Outcome), Outcome: res.Outcome.String(),
			Start: res.Start.UTC().Format("15:04:05.000"), StartISO: res.Start.UTC().Format(time.RFC3339Nano),
			Duration: res.Duration().Round(time.Millisecond).String()}
		switch {
		case res.HTTPStatus != 0:
			pr.Code = fmt.Sprintf("HTTP %d", res.HTTPStatus)
		case c.ExitCodes && res.Outcome != probe.OutcomeUnknown:
			pr.Code = fmt.Sprintf("exit code %d", res.ExitCode)
		}
		if h.opts.ExposeOutput {
			pr.Output = res.Output
		}
		pc.Results = append(pc.Results, pr)
	}
	// One bar per result, oldest left. Readable without colour: a pass is
	// a tall bar, a failure a short one at the bottom, unknown a middle
	// one, a not-counted "starting" run a dash.
	passed, failed := 0, 0
	var d [4]strings.Builder
	classes := [4]string{"pass", "fail", "unknown", "starting"}
	for i, m := range marks {
		k, y, h := 1, 16, 6
		switch {
		case m.Outcome.Passing():
			k, y, h = 0, 2, 20
			passed++
		case m.Outcome == probe.OutcomeUnknown:
			k, y, h = 2, 12, 10
			failed++
		case m.Outcome == probe.OutcomeStarting:
			k, y, h = 3, 11, 2
		default:
			failed++
		}
		fmt.Fprintf(&d[k], "M%d %dh6v%dh-6z", i*markWidth, y, h)
	}
	for k := range d {
		if d[k].Len() > 0 {
			pc.Paths = append(pc.Paths, pagePath{Class: classes[k], D: d[k].String()})
		}
	}
	pc.Summary = fmt.Sprintf("last %d results, oldest first: %d passed, %d failed", len(marks), passed, failed)
	if n := len(marks); n > 0 {
		pc.Summary += fmt.Sprintf("; the latest %s at %s", marks[n-1].Outcome, marks[n-1].Start().UTC().Format("15:04:05"))
	}
	return pc
}

func outcomeSymbol(o probe.Outcome) string {
	switch {
	case o.Passing():
		return "✔"
	case o == probe.OutcomeStarting:
		return "…"
	default:
		return "✘"
	}
}

func rolesText(roles []config.Role) string {
	var s []string
	for _, r := range roles {
		s = append(s, r.String())
	}
	return strings.Join(s, ", ")
}
