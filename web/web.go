// Package web holds the browser assets parleyd serves: the website widget
// (widget.js, built from widget/src) and the development demo page.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

//go:generate go run ./internal/widgetbuild/gen

// WidgetJS is the built widget (web/widget.js).
//
//go:embed widget.js
var WidgetJS []byte

// widgetGzip and widgetETag are computed once: the widget is served on
// every page view of every site that embeds it.
var widgetGzip, widgetETag = func() ([]byte, string) {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = zw.Write(WidgetJS)
	_ = zw.Close()
	sum := sha256.Sum256(WidgetJS)
	return b.Bytes(), `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}()

// WidgetGzipSize is the size of the widget as most browsers download it.
func WidgetGzipSize() int { return len(widgetGzip) }

// Widget serves GET /widget.js: cacheable for five minutes (a new version
// reaches sites within that), revalidated by ETag, gzip when accepted, and
// loadable from any site (it is public, and carries nothing secret).
func Widget(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", widgetETag)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, widgetETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := WidgetJS
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = widgetGzip
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(ae string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

//go:embed demo.html
var demoHTML string

var demoTmpl = template.Must(template.New("demo").Parse(demoHTML))

// Demo is the development demo page (GET /demo): the widget embedded for
// agent, with its ephemeral keys minted by tokenPath on the same origin.
func Demo(agent, tokenPath string) http.HandlerFunc {
	var b bytes.Buffer
	if err := demoTmpl.Execute(&b, map[string]string{"Agent": agent, "TokenPath": tokenPath}); err != nil {
		panic(err) // the template and its data are ours
	}
	page := b.Bytes()
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; media-src 'self' blob:; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(page)
	}
}
