package manage

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"parley/access"
	"parley/storage"
)

func unauthorized(code, msg string) *apiErr {
	return &apiErr{status: http.StatusUnauthorized, code: code, msg: msg, wwwAuth: `Bearer realm="parley", error="invalid_token"`}
}

// credentials returns the presented credential: the bearer token, else the
// session cookie.
func credentials(r *http.Request) (tok string, viaCookie bool, present bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", false, true
		}
		return strings.TrimSpace(t), false, true
	}
	if ck, err := r.Cookie(SessionCookie); err == nil && ck.Value != "" {
		return ck.Value, true, true
	}
	return "", false, false
}

// authenticate resolves the caller: a sign-in session (bearer ps_… or the
// cookie) or a secret key (bearer sk_…). What was presented is never
// logged.
func (c *call) authenticate() error {
	tok, viaCookie, present := credentials(c.r)
	if !present {
		e := unauthorized("missing_credentials", "sign in (Authorization: Bearer ps_… or the session cookie) or present a secret key (Bearer sk_…)")
		e.wwwAuth = `Bearer realm="parley"`
		return e
	}
	switch {
	case !viaCookie && (strings.HasPrefix(tok, secretPrefix) || strings.HasPrefix(tok, publicPrefix)):
		k, err := c.a.o.Keys.Lookup(c.ctx(), tok)
		if errors.Is(err, access.ErrUnknownKey) {
			return unauthorized("invalid_api_key", "the API key is not valid")
		} else if err != nil {
			return err
		}
		c.key = k
		if c.route.Auth == AuthUser {
			c.logTenant = k.TenantID
			return forbidden("user_session_required", "this route needs a signed-in user, not a key")
		}
		if k.Kind != storage.KeySecret || !(k.HasScope(storage.ScopeManagement) || k.HasScope(storage.ScopeReadOnly)) {
			c.logTenant = k.TenantID
			return forbidden("insufficient_scope", "this key has no management or read_only scope")
		}
		return nil
	case strings.HasPrefix(tok, sessionPrefix):
		s, u, err := c.a.session(c.ctx(), tok, c.now)
		if err != nil {
			return err
		}
		c.sess, c.user, c.viaCookie = s, u, viaCookie
		return nil
	}
	return unauthorized("invalid_token", "the credential is not valid")
}

// session checks a sign-in token: its row by prefix, its hash in constant
// time, its expiry; LastSeenAt is written at most once a minute.
func (a *API) session(ctx context.Context, tok string, now time.Time) (*storage.UserSession, *storage.User, error) {
	bad := unauthorized("invalid_token", "the session is not valid; sign in again")
	if !wellFormed(tok, sessionPrefix) {
		return nil, nil, bad
	}
	s, err := a.o.Accounts.UserSessionByPrefix(ctx, tok[:prefixLen])
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, bad
	} else if err != nil {
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare(hashSecret(tok), s.Hash) != 1 {
		return nil, nil, bad
	}
	if !s.ExpiresAt.After(now) {
		return nil, nil, unauthorized("session_expired", "the session has expired; sign in again")
	}
	u, err := a.o.Accounts.GetUser(ctx, s.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, bad
	} else if err != nil {
		return nil, nil, err
	}
	if now.Sub(s.LastSeenAt) >= touchEvery {
		if err := a.o.Accounts.TouchUserSession(ctx, s.ID, now.UTC()); err != nil {
			a.log.Warn().Err(err).Str("session_id", s.ID).Msg("recording a session use failed")
		}
	}
	return s, u, nil
}

// checkCSRF: a cookie-authenticated unsafe request needs X-Parley-CSRF: 1
// or an Origin equal to the host; a cross-origin Origin is refused on
// cookie requests and on sign-in and sign-up (login CSRF). Bearer requests
// need nothing: a browser does not attach them by itself.
func (c *call) checkCSRF() error {
	switch c.r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if !c.viaCookie && c.route.Auth != AuthNone {
		return nil
	}
	origin := c.r.Header.Get("Origin")
	if origin != "" && !sameOrigin(origin, c.r.Host) {
		return forbidden("csrf_failed", "cross-origin request refused")
	}
	if c.viaCookie && origin == "" && c.r.Header.Get(CSRFHeader) != "1" {
		return forbidden("csrf_failed", "a request signed in by cookie needs the header "+CSRFHeader+": 1")
	}
	return nil
}

