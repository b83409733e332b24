package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunSmall runs a tiny configuration so make test exercises the benchmark.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	if err := run(3, 200, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"typical turn", "long turn", "Ogg Opus audio", "< 20 µs per turn", "cache miss", "pseudonym", "Reproduce"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
