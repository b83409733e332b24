package manage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"parley/access"
	"parley/storage"
	"parley/storage/seal"
)

// Who may call a route.
const (
	// AuthNone: anyone (sign-up, sign-in, the OpenAPI document).
	AuthNone = "none"
	// AuthUser: a signed-in user (session token or cookie); keys are
	// refused.
	AuthUser = "user"
	// AuthPrincipal: a signed-in user or a management/read_only key, not
	// about one tenant in the path.
	AuthPrincipal = "principal"
	// AuthTenant: a member of the path's tenant (the role table decides
	// on Action) or a key of that tenant (its scope decides).
	AuthTenant = "tenant"
)

// Route is one row of the route table.
type Route struct {
	Method      string // GET, POST, PATCH, PUT, DELETE
	Pattern     string // Go 1.22 ServeMux pattern, also the OpenAPI path
	Action      string // the access action (access.Permissions) for AuthTenant routes
	Summary     string
	OperationID string
	Tag         string
	Auth        string // AuthNone, AuthUser, AuthPrincipal or AuthTenant
	// Idempotent routes (POST creates) honour Idempotency-Key.
	Idempotent bool
	// Status is the success status (200 unless set).
	Status int

	request  any // prototype of the JSON body, nil for none
	response any // prototype of the success body
	list     bool
	query    []queryParam // query parameters besides a list's after and limit
	// download: the success body is a file (Content-Disposition:
	// attachment), streamed.
	download bool
	handle   func(*call) (any, error)
}

// queryParam documents a query parameter of a route.
type queryParam struct {
	name, desc string
	required   bool
	format     string // a JSON Schema string format, e.g. "date"
}

func (rt *Route) check() error {
	switch {
	case rt.handle == nil:
		return fmt.Errorf("manage: route %s %s has no handler", rt.Method, rt.Pattern)
	case rt.Auth == AuthTenant && access.Permissions[rt.Action] == "":
		return fmt.Errorf("manage: route %s %s: unknown action %q", rt.Method, rt.Pattern, rt.Action)
	case rt.OperationID == "":
		return fmt.Errorf("manage: route %s %s has no operationId", rt.Method, rt.Pattern)
	}
	if rt.Status == 0 {
		rt.Status = http.StatusOK
	}
	return nil
}

// call is one request in flight.
type call struct {
	a     *API
	w     http.ResponseWriter
	r     *http.Request
	route *Route
	now   time.Time
	ip    string
	body  []byte

	user      *storage.User
	sess      *storage.UserSession
	viaCookie bool
	key       *storage.Key
	tenant    *storage.Tenant
	role      string // the caller's effective role in tenant

	logTenant string // the tenant whose API call log records this call
	status    int
	errCode   string
	replayed  bool
	aborted   bool // a streamed answer failed after it started: abort the connection
}

func (c *call) ctx() context.Context { return c.r.Context() }

// actor returns the audit actor.
func (c *call) actor() (kind, id string) {
	if c.key != nil {
		return storage.ActorKey, c.key.ID
	}
	if c.user != nil {
		return storage.ActorUser, c.user.ID
	}
	return storage.ActorSystem, ""
}

// audit records an administrative write in tenantID's audit log. A
// failure is logged, not returned: the write happened.
func (c *call) audit(tenantID, action, targetKind, targetID string) {
	kind, id := c.actor()
	e := &storage.AuditEntry{ID: newID("aud_"), TenantID: tenantID, ActorKind: kind, ActorID: id,
		Action: action, TargetKind: targetKind, TargetID: targetID, At: c.now.UTC(), ExpiresAt: c.now.Add(AuditRetention).UTC()}
	if err := c.a.o.Accounts.AppendAudit(context.WithoutCancel(c.ctx()), e); err != nil {
		c.a.log.Error().Err(err).Str("action", action).Str("tenant_id", tenantID).Msg("writing the audit log failed")
	}
}

