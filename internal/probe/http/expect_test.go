package http_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/probe/kinds"
)

// expectServer is a real HTTP server with the responses the expectation
// tests judge.
func expectServer(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	jsonDoc := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}
	}
	// Spring Boot's actuator behind some proxies: 200 with DOWN inside.
	mux.Handle("/up", jsonDoc(`{"status":"UP","components":{"db":{"status":"UP","details":{"pool":5}}},"checks":[{"state":"ok"}],"ready":true,"secret":"s3cr3t"}`))
	mux.Handle("/down", jsonDoc(`{"status":"DOWN","components":{"db":{"status":"DOWN"}},"ready":false,"secret":"s3cr3t"}`))
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "all good, token=s3cr3t") })
	mux.HandleFunc("/no-content", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100<<10)+"END")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select { // at least 300 ms, never past the probe's own timeout
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
		}
		io.WriteString(w, "late")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// probeYAML builds the check in the YAML config body (one check under
// "checks:", validated as healthbridge loads it) and probes once.
func probeYAML(t *testing.T, check string) probe.Result {
	t.Helper()
	cfg, err := kinds.Parse([]byte("checks:\n" + check))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", check, err)
	}
	c := &cfg.Checks[0]
	p, err := kinds.Of(c).New(c, probe.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return p.Probe(ctx)
}

