package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"parley/agent"
	"parley/realtime"
	"parley/rtc"
)

// A WebRTC call is a session whose events ride the call's "oai-events"
// data channel and whose audio rides its RTP tracks. POST
// /v1/realtime/calls answers the browser's offer; the session engine is
// the same as over WebSocket.

// callAnswerTimeout bounds building the answer (ICE gathering included).
const callAnswerTimeout = 10 * time.Second

// DataChannelMaxMessage is the data-channel message size parleyd's edge
// announces (rtc.Config.MaxMessageSize): the largest client event a call
// sends. dcMaxBuffered is how much the SCTP association may hold unsent
// before the client counts as too slow.
const (
	DataChannelMaxMessage = 64 << 10
	dcMaxBuffered         = 4 << 20
)

// call is a live WebRTC call.
type call struct {
	id        string
	sess      *session
	rc        *rtc.Call
	dc        *dcConn
	principal Principal
	hungUp    atomic.Bool
}

// createCall answers POST /v1/realtime/calls: an SDP offer as
// application/sdp with an ephemeral (or secret) key, or a multipart form
// with parts "sdp" and "session" (JSON) as OpenAI's server-side variant.
//
// From a browser (an Origin header), the key decides the origin: see
// originPermits. Refusals are readable from any origin (writeReadable).
func (s *Server) createCall(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	origin := r.Header.Get("Origin")
	refuse := func(e *httpError) {
		s.metrics.callsRefused.WithLabelValues(e.code).Inc()
		e.writeReadable(w, origin)
	}
	if s.opts.RTC == nil {
		refuse(&httpError{status: http.StatusNotImplemented, typ: "invalid_request_error", code: "webrtc_disabled",
			msg: "WebRTC calls are not enabled on this gateway (webrtc.udp_address); use the WebSocket endpoint"})
		return
	}
	offer, formSession, herr := readOffer(w, r)
	if herr != nil {
		refuse(herr)
		return
	}
	if err := rtc.CheckOffer(offer); err != nil {
		refuse(offerError(err))
		return
	}
	// The key is checked (and an ephemeral key used up) only for an offer
	// that can be answered.
	g, herr := s.authorize(r.Context(), bearer(r), true)
	if herr == nil {
		herr = requireRealtime(g)
	}
	if herr != nil {
		refuse(herr)
		return
	}
	if !s.originPermits(g, origin, r.Host) {
		// An ephemeral key is used up by now: one presented from the
		// wrong origin is burned, which a leaked key deserves.
		refuse(originNotAllowed(origin, g))
		return
	}
	a, updates, herr := s.callSettings(r.Context(), g, formSession, r.URL.Query().Get("model"))
	if herr != nil {
		refuse(herr)
		return
	}
	endUser := g.endUser
	if !g.ephemeral {
		if endUser, herr = s.endUser(r.Context(), g.principal.TenantID, r.URL.Query().Get("end_user"), "end_user"); herr != nil {
			refuse(herr)
			return
		}
	}
	policy, herr := s.policyFor(r.Context(), g.principal.TenantID)
	if herr != nil {
		refuse(herr)
		return
	}
	if herr := s.reserveCall(g.principal); herr != nil {
		refuse(herr)
		return
	}
	released := false
	release := func() {
		if !released {
			released = true
			s.releaseCall(g.principal)
		}
	}
	defer release()

	dc := &dcConn{hasChannel: strings.Contains(offer, "m=application")}
	sess := newSession(s, dc, a, g.principal, "webrtc")
	sess.policy, sess.endUser = policy, endUser
	sess.callAudio = make(chan callChunk, callAudioQueue)
	sess.playback = make(chan playbackMsg, 64)
	sess.attach = make(chan *sideband)
	sess.sideGone = make(chan *sideband)
	if s.opts.Synthesizer != nil {
		sess.state.OutputModalities = []string{realtime.ModalityAudio} // a call speaks by default
	}
	for _, u := range updates {
		_ = sess.state.Apply(u) // validated by callSettings
	}

	ctx, cancel := context.WithTimeout(r.Context(), callAnswerTimeout)
	defer cancel()
	rc, answer, err := s.opts.RTC.Accept(ctx, offer, rtc.CallOptions{
		ConnectTimeout: s.opts.ConnectTimeout,
		OnAudio:        sess.deliverCallAudio,
		OnPlayback: func(ev rtc.PlaybackEvent) {
			sess.deliverPlayback(playbackMsg{started: ev.Type == rtc.PlaybackStarted, tag: ev.Tag})
		},
	})
	if err != nil {
		var oe *rtc.OfferError
		if errors.As(err, &oe) {
			refuse(offerError(err))
			return
		}
		s.log.Error().Err(err).Msg("answering a call failed")
		refuse(&httpError{status: http.StatusInternalServerError, typ: "server_error", code: "webrtc_setup_failed",
			msg: "the call could not be set up; try again"})
		return
	}
	dc.rc, dc.ec = rc, rc.Events()
	sess.call = rc
	c := &call{id: "rtc_" + sess.ids.stem, sess: sess, rc: rc, dc: dc, principal: g.principal}

	s.mu.Lock()
	s.calls[c.id] = c
	s.mu.Unlock()
	released = true // the call's goroutine releases it now
	s.metrics.callsTotal.Inc()
	s.metrics.callsActive.Inc()
	s.metrics.sessionsTotal.Inc()
	s.metrics.sessionsActive.Inc()
	s.metrics.callSetup.Observe(time.Since(start).Seconds())
	sess.log.Info().Str("call_id", c.id).Str("key_id", g.principal.KeyID).Msg("call started")
	sess.open()
	go func() {
		defer s.endCall(c)
		sess.serve()
	}()

	if origin != "" {
		allowOrigin(w.Header(), origin)
		w.Header().Set("Access-Control-Expose-Headers", "Location, Retry-After")
	}
	w.Header().Set("Location", "/v1/realtime/calls/"+c.id)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// endCall runs when a call's session has ended.
func (s *Server) endCall(c *call) {
	_ = c.rc.Close()
	reason := c.rc.Reason() // connect_timeout, disconnected, failed, closed (by the peer)
	switch {
	case c.hungUp.Load():
		reason = "hangup"
	case c.dc.endedBySession.Load():
		reason = "session" // idle, max duration, drain, a slow client
	}
	s.metrics.callsEnded.WithLabelValues(reason).Inc()
	s.metrics.callsActive.Dec()
	s.metrics.sessionsActive.Dec()
	c.sess.log.Info().Str("call_id", c.id).Str("reason", reason).Int("turns", c.sess.turnSeq).Msg("call ended")
	s.mu.Lock()
	delete(s.calls, c.id)
	s.mu.Unlock()
	s.releaseCall(c.principal)
}

// reserveCall takes a call slot (node, key, and session limits).
func (s *Server) reserveCall(p Principal) *httpError {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed || isClosed(s.draining):
		return &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: realtime.CodeShuttingDown,
			msg: "the server is shutting down; call again", retryAfter: 1}
	case s.activeCalls >= s.opts.MaxCalls || s.sessions >= s.opts.MaxSessions:
		return &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: realtime.CodeSessionLimitReached,
			msg: "this node has reached its call limit; try again shortly", retryAfter: 2}
	case s.callsPerKey[p.KeyID] >= s.opts.MaxCallsPerKey:
		return &httpError{status: http.StatusTooManyRequests, typ: "invalid_request_error", code: "call_limit_reached",
			msg: "this key has reached its limit of concurrent calls", retryAfter: 2}
	}
	if limit := s.sessionLimitLocked(p); limit != "" {
		return &httpError{status: http.StatusTooManyRequests, typ: "invalid_request_error", code: realtime.CodeSessionLimitReached,
			msg: limit, retryAfter: 2}
	}
	s.activeCalls++
	s.callsPerKey[p.KeyID]++
	s.takeSessionLocked(p)
	return nil
}

