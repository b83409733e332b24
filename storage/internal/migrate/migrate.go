// Package migrate loads the numbered SQL migrations a backend embeds. Each
// backend applies them itself (the locking differs); this package only
// reads and checks the files, so both backends agree on what a migration is.
package migrate

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one schema change, applied at most once per database.
type Migration struct {
	Version int    // from the file name: 0001_init.sql is version 1
	Name    string // the file name, recorded in schema_migrations
	SQL     string
}

// Load returns the migrations found as dir/NNNN_name.sql in fsys, sorted by
// version. Versions must run 1, 2, 3... without gaps or duplicates, so a
// misnamed file is caught by the first test rather than in production.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", dir, err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migrate: %s: want NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migrate: %s: want NNNN_name.sql with NNNN > 0", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrate: %s: version %d, want %d (versions must be 1..n without gaps or duplicates)", m.Name, m.Version, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("migrate: no migrations in %s", dir)
	}
	return ms, nil
}
