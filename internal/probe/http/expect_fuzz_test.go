package http

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/healthbridge/healthbridge/internal/config"
)

// FuzzJudge: whatever body and header a server sends, the expectations
// judge it without panicking, and a failure's words stay short (values
// are clipped) and never carry the body beyond a clipped JSON value.
func FuzzJudge(f *testing.F) {
	for _, b := range []string{`{"status":"UP"}`, `{"status":"DOWN","a":[1,{"b":null}]}`, `not json`, ``, `{"status":` + strings.Repeat("1", 500) + `}`, `[` + strings.Repeat(`[`, 1000)} {
		f.Add([]byte(b), "application/json")
	}
	x, errs := compileExpect(&config.HTTPExpect{
		BodyRegex:    `"status":"UP"`,
		BodyNotRegex: `DOWN`,
		JSON:         []config.JSONExpect{{Path: "status", Equals: "UP"}, {Path: "a.1.b"}, {Path: "n", Equals: float64(1)}},
		Headers:      []config.HeaderExpect{{Name: "Content-Type", Regex: "^application/json"}},
	}, "expect")
	if len(errs) > 0 {
		f.Fatal(errs)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		for _, msg := range x.judge(h, body, time.Millisecond) {
			if len(msg) > 2*shown+200 {
				t.Fatalf("a failure of %d bytes: %.300q", len(msg), msg)
			}
		}
	})
}
