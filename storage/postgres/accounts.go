package postgres

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"parley/storage"
)

var _ storage.Backend = (*Store)(nil)

// The accounts half of the Store (storage.Accounts). The methods that
// check before they write run in one transaction holding a row lock that
// every competing writer takes too: the tenant's row for the last-owner
// rule (FOR NO KEY UPDATE, which does not block inserts referencing the
// tenant), the invitation's row for AcceptInvitation. Under READ COMMITTED
// a waiter then reads what the winner committed.

// scanner is a pgx.Row or pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

// exec runs a write statement and returns ErrNotFound when it touched no
// row.
func (s *Store) exec(ctx context.Context, query string, args ...any) error {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// get runs a single-row query; no row is ErrNotFound.
func get[T any](ctx context.Context, s *Store, scan func(scanner) (*T, error), query string, args ...any) (*T, error) {
	v, err := scan(s.pool.QueryRow(ctx, query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	return v, err
}

// startCursor sorts before every row.
var startCursor = pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}

// page runs a list query and returns one page and the cursor of the next
// one. The query's last three parameters are the cursor's time and id,
// compared with the sort columns as "(time, id) > ($n, $n+1)", and the
// row limit; scan reads a row and returns its cursor.
func page[T any](ctx context.Context, s *Store, scan func(scanner) (*T, storage.Cursor, error),
	query, after string, limit int, args ...any) ([]T, string, error) {
	limit, err := storage.PageLimit(limit)
	if err != nil {
		return nil, "", err
	}
	cur, err := storage.ParseCursor(after)
	if err != nil {
		return nil, "", err
	}
	at := startCursor
	if !cur.IsStart() {
		at = ts(cur.At)
	}
	rows, err := s.pool.Query(ctx, query, append(args, at, cur.ID, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	items := []T{}
	var last storage.Cursor
	for rows.Next() {
		if len(items) == limit { // a row after the page: there is a next one
			return items, last.String(), nil
		}
		v, c, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		items = append(items, *v)
		last = c
	}
	return items, "", rows.Err()
}

// list returns l, or an empty non-nil slice for the NOT NULL text[]
// columns (pgx sends a nil slice as NULL).
func list(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func noList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// blob returns b, or an empty non-nil slice for the NOT NULL bytea
// columns.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func noBlob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Tenants.

const tenantCols = `t.id, t.name, t.plan, t.created_at, t.disabled_at, t.purge_after`

func scanTenant(sc scanner) (*storage.Tenant, error) {
	var (
		t                        storage.Tenant
		created, disabled, purge pgtype.Timestamptz
	)
	if err := sc.Scan(&t.ID, &t.Name, &t.Plan, &created, &disabled, &purge); err != nil {
		return nil, err
	}
	t.CreatedAt, t.DisabledAt, t.PurgeAfter = fromTS(created), fromTS(disabled), fromTS(purge)
	return &t, nil
}

// CreateTenant implements storage.Accounts.
func (s *Store) CreateTenant(ctx context.Context, t *storage.Tenant, ownerID string) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return mapErr(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tenants (id, name, plan, created_at, disabled_at, purge_after)
			VALUES ($1, $2, $3, $4, $5, $6)`,
			t.ID, t.Name, t.Plan, ts(t.CreatedAt), nullTS(t.DisabledAt), nullTS(t.PurgeAfter))
		if err != nil || ownerID == "" {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)`,
			t.ID, ownerID, storage.RoleOwner, ts(t.CreatedAt))
		return err
	}))
}

// GetTenant implements storage.Accounts.
func (s *Store) GetTenant(ctx context.Context, id string) (*storage.Tenant, error) {
	if err := storage.CheckParams("GetTenant", "id", id); err != nil {
		return nil, err
	}
	return get(ctx, s, scanTenant, `SELECT `+tenantCols+` FROM tenants t WHERE t.id = $1`, id)
}

// UpdateTenant implements storage.Accounts.
func (s *Store) UpdateTenant(ctx context.Context, t *storage.Tenant) error {
	if err := storage.CheckParams("UpdateTenant", "Tenant.ID", t.ID, "Tenant.Name", t.Name, "Tenant.Plan", t.Plan); err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE tenants SET name = $1, plan = $2 WHERE id = $3`, t.Name, t.Plan, t.ID)
}

// ListTenants implements storage.Accounts.
func (s *Store) ListTenants(ctx context.Context, userID, after string, limit int) ([]storage.Tenant, string, error) {
	if err := storage.CheckParams("ListTenants", "userID", userID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.Tenant, storage.Cursor, error) {
		t, err := scanTenant(sc)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		return t, storage.Cursor{At: t.CreatedAt, ID: t.ID}, nil
	}, `SELECT `+tenantCols+` FROM memberships m JOIN tenants t ON t.id = m.tenant_id
		WHERE m.user_id = $1 AND (t.created_at, t.id) > ($2, $3)
		ORDER BY t.created_at, t.id LIMIT $4`, after, limit, userID)
}

// DisableTenant implements storage.Accounts.
func (s *Store) DisableTenant(ctx context.Context, id string, at, purgeAfter time.Time) error {
	if err := storage.CheckParams("DisableTenant", "id", id); err != nil {
		return err
	}
	if err := storage.CheckTime("DisableTenant", "at", at); err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE tenants
		SET disabled_at = coalesce(disabled_at, $1), purge_after = coalesce(purge_after, $2)
		WHERE id = $3`, ts(at), nullTS(purgeAfter), id)
}

