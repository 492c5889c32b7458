package ingest

// The browser side: GET /tg.js, the first-party snippet, and (when ingest.demo_page is on) the
// consent-banner demo page under /demo/. Both are embedded in the binary, so the snippet always
// matches the API it talks to and is served from the site's own origin.

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"time"
)

//go:embed static/tg.js
var snippet []byte

//go:embed static/demo
var demoFiles embed.FS

var (
	snippetETag = etag(snippet)
	demoPage    = template.Must(template.ParseFS(demoFiles, "static/demo/index.html"))
)

// demoCSP keeps the demo page first-party by construction: the browser refuses any script,
// style, image or connection to another origin, and the test checks that nothing tries.
const demoCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// routeBrowser adds the snippet, and the demo page when the config asks for it.
func (s *Server) routeBrowser(mux *http.ServeMux) {
	mux.HandleFunc("GET /tg.js", serveSnippet)
	if !s.cfg.Ingest.DemoPage {
		return
	}
	static, _ := fs.Sub(demoFiles, "static/demo")
	files := http.StripPrefix("/demo/", http.FileServerFS(static))
	mux.HandleFunc("GET /demo/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "index.html" { // FileServer would redirect it to /demo/
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", demoCSP)
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /demo/{$}", s.serveDemo)
	mux.Handle("GET /demo", http.RedirectHandler("/demo/", http.StatusMovedPermanently))
}

// serveSnippet serves tg.js, cacheable for an hour and revalidated by its content hash.
func serveSnippet(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("ETag", snippetETag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "tg.js", time.Time{}, bytes.NewReader(snippet))
}

// serveDemo renders the demo page with the first write key: a key in a page is public, so
// turn demo_page on only where that key is one meant for browsers.
func (s *Server) serveDemo(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if err := demoPage.Execute(&buf, struct{ WriteKey string }{s.cfg.Ingest.WriteKeys[0]}); err != nil {
		http.Error(w, "demo page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", demoCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	_, _ = w.Write(buf.Bytes())
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}
