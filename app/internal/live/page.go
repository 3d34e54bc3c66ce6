package live

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed web
var web embed.FS

// Page serves the page and its script and style, all from the binary: no CDN, works offline.
// The policy admits nothing from elsewhere and no inline script.
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
