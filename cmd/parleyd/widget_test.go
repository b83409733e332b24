package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"parley/media"
)

// The website widget, tested as a customer embeds it: a page on the
// customer's own origin with one script tag (and CSS that would break a
// widget that is not isolated), in Debian's headless Chromium, against a
// real parleyd. The tests click and type with real input events.

// widgetPage is the customer's page. The hostile style rules are what a
// real site's global CSS can do to an embedded widget that is not in a
// shadow root.
var widgetPage = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop</title>
<style nonce="{{.Nonce}}">
  * { font-family: "Comic Sans MS", cursive !important; color: #f0f !important; box-sizing: content-box !important; }
  button { display: none !important; }
  div, section { border: 5px solid red !important; padding: 30px !important; }
  textarea { visibility: hidden !important; }
  body { background: #fafafa; margin: 0; padding: 2rem; }
</style>
<script nonce="{{.Nonce}}">
  // What the test reads: the page's globals before the widget, every
  // widget event, and any Content-Security-Policy violation.
  window.__before = new Set(Object.getOwnPropertyNames(window));
  window.__events = [];
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (e) => __violations.push(e.violatedDirective + " " + e.blockedURI));
  const __wait = setInterval(() => {
    if (!window.Parley) return;
    clearInterval(__wait);
    for (const name of ["message", "delta", "state", "status", "error", "interrupted", "open", "close"]) {
      Parley.on(name, (d) => window.__events.push({ name, ...d, at: performance.now() }));
    }
    window.__hooked = true;
  }, 5);
</script>
</head>
<body>
<h1>Welcome to the shop</h1>
<p><a href="#top">A link before the widget</a></p>
<script nonce="{{.Nonce}}" src="{{.Gateway}}/widget.js" {{if .TokenURL}}data-token-url="{{.TokenURL}}"{{else}}data-key="{{.Key}}"{{end}} data-agent="{{.Agent}}" data-title="Shop assistant"
  data-greeting="Hi! How can I help?" {{if .Color}}data-color="{{.Color}}"{{end}} async></script>
</body>
</html>
`))

// widgetState is what the widget shows, read from its shadow root.
type widgetState struct {
	Open     bool   `json:"open"`
	Status   string `json:"status"`
	Voice    string `json:"voice"`
	Active   string `json:"active"` // class of the focused element in the widget
	Messages []struct {
		Role        string `json:"role"`
		Text        string `json:"text"`
		Pending     bool   `json:"pending"`
		Interrupted bool   `json:"interrupted"`
	} `json:"messages"`
}

const widgetStateJS = `(() => {
  const host = document.querySelector("parley-widget");
  const r = host && host.shadowRoot;
  if (!r) return null;
  const vb = r.querySelector(".voicebar");
  return {
    open: !r.querySelector(".panel").hidden,
    status: r.querySelector(".status").textContent,
    voice: vb.hidden ? "off" : vb.dataset.state,
    active: document.activeElement === host && r.activeElement ? r.activeElement.className || r.activeElement.tagName : "",
    messages: [...r.querySelectorAll(".msg")].map((b) => ({
      role: b.classList.contains("user") ? "user" : "assistant",
      text: b.querySelector(".text").textContent,
      pending: b.classList.contains("pending"),
      interrupted: !!b.querySelector(".note"),
    })),
  };
})()`

// contrastJS returns the contrast ratios (WCAG 2) of the widget's text
// against its background: header, both bubbles, the input's placeholder.
const contrastJS = `(() => {
  const r = document.querySelector("parley-widget").shadowRoot;
  const rgb = (c) => c.match(/[\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [R, G, B] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const ratio = (fg, bg) => { const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x); return (a + 0.05) / (b + 0.05); };
  const pair = (sel, bgSel, pseudo) => {
    const e = r.querySelector(sel), b = r.querySelector(bgSel ?? sel);
    return ratio(getComputedStyle(e, pseudo).color, getComputedStyle(b).backgroundColor);
  };
  return {
    header: pair("header h2", "header"),
    user: pair(".msg.user .text", ".msg.user"),
    assistant: pair(".msg.assistant .text", ".msg.assistant"),
    placeholder: pair("textarea", "textarea", "::placeholder"),
  };
})()`

// checkContrast fails the test for text under 4.5:1 (WCAG AA).
func (w *widgetRig) checkContrast(ctx context.Context, what string) {
	w.t.Helper()
	ratios, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](contrastJS))
	if err != nil {
		w.t.Fatalf("contrast: %v", err)
	}
	for k, v := range ratios {
		if v < 4.5 {
			w.t.Errorf("%s: %s text contrast %.2f:1, want at least 4.5:1", what, k, v)
		}
	}
	w.t.Logf("%s contrast: %v", what, ratios)
}

// widgetRig is a parleyd, a TCP proxy in front of it (the test cuts the
// connections there), the customer's site, and a browser.
type widgetRig struct {
	t       *testing.T
	r       *running
	proxy   *tcpProxy
	site    *httptest.Server
	gateway string // the proxy's URL: what the page loads the widget from
	key     string // the publishable key, bound to the site's origin
	b       *browser
}

func newWidgetRig(t *testing.T, mic string, env ...string) *widgetRig {
	t.Helper()
	requireBrowser(t)
	w := &widgetRig{t: t}
	// No realtime.allowed_origins: the publishable key's origin binding is
	// what lets the site's sessions in.
	w.r = start(t, "../../configs/parley.yaml", append([]string{"PARLEY_STORAGE_URL=" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_WEBRTC_UDP_ADDRESS=0.0.0.0:0", "PARLEY_WIDGET_DEMO=true"}, env...)...)
	w.proxy = newTCPProxy(t, w.r.m.Addr.String())
	w.gateway = "http://" + w.proxy.addr()
	w.site = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" && req.Method == http.MethodPost {
			w.mintForPage(rw, req)
			return
		}
		if req.URL.Path != "/" {
			http.NotFound(rw, req)
			return
		}
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		q := req.URL.Query()
		nonce := "n" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if q.Get("csp") == "strict" {
			// A strict policy, as security-minded sites send: scripts and
			// styles only by nonce (no inline styles), connections only to
			// the gateway, and Trusted Types for every DOM injection sink.
			rw.Header().Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'nonce-%s' %s; "+
				"style-src 'nonce-%s'; connect-src %s ws://%s; require-trusted-types-for 'script'",
				nonce, w.gateway, nonce, w.gateway, w.proxy.addr()))
		}
		page := map[string]string{"Gateway": w.gateway, "Key": q.Get("key"), "Agent": "assistant",
			"Color": q.Get("color"), "Nonce": nonce}
		if q.Get("token") != "" {
			page["TokenURL"] = "/token"
		}
		_ = widgetPage.Execute(rw, page)
	}))
	t.Cleanup(w.site.Close)
	w.key = businessWithWidget(t, "http://"+w.r.m.Addr.String(), w.site.URL)
	w.b = launchChromium(t, mic)
	t.Cleanup(func() {
		if t.Failed() {
			w.dump()
		}
	})
	return w
}

// mintForPage is the site's own backend endpoint (data-token-url): it
// mints an ephemeral key with the operator's secret key for the visitor it
// knows (end_user), bound to the site's page origin.
func (w *widgetRig) mintForPage(rw http.ResponseWriter, req *http.Request) {
	var in struct {
		Agent string `json:"agent"`
		Voice bool   `json:"voice"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	modality := "text"
	if in.Voice {
		modality = "audio"
	}
	body, _ := json.Marshal(map[string]any{
		"session":  map[string]any{"type": "realtime", "model": in.Agent, "output_modalities": []string{modality}},
		"end_user": "visitor-42", "origin": w.site.URL,
	})
	out, err := http.NewRequestWithContext(req.Context(), http.MethodPost, "http://"+w.r.m.Addr.String()+"/v1/realtime/client_secrets", strings.NewReader(string(body)))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	out.Header.Set("Authorization", "Bearer "+testAPIKey)
	out.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(rw, resp.Body)
}

// businessWithWidget signs a business up through the management API,
// gives it an agent "assistant" that knows Parley's own documents
// (configs/knowledge/assistant), and returns a publishable key for that
// agent bound to the business's website origin.
func businessWithWidget(t *testing.T, base, origin string) string {
	t.Helper()
	code, body := postJSON(t, base+"/v1/auth/register", "", "",
		`{"name":"Ada","email":"ada@shop.example","company":"Shop","password":"correct horse battery"}`)
	var reg struct {
		Token  string `json:"token"`
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(body), &reg); code != 201 || err != nil || reg.Token == "" {
		t.Fatalf("register: %d %s", code, body)
	}
	docs := map[string]string{}
	paths, _ := filepath.Glob("../../configs/knowledge/assistant/*.md")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(p)] = string(b)
	}
	agent, _ := json.Marshal(map[string]any{"id": "assistant", "name": "Shop assistant", "engine": "kb",
		"settings": map[string]any{"knowledge": docs}})
	base += "/v1/tenants/" + reg.Tenant.ID
	if code, body := postJSON(t, base+"/agents", reg.Token, "", string(agent)); code != 201 && code != 200 {
		t.Fatalf("create agent: %d %s", code, body)
	}
	code, body = postJSON(t, base+"/keys", reg.Token, "",
		fmt.Sprintf(`{"kind":"publishable","name":"website","agent_ids":["assistant"],"origins":[%q]}`, origin))
	var key struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(body), &key); (code != 200 && code != 201) || err != nil || !strings.HasPrefix(key.Value, "pk_") {
		t.Fatalf("creating the publishable key: %d %s", code, body)
	}
	return key.Value
}

func requireBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("PARLEY_TEST_REQUIRE_BROWSER") == "" {
			t.Skipf("%s not found: widget browser test SKIPPED (make deps installs Debian's chromium; "+
				"PARLEY_TEST_REQUIRE_BROWSER=1 makes this a failure)", chromiumPath)
		}
		t.Fatalf("PARLEY_TEST_REQUIRE_BROWSER is set and %s is missing: %v", chromiumPath, err)
	}
}

// load opens the customer's page at siteURL with the publishable key and
// waits for the widget's script to have run.
func (w *widgetRig) load(ctx context.Context, siteURL string) {
	w.t.Helper()
	w.loadQuery(ctx, siteURL, "")
	w.waitFor(ctx, "the widget to load", `window.__hooked === true && !!document.querySelector("parley-widget")`)
}

// loadQuery opens the page with more query parameters (color=…).
func (w *widgetRig) loadQuery(ctx context.Context, siteURL, query string) {
	w.t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(siteURL+"/?key="+w.key+"&"+query)); err != nil {
		w.t.Fatalf("load %s: %v", siteURL, err)
	}
}

// waitFor polls the JavaScript condition until it is true.
func (w *widgetRig) waitFor(ctx context.Context, what, cond string) {
	w.t.Helper()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		if err == nil && ok {
			return
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			st, _ := w.state(context.Background())
			w.t.Fatalf("waiting for %s: %v; the widget shows %+v", what, err, st)
		}
	}
}