func (s *Server) releaseCall(p Principal) {
	s.mu.Lock()
	s.activeCalls--
	if s.callsPerKey[p.KeyID]--; s.callsPerKey[p.KeyID] <= 0 {
		delete(s.callsPerKey, p.KeyID)
	}
	s.mu.Unlock()
	s.release(p)
}

// callSettings picks the call's agent and the session settings to apply
// at start: those minted with an ephemeral key, then the form's.
func (s *Server) callSettings(ctx context.Context, g grant, formSession json.RawMessage, queryModel string) (*agent.Agent, []*realtime.SessionUpdate, *httpError) {
	var updates []*realtime.SessionUpdate
	if g.ephemeral {
		a := g.agent
		if g.session != nil {
			updates = append(updates, g.session)
		}
		if !isNullJSON(formSession) {
			u, e := realtime.DecodeSessionUpdate(formSession, "session")
			if e != nil {
				return nil, nil, fromRealtime(e)
			}
			st := realtime.NewSession("check", a.ID, a.Instructions, 0)
			if e := st.Apply(u); e != nil {
				return nil, nil, fromRealtime(e)
			}
			updates = append(updates, u)
		}
		return a, updates, nil
	}
	a, u, herr := s.sessionRequest(ctx, g.principal.TenantID, formSession, "session", queryModel)
	if herr != nil {
		return nil, nil, herr
	}
	if u != nil {
		updates = append(updates, u)
	}
	return a, updates, nil
}