// wrap is the pipeline every route runs: per-IP limit, authentication,
// CSRF, per-principal limit, body, tenant and permission checks,
// idempotency, the handler, the API call log.
func (a *API) wrap(rt *Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{a: a, w: w, r: r, route: rt, now: a.now(), ip: a.clientIP(r)}
		setCommonHeaders(w)
		body, err := c.serve()
		_, wrote := body.(streamed) // the handler wrote the answer itself (and set c.status)
		switch {
		case err != nil:
			c.fail(err)
		case !wrote:
			if !c.replayed {
				c.status = rt.Status
			}
			w.WriteHeader(c.status)
			if b, ok := body.(rawBody); ok {
				_, _ = w.Write(b)
			} else if body != nil {
				_ = json.NewEncoder(w).Encode(body)
			}
		}
		if c.logTenant != "" {
			kind, id := c.actor()
			ac := storage.APICall{ID: newID("call_"), TenantID: c.logTenant, Method: r.Method, Route: rt.Pattern,
				Status: c.status, At: c.now.UTC(), ExpiresAt: c.now.Add(storage.APICallRetention).UTC()}
			if kind == storage.ActorKey {
				ac.KeyID = id
			} else if c.user != nil {
				ac.UserID = c.user.ID
			}
			a.logCall(ac)
		}
		if c.aborted {
			// A streamed answer failed midway: the client must see a
			// broken connection, not a complete-looking answer.
			panic(http.ErrAbortHandler)
		}
	})
}

// rawBody is a stored response replayed as is.
type rawBody []byte

// fail writes err as an error answer and logs refusals at info (never a
// presented secret: only ids, the route and the code).
func (c *call) fail(err error) {
	e := mapErr(err, "resource")
	if e == nil {
		c.a.log.Error().Err(err).Str("method", c.r.Method).Str("route", c.route.Pattern).Msg("request failed")
		e = unavailable()
	}
	c.status, c.errCode = e.status, e.code
	writeErr(c.w, e)
	if e.status == http.StatusUnauthorized || e.status == http.StatusForbidden || e.status == http.StatusNotFound ||
		e.status == http.StatusTooManyRequests || e.status == http.StatusUnprocessableEntity {
		ev := c.a.log.Info().Str("method", c.r.Method).Str("route", c.route.Pattern).Int("status", e.status).
			Str("code", e.code).Str("ip", c.ip)
		c.identify(ev)
		ev.Msg("request refused")
	}
}

func (c *call) identify(ev *zerolog.Event) {
	if c.user != nil {
		ev.Str("user_id", c.user.ID)
	}
	if c.key != nil {
		ev.Str("key_id", c.key.ID).Str("key_prefix", c.key.Prefix)
	}
	if c.tenant != nil {
		ev.Str("tenant_id", c.tenant.ID)
	}
}

func (c *call) serve() (any, error) {
	rt := c.route
	if ok, wait := c.a.perIP.Allow("ip:" + c.ip); !ok {
		return nil, tooMany(wait)
	}
	if rt.Auth != AuthNone {
		if err := c.authenticate(); err != nil {
			return nil, err
		}
		if ok, wait := c.a.perPrincipal.Allow(c.principalID()); !ok {
			if c.key != nil {
				c.logTenant = c.key.TenantID
			}
			return nil, tooMany(wait)
		}
	}
	if err := c.checkCSRF(); err != nil {
		return nil, err
	}
	if c.key != nil && rt.Auth != AuthTenant {
		c.logTenant = c.key.TenantID
	}
	if err := c.readBody(); err != nil {
		return nil, err
	}
	if rt.Auth == AuthTenant {
		if err := c.authorizeTenant(); err != nil {
			return nil, err
		}
	}
	if rt.Idempotent {
		if k := c.r.Header.Get("Idempotency-Key"); k != "" && c.tenant != nil {
			return c.idempotent(k)
		}
	}
	return rt.handle(c)
}

func (c *call) principalID() string {
	if c.key != nil {
		return "key:" + c.key.ID
	}
	return "user:" + c.user.ID
}

func tooMany(wait time.Duration) *apiErr {
	return &apiErr{status: http.StatusTooManyRequests, code: "rate_limit_exceeded",
		msg: "too many requests; retry after the Retry-After header's seconds", retryAfter: max(wait, time.Second)}
}

// readBody reads the body of POST, PUT, PATCH and DELETE (at most 64 KiB,
// JSON only).
func (c *call) readBody() error {
	switch c.r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	// A client that trickles its body is cut off (the server's
	// ReadHeaderTimeout covers only the headers).
	_ = http.NewResponseController(c.w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &apiErr{status: http.StatusRequestEntityTooLarge, code: "body_too_large", msg: "the body is larger than 64 KiB"}
	case err != nil:
		return badParam("invalid_body", "", "the body could not be read")
	}
	if len(b) > 0 {
		mt, _, _ := strings.Cut(c.r.Header.Get("Content-Type"), ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
			return &apiErr{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "send the body as application/json"}
		}
	}
	if c.route.request == nil && len(strings.TrimSpace(string(b))) > 0 && string(b) != "{}" {
		return badParam("unexpected_body", "", "this route takes no body")
	}
	c.body = b
	return nil
}

