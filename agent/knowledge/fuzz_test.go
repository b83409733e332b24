package knowledge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Documents are uploaded by users: the tokenizer and the chunker must not
// panic or produce garbage on any input.

func addSeeds(f *testing.F) {
	f.Add("")
	f.Add("# A\n## B\n### C\ntext\n\n```\n# code\n")
	f.Add("---\nk: v\n---\nTitle\n=====\n\n- a\n- b\n\n1. x\n2) y\n")
	f.Add("Ünïcödé ТЕКСТ 東京 ‘quoted’ «x» e.g. 4.95 € İstanbul ǅ")
	f.Add(strings.Repeat("word ", 500))
	f.Add("\uFEFF\r\n#\t\r\n\r\n***\r\n~~~~\r\n")
	paths, _ := filepath.Glob("../../testdata/knowledge/*.md")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(string(data))
		}
	}
}

func FuzzTokenize(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, text string) {
		for _, term := range Tokenize(text) {
			if term == "" || !utf8.ValidString(term) || len(term) > maxTermBytes {
				t.Fatalf("bad term %q", term)
			}
			if _, stop := stopWords[term]; stop {
				t.Fatalf("stop word %q returned", term)
			}
			for _, r := range term {
				if !isWordRune(r) || unicode.ToLower(r) != r {
					t.Fatalf("term %q has rune %q", term, r)
				}
			}
		}
	})
}

func FuzzChunk(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, doc string) {
		if !utf8.ValidString(doc) {
			if _, err := New(map[string]string{"x.md": doc}); err == nil {
				t.Fatal("invalid UTF-8 accepted")
			}
			return
		}
		inputWords := wordCount(doc)
		for _, plain := range []bool{false, true} {
			var pieces []piece
			if plain {
				pieces = chunkPlain(doc)
			} else {
				pieces = chunkMarkdown(doc)
			}
			total := 0
			for _, p := range pieces {
				if strings.TrimSpace(p.body) == "" || !utf8.ValidString(p.body) || !utf8.ValidString(p.heading) {
					t.Fatalf("bad chunk %q", p)
				}
				if p.heading != "" && (plain || !strings.HasPrefix(p.heading, "# ")) {
					t.Fatalf("bad heading %q", p.heading)
				}
				n := wordCount(p.body)
				if n > maxChunkWords+minChunkWords {
					t.Fatalf("chunk of %d words", n)
				}
				for _, w := range strings.Fields(p.body) {
					if !strings.Contains(doc, w) {
						t.Fatalf("chunk word %q not in the document", w)
					}
				}
				total += n
			}
			if total > inputWords {
				t.Fatalf("chunks hold %d words, document %d", total, inputWords)
			}
		}

		ix, err := New(map[string]string{"a.md": doc, "b.txt": doc})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{doc, "tea", strings.ToUpper(doc)} {
			got := ix.Search(q, 3)
			if len(got) > 3 {
				t.Fatalf("%d results", len(got))
			}
			for i, p := range got {
				if p.Score <= MinScore || (i > 0 && p.Score > got[i-1].Score) {
					t.Fatalf("bad scores %v", got)
				}
			}
		}
	})
}