// EnableTenant implements storage.Accounts.
func (s *Store) EnableTenant(ctx context.Context, id string) error {
	if err := storage.CheckParams("EnableTenant", "id", id); err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE tenants SET disabled_at = NULL, purge_after = NULL WHERE id = $1`, id)
}

// Users.

const userCols = `id, email, name, company, password_hash, created_at, password_changed_at`

func scanUser(sc scanner) (*storage.User, error) {
	var (
		u                storage.User
		created, changed pgtype.Timestamptz
	)
	if err := sc.Scan(&u.ID, &u.Email, &u.Name, &u.Company, &u.PasswordHash, &created, &changed); err != nil {
		return nil, err
	}
	u.PasswordHash = noBlob(u.PasswordHash)
	u.CreatedAt, u.PasswordChangedAt = fromTS(created), fromTS(changed)
	return &u, nil
}

// CreateUser implements storage.Accounts.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	u.Email = storage.NormalizeEmail(u.Email)
	if err := u.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.Email, u.Name, u.Company, blob(u.PasswordHash), ts(u.CreatedAt), nullTS(u.PasswordChangedAt))
	return mapErr(err)
}

// GetUser implements storage.Accounts.
func (s *Store) GetUser(ctx context.Context, id string) (*storage.User, error) {
	if err := storage.CheckParams("GetUser", "id", id); err != nil {
		return nil, err
	}
	return get(ctx, s, scanUser, `SELECT `+userCols+` FROM users WHERE id = $1`, id)
}

// GetUserByEmail implements storage.Accounts.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (*storage.User, error) {
	email = storage.NormalizeEmail(email)
	if err := storage.CheckParams("GetUserByEmail", "email", email); err != nil {
		return nil, err
	}
	return get(ctx, s, scanUser, `SELECT `+userCols+` FROM users WHERE email = $1`, email)
}

// UpdateUserPassword implements storage.Accounts.
func (s *Store) UpdateUserPassword(ctx context.Context, id string, hash []byte, at time.Time) error {
	if err := storage.CheckParams("UpdateUserPassword", "id", id, "hash", string(hash)); err != nil {
		return err
	}
	if err := storage.CheckTime("UpdateUserPassword", "at", at); err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3`, hash, ts(at), id)
}

// Memberships.

const membershipCols = `m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name`

func scanMembership(sc scanner) (*storage.Membership, error) {
	var (
		m       storage.Membership
		created pgtype.Timestamptz
	)
	if err := sc.Scan(&m.TenantID, &m.UserID, &m.Role, &created, &m.Email, &m.Name); err != nil {
		return nil, err
	}
	m.CreatedAt = fromTS(created)
	return &m, nil
}

// AddMember implements storage.Accounts.
func (s *Store) AddMember(ctx context.Context, m *storage.Membership) error {
	if err := m.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)`,
		m.TenantID, m.UserID, m.Role, ts(m.CreatedAt))
	return mapErr(err)
}

// GetMembership implements storage.Accounts.
func (s *Store) GetMembership(ctx context.Context, tenantID, userID string) (*storage.Membership, error) {
	if err := storage.CheckParams("GetMembership", "tenantID", tenantID, "userID", userID); err != nil {
		return nil, err
	}
	return get(ctx, s, scanMembership, `SELECT `+membershipCols+`
		FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.tenant_id = $1 AND m.user_id = $2`, tenantID, userID)
}

// UpdateMemberRole implements storage.Accounts.
func (s *Store) UpdateMemberRole(ctx context.Context, tenantID, userID, role string) error {
	if err := storage.CheckParams("UpdateMemberRole", "tenantID", tenantID, "userID", userID); err != nil {
		return err
	}
	if err := storage.CheckRole("UpdateMemberRole: role", role); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := keepAnOwner(ctx, tx, tenantID, userID, role); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE memberships SET role = $1 WHERE tenant_id = $2 AND user_id = $3`, role, tenantID, userID)
		return err
	})
}