func (w *widgetRig) state(ctx context.Context) (widgetState, error) {
	ctx, cancel := context.WithTimeout(cmpCtx(ctx, w.b.ctx), 5*time.Second)
	defer cancel()
	var st widgetState
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](widgetStateJS))
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	return st, err
}

// cmpCtx is ctx unless it is the background (then the browser's).
func cmpCtx(ctx, browser context.Context) context.Context {
	if ctx == context.Background() {
		return browser
	}
	return ctx
}

// click clicks the widget's element (a selector in its shadow root) with
// a real mouse event at its centre.
func (w *widgetRig) click(ctx context.Context, sel string) {
	w.t.Helper()
	type box struct{ X, Y, W, H float64 }
	b, err := chromedp.Run(ctx, chromedp.Evaluate[box](fmt.Sprintf(`(() => {
	  const e = document.querySelector("parley-widget").shadowRoot.querySelector(%q);
	  const r = e.getBoundingClientRect();
	  return {X: r.x, Y: r.y, W: r.width, H: r.height};
	})()`, sel)))
	if err != nil {
		w.t.Fatalf("finding %s: %v", sel, err)
	}
	if b.W == 0 || b.H == 0 {
		w.t.Fatalf("%s is not visible (%+v)", sel, b)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(b.X+b.W/2, b.Y+b.H/2)); err != nil {
		w.t.Fatalf("clicking %s: %v", sel, err)
	}
}

func (w *widgetRig) keys(ctx context.Context, keys string) {
	w.t.Helper()
	if err := chromedp.Do(ctx, chromedp.KeyEvent(keys)); err != nil {
		w.t.Fatalf("typing %q: %v", keys, err)
	}
}

