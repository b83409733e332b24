// Command parleyd is the Parley gateway: it loads the configuration, builds
// the storage and the agents' engines, and serves the realtime API until
// SIGINT or SIGTERM, then drains.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"parley/access"
	"parley/agent"
	"parley/agent/kb"
	"parley/agent/knowledge"
	"parley/agent/openai"
	"parley/config"
	"parley/gateway"
	"parley/manage"
	"parley/rtc"
	"parley/storage"
	"parley/storage/backends"
	"parley/storage/seal"
)

func main() {
	m := NewMain()
	code := m.Main(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	os.Exit(code)
}

// Main is the running program, kept as a value so tests run the real
// server in-process on :0.
type Main struct {
	Config config.Config
	Log    zerolog.Logger
	Store  storage.Backend
	// Keyring seals every tenant's transcripts, audio logs and agent
	// documents (encryption at rest).
	Keyring *seal.Keyring
	Keys    *access.KeyCache // every tenant's keys, cached; its Run follows revocations
	Manage  *manage.API      // the management REST API under /v1/
	Gateway *gateway.Server
	Edge    *rtc.Edge // WebRTC media edge; nil when webrtc.udp_address is empty

	// Ready is closed once the listener is bound; Addr is then valid.
	Ready chan struct{}
	Addr  net.Addr

	httpServer *http.Server
	closeVoice func()
	stopSweep  context.CancelFunc
	sweepDone  chan struct{}
	stopKeys   context.CancelFunc
	keysDone   chan struct{}
}

// NewMain returns an unstarted Main.
func NewMain() *Main { return &Main{Ready: make(chan struct{})} }

// Main parses args, runs until a signal (or ctx) ends it, and returns the
// exit code.
func (m *Main) Main(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default configs/parley.yaml when it exists)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "parleyd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	path := *cfgPath
	if path == "" {
		if _, err := os.Stat("configs/parley.yaml"); err == nil {
			path = "configs/parley.yaml"
		}
	}
	cfg, warnings, err := config.Load(path, environ)
	if err != nil {
		fmt.Fprintf(stderr, "parleyd: %v\n", err)
		return 2
	}
	m.Config = cfg
	m.Log = newLogger(cfg.Log, stderr)
	for _, w := range warnings {
		m.Log.Warn().Msg(w)
	}
	if path == "" {
		m.Log.Info().Msg("no config file: using built-in defaults and PARLEY_* environment")
	} else {
		m.Log.Info().Str("config", path).Msg("configuration loaded")
	}

	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := m.Run(sigCtx, stdout); err != nil {
		m.Log.Error().Err(err).Msg("parleyd failed to start")
		_ = m.Close()
		return 1
	}
	<-sigCtx.Done()
	m.Log.Info().Dur("deadline", cfg.Shutdown.DrainTimeout).Msg("shutting down: draining sessions")
	if err := m.Shutdown(); err != nil {
		m.Log.Error().Err(err).Msg("shutdown")
		return 1
	}
	m.Log.Info().Msg("stopped")
	return 0
}

