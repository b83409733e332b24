// Package config loads parleyd's configuration: defaults, then a YAML file
// decoded strictly (unknown keys are errors), then PARLEY_* environment
// overrides, then validation whose every error names the offending key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of parleyd.
type Config struct {
	HTTP      HTTP      `yaml:"http"`
	TLS       TLS       `yaml:"tls"`
	Auth      Auth      `yaml:"auth"`
	Realtime  Realtime  `yaml:"realtime"`
	Storage   Storage   `yaml:"storage"`
	Retention Retention `yaml:"retention"`
	Privacy   Privacy   `yaml:"privacy"`
	Log       Log       `yaml:"log"`
	Shutdown  Shutdown  `yaml:"shutdown"`
	Voice     Voice     `yaml:"voice"`
	WebRTC    WebRTC    `yaml:"webrtc"`
	Widget    Widget    `yaml:"widget"`
	// Plans are the limits of each tenant plan (by plan name); a tenant on
	// a plan not listed gets realtime.max_sessions_per_tenant and
	// realtime.key_requests_per_second.
	Plans  map[string]Plan `yaml:"plans"`
	Agents []Agent         `yaml:"agents"`

	// Dir is the directory of the config file; relative knowledge
	// directories are resolved against it. Not a YAML key.
	Dir string `yaml:"-"`
}

// HTTP configures the listener.
type HTTP struct {
	Addr              string        `yaml:"addr"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// TrustedProxies are the load balancers (IPs or CIDR ranges) whose
	// X-Forwarded-For names the client for the per-IP limits.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// TLS enables HTTPS and WSS on the same listener when both files are set.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Auth configures access. The key itself belongs in the environment
// (PARLEY_API_KEY), not in a file.
type Auth struct {
	APIKey string `yaml:"api_key"`
	// EphemeralKeyTTL is how long an ek_ key minted by
	// POST /v1/realtime/client_secrets lives when the request names no
	// expires_after (10s to 2h).
	EphemeralKeyTTL time.Duration `yaml:"ephemeral_key_ttl"`
}

// WebRTC configures calls (POST /v1/realtime/calls).
type WebRTC struct {
	// UDPAddress is the one UDP socket all calls share (ICE UDP mux);
	// empty turns WebRTC off.
	UDPAddress string `yaml:"udp_address"`
	// TCPAddress optionally adds ICE over TCP on one listener.
	TCPAddress string `yaml:"tcp_address"`
	// NAT1To1IPs are the public IPs announced as host candidates (a
	// cloud VM behind 1:1 NAT).
	NAT1To1IPs []string `yaml:"nat_1to1_ips"`
	// ICEServers are STUN/TURN servers used to gather candidates.
	ICEServers      []ICEServer   `yaml:"ice_servers"`
	IncludeLoopback bool          `yaml:"include_loopback"`
	ConnectTimeout  time.Duration `yaml:"connect_timeout"`
	MaxCalls        int           `yaml:"max_calls"`
	MaxCallsPerKey  int           `yaml:"max_calls_per_key"`
}

// Plan is one plan's limits (0 keeps the realtime section's default).
type Plan struct {
	MaxSessions          int     `yaml:"max_sessions"`
	KeyRequestsPerSecond float64 `yaml:"key_requests_per_second"`
	KeyBurst             int     `yaml:"key_burst"`
}

// Enabled reports whether WebRTC calls are served.
func (w WebRTC) Enabled() bool { return w.UDPAddress != "" }

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username"`
	Credential string   `yaml:"credential"`
}

