package server

import (
	"net/http"
	"strings"
)

// wantsHTML reports whether the client asks for HTML first: the first media
// range of Accept is text/html (browsers send "text/html,…"). "*/*",
// "text/*" or nothing keep the plain answer, so that no poller mistakes a
// page for health.
func wantsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	first, _, _ := strings.Cut(a, ",")
	first, _, _ = strings.Cut(first, ";")
	return strings.EqualFold(strings.TrimSpace(first), "text/html")
}