// Run builds everything from m.Config and starts serving. It returns once
// the listener is bound.
func (m *Main) Run(ctx context.Context, stdout io.Writer) error {
	cfg := &m.Config
	store, err := backends.Open(ctx, cfg.Storage.URL)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	m.Store = store
	kr, err := openKeyring(ctx, cfg, store, m.Log)
	if err != nil {
		return err
	}
	m.Keyring = kr

	agents, err := BuildAgents(cfg, os.Getenv)
	if err != nil {
		return err
	}
	rec, syn, closeVoice, err := BuildVoice(cfg, os.Getenv)
	if err != nil {
		return err
	}
	m.closeVoice = closeVoice
	// What can fail on the environment (the UDP and TCP ports, the
	// certificate) comes before a key is generated: a start that fails
	// never loses a generated key it did not print.
	if w := cfg.WebRTC; w.Enabled() {
		servers := make([]rtc.ICEServer, len(w.ICEServers))
		for i, x := range w.ICEServers {
			servers[i] = rtc.ICEServer{URLs: x.URLs, Username: x.Username, Credential: x.Credential}
		}
		edge, err := rtc.NewEdge(rtc.Config{
			UDPAddr: w.UDPAddress, TCPAddr: w.TCPAddress, NAT1To1IPs: w.NAT1To1IPs, ICEServers: servers,
			IncludeLoopback: w.IncludeLoopback, MaxMessageSize: gateway.DataChannelMaxMessage,
			Logger: m.Log.With().Str("component", "webrtc").Logger(),
		})
		if err != nil {
			return fmt.Errorf("webrtc: %w", err)
		}
		m.Edge = edge
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	serving := false
	defer func() {
		if !serving {
			ln.Close()
		}
	}()
	scheme := "http"
	var tlsConfig *tls.Config
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	generated, err := gateway.BootstrapAccounts(ctx, store, cfg.Auth.APIKey, time.Now())
	if err != nil {
		return err
	}
	m.Keys = access.NewKeyCache(store)
	keysCtx, stopKeys := context.WithCancel(context.Background())
	m.stopKeys, m.keysDone = stopKeys, make(chan struct{})
	go func() {
		defer close(m.keysDone)
		_ = m.Keys.Run(keysCtx)
	}()
	auth := &gateway.AccountAuth{Keys: m.Keys}
	clientIPs, err := access.NewClientIPs(cfg.HTTP.TrustedProxies)
	if err != nil {
		return fmt.Errorf("http.trusted_proxies: %w", err)
	}
	defaults := defaultPolicy(cfg)
	api, err := manage.New(manage.Options{Accounts: store, Keys: m.Keys, Logger: m.Log.With().Str("component", "manage").Logger(),
		SecureCookies: cfg.TLS.Enabled(), ClientIPs: clientIPs,
		Privacy: store, Keyring: kr, DefaultPolicy: defaults})
	if err != nil {
		return fmt.Errorf("management API: %w", err)
	}
	m.Manage = api
	gw, err := gateway.New(gateway.Options{
		CallLog:     api.LogCall,
		ClientIPs:   clientIPs,
		TenantAgent: newTenantAgents(store, kr).Get,
		Sealer:      kr,
		Policy:      newPolicies(store, defaults).Get,
		Plans:       planLimits(cfg.Plans),
		PlanOf: func(ctx context.Context, tenantID string) (string, error) {
			t, err := store.GetTenant(ctx, tenantID)
			if err != nil {
				return "", err
			}
			return t.Plan, nil
		},
		Agents: agents, Store: store, Auth: auth, Recognizer: rec, Synthesizer: syn,
		Retention:            storage.Retention{TranscriptDays: cfg.Retention.TranscriptDays, MetadataDays: cfg.Retention.MetadataDays},
		AllowedOrigins:       cfg.Realtime.AllowedOrigins,
		ReadLimit:            cfg.Realtime.ReadLimitBytes,
		OutboundQueue:        cfg.Realtime.OutboundQueue,
		WriteTimeout:         cfg.Realtime.WriteTimeout,
		IdleTimeout:          cfg.Realtime.IdleTimeout,
		MaxDuration:          cfg.Realtime.MaxDuration,
		MaxSessions:          cfg.Realtime.MaxSessions,
		HistoryMessages:      cfg.Realtime.HistoryMessages,
		EngineTimeout:        cfg.Voice.EngineTimeout,
		EphemeralTTL:         cfg.Auth.EphemeralKeyTTL,
		RTC:                  m.Edge,
		ConnectTimeout:       cfg.WebRTC.ConnectTimeout,
		MaxCalls:             cfg.WebRTC.MaxCalls,
		MaxCallsPerKey:       cfg.WebRTC.MaxCallsPerKey,
		MaxSessionsPerTenant: cfg.Realtime.MaxSessionsPerTenant, MaxSessionsPerKey: cfg.Realtime.MaxSessionsPerKey,
		RatePerKey: cfg.Realtime.KeyRequestsPerSecond, BurstPerKey: cfg.Realtime.KeyBurst,
		RatePerIP: cfg.Realtime.IPRequestsPerSecond, BurstPerIP: cfg.Realtime.IPBurst,
		Logger: m.Log,
	})
	if err != nil {
		return err
	}
	m.Gateway = gw
	mh := api.Handler()
	for _, rt := range api.Routes() {
		gw.Handle(rt.Method+" "+rt.Pattern, mh)
	}
	mountWidget(gw, cfg)

	m.Addr = ln.Addr()
	m.httpServer = &http.Server{
		Handler:           gw.Handler(),
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
		TLSConfig:         tlsConfig,
	}
	serveLn := ln
	if tlsConfig != nil {
		serveLn = tls.NewListener(ln, tlsConfig)
	}
	serving = true
	go func() {
		if err := m.httpServer.Serve(serveLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error().Err(err).Msg("http server stopped")
		}
	}()

	sweepCtx, cancel := context.WithCancel(context.Background())
	m.stopSweep = cancel
	m.sweepDone = make(chan struct{})
	sweeper := &storage.Sweeper{
		Store: store, Interval: cfg.Storage.SweepInterval, Batch: cfg.Storage.SweepBatch,
		Purger: store, OnPurge: kr.Forget,
		OnSweep: func(n int, err error) {
			if err != nil {
				m.Log.Error().Err(err).Msg("retention sweep failed")
				return
			}
			gw.SweptRows(n)
			if n > 0 {
				m.Log.Info().Int("deleted", n).Msg("retention sweep deleted expired rows")
			}
		},
	}
	go func() {
		defer close(m.sweepDone)
		_ = sweeper.Run(sweepCtx)
	}()

	close(m.Ready)
	m.printBanner(stdout, scheme, generated, agents)
	return nil
}

func (m *Main) printBanner(w io.Writer, scheme, generated string, agents map[string]*agent.Agent) {
	host := "localhost"
	port := "8080"
	if tcp, ok := m.Addr.(*net.TCPAddr); ok {
		port = fmt.Sprint(tcp.Port)
	}
	ws := "ws"
	if scheme == "https" {
		ws = "wss"
	}
	ids := make([]string, 0, len(agents))
	for id := range agents {
		ids = append(ids, id)
	}
	m.Log.Info().Str("addr", m.Addr.String()).Str("scheme", scheme).Strs("agents", ids).
		Str("storage", redactURL(m.Config.Storage.URL)).Msg("parleyd listening")
	var b strings.Builder
	fmt.Fprintf(&b, "\nParley is listening on %s://%s:%s\n", scheme, host, port)
	fmt.Fprintf(&b, "  realtime: %s://%s:%s/v1/realtime?model=%s\n", ws, host, port, firstAgent(m.Config))
	if generated != "" {
		fmt.Fprintf(&b, "\n  Your API key (shown once; only its hash is stored):\n\n      %s\n\n", generated)
		fmt.Fprintf(&b, "  Save it now, e.g.  export PARLEY_API_KEY=%s\n", generated)
	} else if m.Config.Auth.APIKey != "" {
		fmt.Fprintf(&b, "  API key: the one in PARLEY_API_KEY\n")
	} else {
		fmt.Fprintf(&b, "  API key: the one printed at first start (set PARLEY_API_KEY to choose your own)\n")
	}
	if m.Edge != nil {
		fmt.Fprintf(&b, "  webrtc:   POST %s://%s:%s/v1/realtime/calls (SDP offer, Bearer ek_ key from POST /v1/realtime/client_secrets); media on UDP %s\n",
			scheme, host, port, m.Edge.UDPAddr())
	}
	fmt.Fprintf(&b, "  manage:   %s://%s:%s/v1/openapi.json (sign up: POST /v1/auth/register; tenants, keys, agents under /v1/tenants)\n", scheme, host, port)
	if m.Config.Widget.Enabled {
		fmt.Fprintf(&b, "  widget:   <script src=\"%s://%s:%s/widget.js\" data-key=\"pk_...\" data-agent=\"%s\" async></script>\n",
			scheme, host, port, firstAgent(m.Config))
	}
	if m.Config.Widget.Demo {
		fmt.Fprintf(&b, "  demo:     open %s://%s:%s/demo in a browser (development only: widget.demo)\n", scheme, host, port)
	}
	fmt.Fprintf(&b, "  chat:     go run ./cmd/parley chat -url %s://%s:%s -key $PARLEY_API_KEY\n\n", scheme, host, port)
	_, _ = io.WriteString(w, b.String())
}

func firstAgent(cfg config.Config) string {
	if len(cfg.Agents) > 0 {
		return cfg.Agents[0].ID
	}
	return "AGENT"
}

func redactURL(u string) string {
	if i := strings.Index(u, "://"); i > 0 {
		if at := strings.LastIndex(u, "@"); at > i {
			return u[:i+3] + "…@" + u[at+1:]
		}
	}
	return u
}

// Shutdown drains: stop accepting, let responses in flight finish up to
// shutdown.drain_timeout, persist, close storage.
func (m *Main) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.Shutdown.DrainTimeout)
	defer cancel()
	var errs []error
	if m.httpServer != nil {
		// Stops the listener and idle connections; WebSockets are hijacked
		// and drained by the gateway below.
		if err := m.httpServer.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.Gateway != nil {
		if err := m.Gateway.Drain(ctx); err != nil {
			m.Log.Warn().Msg("drain deadline reached: remaining sessions were ended")
		}
	}
	if err := m.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close stops everything at once and releases storage.
func (m *Main) Close() error {
	var errs []error
	if m.httpServer != nil {
		_ = m.httpServer.Close()
	}
	if m.Gateway != nil {
		if err := m.Gateway.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.Manage != nil { // flushes the API call log
		if err := m.Manage.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.Edge != nil { // after the gateway: every call is closed by now
		if err := m.Edge.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.stopSweep != nil {
		m.stopSweep()
		<-m.sweepDone
	}
	if m.stopKeys != nil {
		m.stopKeys()
		<-m.keysDone
	}
	if m.closeVoice != nil {
		m.closeVoice()
	}
	if m.Store != nil {
		if err := m.Store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// BuildAgents constructs every configured agent and its engine. getenv
// reads engine secrets (openai.api_key_env).
func BuildAgents(cfg *config.Config, getenv func(string) string) (map[string]*agent.Agent, error) {
	agents := make(map[string]*agent.Agent, len(cfg.Agents))
	for i, ac := range cfg.Agents {
		a := &agent.Agent{ID: ac.ID, Name: ac.Name, Instructions: ac.Instructions, Greeting: ac.Greeting, TopK: ac.TopK,
			Voice: ac.Voice, Language: ac.Language}
		if ac.KnowledgeDir != "" {
			idx, err := knowledge.Load(ac.KnowledgeDir)
			if err != nil {
				return nil, fmt.Errorf("agents[%d].knowledge_dir: %w", i, err)
			}
			a.Knowledge = idx
			a.SpeechCorpus = idx.Texts()
		}
		switch ac.Engine {
		case config.EngineKB:
			a.Responder = kb.New(kb.Config{MaxSentences: ac.KB.MaxSentences})
		case config.EngineOpenAI:
			o := ac.OpenAI
			key := ""
			if o.APIKeyEnv != "" {
				key = getenv(o.APIKeyEnv)
			}
			retries := 1
			if o.Retries != nil {
				retries = *o.Retries
			}
			eng, err := openai.New(openai.Config{
				BaseURL: o.BaseURL, APIKey: key, Model: o.Model, Temperature: o.Temperature,
				MaxOutputTokens: o.MaxOutputTokens, RequestTimeout: o.RequestTimeout,
				FirstTokenTimeout: o.FirstTokenTimeout, Retries: retries,
			})
			if err != nil {
				return nil, fmt.Errorf("agents[%d].openai: %w", i, err)
			}
			a.Responder = eng
		}
		agents[a.ID] = a
	}
	return agents, nil
}

func newLogger(c config.Log, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(c.Level)
	console := c.Format == "console"
	if c.Format == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func planLimits(plans map[string]config.Plan) map[string]gateway.PlanLimits {
	out := make(map[string]gateway.PlanLimits, len(plans))
	for name, p := range plans {
		out[name] = gateway.PlanLimits{MaxSessions: p.MaxSessions, RatePerKey: p.KeyRequestsPerSecond, BurstPerKey: p.KeyBurst}
	}
	return out
}
