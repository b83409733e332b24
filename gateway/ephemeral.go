package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/agent"
	"parley/realtime"
	"parley/storage"
	"parley/storage/seal"
)

// Ephemeral keys ("ek_…") let a browser or app open one session (a WebRTC
// call or a WebSocket) without holding a secret key: the customer's server
// mints one with POST /v1/realtime/client_secrets, bound to an agent and
// session settings, or a page does with a publishable key. A key for a
// page is also bound to the page's origin (originPermits): the Origin of a
// publishable key's request, or the "origin" a secret key's request
// names. Only the key's SHA-256 is stored; it works once and expires
// (auth.ephemeral_key_ttl by default, 10 s to 2 h).
const (
	ephemeralPrefix = "ek_"
	minEphemeralTTL = 10 * time.Second
	maxEphemeralTTL = 2 * time.Hour
	maxSignalBody   = 64 << 10 // client_secrets and call bodies
)

// bodyReadTimeout bounds reading a signaling request's body: a client that
// trickles it is cut off (http.read_header_timeout covers only headers).
var bodyReadTimeout = 10 * time.Second

// httpError is an error of an HTTP endpoint, translated once by write.
type httpError struct {
	status          int
	typ, code, msg  string
	param           string
	retryAfter      int
	wwwAuthenticate string
}

func (e *httpError) write(w http.ResponseWriter) {
	if e.retryAfter > 0 {
		writeRetryAfter(w, e.retryAfter)
	}
	if e.wwwAuthenticate != "" {
		w.Header().Set("WWW-Authenticate", e.wwwAuthenticate)
	}
	writeErrorParam(w, e.status, e.typ, e.code, e.msg, e.param)
}

// writeReadable writes e so that a page at origin (the request's Origin
// header; "" for clients that are not browsers) can read it: a widget can
// then say why it was refused instead of seeing a network error. Error
// bodies hold nothing the caller may not see.
func (e *httpError) writeReadable(w http.ResponseWriter, origin string) {
	if origin != "" {
		allowOrigin(w.Header(), origin)
	}
	e.write(w)
}

// allowOrigin lets a page at origin read the response, Retry-After
// included (a page sees only a few headers unless they are exposed): a
// widget refused for a rate limit or a full node waits as long as it is
// told before trying again.
func allowOrigin(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	if !slices.Contains(h.Values("Vary"), "Origin") {
		h.Add("Vary", "Origin")
	}
}

func badRequest(code, param, msg string) *httpError {
	return &httpError{status: http.StatusBadRequest, typ: "invalid_request_error", code: code, msg: msg, param: param}
}

func fromRealtime(e *realtime.Error) *httpError {
	param := ""
	if e.Param != nil {
		param = *e.Param
	}
	return badRequest(e.Code, param, e.Message)
}

// grant is what a presented key allows: who acts, and, for an ephemeral
// key, the agent and session settings it was minted for.
type grant struct {
	principal Principal
	ephemeral bool
	agent     *agent.Agent            // set for ephemeral keys
	session   *realtime.SessionUpdate // settings minted with an ephemeral key, or nil
	endUser   string                  // end-user pseudonym an ephemeral key was minted for
	origin    string                  // browser origin the ephemeral key is bound to, or ""
}

// authorize resolves a presented key. Secret keys go through the
// Authenticator; an ephemeral key is consumed (it works once) when
// allowEphemeral is set and refused otherwise.
func (s *Server) authorize(ctx context.Context, key string, allowEphemeral bool) (grant, *httpError) {
	unauth := func(code, msg string) *httpError {
		return &httpError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: code, msg: msg,
			wwwAuthenticate: `Bearer realm="parley", error="invalid_token"`}
	}
	if key == "" {
		e := unauth("missing_api_key", "an API key is required: Authorization: Bearer KEY")
		e.wwwAuthenticate = `Bearer realm="parley"`
		return grant{}, e
	}
	g, herr := s.authorizeKey(ctx, key, allowEphemeral, unauth)
	if holder, ok := ctx.Value(callLogKey{}).(*Principal); ok && herr == nil {
		*holder = g.principal
	}
	if herr != nil && herr.status < 500 {
		// Refusals are logged with what they were and whose key it was
		// when known; never the key.
		kind := "secret"
		switch {
		case strings.HasPrefix(key, ephemeralPrefix):
			kind = "ephemeral"
		case strings.HasPrefix(key, "pk_"):
			kind = "publishable"
		}
		s.log.Info().Str("code", herr.code).Str("key_kind", kind).Str("key_id", g.principal.KeyID).Msg("key refused")
	}
	return g, herr
}