// answered waits until the widget shows n finished answers (the greeting
// not counted) and returns the last.
func (w *widgetRig) answered(ctx context.Context, n int) string {
	w.t.Helper()
	w.waitFor(ctx, fmt.Sprintf("answer %d", n), fmt.Sprintf(
		`window.__events.filter((e) => e.name === "message" && e.role === "assistant").length >= %d`, n))
	st, err := w.state(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	last := st.Messages[len(st.Messages)-1]
	if last.Role != "assistant" || last.Pending {
		w.t.Fatalf("the last message is %+v, want a finished answer", last)
	}
	return last.Text
}

func (w *widgetRig) dump() {
	st, err := w.state(context.Background())
	w.t.Logf("widget state: %+v (%v)", st, err)
	ctx, cancel := context.WithTimeout(w.b.ctx, 5*time.Second)
	defer cancel()
	if evs, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__events ?? null)`)); err == nil {
		w.t.Logf("widget events: %s", evs)
	}
	w.t.Logf("browser console:\n%s", w.b.console)
	w.t.Logf("parleyd stderr:\n%s", tail(w.r.stderr.String(), 16<<10))
}

// userBubbles counts the visitor's messages with text.
func (st widgetState) count(role string) int {
	n := 0
	for _, m := range st.Messages {
		if m.Role == role {
			n++
		}
	}
	return n
}

// TestWidget: text chat through the widget on a customer's page, with
// real clicks and typing; then the same page used with the keyboard only,
// a reconnect after the connection drops, and a refusal on a site the key
// is not for. It saves the screenshots the README shows.
func TestWidget(t *testing.T) {
	w := newWidgetRig(t, "")
	ctx, cancel := context.WithTimeout(w.b.ctx, 150*time.Second)
	defer cancel()

	t.Run("text", func(t *testing.T) {
		w.t = t
		w.load(ctx, w.site.URL)
		// The page's CSS did not reach the widget.
		w.click(ctx, ".launcher")
		w.waitFor(ctx, "the panel to open", `document.querySelector("parley-widget").shadowRoot.activeElement?.id === "parley-input"`)
		w.keys(ctx, "What is Parley?")
		w.keys(ctx, "\r")
		answer := w.answered(ctx, 1)
		t.Logf("answer: %q", answer)
		if !strings.Contains(answer, "Parley") {
			t.Errorf("the answer %q does not come from the agent's documents", answer)
		}
		st, _ := w.state(ctx)
		if st.count("user") != 1 || st.count("assistant") != 2 || st.Messages[0].Text != "Hi! How can I help?" {
			t.Errorf("messages %+v: want the greeting, one question and one answer", st.Messages)
		}
		// What the visitor waits: from Enter to the first word, and to the
		// whole answer (one run; the README quotes it).
		lat, _ := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`(() => {
		  const e = window.__events, sent = e.find((x) => x.name === "message" && x.role === "user").at;
		  return [e.find((x) => x.name === "delta").at - sent, e.find((x) => x.name === "message" && x.role === "assistant").at - sent];
		})()`))
		t.Logf("text: first word %.1f ms, whole answer %.1f ms after Enter (browser clock)", lat[0], lat[1])
		// Streamed: the answer arrived in several deltas.
		deltas, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__events.filter((e) => e.name === "delta").length`))
		if deltas < 2 {
			t.Errorf("the answer came in %d deltas; want it streamed", deltas)
		}
		// One global, no cookies, no storage.
		leak, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Object.getOwnPropertyNames(window).filter((k) => !window.__before.has(k) && !k.startsWith("__"))`))
		if err != nil || len(leak) != 1 || leak[0] != "Parley" {
			t.Errorf("globals the widget added: %v (%v); want only Parley", leak, err)
		}
		if c, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie + localStorage.length + sessionStorage.length`)); c != "00" {
			t.Errorf("cookies and storage on the site: %q, want none", c)
		}
		w.checkContrast(ctx, "default colour")
		w.screenshots(ctx)
		// A light brand colour gets dark text.
		w.loadQuery(ctx, w.site.URL, "color=%23ffd700")
		w.waitFor(ctx, "the widget to load", `window.__hooked === true`)
		w.click(ctx, ".launcher")
		w.keys(ctx, "Hello there.\r")
		w.answered(ctx, 1)
		w.checkContrast(ctx, "colour #ffd700")
	})

	t.Run("strict CSP", func(t *testing.T) {
		w.t = t
		w.loadQuery(ctx, w.site.URL, "csp=strict")
		w.waitFor(ctx, "the widget to load", `window.__hooked === true && !!document.querySelector("parley-widget")`)
		// Styled (a constructed stylesheet), and nothing was blocked.
		width, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("parley-widget").shadowRoot.querySelector(".launcher").getBoundingClientRect().width`))
		if width != 56 {
			t.Errorf("the launcher is %v px wide under a strict CSP, want 56 (unstyled?)", width)
		}
		w.click(ctx, ".launcher")
		w.keys(ctx, "What is Parley?\r")
		w.answered(ctx, 1)
		if v, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__violations`)); len(v) != 0 {
			t.Errorf("CSP violations: %v", v)
		}
	})

	t.Run("bad option", func(t *testing.T) {
		w.t = t
		w.loadQuery(ctx, w.site.URL, "color=red")
		w.waitFor(ctx, "the script to run", `window.__hooked === true`)
		if n, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector("parley-widget")`)); n {
			t.Errorf("the widget started with data-color=red")
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(w.b.console.String(), "data-color must be a hex colour") {
			if time.Now().After(deadline) {
				t.Fatalf("no console error naming data-color: %s", w.b.console)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		w.t = t
		w.load(ctx, w.site.URL)
		// Tab from the page's link to the launcher, open with Enter: the
		// input has the focus.
		w.keys(ctx, "\t\t")
		w.waitFor(ctx, "the launcher to have the focus", `document.querySelector("parley-widget").shadowRoot.activeElement?.classList.contains("launcher")`)
		w.keys(ctx, "\r")
		w.waitFor(ctx, "the input to have the focus", `document.querySelector("parley-widget").shadowRoot.activeElement?.id === "parley-input"`)
		w.keys(ctx, "How do I add documents to an agent?\r")
		answer := w.answered(ctx, 1)
		if answer == "" {
			t.Errorf("no answer")
		}
		// Escape closes the panel and gives the focus back to the launcher.
		w.keys(ctx, "\x1b")
		w.waitFor(ctx, "the panel to close with the focus on the launcher", `(() => {
		  const r = document.querySelector("parley-widget").shadowRoot;
		  return r.querySelector(".panel").hidden && r.activeElement?.classList.contains("launcher") &&
		    r.querySelector(".launcher").getAttribute("aria-expanded") === "false";
		})()`)
		// The focus is visible: an outline on the focused launcher.
		outline, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("parley-widget").shadowRoot.querySelector(".launcher")).outlineStyle`))
		if outline != "solid" {
			t.Errorf("the focused launcher's outline is %q, want a visible one", outline)
		}
		// Reduced motion: no transitions or animations.
		if err := chromedp.Do(ctx, emulateMedia(&emulation.MediaFeature{Name: "prefers-reduced-motion", Value: "reduce"})); err != nil {
			t.Fatal(err)
		}
		dur, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("parley-widget").shadowRoot.querySelector(".launcher")).transitionDuration`))
		if err := chromedp.Do(ctx, emulateMedia()); err != nil {
			t.Fatal(err)
		}
		normal, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("parley-widget").shadowRoot.querySelector(".launcher")).transitionDuration`))
		if dur != "0s" || normal == "0s" {
			t.Errorf("transition %q with reduced motion, %q without; want none with it", dur, normal)
		}
		// The log is a live region, and new messages are announced.
		role, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const l = document.querySelector("parley-widget").shadowRoot.querySelector(".log"); return l.getAttribute("role") + "/" + l.getAttribute("aria-live"); })()`))
		if role != "log/polite" {
			t.Errorf("the message list is %q, want role=log aria-live=polite", role)
		}
	})

	t.Run("reconnect", func(t *testing.T) {
		w.t = t
		w.load(ctx, w.site.URL)
		w.click(ctx, ".launcher")
		w.keys(ctx, "What is Parley?\r")
		w.answered(ctx, 1)
		// The network drops: every connection through the proxy is cut.
		if n := w.proxy.dropAll(); n == 0 {
			t.Fatalf("no connection to drop")
		}
		w.waitFor(ctx, "the widget to reconnect", `window.__events.some((e) => e.name === "status" && e.status === "reconnected")`)
		w.keys(ctx, "How long are transcripts kept?\r")
		second := w.answered(ctx, 2)
		t.Logf("after the reconnect: %q", second)
		st, _ := w.state(ctx)
		// Nothing shown twice: the greeting, two questions, two answers.
		if len(st.Messages) != 5 || st.count("user") != 2 {
			t.Errorf("after the reconnect the widget shows %d messages: %+v", len(st.Messages), st.Messages)
		}
	})

	t.Run("microphone refused", func(t *testing.T) {
		w.t = t
		w.load(ctx, w.site.URL)
		// The visitor says no to the microphone prompt.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.mediaDevices.getUserMedia = () =>
		  Promise.reject(new DOMException("Permission denied", "NotAllowedError")); true`)); err != nil {
			t.Fatal(err)
		}
		w.click(ctx, ".launcher")
		w.click(ctx, ".mic")
		w.waitFor(ctx, "the refusal to be explained", `document.querySelector("parley-widget").shadowRoot.querySelector(".status.error")?.textContent.includes("Microphone access was refused")`)
		st, _ := w.state(ctx)
		if st.Voice != "off" {
			t.Errorf("voice is %q after the refusal, want off", st.Voice)
		}
		// Text goes on.
		w.click(ctx, "#parley-input")
		w.keys(ctx, "What is Parley?\r")
		w.answered(ctx, 1)
	})

	t.Run("webrtc fails", func(t *testing.T) {
		w.t = t
		w.load(ctx, w.site.URL)
		// The browser's WebRTC cannot complete the call (a firewall, a
		// policy): the widget says so and stays in text.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`RTCPeerConnection.prototype.setRemoteDescription = () =>
		  Promise.reject(new Error("blocked by policy")); true`)); err != nil {
			t.Fatal(err)
		}
		w.click(ctx, ".launcher")
		w.click(ctx, ".mic")
		w.waitFor(ctx, "the fallback to be explained", `document.querySelector("parley-widget").shadowRoot.querySelector(".status.error")?.textContent.includes("Voice isn't available right now")`)
		st, _ := w.state(ctx)
		if st.Voice != "off" || !strings.Contains(st.Status, "blocked by policy") {
			t.Errorf("after the failed call: voice %q, status %q", st.Voice, st.Status)
		}
		w.click(ctx, "#parley-input")
		w.keys(ctx, "What is Parley?\r")
		w.answered(ctx, 1)
	})

	t.Run("token url", func(t *testing.T) {
		w.t = t
		// The site names its visitor: its backend mints the keys with a
		// secret key, bound to the site's origin (which the operator never
		// listed), and the widget gets them from data-token-url.
		w.loadQuery(ctx, w.site.URL, "token=1")
		w.waitFor(ctx, "the widget to load", `window.__hooked === true && !!document.querySelector("parley-widget")`)
		w.click(ctx, ".launcher")
		w.keys(ctx, "What is Parley?\r")
		if answer := w.answered(ctx, 1); !strings.Contains(answer, "Parley") {
			t.Errorf("answer %q", answer)
		}
	})

	t.Run("demo page", func(t *testing.T) {
		w.t = t
		// parleyd's own demo (widget.demo, on for make run): the widget on
		// the gateway's origin, its keys minted by /demo/token.
		demo := "http://" + w.r.m.Addr.String() + "/demo"
		if err := chromedp.Do(ctx, chromedp.Navigate(demo)); err != nil {
			t.Fatal(err)
		}
		w.waitFor(ctx, "the widget on the demo page", `window.Parley && document.querySelector("parley-widget")`)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__events = []; for (const n of ["message"]) Parley.on(n, (d) => __events.push({name: n, ...d})); true`)); err != nil {
			t.Fatal(err)
		}
		w.click(ctx, ".launcher")
		w.keys(ctx, "What is Parley?\r")
		if answer := w.answered(ctx, 1); !strings.Contains(answer, "Parley") {
			t.Errorf("the demo's answer: %q", answer)
		}
	})

	t.Run("refused origin", func(t *testing.T) {
		w.t = t
		// Another site, whose origin the publishable key does not list.
		other := httptest.NewServer(w.site.Config.Handler)
		defer other.Close()
		w.load(ctx, other.URL)
		w.click(ctx, ".launcher")
		w.waitFor(ctx, "a refusal", `document.querySelector("parley-widget").shadowRoot.querySelector(".status.error")?.textContent.includes("not allowed from origin")`)
		st, _ := w.state(ctx)
		t.Logf("refusal shown: %q", st.Status)
		if !strings.Contains(st.Status, other.URL) {
			t.Errorf("the refusal %q does not name the origin %s", st.Status, other.URL)
		}
	})
}

