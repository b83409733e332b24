package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/realtime"
	"parley/rtc/rtctest"
	"parley/storage"
)

// The business's page, which is not in the gateway's allowed origins, and
// its publishable keys.
const (
	shopOrigin    = "https://shop.example"
	allowedOrigin = "https://www.allowed.example" // matches the harness's realtime.allowed_origins
	evilOrigin    = "https://evil.example"
	pkKey         = "pk_test_shop_0123456789abcdef"
	pkOtherAgent  = "pk_test_other_0123456789abcdef" // bound to an agent the tenant lacks
)

// originAuth knows the operator's secret key and two publishable keys of
// the default tenant, both allowed from shopOrigin.
func originAuth() tenantAuth {
	pk := func(id string, agents ...string) Principal {
		return Principal{TenantID: storage.DefaultTenant, KeyID: id, Kind: storage.KeyPublishable,
			AgentIDs: agents, Origins: []string{shopOrigin}}
	}
	return tenantAuth{
		testKey:      ownerPrincipal(storage.DefaultTenant, "key-sk"),
		pkKey:        pk("key-pk", "assistant"),
		pkOtherAgent: pk("key-pk-other", "other"),
	}
}

func withOriginAuth(o *Options) {
	o.Auth = originAuth()
	o.AllowedOrigins = []string{"*.allowed.example"}
}

// mintFrom mints an ephemeral key with key from a page at origin ("" for
// no Origin header).
func (h *harness) mintFrom(key, origin string) string {
	h.t.Helper()
	return h.mintBody(key, origin, `{}`)
}

// mintBody is mintFrom with a request body.
func (h *harness) mintBody(key, origin, body string) string {
	h.t.Helper()
	var hdr http.Header
	if origin != "" {
		hdr = http.Header{"Origin": {origin}}
	}
	res := h.post("/v1/realtime/client_secrets", "application/json", key, strings.NewReader(body), hdr)
	if res.status != http.StatusOK {
		h.t.Fatalf("mint with %.6s from %q: %d %s", key, origin, res.status, res.body)
	}
	var m struct{ Value string }
	if err := json.Unmarshal(res.body, &m); err != nil || !strings.HasPrefix(m.Value, "ek_") {
		h.t.Fatalf("mint: %s", res.body)
	}
	return m.Value
}

// dialFrom opens a WebSocket the way a browser page at origin does ("" for
// a client that is not a browser).
func (h *harness) dialFrom(key, origin string) (*client, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o := &websocket.DialOptions{Subprotocols: []string{"realtime", "openai-insecure-api-key." + key}}
	if origin != "" {
		o.HTTPHeader = http.Header{"Origin": {origin}}
	}
	conn, resp, err := websocket.Dial(ctx, h.url+"/v1/realtime?model=assistant", o)
	if err != nil {
		return nil, resp, err
	}
	h.t.Cleanup(func() { _ = conn.CloseNow() })
	return &client{t: h.t, conn: conn}, resp, nil
}

// wantRefused checks a refused dial's status and error code.
func wantRefused(t *testing.T, what string, resp *http.Response, err error, status int, code string) {
	t.Helper()
	if err == nil || resp == nil || resp.StatusCode != status {
		t.Fatalf("%s: err %v resp %v, want %d", what, err, resp, status)
	}
	if b, _ := io.ReadAll(resp.Body); errCode(b) != code {
		t.Fatalf("%s: body %s, want code %s", what, b, code)
	}
}

// wantOriginEvent checks the readable refusal of an ephemeral key from a
// page origin it may not be used from: the handshake succeeds, one error
// event says why (naming the page's origin), and the server closes with
// 1008 (policy violation).
func wantOriginEvent(t *testing.T, c *client, resp *http.Response, err error, origin string) {
	t.Helper()
	if err != nil {
		t.Fatalf("dial: %v (resp %v), want the handshake accepted", err, resp)
	}
	if p := c.conn.Subprotocol(); p != "realtime" {
		t.Errorf("subprotocol %q, want realtime", p)
	}
	ev := c.next()
	e, _ := ev["error"].(map[string]any)
	if ev["type"] != realtime.TypeError || e["type"] != "invalid_request_error" || e["code"] != "origin_not_allowed" ||
		!strings.Contains(e["message"].(string), strconv.Quote(origin)) {
		t.Fatalf("event %v, want an origin_not_allowed error naming %s", ev, origin)
	}
	_, err = c.read(5 * time.Second)
	if st := websocket.CloseStatus(err); st != websocket.StatusPolicyViolation {
		t.Fatalf("after the error: %v (status %d), want close 1008", err, st)
	}
}