func (s *Server) authorizeKey(ctx context.Context, key string, allowEphemeral bool, unauth func(code, msg string) *httpError) (grant, *httpError) {
	if strings.HasPrefix(key, ephemeralPrefix) {
		if !allowEphemeral {
			return grant{}, unauth("ephemeral_key_not_allowed", "this endpoint needs a secret key (sk_...); ephemeral keys only open sessions and calls")
		}
		g, herr := s.redeem(ctx, key, unauth)
		if herr == nil {
			g.principal.Plan = s.planOf(ctx, g.principal.TenantID)
			herr = s.limitKey(g.principal)
		}
		return g, herr
	}
	p, err := s.opts.Auth.Authenticate(ctx, key)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			return grant{}, unauth("invalid_api_key", "the API key is not valid")
		}
		s.log.Error().Err(err).Msg("authentication failed")
		return grant{}, &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "auth_unavailable",
			msg: "authentication is unavailable; try again", retryAfter: 1}
	}
	p.Plan = s.planOf(ctx, p.TenantID)
	return grant{principal: p}, s.limitKey(p)
}

// limitKey takes one request from the key's rate limit (its tenant's
// plan's, or the default).
func (s *Server) limitKey(p Principal) *httpError {
	lim := s.keyLimiter
	if pl, ok := s.planLimiters[p.Plan]; ok {
		lim = pl
	}
	if lim == nil {
		return nil
	}
	if ok, wait := lim.Allow(p.KeyID); !ok {
		s.metrics.rateLimited.WithLabelValues("key").Inc()
		return tooMany("this key is sending requests too fast", wait)
	}
	return nil
}

func tooMany(msg string, wait time.Duration) *httpError {
	return &httpError{status: http.StatusTooManyRequests, typ: "invalid_request_error", code: "rate_limit_exceeded",
		msg: msg + "; retry after the Retry-After header's seconds", retryAfter: max(1, int((wait+time.Second-1)/time.Second))}
}

// limitIP wraps a handler with the per-client-IP rate limit. Its refusal
// is readable by the page that got it, like the handlers' own.
func (s *Server) limitIP(h http.HandlerFunc) http.HandlerFunc {
	if s.ipLimiter == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.ipLimiter.Allow(s.opts.ClientIPs.Of(r)); !ok {
			s.metrics.rateLimited.WithLabelValues("ip").Inc()
			tooMany("too many requests from this address", wait).writeReadable(w, r.Header.Get("Origin"))
			return
		}
		h(w, r)
	}
}

// redeem consumes an ephemeral key.
func (s *Server) redeem(ctx context.Context, key string, unauth func(code, msg string) *httpError) (grant, *httpError) {
	if len(key) < KeyPrefixLen+8 || len(key) > 256 {
		return grant{}, unauth("invalid_api_key", "the ephemeral key is not valid")
	}
	k, err := s.opts.Store.ConsumeEphemeralKey(ctx, key[:KeyPrefixLen], HashKey(key), s.now().UTC())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return grant{}, unauth("invalid_api_key", "the ephemeral key is not valid")
	case errors.Is(err, storage.ErrExpired):
		return grant{}, unauth("ephemeral_key_expired", "the ephemeral key has expired; mint a new one with POST /v1/realtime/client_secrets")
	case errors.Is(err, storage.ErrUsed):
		return grant{}, unauth("ephemeral_key_used", "the ephemeral key was already used; an ephemeral key opens one session")
	case err != nil:
		s.log.Error().Err(err).Msg("redeeming an ephemeral key failed")
		return grant{}, &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "auth_unavailable",
			msg: "authentication is unavailable; try again", retryAfter: 1}
	}
	a, err := s.agentFor(ctx, k.TenantID, k.AgentID)
	if errors.Is(err, storage.ErrNotFound) {
		return grant{}, &httpError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found",
			msg: "the agent " + quote(k.AgentID) + " this key was minted for no longer exists"}
	}
	if err != nil {
		return grant{}, agentUnavailable(s, err)
	}
	g := grant{principal: Principal{TenantID: k.TenantID, KeyID: k.KeyID}, ephemeral: true, agent: a, endUser: k.EndUser, origin: k.Origin}
	if len(k.Session) > 0 {
		session, err := s.opts.Sealer.Open(ctx, k.TenantID, k.Session, seal.SessionAAD(k.TenantID, k.ID))
		if err != nil {
			s.log.Error().Err(err).Msg("opening an ephemeral key's session failed")
			return grant{}, &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "auth_unavailable",
				msg: "the ephemeral key's session could not be read; mint a new key"}
		}
		u, e := realtime.DecodeSessionUpdate(session, "session")
		if e != nil { // validated when minted; a change of Parley version may still refuse it
			return grant{}, fromRealtime(e)
		}
		g.session = u
	}
	return g, nil
}