// RemoveMember implements storage.Accounts.
func (s *Store) RemoveMember(ctx context.Context, tenantID, userID string) error {
	if err := storage.CheckParams("RemoveMember", "tenantID", tenantID, "userID", userID); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := keepAnOwner(ctx, tx, tenantID, userID, ""); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
		return err
	})
}

// keepAnOwner checks, inside tx, that giving userID role newRole in
// tenantID ("" for removing them) leaves the tenant an owner: ErrNotFound
// if userID is not a member, ErrConflict if they are its last owner. It
// first locks the tenant's row, as every caller does, so two owners
// demoting each other queue and the second sees the first's change.
func keepAnOwner(ctx context.Context, tx pgx.Tx, tenantID, userID, newRole string) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, tenantID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	if err != nil {
		return err
	}
	var role string
	err = tx.QueryRow(ctx, `SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	if err != nil || role != storage.RoleOwner || newRole == storage.RoleOwner {
		return err
	}
	var others int
	err = tx.QueryRow(ctx, `SELECT count(*) FROM memberships
		WHERE tenant_id = $1 AND role = 'owner' AND user_id <> $2`, tenantID, userID).Scan(&others)
	if err == nil && others == 0 {
		err = fmt.Errorf("%w: %s is the last owner of the tenant", storage.ErrConflict, userID)
	}
	return err
}

// ListMembers implements storage.Accounts.
func (s *Store) ListMembers(ctx context.Context, tenantID, after string, limit int) ([]storage.Membership, string, error) {
	if err := storage.CheckParams("ListMembers", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.Membership, storage.Cursor, error) {
		m, err := scanMembership(sc)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		return m, storage.Cursor{At: m.CreatedAt, ID: m.UserID}, nil
	}, `SELECT `+membershipCols+` FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.tenant_id = $1 AND (m.created_at, m.user_id) > ($2, $3)
		ORDER BY m.created_at, m.user_id LIMIT $4`, after, limit, tenantID)
}

// Invitations.

const invitationCols = `i.id, i.tenant_id, i.email, i.role, i.prefix, i.hash, i.invited_by,
	i.created_at, i.expires_at, i.accepted_at`

func scanInvitation(sc scanner, extra ...any) (*storage.Invitation, error) {
	var (
		inv                        storage.Invitation
		created, expires, accepted pgtype.Timestamptz
	)
	err := sc.Scan(append([]any{&inv.ID, &inv.TenantID, &inv.Email, &inv.Role, &inv.Prefix, &inv.Hash, &inv.InvitedBy,
		&created, &expires, &accepted}, extra...)...)
	if err != nil {
		return nil, err
	}
	inv.CreatedAt, inv.ExpiresAt, inv.AcceptedAt = fromTS(created), fromTS(expires), fromTS(accepted)
	return &inv, nil
}

// CreateInvitation implements storage.Accounts.
func (s *Store) CreateInvitation(ctx context.Context, inv *storage.Invitation) error {
	inv.Email = storage.NormalizeEmail(inv.Email)
	if err := inv.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO invitations
		(id, tenant_id, email, role, prefix, hash, invited_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		inv.ID, inv.TenantID, inv.Email, inv.Role, inv.Prefix, inv.Hash, inv.InvitedBy,
		ts(inv.CreatedAt), ts(inv.ExpiresAt))
	return mapErr(err)
}

// InvitationByPrefix implements storage.Accounts.
func (s *Store) InvitationByPrefix(ctx context.Context, prefix string) (*storage.Invitation, error) {
	if err := storage.CheckParams("InvitationByPrefix", "prefix", prefix); err != nil {
		return nil, err
	}
	return get(ctx, s, func(sc scanner) (*storage.Invitation, error) { return scanInvitation(sc) },
		`SELECT `+invitationCols+` FROM invitations i WHERE i.prefix = $1`, prefix)
}

// AcceptInvitation implements storage.Accounts in one transaction that
// locks the invitation's row first: concurrent acceptances queue on it,
// and each one after the first finds it accepted.
func (s *Store) AcceptInvitation(ctx context.Context, prefix string, hash []byte, userID string, at time.Time) (*storage.Invitation, error) {
	if err := storage.CheckParams("AcceptInvitation", "prefix", prefix, "userID", userID); err != nil {
		return nil, err
	}
	if err := storage.CheckTime("AcceptInvitation", "at", at); err != nil {
		return nil, err
	}
	var inv *storage.Invitation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			err      error
			disabled bool
		)
		inv, err = scanInvitation(tx.QueryRow(ctx, `SELECT `+invitationCols+`, t.disabled_at IS NOT NULL
			FROM invitations i JOIN tenants t ON t.id = i.tenant_id
			WHERE i.prefix = $1 FOR UPDATE OF i`, prefix), &disabled)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		acceptedAt := ts(at)
		switch {
		case subtle.ConstantTimeCompare(inv.Hash, hash) != 1 || disabled:
			return storage.ErrNotFound
		case !inv.ExpiresAt.After(acceptedAt.Time):
			return storage.ErrExpired
		case !inv.AcceptedAt.IsZero():
			return storage.ErrUsed
		}
		tag, err := tx.Exec(ctx, `UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL`, acceptedAt, inv.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrUsed // cannot happen under the row lock; kept as a guard
		}
		_, err = tx.Exec(ctx, `INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)`,
			inv.TenantID, userID, inv.Role, acceptedAt)
		if err != nil {
			return mapErr(err)
		}
		inv.AcceptedAt = fromTS(acceptedAt)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// ListInvitations implements storage.Accounts.
func (s *Store) ListInvitations(ctx context.Context, tenantID, after string, limit int) ([]storage.Invitation, string, error) {
	if err := storage.CheckParams("ListInvitations", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.Invitation, storage.Cursor, error) {
		inv, err := scanInvitation(sc)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		return inv, storage.Cursor{At: inv.CreatedAt, ID: inv.ID}, nil
	}, `SELECT `+invitationCols+` FROM invitations i
		WHERE i.tenant_id = $1 AND (i.created_at, i.id) > ($2, $3)
		ORDER BY i.created_at, i.id LIMIT $4`, after, limit, tenantID)
}

// DeleteInvitation implements storage.Accounts.
func (s *Store) DeleteInvitation(ctx context.Context, tenantID, id string) error {
	if err := storage.CheckParams("DeleteInvitation", "tenantID", tenantID, "id", id); err != nil {
		return err
	}
	return s.exec(ctx, `DELETE FROM invitations WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

