package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"parley/storage/internal/pgtest"
)

// BenchmarkDeleteExpired measures the retention sweep on PostgreSQL: rows
// are bulk-loaded with COPY (not timed), then each of one or several
// "nodes" (Stores on the database) sweeps at once, as storage.Sweeper does:
// DeleteExpired in batches until one comes back short. Every expired row
// must be gone then. rows/s is what the sweep deleted per second of wall
// time.
//
//   - turns: expired turns of conversations that are still kept (the
//     common case: transcripts expire before metadata), every row counted;
//   - conversations: expired conversations, each taking its (unexpired)
//     turns with it by cascade; rows/s counts the turns too, which is the
//     work the database does.
//
// commit=sync runs each batch's DELETE as its own statement, committed as
// the server is set (synchronous_commit on by default); commit=async is
// what DeleteExpired does (see deleteBatch).
//
// Run with e.g.
//
//	PARLEY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench DeleteExpired -benchtime 1x ./storage/postgres/
//
// The sizes are fixed so that results compare: 500,000 turns over 50,000
// conversations.
func BenchmarkDeleteExpired(b *testing.B) {
	const (
		convs   = 50_000
		perConv = 10
	)
	for _, kind := range []string{"turns", "conversations"} {
		for _, batch := range []int{1000, 5000, 10000} {
			for _, nodes := range []int{1, 4} {
				for _, commit := range []string{"sync", "async"} {
					if kind == "conversations" && (batch == 5000 || commit == "sync") {
						continue
					}
					name := fmt.Sprintf("%s/batch=%d/nodes=%d/commit=%s", kind, batch, nodes, commit)
					b.Run(name, func(b *testing.B) {
						benchDeleteExpired(b, kind, convs, perConv, batch, nodes, commit == "sync")
					})
				}
			}
		}
	}
}

// sealedText is the sealed transcript of a short sentence.
var sealedText = bytes.Repeat([]byte{0xA5}, 120)

func benchDeleteExpired(b *testing.B, kind string, convs, perConv, batch, nodes int, syncCommit bool) {
	u := pgtest.FreshSchema(b)
	stores := make([]*Store, nodes)
	for i := range stores {
		stores[i] = open(b, u)
		stores[i].syncSweep = syncCommit
	}
	s := stores[0]
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := 0
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		loadExpiring(b, s, kind, convs, perConv, now)
		b.StartTimer()
		start := time.Now()
		counts := make([]int, nodes)
		errs := make([]error, nodes)
		lat := make([][]time.Duration, nodes)
		var wg sync.WaitGroup
		for i, st := range stores {
			wg.Go(func() {
				for {
					t := time.Now()
					n, err := st.DeleteExpired(ctx, now, batch)
					lat[i] = append(lat[i], time.Since(t))
					counts[i] += n
					if err != nil || n < batch { // as storage.Sweeper.SweepOnce
						errs[i] = err
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(start)
		all := slices.Concat(lat...)
		slices.Sort(all)
		b.Logf("%d DeleteExpired calls: p50 %v, p99 %v, max %v, sweep %v", len(all), all[len(all)/2],
			all[len(all)*99/100], all[len(all)-1], time.Since(start))
		b.StopTimer()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		var left int
		if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM turns) +
			(SELECT count(*) FROM conversations WHERE expires_at <= $1)`, ts(now)).Scan(&left); err != nil {
			b.Fatal(err)
		}
		if left != 0 {
			b.Fatalf("%d expired rows left after the sweep", left)
		}
		rows += convs * perConv
		if kind == "conversations" {
			rows += convs
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}

// loadExpiring empties the tables and COPYs convs conversations of
// perConv turns each, each turn with a sealed text of 120 bytes: for kind
// "turns" the turns are expired (in the order they were written, as in
// production) and the conversations are not; for "conversations" the
// reverse. It then VACUUMs and ANALYZEs, as autovacuum would have by
// then, and checkpoints, so that every run starts alike.
func loadExpiring(b *testing.B, s *Store, kind string, convs, perConv int, now time.Time) {
	b.Helper()
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `TRUNCATE turns, turn_audio, conversations`); err != nil {
		b.Fatal(err)
	}
	past, future := now.Add(-24*time.Hour), now.Add(24*time.Hour)
	convExp, turnExp := future, past
	if kind == "conversations" {
		convExp, turnExp = past, future
	}
	started := now.Add(-48 * time.Hour)
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"conversations"},
		[]string{"id", "tenant_id", "agent_id", "channel", "language", "started_at", "duration_ms", "turn_count", "expires_at"},
		pgx.CopyFromSlice(convs, func(i int) ([]any, error) {
			at := started.Add(time.Duration(i) * time.Millisecond)
			return []any{fmt.Sprintf("conv_%08d", i), "tenant", "agent", "websocket", "en", at, int64(0), perConv,
				convExp.Add(time.Duration(i) * time.Millisecond)}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	// Turns are written as conversations run: interleaved, so expiry
	// order (by time) is not the order of the primary key.
	n := convs * perConv
	_, err = s.pool.CopyFrom(ctx, pgx.Identifier{"turns"},
		[]string{"conversation_id", "id", "tenant_id", "seq", "role", "text_sealed", "text_stored", "status",
			"started_at", "ended_at", "expires_at"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			c, seq := i%convs, i/convs+1
			at := started.Add(time.Duration(i) * time.Millisecond)
			return []any{fmt.Sprintf("conv_%08d", c), fmt.Sprintf("item_%d", seq), "tenant", seq, "user", sealedText, true,
				"completed", at, at, turnExp.Add(time.Duration(i) * time.Millisecond)}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{`VACUUM ANALYZE conversations`, `VACUUM ANALYZE turns`, `CHECKPOINT`} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}
