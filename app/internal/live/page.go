package live

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed web
var web embed.FS

// Paths are the page's files as served: the page, its script and style, and the vendored chart
// library (web/vendor/NOTICE). The HTTP API routes exactly these to Page.
var Paths = []string{"/", "/live.js", "/live.css", "/vendor/uplot.js", "/vendor/uplot.css"}

// Page serves the page and its files, all from the binary: no CDN, works offline. The policy
// admits nothing from elsewhere, no inline script and no inline style (the chart library styles
// its elements through the CSSOM, which the policy allows).
func Page() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