// User sessions.

const userSessionCols = `id, user_id, prefix, hash, created_at, expires_at, last_seen_at, revoked_at`

func scanUserSession(sc scanner) (*storage.UserSession, error) {
	var (
		us                              storage.UserSession
		created, expires, seen, revoked pgtype.Timestamptz
	)
	if err := sc.Scan(&us.ID, &us.UserID, &us.Prefix, &us.Hash, &created, &expires, &seen, &revoked); err != nil {
		return nil, err
	}
	us.CreatedAt, us.ExpiresAt = fromTS(created), fromTS(expires)
	us.LastSeenAt, us.RevokedAt = fromTS(seen), fromTS(revoked)
	return &us, nil
}

// CreateUserSession implements storage.Accounts.
func (s *Store) CreateUserSession(ctx context.Context, us *storage.UserSession) error {
	if err := us.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO user_sessions
		(id, user_id, prefix, hash, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		us.ID, us.UserID, us.Prefix, us.Hash, ts(us.CreatedAt), ts(us.ExpiresAt), nullTS(us.LastSeenAt))
	return mapErr(err)
}

// UserSessionByPrefix implements storage.Accounts.
func (s *Store) UserSessionByPrefix(ctx context.Context, prefix string) (*storage.UserSession, error) {
	if err := storage.CheckParams("UserSessionByPrefix", "prefix", prefix); err != nil {
		return nil, err
	}
	return get(ctx, s, scanUserSession, `SELECT `+userSessionCols+` FROM user_sessions
		WHERE prefix = $1 AND revoked_at IS NULL`, prefix)
}

// TouchUserSession implements storage.Accounts.
func (s *Store) TouchUserSession(ctx context.Context, id string, at time.Time) error {
	if err := storage.CheckParams("TouchUserSession", "id", id); err != nil {
		return err
	}
	if err := storage.CheckTime("TouchUserSession", "at", at); err != nil {
		return err
	}
	err := s.exec(ctx, `UPDATE user_sessions SET last_seen_at = $1::timestamptz
		WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $1)`, ts(at), id)
	if errors.Is(err, storage.ErrNotFound) {
		// A later use is already recorded, or no such session.
		return s.mustExist(ctx, `SELECT EXISTS (SELECT 1 FROM user_sessions WHERE id = $1)`, id)
	}
	return err
}

