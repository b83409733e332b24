package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"parley/web/internal/widgetbuild"
)

// TestWidgetNotStale: the committed widget.js is what the sources build to.
func TestWidgetNotStale(t *testing.T) {
	built, err := widgetbuild.Build(filepath.Join("widget", "src"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, WidgetJS) {
		t.Fatalf("web/widget.js is stale (%d bytes; the sources build to %d): run `go generate ./web` and commit it",
			len(WidgetJS), len(built))
	}
}

// widgetBudget is the widget's size budget, gzipped (issue 7).
const widgetBudget = 30 << 10

func TestWidgetSizeBudget(t *testing.T) {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
	_, _ = zw.Write(WidgetJS)
	_ = zw.Close()
	t.Logf("widget.js: %d bytes, %d gzipped (default level), %d as served (best)", len(WidgetJS), b.Len(), WidgetGzipSize())
	if b.Len() >= widgetBudget {
		t.Fatalf("widget.js is %d bytes gzipped; the budget is under %d", b.Len(), widgetBudget)
	}
}

// TestWidgetTypes type-checks the sources with tsc (make deps installs it
// in web/widget/node_modules).
func TestWidgetTypes(t *testing.T) {
	tsc := filepath.Join("widget", "node_modules", ".bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		if os.Getenv("PARLEY_TEST_REQUIRE_BROWSER") != "" {
			t.Fatalf("%s is missing (make deps runs npm ci in web/widget): %v", tsc, err)
		}
		t.Skipf("%s is missing: type check SKIPPED (make deps installs it)", tsc)
	}
	cmd := exec.Command(tsc, "--noEmit", "-p", "widget")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}

func TestWidgetHandler(t *testing.T) {
	tests := []struct {
		name, method, ae, inm string
		status                int
		gzipped               bool
	}{
		{"plain", "GET", "", "", 200, false},
		{"gzip", "GET", "gzip, deflate, br", "", 200, true},
		{"gzip refused", "GET", "gzip;q=0, br", "", 200, false},
		{"head", "HEAD", "gzip", "", 200, true},
		{"not modified", "GET", "gzip", widgetETag, 304, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/widget.js", nil)
			if tc.ae != "" {
				req.Header.Set("Accept-Encoding", tc.ae)
			}
			if tc.inm != "" {
				req.Header.Set("If-None-Match", tc.inm)
			}
			rec := httptest.NewRecorder()
			Widget(rec, req)
			res := rec.Result()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if got := res.Header.Get("Content-Encoding") == "gzip"; got != tc.gzipped {
				t.Errorf("gzipped %v, want %v", got, tc.gzipped)
			}
			if res.Header.Get("ETag") != widgetETag || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
				t.Errorf("headers %v", res.Header)
			}
			if tc.status != 200 || tc.method == "HEAD" {
				if rec.Body.Len() != 0 {
					t.Errorf("%d bytes of body, want none", rec.Body.Len())
				}
				return
			}
			body := rec.Body.Bytes()
			if tc.gzipped {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(body, WidgetJS) {
				t.Errorf("the body is not widget.js")
			}
		})
	}
}

func TestDemoPageEscapes(t *testing.T) {
	rec := httptest.NewRecorder()
	Demo(`a"b<c>`, "/demo/token")(rec, httptest.NewRequest(http.MethodGet, "/demo", nil))
	body := rec.Body.String()
	if strings.Contains(body, `a"b<c>`) || !strings.Contains(body, `data-agent="a&#34;b&lt;c&gt;"`) {
		t.Errorf("the agent id is not escaped in the demo page")
	}
	if !strings.Contains(body, `src="/widget.js"`) || !strings.Contains(body, `data-token-url="/demo/token"`) {
		t.Errorf("the demo page does not embed the widget: %s", body)
	}
}

// TestWidgetLogic runs the conversation's unit tests (widget/test) in
// node: bundled with esbuild, run with node --test.
func TestWidgetLogic(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("PARLEY_TEST_REQUIRE_BROWSER") != "" {
			t.Fatalf("node is missing (make deps installs it): %v", err)
		}
		t.Skip("node is missing: widget logic tests SKIPPED")
	}
	js, err := widgetbuild.BuildTest(filepath.Join("widget", "test", "conversation.test.ts"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "conversation.test.mjs")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "--test", "--test-reporter=spec", path).CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
