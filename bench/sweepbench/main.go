// Command sweepbench measures the retention sweep: how fast
// storage.Sweeper.SweepOnce deletes expired turns, on each backend.
//
// It fills a fresh store (SQLite: a temporary file; PostgreSQL: a
// throwaway schema of PARLEY_TEST_POSTGRES_URL, dropped at the end) with
// -turns turns over conversations of 10 turns, every other conversation
// expired with its turns, in production's order: about 100 conversations
// at a time, turns written in the order they started, random conversation
// ids, every row expiring at its start plus its retention (see loaded).
// So the expired half is spread over the whole table.
//
// Loading is setup and is not measured: by default it inserts the rows
// straight into the tables (SQLite: prepared INSERTs, 5,000 rows per
// transaction; PostgreSQL: COPY from several connections, then VACUUM
// ANALYZE, as autovacuum would have done on a live table); -load api goes
// through Store.WriteBatch instead, an order of magnitude slower. Then it
// times one SweepOnce with -batch rows per DeleteExpired (by default
// parleyd's storage.sweep_batch) and checks the result through the Store
// API: no expired row is left (DeleteExpired finds nothing more), every
// expired conversation is gone, and every unexpired conversation still
// has all its turns, each as it was written.
//
// The target is 100,000 expired turns per second or more on each backend.
// On a busy machine the figures vary a lot from run to run: the report
// gives the load average, and the CPU time the sweep took in this process
// (all of SQLite's work, none of PostgreSQL's).
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"parley/config"
	"parley/internal/timeid"
	"parley/storage"
	"parley/storage/postgres"
	"parley/storage/sqlite"
)

// envURL names the PostgreSQL test database (as in storage/internal/pgtest).
const envURL = "PARLEY_TEST_POSTGRES_URL"

const defaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// target is the rate every backend must reach, in expired turns per second.
const target = 100_000

// turnsPerConv is the turns of each conversation (the last may have fewer).
const turnsPerConv = 10

type options struct {
	turns    int
	batch    int
	backends []string
	pgURL    string
	api      bool   // load through Store.WriteBatch instead of bulk inserts
	profile  string // CPU profile of the sweeps to this file
	// profileTo is the open profile file, until the first sweep used it.
	profileTo io.Writer
}

func main() {
	turns := flag.Int("turns", 1_000_000, "turns to load (half of them expired)")
	batch := flag.Int("batch", config.Default().Storage.SweepBatch, "rows per DeleteExpired call (Sweeper.Batch); the default is parleyd's (storage.sweep_batch)")
	backend := flag.String("backend", "both", "sqlite, postgres or both")
	loadWith := flag.String("load", "bulk", "how to load the rows (setup, not measured): bulk (SQLite: prepared INSERTs; PostgreSQL: COPY) or api (Store.WriteBatch)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the first backend's sweep (not the loading) to this file")
	flag.BoolVar(&randomIDs, "random-ids", false, "random conversation ids (parleyd's before internal/timeid) instead of time-ordered ones")
	flag.Parse()
	cfg := options{turns: *turns, batch: *batch, pgURL: os.Getenv(envURL), api: *loadWith == "api", profile: *profile}
	if *loadWith != "api" && *loadWith != "bulk" {
		fmt.Fprintf(os.Stderr, "sweepbench: -load %q: want bulk or api\n", *loadWith)
		os.Exit(2)
	}
	if cfg.pgURL == "" {
		cfg.pgURL = defaultURL
	}
	switch *backend {
	case "sqlite", "postgres":
		cfg.backends = []string{*backend}
	case "both":
		cfg.backends = []string{"sqlite", "postgres"}
	default:
		fmt.Fprintf(os.Stderr, "sweepbench: -backend %q: want sqlite, postgres or both\n", *backend)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sweepbench:", err)
		os.Exit(1)
	}
}

// result is one backend's sweep.
type result struct {
	backend      string
	turns        int // loaded
	expiredTurns int
	expiredConvs int
	loadTime     time.Duration
	deleted      int
	sweepTime    time.Duration
	sweepCPU     time.Duration // of this process (SQLite runs in it; PostgreSQL does not)
	keptTurns    int           // found after the sweep
	keptConvs    int
}

func (r result) turnsPerSec() float64 { return float64(r.expiredTurns) / r.sweepTime.Seconds() }
func (r result) rowsPerSec() float64  { return float64(r.deleted) / r.sweepTime.Seconds() }

