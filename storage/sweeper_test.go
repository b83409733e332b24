package storage_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/storage"
	"parley/storage/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeStore implements only DeleteExpired (the embedded nil Store would
// panic on anything else), over a count of expired rows.
type fakeStore struct {
	storage.Store

	mu        sync.Mutex
	remaining int         // expired rows left
	limits    []int       // the limit of each call
	cutoffs   []time.Time // the now of each call
	fail      error       // returned by every call from call failFrom on
	failFrom  int         // 1-based
	block     bool        // wait for ctx to end instead of deleting
}

func (f *fakeStore) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	if f.block {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = append(f.limits, limit)
	f.cutoffs = append(f.cutoffs, now)
	if f.fail != nil && len(f.limits) >= f.failFrom {
		return 0, f.fail
	}
	n := min(limit, f.remaining)
	f.remaining -= n
	return n, nil
}

func TestSweepOnceBatches(t *testing.T) {
	tests := []struct {
		remaining, batch int
		wantLimits       string
		wantTotal        int
	}{
		{25, 10, "[10 10 10]", 25}, // 10, 10, then 5 < 10 ends it
		{20, 10, "[10 10 10]", 20}, // the third batch finds 0
		{0, 10, "[10]", 0},
		{7, 0, fmt.Sprintf("[%d]", storage.DefaultSweepBatch), 7}, // zero Batch means DefaultSweepBatch
		{1000, 500, "[500 500 500]", 1000},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.remaining, "/", tc.batch), func(t *testing.T) {
			f := &fakeStore{remaining: tc.remaining}
			sw := &storage.Sweeper{Store: f, Batch: tc.batch}
			n, err := sw.SweepOnce(t.Context())
			if err != nil || n != tc.wantTotal {
				t.Errorf("SweepOnce = %d, %v; want %d, nil", n, err, tc.wantTotal)
			}
			if got := fmt.Sprint(f.limits); got != tc.wantLimits {
				t.Errorf("DeleteExpired limits = %s, want %s", got, tc.wantLimits)
			}
		})
	}
}

func TestSweepOnceOneCutoff(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	calls := 0
	f := &fakeStore{remaining: 30}
	sw := &storage.Sweeper{Store: f, Batch: 10, Now: func() time.Time {
		calls++
		return base.Add(time.Duration(calls) * time.Hour)
	}}
	if _, err := sw.SweepOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("Now called %d times, want 1", calls)
	}
	for i, c := range f.cutoffs {
		if !c.Equal(base.Add(time.Hour)) {
			t.Errorf("call %d: now = %v, want %v", i, c, base.Add(time.Hour))
		}
	}
}

func TestSweepOnceError(t *testing.T) {
	boom := errors.New("boom")
	f := &fakeStore{remaining: 100, fail: boom, failFrom: 2}
	sw := &storage.Sweeper{Store: f, Batch: 10}
	n, err := sw.SweepOnce(t.Context())
	if n != 10 || !errors.Is(err, boom) {
		t.Errorf("SweepOnce = %d, %v; want 10, boom", n, err)
	}
}

func TestSweepOnceContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f := &fakeStore{remaining: 100}
	n, err := (&storage.Sweeper{Store: f, Batch: 10}).SweepOnce(ctx)
	if n != 0 || !errors.Is(err, context.Canceled) || len(f.limits) != 0 {
		t.Errorf("SweepOnce(cancelled) = %d, %v after %d calls; want 0, context.Canceled, 0 calls", n, err, len(f.limits))
	}
}

// runSweeper starts sw.Run and returns a function that cancels it and
// waits for its result.
func runSweeper(t *testing.T, sw *storage.Sweeper) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sw.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
}