// RevokeUserSession implements storage.Accounts.
func (s *Store) RevokeUserSession(ctx context.Context, userID, id string, at time.Time) error {
	if err := storage.CheckParams("RevokeUserSession", "userID", userID, "id", id); err != nil {
		return err
	}
	if err := storage.CheckTime("RevokeUserSession", "at", at); err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE user_sessions SET revoked_at = coalesce(revoked_at, $1)
		WHERE user_id = $2 AND id = $3`, ts(at), userID, id)
}

// RevokeUserSessions implements storage.Accounts.
func (s *Store) RevokeUserSessions(ctx context.Context, userID string, at time.Time) (int, error) {
	if err := storage.CheckParams("RevokeUserSessions", "userID", userID); err != nil {
		return 0, err
	}
	if err := storage.CheckTime("RevokeUserSessions", "at", at); err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE user_sessions SET revoked_at = $1
		WHERE user_id = $2 AND revoked_at IS NULL`, ts(at), userID)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// ListUserSessions implements storage.Accounts.
func (s *Store) ListUserSessions(ctx context.Context, userID, after string, limit int) ([]storage.UserSession, string, error) {
	if err := storage.CheckParams("ListUserSessions", "userID", userID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.UserSession, storage.Cursor, error) {
		us, err := scanUserSession(sc)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		return us, storage.Cursor{At: us.CreatedAt, ID: us.ID}, nil
	}, `SELECT `+userSessionCols+` FROM user_sessions
		WHERE user_id = $1 AND (created_at, id) > ($2, $3)
		ORDER BY created_at, id LIMIT $4`, after, limit, userID)
}

// Keys.

const keyCols = `k.id, k.tenant_id, k.kind, k.name, k.prefix, k.hash, k.scopes, k.agent_ids, k.origins,
	k.created_by, k.created_at, k.last_used_at, k.revoked_at`

// tenantActive is true for a key (aliased k) whose tenant is not disabled.
// A key of a tenant without a row (written by a version before 0004 for
// another tenant) counts as active.
const tenantActive = `NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = k.tenant_id AND t.disabled_at IS NOT NULL)`

func scanKey(sc scanner) (*storage.Key, error) {
	var (
		k                          storage.Key
		created, lastUsed, revoked pgtype.Timestamptz
	)
	err := sc.Scan(&k.ID, &k.TenantID, &k.Kind, &k.Name, &k.Prefix, &k.Hash, &k.Scopes, &k.AgentIDs, &k.Origins,
		&k.CreatedBy, &created, &lastUsed, &revoked)
	if err != nil {
		return nil, err
	}
	k.Scopes, k.AgentIDs, k.Origins = noList(k.Scopes), noList(k.AgentIDs), noList(k.Origins)
	k.CreatedAt, k.LastUsedAt, k.RevokedAt = fromTS(created), fromTS(lastUsed), fromTS(revoked)
	return &k, nil
}

// CreateKey implements storage.Accounts. The INSERT only finds a row to
// insert when the tenant exists.
func (s *Store) CreateKey(ctx context.Context, k *storage.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	return s.exec(ctx, `INSERT INTO api_keys
		(id, tenant_id, kind, name, prefix, hash, scopes, agent_ids, origins, created_by, created_at, last_used_at)
		SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bytea, $7::text[], $8::text[], $9::text[],
			$10::text, $11::timestamptz, $12::timestamptz
		WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2)`,
		k.ID, k.TenantID, k.Kind, k.Name, k.Prefix, k.Hash, list(k.Scopes), list(k.AgentIDs), list(k.Origins),
		k.CreatedBy, ts(k.CreatedAt), nullTS(k.LastUsedAt))
}

// KeysByPrefix implements storage.Accounts.
func (s *Store) KeysByPrefix(ctx context.Context, prefix string) ([]storage.Key, error) {
	if err := storage.CheckParams("KeysByPrefix", "prefix", prefix); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys k
		WHERE k.prefix = $1 AND k.revoked_at IS NULL AND `+tenantActive+`
		ORDER BY k.created_at, k.id`, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []storage.Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, *k)
	}
	return keys, rows.Err()
}

// KeysRevokedSince implements storage.Accounts.
func (s *Store) KeysRevokedSince(ctx context.Context, since time.Time) ([]storage.Key, error) {
	if err := storage.CheckTime("KeysRevokedSince", "since", since); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys k
		WHERE k.revoked_at >= $1
		   OR EXISTS (SELECT 1 FROM tenants t WHERE t.id = k.tenant_id AND t.disabled_at >= $1)
		ORDER BY k.created_at, k.id`, ts(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	keys := []storage.Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, *k)
	}
	return keys, rows.Err()
}

// GetKey implements storage.Accounts.
func (s *Store) GetKey(ctx context.Context, tenantID, id string) (*storage.Key, error) {
	if err := storage.CheckParams("GetKey", "tenantID", tenantID, "id", id); err != nil {
		return nil, err
	}
	return get(ctx, s, scanKey, `SELECT `+keyCols+` FROM api_keys k WHERE k.tenant_id = $1 AND k.id = $2`, tenantID, id)
}

