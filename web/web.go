package web

import (
	_ "embed"
	"net/http"
)

//go:embed page.html
var page []byte

// Page serves the topology page at "/" (and only there: anything else is 404, so the
// page never shadows an API route).
func Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		// The page loads nothing from anywhere but this origin.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
		w.Write(page)
	})
}