// authorizeTenant resolves {tenant_id} for the caller: another tenant's
// id is 404 not_found (never 403: its existence is not revealed), then the
// role table or the key's scope decides on the route's action.
func (c *call) authorizeTenant() error {
	id := c.r.PathValue("tenant_id")
	ctx := c.ctx()
	if c.key != nil {
		if c.key.TenantID != id {
			c.logTenant = c.key.TenantID
			return notFound("tenant")
		}
		c.role = access.RoleAdmin // a key acts with an admin's power, never an owner's
	} else {
		m, err := c.a.o.Accounts.GetMembership(ctx, id, c.user.ID)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return notFound("tenant")
			}
			return err
		}
		c.role = m.Role
	}
	t, err := c.a.o.Accounts.GetTenant(ctx, id)
	if err != nil {
		return err
	}
	c.tenant, c.logTenant = t, t.ID
	if c.key != nil && c.key.HasScope(storage.ScopeReadOnly) && c.r.Method != http.MethodGet && c.r.Method != http.MethodHead {
		return forbidden("insufficient_scope", "a read_only key can only read (GET)")
	}
	if !access.Can(c.role, c.route.Action) {
		if c.key != nil {
			return forbidden("insufficient_scope", "a key cannot "+c.route.Action+"; sign in as an owner")
		}
		return forbidden("permission_denied", "your role ("+c.role+") cannot "+c.route.Action)
	}
	// A deleted tenant can still be read, and its conversation data
	// deleted (an erasure request need not wait for the purge), until it
	// is purged.
	if !t.Active() && c.r.Method != http.MethodGet && c.r.Method != http.MethodHead &&
		c.route.Action != access.ActTenantDelete && c.route.Action != access.ActDataDelete {
		return conflict("tenant_disabled", "the tenant is deleted; it only can be read (and its conversation data deleted) until it is purged")
	}
	return nil
}

