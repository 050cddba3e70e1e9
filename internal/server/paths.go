package server

import (
	"net/http"
	"strings"
)

// CanonicalPaths answers 404 to a request whose path is not canonical,
// before h sees it: one that does not start with "/", or has an empty
// segment ("//"), or a "." or ".." segment. Go's http.ServeMux would
// redirect such a path to its cleaned form (a 301 or 307, which keeps the
// method: a client that follows it POSTs to another path), and no
// listener of healthbridge ever answers a redirect. Wrap every handler
// that routes with a ServeMux in it.
func CanonicalPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Canonical(r.URL.Path) {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "not found: the path is not canonical (an empty, \".\" or \"..\" segment)", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Canonical reports whether p is an absolute path with no empty, "." or
// ".." segment; a single trailing slash is allowed ("/checks/").
func Canonical(p string) bool {
	rest, ok := strings.CutPrefix(p, "/")
	if !ok {
		return false
	}
	segs := strings.Split(rest, "/")
	for i, seg := range segs {
		if seg == "." || seg == ".." || (seg == "" && i < len(segs)-1) {
			return false
		}
	}
	return true
}
