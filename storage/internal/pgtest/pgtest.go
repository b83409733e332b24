// Package pgtest gives tests a PostgreSQL schema of their own in the
// database named by PARLEY_TEST_POSTGRES_URL, and skips them, loudly, when
// that variable is unset.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the test database, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvURL = "PARLEY_TEST_POSTGRES_URL"

// BaseURL returns the test database URL, or skips the test if it is unset.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skipf("!!! %s not set: PostgreSQL conformance suite SKIPPED (%s) !!!", EnvURL, t.Name())
	}
	return u
}

// WithSearchPath returns base with its search_path parameter set to schema.
func WithSearchPath(t testing.TB, base, schema string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// FreshSchema creates a randomly named schema, drops it (with everything in
// it) when the test ends, and returns the test database URL with
// search_path set to it, so tests and test packages running in parallel
// never see each other's tables. Register the cleanup of anything using
// the schema after calling FreshSchema: cleanups run last-registered first.
func FreshSchema(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	var b [8]byte
	rand.Read(b[:])
	schema := "parley_test_" + hex.EncodeToString(b[:]) // safe as an identifier

	if err := exec(base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := exec(base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, base, schema)
}

func exec(url, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
