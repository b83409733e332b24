package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = `
agents:
  - id: a1
    engine: kb
    knowledge_dir: kn
`

func TestDefaultConfigFileLoads(t *testing.T) {
	cfg, warnings, err := Load("../configs/parley.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Fatal(warnings)
	}
	a, ok := cfg.Agent("assistant")
	if !ok || a.Engine != EngineKB || !filepath.IsAbs(a.KnowledgeDir) || cfg.HTTP.Addr != ":8080" {
		t.Fatalf("%+v", cfg)
	}
	if cfg.Retention.TranscriptDays != 90 || cfg.Storage.URL != "./data/parley.db" {
		t.Fatalf("%+v", cfg)
	}
}

// Every key of Config appears in the documented default file.
func TestDefaultConfigDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../configs/parley.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"addr", "read_header_timeout", "idle_timeout", "cert_file", "key_file", "api_key",
		"allowed_origins", "read_limit_bytes", "outbound_queue", "write_timeout", "max_duration", "max_sessions",
		"history_messages", "url", "sweep_interval", "sweep_batch", "transcript_days", "metadata_days", "level",
		"format", "drain_timeout", "id", "name", "instructions", "greeting", "engine", "knowledge_dir", "top_k",
		"max_sentences", "base_url", "model", "api_key_env", "temperature", "max_output_tokens", "request_timeout",
		"first_token_timeout", "retries", "voice", "stt_engine", "tts_engine", "pocketsphinx", "model_dir", "lm", "dict",
		"max_decoders", "espeak", "words_per_minute", "openai_stt", "openai_tts", "timeout", "max_concurrent", "language", "engine_timeout"} {
		if !strings.Contains(string(data), key+":") {
			t.Errorf("configs/parley.yaml does not document %q", key)
		}
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "kn"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"unknown top key", "nope: 1\n" + minimal, nil, `unknown key "nope" in the top level`},
		{"unknown nested key", "http:\n  adr: x\n" + minimal, nil, `unknown key "adr" in http`},
		{"unknown agent key", "agents:\n  - id: a\n    engine: kb\n    knowledge_dir: kn\n    colour: red\n", nil, `unknown key "colour" in agents`},
		{"bad duration", "http:\n  read_header_timeout: soon\n" + minimal, nil, "read_header_timeout"},
		{"bad addr", "http:\n  addr: nohost\n" + minimal, nil, "http.addr"},
		{"bad port", "http:\n  addr: \":99999\"\n" + minimal, nil, "http.addr"},
		{"tls half", "tls:\n  cert_file: c.pem\n" + minimal, nil, "tls: cert_file and key_file must be set together"},
		{"negative retention", "retention:\n  transcript_days: -1\n" + minimal, nil, "retention.transcript_days"},
		{"metadata shorter", "retention:\n  transcript_days: 100\n  metadata_days: 50\n" + minimal, nil, "retention.metadata_days"},
		{"log level", "log:\n  level: loud\n" + minimal, nil, "log.level"},
		{"star origin", "realtime:\n  allowed_origins: ['*']\n" + minimal, nil, "realtime.allowed_origins[0]"},
		{"queue", "realtime:\n  outbound_queue: 1\n" + minimal, nil, "realtime.outbound_queue"},
		{"storage scheme", "storage:\n  url: mysql://x\n" + minimal, nil, "storage.url"},
		{"no agents", "http:\n  addr: ':1'\n", nil, "agents: at least one agent"},
		{"agent id", "agents:\n  - id: Bad Id\n    engine: kb\n    knowledge_dir: kn\n", nil, "agents[0].id"},
		{"duplicate agent", "agents:\n  - {id: a, engine: kb, knowledge_dir: kn}\n  - {id: a, engine: kb, knowledge_dir: kn}\n", nil, "agents[1].id: duplicate"},
		{"engine", "agents:\n  - {id: a, engine: gpt}\n", nil, `agents[0].engine: unknown engine "gpt"`},
		{"kb without knowledge", "agents:\n  - {id: a, engine: kb}\n", nil, "agents[0].knowledge_dir"},
		{"missing knowledge dir", "agents:\n  - {id: a, engine: kb, knowledge_dir: missing}\n", nil, "agents[0].knowledge_dir"},
		{"openai model", "agents:\n  - {id: a, engine: openai}\n", nil, "agents[0].openai.model"},
		{"openai url", "agents:\n  - {id: a, engine: openai, openai: {model: m, base_url: 'ftp://x'}}\n", nil, "agents[0].openai.base_url"},
		{"openai temperature", "agents:\n  - {id: a, engine: openai, openai: {model: m, temperature: 3}}\n", nil, "agents[0].openai.temperature"},
		{"env bad int", minimal, []string{"PARLEY_RETENTION_TRANSCRIPT_DAYS=lots"}, "PARLEY_RETENTION_TRANSCRIPT_DAYS (retention.transcript_days)"},
		{"env bad duration", minimal, []string{"PARLEY_SHUTDOWN_DRAIN_TIMEOUT=5"}, "PARLEY_SHUTDOWN_DRAIN_TIMEOUT"},
		{"env short key", minimal, []string{"PARLEY_API_KEY=short"}, "auth.api_key"},
		{"not yaml", "agents: [", nil, "yaml"},
		{"ephemeral ttl", "auth:\n  ephemeral_key_ttl: 3h\n" + minimal, nil, "auth.ephemeral_key_ttl"},
		{"webrtc udp", "webrtc:\n  udp_address: nowhere\n" + minimal, nil, "webrtc.udp_address"},
		{"webrtc tcp port", "webrtc:\n  tcp_address: ':70000'\n" + minimal, nil, "webrtc.tcp_address"},
		{"webrtc nat ip", "webrtc:\n  nat_1to1_ips: [example.com]\n" + minimal, nil, "webrtc.nat_1to1_ips[0]"},
		{"webrtc ice url", "webrtc:\n  ice_servers:\n    - urls: ['http://stun.example.com']\n" + minimal, nil, "webrtc.ice_servers[0].urls[0]"},
		{"webrtc ice no urls", "webrtc:\n  ice_servers:\n    - username: u\n" + minimal, nil, "webrtc.ice_servers[0].urls"},
		{"webrtc turn credentials", "webrtc:\n  ice_servers:\n    - urls: ['turn:t.example.com:3478']\n" + minimal, nil, "webrtc.ice_servers[0]: a TURN server needs"},
		{"webrtc ice unknown key", "webrtc:\n  ice_servers:\n    - url: x\n" + minimal, nil, `unknown key "url" in webrtc.ice_servers[]`},
		{"webrtc connect timeout", "webrtc:\n  connect_timeout: 500ms\n" + minimal, nil, "webrtc.connect_timeout"},
		{"webrtc per key", "webrtc:\n  max_calls: 5\n  max_calls_per_key: 6\n" + minimal, nil, "webrtc.max_calls_per_key"},
		{"negative session limit", "realtime:\n  max_sessions_per_key: -1\n" + minimal, nil, "realtime.max_sessions_per_key"},
		{"rate without burst", "realtime:\n  key_requests_per_second: 5\n  key_burst: 0\n" + minimal, nil, "realtime.key_requests_per_second: needs a burst"},
		{"env bad float", minimal, []string{"PARLEY_REALTIME_IP_REQUESTS_PER_SECOND=fast"}, "PARLEY_REALTIME_IP_REQUESTS_PER_SECOND (realtime.ip_requests_per_second): invalid number"},
		{"plan name", "plans:\n  Gold Plan: {max_sessions: 1}\n" + minimal, nil, "plans.Gold Plan"},
		{"plan negative", "plans:\n  gold: {max_sessions: -1}\n" + minimal, nil, "plans.gold.max_sessions"},
		{"plan rate without burst", "plans:\n  gold: {key_requests_per_second: 3}\n" + minimal, nil, "plans.gold.key_burst"},
		{"plan unknown key", "plans:\n  gold: {sessions: 3}\n" + minimal, nil, `unknown key "sessions" in plans.*`},
		{"trusted proxy", "http:\n  trusted_proxies: [lb.example.com]\n" + minimal, nil, "http.trusted_proxies[0]"},
		{"env bad bool", minimal, []string{"PARLEY_WEBRTC_INCLUDE_LOOPBACK=sometimes"}, "PARLEY_WEBRTC_INCLUDE_LOOPBACK (webrtc.include_loopback): invalid boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, "c.yaml", tt.yaml)
			_, _, err := Load(p, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "kn"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, dir, "c.yaml", minimal)
	cfg, warnings, err := Load(p, []string{
		"PARLEY_HTTP_ADDR=127.0.0.1:9999", "PARLEY_STORAGE_URL=postgres://u@h/db", "PARLEY_API_KEY=0123456789abcdef0123",
		"PARLEY_REALTIME_ALLOWED_ORIGINS=a.com, *.b.com", "PARLEY_SHUTDOWN_DRAIN_TIMEOUT=3s", "PARLEY_RETENTION_TRANSCRIPT_DAYS=0",
		"PARLEY_HTTP_ADR=typo", "PARLEY_TEST_POSTGRES_URL=ignored", "OTHER=x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9999" || cfg.Storage.URL != "postgres://u@h/db" || cfg.Auth.APIKey != "0123456789abcdef0123" ||
		len(cfg.Realtime.AllowedOrigins) != 2 || cfg.Realtime.AllowedOrigins[1] != "*.b.com" ||
		cfg.Shutdown.DrainTimeout != 3*time.Second || cfg.Retention.TranscriptDays != 0 {
		t.Fatalf("%+v", cfg)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "PARLEY_HTTP_ADR") {
		t.Fatalf("warnings %v", warnings)
	}
	if cfg.Agents[0].KnowledgeDir != filepath.Join(dir, "kn") || cfg.Agents[0].TopK != 4 || cfg.Agents[0].Name != "a1" {
		t.Fatalf("agent %+v", cfg.Agents[0])
	}
}

func TestWebRTCFromEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "kn"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, dir, "c.yaml", minimal)
	cfg, _, err := Load(p, []string{"PARLEY_WEBRTC_INCLUDE_LOOPBACK=true", "PARLEY_WEBRTC_NAT_1TO1_IPS=203.0.113.7, 198.51.100.2"})
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.WebRTC
	if !w.Enabled() || w.UDPAddress != ":7882" || !w.IncludeLoopback || len(w.NAT1To1IPs) != 2 || w.NAT1To1IPs[1] != "198.51.100.2" ||
		w.ConnectTimeout != 15*time.Second || cfg.Auth.EphemeralKeyTTL != 10*time.Minute {
		t.Fatalf("webrtc %+v", w)
	}
	// An empty UDP address turns WebRTC off (and its other keys are not checked).
	cfg, _, err = Load(p, []string{"PARLEY_WEBRTC_UDP_ADDRESS=", "PARLEY_WEBRTC_MAX_CALLS=0"})
	if err != nil || cfg.WebRTC.Enabled() {
		t.Fatalf("disabled: %v %+v", err, cfg.WebRTC)
	}
}
