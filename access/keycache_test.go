package access

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"parley/storage"
	"parley/storage/sqlite"
)

func keyStore(t *testing.T) (storage.Backend, string, *storage.Key) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().UTC()
	if err := st.CreateTenant(t.Context(), &storage.Tenant{ID: "t1", Name: "T", Plan: storage.PlanFree, CreatedAt: now}, ""); err != nil {
		t.Fatal(err)
	}
	secret := "sk_cachetest_0123456789abcdefghijklmnopqrstu"
	h := sha256.Sum256([]byte(secret))
	k := &storage.Key{ID: "key1", TenantID: "t1", Kind: storage.KeySecret, Prefix: secret[:KeyPrefixLen], Hash: h[:],
		Scopes: []string{storage.ScopeRealtime}, CreatedAt: now}
	if err := st.CreateKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	return st, secret, k
}

func TestKeyCacheLooksUpOncePerTTL(t *testing.T) {
	st, secret, _ := keyStore(t)
	c := NewKeyCache(st)
	for i := 0; i < 100; i++ {
		k, err := c.Lookup(t.Context(), secret)
		if err != nil || k.ID != "key1" {
			t.Fatalf("lookup %d: %v %v", i, k, err)
		}
	}
	if n := c.Lookups(); n != 1 {
		t.Fatalf("%d database lookups for 100 uses of one key", n)
	}
	// A wrong secret with the right prefix, a malformed key, an unknown
	// prefix: refused; the unknown prefix is looked up once.
	for _, bad := range []string{secret[:len(secret)-1] + "x", "sk_short", "sk_unknownprefix_0123456789abcdef"} {
		for i := 0; i < 3; i++ {
			if _, err := c.Lookup(t.Context(), bad); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("%q: %v", bad, err)
			}
		}
	}
	if n := c.Lookups(); n != 2 {
		t.Fatalf("%d database lookups, want 2 (the key, the unknown prefix once)", n)
	}
}

func TestKeyCacheRevocationWithinSeconds(t *testing.T) {
	st, secret, k := keyStore(t)
	c := NewKeyCache(st)
	c.Poll = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := c.Lookup(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	// Revoked elsewhere (another node): this node stops accepting it
	// within a few polls, long before the 60 s TTL.
	if err := st.RevokeKey(t.Context(), "t1", k.ID, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := c.Lookup(t.Context(), secret); errors.Is(err, ErrUnknownKey) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a revoked key is still accepted after 2 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func BenchmarkKeyCacheLookup(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	_ = st.CreateTenant(context.Background(), &storage.Tenant{ID: "t1", Name: "T", Plan: storage.PlanFree, CreatedAt: now}, "")
	secret := "sk_cachetest_0123456789abcdefghijklmnopqrstu"
	h := sha256.Sum256([]byte(secret))
	_ = st.CreateKey(context.Background(), &storage.Key{ID: "key1", TenantID: "t1", Kind: storage.KeySecret, Prefix: secret[:KeyPrefixLen], Hash: h[:],
		Scopes: []string{storage.ScopeRealtime}, CreatedAt: now})
	c := NewKeyCache(st)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.Lookup(context.Background(), secret); err != nil {
			b.Fatal(err)
		}
	}
}