func run(ctx context.Context, cfg options, out io.Writer) error {
	if cfg.turns < 1 || cfg.batch < 1 {
		return fmt.Errorf("-turns and -batch must be positive")
	}
	fmt.Fprintf(out, "Parley retention sweep benchmark: %s %s/%s, %d CPUs\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(out, "%d turns in conversations of %d, every other conversation expired with its turns; one Sweeper.SweepOnce, %d rows per DeleteExpired\n\n",
		cfg.turns, turnsPerConv, cfg.batch)
	var results []result
	var failed []string
	if cfg.profile != "" {
		f, err := os.Create(cfg.profile)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.profileTo = f
	}
	for _, b := range cfg.backends {
		r, err := bench(ctx, &cfg, b, out)
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		results = append(results, r)
		if r.turnsPerSec() < target {
			failed = append(failed, b)
		}
	}

	fmt.Fprintf(out, "\n  %-9s %10s %10s %10s %9s %12s %16s %9s\n", "backend", "turns", "expired", "deleted", "seconds", "rows/s", "expired turns/s", "target")
	for _, r := range results {
		verdict := "MET"
		if r.turnsPerSec() < target {
			verdict = "NOT MET"
		}
		fmt.Fprintf(out, "  %-9s %10d %10d %10d %9.2f %12.0f %16.0f %9s\n",
			r.backend, r.turns, r.expiredTurns, r.deleted, r.sweepTime.Seconds(), r.rowsPerSec(), r.turnsPerSec(), verdict)
	}
	fmt.Fprintf(out, "  (deleted = the expired turns, then their conversations; target: %d expired turns/s or more)\n", target)
	backend := strings.Join(cfg.backends, "")
	if len(cfg.backends) > 1 {
		backend = "both"
	}
	load := ""
	if cfg.api {
		load = " -load api"
	}
	fmt.Fprintf(out, "\nReproduce: go run ./bench/sweepbench -turns %d -batch %d -backend %s%s\n", cfg.turns, cfg.batch, backend, load)
	if len(failed) > 0 {
		fmt.Fprintf(out, "target NOT MET on %s\n", strings.Join(failed, ", "))
	}
	return nil
}

// bench loads, sweeps and verifies one backend.
func bench(ctx context.Context, cfg *options, backend string, out io.Writer) (result, error) {
	r := result{backend: backend, turns: cfg.turns}
	var (
		s        storage.Store
		workers  = 1
		bulk     func() loader
		analyze  func(ctx context.Context) error
		closeAll func()
	)
	switch backend {
	case "sqlite":
		dir, err := os.MkdirTemp("", "sweepbench-")
		if err != nil {
			return r, err
		}
		path := filepath.Join(dir, "sweep.db")
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			os.RemoveAll(dir)
			return r, err
		}
		s = st
		bulk = func() loader { return bulkSQLite(path) }
		closeAll = func() { st.Close(); os.RemoveAll(dir) }
	case "postgres":
		url, drop, err := throwawaySchema(ctx, cfg.pgURL)
		if err != nil {
			return r, fmt.Errorf("%w (is PostgreSQL at %s? set %s)", err, redact(cfg.pgURL), envURL)
		}
		st, err := postgres.Open(ctx, url)
		if err != nil {
			drop()
			return r, err
		}
		s = st
		workers = max(4, runtime.NumCPU()*2)
		bulk = func() loader { return bulkPostgres(url) }
		analyze = func(ctx context.Context) error {
			// VACUUM, not only ANALYZE: rows that expire have been in the
			// table for days, and autovacuum has set their hint bits and
			// the visibility map; freshly COPYed rows would make the sweep
			// pay for that first visit.
			return exec(ctx, url, "VACUUM (ANALYZE) conversations, turns")
		}
		closeAll = func() { st.Close(); drop() }
	default:
		return r, fmt.Errorf("unknown backend %q", backend)
	}
	defer closeAll()

	now := time.Now().UTC().Truncate(time.Millisecond)
	how := "bulk"
	newLoader := bulk
	if cfg.api {
		how, newLoader = "WriteBatch", func() loader { return apiLoader(s) }
	}
	fmt.Fprintf(out, "%s: loading %d turns (%s, %d writers)... ", backend, cfg.turns, how, workers)
	start := time.Now()
	l, err := load(ctx, cfg.turns, workers, now, newLoader)
	if err != nil {
		return r, err
	}
	if analyze != nil {
		if err := analyze(ctx); err != nil {
			return r, fmt.Errorf("vacuum: %w", err)
		}
	}
	r.loadTime = time.Since(start)
	for _, c := range l.convs {
		if c.expired {
			r.expiredConvs++
			r.expiredTurns += c.turns
		}
	}
	fmt.Fprintf(out, "%.1f s (%.0f turns/s)\n", r.loadTime.Seconds(), float64(cfg.turns)/r.loadTime.Seconds())

	sw := &storage.Sweeper{Store: s, Batch: cfg.batch, Now: func() time.Time { return now }}
	if cfg.profileTo != nil {
		if err := pprof.StartCPUProfile(cfg.profileTo); err != nil {
			return r, err
		}
	}
	cpu0 := cpuTime()
	start = time.Now()
	r.deleted, err = sw.SweepOnce(ctx)
	r.sweepTime = time.Since(start)
	r.sweepCPU = cpuTime() - cpu0
	if cfg.profileTo != nil {
		pprof.StopCPUProfile()
		cfg.profileTo = nil // one profile per file: the first backend's
	}
	if err != nil {
		return r, fmt.Errorf("SweepOnce: %w", err)
	}
	fmt.Fprintf(out, "%s: SweepOnce deleted %d rows in %.2f s: %.0f rows/s, %.0f expired turns/s (%.2f s of CPU in this process, load average %s)\n",
		backend, r.deleted, r.sweepTime.Seconds(), r.rowsPerSec(), r.turnsPerSec(), r.sweepCPU.Seconds(), loadAvg())

	if err := verify(ctx, s, l, cfg.batch, &r); err != nil {
		return r, err
	}
	fmt.Fprintf(out, "%s: verified: no expired row left, %d expired conversations gone, %d of %d unexpired turns in %d conversations kept\n",
		backend, r.expiredConvs, r.keptTurns, cfg.turns-r.expiredTurns, r.keptConvs)
	return r, nil
}

