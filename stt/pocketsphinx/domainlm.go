package pocketsphinx

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"unicode"
)

// questionCorpus are generic spoken questions and requests. They teach a
// domain language model how users ask, next to the domain's own words.
var questionCorpus = []string{
	"what is it", "what is this", "what are they", "what does it do", "what can you do",
	"how do i do that", "how does it work", "how long does it take", "how long are they kept",
	"how much does it cost", "how many are there", "can you tell me about it", "can you help me",
	"can i change it", "tell me more", "tell me something else", "is it stored", "is my data safe",
	"where is it", "where can i find it", "when is it", "why is that", "who can see it",
	"do you keep it", "does it work", "i want to know more", "i need help", "please explain",
	"hello", "hello there", "hi", "thank you", "thanks", "yes", "no", "okay", "stop", "goodbye",
}

// domainName names the language model of a corpus.
func domainName(corpus []string) string {
	h := sha256.New()
	for _, s := range corpus {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "domain_" + hex.EncodeToString(h.Sum(nil)[:8])
}

// selectDomain makes the decoder's next utterance use a bigram language
// model of corpus (plus questionCorpus), or the configured model when
// corpus is empty. Models are built once per recognizer and loaded once per
// decoder.
func (r *Recognizer) selectDomain(d *decoder, corpus []string) error {
	if d.lm == "" {
		d.lm = d.defaultSearch()
	}
	if len(corpus) == 0 {
		return d.useSearch(d.lm)
	}
	name := domainName(corpus)
	if d.domains[name] {
		return d.useSearch(name)
	}
	arpa := buildARPA(append(append([]string(nil), corpus...), questionCorpus...))
	// pocketsphinx reads models from files only: write the model (text
	// derived from the agent's documents, never audio) to a private temp
	// file for the duration of the load.
	f, err := os.CreateTemp("", "parley-lm-*.arpa")
	if err != nil {
		return err
	}
	path := f.Name()
	defer os.Remove(path)
	if _, err := f.WriteString(arpa); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := d.addLMFile(name, path); err != nil {
		return err
	}
	if d.domains == nil {
		d.domains = map[string]bool{}
	}
	d.domains[name] = true
	return d.useSearch(name)
}

// corpusWords splits text into lower-case words.
func corpusWords(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !(unicode.IsLetter(r) && r < unicode.MaxASCII || r == '\'')
	})
}

// sentences splits a text at sentence ends and line breaks.
func sentences(text string) []string {
	return strings.FieldsFunc(text, func(r rune) bool {
		return r == '.' || r == '?' || r == '!' || r == '\n' || r == ';' || r == ':'
	})
}

// buildARPA returns a bigram language model of the corpus in ARPA format:
// add-one unigrams, absolutely discounted bigrams (D = 0.5) backing off to
// the unigrams.
func buildARPA(corpus []string) string {
	const D = 0.5
	uni := map[string]float64{}
	bi := map[[2]string]float64{}
	for _, text := range corpus {
		for _, s := range sentences(text) {
			ws := corpusWords(s)
			if len(ws) == 0 {
				continue
			}
			prev := "<s>"
			for _, w := range append(ws, "</s>") {
				uni[w]++
				bi[[2]string{prev, w}]++
				prev = w
			}
		}
	}
	words := make([]string, 0, len(uni))
	var total float64
	for w, c := range uni {
		words = append(words, w)
		total += c
	}
	sort.Strings(words)
	v := float64(len(words))
	pUni := func(w string) float64 { return (uni[w] + 1) / (total + v) }

	// Per history: bigram count, distinct followers, unigram mass of the followers.
	type hist struct{ count, types, seenMass float64 }
	hs := map[string]*hist{}
	for k, c := range bi {
		h := hs[k[0]]
		if h == nil {
			h = &hist{}
			hs[k[0]] = h
		}
		h.count += c
		h.types++
		h.seenMass += pUni(k[1])
	}
	bow := func(w string) float64 {
		h := hs[w]
		if h == nil || h.seenMass >= 1 {
			return 0
		}
		return math.Log10(D * h.types / h.count / (1 - h.seenMass))
	}
	keys := make([][2]string, 0, len(bi))
	for k := range bi {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\\data\\\nngram 1=%d\nngram 2=%d\n\n\\1-grams:\n", len(words)+1, len(keys))
	fmt.Fprintf(&b, "-99.0000 <s> %.4f\n", bow("<s>"))
	for _, w := range words {
		fmt.Fprintf(&b, "%.4f %s %.4f\n", math.Log10(pUni(w)), w, bow(w))
	}
	b.WriteString("\n\\2-grams:\n")
	for _, k := range keys {
		p := (bi[k] - D) / hs[k[0]].count
		fmt.Fprintf(&b, "%.4f %s %s\n", math.Log10(p), k[0], k[1])
	}
	b.WriteString("\n\\end\\\n")
	return b.String()
}