// Realtime configures the realtime WebSocket endpoint and its sessions.
type Realtime struct {
	AllowedOrigins  []string      `yaml:"allowed_origins"`
	ReadLimitBytes  int64         `yaml:"read_limit_bytes"`
	OutboundQueue   int           `yaml:"outbound_queue"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	MaxDuration     time.Duration `yaml:"max_duration"`
	MaxSessions     int           `yaml:"max_sessions"`
	HistoryMessages int           `yaml:"history_messages"`
	// Abuse limits (0 turns one off).
	MaxSessionsPerTenant int     `yaml:"max_sessions_per_tenant"`
	MaxSessionsPerKey    int     `yaml:"max_sessions_per_key"`
	KeyRequestsPerSecond float64 `yaml:"key_requests_per_second"`
	KeyBurst             int     `yaml:"key_burst"`
	IPRequestsPerSecond  float64 `yaml:"ip_requests_per_second"`
	IPBurst              int     `yaml:"ip_burst"`
}

// Storage selects the backend.
type Storage struct {
	URL           string        `yaml:"url"`
	SweepInterval time.Duration `yaml:"sweep_interval"`
	SweepBatch    int           `yaml:"sweep_batch"`
}

// Retention is the data retention policy.
type Retention struct {
	TranscriptDays int `yaml:"transcript_days"`
	MetadataDays   int `yaml:"metadata_days"`
}

// Privacy holds encryption at rest and the default privacy policy of a
// tenant that never set its own (through the management API).
type Privacy struct {
	// MasterKey wraps every tenant's data key: "id:base64" entries (32-byte
	// keys), comma-separated, the first current, the others older keys
	// kept during a rotation. Set it through PARLEY_MASTER_KEY, never in a
	// file in the repository; it wins over MasterKeyFile.
	MasterKey string `yaml:"master_key"`
	// MasterKeyFile holds the master keys in the same format, one per
	// line (mode 0600). Keep it out of the database's backups.
	MasterKeyFile string `yaml:"master_key_file"`
	// GenerateMasterKey lets parleyd create MasterKeyFile on first start,
	// when no key is configured and the database holds no data. With it
	// off (production), a missing key is a start-up error.
	GenerateMasterKey bool `yaml:"generate_master_key"`
	// AudioLogging is the default of conversation audio logging (off):
	// when on, each turn's audio is sealed and stored for AudioDays.
	AudioLogging bool `yaml:"audio_logging"`
	AudioDays    int  `yaml:"audio_days"`
	// Redaction before storage, by kind (all on by default).
	RedactEmails bool `yaml:"redact_emails"`
	RedactPhones bool `yaml:"redact_phones"`
	RedactCards  bool `yaml:"redact_cards"`
	RedactIBANs  bool `yaml:"redact_ibans"`
}

// Log configures zerolog.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // auto, console, json
}

// Shutdown configures draining on SIGTERM.
type Shutdown struct {
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// Widget configures the website widget (GET /widget.js) and the
// development demo page.
type Widget struct {
	// Enabled serves /widget.js, the one script a site embeds.
	Enabled bool `yaml:"enabled"`
	// Demo serves /demo, a page with the widget for the first agent, whose
	// keys are minted for anyone who can reach the gateway: development only.
	Demo bool `yaml:"demo"`
}

// Voice selects the speech engines shared by all agents.
type Voice struct {
	STTEngine     string        `yaml:"stt_engine"` // pocketsphinx, openai or none
	TTSEngine     string        `yaml:"tts_engine"` // espeak, openai or none
	EngineTimeout time.Duration `yaml:"engine_timeout"`
	Pocketsphinx  Pocketsphinx  `yaml:"pocketsphinx"`
	Espeak        Espeak        `yaml:"espeak"`
	OpenAISTT     OpenAISpeech  `yaml:"openai_stt"`
	OpenAITTS     OpenAISpeech  `yaml:"openai_tts"`
}

// Pocketsphinx configures the offline recognizer (Debian's en-us model by
// default).
type Pocketsphinx struct {
	ModelDir    string `yaml:"model_dir"`
	LM          string `yaml:"lm"`
	Dict        string `yaml:"dict"`
	MaxDecoders int    `yaml:"max_decoders"`
}

// Espeak configures the offline synthesizer.
type Espeak struct {
	Voice          string `yaml:"voice"`
	WordsPerMinute int    `yaml:"words_per_minute"`
}

// OpenAISpeech configures an OpenAI-compatible transcription or speech
// endpoint.
type OpenAISpeech struct {
	BaseURL       string        `yaml:"base_url"`
	Model         string        `yaml:"model"`
	APIKeyEnv     string        `yaml:"api_key_env"`
	Voice         string        `yaml:"voice"` // speech only
	Timeout       time.Duration `yaml:"timeout"`
	MaxConcurrent int           `yaml:"max_concurrent"`
}

// Speech engines.
const (
	EnginePocketsphinx = "pocketsphinx"
	EngineEspeak       = "espeak"
	EngineNone         = "none"
)

// Agent is one configured agent.
type Agent struct {
	ID           string `yaml:"id"`
	Name         string `yaml:"name"`
	Instructions string `yaml:"instructions"`
	Greeting     string `yaml:"greeting"`
	Engine       string `yaml:"engine"` // "kb" or "openai"
	KnowledgeDir string `yaml:"knowledge_dir"`
	TopK         int    `yaml:"top_k"`
	KB           KB     `yaml:"kb"`
	OpenAI       OpenAI `yaml:"openai"`
	// Voice is the synthesizer voice of spoken replies ("" for the
	// engine's default); Language the conversation language.
	Voice    string `yaml:"voice"`
	Language string `yaml:"language"`
}

// KB holds the offline knowledge-base engine's settings.
type KB struct {
	MaxSentences int `yaml:"max_sentences"`
}

// OpenAI holds the OpenAI-compatible engine's settings.
type OpenAI struct {
	BaseURL           string        `yaml:"base_url"`
	Model             string        `yaml:"model"`
	APIKeyEnv         string        `yaml:"api_key_env"`
	Temperature       *float32      `yaml:"temperature"`
	MaxOutputTokens   int           `yaml:"max_output_tokens"`
	RequestTimeout    time.Duration `yaml:"request_timeout"`
	FirstTokenTimeout time.Duration `yaml:"first_token_timeout"`
	Retries           *int          `yaml:"retries"`
}

// Engines Parley knows.
const (
	EngineKB     = "kb"
	EngineOpenAI = "openai"
)

// Default returns the built-in defaults (no agents).
func Default() Config {
	return Config{
		HTTP: HTTP{Addr: ":8080", ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second},
		Realtime: Realtime{
			ReadLimitBytes:       1 << 20,
			OutboundQueue:        512,
			WriteTimeout:         10 * time.Second,
			IdleTimeout:          15 * time.Minute,
			MaxDuration:          60 * time.Minute,
			MaxSessions:          10000,
			HistoryMessages:      40,
			MaxSessionsPerTenant: 1000, MaxSessionsPerKey: 500,
			KeyRequestsPerSecond: 20, KeyBurst: 50, IPRequestsPerSecond: 50, IPBurst: 200,
		},
		Storage:   Storage{URL: "./data/parley.db", SweepInterval: time.Hour, SweepBatch: 1000},
		Retention: Retention{TranscriptDays: 90, MetadataDays: 365},
		Privacy: Privacy{MasterKeyFile: "./keys/master.key", GenerateMasterKey: true, AudioDays: 30,
			RedactEmails: true, RedactPhones: true, RedactCards: true, RedactIBANs: true},
		Log:      Log{Level: "info", Format: "auto"},
		Shutdown: Shutdown{DrainTimeout: 30 * time.Second},
		Voice:    Voice{STTEngine: EnginePocketsphinx, TTSEngine: EngineEspeak, EngineTimeout: 30 * time.Second},
		Auth:     Auth{EphemeralKeyTTL: 10 * time.Minute},
		Plans: map[string]Plan{
			"free":       {MaxSessions: 5, KeyRequestsPerSecond: 2, KeyBurst: 10},
			"team":       {MaxSessions: 100, KeyRequestsPerSecond: 20, KeyBurst: 50},
			"enterprise": {MaxSessions: 1000, KeyRequestsPerSecond: 50, KeyBurst: 200},
		},
		WebRTC: WebRTC{UDPAddress: ":7882", ConnectTimeout: 15 * time.Second,
			MaxCalls: 1000, MaxCallsPerKey: 100},
		Widget: Widget{Enabled: true},
	}
}

// Load reads the file at path (when non-empty) over the defaults, applies
// the environment (a list of KEY=VALUE strings, as os.Environ returns) and
// validates. Warnings are non-fatal notes (such as an unknown PARLEY_*
// variable) for the caller to log.
func Load(path string, environ []string) (cfg Config, warnings []string, err error) {
	cfg = Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, nil, fmt.Errorf("config: %w", err)
		}
		if err := decodeStrict(data, &cfg); err != nil {
			return cfg, nil, fmt.Errorf("config %s: %w", path, err)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return cfg, nil, fmt.Errorf("config: %w", err)
		}
		cfg.Dir = filepath.Dir(abs)
	} else {
		wd, _ := os.Getwd()
		cfg.Dir = wd
	}
	warnings, err = applyEnv(&cfg, environ)
	if err != nil {
		return cfg, warnings, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, warnings, fmt.Errorf("config: %w", err)
	}
	return cfg, warnings, nil
}

var (
	notFound    = regexp.MustCompile(`line (\d+): field (\S+) not found in type config\.(\w+)`)
	cannotParse = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// keyAtLine returns the YAML key written on line n (1-based) of data.
func keyAtLine(data []byte, n int) string {
	lines := strings.Split(string(data), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	l := strings.TrimSpace(lines[n-1])
	l = strings.TrimPrefix(l, "- ")
	if k, _, ok := strings.Cut(l, ":"); ok {
		return strings.TrimSpace(k)
	}
	return ""
}

func decodeStrict(data []byte, cfg *Config) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, m := range te.Errors {
			if g := notFound.FindStringSubmatch(m); g != nil {
				m = fmt.Sprintf("line %s: unknown key %q in %s", g[1], g[2], sectionName(g[3]))
			} else if g := cannotParse.FindStringSubmatch(m); g != nil {
				n, _ := strconv.Atoi(g[1])
				want := strings.TrimPrefix(g[4], "*")
				if want == "time.Duration" {
					want = "a duration such as 30s or 5m"
				}
				m = fmt.Sprintf("line %s: key %q: invalid value %q (want %s)", g[1], keyAtLine(data, n), g[3], want)
			}
			msgs = append(msgs, m)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

// sectionName turns a Go type name into the YAML section it decodes.
func sectionName(typ string) string {
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Name() == typ {
			return strings.Split(f.Tag.Get("yaml"), ",")[0]
		}
	}
	switch typ {
	case "Config":
		return "the top level"
	case "KB":
		return "agents[].kb"
	case "Pocketsphinx":
		return "voice.pocketsphinx"
	case "Espeak":
		return "voice.espeak"
	case "OpenAISpeech":
		return "voice.openai_stt/openai_tts"
	case "OpenAI":
		return "agents[].openai"
	case "ICEServer":
		return "webrtc.ice_servers[]"
	case "Plan":
		return "plans.*"
	}
	return typ
}

// Env names that do not follow the PARLEY_SECTION_KEY pattern.
var envAliases = map[string]string{
	"PARLEY_API_KEY":    "auth.api_key",
	"PARLEY_MASTER_KEY": "privacy.master_key",
}

// applyEnv sets every scalar key from PARLEY_<SECTION>_<KEY> (for example
// PARLEY_HTTP_ADDR for http.addr); list keys take comma-separated values.
func applyEnv(cfg *Config, environ []string) ([]string, error) {
	fields := map[string]reflect.Value{}
	keys := map[string]string{}
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sec := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		sv := v.Field(i)
		if sec == "-" || sv.Kind() != reflect.Struct {
			continue
		}
		st := sv.Type()
		for j := 0; j < st.NumField(); j++ {
			key := strings.Split(st.Field(j).Tag.Get("yaml"), ",")[0]
			name := "PARLEY_" + strings.ToUpper(sec+"_"+key)
			fields[name] = sv.Field(j)
			keys[name] = sec + "." + key
		}
	}
	for alias, key := range envAliases {
		sec, k, _ := strings.Cut(key, ".")
		fields[alias] = v.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, sec) }).
			FieldByNameFunc(func(n string) bool {
				return strings.EqualFold(strings.ReplaceAll(n, "_", ""), strings.ReplaceAll(k, "_", ""))
			})
		keys[alias] = key
	}
	var warnings []string
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "PARLEY_") {
			continue
		}
		f, known := fields[name]
		if !known {
			if !strings.HasPrefix(name, "PARLEY_TEST_") {
				warnings = append(warnings, fmt.Sprintf("unknown environment variable %s ignored", name))
			}
			continue
		}
		if err := setScalar(f, val); err != nil {
			return warnings, fmt.Errorf("%s (%s): %w", name, keys[name], err)
		}
	}
	return warnings, nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func setScalar(f reflect.Value, s string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q (want true or false)", s)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		f.SetFloat(x)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		f.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Validate checks every value; the error names each offending key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr", "%q is not host:port (%v)", c.HTTP.Addr, err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("http.addr", "port %q is not a number from 0 to 65535", port)
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration, got %v", d)
		}
	}
	for i, tp := range c.HTTP.TrustedProxies {
		if _, err := netip.ParsePrefix(tp); err != nil {
			if _, err := netip.ParseAddr(tp); err != nil {
				bad(fmt.Sprintf("http.trusted_proxies[%d]", i), "%q is not an IP address or CIDR range", tp)
			}
		}
	}
	positive("http.read_header_timeout", c.HTTP.ReadHeaderTimeout)
	positive("http.idle_timeout", c.HTTP.IdleTimeout)
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file must be set together")
	}
	for _, f := range []struct{ key, path string }{{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.key, "%v", err)
			}
		}
	}
	if k := c.Auth.APIKey; k != "" && len(k) < 16 {
		bad("auth.api_key", "must be at least 16 characters (set it through PARLEY_API_KEY)")
	}
	if d := c.Auth.EphemeralKeyTTL; d < 10*time.Second || d > 2*time.Hour {
		bad("auth.ephemeral_key_ttl", "must be between 10s and 2h, got %v", d)
	}
	c.validateWebRTC(bad)
	for name, pl := range c.Plans {
		key := "plans." + name
		switch {
		case !idPattern.MatchString(name):
			bad(key, "plan names are lowercase letters, digits, - and _")
		case pl.MaxSessions < 0:
			bad(key+".max_sessions", "must not be negative")
		case pl.KeyRequestsPerSecond < 0:
			bad(key+".key_requests_per_second", "must not be negative")
		case pl.KeyRequestsPerSecond > 0 && pl.KeyBurst < 1:
			bad(key+".key_burst", "must be at least 1 with a request rate")
		}
	}
	for i, o := range c.Realtime.AllowedOrigins {
		if o == "" || o == "*" {
			bad(fmt.Sprintf("realtime.allowed_origins[%d]", i), "%q is not allowed; list the origins (host patterns such as example.com or *.example.com)", o)
		}
	}
	r := c.Realtime
	if r.ReadLimitBytes < 1024 || r.ReadLimitBytes > 64<<20 {
		bad("realtime.read_limit_bytes", "must be between 1024 and 67108864, got %d", r.ReadLimitBytes)
	}
	if r.OutboundQueue < 16 || r.OutboundQueue > 65536 {
		bad("realtime.outbound_queue", "must be between 16 and 65536, got %d", r.OutboundQueue)
	}
	positive("realtime.write_timeout", r.WriteTimeout)
	positive("realtime.idle_timeout", r.IdleTimeout)
	positive("realtime.max_duration", r.MaxDuration)
	if r.MaxSessions < 1 {
		bad("realtime.max_sessions", "must be at least 1, got %d", r.MaxSessions)
	}
	for _, l := range []struct {
		key string
		n   int
	}{{"realtime.max_sessions_per_tenant", r.MaxSessionsPerTenant}, {"realtime.max_sessions_per_key", r.MaxSessionsPerKey},
		{"realtime.key_burst", r.KeyBurst}, {"realtime.ip_burst", r.IPBurst}} {
		if l.n < 0 {
			bad(l.key, "must not be negative (0 turns the limit off), got %d", l.n)
		}
	}
	for _, l := range []struct {
		key   string
		rate  float64
		burst int
	}{{"realtime.key_requests_per_second", r.KeyRequestsPerSecond, r.KeyBurst}, {"realtime.ip_requests_per_second", r.IPRequestsPerSecond, r.IPBurst}} {
		if l.rate < 0 {
			bad(l.key, "must not be negative (0 turns the limit off), got %v", l.rate)
		} else if l.rate > 0 && l.burst < 1 {
			bad(l.key, "needs a burst of at least 1")
		}
	}
	if r.HistoryMessages < 1 || r.HistoryMessages > 1000 {
		bad("realtime.history_messages", "must be between 1 and 1000, got %d", r.HistoryMessages)
	}
	if err := checkStorageURL(c.Storage.URL); err != nil {
		bad("storage.url", "%v", err)
	}
	positive("storage.sweep_interval", c.Storage.SweepInterval)
	if c.Storage.SweepBatch < 1 || c.Storage.SweepBatch > 100000 {
		bad("storage.sweep_batch", "must be between 1 and 100000, got %d", c.Storage.SweepBatch)
	}
	if d := c.Retention.TranscriptDays; d < 0 || d > 3650 {
		bad("retention.transcript_days", "must be between 0 (metadata only) and 3650, got %d", d)
	}
	if d := c.Privacy.AudioDays; d < 1 || d > 3650 {
		bad("privacy.audio_days", "must be between 1 and 3650, got %d", d)
	}
	if d := c.Retention.MetadataDays; d < 1 || d > 3650 {
		bad("retention.metadata_days", "must be between 1 and 3650, got %d", d)
	} else if d < c.Retention.TranscriptDays {
		bad("retention.metadata_days", "must not be shorter than retention.transcript_days (%d)", c.Retention.TranscriptDays)
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be trace, debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "console", "json":
	default:
		bad("log.format", "must be auto, console or json, got %q", c.Log.Format)
	}
	positive("shutdown.drain_timeout", c.Shutdown.DrainTimeout)
	v := c.Voice
	positive("voice.engine_timeout", v.EngineTimeout)
	switch v.STTEngine {
	case EnginePocketsphinx, EngineOpenAI, EngineNone:
	default:
		bad("voice.stt_engine", "unknown engine %q (want pocketsphinx, openai or none)", v.STTEngine)
	}
	switch v.TTSEngine {
	case EngineEspeak, EngineOpenAI, EngineNone:
	default:
		bad("voice.tts_engine", "unknown engine %q (want espeak, openai or none)", v.TTSEngine)
	}
	if v.Pocketsphinx.MaxDecoders < 0 || v.Pocketsphinx.MaxDecoders > 64 {
		bad("voice.pocketsphinx.max_decoders", "must be between 0 (one per core) and 64")
	}
	if w := v.Espeak.WordsPerMinute; w != 0 && (w < 80 || w > 450) {
		bad("voice.espeak.words_per_minute", "must be between 80 and 450 (0 for the default)")
	}
	for _, o := range []struct {
		key string
		c   OpenAISpeech
		on  bool
	}{{"voice.openai_stt", v.OpenAISTT, v.STTEngine == EngineOpenAI}, {"voice.openai_tts", v.OpenAITTS, v.TTSEngine == EngineOpenAI}} {
		if !o.on {
			continue
		}
		if o.c.BaseURL != "" {
			u, err := url.Parse(o.c.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(o.key+".base_url", "%q must be an http(s) URL", o.c.BaseURL)
			}
		}
		if o.c.Timeout < 0 {
			bad(o.key+".timeout", "must not be negative")
		}
		if o.c.MaxConcurrent < 0 {
			bad(o.key+".max_concurrent", "must not be negative")
		}
	}
	if len(c.Agents) == 0 {
		bad("agents", "at least one agent is required")
	}
	seen := map[string]bool{}
	for i := range c.Agents {
		a := &c.Agents[i]
		p := fmt.Sprintf("agents[%d]", i)
		if !idPattern.MatchString(a.ID) {
			bad(p+".id", "%q must be 1-64 lowercase letters, digits, '-' or '_'", a.ID)
		} else if seen[a.ID] {
			bad(p+".id", "duplicate agent id %q", a.ID)
		}
		seen[a.ID] = true
		if a.Name == "" {
			a.Name = a.ID
		}
		if len(a.Instructions) > 64<<10 {
			bad(p+".instructions", "longer than 65536 bytes")
		}
		if a.TopK == 0 {
			a.TopK = 4
		} else if a.TopK < 1 || a.TopK > 20 {
			bad(p+".top_k", "must be between 1 and 20, got %d", a.TopK)
		}
		if a.KnowledgeDir != "" {
			if !filepath.IsAbs(a.KnowledgeDir) {
				a.KnowledgeDir = filepath.Join(c.Dir, a.KnowledgeDir)
			}
			if st, err := os.Stat(a.KnowledgeDir); err != nil {
				bad(p+".knowledge_dir", "%v", err)
			} else if !st.IsDir() {
				bad(p+".knowledge_dir", "%s is not a directory", a.KnowledgeDir)
			}
		}
		switch a.Engine {
		case EngineKB:
			if a.KnowledgeDir == "" {
				bad(p+".knowledge_dir", "the kb engine answers from documents: set knowledge_dir")
			}
			if a.KB.MaxSentences < 0 || a.KB.MaxSentences > 10 {
				bad(p+".kb.max_sentences", "must be between 0 (default) and 10")
			}
		case EngineOpenAI:
			o := a.OpenAI
			if o.Model == "" {
				bad(p+".openai.model", "is required")
			}
			if o.BaseURL != "" {
				u, err := url.Parse(o.BaseURL)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					bad(p+".openai.base_url", "%q must be an http(s) URL", o.BaseURL)
				}
			}
			if o.Temperature != nil && (*o.Temperature < 0 || *o.Temperature > 2) {
				bad(p+".openai.temperature", "must be between 0 and 2")
			}
			if o.MaxOutputTokens < 0 {
				bad(p+".openai.max_output_tokens", "must not be negative")
			}
			if o.RequestTimeout < 0 {
				bad(p+".openai.request_timeout", "must not be negative")
			}
			if o.FirstTokenTimeout < 0 {
				bad(p+".openai.first_token_timeout", "must not be negative")
			}
			if o.Retries != nil && (*o.Retries < 0 || *o.Retries > 5) {
				bad(p+".openai.retries", "must be between 0 and 5")
			}
		case "":
			bad(p+".engine", "is required (kb or openai)")
		default:
			bad(p+".engine", "unknown engine %q (want kb or openai)", a.Engine)
		}
	}
	return errors.Join(errs...)
}

func checkStorageURL(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	if i := strings.Index(s, "://"); i > 0 {
		switch s[:i] {
		case "postgres", "postgresql":
			if _, err := url.Parse(s); err != nil {
				return fmt.Errorf("invalid PostgreSQL URL: %v", err)
			}
			return nil
		}
		return fmt.Errorf("unknown storage scheme %q (use a SQLite path, sqlite:PATH, or postgres://)", s[:i])
	}
	return nil
}

// Agent returns the agent with the given id.
func (c *Config) Agent(id string) (*Agent, bool) {
	for i := range c.Agents {
		if c.Agents[i].ID == id {
			return &c.Agents[i], true
		}
	}
	return nil, false
}

func (c *Config) validateWebRTC(bad func(key, format string, args ...any)) {
	w := c.WebRTC
	if !w.Enabled() {
		return
	}
	hostPort := func(key, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port (%v)", addr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(key, "port %q is not a number from 0 to 65535", port)
		}
	}
	hostPort("webrtc.udp_address", w.UDPAddress)
	if w.TCPAddress != "" {
		hostPort("webrtc.tcp_address", w.TCPAddress)
	}
	for i, ip := range w.NAT1To1IPs {
		if net.ParseIP(ip) == nil {
			bad(fmt.Sprintf("webrtc.nat_1to1_ips[%d]", i), "%q is not an IP address", ip)
		}
	}
	for i, s := range w.ICEServers {
		key := fmt.Sprintf("webrtc.ice_servers[%d]", i)
		if len(s.URLs) == 0 {
			bad(key+".urls", "at least one stun:, turn: or turns: URL is required")
		}
		for j, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch scheme {
			case "stun", "stuns":
			case "turn", "turns":
				if s.Username == "" || s.Credential == "" {
					bad(key, "a TURN server needs username and credential")
				}
			default:
				bad(fmt.Sprintf("%s.urls[%d]", key, j), "%q is not a stun:, stuns:, turn: or turns: URL", u)
			}
		}
	}
	if d := w.ConnectTimeout; d < time.Second || d > 2*time.Minute {
		bad("webrtc.connect_timeout", "must be between 1s and 2m, got %v", d)
	}
	if w.MaxCalls < 1 {
		bad("webrtc.max_calls", "must be at least 1, got %d", w.MaxCalls)
	}
	if w.MaxCallsPerKey < 1 || w.MaxCallsPerKey > w.MaxCalls {
		bad("webrtc.max_calls_per_key", "must be between 1 and webrtc.max_calls (%d), got %d", w.MaxCalls, w.MaxCallsPerKey)
	}
}
