// Package knowledge indexes an agent's documents and finds the passages that
// best answer a question. Documents (Markdown or plain text) are split into
// chunks of roughly 40-180 words along headings and paragraphs, tokenized
// (lowercase, stop words removed, light stemming) and ranked with BM25
// (k1 1.2, b 0.75), the terms of a chunk's headings counting twice.
//
// A chunk's text (agent.Passage.Text) is its section's heading trail, such
// as "# Refund policy > Digital goods", a blank line, and the body; chunks of
// plain text and of Markdown before any heading are the body alone.
//
// An Index is immutable once built and safe for concurrent use.
package knowledge

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"parley/agent"
)

// BM25 parameters.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// headingWeight is how many times a term of a chunk's heading trail counts:
// headings name the topic of the text under them.
const headingWeight = 2

// MinScore is the score a chunk must exceed to be returned by Search. It
// drops chunks that share only a very common term with the query.
const MinScore = 0.2

// MaxFileBytes is the largest document Load accepts.
const MaxFileBytes = 8 << 20

// Index is a BM25 index over the chunks of a set of documents.
type Index struct {
	chunks   []chunk
	terms    map[string]int32 // term -> id
	postings [][]posting      // by term id, ordered by chunk
	pool     sync.Pool        // of *searchState
}

type chunk struct {
	source string
	text   string
}

// posting is one (term, chunk) pair with its precomputed BM25 weight, so a
// search only sums weights.
type posting struct {
	chunk  int32
	weight float32
}

// Load reads the documents under dir, recursively: files ending in .md,
// .markdown and .txt (case-insensitive). Files and directories whose names
// start with "." are skipped. A missing or unreadable dir is an error, as is
// a document that cannot be read, is larger than MaxFileBytes or is not
// valid UTF-8 (the error names the file). An empty dir gives an empty index.
func Load(dir string) (*Index, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("knowledge: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("knowledge: %s is not a directory", dir)
	}
	docs := make(map[string]string)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("knowledge: %w", err)
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isDocument(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return fmt.Errorf("knowledge: %w", err)
		}
		text, err := readDocument(path)
		if err != nil {
			return err
		}
		docs[filepath.ToSlash(rel)] = text
		return nil
	})
	if err != nil {
		return nil, err
	}
	return New(docs)
}

func isDocument(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".md", ".markdown", ".txt":
		return true
	}
	return false
}

func readDocument(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("knowledge: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("knowledge: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("knowledge: %s is not a regular file", path)
	}
	if info.Size() > MaxFileBytes {
		return "", fmt.Errorf("knowledge: %s is larger than %d bytes", path, MaxFileBytes)
	}
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return "", fmt.Errorf("knowledge: reading %s: %w", path, err)
	}
	if !utf8.Valid(data) {
		return "", fmt.Errorf("knowledge: %s is not valid UTF-8 text", path)
	}
	return string(data), nil
}

// New indexes documents given as source name -> text. Names ending in .txt
// are split as plain text, all others as Markdown. A text that is not valid
// UTF-8 is an error naming its source.
func New(docs map[string]string) (*Index, error) {
	names := make([]string, 0, len(docs))
	for name := range docs {
		names = append(names, name)
	}
	sort.Strings(names)

	ix := &Index{terms: make(map[string]int32)}
	var (
		freqs   [][]termFreq // by chunk
		lengths []int        // terms per chunk
		counts  = make(map[int32]int32)
		buf     []byte
	)
	for _, name := range names {
		text := docs[name]
		if !utf8.ValidString(text) {
			return nil, fmt.Errorf("knowledge: %s is not valid UTF-8 text", name)
		}
		var pieces []piece
		if strings.EqualFold(filepath.Ext(name), ".txt") {
			pieces = chunkPlain(text)
		} else {
			pieces = chunkMarkdown(text)
		}
		for _, p := range pieces {
			clear(counts)
			n := 0
			add := func(term []byte, weight int32) {
				id, ok := ix.terms[string(term)]
				if !ok {
					id = int32(len(ix.postings))
					ix.terms[string(term)] = id
					ix.postings = append(ix.postings, nil)
				}
				counts[id] += weight
				n += int(weight)
			}
			buf = forEachTerm(p.heading, buf, func(term []byte) { add(term, headingWeight) })
			bodyTerms := 0
			buf = forEachTerm(p.body, buf, func(term []byte) { add(term, 1); bodyTerms++ })
			if bodyTerms == 0 {
				continue // nothing searchable in this chunk
			}
			tf := make([]termFreq, 0, len(counts))
			for id, c := range counts {
				tf = append(tf, termFreq{id, c})
			}
			ix.chunks = append(ix.chunks, chunk{source: name, text: p.text()})
			freqs = append(freqs, tf)
			lengths = append(lengths, n)
		}
	}
	if len(ix.chunks) > math.MaxInt32 {
		return nil, errors.New("knowledge: too many chunks")
	}

	// Postings are filled in chunk order, so each list is sorted by chunk.
	for c, tfs := range freqs {
		for _, tf := range tfs {
			ix.postings[tf.term] = append(ix.postings[tf.term], posting{chunk: int32(c), weight: float32(tf.count)})
		}
	}
	total := 0
	for _, n := range lengths {
		total += n
	}
	n := float64(len(ix.chunks))
	avgLen := 1.0
	if len(lengths) > 0 {
		avgLen = float64(total) / n
	}
	for _, list := range ix.postings {
		df := float64(len(list))
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		for i := range list {
			tf := float64(list[i].weight)
			dl := float64(lengths[list[i].chunk])
			list[i].weight = float32(idf * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*dl/avgLen)))
		}
	}
	return ix, nil
}