// TestOriginBoundEphemeralKeyWebSocket: an ephemeral key minted for a page
// (by a publishable key from the page, or by a secret key naming the
// page's origin) opens a WebSocket from that page although the page is not
// in realtime.allowed_origins, and from no other browser origin. An
// ephemeral key refused for its origin is used up, and the page can read
// why: an error event, then close 1008.
func TestOriginBoundEphemeralKeyWebSocket(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, withOriginAuth)
	cases := []struct {
		name                string
		mintKey, mintOrigin string
		bodyOrigin          string // "origin" of the mint request
		bound               string // the origin the key is stored with
		dialOrigin          string
		refused             bool // an error event and close 1008; the key is used up
	}{
		{name: "publishable key's page", mintKey: pkKey, mintOrigin: shopOrigin, bound: shopOrigin, dialOrigin: shopOrigin},
		{name: "publishable key, not a browser", mintKey: pkKey, mintOrigin: shopOrigin, bound: shopOrigin, dialOrigin: ""},
		{name: "publishable key, another page", mintKey: pkKey, mintOrigin: shopOrigin, bound: shopOrigin, dialOrigin: evilOrigin, refused: true},
		{name: "publishable key, a server-allowed origin", mintKey: pkKey, mintOrigin: shopOrigin, bound: shopOrigin, dialOrigin: allowedOrigin, refused: true},
		{name: "publishable key, the origin in another case", mintKey: pkKey, mintOrigin: shopOrigin, bound: shopOrigin, dialOrigin: "https://SHOP.example", refused: true},
		{name: "secret key's, allowed origin", mintKey: testKey, dialOrigin: allowedOrigin},
		{name: "secret key's, not a browser", mintKey: testKey, dialOrigin: ""},
		{name: "secret key's, origin not allowed", mintKey: testKey, dialOrigin: shopOrigin, refused: true},
		// A secret key minting from a page binds nothing by itself: the page must be allowed.
		{name: "secret key's minted from a page, that page", mintKey: testKey, mintOrigin: shopOrigin, dialOrigin: shopOrigin, refused: true},
		// A secret key naming the page's origin binds the key to it.
		{name: "secret key's for a page, that page", mintKey: testKey, bodyOrigin: shopOrigin, bound: shopOrigin, dialOrigin: shopOrigin},
		{name: "secret key's for a page, normalised", mintKey: testKey, bodyOrigin: "HTTPS://Shop.Example:443/", bound: shopOrigin, dialOrigin: shopOrigin},
		{name: "secret key's for a page, not a browser", mintKey: testKey, bodyOrigin: shopOrigin, bound: shopOrigin, dialOrigin: ""},
		{name: "secret key's for a page, another page", mintKey: testKey, bodyOrigin: shopOrigin, bound: shopOrigin, dialOrigin: evilOrigin, refused: true},
		{name: "secret key's for a page, a server-allowed origin", mintKey: testKey, bodyOrigin: shopOrigin, bound: shopOrigin, dialOrigin: allowedOrigin, refused: true},
		{name: "secret key's for a page, minted from another", mintKey: testKey, mintOrigin: allowedOrigin, bodyOrigin: shopOrigin, bound: shopOrigin, dialOrigin: shopOrigin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{}`
			if tc.bodyOrigin != "" {
				body = `{"origin":` + strconv.Quote(tc.bodyOrigin) + `}`
			}
			before := counterValue(h.gw.metrics.sessionsRefused.WithLabelValues("handshake"))
			key := h.mintBody(tc.mintKey, tc.mintOrigin, body)
			if got := h.storedEphemeral(key).Origin; got != tc.bound {
				t.Errorf("stored with Origin %q, want %q", got, tc.bound)
			}
			c, resp, err := h.dialFrom(key, tc.dialOrigin)
			if tc.refused {
				wantOriginEvent(t, c, resp, err, tc.dialOrigin)
				if n := counterValue(h.gw.metrics.sessionsRefused.WithLabelValues("handshake")) - before; n != 1 {
					t.Errorf("handshake refusals counted %v, want 1", n)
				}
				// Used up by the refusal: it fails from its own page now.
				_, resp, err := h.dialFrom(key, tc.bound)
				wantRefused(t, "reuse from the key's page", resp, err, 401, "ephemeral_key_used")
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if ev := c.next(); ev["type"] != realtime.TypeSessionCreated {
				t.Fatalf("first event %v", ev)
			}
			_ = c.conn.Close(websocket.StatusNormalClosure, "")
		})
	}
	// A secret key itself from a page that is not allowed: refused as
	// before, in plain HTTP (no upgrade).
	_, resp, err := h.dialFrom(testKey, shopOrigin)
	wantRefused(t, "secret key from a page", resp, err, 403, "origin_not_allowed")
	// A refusal to a client that is not a WebSocket: the handshake's own
	// HTTP error.
	key := h.mintFrom(pkKey, shopOrigin)
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/realtime?model=assistant", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Origin", evilOrigin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 4 {
		t.Fatalf("plain GET from another origin: %v %v, want a 4xx", err, resp)
	} else {
		resp.Body.Close()
	}
	waitNoSessions(t, h.gw)
}

// storedEphemeral returns the stored record of an ephemeral key.
func (h *harness) storedEphemeral(key string) storage.EphemeralKey {
	h.t.Helper()
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	for _, k := range h.store.ephemeral {
		if bytes.Equal(k.Hash, HashKey(key)) {
			return *k
		}
	}
	h.t.Fatalf("ephemeral key %.8s… not stored", key)
	return storage.EphemeralKey{}
}

// TestClientSecretsOrigin: the "origin" of a mint request, with a secret
// key only, validated strictly and stored as browsers send it.
func TestClientSecretsOrigin(t *testing.T) {
	h := newHarness(t, &scriptAgent{}, withOriginAuth)
	cases := []struct {
		origin string
		want   string // "": refused
	}{
		{"https://shop.example", "https://shop.example"},
		{"https://shop.example/", "https://shop.example"},
		{"HTTPS://Shop.Example:443/", "https://shop.example"},
		{"http://shop.example:80", "http://shop.example"},
		{"http://shop.example:443", "http://shop.example:443"},
		{"https://shop.example:80", "https://shop.example:80"},
		{"http://localhost:8080", "http://localhost:8080"},
		{"http://127.0.0.1:03000", "http://127.0.0.1:3000"},
		{"https://[::1]:8443", "https://[::1]:8443"},
		{"https://[0:0:0:0:0:0:0:1]", "https://[::1]"},
		{"https://[2001:DB8::1]:443", "https://[2001:db8::1]"},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example"},
		{"https://my_shop.example.", "https://my_shop.example."},
		{"https://shop.example/path", ""},
		{"https://shop.example//", ""},
		{"https://shop.example/?", ""},
		{"https://shop.example?x=1", ""},
		{"https://shop.example#top", ""},
		{"https://shop.example#", ""},
		{"https://user:pw@shop.example", ""},
		{"https://user@shop.example", ""},
		{"ftp://shop.example", ""},
		{"shop.example", ""},
		{"//shop.example", ""},
		{"https:shop.example", ""},
		{"https://", ""},
		{"https:///", ""},
		{"https://shop.example:", ""},
		{"https://shop.example:0", ""},
		{"https://shop.example:65536", ""},
		{"https://shop.example:+443", ""},
		{"https://shop.example:4x3", ""},
		{"https://shop.example:8080:1", ""},
		{"https://shop..example", ""},
		{"https://.shop.example", ""},
		{"https://shop example", ""},
		{" https://shop.example", ""},
		{"https://shop.example\\", ""},
		{"https://bücher.example", ""},
		{"https://sh%6fp.example", ""},
		{"https://[::1", ""},
		{"https://[::1]x", ""},
		{"https://[fe80::1%25eth0]", ""},
		{"https://[127.0.0.1]", ""},
		{"null", ""},
		{"*", ""},
		{"https://*.shop.example", ""},
		{"https://" + strings.Repeat("a", 600) + ".example", ""},
	}
	for _, tc := range cases {
		got, problem := normalizeOrigin(tc.origin)
		if got != tc.want || (tc.want == "") != (problem != "") {
			t.Errorf("normalizeOrigin(%q) = %q, %q; want %q", tc.origin, got, problem, tc.want)
		}
		// The endpoint stores the normalised origin or refuses, naming the field.
		body := `{"origin":` + strconv.Quote(tc.origin) + `}`
		res := h.post("/v1/realtime/client_secrets", "application/json", testKey, strings.NewReader(body), nil)
		if tc.want != "" {
			var m struct{ Value string }
			if res.status != 200 || json.Unmarshal(res.body, &m) != nil {
				t.Errorf("mint for %q: %d %s", tc.origin, res.status, res.body)
			} else if o := h.storedEphemeral(m.Value).Origin; o != tc.want {
				t.Errorf("mint for %q: stored %q, want %q", tc.origin, o, tc.want)
			}
			continue
		}
		if res.status != 400 || errCode(res.body) != "invalid_value" || errParam(res.body) != "origin" {
			t.Errorf("mint for %q: %d %s, want 400 invalid_value, param origin", tc.origin, res.status, res.body)
		}
	}
	// An empty origin binds nothing.
	if k := h.storedEphemeral(h.mintBody(testKey, "", `{"origin":""}`)); k.Origin != "" {
		t.Errorf("origin \"\": stored %q", k.Origin)
	}
	// With a publishable key the page's origin is the request's; naming
	// one, even the same, is refused readably.
	for _, o := range []string{shopOrigin, evilOrigin} {
		res := h.post("/v1/realtime/client_secrets", "application/json", pkKey, strings.NewReader(`{"origin":`+strconv.Quote(o)+`}`),
			http.Header{"Origin": {shopOrigin}})
		if res.status != 400 || errCode(res.body) != "invalid_value" || errParam(res.body) != "origin" ||
			res.header.Get("Access-Control-Allow-Origin") != shopOrigin {
			t.Errorf("publishable key naming %s: %d %v %s", o, res.status, res.header, res.body)
		}
	}
}

func errParam(b []byte) string {
	var m struct {
		Error struct{ Param string } `json:"error"`
	}
	_ = json.Unmarshal(b, &m)
	return m.Error.Param
}

// TestClientSecretsReadableErrors: from a browser, every refusal of
// client_secrets carries Access-Control-Allow-Origin, so the page can read
// why; success keeps it for publishable keys only.
func TestClientSecretsReadableErrors(t *testing.T) {
	h := newHarness(t, &scriptAgent{}, withOriginAuth)
	cases := []struct {
		name, key, origin, body string
		status                  int
		code                    string
		acao                    bool
	}{
		{"publishable key from an unlisted origin", pkKey, evilOrigin, `{}`, 403, "origin_not_allowed", true},
		{"publishable key from a server-allowed origin", pkKey, allowedOrigin, `{}`, 403, "origin_not_allowed", true},
		{"publishable key not bound to the agent", pkOtherAgent, shopOrigin, `{}`, 403, "agent_not_allowed", true},
		{"publishable key naming an end user", pkKey, shopOrigin, `{"end_user":"u1"}`, 400, "invalid_value", true},
		{"publishable key naming an origin", pkKey, shopOrigin, `{"origin":"https://shop.example"}`, 400, "invalid_value", true},
		{"secret key, an origin with a path", testKey, shopOrigin, `{"origin":"https://shop.example/chat"}`, 400, "invalid_value", true},
		{"secret key for a page, from a page", testKey, shopOrigin, `{"origin":"https://shop.example"}`, 200, "", false},
		{"invalid key", "sk_wrong_0123456789abcdef", shopOrigin, `{}`, 401, "invalid_api_key", true},
		{"missing key", "", shopOrigin, `{}`, 401, "missing_api_key", true},
		{"secret key, bad body", testKey, shopOrigin, `{"ttl":5}`, 400, "unknown_parameter", true},
		{"invalid key, not a browser", "sk_wrong_0123456789abcdef", "", `{}`, 401, "invalid_api_key", false},
		{"publishable key, not a browser", pkKey, "", `{}`, 403, "origin_not_allowed", false},
		{"publishable key from its page", pkKey, shopOrigin, `{}`, 200, "", true},
		{"secret key from a page", testKey, shopOrigin, `{}`, 200, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr http.Header
			if tc.origin != "" {
				hdr = http.Header{"Origin": {tc.origin}}
			}
			res := h.post("/v1/realtime/client_secrets", "application/json", tc.key, strings.NewReader(tc.body), hdr)
			if res.status != tc.status || errCode(res.body) != tc.code {
				t.Fatalf("got %d %s, want %d %s", res.status, res.body, tc.status, tc.code)
			}
			acao := res.header.Get("Access-Control-Allow-Origin")
			switch {
			case tc.acao && acao != tc.origin:
				t.Errorf("Access-Control-Allow-Origin %q, want %q", acao, tc.origin)
			case !tc.acao && acao != "":
				t.Errorf("Access-Control-Allow-Origin %q, want none", acao)
			case tc.acao && !slices.Equal(res.header.Values("Vary"), []string{"Origin"}):
				t.Errorf("Vary %q, want [Origin]", res.header.Values("Vary"))
			case tc.acao && res.header.Get("Access-Control-Expose-Headers") != "Retry-After":
				t.Errorf("Access-Control-Expose-Headers %q, want Retry-After", res.header.Get("Access-Control-Expose-Headers"))
			}
		})
	}
}

// TestCallOriginBinding: POST /v1/realtime/calls with an ephemeral key a
// publishable key minted works from its page although the page is not in
// realtime.allowed_origins, and from no other browser origin; every
// refusal is readable by the page that got it.
func TestCallOriginBinding(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Fine."}, withOriginAuth)

	// A preflight carries no key: answered for any origin.
	for _, origin := range []string{shopOrigin, evilOrigin, allowedOrigin} {
		req, _ := http.NewRequest(http.MethodOptions, h.srv.URL+"/v1/realtime/calls", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != origin ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Fatalf("preflight from %s: %d %v", origin, resp.StatusCode, resp.Header)
		}
	}

	offer := offerSDP(t, true)
	cases := []struct {
		name              string
		mintKey, mintFrom string // mintKey "-": post with the secret key itself
		mintFor           string // the "origin" a secret key mints for
		origin, body, key string // key: a fixed key instead of a minted one
		status            int
		code              string
		burned            bool // the refusal used the key up
	}{
		{name: "publishable key's page", mintKey: pkKey, mintFrom: shopOrigin, origin: shopOrigin, status: 201},
		{name: "publishable key, another page", mintKey: pkKey, mintFrom: shopOrigin, origin: evilOrigin, status: 403, code: "origin_not_allowed", burned: true},
		{name: "publishable key, a server-allowed origin", mintKey: pkKey, mintFrom: shopOrigin, origin: allowedOrigin, status: 403, code: "origin_not_allowed", burned: true},
		{name: "publishable key, not a browser", mintKey: pkKey, mintFrom: shopOrigin, origin: "", status: 201},
		{name: "secret key's, origin not allowed", mintKey: testKey, origin: shopOrigin, status: 403, code: "origin_not_allowed", burned: true},
		{name: "secret key's, allowed origin", mintKey: testKey, origin: allowedOrigin, status: 201},
		{name: "secret key's for a page, that page", mintKey: testKey, mintFor: shopOrigin, origin: shopOrigin, status: 201},
		{name: "secret key's for a page, a server-allowed origin", mintKey: testKey, mintFor: shopOrigin, origin: allowedOrigin, status: 403, code: "origin_not_allowed", burned: true},
		{name: "secret key itself, origin not allowed", mintKey: "-", origin: shopOrigin, status: 403, code: "origin_not_allowed"},
		{name: "invalid key", key: "ek_unknown0123456789abcdefghijklmnopqrstuvwxyz0123", origin: shopOrigin, status: 401, code: "invalid_api_key"},
		{name: "bad offer", mintKey: pkKey, mintFrom: shopOrigin, origin: shopOrigin, body: "v=0\r\nnot sdp\r\n", status: 400, code: "invalid_sdp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			switch {
			case tc.mintKey == "-":
				key = testKey
			case tc.mintFor != "":
				key = h.mintBody(tc.mintKey, tc.mintFrom, `{"origin":`+strconv.Quote(tc.mintFor)+`}`)
			case tc.mintKey != "":
				key = h.mintFrom(tc.mintKey, tc.mintFrom)
			}
			body := tc.body
			if body == "" {
				body = offer
			}
			var hdr http.Header
			if tc.origin != "" {
				hdr = http.Header{"Origin": {tc.origin}}
			}
			res := h.post("/v1/realtime/calls", "application/sdp", key, strings.NewReader(body), hdr)
			if res.status != tc.status || errCode(res.body) != tc.code {
				t.Fatalf("got %d %s, want %d %s", res.status, res.body, tc.status, tc.code)
			}
			acao := res.header.Get("Access-Control-Allow-Origin")
			if acao != tc.origin || (tc.origin != "" && !slices.Equal(res.header.Values("Vary"), []string{"Origin"})) {
				t.Errorf("Access-Control-Allow-Origin %q Vary %q, want %q and Origin", acao, res.header.Values("Vary"), tc.origin)
			}
			if expose := res.header.Get("Access-Control-Expose-Headers"); tc.origin != "" && !strings.Contains(expose, "Retry-After") {
				t.Errorf("Access-Control-Expose-Headers %q, want Retry-After in it", expose)
			}
			if tc.status == 201 {
				if tc.origin != "" && res.header.Get("Access-Control-Expose-Headers") != "Location, Retry-After" {
					t.Errorf("Access-Control-Expose-Headers %q", res.header.Get("Access-Control-Expose-Headers"))
				}
				// Nobody completes ICE for it: hang it up.
				id := strings.TrimPrefix(res.header.Get("Location"), "/v1/realtime/calls/")
				if res := h.post("/v1/realtime/calls/"+id+"/hangup", "", testKey, nil, nil); res.status != 200 {
					t.Fatalf("hangup: %d %s", res.status, res.body)
				}
			}
			if tc.burned {
				res := h.post("/v1/realtime/calls", "application/sdp", key, strings.NewReader(offer), http.Header{"Origin": {tc.mintFrom}})
				if res.status != 401 || errCode(res.body) != "ephemeral_key_used" {
					t.Fatalf("reuse: %d %s, want 401 ephemeral_key_used", res.status, res.body)
				}
			}
		})
	}

	// A whole call from the page: media and events flow.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rtctest.Dial(ctx, h.httpBase(), h.mintFrom(pkKey, shopOrigin), rtctest.Options{Header: http.Header{"Origin": {shopOrigin}}})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := c.Next(5 * time.Second); err != nil || ev["type"] != realtime.TypeSessionCreated {
		t.Fatalf("first event %v %v", ev, err)
	}
	c.Close()
	waitNoSessions(t, h.gw)
}

// TestRateLimitReadable: the per-IP limit's 429 is readable by the page.
func TestRateLimitReadable(t *testing.T) {
	h := newHarness(t, &scriptAgent{}, func(o *Options) {
		withOriginAuth(o)
		o.RatePerIP, o.BurstPerIP = 0.01, 1
	})
	hdr := http.Header{"Origin": {shopOrigin}}
	for i, want := range []int{200, 429} {
		res := h.post("/v1/realtime/client_secrets", "application/json", pkKey, strings.NewReader(`{}`), hdr)
		if res.status != want || res.header.Get("Access-Control-Allow-Origin") != shopOrigin {
			t.Fatalf("request %d: %d %v, want %d with Access-Control-Allow-Origin", i, res.status, res.header, want)
		}
		// The page reads Retry-After only when it is exposed.
		if res.header.Get("Access-Control-Expose-Headers") != "Retry-After" {
			t.Errorf("request %d: Access-Control-Expose-Headers %q, want Retry-After", i, res.header.Get("Access-Control-Expose-Headers"))
		}
		if want == 429 && res.header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %v", res.header)
		}
	}
	// So does a call's.
	res := h.post("/v1/realtime/calls", "application/sdp", testKey, strings.NewReader("v=0\r\n"), hdr)
	if res.status != 429 || res.header.Get("Retry-After") == "" || res.header.Get("Access-Control-Allow-Origin") != shopOrigin ||
		!strings.Contains(res.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("call: %d %v, want 429 with Retry-After exposed", res.status, res.header)
	}
}

func TestExactOriginPattern(t *testing.T) {
	for _, tc := range []struct{ origin, want string }{
		{"https://shop.example", "https://shop.example"},
		{"http://localhost:8080", "http://localhost:8080"},
		{"http://[::1]:8080", `http://\[::1\]:8080`},
		{"not an origin", ""},
	} {
		if got := exactOriginPattern(tc.origin); got != tc.want {
			t.Errorf("exactOriginPattern(%q) = %q, want %q", tc.origin, got, tc.want)
		}
	}
}
