package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"parley/storage"
	"parley/storage/seal"
)

// DemoTokens answers POST /demo/token, the token endpoint of parleyd's
// development demo page (widget.demo): it mints an ephemeral key for
// tenantID's agent without any key, the way a site's backend would for its
// widget (data-token-url). It answers only a browser on the gateway's own
// machine, on the demo page itself: the connection must come from a
// loopback address (the TCP peer, whatever X-Forwarded-For says), the Host
// must be a loopback name (localhost, 127.x.y.z, ::1), which defeats DNS
// rebinding, the Origin must be the gateway's own (same host), and a
// Sec-Fetch-Site header, when sent, must say same-origin. That stops other
// sites and other machines, not other programs on this one: development
// only.
func (s *Server) DemoTokens(tenantID, agentID string) http.Handler {
	return s.limitIP(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackPeer(r.RemoteAddr) || !loopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, "invalid_request_error", "demo_local_only",
				"the demo token endpoint answers only browsers on this machine (the gateway's), at http://localhost:PORT or http://127.0.0.1:PORT; it is for development")
			return
		}
		origin := r.Header.Get("Origin")
		if u, err := url.Parse(origin); origin == "" || err != nil || u.Host != r.Host {
			writeError(w, http.StatusForbidden, "invalid_request_error", "origin_not_allowed",
				"the demo token endpoint answers only the gateway's own pages on this machine, not origin "+quote(origin))
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
			writeError(w, http.StatusForbidden, "invalid_request_error", "origin_not_allowed",
				"the demo token endpoint answers only the gateway's own pages on this machine, not a "+quote(site)+" request")
			return
		}
		if herr := requireJSON(r); herr != nil {
			herr.write(w)
			return
		}
		var req struct {
			Agent string `json:"agent"`
			Voice bool   `json:"voice"`
		}
		if herr := decodeBody(w, r, &req); herr != nil {
			herr.write(w)
			return
		}
		if req.Agent != "" && req.Agent != agentID {
			badRequest("invalid_value", "agent", "the demo is for agent "+quote(agentID)).write(w)
			return
		}
		modality := "text"
		if req.Voice {
			modality = "audio"
		}
		session := json.RawMessage(`{"type":"realtime","model":` + strconv.Quote(agentID) + `,"output_modalities":["` + modality + `"]}`)
		a, _, herr := s.sessionRequest(r.Context(), tenantID, session, "session", "")
		if herr != nil {
			herr.write(w)
			return
		}
		now := s.now()
		key, rec, herr := s.mintEphemeral(r.Context(), &storage.EphemeralKey{
			TenantID: tenantID, KeyID: "demo", AgentID: a.ID, Session: session,
			CreatedAt: now.UTC(), ExpiresAt: now.Add(s.opts.EphemeralTTL).UTC(),
		})
		if herr != nil {
			herr.write(w)
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Value     string `json:"value"`
			ExpiresAt int64  `json:"expires_at"`
		}{key, rec.ExpiresAt.Unix()})
	})
}

// mintEphemeral completes rec (id, prefix, hash; its session sealed) and
// stores it; it returns the key, which exists nowhere else.
func (s *Server) mintEphemeral(ctx context.Context, rec *storage.EphemeralKey) (string, *storage.EphemeralKey, *httpError) {
	key := newKey(ephemeralPrefix)
	rec.ID = "ekid_" + randomID(16)
	rec.Prefix, rec.Hash = key[:KeyPrefixLen], HashKey(key)
	unavailable := &httpError{status: http.StatusServiceUnavailable, typ: "server_error", code: "storage_unavailable",
		msg: "the key could not be stored; try again", retryAfter: 1}
	if isNullJSON(rec.Session) {
		rec.Session = nil
	}
	if len(rec.Session) > 0 {
		// The session may carry per-user instructions: stored sealed.
		sealed, err := s.opts.Sealer.Seal(ctx, rec.TenantID, rec.Session, seal.SessionAAD(rec.TenantID, rec.ID))
		if err != nil {
			s.log.Error().Err(err).Msg("sealing an ephemeral key's session failed")
			return "", nil, unavailable
		}
		rec.Session = sealed
	}
	if err := s.opts.Store.CreateEphemeralKey(ctx, rec); err != nil {
		s.log.Error().Err(err).Msg("storing an ephemeral key failed")
		return "", nil, unavailable
	}
	s.metrics.ephemeralKeys.Inc()
	return key, rec, nil
}

// loopbackHost reports whether a Host header names this machine by a
// loopback name: localhost, or a loopback address (127.0.0.0/8, ::1).
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// loopbackPeer reports whether a connection's remote address
// (http.Request.RemoteAddr) is a loopback address.
func loopbackPeer(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
