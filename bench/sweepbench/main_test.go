package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunSmall runs a small SQLite configuration so make test exercises
// the benchmark: load, sweep and verification, with both loaders.
func TestRunSmall(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   options
		wants []string
	}{
		{
			name: "bulk",
			cfg:  options{turns: 20_005, batch: 500, backends: []string{"sqlite"}},
			// 2,001 conversations (the last with 5 turns), every other one
			// expired starting with the first: 1,001 of them, 10,005 turns.
			wants: []string{"(bulk, 1 writers)", "expired turns/s",
				"verified: no expired row left, 1001 expired conversations gone, 10000 of 10000 unexpired turns in 1000 conversations kept",
				"sqlite         20005      10005      11006"},
		},
		{
			name:  "api",
			cfg:   options{turns: 2_000, batch: 70, backends: []string{"sqlite"}, api: true},
			wants: []string{"(WriteBatch, 1 writers)", "sqlite          2000       1000       1100"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(t.Context(), tc.cfg, &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range tc.wants {
				if !strings.Contains(out.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