// ListKeys implements storage.Accounts.
func (s *Store) ListKeys(ctx context.Context, tenantID, after string, limit int) ([]storage.Key, string, error) {
	if err := storage.CheckParams("ListKeys", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.Key, storage.Cursor, error) {
		k, err := scanKey(sc)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		return k, storage.Cursor{At: k.CreatedAt, ID: k.ID}, nil
	}, `SELECT `+keyCols+` FROM api_keys k
		WHERE k.tenant_id = $1 AND (k.created_at, k.id) > ($2, $3)
		ORDER BY k.created_at, k.id LIMIT $4`, after, limit, tenantID)
}

// RevokeKey implements storage.Accounts.
func (s *Store) RevokeKey(ctx context.Context, tenantID, id string, at time.Time) error {
	if err := storage.CheckParams("RevokeKey", "tenantID", tenantID, "id", id); err != nil {
		return err
	}
	if err := storage.CheckTime("RevokeKey", "at", at); err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE tenant_id = $2 AND id = $3`,
		ts(at), tenantID, id)
}

// TouchKey implements storage.Accounts.
func (s *Store) TouchKey(ctx context.Context, tenantID, id string, at time.Time) error {
	if err := storage.CheckParams("TouchKey", "tenantID", tenantID, "id", id); err != nil {
		return err
	}
	if err := storage.CheckTime("TouchKey", "at", at); err != nil {
		return err
	}
	err := s.exec(ctx, `UPDATE api_keys SET last_used_at = $1::timestamptz
		WHERE tenant_id = $2 AND id = $3 AND (last_used_at IS NULL OR last_used_at < $1)`, ts(at), tenantID, id)
	if errors.Is(err, storage.ErrNotFound) {
		// A later use is already recorded, or no such key in the tenant.
		return s.mustExist(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE tenant_id = $1 AND id = $2)`, tenantID, id)
	}
	return err
}

// Agents.

const agentCols = `tenant_id, id, name, instructions, greeting, engine, voice, language, settings, settings_sealed,
	created_at, updated_at`

func scanAgent(sc scanner) (*storage.Agent, error) {
	var (
		a                storage.Agent
		created, updated pgtype.Timestamptz
	)
	err := sc.Scan(&a.TenantID, &a.ID, &a.Name, &a.Instructions, &a.Greeting, &a.Engine, &a.Voice, &a.Language,
		&a.Settings, &a.SettingsSealed, &created, &updated)
	if err != nil {
		return nil, err
	}
	a.Settings, a.SettingsSealed = noBlob(a.Settings), noBlob(a.SettingsSealed)
	a.CreatedAt, a.UpdatedAt = fromTS(created), fromTS(updated)
	return &a, nil
}