// screenshots saves the open widget at desktop and phone sizes into
// docs/screenshots (the README shows them), and checks the phone layout
// fills the screen.
func (w *widgetRig) screenshots(ctx context.Context) {
	w.t.Helper()
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	// No blinking caret: the same page gives the same picture.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.activeElement.blur(); true`)); err != nil {
		w.t.Fatal(err)
	}
	shoot := func(name string, width, height int64, mobile bool) {
		err := chromedp.Do(ctx,
			chromedp.EmulateViewport(width, height, func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
				p.Mobile = mobile
			}),
			chromedp.Sleep(300*time.Millisecond))
		var png []byte
		if err == nil {
			png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
		}
		if err != nil {
			w.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	shoot("widget-desktop.png", 1280, 800, false)
	shoot("widget-mobile.png", 390, 844, true)
	width, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("parley-widget").shadowRoot.querySelector(".panel").getBoundingClientRect().width`))
	if width != 390 {
		w.t.Errorf("on a 390 px phone the panel is %v px wide, want the whole width", width)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		w.t.Fatal(err)
	}
}

// TestWidgetOffline: when the gateway stays unreachable the widget says it
// could not reconnect, keeps the conversation, and resumes it on "Try
// again" once the network is back, without showing anything twice.
func TestWidgetOffline(t *testing.T) {
	w := newWidgetRig(t, "")
	ctx, cancel := context.WithTimeout(w.b.ctx, 90*time.Second)
	defer cancel()
	w.load(ctx, w.site.URL)
	w.click(ctx, ".launcher")
	w.keys(ctx, "What is Parley?\r")
	w.answered(ctx, 1)
	start := time.Now()
	w.proxy.down(true)
	w.waitFor(ctx, "the widget to say it could not reconnect", `document.querySelector("parley-widget").shadowRoot.querySelector(".status.error .retry")`)
	st, _ := w.state(ctx)
	t.Logf("after %v offline: %q", time.Since(start).Round(100*time.Millisecond), st.Status)
	if !strings.Contains(st.Status, "couldn't reconnect") {
		t.Errorf("status %q", st.Status)
	}
	// "Try again" while still offline: another round of attempts.
	w.click(ctx, ".retry")
	w.waitFor(ctx, "the widget to try again", `document.querySelector("parley-widget").shadowRoot.querySelector(".status").textContent.includes("Reconnecting")`)
	// A message typed meanwhile is kept, and sent once when the network is
	// back.
	w.click(ctx, "#parley-input")
	w.keys(ctx, "How long are transcripts kept?\r")
	w.proxy.down(false)
	w.waitFor(ctx, "the widget to reconnect", `window.__events.some((e) => e.name === "status" && e.status === "reconnected")`)
	w.answered(ctx, 2)
	st, _ = w.state(ctx)
	if len(st.Messages) != 5 || st.count("user") != 2 {
		t.Errorf("after coming back the widget shows %+v; want the greeting, two questions, two answers", st.Messages)
	}
}

// TestWidgetIdle: the gateway ends an idle session normally; the widget
// does not reconnect in a loop or show an error, and the next message opens
// a new session and is answered.
func TestWidgetIdle(t *testing.T) {
	w := newWidgetRig(t, "", "PARLEY_REALTIME_IDLE_TIMEOUT=1s")
	ctx, cancel := context.WithTimeout(w.b.ctx, 60*time.Second)
	defer cancel()
	w.load(ctx, w.site.URL)
	w.click(ctx, ".launcher")
	w.keys(ctx, "What is Parley?\r")
	w.answered(ctx, 1)
	w.waitFor(ctx, "the idle session to end", `window.__events.some((e) => e.name === "status" && e.status === "disconnected")`)
	time.Sleep(2 * time.Second)
	if n := strings.Count(w.r.stderr.String(), `"session started"`); n != 1 {
		t.Errorf("%d sessions after the idle end, want 1 (no reconnect loop)", n)
	}
	st, _ := w.state(ctx)
	if st.Status != "" {
		t.Errorf("status %q after a normal idle end, want none", st.Status)
	}
	w.keys(ctx, "How long are transcripts kept?\r")
	w.answered(ctx, 2)
	if errs, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__events.filter((e) => e.name === "error"))`)); errs != "[]" {
		t.Errorf("errors: %s", errs)
	}
	st, _ = w.state(ctx)
	if len(st.Messages) != 5 {
		t.Errorf("messages %+v", st.Messages)
	}
}

