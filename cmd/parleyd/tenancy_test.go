package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/gateway"
	"parley/storage"
)

// storeKey stores a key of the default tenant and returns its secret.
func storeKey(t *testing.T, r *running, kind string, scopes, agents, origins []string) (string, *storage.Key) {
	t.Helper()
	secret := gateway.NewSecretKey()
	if kind == storage.KeyPublishable {
		secret = "pk_" + strings.TrimPrefix(secret, "sk_")
	}
	k := &storage.Key{ID: "key_" + secret[3:15], TenantID: storage.DefaultTenant, Kind: kind, Prefix: secret[:gateway.KeyPrefixLen],
		Hash: gateway.HashKey(secret), Scopes: scopes, AgentIDs: agents, Origins: origins, CreatedAt: time.Now().UTC()}
	if err := r.m.Store.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return secret, k
}

func postJSON(t *testing.T, url, key, origin, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestKeyKindsAndRevocation: publishable keys mint ephemeral keys only
// from their origins and for their agents; scopes bound secret keys; a
// revoked key stops working within seconds; no refusal logs the key.
func TestKeyKindsAndRevocation(t *testing.T) {
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+t.TempDir()+"/p.db")
	base := "http" + strings.TrimPrefix(r.base, "ws")
	secrets := "/v1/realtime/client_secrets"

	pk, _ := storeKey(t, r, storage.KeyPublishable, nil, []string{"assistant"}, []string{"https://shop.example.com"})
	if code, body := postJSON(t, base+secrets, pk, "https://evil.example.net", `{}`); code != 403 || !strings.Contains(body, "origin_not_allowed") {
		t.Errorf("publishable key from a disallowed origin: %d %s", code, body)
	}
	if code, body := postJSON(t, base+secrets, pk, "", `{}`); code != 403 {
		t.Errorf("publishable key without an origin: %d %s", code, body)
	}
	if code, body := postJSON(t, base+secrets, pk, "https://shop.example.com", `{"session":{"model":"assistant"}}`); code != 200 || !strings.Contains(body, `"ek_`) {
		t.Errorf("publishable key from its origin: %d %s", code, body)
	}
	// A publishable key cannot open a session itself.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, r.base+"/v1/realtime?model=assistant", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + pk}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("session with a publishable key: %v %v", err, resp)
	}
	// A management-only secret key cannot use the realtime API.
	mgmt, _ := storeKey(t, r, storage.KeySecret, []string{storage.ScopeManagement}, nil, nil)
	if code, body := postJSON(t, base+secrets, mgmt, "", `{}`); code != 403 || !strings.Contains(body, "insufficient_scope") {
		t.Errorf("management-only key minting: %d %s", code, body)
	}
	// A realtime key works until it is revoked, then within seconds not.
	rt, rtKey := storeKey(t, r, storage.KeySecret, []string{storage.ScopeRealtime}, nil, nil)
	if code, body := postJSON(t, base+secrets, rt, "", `{}`); code != 200 {
		t.Fatalf("realtime key: %d %s", code, body)
	}
	if err := r.m.Store.RevokeKey(context.Background(), storage.DefaultTenant, rtKey.ID, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := postJSON(t, base+secrets, rt, "", `{}`)
		if code == 401 && strings.Contains(body, "invalid_api_key") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked key still accepted after 10 s: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	logs := r.stderr.String()
	for _, secret := range []string{pk, mgmt, rt} {
		if strings.Contains(logs, secret) || strings.Contains(logs, secret[12:]) {
			t.Errorf("the logs hold a key")
		}
	}
	if !strings.Contains(logs, "publishable key refused") {
		t.Errorf("the refusal of the publishable key was not logged")
	}
}

