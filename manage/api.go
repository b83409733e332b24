// Package manage is Parley's management REST API under /v1/: sign-up and
// sign-in, tenants, members and invitations, agents, keys, settings, the
// audit and API call logs, and the privacy routes: the tenant's privacy
// policy, its conversations, their export and deletion (data rights), and
// its usage. JSON in and out, one error shape
// ({"error":{"type","code","message","param"}}) everywhere.
//
// Every route is one row of the table Routes returns: method, pattern,
// the access action the role table (access.Permissions) decides on, and
// the request and response shapes. The same table registers the handlers
// and builds the OpenAPI document served at GET /v1/openapi.json, so they
// cannot drift apart.
//
// Who may call:
//
//   - a signed-in user: "Authorization: Bearer ps_…" or the session
//     cookie (cookie requests with unsafe methods also need the header
//     "X-Parley-CSRF: 1", or an Origin equal to the request's host);
//   - a secret key of the tenant with scope management (a key acts with
//     an admin's power, never an owner's) or read_only (GET only).
//
// Realtime-only secret keys and publishable keys are refused with 403
// insufficient_scope. Anything of another tenant is 404 not_found, as if
// it did not exist (OWASP API1).
package manage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"parley/access"
	"parley/storage"
)

// Rate is a token bucket: PerSecond requests per second on average, in
// bursts of up to Burst.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Limits are the API's request limits. A zero Rate takes its default.
type Limits struct {
	// PerIP limits every request by client IP (default 20/s, burst 50).
	PerIP Rate
	// PerPrincipal limits every authenticated request by key id or user
	// id (default 10/s, burst 30).
	PerPrincipal Rate
	// SignInPerIP limits register and login attempts by client IP
	// (default 10 a minute, burst 10).
	SignInPerIP Rate
	// SignInPerEmail limits register and login attempts by email address
	// (default 5 a minute, burst 5): what stops a password guesser who
	// spreads over many IPs.
	SignInPerEmail Rate
	// MaxPageSize caps ?limit= (default 100; larger values are lowered to
	// it). DefaultPageSize is the page size without ?limit= (default 20).
	MaxPageSize, DefaultPageSize int
}

func (l *Limits) defaults() {
	def := func(r *Rate, ps float64, burst int) {
		if r.PerSecond <= 0 {
			r.PerSecond = ps
		}
		if r.Burst <= 0 {
			r.Burst = burst
		}
	}
	def(&l.PerIP, 20, 50)
	def(&l.PerPrincipal, 10, 30)
	def(&l.SignInPerIP, 10.0/60, 10)
	def(&l.SignInPerEmail, 5.0/60, 5)
	if l.MaxPageSize <= 0 {
		l.MaxPageSize = 100
	}
	if l.MaxPageSize > storage.MaxListLimit {
		l.MaxPageSize = storage.MaxListLimit
	}
	if l.DefaultPageSize <= 0 || l.DefaultPageSize > l.MaxPageSize {
		l.DefaultPageSize = min(20, l.MaxPageSize)
	}
}

// Keyring seals and opens tenant data under the tenant's data key and
// pseudonymises end-user identifiers (*seal.Keyring implements it).
type Keyring interface {
	// Seal encrypts plaintext under tenantID's data key, bound to aad.
	Seal(ctx context.Context, tenantID string, plaintext, aad []byte) ([]byte, error)
	// Open decrypts what Seal returned; seal.ErrShredded when the
	// tenant's data key is gone.
	Open(ctx context.Context, tenantID string, sealed, aad []byte) ([]byte, error)
	// Pseudonym is the stable pseudonym of an end-user identifier within
	// tenantID (what storage keeps instead of the identifier).
	Pseudonym(ctx context.Context, tenantID, endUserID string) (string, error)
}

