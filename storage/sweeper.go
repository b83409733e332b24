package storage

import (
	"context"
	"time"
)

// Defaults for a Sweeper's zero fields.
const (
	DefaultSweepInterval = time.Minute
	DefaultSweepBatch    = 500
)

// Sweeper deletes expired rows: at start, then every Interval. Each sweep
// calls Store.DeleteExpired in batches of Batch rows, so no transaction
// grows large, until a batch comes back short. Every node may run one;
// the backends make concurrent sweeps share the work.
type Sweeper struct {
	Store    Store
	Interval time.Duration // DefaultSweepInterval if zero
	Batch    int           // DefaultSweepBatch if zero
	Now      func() time.Time
	// OnSweep, if set, is called by Run after each sweep with the number
	// of rows deleted and the error that stopped the sweep, if any. It is
	// the place to log and count; a sweep cut short by Run's context
	// ending is not reported.
	OnSweep func(deleted int, err error)
}

// SweepOnce deletes expired rows in batches until a batch deletes fewer
// than Batch rows, the store fails, or ctx is done, and returns the rows
// deleted. "Expired" is judged against one Now taken at the start, so a
// sweep ends even while new rows keep expiring.
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

	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.Store.DeleteExpired(ctx, cutoff, batch)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
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
