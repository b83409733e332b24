package knowledge

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ...  ", nil},
		{"What is the refund policy?", []string{"refund", "policy"}},
		{"Hello, WORLD!", []string{"hello", "world"}},
		{"Prices, pricing and the price", []string{"pric", "pric", "pric"}},
		{"Shipping shipped ships", []string{"ship", "ship", "ship"}},
		{"opening opened opens", []string{"open", "open", "open"}},
		{"refunds refunded refund", []string{"refund", "refund", "refund"}},
		{"policies policy", []string{"policy", "policy"}},
		{"status analysis class glasses", []string{"status", "analysis", "class", "glass"}},
		{"don't won't it's", nil},
		{"Öffnungszeiten café naïve", []string{"öffnungszeiten", "café", "naïv"}},
		{"9am 4.95 euros", []string{"9am", "4", "95", "euro"}},
		{"e-mail user@example.com", []string{"e", "mail", "user", "exampl", "com"}},
		{"東京 タワー", []string{"東京", "タワー"}},
		{"a " + strings.Repeat("x", maxTermBytes+1) + " tea", []string{"tea"}}, // over-long run skipped
	}
	for _, tt := range tests {
		got := Tokenize(tt.in)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStem(t *testing.T) {
	tests := []struct{ in, want string }{
		{"price", "pric"},
		{"prices", "pric"},
		{"pricing", "pric"},
		{"priced", "pric"},
		{"shipping", "ship"},
		{"shipped", "ship"},
		{"ships", "ship"},
		{"hours", "hour"},
		{"days", "day"},
		{"deliveries", "delivery"},
		{"delivery", "delivery"},
		{"applied", "apply"},
		{"classes", "class"},
		{"passes", "pass"},
		{"filling", "fill"},
		{"thing", "thing"},   // stem would be too short
		{"string", "string"}, // no vowel left
		{"need", "need"},
		{"tea", "tea"},
		{"use", "use"},
		{"bus", "bus"},
		{"store", "stor"},
		{"stores", "stor"},
		{"storing", "stor"},
	}
	for _, tt := range tests {
		if got := string(stem([]byte(tt.in))); got != tt.want {
			t.Errorf("stem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStemKeepsUTF8Valid(t *testing.T) {
	// U+0FFF ends in two equal continuation bytes; undoubling must not cut
	// it, and neither must any suffix rule.
	for _, w := range []string{"ab\u0fffing", "ab\u0fffed", "\u0fff\u0fffs", "ééés"} {
		got := stem([]byte(w))
		if !utf8.Valid(got) {
			t.Errorf("stem(%q) = %q, not valid UTF-8", w, got)
		}
	}
}