// Options configure the API.
type Options struct {
	Accounts storage.Accounts // required
	// Privacy is the conversation store with the privacy records and the
	// data-rights operations: in parleyd the same Backend as Accounts.
	// When nil, Accounts is used if it is a storage.Backend. Without one,
	// the privacy, conversation, export, deletion and usage routes answer
	// 503.
	Privacy storage.Backend
	// Keyring seals agent settings and opens transcripts. Without it, an
	// agent with settings cannot be written or read, and the conversation
	// and export routes answer 503 (parleyd always sets it).
	Keyring Keyring
	// DefaultPolicy is the installation's privacy policy for a tenant that
	// never set its own (config retention.* and privacy.*); nil:
	// DefaultPolicy.
	DefaultPolicy func(tenantID string) storage.Policy
	// ClientIPs tells a request's client address for the per-IP limits
	// (nil: the connection's peer).
	ClientIPs *access.ClientIPs
	// Keys resolves sk_ keys (scope management or read_only); required.
	// The caller runs Keys.Run.
	Keys          *access.KeyCache
	Logger        zerolog.Logger
	Now           func() time.Time // default time.Now
	SecureCookies bool             // Secure attribute on the session cookie (true behind TLS)
	Limits        Limits
	SessionTTL    time.Duration // sign-in session lifetime (default 12h)
}

// Retention and lifetimes.
const (
	// AuditRetention is how long audit entries are kept: 7 years, the
	// usual statutory horizon for business records.
	AuditRetention = 7 * 365 * 24 * time.Hour
	// IdempotencyTTL is how long a POST's response is replayed for its
	// Idempotency-Key.
	IdempotencyTTL = 24 * time.Hour
	// InvitationTTL is how long an invitation can be accepted.
	InvitationTTL = 7 * 24 * time.Hour
	// DefaultSessionTTL is a sign-in's lifetime unless Options.SessionTTL.
	DefaultSessionTTL = 12 * time.Hour
	// SessionCookie is the name of the session cookie.
	SessionCookie = "parley_session"
	// CSRFHeader must accompany cookie-authenticated unsafe requests
	// (value "1") unless their Origin is the API's own.
	CSRFHeader = "X-Parley-CSRF"

	maxBody       = 64 << 10
	touchEvery    = time.Minute
	logBuffer     = 4096
	logBatch      = 200
	logFlushEvery = time.Second
)

// API is the management API. Create it with New, serve Handler, and Close
// it when done.
type API struct {
	o      Options
	log    zerolog.Logger
	now    func() time.Time
	routes []Route
	mux    *http.ServeMux
	spec   []byte // the OpenAPI document

	perIP, perPrincipal, signInIP, signInEmail *access.Limiter

	idemSeed  maphash.Seed
	idemLocks [64]sync.Mutex

	calls     chan storage.APICall
	done      chan struct{}
	closeOnce sync.Once
	callsMu   sync.Mutex // guards closed and dropped, and sends against close
	closed    bool
	dropped   int64 // API call entries dropped (buffer full)
}

// New returns the API; it starts the goroutine that writes the API call
// log (stopped by Close).
func New(o Options) (*API, error) {
	if o.Accounts == nil {
		return nil, errors.New("manage: Options.Accounts is required")
	}
	if o.Keys == nil {
		return nil, errors.New("manage: Options.Keys is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Privacy == nil {
		o.Privacy, _ = o.Accounts.(storage.Backend)
	}
	if o.DefaultPolicy == nil {
		o.DefaultPolicy = DefaultPolicy
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	o.Limits.defaults()
	l := o.Limits
	a := &API{
		o: o, log: o.Logger.With().Str("component", "manage").Logger(), now: o.Now,
		perIP:        access.NewLimiter(l.PerIP.PerSecond, l.PerIP.Burst, 0),
		perPrincipal: access.NewLimiter(l.PerPrincipal.PerSecond, l.PerPrincipal.Burst, 0),
		signInIP:     access.NewLimiter(l.SignInPerIP.PerSecond, l.SignInPerIP.Burst, 0),
		signInEmail:  access.NewLimiter(l.SignInPerEmail.PerSecond, l.SignInPerEmail.Burst, 0),
		idemSeed:     maphash.MakeSeed(),
		calls:        make(chan storage.APICall, logBuffer),
		done:         make(chan struct{}),
	}
	if o.Keyring == nil {
		a.log.Warn().Msg("no keyring: agents with settings, conversations and exports are unavailable")
	}
	a.routes = a.table()
	a.mux = http.NewServeMux()
	for i := range a.routes {
		rt := &a.routes[i]
		if err := rt.check(); err != nil {
			return nil, err
		}
		a.mux.Handle(rt.Method+" "+rt.Pattern, a.wrap(rt))
	}
	spec, err := buildOpenAPI(a.routes)
	if err != nil {
		return nil, fmt.Errorf("manage: building the OpenAPI document: %w", err)
	}
	a.spec = spec
	go a.writeCalls()
	return a, nil
}

// Handler serves the /v1/ routes of Routes. Requests no route matches get
// 404 route_not_found (or 405 method_not_allowed with Allow) in the API's
// error shape.
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := a.mux.Handler(r); pattern == "" {
			a.noRoute(w, r)
			return
		}
		a.mux.ServeHTTP(w, r)
	})
}