// TestManagementAPIToCall: a business signs up through the management API,
// creates a publishable key for its website, and that key's ephemeral key
// opens a realtime session stored under the business's tenant.
func TestManagementAPIToCall(t *testing.T) {
	r := start(t, "../../configs/parley.yaml", "PARLEY_STORAGE_URL="+t.TempDir()+"/p.db")
	base := "http" + strings.TrimPrefix(r.base, "ws")
	code, body := postJSON(t, base+"/v1/auth/register", "", "",
		`{"name":"Ada","email":"ada@shop.example","company":"Shop","password":"correct horse battery"}`)
	if code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	var reg struct {
		Token  string `json:"token"`
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(body), &reg); err != nil || reg.Token == "" || reg.Tenant.ID == "" {
		t.Fatalf("register body %s", body)
	}
	code, body = postJSON(t, base+"/v1/tenants/"+reg.Tenant.ID+"/agents", reg.Token, "", `{"id":"assistant","name":"Shop assistant","engine":"kb",
		"greeting":"Welcome to the shop!","settings":{"knowledge":{"returns.md":"# Returns\n\nYou can return any item within 30 days of delivery for a full refund."}}}`)
	if code != 201 && code != 200 {
		t.Fatalf("create agent: %d %s", code, body)
	}
	code, body = postJSON(t, base+"/v1/tenants/"+reg.Tenant.ID+"/keys", reg.Token, "",
		`{"kind":"publishable","agent_ids":["assistant"],"origins":["https://shop.example"]}`)
	if code != 201 && code != 200 {
		t.Fatalf("create key: %d %s", code, body)
	}
	var key struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(body), &key); err != nil || !strings.HasPrefix(key.Value, "pk_") {
		t.Fatalf("key body %s", body)
	}
	code, body = postJSON(t, base+"/v1/realtime/client_secrets", key.Value, "https://shop.example", `{"session":{"model":"assistant"}}`)
	if code != 200 {
		t.Fatalf("mint with the publishable key: %d %s", code, body)
	}
	var ek struct {
		Value string `json:"value"`
	}
	_ = json.Unmarshal([]byte(body), &ek)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, r.base+"/v1/realtime?model=gpt-realtime", &websocket.DialOptions{
		Subprotocols: []string{"realtime", "openai-insecure-api-key." + ek.Value}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	c := &wsClient{t: t, conn: conn}
	ev := c.next()
	sessID, _ := ev["session"].(map[string]any)["id"].(string)
	// The tenant's own agent answers, from the tenant's own knowledge.
	var greeting string
	for _, ev := range c.until("conversation.item.done") {
		if ev["type"] == "conversation.item.done" {
			greeting, _ = ev["item"].(map[string]any)["content"].([]any)[0].(map[string]any)["text"].(string)
		}
	}
	if greeting != "Welcome to the shop!" {
		t.Errorf("greeting %q: not the tenant's agent", greeting)
	}
	answer, _ := c.ask("How many days do I have to return an item?")
	if !strings.Contains(answer, "30 days") {
		t.Fatalf("answer %q: not from the tenant's knowledge", answer)
	}
	// Another tenant reaches neither this tenant's agent nor the
	// operator's configured ones (OWASP API1).
	code, body = postJSON(t, base+"/v1/auth/register", "", "",
		`{"name":"Bo","email":"bo@other.example","company":"Other","password":"another horse battery"}`)
	if code != 201 {
		t.Fatalf("register B: %d %s", code, body)
	}
	var regB struct {
		Token  string `json:"token"`
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
	}
	_ = json.Unmarshal([]byte(body), &regB)
	code, body = postJSON(t, base+"/v1/tenants/"+regB.Tenant.ID+"/keys", regB.Token, "", `{"kind":"secret","scopes":["realtime"]}`)
	if code != 201 {
		t.Fatalf("B's key: %d %s", code, body)
	}
	var keyB struct {
		Value string `json:"value"`
	}
	_ = json.Unmarshal([]byte(body), &keyB)
	if code, body := postJSON(t, base+"/v1/realtime/client_secrets", keyB.Value, "", `{"session":{"model":"assistant"}}`); code != 404 || strings.Contains(body, "agents:") {
		t.Errorf("B asking for agent \"assistant\" (A's, and the operator's): %d %s", code, body)
	}
	convID := "conv_" + strings.TrimPrefix(sessID, "sess_")
	deadline := time.Now().Add(5 * time.Second)
	for {
		conv, err := r.m.Store.GetConversation(ctx, reg.Tenant.ID, convID)
		if err == nil {
			if conv.TenantID != reg.Tenant.ID {
				t.Fatalf("conversation stored under %q", conv.TenantID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("conversation not stored under the new tenant: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := r.m.Store.GetConversation(ctx, storage.DefaultTenant, convID); err == nil {
		t.Fatal("the conversation is visible to the default tenant")
	}
	// The realtime requests are in the tenant's API call log, attributed
	// to the publishable key, without bodies.
	want := map[string]int{"POST /v1/realtime/client_secrets": 200, "GET /v1/realtime": 101}
	for deadline := time.Now().Add(5 * time.Second); ; {
		calls, _, err := r.m.Store.ListAPICalls(ctx, reg.Tenant.ID, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, c := range calls {
			if st, ok := want[c.Method+" "+c.Route]; ok && st == c.Status && strings.HasPrefix(c.KeyID, "key_") {
				found++
			}
		}
		if found >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API call log %+v lacks the realtime calls", calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get(base + "/v1/openapi.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("openapi: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestFailedStartLosesNoKey: a start that fails (the HTTP port is taken)
// must not generate the first key without printing it; the next start
// prints one.
func TestFailedStartLosesNoKey(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	db := t.TempDir() + "/p.db"
	env := []string{"PARLEY_STORAGE_URL=" + db, "PARLEY_WEBRTC_UDP_ADDRESS=", "PARLEY_LOG_FORMAT=json",
		"PARLEY_PRIVACY_MASTER_KEY_FILE=" + t.TempDir() + "/master.key"}
	var out syncBuffer
	if code := NewMain().Main(context.Background(), []string{"-config", "../../configs/parley.yaml"},
		append(env, "PARLEY_HTTP_ADDR="+busy.Addr().String()), &out, io.Discard); code == 0 {
		t.Fatal("started on a taken port")
	}
	if strings.Contains(out.String(), "sk_") {
		t.Fatalf("a failed start printed a key: %s", out.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := NewMain()
	done := make(chan int, 1)
	go func() {
		done <- m.Main(ctx, []string{"-config", "../../configs/parley.yaml"}, append(env, "PARLEY_HTTP_ADDR=127.0.0.1:0"), &out, io.Discard)
	}()
	select {
	case <-m.Ready:
	case code := <-done:
		t.Fatalf("exited %d", code)
	case <-time.After(20 * time.Second):
		t.Fatal("did not start")
	}
	cancel()
	<-done
	if !regexp.MustCompile(`sk_[0-9A-Za-z]{43}`).MatchString(out.String()) {
		t.Fatalf("the first successful start did not print the generated key: %s", out.String())
	}
}