// idempotent runs the handler once per (tenant, Idempotency-Key): the same
// key with the same request replays the stored response; with another
// request it is 422 idempotency_key_reused. Only successful responses are
// stored (a failed request may be retried with the same key), and never a
// secret: the one-time "value"/"token" of a created key or invitation is
// stored (and replayed) as null.
func (c *call) idempotent(key string) (any, error) {
	if len(key) > 255 {
		return nil, badParam("invalid_value", "Idempotency-Key", "Idempotency-Key is at most 255 characters")
	}
	kind, actor := c.actor()
	reqHash := hashParts(c.r.Method, c.route.Pattern, kind, actor, string(c.body))
	mu := c.a.idemLock(c.tenant.ID, key)
	mu.Lock()
	defer mu.Unlock()
	ctx := c.ctx()
	// Claim the key in storage first, so two nodes given the same key
	// never both run the request.
	res := &storage.IdempotencyRecord{TenantID: c.tenant.ID, Key: key, RequestHash: reqHash, Status: storage.IdempotencyPending,
		CreatedAt: c.now.UTC(), ExpiresAt: c.now.Add(IdempotencyTTL).UTC()}
	err := c.a.o.Accounts.ReserveIdempotency(ctx, res)
	if errors.Is(err, storage.ErrConflict) {
		rec, gerr := c.a.o.Accounts.GetIdempotency(ctx, c.tenant.ID, key)
		switch {
		case gerr != nil:
			return nil, gerr
		case string(rec.RequestHash) != string(reqHash):
			return nil, &apiErr{status: http.StatusUnprocessableEntity, code: "idempotency_key_reused", param: "Idempotency-Key",
				msg: "this Idempotency-Key was used with a different request"}
		case rec.Status == storage.IdempotencyPending:
			c.w.Header().Set("Retry-After", "1")
			return nil, &apiErr{status: http.StatusConflict, code: "idempotency_key_in_progress", param: "Idempotency-Key",
				msg: "a request with this Idempotency-Key is still running; retry shortly"}
		}
		body, err := c.openIdempotent(key, rec.Body)
		if err != nil {
			return nil, err
		}
		c.replayed = true
		c.status = rec.Status
		c.w.Header().Set("Idempotent-Replayed", "true")
		return rawBody(body), nil
	}
	if err != nil {
		return nil, err
	}
	body, herr := c.route.handle(c)
	if herr != nil {
		// Failed requests may be retried with the same key.
		if err := c.a.o.Accounts.ReleaseIdempotency(context.WithoutCancel(ctx), c.tenant.ID, key); err != nil {
			c.a.log.Warn().Err(err).Str("route", c.route.Pattern).Msg("releasing the idempotency reservation failed")
		}
		return nil, herr
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	stored, _ := redactSecrets(b)
	stored, err = c.sealIdempotent(key, append(stored, '\n'))
	if err != nil {
		c.a.log.Warn().Err(err).Str("route", c.route.Pattern).Msg("sealing the idempotency record failed; it is not stored")
		if err := c.a.o.Accounts.ReleaseIdempotency(context.WithoutCancel(ctx), c.tenant.ID, key); err != nil {
			c.a.log.Warn().Err(err).Str("route", c.route.Pattern).Msg("releasing the idempotency reservation failed")
		}
	} else if err := c.a.o.Accounts.CompleteIdempotency(context.WithoutCancel(ctx), c.tenant.ID, key, c.route.Status, stored); err != nil {
		c.a.log.Warn().Err(err).Str("route", c.route.Pattern).Msg("storing the idempotency record failed")
	}
	return rawBody(append(b, '\n')), nil
}

// A stored response can hold tenant content (an agent's settings are its
// knowledge documents), so it is sealed like every other record of the
// tenant's content: idempotencyMagic, then the sealed body. Records
// stored before sealing (plain JSON) still replay.
const idempotencyMagic = "\x00sealed1"

func (c *call) sealIdempotent(key string, body []byte) ([]byte, error) {
	if c.a.o.Keyring == nil {
		return body, nil
	}
	sealed, err := c.a.o.Keyring.Seal(context.WithoutCancel(c.ctx()), c.tenant.ID, body, seal.IdempotencyAAD(c.tenant.ID, key))
	if err != nil {
		return nil, err
	}
	return append([]byte(idempotencyMagic), sealed...), nil
}

func (c *call) openIdempotent(key string, stored []byte) ([]byte, error) {
	sealed, ok := bytes.CutPrefix(stored, []byte(idempotencyMagic))
	if !ok {
		return stored, nil
	}
	if c.a.o.Keyring == nil {
		return nil, errNoKeyring
	}
	return c.a.o.Keyring.Open(c.ctx(), c.tenant.ID, sealed, seal.IdempotencyAAD(c.tenant.ID, key))
}

// redactSecrets nulls the one-time secrets of a response object.
func redactSecrets(b []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return b, err
	}
	changed := false
	for _, f := range []string{"value", "token"} {
		if _, ok := m[f]; ok {
			m[f] = json.RawMessage("null")
			changed = true
		}
	}
	if !changed {
		return b, nil
	}
	return json.Marshal(m)
}

// page reads ?after= and ?limit= (default and cap from Limits: a larger
// limit is lowered to the cap).
func (c *call) page() (string, int, error) {
	q := c.r.URL.Query()
	after := q.Get("after")
	if _, err := storage.ParseCursor(after); err != nil {
		return "", 0, invalid("after", "after is not a cursor this API returned (next_cursor)")
	}
	limit := c.a.o.Limits.DefaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return "", 0, invalid("limit", "limit must be a positive integer")
		}
		limit = min(n, c.a.o.Limits.MaxPageSize)
	}
	return after, limit, nil
}

// listBody is a page of a list.
type listBody[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func listOf[T, S any](items []S, next string, conv func(*S) T) listBody[T] {
	out := listBody[T]{Data: make([]T, 0, len(items))}
	for i := range items {
		out.Data = append(out.Data, conv(&items[i]))
	}
	if next != "" {
		out.NextCursor = &next
	}
	return out
}

// listOfErr is listOf with a conversion that may fail.
func listOfErr[T, S any](items []S, next string, conv func(*S) (T, error)) (listBody[T], error) {
	out := listBody[T]{Data: make([]T, 0, len(items))}
	for i := range items {
		v, err := conv(&items[i])
		if err != nil {
			return listBody[T]{}, err
		}
		out.Data = append(out.Data, v)
	}
	if next != "" {
		out.NextCursor = &next
	}
	return out, nil
}

// bodyReadTimeout bounds reading a request body.
const bodyReadTimeout = 10 * time.Second