type termFreq struct {
	term  int32
	count int32
}

// Len returns the number of chunks in the index.
func (ix *Index) Len() int { return len(ix.chunks) }

// searchState is the scratch memory of one search, pooled so that searches
// allocate only their result.
type searchState struct {
	scores  []float64 // by chunk; all zero between searches
	touched []int32   // chunks with a non-zero score
	terms   []int32   // distinct query term ids
	top     []scored
	buf     []byte
}

type scored struct {
	chunk int32
	score float64
}

// Search returns up to k chunks whose BM25 score for query exceeds
// MinScore, best first (ties in document order). Source is the document's
// path relative to the indexed directory, with forward slashes.
func (ix *Index) Search(query string, k int) []agent.Passage {
	if ix == nil || k <= 0 || len(ix.chunks) == 0 {
		return nil
	}
	st, _ := ix.pool.Get().(*searchState)
	if st == nil {
		st = &searchState{scores: make([]float64, len(ix.chunks))}
	}
	defer ix.pool.Put(st)

	st.terms = st.terms[:0]
	st.buf = forEachTerm(query, st.buf, func(term []byte) {
		if id, ok := ix.terms[string(term)]; ok {
			st.terms = append(st.terms, id)
		}
	})
	slices.Sort(st.terms) // a query term counts once, however often it occurs
	st.terms = slices.Compact(st.terms)

	st.touched = st.touched[:0]
	for _, id := range st.terms {
		for _, p := range ix.postings[id] {
			if st.scores[p.chunk] == 0 {
				st.touched = append(st.touched, p.chunk)
			}
			st.scores[p.chunk] += float64(p.weight)
		}
	}

	// Keep the k best in st.top, sorted best first.
	st.top = st.top[:0]
	for _, c := range st.touched {
		s := st.scores[c]
		st.scores[c] = 0
		if s <= MinScore {
			continue
		}
		if len(st.top) == k && !better(scored{c, s}, st.top[k-1]) {
			continue
		}
		if len(st.top) < k {
			st.top = append(st.top, scored{})
		}
		i := len(st.top) - 1
		for i > 0 && better(scored{c, s}, st.top[i-1]) {
			st.top[i] = st.top[i-1]
			i--
		}
		st.top[i] = scored{c, s}
	}
	if len(st.top) == 0 {
		return nil
	}
	out := make([]agent.Passage, len(st.top))
	for i, t := range st.top {
		ch := ix.chunks[t.chunk]
		out[i] = agent.Passage{Source: ch.source, Text: ch.text, Score: t.score}
	}
	return out
}

func better(a, b scored) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.chunk < b.chunk
}

// Texts returns the text of every chunk, in document order: a corpus for
// adapting a speech recognizer's language model to the agent's domain.
func (ix *Index) Texts() []string {
	out := make([]string, len(ix.chunks))
	for i, c := range ix.chunks {
		out[i] = c.text
	}
	return out
}
