package stt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestWordErrorRate(t *testing.T) {
	cases := []struct {
		ref, hyp string
		want     float64
	}{
		{"", "", 0},
		{"", "hello", 1},
		{"hello world", "", 1},
		{"what are your opening hours", "what are your opening hours", 0},
		{"What are your opening hours?", "what are your opening hours", 0},
		{"what are your opening hours", "what are you opening hours", 0.2},     // 1 substitution
		{"what are your opening hours", "what your opening hours", 0.2},        // 1 deletion
		{"what are your opening hours", "so what are your opening hours", 0.2}, // 1 insertion
		{"a b c d", "d c b a", 1}, // reversal: 4 edits over 4 words
		{"a b", "a x y z b", 1.5}, // 3 insertions over 2 words
		{"  spaced   out\twords ", "spaced out words", 0},
		{"the cat sat", "cat sat the", 2.0 / 3}, // delete "the" + insert "the"
	}
	for _, c := range cases {
		got := WordErrorRate(c.ref, c.hyp)
		want := c.want
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("WordErrorRate(%q, %q) = %v, want %v", c.ref, c.hyp, got, want)
		}
	}
}

func TestWordEdits(t *testing.T) {
	cases := []struct {
		a, b []string
		want int
	}{
		{nil, nil, 0},
		{[]string{"x"}, nil, 1},
		{nil, []string{"x", "y"}, 2},
		{[]string{"kitten"}, []string{"sitting"}, 1},
		{[]string{"a", "b", "c"}, []string{"a", "c"}, 1},
		{[]string{"a", "b", "c"}, []string{"a", "b", "c", "d"}, 1},
		{[]string{"a", "b", "c"}, []string{"x", "b", "y"}, 2},
		{[]string{"Hello"}, []string{"hello"}, 1}, // exact comparison
	}
	for _, c := range cases {
		if got := WordEdits(c.a, c.b); got != c.want {
			t.Errorf("WordEdits(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		// Symmetric.
		if got := WordEdits(c.b, c.a); got != c.want {
			t.Errorf("WordEdits(%q, %q) = %d, want %d", c.b, c.a, got, c.want)
		}
	}
}

func TestContextError(t *testing.T) {
	if ContextError(nil, "x") != nil {
		t.Fatal("nil error not kept nil")
	}
	for _, c := range []struct {
		err  error
		code string
	}{
		{context.DeadlineExceeded, CodeTimeout},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), CodeTimeout},
		{context.Canceled, CodeCanceled},
		{errors.New("other"), CodeError},
	} {
		err := ContextError(c.err, "waiting")
		if got := Code(err, ""); got != c.code {
			t.Errorf("ContextError(%v) code %q, want %q", c.err, got, c.code)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("ContextError(%v) does not unwrap to it", c.err)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Code: CodeAuth, Message: "rejected"}
	if e.Error() != "stt_auth: rejected" {
		t.Errorf("Error() = %q", e.Error())
	}
	e.Err = errors.New("401")
	if e.Error() != "stt_auth: rejected: 401" || !errors.Is(e, e.Err) {
		t.Errorf("Error() = %q", e.Error())
	}
	if Code(errors.New("x"), "fb") != "fb" {
		t.Error("fallback not used")
	}
}
