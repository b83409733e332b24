package tts

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// splitAll pushes text in pieces of the given sizes (cycled; nil means all
// at once) and returns what Push returned, then what Flush returned.
func splitAll(s *SentenceSplitter, text string, sizes []int) ([]string, string) {
	var got []string
	if len(sizes) == 0 {
		got = append(got, s.Push(text)...)
	}
	for i := 0; len(sizes) > 0 && len(text) > 0; i++ {
		n := min(max(sizes[i%len(sizes)], 1), len(text))
		got = append(got, s.Push(text[:n])...)
		text = text[n:]
	}
	return got, s.Flush()
}

func TestSentenceSplitter(t *testing.T) {
	long := strings.Repeat("word ", 30) + "then, " + strings.Repeat("more ", 30) + "end"
	noComma := strings.Repeat("word ", 60)
	cases := []struct {
		name string
		in   string
		want []string
		rest string
	}{
		{"basic", "Hello there. How are you? I'm fine!", []string{"Hello there. ", "How are you? "}, "I'm fine!"},
		{"empty", "", nil, ""},
		{"only space", " \n ", nil, " \n "},
		{"abbreviations", "Dr. Smith met Mr. and Mrs. Jones in St. Louis at 3.5 p.m. today. Then he left.",
			[]string{"Dr. Smith met Mr. and Mrs. Jones in St. Louis at 3.5 p.m. today. "}, "Then he left."},
		{"e.g.", "Use tools, e.g. Hammers, i.e. Heavy ones. Or not.", []string{"Use tools, e.g. Hammers, i.e. Heavy ones. "}, "Or not."},
		{"initials and dotted", "J. R. R. Tolkien lived in the U.K. Later the U.S. Army came. Yes.",
			[]string{"J. R. R. Tolkien lived in the U.K. Later the U.S. Army came. "}, "Yes."},
		{"url", "Visit https://example.com/a.b?c=d!e. Then call.", []string{"Visit https://example.com/a.b?c=d!e. "}, "Then call."},
		{"decimals and versions", "Pi is 3.14 and the version is 1.2.3 today. End", []string{"Pi is 3.14 and the version is 1.2.3 today. "}, "End"},
		{"price", "It costs $5. Buy now.", []string{"It costs $5. "}, "Buy now."},
		{"ellipsis mid-sentence", "Wait... what? No way... Really.", []string{"Wait... what? ", "No way... "}, "Really."},
		{"ellipsis no space", "Wait...what happened. Ok", []string{"Wait...what happened. "}, "Ok"},
		{"unicode ellipsis", "Hmm… let me think. Okay… Sure.", []string{"Hmm… let me think. ", "Okay… "}, "Sure."},
		{"list", "Here are options:\n- one\n- two\n\nDone.", []string{"Here are options:\n", "- one\n", "- two\n\n"}, "Done."},
		{"numbered list", "1. First step.\n2. Second step.\n10. Tenth.", []string{"1. First step.\n", "2. Second step.\n"}, "10. Tenth."},
		{"quotes", `He said "Stop!" Then he left. "Really?" she asked. Yes.`,
			[]string{`He said "Stop!" `, `Then he left. `, `"Really?" she asked. `}, "Yes."},
		{"brackets", "It works (mostly.) Next one.", []string{"It works (mostly.) "}, "Next one."},
		{"markdown", "**Note.** Read this.", []string{"**Note.** "}, "Read this."},
		{"repeated marks", "Yes!!! Great?! Fine", []string{"Yes!!! ", "Great?! "}, "Fine"},
		{"leading space", "\n\n  Hi. There.", []string{"\n\n  Hi. "}, "There."},
		{"punctuation only joins next", "... Hello. World", []string{"... Hello. "}, "World"},
		{"newline", "Hello.\nWorld", []string{"Hello.\n"}, "World"},
		{"crlf", "Line one\r\nLine two", []string{"Line one\r\n"}, "Line two"},
		{"digit after", "I counted 5. 6 were left.", []string{"I counted 5. "}, "6 were left."},
		{"cjk", "你好。今天天气很好！好的", []string{"你好。", "今天天气很好！"}, "好的"},
		{"cjk closer", "他说：「好。」然后走了。", []string{"他说：「好。」"}, "然后走了。"},
		{"no trailing space yet", "Hello there.", nil, "Hello there."},
		{"long run cut at comma", long, []string{strings.Repeat("word ", 30) + "then, "}, strings.Repeat("more ", 30) + "end"},
		{"long run cut at space", noComma, []string{strings.Repeat("word ", 40)}, strings.Repeat("word ", 20)},
		{"long word hard cut", strings.Repeat("a", 450), []string{strings.Repeat("a", 200), strings.Repeat("a", 200)}, strings.Repeat("a", 50)},
	}
	chunkings := map[string][]int{"whole": nil, "bytes": {1}, "odd": {3, 1, 7, 2, 11}, "tokens": {4, 5, 6}}
	for _, tc := range cases {
		for cname, sizes := range chunkings {
			var s SentenceSplitter
			got, rest := splitAll(&s, tc.in, sizes)
			if !reflect.DeepEqual(got, tc.want) || rest != tc.rest {
				t.Errorf("%s (%s):\n got %q + %q\nwant %q + %q", tc.name, cname, got, rest, tc.want, tc.rest)
			}
		}
	}
}

