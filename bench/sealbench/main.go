// Command sealbench measures what sealing personal data at rest
// (storage/seal: AES-256-GCM under a per-tenant data key) adds to storing
// it, in one run:
//
//   - Seal and Open of a typical transcript turn (200 B), a long turn
//     (2 KB) and 10 s of logged Ogg Opus audio (~30 KB) with the tenant's
//     data key cached, as every call after a tenant's first is: median
//     ns/op over several runs, allocations per op, against the target of
//     under 20 µs per turn;
//   - a cache miss (the wrapped data key read from an in-memory store,
//     unwrapped, AES-GCM and the pseudonym key set up), which a node pays
//     once per tenant per cache TTL; a real database read comes on top;
//   - an end-user pseudonym.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/storage"
	"parley/storage/seal"
)

// target is the most sealing or opening one turn may cost.
const target = 20 * time.Microsecond

func main() {
	runs := flag.Int("runs", 7, "measured runs per case; the median is reported")
	ops := flag.Int("ops", 20000, "operations per run for a turn (a tenth of it for audio and cache misses)")
	flag.Parse()
	if err := run(*runs, *ops, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sealbench:", err)
		os.Exit(1)
	}
}

func run(runs, ops int, out io.Writer) error {
	if runs < 1 || ops < 10 {
		return fmt.Errorf("want -runs >= 1 and -ops >= 10")
	}
	ctx := context.Background()
	master, err := seal.NewMasterKey("mk-bench")
	if err != nil {
		return err
	}
	k, err := seal.NewKeyring(newMemStore(), []seal.MasterKey{master}, seal.Options{})
	if err != nil {
		return err
	}
	const tenant = "tenant_01JD9ZQ2W0000000000000000"
	conv, item := "conv_01JD9ZQ2W0000000000000001", "item_01JD9ZQ2W0000000000000002"
	sentence := "I'd like to move my appointment on Tuesday to Thursday afternoon, if that works for you. "
	audio := make([]byte, 30*1024) // 10 s of Opus at ~24 kbit/s; random bytes are as costly to seal
	rand.Read(audio)
	cases := []struct {
		name    string
		payload []byte
		aad     []byte
		n       int
		turn    bool
	}{
		{"typical turn", []byte(strings.Repeat(sentence, 3)[:200]), seal.TurnAAD(tenant, conv, item), ops, true},
		{"long turn", []byte(strings.Repeat(sentence, 24)[:2048]), seal.TurnAAD(tenant, conv, item), ops, true},
		{"10 s of logged Ogg Opus audio", audio, seal.AudioAAD(tenant, conv, item), max(ops/10, 1), false},
	}

	fmt.Fprintf(out, "Parley sealing at rest benchmark: %s %s/%s, %d CPUs\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(out, "AES-256-GCM under the tenant's cached data key, one goroutine, median of %d runs:\n", runs)
	fmt.Fprintf(out, "  %-30s %8s %10s %7s %10s %7s   %s\n", "payload", "size", "Seal", "allocs", "Open", "allocs", "target")
	allMet := true
	for _, c := range cases {
		sealed, err := k.Seal(ctx, tenant, c.payload, c.aad)
		if err != nil {
			return err
		}
		if opened, err := k.Open(ctx, tenant, sealed, c.aad); err != nil || !bytes.Equal(opened, c.payload) {
			return fmt.Errorf("%s does not round-trip: %v", c.name, err)
		}
		s, err := measure(runs, c.n, func() error { _, err := k.Seal(ctx, tenant, c.payload, c.aad); return err })
		if err != nil {
			return err
		}
		o, err := measure(runs, c.n, func() error { _, err := k.Open(ctx, tenant, sealed, c.aad); return err })
		if err != nil {
			return err
		}
		verdict := fmt.Sprintf("%.0f MB/s sealed, %.0f MB/s opened (no target)", mbps(len(c.payload), s.ns), mbps(len(c.payload), o.ns))
		if c.turn {
			met := s.ns < float64(target.Nanoseconds()) && o.ns < float64(target.Nanoseconds())
			allMet = allMet && met
			verdict = fmt.Sprintf("< %.0f µs per turn: %s", float64(target.Microseconds()), metOr(met))
		}
		fmt.Fprintf(out, "  %-30s %8s %10s %7.0f %10s %7.0f   %s\n", c.name, fmtSize(len(c.payload)), fmtDur(s.ns), s.allocs, fmtDur(o.ns), o.allocs, verdict)
	}
	fmt.Fprintf(out, "  (Seal output = input + 37 bytes: version, 8-byte data key id, 12-byte random nonce, 16-byte tag)\n")
	fmt.Fprintf(out, "  sealing and opening every turn: %s\n\n", metOr(allMet))

	// A cache miss: what a node pays once per tenant per cache TTL.
	turn := cases[0]
	sealed, err := k.Seal(ctx, tenant, turn.payload, turn.aad)
	if err != nil {
		return err
	}
	miss, err := measure(runs, max(ops/10, 1), func() error {
		k.Forget(tenant)
		_, err := k.Open(ctx, tenant, sealed, turn.aad)
		return err
	})
	if err != nil {
		return err
	}
	pseudo, err := measure(runs, ops, func() error { _, err := k.Pseudonym(ctx, tenant, "+15551234567"); return err })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Data key cache miss + Open of a typical turn (wrapped key read from memory, unwrapped,\n")
	fmt.Fprintf(out, "  AES-GCM and pseudonym key set up; a database read comes on top): %s, %.0f allocs (once per tenant per cache TTL)\n", fmtDur(miss.ns), miss.allocs)
	fmt.Fprintf(out, "End-user pseudonym (HMAC-SHA256 under the tenant's pseudonym key): %s, %.0f allocs\n", fmtDur(pseudo.ns), pseudo.allocs)
	fmt.Fprintf(out, "\nReproduce: go run ./bench/sealbench -runs %d -ops %d\n", runs, ops)
	return nil
}

type stat struct{ ns, allocs float64 }

// measure runs f n times per run, runs times, and returns the median
// ns/op and allocations/op.
func measure(runs, n int, f func() error) (stat, error) {
	for range min(n, 100) { // warm up
		if err := f(); err != nil {
			return stat{}, err
		}
	}
	ns := make([]float64, runs)
	allocs := make([]float64, runs)
	var m0, m1 runtime.MemStats
	for r := range runs {
		runtime.GC()
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		for range n {
			if err := f(); err != nil {
				return stat{}, err
			}
		}
		el := time.Since(t0)
		runtime.ReadMemStats(&m1)
		ns[r] = float64(el.Nanoseconds()) / float64(n)
		allocs[r] = float64(m1.Mallocs-m0.Mallocs) / float64(n)
	}
	return stat{median(ns), median(allocs)}, nil
}

func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func mbps(size int, ns float64) float64 { return float64(size) / ns * 1e9 / 1e6 }

func fmtDur(ns float64) string {
	if ns < 10_000 {
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.1f µs", ns/1e3)
}

func fmtSize(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%d KB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func metOr(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

// memStore is an in-memory seal.KeyStore with the storage.Privacy
// semantics.
type memStore struct {
	mu   sync.Mutex
	keys map[string]storage.DataKey
}

func newMemStore() *memStore { return &memStore{keys: map[string]storage.DataKey{}} }

func (s *memStore) CreateDataKey(_ context.Context, k *storage.DataKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.TenantID]; ok {
		return storage.ErrConflict
	}
	c := *k
	c.Wrapped = bytes.Clone(k.Wrapped)
	s.keys[k.TenantID] = c
	return nil
}

func (s *memStore) GetDataKey(_ context.Context, tenantID string) (*storage.DataKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[tenantID]
	if !ok {
		return nil, storage.ErrNotFound
	}
	k.Wrapped = bytes.Clone(k.Wrapped)
	return &k, nil
}

func (s *memStore) ListDataKeys(_ context.Context, after string, limit int) ([]storage.DataKey, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.keys {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	next := ""
	if len(ids) > limit {
		ids, next = ids[:limit], ids[limit-1]
	}
	page := make([]storage.DataKey, 0, len(ids))
	for _, id := range ids {
		page = append(page, s.keys[id])
	}
	return page, next, nil
}

func (s *memStore) RewrapDataKey(_ context.Context, k *storage.DataKey, oldMasterKeyID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.keys[k.TenantID]
	switch {
	case !ok:
		return storage.ErrNotFound
	case cur.MasterKeyID != oldMasterKeyID:
		return storage.ErrConflict
	}
	cur.MasterKeyID, cur.Wrapped = k.MasterKeyID, bytes.Clone(k.Wrapped)
	s.keys[k.TenantID] = cur
	return nil
}

func (s *memStore) DeleteDataKey(_ context.Context, tenantID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[tenantID]; !ok {
		return storage.ErrNotFound
	}
	delete(s.keys, tenantID)
	return nil
}

var _ seal.KeyStore = (*memStore)(nil)