// TestHTTPExpectations: each expectation against a real server, passing
// and failing; a failure says which expectation failed and what came
// instead, and never quotes the body.
func TestHTTPExpectations(t *testing.T) {
	addr := expectServer(t)
	host, port, _ := strings.Cut(addr, ":")
	check := func(path, method, body, expect string) string {
		s := fmt.Sprintf("  - name: c\n    httpGet:\n      host: %s\n      port: %s\n      path: %s\n", host, port, path)
		if method != "" {
			s += "      method: " + method + "\n"
		}
		if body != "" {
			s += "      body: " + body + "\n"
		}
		if expect != "" {
			s += "      expect:\n"
			for _, line := range strings.Split(expect, "\n") {
				s += "        " + line + "\n"
			}
		}
		return s
	}
	for _, c := range []struct {
		name, path, method, body, expect string
		pass                             bool
		output                           string // a failure's output contains it
	}{
		{"no expectations: the kubelet's rule passes DOWN", "/down", "", "", "", true, ""},
		{"json equals", "/up", "", "", "json: [{path: status, equals: UP}]", true, ""},
		{"json equals fails", "/down", "", "", "json: [{path: status, equals: UP}]", false, `json status is "DOWN", want "UP"`},
		{"nested json path", "/up", "", "", "json: [{path: components.db.status, equals: UP}, {path: checks.0.state, equals: ok}]", true, ""},
		{"json number and bool", "/up", "", "", "json: [{path: components.db.details.pool, equals: 5}, {path: ready, equals: true}]", true, ""},
		{"json bool fails", "/down", "", "", "json: [{path: ready, equals: true}]", false, "json ready is false, want true"},
		{"json path must exist", "/up", "", "", "json: [{path: components.cache}]", false, "json components.cache: absent"},
		{"json on a body that is not JSON", "/text", "", "", "json: [{path: status, equals: UP}]", false, "body is not JSON (22 bytes)"},
		{"bodyRegex", "/text", "", "", "bodyRegex: 'all good'", true, ""},
		{"bodyRegex fails", "/down", "", "", `bodyRegex: '"status":"UP"'`, false, `body does not match bodyRegex "\"status\":\"UP\""`},
		{"bodyNotRegex", "/up", "", "", "bodyNotRegex: DOWN", true, ""},
		{"bodyNotRegex fails", "/down", "", "", "bodyNotRegex: DOWN", false, `body matches bodyNotRegex "DOWN" (at byte 11)`},
		{"status list", "/no-content", "", "", "status: [204]", true, ""},
		{"status list fails", "/no-content", "", "", "status: [200]", false, "HTTP probe failed with statuscode: 204 (expect.status: 200)"},
		{"status range", "/up", "", "", `status: ["200-299"]`, true, ""},
		{"status range fails", "/missing", "", "", `status: ["200-299", 302]`, false, "statuscode: 404 (expect.status: 200-299, 302)"},
		{"header", "/up", "", "", "headers: [{name: content-type, regex: json}]", true, ""},
		{"header fails", "/text", "", "", "headers: [{name: Content-Type, regex: json}]", false, `header Content-Type is "text/plain; charset=utf-8", not matching "json"`},
		{"header absent", "/up", "", "", "headers: [{name: X-Version, regex: .}]", false, `no X-Version header`},
		{"maxResponseMs", "/slow", "", "", "maxResponseMs: 60000", true, ""},
		{"maxResponseMs fails", "/slow", "", "", "maxResponseMs: 100", false, "over maxResponseMs 100"},
		{"a body over maxBodyBytes fails clearly", "/big", "", "", "bodyRegex: END", false, "over expect.maxBodyBytes (65536)"},
		{"maxBodyBytes raised", "/big", "", "", "bodyRegex: END$\nmaxBodyBytes: 200000", true, ""},
		{"method and body", "/echo", "POST", "ping", "bodyRegex: '^POST ping$'", true, ""},
		{"method without expect", "/echo", "HEAD", "", "", true, ""},
		{"every failure named", "/down", "", "", "json: [{path: status, equals: UP}]\nbodyNotRegex: DOWN\nheaders: [{name: X-Version, regex: .}]", false,
			`HTTP probe failed (status 200): no X-Version header (want one matching "."); body matches bodyNotRegex "DOWN" (at byte 11); json status is "DOWN", want "UP"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := probeYAML(t, check(c.path, c.method, c.body, c.expect))
			if r.Outcome.Passing() != c.pass {
				t.Fatalf("outcome %v (%q), want passing %v", r.Outcome, r.Output, c.pass)
			}
			if !c.pass && !strings.Contains(r.Output, c.output) {
				t.Fatalf("output %q, want it to contain %q", r.Output, c.output)
			}
			if !c.pass && strings.Contains(r.Output, "s3cr3t") {
				t.Fatalf("a failure quotes the body: %q", r.Output)
			}
		})
	}
}

// TestHTTPExpectationsValidated: a bad expectation is a config error
// naming its field.
func TestHTTPExpectationsValidated(t *testing.T) {
	for expect, want := range map[string]string{
		"status: [99]":                       "checks[0].httpGet.expect.status[0]: want a code or a range within 100-599",
		`status: ["300-200"]`:                "checks[0].httpGet.expect.status[0]",
		`status: ["2xx"]`:                    `checks[0].httpGet.expect.status[0]: want a code (200) or a range ("200-299"), got "2xx"`,
		"bodyRegex: '('":                     "checks[0].httpGet.expect.bodyRegex: error parsing regexp",
		"json: [{equals: UP}]":               "checks[0].httpGet.expect.json[0].path: required",
		"json: [{path: a, equals: [1]}]":     "checks[0].httpGet.expect.json[0].equals: want a string, number, boolean or null",
		"headers: [{name: 'a b', regex: x}]": `checks[0].httpGet.expect.headers[0].name: invalid header name "a b"`,
		"maxBodyBytes: 20000000":             "checks[0].httpGet.expect.maxBodyBytes: must be 1-10485760",
		"maxResponseMs: -1":                  "checks[0].httpGet.expect.maxResponseMs: must be ≥ 0",
		"nope: 1":                            "checks[0].httpGet.expect.nope: unknown field",
	} {
		_, err := kinds.Parse([]byte("checks:\n  - name: c\n    httpGet:\n      port: 80\n      expect: {" + strings.ReplaceAll(expect, "\n", ", ") + "}\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("expect {%s}: %v, want an error with %q", expect, err, want)
		}
	}
	if _, err := kinds.Parse([]byte("checks:\n  - name: c\n    httpGet: {port: 80, method: 'get x'}\n")); err == nil || !strings.Contains(err.Error(), "checks[0].httpGet.method") {
		t.Errorf("a bad method: %v", err)
	}
}
