package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"parley/storage"
)

// TestDemoTokens: the demo page's token endpoint mints a working key for
// pages of the gateway's own origin, and for nobody else.
func TestDemoTokens(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, nil)
	h.gw.Handle("POST /demo/token", h.gw.DemoTokens(storage.DefaultTenant, "assistant"))
	own := h.srv.URL // the gateway's origin: http://127.0.0.1:port
	tests := []struct {
		name, origin, ctype, body string
		status                    int
		code                      string
	}{
		{"own page, text", own, "application/json", `{"agent":"assistant"}`, 200, ""},
		{"voice, on a gateway without speech", own, "application/json", `{"voice":true}`, 400, "unsupported"},
		{"another site", "https://evil.example", "application/json", `{}`, 403, "origin_not_allowed"},
		{"no origin (not a browser page)", "", "application/json", `{}`, 403, "origin_not_allowed"},
		{"another agent", own, "application/json", `{"agent":"other"}`, 400, "invalid_value"},
		{"not JSON", own, "text/plain", `hi`, 415, ""},
		{"unknown field", own, "application/json", `{"model":"x"}`, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr http.Header
			if tc.origin != "" {
				hdr = http.Header{"Origin": {tc.origin}}
			}
			res := h.post("/demo/token", tc.ctype, "", strings.NewReader(tc.body), hdr)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if tc.status != 200 {
				if tc.code != "" && !strings.Contains(string(res.body), `"code":"`+tc.code+`"`) {
					t.Errorf("body %s, want code %s", res.body, tc.code)
				}
				return
			}
			var m struct{ Value string }
			if err := json.Unmarshal(res.body, &m); err != nil || !strings.HasPrefix(m.Value, "ek_") {
				t.Fatalf("body %s", res.body)
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