// clientSecretRequest is the body of POST /v1/realtime/client_secrets.
type clientSecretRequest struct {
	ExpiresAfter *struct {
		Anchor  string `json:"anchor"`
		Seconds *int64 `json:"seconds"`
	} `json:"expires_after"`
	Session json.RawMessage `json:"session"`
	// EndUser is Parley's extension: the business's identifier of the end
	// user the key is for (stored only as a pseudonym), so the user's
	// conversations can be exported and deleted by it.
	EndUser string `json:"end_user"`
	// Origin is Parley's extension for a secret key minting on behalf of
	// a browser page (a site's backend behind its widget's token URL):
	// the page's origin, to which the ephemeral key is then bound as a
	// publishable key's are (originPermits). With a publishable key the
	// page's origin is the request's Origin header and this is refused.
	Origin string `json:"origin"`
}

// requireRealtime refuses keys that may not use the realtime API directly:
// publishable keys (they only mint ephemeral keys) and secret keys
// without the realtime scope. Ephemeral keys carry their own grant.
func requireRealtime(g grant) *httpError {
	switch {
	case g.ephemeral || g.principal.hasScope(storage.ScopeRealtime):
		return nil
	case g.principal.Kind == storage.KeyPublishable:
		return &httpError{status: http.StatusForbidden, typ: "invalid_request_error", code: "insufficient_scope",
			msg: "a publishable key only mints ephemeral keys (POST /v1/realtime/client_secrets); open the session with the ephemeral key"}
	}
	return &httpError{status: http.StatusForbidden, typ: "invalid_request_error", code: "insufficient_scope",
		msg: "this key lacks the realtime scope"}
}

// clientSecrets mints an ephemeral key: POST /v1/realtime/client_secrets
// with a secret key (realtime scope), or from a browser with a publishable
// key, whose allowed origins and agents bound what it may mint. A key
// minted with a publishable key is bound to the page's origin (see
// originPermits); one minted with a secret key is bound to the origin its
// body names, if any.
func (s *Server) clientSecrets(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	fail := func(e *httpError) { e.writeReadable(w, origin) }
	g, herr := s.authorize(r.Context(), bearer(r), false)
	if herr != nil {
		fail(herr)
		return
	}
	publishable := g.principal.Kind == storage.KeyPublishable
	if publishable {
		if origin == "" || !slices.Contains(g.principal.Origins, origin) {
			s.log.Info().Str("key_id", g.principal.KeyID).Str("origin", origin).Msg("publishable key refused: origin not allowed")
			fail(&httpError{status: http.StatusForbidden, typ: "invalid_request_error", code: "origin_not_allowed",
				msg: "this publishable key is not allowed from origin " + quote(origin)})
			return
		}
		allowOrigin(w.Header(), origin)
	} else if herr := requireRealtime(g); herr != nil {
		fail(herr)
		return
	}
	if herr := requireJSON(r); herr != nil {
		fail(herr)
		return
	}
	var req clientSecretRequest
	if herr := decodeBody(w, r, &req); herr != nil {
		fail(herr)
		return
	}
	ttl := s.opts.EphemeralTTL
	if ea := req.ExpiresAfter; ea != nil {
		if ea.Anchor != "" && ea.Anchor != "created_at" {
			fail(badRequest(realtime.CodeInvalidValue, "expires_after.anchor", `expires_after.anchor must be "created_at"`))
			return
		}
		if ea.Seconds != nil {
			sec := *ea.Seconds
			if sec < int64(minEphemeralTTL/time.Second) || sec > int64(maxEphemeralTTL/time.Second) {
				fail(badRequest(realtime.CodeInvalidValue, "expires_after.seconds", "expires_after.seconds must be between 10 and 7200"))
				return
			}
			ttl = time.Duration(sec) * time.Second
		}
	}
	a, u, herr := s.sessionRequest(r.Context(), g.principal.TenantID, req.Session, "session", r.URL.Query().Get("model"))
	if herr != nil {
		fail(herr)
		return
	}
	if publishable && !slices.Contains(g.principal.AgentIDs, a.ID) {
		fail(&httpError{status: http.StatusForbidden, typ: "invalid_request_error", code: "agent_not_allowed", param: "session.model",
			msg: "this publishable key is not bound to agent " + quote(a.ID)})
		return
	}
	if publishable && req.EndUser != "" {
		// A publishable key is public: whoever has the page could file
		// conversations under any end user. The business's backend names
		// end users, with a secret key.
		fail(badRequest("invalid_value", "end_user", "end_user needs a secret key: mint the ephemeral key from your backend to name the end user"))
		return
	}
	boundOrigin := ""
	switch {
	case publishable && req.Origin != "":
		// The page's origin is what the browser says it is, not what the
		// page claims.
		fail(badRequest("invalid_value", "origin", "with a publishable key the page's origin is taken from the request's Origin header; "+
			"\"origin\" is for a secret key minting for a page from your backend"))
		return
	case publishable:
		boundOrigin = origin // checked against the key's origins above
	case req.Origin != "":
		o, msg := normalizeOrigin(req.Origin)
		if msg != "" {
			fail(badRequest("invalid_value", "origin", "origin "+quote(req.Origin)+" is not a page origin: "+msg))
			return
		}
		boundOrigin = o
	}
	endUser, herr := s.endUser(r.Context(), g.principal.TenantID, req.EndUser, "end_user")
	if herr != nil {
		fail(herr)
		return
	}
	now := s.now()
	rec := &storage.EphemeralKey{
		TenantID: g.principal.TenantID, KeyID: g.principal.KeyID, AgentID: a.ID, Session: []byte(req.Session),
		CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC(), EndUser: endUser,
		Origin: boundOrigin, // when set, the key works only from this page's origin
	}
	key, rec, herr := s.mintEphemeral(r.Context(), rec)
	if herr != nil {
		fail(herr)
		return
	}
	st := realtime.NewSession("sess_pending", a.ID, a.Instructions, rec.ExpiresAt.Unix())
	st.ID = ""
	if u != nil {
		_ = st.Apply(u) // validated by sessionRequest
	}
	writeJSON(w, http.StatusOK, struct {
		Value     string           `json:"value"`
		ExpiresAt int64            `json:"expires_at"`
		Session   realtime.Session `json:"session"`
	}{key, rec.ExpiresAt.Unix(), st})
}

