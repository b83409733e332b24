package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"parley/storage"
)

// TestDemoTokens: the demo page's token endpoint mints a working key for
// pages of the gateway's own origin on this machine, and for nobody else.
func TestDemoTokens(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, nil)
	h.gw.Handle("POST /demo/token", h.gw.DemoTokens(storage.DefaultTenant, "assistant"))
	own := h.srv.URL // the gateway's origin: http://127.0.0.1:port
	port := h.srv.URL[strings.LastIndexByte(h.srv.URL, ':')+1:]
	tests := []struct {
		name, host, origin, site, ctype, body string // host: the Host header ("": the server's address)
		status                                int
		code                                  string
	}{
		{"own page, text", "", own, "", "application/json", `{"agent":"assistant"}`, 200, ""},
		{"own page, same-origin fetch", "", own, "same-origin", "application/json", `{}`, 200, ""},
		{"own page as localhost", "localhost:" + port, "http://localhost:" + port, "same-origin", "application/json", `{}`, 200, ""},
		{"own page as 127.1.2.3", "127.1.2.3:" + port, "http://127.1.2.3:" + port, "", "application/json", `{}`, 200, ""},
		{"own page as [::1]", "[::1]:" + port, "http://[::1]:" + port, "", "application/json", `{}`, 200, ""},
		{"voice, on a gateway without speech", "", own, "", "application/json", `{"voice":true}`, 400, "unsupported"},
		{"another site", "", "https://evil.example", "", "application/json", `{}`, 403, "origin_not_allowed"},
		{"another site, same-origin claimed", "", "https://evil.example", "same-origin", "application/json", `{}`, 403, "origin_not_allowed"},
		{"no origin (not a browser page)", "", "", "", "application/json", `{}`, 403, "origin_not_allowed"},
		{"own origin, but a cross-site fetch", "", own, "cross-site", "application/json", `{}`, 403, "origin_not_allowed"},
		{"own origin, but a same-site fetch", "", own, "same-site", "application/json", `{}`, 403, "origin_not_allowed"},
		{"own origin, but a user-initiated request", "", own, "none", "application/json", `{}`, 403, "origin_not_allowed"},
		// DNS rebinding: evil.example resolves to 127.0.0.1, so its page
		// is same-origin with itself and names its own host.
		{"DNS rebinding", "evil.example:" + port, "http://evil.example:" + port, "same-origin", "application/json", `{}`, 403, "demo_local_only"},
		{"DNS rebinding, no Sec-Fetch-Site", "evil.example:" + port, "http://evil.example:" + port, "", "application/json", `{}`, 403, "demo_local_only"},
		{"a LAN address as Host", "192.168.1.20:" + port, "http://192.168.1.20:" + port, "", "application/json", `{}`, 403, "demo_local_only"},
		{"localhost's lookalike", "localhost.evil.example:" + port, "http://localhost.evil.example:" + port, "", "application/json", `{}`, 403, "demo_local_only"},
		{"another agent", "", own, "", "application/json", `{"agent":"other"}`, 400, "invalid_value"},
		{"not JSON", "", own, "", "text/plain", `hi`, 415, ""},
		{"unknown field", "", own, "", "application/json", `{"model":"x"}`, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/demo/token", strings.NewReader(tc.body))
			req.Host = tc.host
			req.Header.Set("Content-Type", tc.ctype)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.site != "" {
				req.Header.Set("Sec-Fetch-Site", tc.site)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				if tc.code != "" && errCode(body) != tc.code {
					t.Errorf("body %s, want code %s", body, tc.code)
				}
				if tc.status == 403 && !strings.Contains(string(body), "on this machine") {
					t.Errorf("refusal %s does not say the demo is for this machine only", body)
				}
				return
			}
			var m struct{ Value string }
			if err := json.Unmarshal(body, &m); err != nil || !strings.HasPrefix(m.Value, "ek_") {
				t.Fatalf("body %s", body)
			}
			// The key opens a session from the gateway's own page.
			c, _, err := h.dialFrom(m.Value, own)
			if err != nil {
				t.Fatalf("dial with the demo key: %v", err)
			}
			defer c.conn.CloseNow()
			if ev := c.next(); ev["type"] != "session.created" {
				t.Errorf("first event %v", ev)
			}
		})
	}
}

// TestDemoTokensLoopbackPeer: the demo token endpoint answers only
// connections from this machine, whatever the headers say.
func TestDemoTokensLoopbackPeer(t *testing.T) {
	h := newHarness(t, &scriptAgent{}, nil)
	demo := h.gw.DemoTokens(storage.DefaultTenant, "assistant")
	for _, tc := range []struct {
		remote string
		xff    string
		status int
	}{
		{"127.0.0.1:50000", "", 200},
		{"127.9.9.9:50000", "", 200},
		{"[::1]:50000", "", 200},
		{"[::ffff:127.0.0.1]:50000", "", 200},
		{"192.168.1.20:50000", "", 403},
		{"192.168.1.20:50000", "127.0.0.1", 403}, // X-Forwarded-For does not count
		{"[fe80::1%eth0]:50000", "", 403},
		{"[2001:db8::1]:50000", "", 403},
		{"garbage", "", 403},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://localhost:8080/demo/token", strings.NewReader(`{}`))
		req.RemoteAddr = tc.remote
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "http://localhost:8080")
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		rec := httptest.NewRecorder()
		demo.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("from %s (X-Forwarded-For %q): %d %s, want %d", tc.remote, tc.xff, rec.Code, rec.Body, tc.status)
		}
		if tc.status == 403 && errCode(rec.Body.Bytes()) != "demo_local_only" {
			t.Errorf("from %s: %s, want demo_local_only", tc.remote, rec.Body)
		}
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:8080": true, "LOCALHOST:8080": true,
		"127.0.0.1": true, "127.0.0.1:8080": true, "127.255.0.1:1": true,
		"[::1]:8080": true, "[::1]": true, "::1": true,
		"": false, "localhost.": false, "localhost.evil.example": false, "evil.example:8080": false,
		"128.0.0.1:8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "[fe80::1%25lo]:8080": false,
		"10.0.0.1": false, "127.1:8080": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