// conv is a loaded conversation.
type conv struct {
	id      string
	i       int
	turns   int
	expired bool
}

// loader writes the batches it receives. The conversations all come
// before the turns (load waits in between), each Create with its final
// TurnCount; the turns carry their Seq.
type loader func(ctx context.Context, batches <-chan []storage.Write) error

// apiLoader writes through Store.WriteBatch, where appending a turn counts
// it: its conversations are created with TurnCount 0.
func apiLoader(s storage.Store) loader {
	return func(ctx context.Context, batches <-chan []storage.Write) error {
		for ws := range batches {
			for i, w := range ws {
				if w.Create != nil {
					c := *w.Create
					c.TurnCount = 0
					ws[i].Create = &c
				}
			}
			errs, err := s.WriteBatch(ctx, ws)
			if err == nil {
				err = errors.Join(errs...)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// loaded is what load wrote, to check the store against.
//
// It follows production's order. Conversations start every spacing (a
// voice session lasts about 50 s, so about 100 run at once), and a turn is
// appended when it starts: the turns table is filled in time order, the
// turns of concurrent conversations interleaved. Conversation ids are
// made as parleyd makes them (internal/timeid: a time prefix, then
// randomness), so they sort by start; -random-ids gives random ids
// instead, which is how parleyd made them before, to compare.
// Every row expires at its start plus its retention (storage.Retention),
// at millisecond precision: the expired half (every other conversation)
// had a retention of an hour, the other half of 26 hours, as two tenants
// with different policies would. So the expired rows are spread over the
// whole table, and deleted in about the order they were written.
type loaded struct {
	convs   []conv
	text    []byte
	now     time.Time
	base    time.Time     // when conversation 0 started
	spacing time.Duration // between conversation starts
}

const (
	turnSpacing   = 5001 * time.Millisecond // between a conversation's turns
	shortRetained = time.Hour
	longRetained  = 26 * time.Hour
)

// randomIDs makes load use random conversation ids (-random-ids).
var randomIDs bool

func newLoaded(n int, now time.Time) *loaded {
	l := &loaded{now: now}
	ids := mrand.New(mrand.NewPCG(1, 2)) // the same ids every run
	for i := 0; n > 0; i++ {
		k := min(turnsPerConv, n)
		n -= k
		l.convs = append(l.convs, conv{i: i, turns: k, expired: i%2 == 0})
	}
	// At most 20 hours of conversations, so that every expired row
	// (started by base+20h+50s, kept an hour) expired by now, and no other
	// (started at base or later, kept 26 hours) did.
	l.spacing = min(500*time.Millisecond, 20*time.Hour/time.Duration(max(1, len(l.convs))))
	l.base = now.Add(-time.Duration(len(l.convs))*l.spacing - time.Hour - 10*time.Minute)
	for i := range l.convs {
		c := &l.convs[i]
		if randomIDs {
			c.id = fmt.Sprintf("conv_%016x", ids.Uint64())
		} else {
			c.id = "conv_" + timeid.New(l.base.Add(time.Duration(c.i)*l.spacing))
		}
	}
	// A sealed transcript: nonce, ~130 bytes of ciphertext, tag.
	l.text = make([]byte, 12+130+16)
	rand.Read(l.text)
	return l
}

// conversation is conversation c as load writes it.
func (l *loaded) conversation(c conv) *storage.Conversation {
	started := l.base.Add(time.Duration(c.i) * l.spacing)
	keep := longRetained
	if c.expired {
		keep = shortRetained
	}
	return &storage.Conversation{
		ID: c.id, TenantID: storage.DefaultTenant, AgentID: "assistant", Channel: "webrtc", Language: "fr-CA",
		StartedAt: started, TurnCount: c.turns, ExpiresAt: started.Add(keep),
	}
}

// turn is turn seq j of conversation c as load writes it.
func (l *loaded) turn(c *storage.Conversation, j int) *storage.Turn {
	role := storage.RoleUser
	if j%2 == 0 {
		role = storage.RoleAssistant
	}
	at := c.StartedAt.Add(time.Duration(j) * turnSpacing)
	return &storage.Turn{
		ID: fmt.Sprint("item_", j), ConversationID: c.ID, TenantID: c.TenantID, Seq: j, Role: role,
		TextSealed: l.text, TextStored: true, Sentiment: 0.25, Status: storage.TurnCompleted,
		StartedAt: at, EndedAt: at.Add(2 * time.Second),
		Latency:   storage.Latency{FirstTokenMS: 180, TotalMS: 900, EngineMS: 600, EndOfTurnMS: 300},
		ExpiresAt: at.Add(c.ExpiresAt.Sub(c.StartedAt)),
	}
}

// load writes n turns (see loaded) with workers loaders: the
// conversations, then the turns in the order they started.
func load(ctx context.Context, n, workers int, now time.Time, newLoader func() loader) (*loaded, error) {
	l := newLoaded(n, now)
	convs := make([]*storage.Conversation, len(l.convs))
	type ref struct {
		conv int32
		seq  int32
	}
	var turns []ref
	for i, c := range l.convs {
		convs[i] = l.conversation(c)
		for j := 1; j <= c.turns; j++ {
			turns = append(turns, ref{int32(i), int32(j)})
		}
	}
	at := func(r ref) time.Duration {
		return time.Duration(r.conv)*l.spacing + time.Duration(r.seq)*turnSpacing
	}
	slices.SortStableFunc(turns, func(a, b ref) int { return cmp.Compare(at(a), at(b)) })

	const perBatch = 5000 // rows per transaction
	phase := func(next func(yield func(storage.Write) bool)) error {
		batches := make(chan []storage.Write)
		errc := make(chan error, workers)
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for range workers {
			ld := newLoader()
			wg.Go(func() {
				if err := ld(ctx, batches); err != nil {
					errc <- err
					cancel()
				}
			})
		}
		var ws []storage.Write
		send := func() bool {
			select {
			case batches <- ws:
				ws = nil
				return true
			case <-ctx.Done():
				return false
			}
		}
		for w := range next {
			if ws = append(ws, w); len(ws) == perBatch && !send() {
				break
			}
		}
		if len(ws) > 0 && ctx.Err() == nil {
			send()
		}
		close(batches)
		wg.Wait()
		close(errc)
		if err := <-errc; err != nil {
			return fmt.Errorf("load: %w", err)
		}
		return ctx.Err()
	}
	err := phase(func(yield func(storage.Write) bool) {
		for _, c := range convs {
			if !yield(storage.Write{Create: c}) {
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	err = phase(func(yield func(storage.Write) bool) {
		for _, r := range turns {
			if !yield(storage.Write{Turn: l.turn(convs[r.conv], int(r.seq))}) {
				return
			}
		}
	})
	return l, err
}

// verify checks the store after the sweep, through the Store API only.
func verify(ctx context.Context, s storage.Store, l *loaded, batch int, r *result) error {
	convs, now := l.convs, l.now
	wantDeleted := r.expiredTurns + r.expiredConvs
	if r.deleted != wantDeleted {
		return fmt.Errorf("SweepOnce deleted %d rows, want %d (%d expired turns, %d expired conversations)",
			r.deleted, wantDeleted, r.expiredTurns, r.expiredConvs)
	}
	if n, err := s.DeleteExpired(ctx, now, batch); err != nil || n != 0 {
		return fmt.Errorf("DeleteExpired after the sweep = %d, %v: expired rows were left", n, err)
	}
	var (
		next      atomic.Int64
		keptTurns atomic.Int64
		keptConvs atomic.Int64
		mu        sync.Mutex
		problems  []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	var wg sync.WaitGroup
	for range runtime.NumCPU() * 2 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(convs) || ctx.Err() != nil {
					return
				}
				c := convs[i]
				turns, err := s.ListTurns(ctx, storage.DefaultTenant, c.id)
				switch {
				case c.expired && !errors.Is(err, storage.ErrNotFound):
					fail("expired %s: ListTurns = %d turns, %v; want ErrNotFound", c.id, len(turns), err)
				case c.expired:
					if _, err := s.GetConversation(ctx, storage.DefaultTenant, c.id); !errors.Is(err, storage.ErrNotFound) {
						fail("expired %s: GetConversation error %v, want ErrNotFound", c.id, err)
					}
				case err != nil:
					fail("unexpired %s: ListTurns: %v", c.id, err)
				case len(turns) != c.turns:
					fail("unexpired %s: %d turns, want %d", c.id, len(turns), c.turns)
				default:
					if problem := compare(ctx, s, l, c, turns); problem != "" {
						fail("unexpired %s: %s", c.id, problem)
						continue
					}
					keptConvs.Add(1)
					keptTurns.Add(int64(len(turns)))
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	r.keptTurns, r.keptConvs = int(keptTurns.Load()), int(keptConvs.Load())
	if len(problems) > 0 {
		return fmt.Errorf("verification failed:\n  %s", strings.Join(problems, "\n  "))
	}
	if want := r.turns - r.expiredTurns; r.keptTurns != want {
		return fmt.Errorf("%d unexpired turns found after the sweep, want %d", r.keptTurns, want)
	}
	return nil
}

// compare reports how conversation c and its turns differ from what load
// wrote, or "".
func compare(ctx context.Context, s storage.Store, l *loaded, c conv, turns []storage.Turn) string {
	want := l.conversation(c)
	got, err := s.GetConversation(ctx, storage.DefaultTenant, c.id)
	if err != nil {
		return err.Error()
	}
	if got.AgentID != want.AgentID || got.Channel != want.Channel || got.Language != want.Language ||
		got.TurnCount != want.TurnCount || !got.StartedAt.Equal(want.StartedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		return fmt.Sprintf("conversation %+v, want %+v", got, want)
	}
	for i := range turns {
		g, w := turns[i], l.turn(want, i+1)
		if g.ID != w.ID || g.Seq != w.Seq || g.Role != w.Role || !bytes.Equal(g.TextSealed, w.TextSealed) || !g.TextStored ||
			g.Sentiment != w.Sentiment || g.Status != w.Status || g.Latency != w.Latency ||
			!g.StartedAt.Equal(w.StartedAt) || !g.EndedAt.Equal(w.EndedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
			return fmt.Sprintf("turn %+v, want %+v", g, *w)
		}
	}
	return ""
}

// throwawaySchema creates a randomly named schema in the database of base
// and returns base with search_path set to it, and a function that drops it.
func throwawaySchema(ctx context.Context, base string) (string, func(), error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("%s is not a URL", envURL)
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "parley_sweepbench_" + hex.EncodeToString(b[:])
	if err := exec(ctx, base, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() {
		// Not ctx: the schema must go even after an interrupt.
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := exec(dctx, base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "sweepbench: drop schema %s: %v\n", schema, err)
		}
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func exec(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the 1-minute load average where /proc tells it, so that a
// run on a busy machine says so.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// redact hides a URL's password.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