// readOffer reads the offer (and the multipart form's session) within
// maxSignalBody.
func readOffer(w http.ResponseWriter, r *http.Request) (offer string, session json.RawMessage, herr *httpError) {
	tooBig := &httpError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", code: "body_too_large",
		msg: "the offer is larger than 64 KiB"}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout)) // against trickling clients
	r.Body = http.MaxBytesReader(w, r.Body, maxSignalBody)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	switch mt {
	case "application/sdp":
		b, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", nil, tooBig
		}
		if err != nil {
			return "", nil, badRequest("invalid_body", "", "the body could not be read")
		}
		offer = string(b)
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxSignalBody); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return "", nil, tooBig
			}
			return "", nil, badRequest("invalid_body", "", "the multipart form could not be parsed: "+err.Error())
		}
		defer func() { _ = r.MultipartForm.RemoveAll() }()
		offer = r.FormValue("sdp")
		if v := r.FormValue("session"); v != "" {
			session = json.RawMessage(v)
		}
	default:
		return "", nil, &httpError{status: http.StatusUnsupportedMediaType, typ: "invalid_request_error", code: "unsupported_media_type",
			msg: "post the SDP offer as application/sdp (or multipart/form-data with parts sdp and session)"}
	}
	if strings.TrimSpace(offer) == "" {
		return "", nil, badRequest(realtime.CodeMissingParameter, "sdp", "the SDP offer is empty")
	}
	return offer, session, nil
}

func offerError(err error) *httpError {
	var oe *rtc.OfferError
	if errors.As(err, &oe) {
		return badRequest(oe.Code, "sdp", oe.Message)
	}
	return badRequest("invalid_sdp", "sdp", err.Error())
}

// hangupCall answers POST /v1/realtime/calls/{call_id}/hangup (a secret
// key of the call's tenant): the call ends and its conversation is kept.
func (s *Server) hangupCall(w http.ResponseWriter, r *http.Request) {
	g, herr := s.authorize(r.Context(), bearer(r), false)
	if herr == nil {
		herr = requireRealtime(g)
	}
	if herr != nil {
		herr.write(w)
		return
	}
	c := s.liveCall(r.PathValue("call_id"), g.principal)
	if c == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "call_not_found", "no live call with that id")
		return
	}
	c.hungUp.Store(true)
	_ = c.rc.Close() // the session sees its data channel end and wraps up
	w.WriteHeader(http.StatusOK)
}

// liveCall returns the live call id of p's tenant, or nil (another
// tenant's call is indistinguishable from none).
func (s *Server) liveCall(id string, p Principal) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[id]
	if c == nil || c.principal.TenantID != p.TenantID {
		return nil
	}
	return c
}

// sideband attaches a WebSocket to a live call: GET /v1/realtime?call_id=…
// with a secret key of the call's tenant.
func (s *Server) sideband(w http.ResponseWriter, r *http.Request, key, callID string) {
	g, herr := s.authorize(r.Context(), key, false)
	if herr == nil {
		herr = requireRealtime(g)
	}
	if herr != nil {
		herr.write(w)
		return
	}
	c := s.liveCall(callID, g.principal)
	if c == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "call_not_found", "no live call with that id")
		return
	}
	hw := &hijackRW{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols:   []string{"realtime"},
		OriginPatterns: s.opts.AllowedOrigins,
	})
	if err != nil {
		s.log.Info().Err(err).Msg("sideband handshake refused")
		return
	}
	conn.SetReadLimit(s.opts.ReadLimit)
	if !c.sess.attachSideband(&wsConn{c: conn, cc: hw.cc}) {
		_ = conn.Close(websocket.StatusNormalClosure, "call ended")
	}
}