// newSession signs u in: a session row (hash and prefix only) and the
// cookie; it returns the token.
func (c *call) newSession(u *storage.User) (string, time.Time, error) {
	tok := newToken(sessionPrefix)
	exp := c.now.Add(c.a.o.SessionTTL)
	s := &storage.UserSession{ID: newID("uss_"), UserID: u.ID, Prefix: tok[:prefixLen], Hash: hashSecret(tok),
		CreatedAt: c.now.UTC(), ExpiresAt: exp.UTC()}
	if err := c.a.o.Accounts.CreateUserSession(c.ctx(), s); err != nil {
		return "", time.Time{}, err
	}
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/v1", Expires: exp.UTC(),
		MaxAge: int(c.a.o.SessionTTL / time.Second), HttpOnly: true, Secure: c.a.o.SecureCookies, SameSite: http.SameSiteLaxMode})
	return tok, exp, nil
}

func (c *call) clearCookie() {
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/v1", MaxAge: -1, HttpOnly: true,
		Secure: c.a.o.SecureCookies, SameSite: http.SameSiteLaxMode})
}

// throttleSignIn applies the sign-in limits: per client IP and per email.
func (c *call) throttleSignIn(email string) error {
	if ok, wait := c.a.signInIP.Allow("ip:" + c.ip); !ok {
		return tooMany(wait)
	}
	if ok, wait := c.a.signInEmail.Allow("email:" + email); !ok {
		return tooMany(wait)
	}
	return nil
}

func checkEmail(param, email string) error {
	at := strings.LastIndexByte(email, '@')
	if email == "" {
		return missing(param)
	}
	if len(email) > 254 || at <= 0 || at == len(email)-1 || strings.ContainsAny(email, " \t\r\n") {
		return invalid(param, param+" is not an email address")
	}
	return nil
}

func checkText(param, s string, required bool, maxLen int) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return missing(param)
	case utf8.RuneCountInString(s) > maxLen:
		return invalid(param, param+" is too long")
	case !utf8.ValidString(s):
		return invalid(param, param+" is not valid UTF-8")
	}
	return nil
}

func passwordErr(param string, err error) error {
	return badParam("weak_password", param, strings.TrimPrefix(err.Error(), access.ErrWeakPassword.Error()+": "))
}

type registerRequest struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Company  string `json:"company"`
	Password string `json:"password"`
}

type registerResponse struct {
	User      userView   `json:"user"`
	Tenant    tenantView `json:"tenant"`
	Token     string     `json:"token"`
	ExpiresAt time.Time  `json:"expires_at"`
}