// CreateAgent implements storage.Accounts. Both settings columns are
// stored as given: settings (plaintext, a legacy row's) stays empty when
// a.Settings is, settings_sealed NULL when a.SettingsSealed is.
func (s *Store) CreateAgent(ctx context.Context, a *storage.Agent) error {
	if err := a.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO agents (`+agentCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		a.TenantID, a.ID, a.Name, a.Instructions, a.Greeting, a.Engine, a.Voice, a.Language, blob(a.Settings),
		noBlob(a.SettingsSealed), ts(a.CreatedAt), ts(a.UpdatedAt))
	return mapErr(err)
}

// GetAgent implements storage.Accounts.
func (s *Store) GetAgent(ctx context.Context, tenantID, id string) (*storage.Agent, error) {
	if err := storage.CheckParams("GetAgent", "tenantID", tenantID, "id", id); err != nil {
		return nil, err
	}
	return get(ctx, s, scanAgent, `SELECT `+agentCols+` FROM agents WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

// UpdateAgent implements storage.Accounts. It replaces both settings
// columns, so an update that brings only SettingsSealed clears a legacy
// row's plaintext.
func (s *Store) UpdateAgent(ctx context.Context, a *storage.Agent) error {
	if err := a.ValidateUpdate(); err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE agents SET name = $1, instructions = $2, greeting = $3, engine = $4, voice = $5,
		language = $6, settings = $7, settings_sealed = $8, updated_at = $9 WHERE tenant_id = $10 AND id = $11`,
		a.Name, a.Instructions, a.Greeting, a.Engine, a.Voice, a.Language, blob(a.Settings), noBlob(a.SettingsSealed),
		ts(a.UpdatedAt), a.TenantID, a.ID)
}

// DeleteAgent implements storage.Accounts.
func (s *Store) DeleteAgent(ctx context.Context, tenantID, id string) error {
	if err := storage.CheckParams("DeleteAgent", "tenantID", tenantID, "id", id); err != nil {
		return err
	}
	return s.exec(ctx, `DELETE FROM agents WHERE tenant_id = $1 AND id = $2`, tenantID, id)
}

// ListAgents implements storage.Accounts.
func (s *Store) ListAgents(ctx context.Context, tenantID, after string, limit int) ([]storage.Agent, string, error) {
	if err := storage.CheckParams("ListAgents", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.Agent, storage.Cursor, error) {
		a, err := scanAgent(sc)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		return a, storage.Cursor{At: a.CreatedAt, ID: a.ID}, nil
	}, `SELECT `+agentCols+` FROM agents
		WHERE tenant_id = $1 AND (created_at, id) > ($2, $3)
		ORDER BY created_at, id LIMIT $4`, after, limit, tenantID)
}

// Settings.

// GetSettings implements storage.Accounts.
func (s *Store) GetSettings(ctx context.Context, tenantID string) (*storage.Setting, error) {
	if err := storage.CheckParams("GetSettings", "tenantID", tenantID); err != nil {
		return nil, err
	}
	return get(ctx, s, func(sc scanner) (*storage.Setting, error) {
		var (
			st      storage.Setting
			updated pgtype.Timestamptz
		)
		if err := sc.Scan(&st.TenantID, &st.Settings, &updated); err != nil {
			return nil, err
		}
		st.Settings, st.UpdatedAt = noBlob(st.Settings), fromTS(updated)
		return &st, nil
	}, `SELECT tenant_id, settings, updated_at FROM tenant_settings WHERE tenant_id = $1`, tenantID)
}

// PutSettings implements storage.Accounts.
func (s *Store) PutSettings(ctx context.Context, st *storage.Setting) error {
	if err := st.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at`,
		st.TenantID, blob(st.Settings), ts(st.UpdatedAt))
	return mapErr(err)
}

// The API call and audit logs.

// AppendAPICalls implements storage.Accounts: one INSERT of the whole
// batch, passed as one array per column (one round trip, atomic).
func (s *Store) AppendAPICalls(ctx context.Context, calls []storage.APICall) error {
	for i := range calls {
		if err := calls[i].Validate(); err != nil {
			return fmt.Errorf("calls[%d]: %w", i, err)
		}
	}
	if len(calls) == 0 {
		return nil
	}
	n := len(calls)
	var (
		ids, tenants, keys, users = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		methods, routes           = make([]string, n), make([]string, n)
		statuses                  = make([]int32, n)
		ats, expires              = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for i, c := range calls {
		ids[i], tenants[i], keys[i], users[i] = c.ID, c.TenantID, c.KeyID, c.UserID
		methods[i], routes[i], statuses[i] = c.Method, c.Route, int32(c.Status)
		ats[i], expires[i] = ts(c.At), ts(c.ExpiresAt)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO api_calls
		(id, tenant_id, key_id, user_id, method, route, status, at, expires_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::integer[], $8::timestamptz[], $9::timestamptz[])`,
		ids, tenants, keys, users, methods, routes, statuses, ats, expires)
	return mapErr(err)
}

// ListAPICalls implements storage.Accounts.
func (s *Store) ListAPICalls(ctx context.Context, tenantID, after string, limit int) ([]storage.APICall, string, error) {
	if err := storage.CheckParams("ListAPICalls", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.APICall, storage.Cursor, error) {
		var (
			c           storage.APICall
			at, expires pgtype.Timestamptz
		)
		err := sc.Scan(&c.ID, &c.TenantID, &c.KeyID, &c.UserID, &c.Method, &c.Route, &c.Status, &at, &expires)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		c.At, c.ExpiresAt = fromTS(at), fromTS(expires)
		return &c, storage.Cursor{At: c.At, ID: c.ID}, nil
	}, `SELECT id, tenant_id, key_id, user_id, method, route, status, at, expires_at FROM api_calls
		WHERE tenant_id = $1 AND (at, id) > ($2, $3)
		ORDER BY at, id LIMIT $4`, after, limit, tenantID)
}

// AppendAudit implements storage.Accounts.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEntry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log
		(id, tenant_id, actor_kind, actor_id, action, target_kind, target_id, at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.ID, e.TenantID, e.ActorKind, e.ActorID, e.Action, e.TargetKind, e.TargetID, ts(e.At), ts(e.ExpiresAt))
	return mapErr(err)
}

// ListAudit implements storage.Accounts.
func (s *Store) ListAudit(ctx context.Context, tenantID, after string, limit int) ([]storage.AuditEntry, string, error) {
	if err := storage.CheckParams("ListAudit", "tenantID", tenantID); err != nil {
		return nil, "", err
	}
	return page(ctx, s, func(sc scanner) (*storage.AuditEntry, storage.Cursor, error) {
		var (
			e           storage.AuditEntry
			at, expires pgtype.Timestamptz
		)
		err := sc.Scan(&e.ID, &e.TenantID, &e.ActorKind, &e.ActorID, &e.Action, &e.TargetKind, &e.TargetID, &at, &expires)
		if err != nil {
			return nil, storage.Cursor{}, err
		}
		e.At, e.ExpiresAt = fromTS(at), fromTS(expires)
		return &e, storage.Cursor{At: e.At, ID: e.ID}, nil
	}, `SELECT id, tenant_id, actor_kind, actor_id, action, target_kind, target_id, at, expires_at FROM audit_log
		WHERE tenant_id = $1 AND (at, id) > ($2, $3)
		ORDER BY at, id LIMIT $4`, after, limit, tenantID)
}

// Idempotency records.

// PutIdempotency implements storage.Accounts.
func (s *Store) PutIdempotency(ctx context.Context, r *storage.IdempotencyRecord) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Status == storage.IdempotencyPending {
		return fmt.Errorf("%w: IdempotencyRecord.Status: PutIdempotency stores a complete response (reserve with ReserveIdempotency)", storage.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO idempotency_records
		(tenant_id, idem_key, request_hash, status, body, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		r.TenantID, r.Key, r.RequestHash, r.Status, blob(r.Body), ts(r.CreatedAt), ts(r.ExpiresAt))
	return mapErr(err)
}

// ReserveIdempotency implements storage.Accounts.
func (s *Store) ReserveIdempotency(ctx context.Context, r *storage.IdempotencyRecord) error {
	if r.Status != storage.IdempotencyPending {
		return fmt.Errorf("%w: a reservation has Status IdempotencyPending", storage.ErrInvalid)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	err := s.exec(ctx, `INSERT INTO idempotency_records
		(tenant_id, idem_key, request_hash, status, body, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant_id, idem_key) DO UPDATE SET request_hash = excluded.request_hash, status = excluded.status,
			body = excluded.body, created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE idempotency_records.expires_at <= excluded.created_at`,
		r.TenantID, r.Key, r.RequestHash, r.Status, blob(r.Body), ts(r.CreatedAt), ts(r.ExpiresAt))
	if errors.Is(err, storage.ErrNotFound) { // the conflicting record is live
		return storage.ErrConflict
	}
	return err
}

// CompleteIdempotency implements storage.Accounts.
func (s *Store) CompleteIdempotency(ctx context.Context, tenantID, key string, status int, body []byte) error {
	if err := storage.CheckParams("CompleteIdempotency", "tenantID", tenantID, "key", key); err != nil {
		return err
	}
	if status < 100 || status > 599 {
		return fmt.Errorf("%w: CompleteIdempotency status %d is not an HTTP status", storage.ErrInvalid, status)
	}
	return s.exec(ctx, `UPDATE idempotency_records SET status = $1, body = $2
		WHERE tenant_id = $3 AND idem_key = $4 AND status = 0`, status, blob(body), tenantID, key)
}

// ReleaseIdempotency implements storage.Accounts.
func (s *Store) ReleaseIdempotency(ctx context.Context, tenantID, key string) error {
	if err := storage.CheckParams("ReleaseIdempotency", "tenantID", tenantID, "key", key); err != nil {
		return err
	}
	return s.exec(ctx, `DELETE FROM idempotency_records WHERE tenant_id = $1 AND idem_key = $2 AND status = 0`, tenantID, key)
}

// GetIdempotency implements storage.Accounts.
func (s *Store) GetIdempotency(ctx context.Context, tenantID, key string) (*storage.IdempotencyRecord, error) {
	if err := storage.CheckParams("GetIdempotency", "tenantID", tenantID, "key", key); err != nil {
		return nil, err
	}
	return get(ctx, s, func(sc scanner) (*storage.IdempotencyRecord, error) {
		var (
			r                storage.IdempotencyRecord
			created, expires pgtype.Timestamptz
		)
		if err := sc.Scan(&r.TenantID, &r.Key, &r.RequestHash, &r.Status, &r.Body, &created, &expires); err != nil {
			return nil, err
		}
		r.Body, r.CreatedAt, r.ExpiresAt = noBlob(r.Body), fromTS(created), fromTS(expires)
		return &r, nil
	}, `SELECT tenant_id, idem_key, request_hash, status, body, created_at, expires_at FROM idempotency_records
		WHERE tenant_id = $1 AND idem_key = $2`, tenantID, key)
}