// originPermits reports whether a request from a browser origin (the
// Origin header; "" for clients that are not browsers) may use grant g.
// An ephemeral key minted for a page (by a publishable key from the page,
// or by a secret key naming the page's origin) is bound to that origin and
// works from there only, whatever realtime.allowed_origins says; every
// other key works from the gateway's own host and the allowed origins.
func (s *Server) originPermits(g grant, origin, host string) bool {
	switch {
	case origin == "":
		return true
	case g.origin != "":
		return origin == g.origin
	}
	return s.originAllowed(origin, host)
}

// originNotAllowed is the refusal of a browser origin that g may not be
// used from.
func originNotAllowed(origin string, g grant) *httpError {
	msg := "the origin " + quote(origin) + " is not allowed (realtime.allowed_origins)"
	switch {
	case g.origin != "":
		msg = "this ephemeral key was minted for origin " + quote(g.origin) + ", not " + quote(origin) + "; it is used up now"
	case g.ephemeral:
		msg += `; a backend minting a key for a page names the page's origin in "origin" (POST /v1/realtime/client_secrets); this key is used up now`
	}
	return &httpError{status: http.StatusForbidden, typ: "invalid_request_error", code: "origin_not_allowed", msg: msg}
}

func writeNoPreflight(w http.ResponseWriter) {
	writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_preflight", "a CORS preflight needs an Origin header")
}

// originAllowed reports whether a browser origin may use the gateway: its
// own host, or a host matching realtime.allowed_origins (the patterns the
// WebSocket handshake also checks).
func (s *Server) originAllowed(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	for _, p := range s.opts.AllowedOrigins {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// dcConn is an eventConn over a call's "oai-events" data channel. Reads and
// writes wait for the channel to open; an offer without a data channel
// gets its events discarded (the call is audio only).
type dcConn struct {
	hasChannel bool
	rc         *rtc.Call
	ec         *rtc.EventChannel
	buf        []byte
	// endedBySession is set when the session closed a call that was still
	// up (its end reason is the session's, not the network's).
	endedBySession atomic.Bool
}

var errCallEnded = errors.New("the call ended")

// wait blocks until the channel opened, the call ended, or ctx is done.
func (d *dcConn) wait(ctx context.Context) error {
	select {
	case <-d.ec.Ready():
		return nil
	case <-d.rc.Done():
		return errCallEnded
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *dcConn) read(buf []byte) ([]byte, bool, error) {
	if !d.hasChannel {
		<-d.rc.Done()
		return buf, false, errCallEnded
	}
	if err := d.wait(context.Background()); err != nil {
		return buf, false, err
	}
	msg, text, err := d.ec.ReadMessage(d.buf[:0])
	d.buf = msg[:0]
	if cap(d.buf) > dcKeepBuffer {
		d.buf = nil // a rare large event does not pin a large buffer
	}
	if errors.Is(err, rtc.ErrMessageTooLarge) {
		return buf, false, errMessageTooLarge
	}
	if err != nil {
		return buf, false, err
	}
	return append(buf, msg...), text, nil
}

// dcKeepBuffer is the largest read buffer a call keeps between events.
const dcKeepBuffer = 16 << 10

func (d *dcConn) write(ctx context.Context, b []byte) error {
	if !d.hasChannel {
		return nil
	}
	if err := d.wait(ctx); err != nil {
		return err
	}
	if d.ec.BufferedAmount() > dcMaxBuffered {
		return errSlowClient
	}
	return d.ec.WriteText(b)
}

func (d *dcConn) cork()                                    {}
func (d *dcConn) uncork(time.Duration) error               { return nil }
func (d *dcConn) corked() bool                             { return false }
func (d *dcConn) close(websocket.StatusCode, string) error { return d.closeNow() }

func (d *dcConn) closeNow() error {
	select {
	case <-d.rc.Done():
	default:
		d.endedBySession.Store(true)
	}
	return d.rc.Close()
}

// preflight answers the CORS preflight of the browser-facing POST
// endpoints (client_secrets, calls). A preflight carries no key, so it is
// answered for any origin; the POST itself is refused unless its key
// allows the origin (a publishable key's origins, an ephemeral key's bound
// origin, or realtime.allowed_origins: see originPermits).
func preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		writeNoPreflight(w)
		return
	}
	h := w.Header()
	allowOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