// TestWidgetVoice: the visitor presses the microphone (Chromium's fake
// device plays a script of spoken fixtures), asks by voice and hears the
// answer, interrupts it by speaking, then interrupts a typed question's
// spoken answer with the stop button, and goes back to text.
func TestWidgetVoice(t *testing.T) {
	mic := micScript(t, 4*time.Second, "what_is_parley", 5*time.Second, "long_answer_stop", 60*time.Second)
	w := newWidgetRig(t, mic)
	ctx, cancel := context.WithTimeout(w.b.ctx, 120*time.Second)
	defer cancel()
	w.load(ctx, w.site.URL)
	w.click(ctx, ".launcher")
	w.click(ctx, ".mic")
	w.waitFor(ctx, "listening", `window.__events.some((e) => e.name === "state" && e.voice === "listening")`)

	// The spoken question: transcribed live into the visitor's bubble,
	// answered aloud, with the states in order.
	w.waitFor(ctx, "the spoken question", `window.__events.some((e) => e.name === "message" && e.role === "user" && e.spoken)`)
	w.waitFor(ctx, "the answer to be spoken", `window.__events.some((e) => e.name === "state" && e.voice === "speaking")`)
	// The second utterance comes while the answer plays: it interrupts.
	w.waitFor(ctx, "the spoken answer to be interrupted by speech", `window.__events.some((e) => e.name === "interrupted")`)
	// From the end of the visitor's speech (speech_stopped: "thinking") to
	// the agent's voice playing ("speaking"), on the browser's clock.
	wait, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`(() => {
	  const s = window.__events.filter((e) => e.name === "state");
	  const think = s.find((e) => e.voice === "thinking"), speak = s.find((e) => e.voice === "speaking");
	  return speak.at - think.at;
	})()`))
	t.Logf("voice: %.0f ms from the end of speech detected to the answer playing", wait)
	w.logVoiceStages()
	states, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__events.filter((e) => e.name === "state").map((e) => e.voice)`))
	t.Logf("voice states: %v", states)
	if !inOrder(states, "listening", "hearing", "thinking", "speaking", "hearing") {
		t.Errorf("voice states %v: want listening, hearing, thinking, speaking, then hearing (the interruption)", states)
	}
	st, _ := w.state(ctx)
	var transcript string
	for _, m := range st.Messages {
		if m.Role == "user" {
			transcript = m.Text
			break
		}
	}
	if !strings.Contains(strings.ToLower(transcript), "parley") {
		t.Errorf("the visitor's transcript %q does not contain \"parley\"", transcript)
	}

	// Wait for the agent to finish with the second utterance, then type a
	// question: its answer is spoken, and the stop button cuts it.
	w.waitFor(ctx, "quiet", `(() => {
	  const s = window.__events.filter((e) => e.name === "state").map((e) => e.voice);
	  return s[s.length - 1] === "listening" && !document.querySelector("parley-widget").shadowRoot.querySelector(".msg.pending");
	})()`)
	before, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__events.filter((e) => e.name === "interrupted").length`))
	w.click(ctx, "#parley-input")
	w.keys(ctx, "What is Parley?\r")
	w.waitFor(ctx, "the typed question's answer to be spoken", `(() => {
	  const s = window.__events.filter((e) => e.name === "state").map((e) => e.voice);
	  return s[s.length - 1] === "speaking";
	})()`)
	w.click(ctx, ".stop")
	w.waitFor(ctx, "the stop button to cut the answer", fmt.Sprintf(
		`window.__events.filter((e) => e.name === "interrupted").length > %d`, before))
	w.waitFor(ctx, "listening after the stop", `(() => {
	  const s = window.__events.filter((e) => e.name === "state").map((e) => e.voice);
	  return s[s.length - 1] === "listening";
	})()`)

	// Back to text: the conversation goes on over a WebSocket.
	w.click(ctx, ".endvoice")
	w.waitFor(ctx, "voice off", `document.querySelector("parley-widget").shadowRoot.querySelector(".voicebar").hidden`)
	n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__events.filter((e) => e.name === "message" && e.role === "assistant").length`))
	w.keys(ctx, "Hello there.\r")
	w.answered(ctx, n+1)
	if errs, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.__events.filter((e) => e.name === "error"))`)); errs != "[]" {
		t.Errorf("errors during the voice conversation: %s", errs)
	}
}

