package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/devcert"
)

// npmClientDir holds chat.mjs and its package.json / package-lock.json;
// `make deps` runs npm ci there. go test runs in cmd/parleyd.
const npmClientDir = "../../test/npmclient"

// TestOpenAINPMClient is the compatibility check against a real client:
// the official openai npm package's OpenAIRealtimeWS (built on ws, always
// dialling wss://) holds a text conversation with the `assistant` agent of
// the default configuration, served by the real parleyd over TLS with a
// self-signed development certificate.
func TestOpenAINPMClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: install Node.js (make deps) to run the openai npm client test")
	}
	dir, err := filepath.Abs(npmClientDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"openai", "ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", mod, "package.json")); err != nil {
			t.Skipf("%s/node_modules/%s is missing: run `make deps` (npm ci in test/npmclient) to run the openai npm client test", npmClientDir, mod)
		}
	}

	tmp := t.TempDir()
	certFile, keyFile := filepath.Join(tmp, "dev-cert.pem"), filepath.Join(tmp, "dev-key.pem")
	if err := devcert.Write(certFile, keyFile, time.Hour, false); err != nil {
		t.Fatalf("devcert: %v", err)
	}
	apiKey := "sk_npmtest_" + npmRandomHex(t, 16)

	// Only the variables chosen here: a PARLEY_* variable of the caller's
	// environment (a CI database URL, say) must not redirect the server.
	env := []string{
		"PARLEY_HTTP_ADDR=127.0.0.1:0",
		"PARLEY_STORAGE_URL=" + filepath.Join(tmp, "parley.db"),
		"PARLEY_API_KEY=" + apiKey,
		"PARLEY_MASTER_KEY=" + testMasterKey,
		"PARLEY_TLS_CERT_FILE=" + certFile,
		"PARLEY_TLS_KEY_FILE=" + keyFile,
		"PARLEY_LOG_FORMAT=json",
		"PARLEY_SHUTDOWN_DRAIN_TIMEOUT=5s",
	}
	var stdout, stderr npmLockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := NewMain()
	exited := make(chan int, 1)
	go func() { exited <- m.Main(ctx, []string{"-config", "../../configs/parley.yaml"}, env, &stdout, &stderr) }()
	stopped := false // Main has returned, or was waited for in vain
	defer func() {
		cancel()
		if !stopped {
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				t.Errorf("parleyd did not stop within 15s of the context being cancelled")
			}
		}
	}()
	select {
	case <-m.Ready:
	case code := <-exited:
		stopped = true
		t.Fatalf("parleyd exited with %d before listening; log:\n%s", code, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("parleyd not listening after 30s; log:\n%s", stderr.String())
	}
	port := m.Addr.(*net.TCPAddr).Port
	baseURL := fmt.Sprintf("https://127.0.0.1:%d/v1", port)

	nodeCtx, nodeCancel := context.WithTimeout(ctx, 60*time.Second)
	defer nodeCancel()
	cmd := exec.CommandContext(nodeCtx, node, "chat.mjs")
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(npmFilterEnv(os.Environ(), "PARLEY_", "NODE_EXTRA_CA_CERTS=", "NODE_TLS_REJECT_UNAUTHORIZED=", "NODE_OPTIONS="),
		"PARLEY_BASE_URL="+baseURL,
		"PARLEY_API_KEY="+apiKey,
		"PARLEY_CA_FILE="+certFile,
		"PARLEY_QUESTION=What is Parley?",
		"PARLEY_MODEL=assistant",
		"PARLEY_TIMEOUT_MS=20000",
	)
	var nodeOut, nodeErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &nodeOut, &nodeErr
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	if runErr != nil {
		t.Fatalf("node chat.mjs against %s: %v (after %v)\nstderr:\n%s\nstdout:\n%s\nparleyd log:\n%s",
			baseURL, runErr, elapsed.Round(time.Millisecond), nodeErr.String(), nodeOut.String(), stderr.String())
	}

	var res struct {
		SessionID  string   `json:"session_id"`
		ResponseID string   `json:"response_id"`
		Text       string   `json:"text"`
		FinalText  string   `json:"final_text"`
		Status     string   `json:"status"`
		Events     []string `json:"events"`
	}
	line := npmLastLine(nodeOut.String())
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("chat.mjs printed %q, not a JSON result line: %v\nstderr:\n%s", nodeOut.String(), err, nodeErr.String())
	}
	t.Logf("openai npm client: %v for the turn; session %s, response %s, status %s", elapsed.Round(time.Millisecond), res.SessionID, res.ResponseID, res.Status)
	t.Logf("events: %s", npmCompact(res.Events))
	t.Logf("answer: %q", res.Text)

	if res.Status != "completed" {
		t.Errorf("response status %q, want completed", res.Status)
	}
	if !strings.HasPrefix(res.SessionID, "sess_") {
		t.Errorf("session_id %q, want a sess_ id from session.created", res.SessionID)
	}
	if strings.TrimSpace(res.Text) == "" {
		t.Errorf("no text arrived through response.output_text.delta")
	}
	if res.FinalText != res.Text {
		t.Errorf("response.done output text %q differs from the concatenated deltas %q", res.FinalText, res.Text)
	}
	if !strings.Contains(res.Text, "Parley") {
		t.Errorf("answer %q does not mention Parley: the kb engine should answer from configs/knowledge/assistant", res.Text)
	}
	want := []string{"session.created", "response.created", "response.output_text.delta", "response.done"}
	if !npmInOrder(res.Events, want) {
		t.Errorf("events %v do not contain %v in that order", res.Events, want)
	}
	for _, e := range res.Events {
		if e == "error" {
			t.Errorf("the server sent an error event: %v", res.Events)
		}
	}
	if t.Failed() {
		t.Logf("node stderr:\n%s\nparleyd log:\n%s", nodeErr.String(), stderr.String())
	}

	cancel()
	select {
	case code := <-exited:
		stopped = true
		if code != 0 {
			t.Fatalf("parleyd exited with %d after the context was cancelled; log:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		stopped = true
		t.Fatalf("parleyd did not stop within 15s of the context being cancelled; log:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("https://localhost:%d", port)) {
		t.Errorf("banner does not announce https on port %d:\n%s", port, stdout.String())
	}
}

// npmInOrder reports whether want occurs in got as a subsequence.
func npmInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// npmCompact joins event types, folding runs: "a b×3 c".
func npmCompact(types []string) string {
	var b strings.Builder
	for i := 0; i < len(types); {
		j := i
		for j < len(types) && types[j] == types[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(types[i])
		if j-i > 1 {
			fmt.Fprintf(&b, "×%d", j-i)
		}
		i = j
	}
	return b.String()
}

func npmLastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// npmFilterEnv drops the variables whose "NAME=" starts with any prefix.
func npmFilterEnv(environ []string, prefixes ...string) []string {
	out := make([]string, 0, len(environ))
next:
	for _, kv := range environ {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func npmRandomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// npmLockedBuffer is a bytes.Buffer safe for the server's goroutines to
// write while the test reads it.
type npmLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *npmLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *npmLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
