package ttl

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/healthbridge/healthbridge/internal/probe"
	"github.com/healthbridge/healthbridge/internal/server"
)

// FuzzAdmin sends the push port any method, request target and body, as
// net/http parses them off the wire. It never answers a redirect; it
// answers 2xx only to POST or PUT /checks/beat/pass|warn|fail, exactly,
// and then the board holds that report; anything else leaves the board
// as it was.
func FuzzAdmin(f *testing.F) {
	for _, target := range []string{"/checks/beat/pass", "/checks/beat/fail", "/checks/beat/warn", "/checks", "/checks/",
		"/checks/beat/../beat/pass", "//checks/beat/pass", "/checks/./beat/pass", "/checks/beat/pass/", "/checks/nope/pass",
		"/checks/beat/nope", "*", "http://x/checks/beat/pass", "/checks/be%61t/pass", "/checks/beat%2Fpass/fail"} {
		for _, method := range []string{"POST", "PUT", "GET", "DELETE"} {
			f.Add(method, target, "all good")
		}
	}
	f.Fuzz(func(t *testing.T, method, target, body string) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		board := NewBoard([]string{"beat"})
		mux := http.NewServeMux()
		probe.PushKind{Patterns: AdminPatterns, Handler: NewAdmin(board, nil)}.Register(mux)
		w := httptest.NewRecorder()
		server.CanonicalPaths(mux).ServeHTTP(w, req)
		if w.Code >= 300 && w.Code < 400 || w.Header().Get("Location") != "" {
			t.Fatalf("%q: %d Location %q", raw, w.Code, w.Header().Get("Location"))
		}
		last, reported := board.Last("beat")
		if w.Code < 200 || w.Code >= 300 {
			if reported {
				t.Fatalf("%q: %d, and a report was recorded", raw, w.Code)
			}
			return
		}
		verb, ok := strings.CutPrefix(req.URL.Path, "/checks/beat/")
		want, known := pushVerbs[verb]
		if !ok || !known || (req.Method != "POST" && req.Method != "PUT") {
			t.Fatalf("%q: %d for a request that is no report", raw, w.Code)
		}
		if !reported || last.Outcome != want || !strings.HasPrefix(body, strings.TrimSuffix(last.Output, probe.Truncated)) {
			t.Fatalf("%q: %d, but the board holds %+v", raw, w.Code, last)
		}
	})
}
