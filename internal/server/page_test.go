//go:build !lean

package server

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/state"
)

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// TestStatusPageOnlyForBrowsers: / answers HTML only to a client whose
// Accept starts with text/html; every other client of / keeps the plain
// answer; the page's status is /'s verdict.
func TestStatusPageOnlyForBrowsers(t *testing.T) {
	s := newStore()
	h := New(s, Options{})
	for _, tc := range []struct {
		method, accept string
		page           bool
	}{
		{"GET", browserAccept, true},
		{"HEAD", browserAccept, true},
		{"GET", "TEXT/HTML; q=1", true},
		{"GET", "", false},
		{"GET", "*/*", false},
		{"GET", "text/plain", false},
		{"GET", "application/json, text/html", false},
		{"OPTIONS", browserAccept, false},
	} {
		r := get(t, h, tc.method, "/", "Accept", tc.accept)
		isPage := strings.HasPrefix(r.hdr.Get("Content-Type"), "text/html")
		if isPage != tc.page || r.code != 503 {
			t.Errorf("%s / Accept %q: %d %q, want page=%v and 503 (a check is starting)", tc.method, tc.accept, r.code, r.hdr.Get("Content-Type"), tc.page)
		}
		if tc.method == "HEAD" && r.body != "" {
			t.Errorf("HEAD sent a body")
		}
	}
	if r := get(t, h, "GET", "/readyz", "Accept", browserAccept); strings.HasPrefix(r.hdr.Get("Content-Type"), "text/html") {
		t.Error("/readyz answered a page")
	}
	for _, n := range []string{"web", "db", "boot"} {
		record(s, n, probe.OutcomeSuccess, "")
	}
	r := get(t, h, "GET", "/", "Accept", browserAccept)
	if r.code != 200 || !strings.Contains(r.body, "✔ every check passing") {
		t.Fatalf("all passing: %d", r.code)
	}
	if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || r.hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", r.hdr)
	}
}

// TestStatusPageContent: state in words and symbols, streak, last results
// with codes, the timeline, output only with exposeOutput (escaped), and
// nothing loaded from elsewhere.
func TestStatusPageContent(t *testing.T) {
	s := newStore()
	record(s, "web", probe.OutcomeSuccess, "")
	for range 2 {
		record(s, "db", probe.OutcomeFailure, `<script>alert("x")</script>`)
	}
	s.Record("web", probe.Result{Outcome: probe.OutcomeFailure, HTTPStatus: 503, Start: t0, End: t0.Add(time.Second)}, t0)
	for _, expose := range []bool{false, true} {
		r := get(t, New(s, Options{ExposeOutput: expose}), "GET", "/", "Accept", browserAccept)
		body := r.body
		for _, want := range []string{
			`<th scope="row">db</th>`, "✘ unhealthy", "… starting", "exit code 3", "HTTP 503",
			`aria-label="last 2 results, oldest first: 0 passed, 2 failed; the latest failure at`, "/livez</a>: ✘ failing", "/readyz</a>: ✘ failing",
			`<path class="fail" d="M0 16h6v6h-6zM8 16h6v6h-6z"/>`,
			`<td>readiness</td>`, `<td>liveness, readiness</td>`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("expose=%v: page lacks %q", expose, want)
			}
		}
		if strings.Contains(body, `<script>alert`) {
			t.Fatal("probe output reached the page unescaped")
		}
		if got := strings.Contains(body, "&lt;script&gt;alert"); got != expose {
			t.Errorf("expose=%v: output shown %v", expose, got)
		}
		if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(body); m != "" {
			t.Errorf("the page loads something from elsewhere: %s", m)
		}
	}
}

// pageStore is a store of n checks with a few results each.
func pageStore(n int) *state.Store {
	var specs []state.Spec
	for i := range n {
		specs = append(specs, state.Spec{Name: fmt.Sprint("check-", i), Kind: "tcpSocket", Roles: []config.Role{config.RoleLiveness, config.RoleReadiness}, Policy: state.Policy{FailureThreshold: 3}})
	}
	s := state.NewStore(specs, t0)
	for k := range state.TimelineLen {
		for i := range n {
			o := probe.OutcomeSuccess
			if (i+k)%7 == 0 {
				o = probe.OutcomeFailure
			}
			at := t0.Add(time.Duration(k) * time.Second)
			s.Record(specs[i].Name, probe.Result{Outcome: o, Start: at, End: at.Add(3 * time.Millisecond), Output: "connection refused"}, at)
		}
	}
	return s
}

// BenchmarkStatusPage1000 renders the page for 1,000 checks with full
// timelines; it reports the page's size.
func BenchmarkStatusPage1000(b *testing.B) {
	h := New(pageStore(1000), Options{})
	var size int
	for b.Loop() {
		r := get(&testing.T{}, h, "GET", "/", "Accept", browserAccept)
		size = len(r.body)
	}
	b.ReportMetric(float64(size), "bytes/page")
}

// TestPageTemplateParses: the embedded template parses (it is parsed
// lazily, so a broken one would otherwise surface only in a browser).
func TestPageTemplateParses(t *testing.T) {
	if pageTmpl().Lookup("status.html") == nil {
		t.Fatal("no status.html template")
	}
}
