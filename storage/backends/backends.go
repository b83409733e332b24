// Package backends opens the storage.Backend that a database URL names. It
// lives apart from package storage so that code needing only the
// interfaces does not link both database drivers.
package backends

import (
	"context"
	"fmt"
	"strings"

	"parley/storage"
	"parley/storage/postgres"
	"parley/storage/sqlite"
)

// Open opens the store url names, a storage.Backend (a storage.Store
// and storage.Accounts on one database):
//
//	postgres://... or postgresql://...   PostgreSQL (the URL goes to pgx as is)
//	sqlite:PATH or file:PATH             SQLite file at PATH ("sqlite:///abs" and
//	                                     "sqlite://rel" work too)
//	PATH                                 SQLite file at PATH, e.g. ./data/parley.db
//
// Any other scheme is an error that names it.
func Open(ctx context.Context, url string) (storage.Backend, error) {
	kind, target, err := parse(url)
	if err != nil {
		return nil, err
	}
	// Return the interface only on success: a nil *Store in a
	// storage.Backend would not compare equal to nil.
	switch kind {
	case kindPostgres:
		s, err := postgres.Open(ctx, target)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		s, err := sqlite.Open(ctx, target)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

const (
	kindPostgres = "postgres"
	kindSQLite   = "sqlite"
)

// parse returns which backend url names and what to hand it: the URL
// itself for PostgreSQL, the file path for SQLite.
func parse(url string) (kind, target string, err error) {
	if url == "" {
		return "", "", fmt.Errorf("storage: empty database URL")
	}
	scheme, rest, ok := strings.Cut(url, ":")
	// One letter before ':' is a Windows drive (C:\parley.db), not a scheme.
	if !ok || len(scheme) < 2 || !isScheme(scheme) {
		return kindSQLite, url, nil
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return kindPostgres, url, nil
	case "sqlite", "file":
		// sqlite:///abs/path and sqlite://rel/path, as some write them.
		path := strings.TrimPrefix(rest, "//")
		if path == "" {
			return "", "", fmt.Errorf("storage: database URL %q has no file path", url)
		}
		return kindSQLite, path, nil
	default:
		// Name the scheme, not the URL: it may hold a password.
		return "", "", fmt.Errorf("storage: unknown database URL scheme %q: want postgres://, postgresql://, sqlite:PATH, file:PATH or a file path", scheme)
	}
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case i > 0 && ('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}