// sessionRequest validates a session object given over HTTP and picks its
// agent: session.model, else the model query parameter, else the only
// agent.
func (s *Server) sessionRequest(ctx context.Context, tenantID string, raw json.RawMessage, param, queryModel string) (*agent.Agent, *realtime.SessionUpdate, *httpError) {
	var u *realtime.SessionUpdate
	if !isNullJSON(raw) {
		var e *realtime.Error
		if u, e = realtime.DecodeSessionUpdate(raw, param); e != nil {
			return nil, nil, fromRealtime(e)
		}
	}
	model := queryModel
	if u != nil && u.Model != nil && *u.Model != "" {
		model = *u.Model
	}
	var a *agent.Agent
	switch {
	case model != "":
		var err error
		a, err = s.agentFor(ctx, tenantID, model)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil, &httpError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found", param: param + ".model",
				msg: "no agent named " + quote(model) + s.agentList(tenantID)}
		}
		if err != nil {
			return nil, nil, agentUnavailable(s, err)
		}
	case tenantID == storage.DefaultTenant && len(s.opts.Agents) == 1:
		for _, x := range s.opts.Agents {
			a = x
		}
	default:
		return nil, nil, badRequest(realtime.CodeMissingParameter, param+".model",
			"name the agent in "+param+".model"+s.agentList(tenantID))
	}
	if u != nil {
		st := realtime.NewSession("check", a.ID, a.Instructions, 0)
		if e := st.Apply(u); e != nil {
			return nil, nil, fromRealtime(e)
		}
		if e := s.checkEngines(st); e != nil {
			return nil, nil, fromRealtime(e)
		}
	}
	return a, u, nil
}

// checkEngines refuses settings the configured engines cannot serve.
func (s *Server) checkEngines(st realtime.Session) *realtime.Error {
	m := st.OutputModalities
	if len(m) == 1 && m[0] == realtime.ModalityAudio && s.opts.Synthesizer == nil {
		return realtime.Invalid(realtime.CodeUnsupported, "session.output_modalities", "this gateway has no speech synthesizer configured; use [\"text\"]")
	}
	return nil
}

func bearer(r *http.Request) string {
	k, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(k)
}

func isNullJSON(raw json.RawMessage) bool {
	t := strings.TrimSpace(string(raw))
	return t == "" || t == "null"
}

func requireJSON(r *http.Request) *httpError {
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.ContentLength == 0 {
		return nil // an empty body takes every default
	}
	if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(strings.ToLower(mt)) != "application/json" {
		return &httpError{status: http.StatusUnsupportedMediaType, typ: "invalid_request_error", code: "unsupported_media_type",
			msg: "send the body as application/json"}
	}
	return nil
}

