package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/access"
	"parley/realtime"
)

func TestSessionLimitPerKey(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) { o.MaxSessionsPerKey = 1 })
	first := h.mustDial()
	c, _, err := h.dial("?model=assistant", nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := c.next()
	if ev["type"] != realtime.TypeError || ev["error"].(map[string]any)["code"] != realtime.CodeSessionLimitReached ||
		!strings.Contains(ev["error"].(map[string]any)["message"].(string), "this key") {
		t.Fatalf("second session of the key: %v", ev)
	}
	if _, err := c.read(2 * time.Second); websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
		t.Fatalf("close %v, want 1013", err)
	}
	_ = first.conn.Close(websocket.StatusNormalClosure, "")
	waitNoSessions(t, h.gw)
	h.mustDial() // the slot came back
}

func TestSessionLimitPerTenant(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) { o.MaxSessionsPerTenant = 2 })
	h.mustDial()
	h.mustDial()
	c, _, err := h.dial("?model=assistant", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := c.next(); ev["type"] != realtime.TypeError || !strings.Contains(ev["error"].(map[string]any)["message"].(string), "organisation") {
		t.Fatalf("third session of the tenant: %v", ev)
	}
}

func TestRateLimitPerKeyAndIP(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) {
		o.RatePerKey, o.BurstPerKey = 0.5, 3
	})
	for i := 0; i < 3; i++ {
		if code, m := h.mint(testKey, "application/json", `{}`); code != 200 {
			t.Fatalf("request %d within the burst: %d %v", i, code, m)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/realtime/client_secrets", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("over the key's rate: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := counterValue(h.gw.metrics.rateLimited.WithLabelValues("key")); n != 1 {
		t.Errorf("rate-limited counter %v", n)
	}

	// Per IP, before any authentication: even unauthenticated guessing is
	// throttled.
	h2 := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) { o.RatePerIP, o.BurstPerIP = 1, 2 })
	codes := []int{}
	for i := 0; i < 3; i++ {
		code, _ := h2.mint("sk_guess_0123456789abcdef", "application/json", `{}`)
		codes = append(codes, code)
	}
	if codes[0] != 401 || codes[1] != 401 || codes[2] != 429 {
		t.Fatalf("guesses from one address: %v, want 401 401 429", codes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, h2.url+"/v1/realtime?model=assistant", nil); err == nil || resp.StatusCode != 429 {
		t.Fatalf("WebSocket over the IP's rate: %v %v", err, resp)
	}
}

func TestPlanLimits(t *testing.T) {
	plan := "free"
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) {
		o.MaxSessionsPerTenant = 100
		o.Plans = map[string]PlanLimits{"free": {MaxSessions: 1, RatePerKey: 0.1, BurstPerKey: 2}, "team": {MaxSessions: 3}}
		o.PlanOf = func(ctx context.Context, tenantID string) (string, error) { return plan, nil }
	})
	h.mustDial() // one session: the free plan's limit
	c, _, err := h.dial("?model=assistant", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := c.next(); ev["type"] != realtime.TypeError || !strings.Contains(ev["error"].(map[string]any)["message"].(string), "organisation") {
		t.Fatalf("second session on the free plan: %v", ev)
	}
	// The free plan's request rate: the burst of 2 (both dials above) is spent.
	if code, _ := h.mint(testKey, "application/json", `{}`); code != 429 {
		t.Fatalf("over the free plan's rate: %d", code)
	}
	// Another plan's limits apply once the cached plan expires; here a new
	// server sees "team" at once.
	plan = "team"
	h2 := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) {
		o.Plans = map[string]PlanLimits{"team": {MaxSessions: 2}}
		o.PlanOf = func(ctx context.Context, tenantID string) (string, error) { return plan, nil }
	})
	h2.mustDial()
	h2.mustDial()
	c, _, _ = h2.dial("?model=assistant", nil)
	if ev := c.next(); ev["type"] != realtime.TypeError {
		t.Fatalf("third session on a two-session plan: %v", ev)
	}
}

// TestSlowBodyIsCutOff: a client that sends its headers and then trickles
// its body does not hold the request open.
func TestSlowBodyIsCutOff(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 300 * time.Millisecond
	defer func() { bodyReadTimeout = old }()
	h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = fmt.Fprintf(conn, "POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", testKey)
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the trickling request was held %v", d)
	}
	if !strings.Contains(string(b), "400") && len(b) != 0 {
		t.Logf("answer: %q", b)
	}
}

// TestRateLimitPerIPBehindProxy: behind a trusted load balancer each
// client (X-Forwarded-For) has its own bucket; a forged header from an
// untrusted peer does not escape the peer's.
func TestRateLimitPerIPBehindProxy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		want    []int // statuses of requests from clients a, b, a, b, a
	}{
		{"trusted proxy", []string{"127.0.0.1"}, []int{401, 401, 401, 401, 429}},
		{"untrusted peer", nil, []int{401, 401, 429, 429, 429}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ips, err := access.NewClientIPs(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, &scriptAgent{deltas: []string{"Hi."}}, func(o *Options) {
				o.RatePerIP, o.BurstPerIP, o.ClientIPs = 0.01, 2, ips
			})
			for i, client := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.1", "203.0.113.2", "203.0.113.1"} {
				req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/realtime/client_secrets", strings.NewReader(`{}`))
				req.Header.Set("Authorization", "Bearer sk_guess_0123456789abcdef")
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", client)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want[i] {
					t.Fatalf("request %d from %s: %d, want %d", i, client, resp.StatusCode, tc.want[i])
				}
			}
		})
	}
}
