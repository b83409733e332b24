package backends

import (
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"parley/storage"
	"parley/storage/internal/pgtest"
	"parley/storage/postgres"
	"parley/storage/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParse(t *testing.T) {
	tests := []struct {
		url, kind, target, err string
	}{
		{"postgres://u:pw@db:5432/parley?sslmode=disable", kindPostgres, "postgres://u:pw@db:5432/parley?sslmode=disable", ""},
		{"postgresql://db/parley", kindPostgres, "postgresql://db/parley", ""},
		{"POSTGRES://db/parley", kindPostgres, "POSTGRES://db/parley", ""},
		{"sqlite:./data/parley.db", kindSQLite, "./data/parley.db", ""},
		{"sqlite:data/parley.db", kindSQLite, "data/parley.db", ""},
		{"sqlite:///var/lib/parley.db", kindSQLite, "/var/lib/parley.db", ""},
		{"sqlite://data/parley.db", kindSQLite, "data/parley.db", ""},
		{"file:/var/lib/parley.db", kindSQLite, "/var/lib/parley.db", ""},
		{"file:///var/lib/parley.db", kindSQLite, "/var/lib/parley.db", ""},
		{"./data/parley.db", kindSQLite, "./data/parley.db", ""},
		{"/var/lib/parley/parley.db", kindSQLite, "/var/lib/parley/parley.db", ""},
		{"parley.db", kindSQLite, "parley.db", ""},
		{`C:\parley\parley.db`, kindSQLite, `C:\parley\parley.db`, ""},
		{"./odd:name.db", kindSQLite, "./odd:name.db", ""},
		{"", "", "", "empty database URL"},
		{"sqlite:", "", "", "no file path"},
		{"file://", "", "", "no file path"},
		{"mysql://u:secret@db/parley", "", "", `unknown database URL scheme "mysql"`},
		{"redis://db", "", "", `unknown database URL scheme "redis"`},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			kind, target, err := parse(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parse error = %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q leaks the password", err)
				}
				return
			}
			if err != nil || kind != tc.kind || target != tc.target {
				t.Errorf("parse = %q, %q, %v; want %q, %q", kind, target, err, tc.kind, tc.target)
			}
		})
	}
}

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, url := range []string{
		"sqlite:" + filepath.Join(dir, "a", "parley.db"),
		"file:" + filepath.Join(dir, "b", "parley.db"),
		filepath.Join(dir, "c", "parley.db"),
	} {
		s, err := Open(t.Context(), url)
		if err != nil {
			t.Fatalf("Open(%s): %v", url, err)
		}
		if _, ok := s.(*sqlite.Store); !ok {
			t.Errorf("Open(%s) = %T, want *sqlite.Store", url, s)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
		checkAccounts(t, s)
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for _, url := range []string{"mysql://db/parley", "", "sqlite:"} {
		s, err := Open(t.Context(), url)
		if err == nil || s != nil {
			t.Errorf("Open(%q) = %v, %v; want nil and an error", url, s, err)
		}
	}
	// Dispatch reaches the PostgreSQL backend (nothing listens on port 1).
	s, err := Open(t.Context(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err == nil || s != nil || !strings.HasPrefix(err.Error(), "postgres:") {
		t.Errorf("Open(unreachable postgres) = %v, %v; want nil and a postgres: error", s, err)
	}
}

func TestOpenPostgres(t *testing.T) {
	s, err := Open(t.Context(), pgtest.FreshSchema(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if _, ok := s.(*postgres.Store); !ok {
		t.Errorf("Open = %T, want *postgres.Store", s)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	checkAccounts(t, s)
}

// checkAccounts checks that the opened Backend has the accounts schema:
// the default tenant exists.
func checkAccounts(t *testing.T, s storage.Backend) {
	t.Helper()
	tn, err := s.GetTenant(t.Context(), storage.DefaultTenant)
	if err != nil || !tn.Active() {
		t.Errorf("GetTenant(default) = %+v, %v; want the active default tenant", tn, err)
	}
}