// decodeBody decodes a JSON body strictly, within maxSignalBody.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *httpError {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout)) // against trickling clients
	body := http.MaxBytesReader(w, r.Body, maxSignalBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		if dec.More() {
			return badRequest(realtime.CodeInvalidJSON, "", "the body holds more than one JSON value")
		}
		return nil
	case errors.As(err, &tooBig):
		return &httpError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", code: "body_too_large",
			msg: "the body is larger than 64 KiB"}
	case errors.Is(err, io.EOF):
		return nil // empty body: defaults
	default:
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return badRequest(realtime.CodeUnknownParameter, strings.Trim(f, `"`), "unknown field "+f)
		}
		return badRequest(realtime.CodeInvalidJSON, "", "the body is not valid JSON: "+msg)
	}
}

// agentFor returns the agent id of a tenant: for the default tenant, the
// agents of the configuration file (then its stored ones); for every other
// tenant, its own stored agents (TenantAgent). storage.ErrNotFound when
// the tenant has no such agent.
func (s *Server) agentFor(ctx context.Context, tenantID, id string) (*agent.Agent, error) {
	if tenantID == storage.DefaultTenant {
		if a, ok := s.opts.Agents[id]; ok {
			return a, nil
		}
	}
	if s.opts.TenantAgent == nil {
		return nil, storage.ErrNotFound
	}
	return s.opts.TenantAgent(ctx, tenantID, id)
}

// agentList names the configured agents in error messages for the
// default tenant (other tenants do not see the operator's agents).
func (s *Server) agentList(tenantID string) string {
	if tenantID != storage.DefaultTenant {
		return " (your agents are managed under /v1/tenants/{tenant_id}/agents)"
	}
	return " (agents: " + strings.Join(s.agentIDs(), ", ") + ")"
}

func agentUnavailable(s *Server, err error) *httpError {
	s.log.Error().Err(err).Msg("loading a tenant agent failed")
	return &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "agent_unavailable",
		msg: "the agent could not be loaded; try again", retryAfter: 1}
}

// maxOriginLen bounds an origin named in a request body.
const maxOriginLen = 512

// normalizeOrigin checks that s is a web page's origin, scheme http or
// https and a host with an optional port and nothing else, and returns it
// in the form browsers send in the Origin header (which an ephemeral key's
// origin is compared to exactly): scheme and host in lower case, an IPv6
// address in its canonical form, the scheme's default port dropped, and a
// trailing "/" (the one path taken) removed. Otherwise it returns why s is
// not an origin.
func normalizeOrigin(s string) (origin, problem string) {
	if len(s) > maxOriginLen {
		return "", "it is too long"
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || c == '\\' {
			return "", "it holds spaces, control characters, backslashes or non-ASCII characters (write an internationalised host in its xn-- form)"
		}
	}
	if strings.ContainsAny(s, "?#") {
		return "", "an origin has no query or fragment"
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", `write it as scheme://host[:port], such as "https://shop.example"`
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", "the scheme must be http or https"
	}
	rest = strings.TrimSuffix(rest, "/")
	switch {
	case strings.Contains(rest, "/"):
		return "", "an origin has no path"
	case strings.Contains(rest, "@"):
		return "", "an origin has no user name or password"
	case rest == "":
		return "", "it has no host"
	}
	host, port, hasPort := rest, "", false
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", "its IPv6 address lacks the closing ]"
		}
		if after := host[end+1:]; after != "" {
			if after[0] != ':' {
				return "", "its host is not valid"
			}
			port, hasPort = after[1:], true
		}
		addr, err := netip.ParseAddr(host[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", "its IPv6 address is not valid"
		}
		host = "[" + addr.String() + "]"
	} else {
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host, port, hasPort = host[:i], host[i+1:], true
		}
		host = strings.ToLower(host)
		if !validHostname(host) {
			return "", "its host is not a valid host name or IPv4 address"
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if port == "" || len(port) > 5 || strings.TrimLeft(port, "0123456789") != "" || err != nil || n < 1 || n > 65535 {
			return "", "its port must be a number from 1 to 65535"
		}
		if (scheme == "https" && n == 443) || (scheme == "http" && n == 80) {
			port = "" // browsers leave the default port out
		} else {
			port = strconv.Itoa(n)
		}
	}
	origin = scheme + "://" + host
	if port != "" {
		origin += ":" + port
	}
	return origin, ""
}

// validHostname reports whether h (in lower case) is a DNS name or an
// IPv4 address as browsers serialise hosts: ASCII letters, digits, "-"
// and "_" in non-empty dot-separated labels, a final dot allowed.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}
