package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Defaults for a Sweeper's zero fields. DefaultSweepBatch is also
// parleyd's default storage.sweep_batch: bench/sweepbench measured
// batches of 500 to 5,000 on both backends, and larger ones deleted
// faster (fewer commits: on PostgreSQL, a WAL flush each; on SQLite, the
// pages a batch shares are written once), while on SQLite a batch holds
// the single writer for its whole duration, about 20 ms at 1,000 rows.
const (
	DefaultSweepInterval = time.Minute
	DefaultSweepBatch    = 1000
)

// TenantPurger erases deleted tenants once their purge date has passed;
// every Backend is one (see Privacy).
type TenantPurger interface {
	TenantsDueForPurge(ctx context.Context, now time.Time) ([]string, error)
	PurgeTenant(ctx context.Context, tenantID string, now time.Time) error
}

// Sweeper deletes expired rows: at start, then every Interval. Each sweep
// first purges the deleted tenants that are due (when Purger is set), then
// calls Store.DeleteExpired in batches of Batch rows, so no transaction
// grows large, until a batch comes back short; a purge expires its
// tenant's conversations, so the same sweep deletes them. Every node may
// run one; the backends make concurrent sweeps share the work.
type Sweeper struct {
	Store    Store
	Interval time.Duration // DefaultSweepInterval if zero
	Batch    int           // DefaultSweepBatch if zero
	Now      func() time.Time
	// Purger, if set, purges deleted tenants at the start of each sweep
	// (usually the same Backend as Store).
	Purger TenantPurger
	// OnPurge, if set, is called after each tenant purged (or found
	// already purged by another node), e.g. so that a keyring forgets the
	// tenant's cached data key.
	OnPurge func(tenantID string)
	// OnSweep, if set, is called by Run after each sweep with the number
	// of rows deleted and the error that stopped the sweep, if any. It is
	// the place to log and count; a sweep cut short by Run's context
	// ending is not reported.
	OnSweep func(deleted int, err error)
}

// SweepOnce purges the deleted tenants that are due (with a Purger), then
// deletes expired rows in batches until a batch deletes fewer than Batch
// rows, the store fails, or ctx is done, and returns the rows deleted (a
// purge's own deletions are not counted; the rows it expires are, when
// this sweep deletes them). "Expired" and "due" are judged against one
// Now taken at the start, so a sweep ends even while new rows keep
// expiring. A failed purge does not stop the sweep: the other tenants are
// purged and expired rows deleted all the same, and the purge's error is
// returned (joined with the deletion's, if any) once the sweep is done.
func (s *Sweeper) SweepOnce(ctx context.Context) (int, error) {
	batch := s.Batch
	if batch <= 0 {
		batch = DefaultSweepBatch
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	cutoff := now()

	purgeErr := s.purge(ctx, cutoff)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.Store.DeleteExpired(ctx, cutoff, batch)
		total += n
		if err != nil || n < batch {
			return total, errors.Join(purgeErr, err)
		}
	}
}

// purge purges every tenant due at now and returns the errors met.
func (s *Sweeper) purge(ctx context.Context, now time.Time) error {
	if s.Purger == nil {
		return nil
	}
	due, err := s.Purger.TenantsDueForPurge(ctx, now)
	if err != nil {
		return fmt.Errorf("tenants due for purge: %w", err)
	}
	var errs []error
	for _, id := range due {
		if ctx.Err() != nil {
			break // SweepOnce returns ctx's error
		}
		// ErrNotFound: another node purged it, and its rows are gone.
		if err := s.Purger.PurgeTenant(ctx, id, now); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("purge tenant %s: %w", id, err))
			continue
		}
		if s.OnPurge != nil {
			s.OnPurge(id)
		}
	}
	return errors.Join(errs...)
}

// Run sweeps at once and then every Interval until ctx is done, then
// returns nil. It runs in the caller's goroutine and starts none. A failed
// sweep is reported to OnSweep and retried at the next tick.
func (s *Sweeper) Run(ctx context.Context) error {
	interval := s.Interval
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		n, err := s.SweepOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if s.OnSweep != nil {
			s.OnSweep(n, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
