package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs a tiny configuration so make test exercises the benchmark.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	if err := run(2, 200*time.Millisecond, 2000, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"p99", "GET /v1/tenants/{id}/settings", "database key lookups"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
