package migrate

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	ok := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
		"m/README.md":     {Data: []byte("ignored")},
	}
	ms, err := Load(ok, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 1 || ms[0].Name != "0001_init.sql" || ms[0].SQL != "A" || ms[1].Version != 2 || ms[1].SQL != "B" {
		t.Fatalf("Load = %+v", ms)
	}

	bad := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"empty", fstest.MapFS{"m/x.txt": {}}, "no migrations"},
		{"no underscore", fstest.MapFS{"m/0001.sql": {}}, "want NNNN_name.sql"},
		{"not a number", fstest.MapFS{"m/abc_init.sql": {}}, "NNNN > 0"},
		{"zero", fstest.MapFS{"m/0000_init.sql": {}}, "NNNN > 0"},
		{"gap", fstest.MapFS{"m/0001_a.sql": {}, "m/0003_c.sql": {}}, "want 2"},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": {}, "m/0001_b.sql": {}}, "want 2"},
		{"missing dir", fstest.MapFS{}, "read m"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.fs, "m")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