// Routes returns the route table (a copy).
func (a *API) Routes() []Route { return append([]Route(nil), a.routes...) }

// Close flushes the API call log and stops its writer. Requests served
// after Close are not logged.
func (a *API) Close() error {
	a.closeOnce.Do(func() {
		a.callsMu.Lock()
		a.closed = true
		close(a.calls)
		a.callsMu.Unlock()
		<-a.done
	})
	return nil
}

// noRoute answers a request no pattern matches: the mux tells 404 from
// 405 (and which methods are allowed); the answer is in the error shape.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request) {
	h, _ := a.mux.Handler(r)
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	setCommonHeaders(w)
	if rec.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeErr(w, &apiErr{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			msg: r.Method + " is not allowed on this route; see the Allow header"})
		return
	}
	writeErr(w, &apiErr{status: http.StatusNotFound, code: "route_not_found", msg: "no such route: see GET /v1/openapi.json"})
}

type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

// clientIP is the request's peer address. Behind a reverse proxy the
// gateway must rewrite RemoteAddr from a trusted forwarding header before
// the API sees the request: the API itself trusts no header.
func (a *API) clientIP(r *http.Request) string { return a.o.ClientIPs.Of(r) }

// idemLock serializes requests with the same tenant and Idempotency-Key
// on this node, so that two concurrent retries do not both create.
func (a *API) idemLock(tenantID, key string) *sync.Mutex {
	return &a.idemLocks[maphash.String(a.idemSeed, tenantID+"\x00"+key)%uint64(len(a.idemLocks))]
}

// writeCalls is the API call log writer: entries are batched (up to
// logBatch, or every logFlushEvery) and appended in one transaction.
func (a *API) writeCalls() {
	defer close(a.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	batch := make([]storage.APICall, 0, logBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.o.Accounts.AppendAPICalls(ctx, batch); err != nil {
			a.log.Warn().Err(err).Int("entries", len(batch)).Msg("writing the API call log failed; entries dropped")
		}
		cancel()
		batch = batch[:0]
	}
	for {
		select {
		case c, ok := <-a.calls:
			if !ok {
				flush()
				return
			}
			batch = append(batch, c)
			if len(batch) >= logBatch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

// LogCall queues an API call log entry of another part of the server (the
// realtime endpoints) for the same writer; ID and ExpiresAt are filled in
// when empty. An entry without a tenant is not logged.
func (a *API) LogCall(c storage.APICall) {
	if c.TenantID == "" {
		return
	}
	if c.ID == "" {
		c.ID = newID("call_")
	}
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = c.At.Add(storage.APICallRetention)
	}
	a.logCall(c)
}

// logCall queues an API call log entry; dropped (and counted) when the
// writer is behind, so logging never slows a request down.
func (a *API) logCall(c storage.APICall) {
	a.callsMu.Lock()
	defer a.callsMu.Unlock()
	if a.closed {
		return
	}
	select {
	case a.calls <- c:
	default:
		a.dropped++
		if n := a.dropped; n&(n-1) == 0 {
			a.log.Warn().Int64("dropped", n).Msg("API call log buffer full; entries dropped")
		}
	}
}

func hashParts(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return h.Sum(nil)
}

func sameOrigin(origin, host string) bool {
	if origin == "" || origin == "null" {
		return false
	}
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}
