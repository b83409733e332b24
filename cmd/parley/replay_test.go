package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// textRecording is a two-question text session for the echo agent of
// gatewayServer.
const textRecording = `{"parley_recording":1,"name":"echo","agent":"assistant"}
{"expect":{"reply_contains":"said: hi"}}
{"send":{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}}}
{"send":{"type":"response.create"}}
{"expect":{"reply_contains":"said: bye"}}
{"await":"response.done","dt":5,"send":{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"bye"}]}}}
{"send":{"type":"response.create"}}
`

func writeRec(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplayCommand: a load of recorded sessions against a real gateway,
// with its reports and thresholds.
func TestReplayCommand(t *testing.T) {
	srv, _ := gatewayServer(t, false)
	dir := t.TempDir()
	writeRec(t, dir, "echo.jsonl", textRecording)
	jsonPath, csvPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.html")
	code, out, errOut := cli("replay", "-url", srv.URL, "-key", key, "-c", "4", "-n", "12", "-progress", "off",
		"-json", jsonPath, "-csv", csvPath, "-html", htmlPath, "-slo", "p99(reply_first_token)<2s", "-slo", "errors<1%", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "12 sessions") || !strings.Contains(out, "reply_first_token") || !strings.Contains(errOut, "all 2 SLOs met") {
		t.Errorf("output:\n%s\n%s", out, errOut)
	}
	var js struct {
		Sessions int `json:"sessions"`
		Metrics  map[string]struct {
			Count int `json:"count"`
		} `json:"metrics"`
	}
	b, _ := os.ReadFile(jsonPath)
	if err := json.Unmarshal(b, &js); err != nil || js.Sessions != 12 || js.Metrics["reply_done"].Count != 24 {
		t.Errorf("JSON report %s (%v)", b, err)
	}
	if c, _ := os.ReadFile(csvPath); strings.Count(string(c), "\n") != 25 {
		t.Errorf("CSV report: %d lines, want a header and 24 answers:\n%s", strings.Count(string(c), "\n"), c)
	}
	if h, _ := os.ReadFile(htmlPath); !strings.Contains(string(h), "<svg") {
		t.Errorf("no HTML report with plots")
	}
	// An SLO the run cannot meet: exit 1, the report still written.
	code, out, errOut = cli("replay", "-url", srv.URL, "-key", key, "-progress", "off", "-slo", "max(reply_done)<1us", dir)
	if code != 1 || !strings.Contains(errOut, "SLO missed") || !strings.Contains(out, "1 sessions") {
		t.Errorf("impossible SLO: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestReplayCommandErrors(t *testing.T) {
	srv, _ := gatewayServer(t, false)
	dead := httptest.NewServer(nil)
	dead.Close()
	dir := t.TempDir()
	good := writeRec(t, dir, "good.jsonl", textRecording)
	truncated := writeRec(t, dir, "truncated.jsonl", textRecording[:len(textRecording)-10])
	future := writeRec(t, dir, "future.jsonl", strings.Replace(textRecording, `"parley_recording":1`, `"parley_recording":9`, 1))
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no recordings", []string{"-key", key}, 2, "name at least one recording"},
		{"missing file", []string{"-key", key, filepath.Join(dir, "nope.jsonl")}, 1, "nope.jsonl"},
		{"empty directory", []string{"-key", key, empty}, 1, "no *.jsonl recordings"},
		{"truncated", []string{"-key", key, truncated}, 1, "truncated.jsonl:7"},
		{"future version", []string{"-key", key, future}, 1, "future.jsonl:1: unsupported recording version 9"},
		{"bad slo", []string{"-key", key, "-slo", "p99(x)<1s", good}, 2, `"x" is not a metric`},
		{"bad speed", []string{"-key", key, "-speed", "0", good}, 2, "-speed"},
		{"no key", []string{"-key", "", good}, 2, "no key"},
		{"refused key", []string{"-url", srv.URL, "-key", "sk_wrong_0123456789abcdef", "-progress", "off", good}, 1, "auth"},
		{"unreachable", []string{"-url", dead.URL, "-key", key, "-progress", "off", good}, 1, "unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(append([]string{"replay"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}