func TestSentenceSplitterStreams(t *testing.T) {
	var s SentenceSplitter
	steps := []struct {
		delta string
		want  []string
	}{
		{"Hello", nil},
		{" there", nil},
		{".", nil},
		{" How", []string{"Hello there. "}},
		{" are you?", nil},
		{"\n", nil},
		{"-", []string{"How are you?\n"}},
		{" item one", nil},
	}
	for _, st := range steps {
		if got := s.Push(st.delta); !reflect.DeepEqual(got, st.want) {
			t.Fatalf("Push(%q) = %q, want %q", st.delta, got, st.want)
		}
	}
	if rest := s.Flush(); rest != "- item one" {
		t.Fatalf("Flush = %q", rest)
	}
	// Flush resets: the next text starts afresh.
	if got := s.Push("New. Text"); !reflect.DeepEqual(got, []string{"New. "}) {
		t.Fatalf("after Flush: %q", got)
	}
	if rest := s.Flush(); rest != "Text" {
		t.Fatalf("Flush = %q", rest)
	}
}

func TestSentenceSplitterMaxLen(t *testing.T) {
	s := SentenceSplitter{MaxLen: 20}
	got, rest := splitAll(&s, "one two three four five six seven eight nine ten", nil)
	for _, g := range got {
		if utf8.RuneCountInString(strings.TrimRight(g, " ")) > 20 {
			t.Errorf("%q is longer than 20 (trailing space aside)", g)
		}
	}
	if strings.Join(got, "")+rest != "one two three four five six seven eight nine ten" || len(got) < 2 {
		t.Errorf("got %q + %q", got, rest)
	}
	// Multi-byte text is measured in characters, never cut inside one.
	s = SentenceSplitter{MaxLen: 10}
	got, rest = splitAll(&s, strings.Repeat("日本語", 10), []int{1})
	for _, g := range got {
		if !utf8.ValidString(g) || utf8.RuneCountInString(g) != 10 {
			t.Errorf("piece %q", g)
		}
	}
	if strings.Join(got, "")+rest != strings.Repeat("日本語", 10) {
		t.Errorf("lost text")
	}
}

// FuzzSentenceSplitter: for any text and any way of cutting it into
// deltas, Push never panics, the concatenation of all outputs is the
// input, the sentences do not depend on the cutting, and every sentence
// Push returns has something to speak.
func FuzzSentenceSplitter(f *testing.F) {
	for _, s := range []string{
		"Hello there. How are you? I'm fine!",
		"Dr. Smith, e.g. at 3.5 p.m... Wait... what?\n- one\n- two\n\n1. First. 2. Second.",
		"你好。今天天气很好！「好。」",
		"https://example.com/a.b?c=d. Then… \"Quoted.\" (Bracket.) **Bold.**",
		strings.Repeat("long run without end, ", 20),
		"\xe2\x80 broken \xff utf8. Next",
	} {
		f.Add(s, uint64(12345), uint8(0))
		f.Add(s, uint64(1), uint8(7))
	}
	f.Fuzz(func(t *testing.T, text string, seed uint64, maxLen uint8) {
		whole := SentenceSplitter{MaxLen: int(maxLen)}
		want, wantRest := splitAll(&whole, text, nil)
		if strings.Join(want, "")+wantRest != text {
			t.Fatalf("whole: %q + %q != %q", want, wantRest, text)
		}
		for _, s := range want {
			if strings.IndexFunc(s, isContent) < 0 {
				t.Fatalf("sentence %q has nothing to speak", s)
			}
		}
		// Deltas of 1..16 bytes from a small PRNG, cutting UTF-8 anywhere.
		var sizes []int
		x := seed | 1
		for n := 0; n < len(text); {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			k := int(x%16) + 1
			sizes = append(sizes, k)
			n += k
		}
		pieces := SentenceSplitter{MaxLen: int(maxLen)}
		got, rest := splitAll(&pieces, text, sizes)
		if !reflect.DeepEqual(got, want) || rest != wantRest {
			t.Fatalf("deltas %v: %q + %q, whole: %q + %q", sizes, got, rest, want, wantRest)
		}
	})
}

func BenchmarkSentenceSplitter(b *testing.B) {
	text := strings.Repeat("Dr. Smith said the price is $3.50, e.g. for apples. Is that right? Yes!\n- item one\n", 20)
	b.SetBytes(int64(len(text)))
	var s SentenceSplitter
	for b.Loop() {
		for i := 0; i < len(text); i += 4 {
			s.Push(text[i:min(i+4, len(text))])
		}
		s.Flush()
	}
}

// TestSentenceSplitterLargeDelta: one delta holding many sentences is
// split in linear time (the returned text is dropped once per Push).
func TestSentenceSplitterLargeDelta(t *testing.T) {
	text := strings.Repeat("Hi there. ", 50000)
	var s SentenceSplitter
	start := time.Now()
	got := s.Push(text)
	if len(got) != 49999 || s.Flush() != "Hi there. " {
		t.Fatalf("%d sentences", len(got))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
}
