package knowledge

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"parley/agent"
)

const shopDir = "../../testdata/knowledge"

func loadShop(t testing.TB) *Index {
	t.Helper()
	ix, err := Load(shopDir)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestLoadFixture(t *testing.T) {
	ix := loadShop(t)
	var sources []string
	for _, c := range ix.chunks {
		if !slices.Contains(sources, c.source) {
			sources = append(sources, c.source)
		}
	}
	// README has no document extension and is skipped; subdirectories are
	// included with slash-separated sources.
	want := []string{"faq.txt", "opening-hours.md", "policies/refunds.md", "pricing.md", "shipping.md"}
	if !slices.Equal(sources, want) {
		t.Errorf("sources = %q, want %q", sources, want)
	}
	if ix.Len() != len(ix.chunks) || ix.Len() < 10 {
		t.Errorf("Len() = %d", ix.Len())
	}
}

func TestSearchRanking(t *testing.T) {
	ix := loadShop(t)
	tests := []struct {
		query      string
		wantSource string
		wantText   string // a fact the best chunk must contain
	}{
		{"How do I get a refund?", "policies/refunds.md", "30 days"},
		{"Can I get a refund for opened tea?", "policies/refunds.md", "hygiene"},
		{"What are your opening hours on Sunday?", "opening-hours.md", "noon to 5 pm"},
		{"How much does shipping cost?", "shipping.md", "free for orders over 40 euros"},
		{"How long does delivery take to Germany?", "shipping.md", "3 to 5 business days"},
		{"what is the price of the subscription", "pricing.md", "19 euros per month"},
		{"Do you accept PayPal?", "faq.txt", "PayPal"},
	}
	for _, tt := range tests {
		got := ix.Search(tt.query, 3)
		if len(got) == 0 {
			t.Errorf("Search(%q) found nothing", tt.query)
			continue
		}
		if got[0].Source != tt.wantSource || !strings.Contains(got[0].Text, tt.wantText) {
			t.Errorf("Search(%q)[0] = %s %q, want %s containing %q", tt.query, got[0].Source, got[0].Text, tt.wantSource, tt.wantText)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Score > got[i-1].Score {
				t.Errorf("Search(%q) not sorted: %v", tt.query, got)
			}
		}
	}
}

func TestSearchThreshold(t *testing.T) {
	ix := loadShop(t)
	for _, q := range []string{
		"What is the weather like in Paris tomorrow?",
		"Who won the football match?",
		"", "?!", "the and of a", // nothing but stop words
	} {
		if got := ix.Search(q, 5); len(got) != 0 {
			t.Errorf("Search(%q) = %v, want nothing", q, got)
		}
	}

	// A term present in every chunk scores below MinScore.
	ix, err := New(map[string]string{"a.md": "tea alpha", "b.md": "tea beta", "c.md": "tea gamma"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Search("tea", 3); len(got) != 0 {
		t.Errorf("ubiquitous term returned %v", got)
	}
	if got := ix.Search("tea beta", 3); len(got) != 1 || got[0].Source != "b.md" {
		t.Errorf("Search(tea beta) = %v", got)
	}
}

func TestSearchK(t *testing.T) {
	ix := loadShop(t)
	if got := ix.Search("refund shipping tea", 0); got != nil {
		t.Errorf("k=0 returned %v", got)
	}
	if got := ix.Search("refund shipping tea", 2); len(got) != 2 {
		t.Errorf("k=2 returned %d", len(got))
	}
	all := ix.Search("refund shipping tea", 1000)
	if len(all) == 0 || len(all) > ix.Len() {
		t.Errorf("k=1000 returned %d of %d", len(all), ix.Len())
	}
	var nilIndex *Index
	if got := nilIndex.Search("refund", 3); got != nil {
		t.Errorf("nil index returned %v", got)
	}
}

func TestSearchHeadingContext(t *testing.T) {
	ix, err := New(map[string]string{
		"hours.md": "# Opening hours\n\nWe welcome you from 9 to 5 on weekdays.",
		"other.md": "# Parking\n\nThe car park is behind the building.",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := ix.Search("opening hours", 1)
	if len(got) != 1 || got[0].Source != "hours.md" || !strings.HasPrefix(got[0].Text, "# Opening hours\n\n") {
		t.Errorf("Search = %v", got)
	}
}

func TestSearchTies(t *testing.T) {
	ix, err := New(map[string]string{"b.md": "zebra", "a.md": "zebra", "c.md": "other words"})
	if err != nil {
		t.Fatal(err)
	}
	got := ix.Search("zebra", 5)
	if len(got) != 2 || got[0].Source != "a.md" || got[1].Source != "b.md" || got[0].Score != got[1].Score {
		t.Errorf("ties = %v", got)
	}
}

func TestAssistantKnowledge(t *testing.T) {
	ix, err := Load("../../configs/knowledge/assistant")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ query, source, fact string }{
		{"What is Parley?", "about.md", "self-hosted gateway"},
		{"How long are transcripts kept?", "privacy.md", "90 days"},
		{"Is my audio recorded?", "privacy.md", "processed in memory"},
		{"How do I run it?", "getting-started.md", "make run"},
		{"How do I connect a client?", "getting-started.md", "ws://localhost:8080/v1/realtime?model=assistant"},
		{"Where is the configuration file?", "configuration.md", "configs/parley.yaml"},
		{"Can I override settings with environment variables?", "configuration.md", "PARLEY_"},
		{"How do I add documents to my agent's knowledge?", "agents-and-knowledge.md", "knowledge directory"},
		{"Does it support WebRTC?", "about.md", "WebRTC"},
	}
	for _, tt := range tests {
		got := ix.Search(tt.query, 4)
		if len(got) == 0 || got[0].Source != tt.source || !strings.Contains(got[0].Text, tt.fact) {
			t.Errorf("Search(%q) = %v, want %s containing %q first", tt.query, got, tt.source, tt.fact)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("missing dir", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("not a dir", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file.md")
		write(t, f, "x")
		if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("empty dir", func(t *testing.T) {
		ix, err := Load(t.TempDir())
		if err != nil || ix.Len() != 0 || ix.Search("anything", 3) != nil {
			t.Errorf("ix=%v err=%v", ix, err)
		}
	})
	t.Run("invalid utf8", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "good.md"), "fine")
		write(t, filepath.Join(dir, "sub", "bad.txt"), "caf\xe9")
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), filepath.Join("sub", "bad.txt")) || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root can read any file")
		}
		dir := t.TempDir()
		f := filepath.Join(dir, "secret.md")
		write(t, f, "hidden")
		if err := os.Chmod(f, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), "secret.md") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("skips hidden and other files", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, ".git", "notes.md"), "hidden zebra")
		write(t, filepath.Join(dir, ".draft.md"), "hidden zebra")
		write(t, filepath.Join(dir, "image.png"), "\x89PNG\xff")
		write(t, filepath.Join(dir, "Guide.MARKDOWN"), "visible zebra")
		ix, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		got := ix.Search("zebra", 5)
		if len(got) != 1 || got[0].Source != "Guide.MARKDOWN" {
			t.Errorf("Search = %v", got)
		}
	})
	t.Run("New invalid utf8", func(t *testing.T) {
		_, err := New(map[string]string{"x.md": "\xff"})
		if err == nil || !strings.Contains(err.Error(), "x.md") {
			t.Errorf("err = %v", err)
		}
	})
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSearchConcurrent(t *testing.T) {
	ix := loadShop(t)
	want := ix.Search("refund opened tea", 3)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				got := ix.Search("refund opened tea", 3)
				if !slices.Equal(got, want) {
					t.Errorf("concurrent search differs")
					return
				}
				ix.Search("shipping cost Sunday", 2)
			}
		})
	}
	wg.Wait()
}

func TestSearchAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	ix := loadShop(t)
	ix.Search("warm up the pool", 3)
	allocs := testing.AllocsPerRun(100, func() {
		ix.Search("How much does shipping to Germany cost?", 3)
	})
	// The result slice is the only allocation.
	if allocs > 1 {
		t.Errorf("Search allocates %.1f times per call", allocs)
	}
}

// syntheticCorpus builds a deterministic corpus of n documents from a
// vocabulary of made-up words with a Zipf-like distribution.
func syntheticCorpus(n int) map[string]string {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 5000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%dx", i)
	}
	zipf := rand.NewZipf(r, 1.1, 1, uint64(len(vocab)-1))
	docs := make(map[string]string, n)
	for d := range n {
		var sb strings.Builder
		fmt.Fprintf(&sb, "# Section %s\n\n", vocab[zipf.Uint64()])
		for p := range 3 {
			if p > 0 {
				sb.WriteString("\n\n")
			}
			for w := range 60 {
				if w > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(vocab[zipf.Uint64()])
			}
			sb.WriteByte('.')
		}
		docs[fmt.Sprintf("doc%04d.md", d)] = sb.String()
	}
	return docs
}

func BenchmarkSearch(b *testing.B) {
	for _, n := range []int{100, 2000} {
		ix, err := New(syntheticCorpus(n))
		if err != nil {
			b.Fatal(err)
		}
		queries := []string{"w12x w400x w3000x", "what about w7x and w90x?", "w1x w2x w3x w4x w5x w6x"}
		b.Run(fmt.Sprintf("chunks=%d", ix.Len()), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ix.Search(queries[i%len(queries)], 4)
				i++
			}
		})
	}
	b.Run("shop", func(b *testing.B) {
		ix := loadShop(b)
		b.ReportAllocs()
		for b.Loop() {
			ix.Search("How much does shipping to Germany cost?", 4)
		}
	})
}

func BenchmarkNew(b *testing.B) {
	docs := syntheticCorpus(500)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(docs); err != nil {
			b.Fatal(err)
		}
	}
}

var _ agent.Retriever = (*Index)(nil)
