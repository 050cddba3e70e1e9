//go:build lean

package server

import (
	"strings"
	"testing"
)

// TestLeanHasNoStatusPage: the lean build answers a browser's GET / as any
// other client's: the plain verbose verdict.
func TestLeanHasNoStatusPage(t *testing.T) {
	r := get(t, New(newStore(), Options{}), "GET", "/", "Accept", "text/html,*/*;q=0.8")
	if r.code != 503 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/plain") || !strings.Contains(r.body, "[-]") {
		t.Fatalf("%d %q %q", r.code, r.hdr.Get("Content-Type"), r.body)
	}
}