func TestRun(t *testing.T) {
	f := &fakeStore{remaining: 25}
	reports := make(chan int, 100)
	sw := &storage.Sweeper{
		Store:    f,
		Interval: 5 * time.Millisecond,
		Batch:    10,
		OnSweep: func(n int, err error) {
			if err != nil {
				t.Errorf("OnSweep error: %v", err)
			}
			reports <- n
		},
	}
	stop := runSweeper(t, sw)
	// The first sweep runs at start and gets everything; later ticks find
	// nothing.
	for i, want := range []int{25, 0, 0} {
		select {
		case n := <-reports:
			if n != want {
				t.Errorf("sweep %d deleted %d, want %d", i, n, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("sweep %d never reported", i)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil on cancel", err)
	}
}

func TestRunKeepsGoingAfterErrors(t *testing.T) {
	boom := errors.New("database down")
	f := &fakeStore{fail: boom, failFrom: 1}
	errs := make(chan error, 100)
	sw := &storage.Sweeper{Store: f, Interval: time.Millisecond, OnSweep: func(_ int, err error) { errs <- err }}
	stop := runSweeper(t, sw)
	for i := range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, boom) {
				t.Errorf("report %d: err = %v, want boom", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("report %d never came", i)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// TestRunStopsMidSweep cancels Run while DeleteExpired is in progress: Run
// returns nil promptly and does not report the interrupted sweep.
func TestRunStopsMidSweep(t *testing.T) {
	f := &fakeStore{block: true}
	var reported atomic.Bool
	sw := &storage.Sweeper{Store: f, Interval: time.Hour, OnSweep: func(int, error) { reported.Store(true) }}
	stop := runSweeper(t, sw)
	time.Sleep(20 * time.Millisecond) // let the first sweep start and block
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if reported.Load() {
		t.Error("an interrupted sweep was reported")
	}
}

// TestSweeperSQLite sweeps a real store in small batches.
func TestSweeperSQLite(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i := range 5 {
		expires := now.Add(-time.Minute)
		if i == 4 {
			expires = now.Add(time.Hour) // survives, with its turns
		}
		c := &storage.Conversation{ID: fmt.Sprint("c", i), TenantID: "t", StartedAt: now, ExpiresAt: expires}
		if err := s.CreateConversation(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			tr := &storage.Turn{ID: fmt.Sprint("i", j), ConversationID: c.ID, TenantID: "t", ExpiresAt: expires}
			if err := s.AppendTurn(t.Context(), tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	sw := &storage.Sweeper{Store: s, Batch: 2, Now: func() time.Time { return now }}
	n, err := sw.SweepOnce(t.Context())
	if err != nil || n != 4*3+4 {
		t.Errorf("SweepOnce = %d, %v; want %d", n, err, 4*3+4)
	}
	if turns, err := s.ListTurns(t.Context(), "t", "c4"); err != nil || len(turns) != 3 {
		t.Errorf("surviving conversation: %d turns, %v; want 3", len(turns), err)
	}
	if _, err := s.GetConversation(t.Context(), "t", "c0"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("expired conversation still there: %v", err)
	}
}

// fakePurger records purges in a log it shares with a fakeStore's
// DeleteExpired calls (see logStore), so tests see the order.
type fakePurger struct {
	mu      sync.Mutex
	log     *[]string
	due     []string
	dueErr  error
	fail    map[string]error // PurgeTenant's error per tenant
	nows    []time.Time
	purged  []string
	onStart func() // called at the start of PurgeTenant
}

func (p *fakePurger) TenantsDueForPurge(_ context.Context, now time.Time) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nows = append(p.nows, now)
	*p.log = append(*p.log, "due")
	return p.due, p.dueErr
}

func (p *fakePurger) PurgeTenant(_ context.Context, id string, now time.Time) error {
	if p.onStart != nil {
		p.onStart()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nows = append(p.nows, now)
	*p.log = append(*p.log, "purge "+id)
	if err := p.fail[id]; err != nil {
		return err
	}
	p.purged = append(p.purged, id)
	return nil
}

// logStore is a fakeStore that logs its calls in the shared log.
type logStore struct {
	*fakeStore
	log *[]string
}

func (s logStore) DeleteExpired(ctx context.Context, now time.Time, limit int) (int, error) {
	n, err := s.fakeStore.DeleteExpired(ctx, now, limit)
	*s.log = append(*s.log, fmt.Sprint("delete ", n))
	return n, err
}

func TestSweepOncePurgesFirst(t *testing.T) {
	var log []string
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	p := &fakePurger{log: &log, due: []string{"t-1", "t-2"}}
	var forgotten []string
	sw := &storage.Sweeper{
		Store:   logStore{&fakeStore{remaining: 15}, &log},
		Batch:   10,
		Now:     func() time.Time { return base },
		Purger:  p,
		OnPurge: func(id string) { forgotten = append(forgotten, id); log = append(log, "forget "+id) },
	}
	n, err := sw.SweepOnce(t.Context())
	if n != 15 || err != nil {
		t.Errorf("SweepOnce = %d, %v; want 15, nil", n, err)
	}
	want := "[due purge t-1 forget t-1 purge t-2 forget t-2 delete 10 delete 5]"
	if got := fmt.Sprint(log); got != want {
		t.Errorf("calls = %s\nwant %s", got, want)
	}
	// One Now for the purges and the deletions: the rows a purge expires
	// at now are expired for the deletions that follow.
	for i, now := range p.nows {
		if !now.Equal(base) {
			t.Errorf("purge call %d: now = %v, want %v", i, now, base)
		}
	}
}

func TestSweepOncePurgeErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name       string
		p          *fakePurger
		wantPurged string
		wantForget string
		wantErr    []error
	}{
		{
			name:       "a failed purge does not stop the others nor the deletions",
			p:          &fakePurger{due: []string{"t-1", "t-2", "t-3"}, fail: map[string]error{"t-2": boom}},
			wantPurged: "[t-1 t-3]", wantForget: "[t-1 t-3]", wantErr: []error{boom},
		},
		{
			name:       "purged by another node meanwhile",
			p:          &fakePurger{due: []string{"t-1", "t-2"}, fail: map[string]error{"t-1": storage.ErrNotFound}},
			wantPurged: "[t-2]", wantForget: "[t-1 t-2]",
		},
		{
			name:       "the due list fails",
			p:          &fakePurger{due: []string{"t-1"}, dueErr: boom},
			wantPurged: "[]", wantForget: "[]", wantErr: []error{boom},
		},
		{name: "nothing due", p: &fakePurger{}, wantPurged: "[]", wantForget: "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			p := tc.p
			p.log = &log
			forgotten := []string{}
			f := &fakeStore{remaining: 3}
			sw := &storage.Sweeper{Store: f, Batch: 10, Purger: p, OnPurge: func(id string) { forgotten = append(forgotten, id) }}
			n, err := sw.SweepOnce(t.Context())
			if n != 3 {
				t.Errorf("SweepOnce deleted %d rows, want 3: purge errors must not stop the deletions", n)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("SweepOnce error = %v, want %v", err, want)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Errorf("SweepOnce error = %v, want nil", err)
			}
			if got := fmt.Sprint(append([]string{}, p.purged...)); got != tc.wantPurged {
				t.Errorf("purged %s, want %s", got, tc.wantPurged)
			}
			if got := fmt.Sprint(forgotten); got != tc.wantForget {
				t.Errorf("OnPurge calls %s, want %s", got, tc.wantForget)
			}
		})
	}
}

func TestSweepOncePurgeAndDeleteErrors(t *testing.T) {
	purgeErr, deleteErr := errors.New("purge failed"), errors.New("delete failed")
	var log []string
	p := &fakePurger{log: &log, due: []string{"t-1"}, fail: map[string]error{"t-1": purgeErr}}
	f := &fakeStore{remaining: 100, fail: deleteErr, failFrom: 1}
	_, err := (&storage.Sweeper{Store: f, Batch: 10, Purger: p}).SweepOnce(t.Context())
	if !errors.Is(err, purgeErr) || !errors.Is(err, deleteErr) {
		t.Errorf("SweepOnce error = %v, want both errors", err)
	}
}

// TestSweepOncePurgeContextDone cancels the context during the first
// purge: the next tenants are not purged and the sweep returns ctx's error.
func TestSweepOncePurgeContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var log []string
	p := &fakePurger{log: &log, due: []string{"t-1", "t-2"}, onStart: cancel}
	f := &fakeStore{remaining: 100}
	n, err := (&storage.Sweeper{Store: f, Batch: 10, Purger: p}).SweepOnce(ctx)
	if n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("SweepOnce = %d, %v; want 0, context.Canceled", n, err)
	}
	if got := fmt.Sprint(log); got != "[due purge t-1]" {
		t.Errorf("calls = %s, want [due purge t-1]", got)
	}
	if len(f.limits) != 0 {
		t.Errorf("DeleteExpired called %d times after the context ended", len(f.limits))
	}
}

// TestSweeperPurgesSQLite purges a deleted tenant of a real store: its
// conversations go in the same sweep, the other tenant's stay.
func TestSweeperPurgesSQLite(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for _, tn := range []string{"gone", "kept"} {
		if err := s.CreateTenant(ctx, &storage.Tenant{ID: tn, Name: tn, Plan: storage.PlanFree, CreatedAt: now}, ""); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateDataKey(ctx, &storage.DataKey{TenantID: tn, MasterKeyID: "m", Wrapped: []byte{1}, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			c := &storage.Conversation{ID: fmt.Sprint(tn, "-c", i), TenantID: tn, StartedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := s.CreateConversation(ctx, c); err != nil {
				t.Fatal(err)
			}
			for j := range 2 {
				tr := &storage.Turn{ID: fmt.Sprint("i", j), ConversationID: c.ID, TenantID: tn, StartedAt: now, ExpiresAt: now.Add(time.Hour)}
				if err := s.AppendTurn(ctx, tr); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := s.DisableTenant(ctx, "gone", now.Add(-storage.TenantPurgeDelay), now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	var forgotten []string
	sw := &storage.Sweeper{Store: s, Purger: s, Batch: 2, Now: func() time.Time { return now },
		OnPurge: func(id string) { forgotten = append(forgotten, id) }}
	n, err := sw.SweepOnce(ctx)
	if err != nil || n < 3*2+3 {
		t.Errorf("SweepOnce = %d, %v; want at least 9 (the purged tenant's turns and conversations)", n, err)
	}
	if fmt.Sprint(forgotten) != "[gone]" {
		t.Errorf("OnPurge calls = %v, want [gone]", forgotten)
	}
	if _, err := s.GetConversation(ctx, "gone", "gone-c0"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("purged tenant's conversation: %v", err)
	}
	if _, err := s.GetDataKey(ctx, "gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("purged tenant's data key: %v", err)
	}
	if turns, err := s.ListTurns(ctx, "kept", "kept-c2"); err != nil || len(turns) != 2 {
		t.Errorf("the other tenant's turns: %d, %v; want 2", len(turns), err)
	}
	// The next sweep finds nothing more to purge.
	forgotten = nil
	if _, err := sw.SweepOnce(ctx); err != nil || forgotten != nil {
		t.Errorf("second SweepOnce: %v, purged %v", err, forgotten)
	}
}
