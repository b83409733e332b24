package timeid

import (
	"strings"
	"testing"
	"time"
)

func TestNewSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 21, 0, 0, 0, time.UTC)
	prev := ""
	for i, d := range []time.Duration{0, time.Millisecond, time.Second, time.Hour, 24 * time.Hour, 365 * 24 * time.Hour} {
		id := New(t0.Add(d))
		if len(id) != Len || strings.Trim(id, alphabet) != "" {
			t.Fatalf("stem %q: want %d lowercase alphanumerics", id, Len)
		}
		if i > 0 && id <= prev {
			t.Fatalf("stem %q made later sorts before %q", id, prev)
		}
		prev = id
	}
	if a, b := New(t0), New(t0); a == b || a[:TimeLen] != b[:TimeLen] {
		t.Fatalf("two stems of one millisecond: %q %q (same time prefix, different randomness wanted)", a, b)
	}
	if got := New(time.Unix(0, 0))[:TimeLen]; got != "000000000" {
		t.Fatalf("epoch prefix %q", got)
	}
}