func (c *call) register() (any, error) {
	var req registerRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return nil, err
	}
	email := storage.NormalizeEmail(req.Email)
	if err := checkEmail("email", email); err != nil {
		return nil, err
	}
	if err := c.throttleSignIn(email); err != nil {
		return nil, err
	}
	if err := checkText("name", req.Name, true, 200); err != nil {
		return nil, err
	}
	if err := checkText("company", req.Company, true, 200); err != nil {
		return nil, err
	}
	if err := access.CheckPassword(req.Password); err != nil {
		return nil, passwordErr("password", err)
	}
	ctx := c.ctx()
	if _, err := c.a.o.Accounts.GetUserByEmail(ctx, email); err == nil {
		return nil, conflict("email_taken", "an account with this email exists; sign in instead")
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	hash, err := access.HashPassword(req.Password)
	if err != nil {
		return nil, err
	}
	u := &storage.User{ID: newID("user_"), Email: email, Name: strings.TrimSpace(req.Name), Company: strings.TrimSpace(req.Company),
		PasswordHash: []byte(hash), CreatedAt: c.now.UTC(), PasswordChangedAt: c.now.UTC()}
	if err := c.a.o.Accounts.CreateUser(ctx, u); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return nil, conflict("email_taken", "an account with this email exists; sign in instead")
		}
		return nil, err
	}
	t := &storage.Tenant{ID: newID("ten_"), Name: u.Company, Plan: storage.PlanFree, CreatedAt: c.now.UTC()}
	if err := c.a.o.Accounts.CreateTenant(ctx, t, u.ID); err != nil {
		return nil, err
	}
	c.logTenant = t.ID
	c.user = u
	c.audit(t.ID, "tenant.create", "tenant", t.ID)
	tok, exp, err := c.newSession(u)
	if err != nil {
		return nil, err
	}
	c.a.log.Info().Str("user_id", u.ID).Str("tenant_id", t.ID).Msg("registered")
	return registerResponse{User: viewUser(u), Tenant: viewTenant(t), Token: tok, ExpiresAt: exp.UTC()}, nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	User      userView  `json:"user"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (c *call) login() (any, error) {
	var req loginRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return nil, err
	}
	email := storage.NormalizeEmail(req.Email)
	if email == "" {
		return nil, missing("email")
	}
	if req.Password == "" {
		return nil, missing("password")
	}
	if err := c.throttleSignIn(email); err != nil {
		return nil, err
	}
	wrong := unauthorized("invalid_credentials", "the email or the password is wrong")
	wrong.wwwAuth = ""
	ctx := c.ctx()
	u, err := c.a.o.Accounts.GetUserByEmail(ctx, email)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && len(u.PasswordHash) == 0) {
		access.VerifyNothing(req.Password) // the time of a real check: no enumeration by timing
		return nil, wrong
	} else if err != nil {
		return nil, err
	}
	ok, rehash, err := access.VerifyPassword(string(u.PasswordHash), req.Password)
	if err != nil {
		c.a.log.Error().Err(err).Str("user_id", u.ID).Msg("stored password hash unreadable")
		return nil, wrong
	}
	if !ok {
		c.user = u // for the refusal log line (the id, never the password)
		return nil, wrong
	}
	c.user = u
	if rehash {
		if h, err := access.HashPassword(req.Password); err == nil {
			if err := c.a.o.Accounts.UpdateUserPassword(ctx, u.ID, []byte(h), c.now.UTC()); err != nil {
				c.a.log.Warn().Err(err).Str("user_id", u.ID).Msg("rehashing the password failed")
			}
		}
	}
	tok, exp, err := c.newSession(u)
	if err != nil {
		return nil, err
	}
	return loginResponse{User: viewUser(u), Token: tok, ExpiresAt: exp.UTC()}, nil
}

type revokedView struct {
	Revoked int `json:"revoked"`
}

func (c *call) logout() (any, error) {
	if err := c.a.o.Accounts.RevokeUserSession(c.ctx(), c.user.ID, c.sess.ID, c.now.UTC()); err != nil {
		return nil, err
	}
	c.clearCookie()
	return revokedView{Revoked: 1}, nil
}

func (c *call) logoutAll() (any, error) {
	n, err := c.a.o.Accounts.RevokeUserSessions(c.ctx(), c.user.ID, c.now.UTC())
	if err != nil {
		return nil, err
	}
	c.clearCookie()
	return revokedView{Revoked: n}, nil
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// changePassword replaces the password and signs out every other
// session of the user.
func (c *call) changePassword() (any, error) {
	var req passwordRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return nil, err
	}
	if req.CurrentPassword == "" {
		return nil, missing("current_password")
	}
	if err := access.CheckPassword(req.NewPassword); err != nil {
		return nil, passwordErr("new_password", err)
	}
	if ok, wait := c.a.signInEmail.Allow("email:" + c.user.Email); !ok {
		return nil, tooMany(wait)
	}
	ok, _, err := access.VerifyPassword(string(c.user.PasswordHash), req.CurrentPassword)
	if err != nil || !ok {
		return nil, badParam("incorrect_password", "current_password", "the current password is wrong")
	}
	h, err := access.HashPassword(req.NewPassword)
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	if err := c.a.o.Accounts.UpdateUserPassword(ctx, c.user.ID, []byte(h), c.now.UTC()); err != nil {
		return nil, err
	}
	n, after := 0, ""
	for {
		ss, next, err := c.a.o.Accounts.ListUserSessions(ctx, c.user.ID, after, storage.MaxListLimit)
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			if s.ID != c.sess.ID && s.RevokedAt.IsZero() {
				if err := c.a.o.Accounts.RevokeUserSession(ctx, c.user.ID, s.ID, c.now.UTC()); err != nil {
					return nil, err
				}
				n++
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	c.a.log.Info().Str("user_id", c.user.ID).Int("sessions_revoked", n).Msg("password changed")
	return revokedView{Revoked: n}, nil
}

type membershipView struct {
	TenantID   string `json:"tenant_id"`
	TenantName string `json:"tenant_name"`
	Role       string `json:"role"`
}

type meView struct {
	User        userView         `json:"user"`
	Memberships []membershipView `json:"memberships"`
}

// me returns the user and their memberships (the first MaxPageSize
// tenants; GET /v1/tenants pages through all).
func (c *call) me() (any, error) {
	ctx := c.ctx()
	ts, _, err := c.a.o.Accounts.ListTenants(ctx, c.user.ID, "", c.a.o.Limits.MaxPageSize)
	if err != nil {
		return nil, err
	}
	out := meView{User: viewUser(c.user), Memberships: []membershipView{}}
	for _, t := range ts {
		m, err := c.a.o.Accounts.GetMembership(ctx, t.ID, c.user.ID)
		if err != nil {
			continue // removed meanwhile
		}
		out.Memberships = append(out.Memberships, membershipView{TenantID: t.ID, TenantName: t.Name, Role: m.Role})
	}
	return out, nil
}
