package knowledge

import (
	"slices"
	"strings"
	"testing"
)

func TestChunkMarkdownHeadings(t *testing.T) {
	doc := strings.Join([]string{
		"---",
		"title: ignored front matter",
		"---",
		"# Shop",
		"",
		"Welcome to the shop.",
		"",
		"## Refunds ##",
		"Refunds take five days.",
		"",
		"### Digital goods",
		"Digital goods are not refunded.",
		"",
		"## Shipping",
		"",
		"```",
		"# not a heading inside code",
		"",
		"still code",
		"```",
		"",
		"Delivery",
		"========",
		"Two days.",
		"",
		"#hashtag is text, not a heading.",
	}, "\n")
	got := chunkMarkdown(doc)
	want := []piece{
		{"# Shop", "Welcome to the shop."},
		{"# Shop > Refunds", "Refunds take five days."},
		{"# Shop > Refunds > Digital goods", "Digital goods are not refunded."},
		{"# Shop > Shipping", "```\n# not a heading inside code\n\nstill code\n```"},
		{"# Delivery", "Two days.\n\n#hashtag is text, not a heading."},
	}
	if !slices.Equal(got, want) {
		t.Errorf("chunkMarkdown:\ngot  %q\nwant %q", got, want)
	}
	if text := got[1].text(); text != "# Shop > Refunds\n\nRefunds take five days." {
		t.Errorf("text() = %q", text)
	}
}

func TestChunkMarkdownEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []piece
	}{
		{"empty", "", nil},
		{"only headings", "# A\n## B\n", nil},
		{"no heading", "Just text.\r\nMore text.", []piece{{"", "Just text.\nMore text."}}},
		{"bom and crlf", "\uFEFF# T\r\n\r\nBody.\r\n", []piece{{"# T", "Body."}}},
		{"setext level 2", "Title\n-----\nBody.", []piece{{"# Title", "Body."}}},
		{"thematic break splits paragraphs", "One.\n\n---\n\nTwo.", []piece{{"", "One.\n\nTwo."}}},
		{"unclosed front matter is text", "---\nnot front matter", []piece{{"", "not front matter"}}},
		{"seven hashes is text", "####### x", []piece{{"", "####### x"}}},
		{"deeper heading resets", "# A\n### C\nc\n## B\nb", []piece{{"# A > C", "c"}, {"# A > B", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := chunkMarkdown(tt.doc); !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func words(n int, word string) string {
	return strings.TrimSpace(strings.Repeat(word+" ", n))
}

func TestChunkSizes(t *testing.T) {
	// Paragraphs are packed up to maxChunkWords.
	paras := []string{words(100, "alpha"), words(60, "beta"), words(100, "gamma"), words(50, "delta")}
	got := chunkMarkdown("# H\n\n" + strings.Join(paras, "\n\n"))
	if len(got) != 2 {
		t.Fatalf("got %d chunks, want 2: %q", len(got), got)
	}
	if got[0].body != paras[0]+"\n\n"+paras[1] || got[1].body != paras[2]+"\n\n"+paras[3] {
		t.Errorf("unexpected packing: %q", got)
	}

	// A short tail joins the chunk before it.
	got = chunkMarkdown(words(150, "alpha") + "\n\n" + words(20, "beta"))
	if len(got) != 1 || wordCount(got[0].body) != 170 {
		t.Errorf("short tail not merged: %d chunks", len(got))
	}

	// A long prose paragraph is split at sentence ends.
	sentence := "Word " + words(28, "word") + "."
	long := strings.TrimSpace(strings.Repeat(sentence+" ", 20)) // 600 words
	got = chunkPlain(long)
	if len(got) < 4 {
		t.Fatalf("long paragraph gave %d chunks", len(got))
	}
	for _, c := range got {
		if n := wordCount(c.body); n > maxChunkWords {
			t.Errorf("chunk of %d words", n)
		}
		if !strings.HasSuffix(c.body, ".") {
			t.Errorf("chunk not cut at a sentence end: ...%q", c.body[len(c.body)-10:])
		}
	}

	// A run of words with no sentence end is cut at maxChunkWords.
	got = chunkPlain(words(400, "x"))
	if len(got) != 3 || wordCount(got[0].body) != maxChunkWords {
		t.Errorf("unbroken run: %d chunks", len(got))
	}

	// A long list is split between items.
	var items []string
	for range 60 {
		items = append(items, "- "+words(9, "item"))
	}
	got = chunkMarkdown(strings.Join(items, "\n"))
	for _, c := range got {
		for _, line := range strings.Split(c.body, "\n") {
			if !strings.HasPrefix(line, "- ") {
				t.Fatalf("list item cut: %q", line)
			}
		}
	}
}

func TestChunkPlain(t *testing.T) {
	got := chunkPlain("# not a heading in text\n\nSecond paragraph.\n\n\n")
	want := []piece{{"", "# not a heading in text\n\nSecond paragraph."}}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSplitSentences(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"One. Two! Three? Four", []string{"One.", "Two!", "Three?", "Four"}},
		{"Costs 4.95 euros. See docs/a.md now.", []string{"Costs 4.95 euros.", "See docs/a.md now."}},
		{"Use e.g. the shop. Then pay.", []string{"Use e.g. the shop.", "Then pay."}},
		{`He said "stop." Then left.`, []string{`He said "stop."`, "Then left."}},
		{"Open ws://host/v1?model=x now. Ok", []string{"Open ws://host/v1?model=x now.", "Ok"}},
		{"Wait...  What?!\nYes.", []string{"Wait...", "What?!", "Yes."}},
	}
	for _, tt := range tests {
		if got := SplitSentences(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("SplitSentences(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsListItem(t *testing.T) {
	for line, want := range map[string]bool{
		"- a": true, "* a": true, "+ a": true, "  1. a": true, "12) a": true,
		"-a": false, "1.5 euros": false, "text": false, "": false, "1.": false,
	} {
		if got := isListItem(line); got != want {
			t.Errorf("isListItem(%q) = %v", line, got)
		}
	}
}