// emulateMedia sets the CSS media features the page sees (none: reset).
func emulateMedia(features ...*emulation.MediaFeature) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: features})
		return err
	})
}

// logVoiceStages logs parleyd's own timeline of the spoken turns so far
// (parley_voice_turn_seconds: mean seconds from the end of speech to each
// stage), to tell where a slow answer spent its time.
func (w *widgetRig) logVoiceStages() {
	resp, err := http.Get("http://" + w.r.m.Addr.String() + "/metrics")
	if err != nil {
		w.t.Logf("metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sums, counts := map[string]float64{}, map[string]float64{}
	for line := range strings.Lines(string(b)) {
		for _, kind := range []string{"_sum", "_count"} {
			prefix := "parley_voice_turn_seconds" + kind + `{stage="`
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			stage, rest, _ := strings.Cut(strings.TrimPrefix(line, prefix), `"}`)
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if kind == "_sum" {
				sums[stage] = v
			} else {
				counts[stage] = v
			}
		}
	}
	var sb strings.Builder
	for _, st := range []string{"end_of_turn", "first_partial", "final_transcript", "first_token", "first_audio", "first_audio_sent"} {
		if counts[st] > 0 {
			fmt.Fprintf(&sb, " %s %.0f ms;", st, 1000*sums[st]/counts[st])
		}
	}
	w.t.Logf("parleyd's voice timeline from the end of speech (means):%s", sb.String())
}

// inOrder reports whether want appears in got as a subsequence.
func inOrder(got []string, want ...string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// micScript writes a WAV for Chromium's fake microphone: silences
// (time.Duration) and spoken fixtures (names), in order. It plays once
// from when the page opens the microphone.
func micScript(t *testing.T, parts ...any) string {
	t.Helper()
	const rate = 24000
	var pcm []int16
	for _, p := range parts {
		switch p := p.(type) {
		case time.Duration:
			pcm = append(pcm, make([]int16, int(p.Seconds()*rate))...)
		case string:
			pcm = append(pcm, fixturePCM(t, p)...)
		}
	}
	path := filepath.Join(t.TempDir(), "mic.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(media.EncodeWAV(f, pcm, rate), f.Close()); err != nil {
		t.Fatal(err)
	}
	return path
}

// tcpProxy forwards TCP connections to target, and can cut them all.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	refuse bool // close new connections at once (the network is down)
	wg     sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.dropAll()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Add(2)
		go pipe(u, c)
		go pipe(c, u)
	}
}

// down takes the network down (cutting every connection) or brings it up.
func (p *tcpProxy) down(down bool) {
	p.mu.Lock()
	p.refuse = down
	p.mu.Unlock()
	if down {
		p.dropAll()
	}
}

// dropAll cuts every open connection and returns how many pairs it cut.
func (p *tcpProxy) dropAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	n := len(p.conns) / 2
	clear(p.conns)
	return n
}
