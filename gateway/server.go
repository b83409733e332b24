// Package gateway is Parley's HTTP front: health and metrics endpoints,
// authentication, and the realtime protocol over WebSocket with the session
// engine behind it. It never names an engine vendor: cmd/parleyd builds the
// agents and hands them in.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"parley/access"
	"parley/agent"
	"parley/realtime"
	"parley/rtc"
	"parley/storage"
	"parley/stt"
	"parley/tts"
)

// Options configure a Server. Zero values take the defaults shown.
type Options struct {
	Agents map[string]*agent.Agent // by id; required
	Store  storage.Store           // required
	Auth   Authenticator           // required
	// Sealer seals transcripts and logged audio before they reach Store
	// and pseudonymises end users; required.
	Sealer Sealer
	// Retention is the default policy's retention (see Policy).
	Retention storage.Retention
	// Policy returns a tenant's privacy policy (retention, audio logging,
	// redaction), read at the start of each session; nil gives every
	// tenant Retention with audio logging off and all redaction on.
	Policy func(ctx context.Context, tenantID string) (storage.Policy, error)

	// Voice engines; nil refuses audio input (Recognizer) or audio output
	// (Synthesizer) with an "unsupported" error. The recognizer must take
	// 16 kHz PCM (PipelineRate).
	Recognizer  stt.Recognizer
	Synthesizer tts.Synthesizer

	AllowedOrigins  []string      // browser origins allowed besides the request's own host
	ReadLimit       int64         // max client event size in bytes (1 MiB)
	OutboundQueue   int           // events queued per session before the client counts as too slow (512)
	WriteTimeout    time.Duration // per batch of outbound events (10s)
	IdleTimeout     time.Duration // without client events (15m)
	MaxDuration     time.Duration // per session (60m)
	MaxSessions     int           // concurrent sessions on this node (10000)
	EngineTimeout   time.Duration // longest a recognizer's final result or one synthesized sentence may take (30s)
	HistoryMessages int           // messages of context given to the agent (40)
	// CallLog, when set, receives an API call log entry (endpoint,
	// status, tenant, key; never a body) for every authenticated request
	// to the realtime endpoints.
	CallLog      func(storage.APICall)
	EphemeralTTL time.Duration // lifetime of an ephemeral key minted without expires_after (10m)

	// WebRTC calls; nil RTC refuses POST /v1/realtime/calls.
	RTC            *rtc.Edge
	ConnectTimeout time.Duration // ICE+DTLS must complete within it (15s)
	MaxCalls       int           // concurrent calls on this node (1000)
	MaxCallsPerKey int           // concurrent calls per key (100)

	// Abuse limits of the realtime endpoints (0: off): concurrent sessions
	// (WebSocket and calls) per tenant and per key; requests per second
	// (token bucket with a burst) per key and per client IP.
	MaxSessionsPerTenant    int
	MaxSessionsPerKey       int
	RatePerKey, RatePerIP   float64
	BurstPerKey, BurstPerIP int
	// TenantAgent loads a tenant's own agent (managed through the
	// management API); storage.ErrNotFound when it has none of that id.
	// The default tenant's agents come from Agents first.
	TenantAgent func(ctx context.Context, tenantID, agentID string) (*agent.Agent, error)

	// ClientIPs tells a request's client address for the per-IP limit
	// (nil: the connection's peer).
	ClientIPs *access.ClientIPs

	// Plans override the per-tenant session limit and the per-key rate
	// for tenants on a listed plan; PlanOf tells a tenant's plan (cached
	// for a minute). Without them every tenant gets the defaults above.
	Plans  map[string]PlanLimits
	PlanOf func(ctx context.Context, tenantID string) (string, error)

	Logger   zerolog.Logger
	Registry *prometheus.Registry // nil: a new registry with Go and process collectors
	Now      func() time.Time
}

