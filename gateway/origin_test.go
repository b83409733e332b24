package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
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
	var hdr http.Header
	if origin != "" {
		hdr = http.Header{"Origin": {origin}}
	}
	res := h.post("/v1/realtime/client_secrets", "application/json", key, strings.NewReader(`{}`), hdr)
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

// TestOriginBoundEphemeralKeyWebSocket: an ephemeral key a publishable key
// minted for a page opens a WebSocket from that page although the page is
// not in realtime.allowed_origins, and from no other browser origin.
func TestOriginBoundEphemeralKeyWebSocket(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, withOriginAuth)
	cases := []struct {
		name                   string
		mintKey, mintOrigin    string
		dialOrigin             string
		status                 int // 0: the session opens
		code                   string
		burned                 bool // the refusal used the key up
		reuseOrigin, reuseCode string
	}{
		{name: "publishable key's page", mintKey: pkKey, mintOrigin: shopOrigin, dialOrigin: shopOrigin},
		{name: "publishable key, not a browser", mintKey: pkKey, mintOrigin: shopOrigin, dialOrigin: ""},
		{name: "publishable key, another page", mintKey: pkKey, mintOrigin: shopOrigin, dialOrigin: evilOrigin,
			status: 403, code: "origin_not_allowed", burned: true},
		{name: "publishable key, a server-allowed origin", mintKey: pkKey, mintOrigin: shopOrigin, dialOrigin: allowedOrigin,
			status: 403, code: "origin_not_allowed", burned: true},
		{name: "publishable key, the origin in another case", mintKey: pkKey, mintOrigin: shopOrigin, dialOrigin: "https://SHOP.example",
			status: 403, code: "origin_not_allowed", burned: true},
		{name: "secret key's, allowed origin", mintKey: testKey, dialOrigin: allowedOrigin},
		{name: "secret key's, not a browser", mintKey: testKey, dialOrigin: ""},
		{name: "secret key's, origin not allowed", mintKey: testKey, dialOrigin: shopOrigin,
			status: 403, code: "origin_not_allowed"},
		// A secret key minting from a page binds nothing: the page must be allowed.
		{name: "secret key's minted from a page, that page", mintKey: testKey, mintOrigin: shopOrigin, dialOrigin: shopOrigin,
			status: 403, code: "origin_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := h.mintFrom(tc.mintKey, tc.mintOrigin)
			c, resp, err := h.dialFrom(key, tc.dialOrigin)
			if tc.status != 0 {
				wantRefused(t, "dial", resp, err, tc.status, tc.code)
				if tc.burned {
					// Used up by the refusal: it fails from its own page now.
					_, resp, err := h.dialFrom(key, tc.mintOrigin)
					wantRefused(t, "reuse from the key's page", resp, err, 401, "ephemeral_key_used")
				}
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
	// The stored keys carry the origin only when a publishable key minted them.
	h.store.mu.Lock()
	for _, k := range h.store.ephemeral {
		if want := map[string]string{"key-pk": shopOrigin, "key-sk": ""}[k.KeyID]; k.Origin != want {
			t.Errorf("key minted by %s: Origin %q, want %q", k.KeyID, k.Origin, want)
		}
	}
	h.store.mu.Unlock()
	// A secret key itself from a page that is not allowed: refused as before.
	_, resp, err := h.dialFrom(testKey, shopOrigin)
	wantRefused(t, "secret key from a page", resp, err, 403, "origin_not_allowed")
	waitNoSessions(t, h.gw)
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
			if tc.status == 201 {
				if tc.origin != "" && res.header.Get("Access-Control-Expose-Headers") != "Location" {
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