func (o *Options) defaults() {
	if o.ReadLimit == 0 {
		o.ReadLimit = 1 << 20
	}
	if o.OutboundQueue == 0 {
		o.OutboundQueue = 512
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 15 * time.Minute
	}
	if o.MaxDuration == 0 {
		o.MaxDuration = 60 * time.Minute
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = 10000
	}
	if o.EngineTimeout == 0 {
		o.EngineTimeout = 30 * time.Second
	}
	if o.HistoryMessages == 0 {
		o.HistoryMessages = 40
	}
	if o.EphemeralTTL == 0 {
		o.EphemeralTTL = 10 * time.Minute
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.MaxCalls == 0 {
		o.MaxCalls = 1000
	}
	if o.MaxCallsPerKey == 0 {
		o.MaxCallsPerKey = 100
	}
	if o.Retention.MetadataDays == 0 {
		o.Retention = storage.Retention{TranscriptDays: 90, MetadataDays: 365}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Server serves Parley's HTTP API. Create it with New, serve Handler, and
// end it with Drain (graceful) and Close.
type Server struct {
	opts     Options
	log      zerolog.Logger
	metrics  *metrics
	registry *prometheus.Registry
	recorder *recorder
	mux      *http.ServeMux

	mu             sync.Mutex
	sessions       int
	closed         bool
	calls          map[string]*call
	activeCalls    int
	callsPerKey    map[string]int
	tenantSessions map[string]int // sessions and calls per tenant
	keySessions    map[string]int // per key (the minting key for ephemeral ones)
	keyLimiter     *access.Limiter
	ipLimiter      *access.Limiter
	planLimiters   map[string]*access.Limiter // per-key rate of each plan that sets one

	planMu sync.Mutex
	plans  map[string]planEntry // tenant -> plan, cached
	wg     sync.WaitGroup       // one per live session

	draining  chan struct{} // closed: finish turns in flight, accept nothing new
	hardStop  chan struct{} // closed: end every session now
	drainOnce sync.Once
	stopOnce  sync.Once
	prepared  chan struct{} // closed: the recognizer's preparation ended (prepare.go)
}

// New builds a Server.
func New(opts Options) (*Server, error) {
	opts.defaults()
	if len(opts.Agents) == 0 {
		return nil, errors.New("gateway: no agents configured")
	}
	if opts.Store == nil || opts.Auth == nil || opts.Sealer == nil {
		return nil, errors.New("gateway: Store, Auth and Sealer are required")
	}
	if opts.Recognizer != nil && opts.Recognizer.SampleRate() != PipelineRate {
		return nil, fmt.Errorf("gateway: the recognizer takes %d Hz audio; the listening path runs at %d Hz", opts.Recognizer.SampleRate(), PipelineRate)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		registerRuntime(reg)
	}
	s := &Server{
		opts: opts, log: opts.Logger, registry: reg, metrics: newMetrics(reg),
		draining: make(chan struct{}), hardStop: make(chan struct{}),
		calls: map[string]*call{}, callsPerKey: map[string]int{},
		tenantSessions: map[string]int{}, keySessions: map[string]int{},
	}
	if opts.RatePerKey > 0 {
		s.keyLimiter = access.NewLimiter(opts.RatePerKey, opts.BurstPerKey, 0)
	}
	if opts.RatePerIP > 0 {
		s.ipLimiter = access.NewLimiter(opts.RatePerIP, opts.BurstPerIP, 0)
	}
	s.planLimiters = map[string]*access.Limiter{}
	for name, pl := range opts.Plans {
		if pl.RatePerKey > 0 {
			s.planLimiters[name] = access.NewLimiter(pl.RatePerKey, pl.BurstPerKey, 0)
		}
	}
	s.plans = map[string]planEntry{}
	s.recorder = newRecorder(opts.Store, opts.Sealer, opts.Policy, opts.Logger, s.metrics, 2, 2048)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /v1/realtime", s.limitIP(s.logged("/v1/realtime", s.realtime)))
	mux.HandleFunc("POST /v1/realtime/client_secrets", s.limitIP(s.logged("/v1/realtime/client_secrets", s.clientSecrets)))
	mux.HandleFunc("OPTIONS /v1/realtime/client_secrets", s.limitIP(preflight))
	mux.HandleFunc("POST /v1/realtime/calls", s.limitIP(s.logged("/v1/realtime/calls", s.createCall)))
	mux.HandleFunc("OPTIONS /v1/realtime/calls", s.limitIP(preflight))
	mux.HandleFunc("POST /v1/realtime/calls/{call_id}/hangup", s.limitIP(s.logged("/v1/realtime/calls/{call_id}/hangup", s.hangupCall)))
	mux.HandleFunc("/v1/realtime", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "the realtime endpoint is a WebSocket: GET with an Upgrade header")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	s.mux = mux
	s.prepared = make(chan struct{})
	if p, ok := opts.Recognizer.(recognizerPreparer); ok {
		go s.prepareRecognizer(p)
	} else {
		close(s.prepared)
	}
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Handle serves pattern (a ServeMux pattern such as "GET /v1/me") with h
// next to the gateway's own routes: how parleyd mounts the management API.
// Call it before serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Registry returns the Prometheus registry the server reports to.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// SweptRows counts rows the retention sweeper deleted in the server's
// metrics.
func (s *Server) SweptRows(n int) { s.metrics.sweptRows.Add(float64(n)) }

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.draining:
		writeError(w, http.StatusServiceUnavailable, "server_error", "shutting_down", "the server is draining")
		return
	default:
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.opts.Store.Ping(ctx); err != nil {
		s.log.Warn().Err(err).Msg("readiness: storage unreachable")
		writeError(w, http.StatusServiceUnavailable, "server_error", "storage_unavailable", "storage is not reachable")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

// realtime upgrades GET /v1/realtime?model=AGENT to a realtime session.
func (s *Server) realtime(w http.ResponseWriter, r *http.Request) {
	protocols := splitProtocols(r.Header.Values("Sec-WebSocket-Protocol"))
	key := keyFromRequest(r.Header.Get("Authorization"), protocols, r.URL.Query().Get("api-key"))
	if callID := r.URL.Query().Get("call_id"); callID != "" {
		s.sideband(w, r, key, callID)
		return
	}
	g, herr := s.authorize(r.Context(), key, true)
	if herr == nil {
		herr = requireRealtime(g)
	}
	origin := r.Header.Get("Origin")
	if herr == nil && !s.originPermits(g, origin, r.Host) {
		// Checked after authorize: the origin an ephemeral key is bound to
		// is only known once it is redeemed. A key presented from the
		// wrong origin is thereby used up, which a leaked key deserves.
		s.metrics.sessionsRefused.WithLabelValues("handshake").Inc()
		if g.ephemeral {
			s.refuseOrigin(w, r, originNotAllowed(origin, g))
			return
		}
		originNotAllowed(origin, g).write(w) // a secret key: plain HTTP, no upgrade
		return
	}
	if herr != nil {
		reason := "unauthenticated"
		switch {
		case herr.status >= 500:
			reason = "auth_unavailable"
		case herr.status == http.StatusForbidden:
			reason = "insufficient_scope"
		}
		s.metrics.sessionsRefused.WithLabelValues(reason).Inc()
		herr.write(w)
		return
	}
	p := g.principal
	if isBeta(r.Header.Get("OpenAI-Beta"), protocols) {
		s.metrics.sessionsRefused.WithLabelValues("beta_dialect").Inc()
		writeError(w, http.StatusBadRequest, "invalid_request_error", "unsupported_dialect",
			"Parley speaks the GA Realtime dialect; drop the OpenAI-Beta: realtime=v1 header / openai-beta.realtime-v1 subprotocol")
		return
	}
	// The end user: an ephemeral key carries the one it was minted for
	// (the browser cannot change it); a secret key's caller may name one.
	endUser := g.endUser
	if !g.ephemeral {
		if endUser, herr = s.endUser(r.Context(), p.TenantID, r.URL.Query().Get("end_user"), "end_user"); herr != nil {
			s.metrics.sessionsRefused.WithLabelValues("bad_request").Inc()
			herr.write(w)
			return
		}
	}
	policy, herr := s.policyFor(r.Context(), p.TenantID)
	if herr != nil {
		s.metrics.sessionsRefused.WithLabelValues("storage_unavailable").Inc()
		herr.write(w)
		return
	}

	// Reserve a session slot before upgrading.
	s.mu.Lock()
	switch {
	case s.closed || isClosed(s.draining):
		s.mu.Unlock()
		s.metrics.sessionsRefused.WithLabelValues("draining").Inc()
		writeRetryAfter(w, 1)
		writeError(w, http.StatusServiceUnavailable, "server_error", "shutting_down", "the server is shutting down; connect again")
		return
	}
	limit := s.sessionLimitLocked(p)
	full := limit != ""
	if !full {
		s.takeSessionLocked(p)
	}
	s.mu.Unlock()

	// Accept checks the origin again: against the allowed origins, or,
	// for a key bound to an origin, exactly that one (checked above).
	patterns := s.opts.AllowedOrigins
	if g.origin != "" && origin != "" {
		patterns = []string{exactOriginPattern(origin)}
	}
	hw := &hijackRW{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols:   []string{"realtime"},
		OriginPatterns: patterns,
	})
	if err != nil {
		// Accept wrote the HTTP error (bad handshake, origin not allowed).
		s.metrics.sessionsRefused.WithLabelValues("handshake").Inc()
		s.log.Info().Err(err).Str("origin", r.Header.Get("Origin")).Msg("websocket handshake refused")
		if !full {
			s.release(p)
		}
		return
	}
	conn.SetReadLimit(s.opts.ReadLimit)

	model := r.URL.Query().Get("model")
	var a *agent.Agent
	known := false
	if g.ephemeral { // the key was minted for its agent; SDKs may add a model of their own
		a, known, model = g.agent, true, g.agent.ID
	} else if model != "" {
		var err error
		a, err = s.agentFor(r.Context(), p.TenantID, model)
		known = err == nil
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Error().Err(err).Msg("loading a tenant agent failed")
		}
	}
	if full || !known {
		s.refuseSession(conn, limit, model, p.TenantID)
		if !full {
			s.release(p)
		}
		return
	}
	s.metrics.sessionsTotal.Inc()
	s.metrics.sessionsActive.Inc()
	sess := newSession(s, &wsConn{c: conn, cc: hw.cc}, a, p, "websocket")
	sess.policy, sess.endUser = policy, endUser
	if g.session != nil {
		_ = sess.state.Apply(g.session) // validated when the key was minted
	}
	sess.log.Info().Str("key_id", p.KeyID).Msg("session started")
	// Encode the opening events here: reflection-heavy encoding would grow
	// the session goroutine's stack for good.
	sess.open()
	// The session runs on its own goroutine, owned by the server (s.wg,
	// released when it ends), and the HTTP handler returns: the hijacked
	// connection's serving goroutine and its grown stack go away, which
	// keeps an idle session small.
	go func() {
		defer s.release(p)
		defer s.metrics.sessionsActive.Dec()
		sess.serve()
		sess.log.Info().Int("turns", sess.turnSeq).Msg("session ended")
	}()
}

// refuseSession tells a client why it cannot have a session (an error event
// it can read even from a browser) and closes.
func (s *Server) refuseSession(conn *websocket.Conn, limit, model, tenantID string) {
	code, param, status := "model_not_found", "model", websocket.StatusPolicyViolation
	msg := "no agent named " + quote(model) + "; pass ?model=AGENT_ID" + s.agentList(tenantID)
	if model == "" {
		msg = "the model query parameter is required: ?model=AGENT_ID" + s.agentList(tenantID)
	}
	if limit != "" {
		code, param, status = realtime.CodeSessionLimitReached, "", websocket.StatusTryAgainLater
		msg = limit
	}
	s.metrics.sessionsRefused.WithLabelValues(code).Inc()
	s.sendRefusal(conn, status, code, msg, param)
}

// refuseOrigin refuses, readably for the page, an ephemeral key presented
// from a browser origin it may not be used from (e is originNotAllowed's
// refusal). A page learns nothing from an HTTP refusal of a WebSocket
// handshake (it sees close code 1006 only) and a widget would take it for
// a network failure and retry, using up fresh keys; so the handshake is
// accepted for this one request, one error event says why, and the
// connection closes with 1008 (policy violation).
//
// Accepting the cross-origin handshake is safe: it admits the request's
// own Origin only (the one pattern matching exactly it), no session is
// created and no slot taken, the key is already used up, and nothing but
// the error is sent, which names only origins (public) and no tenant data.
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request, e *httpError) {
	conn, err := websocket.Accept(&hijackRW{ResponseWriter: w}, r, &websocket.AcceptOptions{
		Subprotocols:   []string{"realtime"},
		OriginPatterns: []string{exactOriginPattern(r.Header.Get("Origin"))},
	})
	if err != nil {
		// Accept wrote the HTTP error (not a WebSocket handshake, or an
		// Origin that is not a URL).
		s.log.Info().Err(err).Str("origin", r.Header.Get("Origin")).Msg("websocket handshake refused")
		return
	}
	s.sendRefusal(conn, websocket.StatusPolicyViolation, e.code, e.msg, e.param)
}

// sendRefusal sends one error event on a session-less connection and
// closes it with status.
func (s *Server) sendRefusal(conn *websocket.Conn, status websocket.StatusCode, code, msg, param string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, errorEventJSON("event_refused", code, msg, param)); err != nil {
		_ = conn.CloseNow()
		return
	}
	_ = conn.Close(status, code)
}

// sessionLimitLocked returns why p may not open another session (node,
// tenant or key limit reached), or "". s.mu is held.
func (s *Server) sessionLimitLocked(p Principal) string {
	switch {
	case s.sessions >= s.opts.MaxSessions:
		return "this node has reached its session limit; try again shortly"
	case s.tenantLimit(p) > 0 && s.tenantSessions[p.TenantID] >= s.tenantLimit(p):
		return "your organisation has reached its limit of concurrent sessions"
	case s.opts.MaxSessionsPerKey > 0 && s.keySessions[p.KeyID] >= s.opts.MaxSessionsPerKey:
		return "this key has reached its limit of concurrent sessions"
	}
	return ""
}

// takeSessionLocked counts a session of p. s.mu is held.
func (s *Server) takeSessionLocked(p Principal) {
	s.sessions++
	s.tenantSessions[p.TenantID]++
	s.keySessions[p.KeyID]++
	s.wg.Add(1)
}

func (s *Server) release(p Principal) {
	s.mu.Lock()
	s.sessions--
	if s.tenantSessions[p.TenantID]--; s.tenantSessions[p.TenantID] <= 0 {
		delete(s.tenantSessions, p.TenantID)
	}
	if s.keySessions[p.KeyID]--; s.keySessions[p.KeyID] <= 0 {
		delete(s.keySessions, p.KeyID)
	}
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) agentIDs() []string {
	ids := make([]string, 0, len(s.opts.Agents))
	for id := range s.opts.Agents {
		ids = append(ids, id)
	}
	sortStrings(ids)
	return ids
}

// ActiveSessions returns the number of live sessions.
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Drain stops accepting sessions, lets responses in flight finish, and waits
// for every session to end. When ctx expires first, the remaining sessions
// are ended at once (their partial turns are still recorded) and Drain
// returns ctx's error after they are gone.
func (s *Server) Drain(ctx context.Context) error {
	s.drainOnce.Do(func() { close(s.draining) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.stopOnce.Do(func() { close(s.hardStop) })
		<-done
		return ctx.Err()
	}
}

// Close ends every session at once, then waits until everything recorded
// so far is written to storage. The caller closes the store afterwards.
func (s *Server) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if already {
		return nil
	}
	s.drainOnce.Do(func() { close(s.draining) })
	s.stopOnce.Do(func() { close(s.hardStop) })
	s.wg.Wait()
	<-s.prepared
	s.recorder.close()
	return nil
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// exactOriginPattern is a websocket.AcceptOptions.OriginPatterns entry
// matching only origin: a pattern with "://" is matched against the
// Origin's scheme://host, and path.Match's metacharacters are escaped.
func exactOriginPattern(origin string) string {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return "" // matches no origin
	}
	var b strings.Builder
	for _, c := range u.Scheme + "://" + u.Host {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func splitProtocols(values []string) []string {
	var out []string
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func isBeta(header string, protocols []string) bool {
	if strings.Contains(strings.ToLower(header), "realtime=v1") {
		return true
	}
	for _, p := range protocols {
		if p == "openai-beta.realtime-v1" {
			return true
		}
	}
	return false
}

// PlanLimits are the limits of one plan.
type PlanLimits struct {
	MaxSessions int     // concurrent sessions and calls per tenant (0: the default)
	RatePerKey  float64 // requests per second per key (0: the default)
	BurstPerKey int
}

type planEntry struct {
	plan string
	at   time.Time
}

// tenantLimit is the concurrent-session limit of p's tenant.
func (s *Server) tenantLimit(p Principal) int {
	if pl, ok := s.opts.Plans[p.Plan]; ok && pl.MaxSessions > 0 {
		return pl.MaxSessions
	}
	return s.opts.MaxSessionsPerTenant
}

// planOf returns a tenant's plan, cached for a minute ("" when unknown or
// when the lookup fails: the default limits apply).
func (s *Server) planOf(ctx context.Context, tenantID string) string {
	if s.opts.PlanOf == nil || len(s.opts.Plans) == 0 {
		return ""
	}
	now := s.now()
	s.planMu.Lock()
	e, ok := s.plans[tenantID]
	s.planMu.Unlock()
	if ok && now.Sub(e.at) < time.Minute {
		return e.plan
	}
	plan, err := s.opts.PlanOf(ctx, tenantID)
	if err != nil {
		s.log.Warn().Err(err).Str("tenant_id", tenantID).Msg("reading the tenant's plan failed; default limits apply")
		return ""
	}
	s.planMu.Lock()
	if len(s.plans) > 100000 {
		clear(s.plans)
	}
	s.plans[tenantID] = planEntry{plan: plan, at: now}
	s.planMu.Unlock()
	return plan
}
