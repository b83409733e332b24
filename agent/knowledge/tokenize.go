package knowledge

import (
	"unicode"
	"unicode/utf8"
)

// maxTermBytes bounds the length of an index term. Longer runs of letters
// and digits (base64 blobs, hashes) are skipped rather than indexed.
const maxTermBytes = 64

// Tokenize returns the index terms of text, in order: lowercased runs of
// Unicode letters, digits and combining marks, with English stop words
// removed and a light suffix stemming applied ("prices", "pricing" and
// "price" all become "pric"). Search uses the same terms, so callers can use
// Tokenize to compare a question with a passage.
func Tokenize(text string) []string {
	var terms []string
	forEachTerm(text, nil, func(term []byte) {
		terms = append(terms, string(term))
	})
	return terms
}

// forEachTerm calls fn with each index term of text. The term slice is only
// valid during the call. buf is scratch space that is reused across terms;
// the possibly grown buffer is returned so callers can keep it.
func forEachTerm(text string, buf []byte, fn func(term []byte)) []byte {
	word := buf[:0]
	tooLong := false
	flush := func() {
		if len(word) > 0 && !tooLong {
			emitTerm(word, fn)
		}
		word = word[:0]
		tooLong = false
	}
	for _, r := range text {
		if !isWordRune(r) {
			flush()
			continue
		}
		if tooLong {
			continue
		}
		word = utf8.AppendRune(word, unicode.ToLower(r))
		if len(word) > maxTermBytes {
			tooLong = true
		}
	}
	flush()
	return word
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r)
}

// emitTerm drops stop words, stems the word in place and passes it to fn.
// A stem that is itself a stop word ("fore" -> "for") is dropped too.
func emitTerm(word []byte, fn func(term []byte)) {
	if _, stop := stopWords[string(word)]; stop {
		return
	}
	term := stem(word)
	if _, stop := stopWords[string(term)]; stop || len(term) == 0 {
		return
	}
	fn(term)
}

// stem applies a light, conservative suffix stemming to a lowercased word
// and returns the (possibly shortened) word. It modifies word in place.
// Rules, in order:
//   - plural: "ies" -> "y", "sses" -> "ss", a final "s" is dropped unless
//     the word ends in "ss", "us" or "is";
//   - "ied" -> "y"; "ing" and "ed" are dropped when at least three bytes
//     containing a vowel remain, and a doubled final consonant is undoubled
//     ("shipping" -> "ship");
//   - a final "e" is dropped when at least three bytes remain.
//
// Words of three bytes or fewer are left alone.
func stem(w []byte) []byte {
	if len(w) <= 3 {
		return w
	}
	switch {
	case hasSuffix(w, "sses"):
		w = w[:len(w)-2]
	case hasSuffix(w, "ies") && len(w) > 4:
		w = append(w[:len(w)-3], 'y')
	case hasSuffix(w, "ss"), hasSuffix(w, "us"), hasSuffix(w, "is"):
		// "class", "status", "analysis": not plurals.
	case hasSuffix(w, "s"):
		w = w[:len(w)-1]
	}

	switch {
	case hasSuffix(w, "ied") && len(w) > 4:
		w = append(w[:len(w)-3], 'y')
	case hasSuffix(w, "ing") && len(w)-3 >= 3 && hasVowel(w[:len(w)-3]):
		w = undouble(w[:len(w)-3])
	case hasSuffix(w, "ed") && len(w)-2 >= 3 && hasVowel(w[:len(w)-2]):
		w = undouble(w[:len(w)-2])
	}

	if hasSuffix(w, "e") && len(w)-1 >= 3 {
		w = w[:len(w)-1]
	}
	return w
}

func hasSuffix(w []byte, suffix string) bool {
	return len(w) >= len(suffix) && string(w[len(w)-len(suffix):]) == suffix
}

func hasVowel(w []byte) bool {
	for _, c := range w {
		switch c {
		case 'a', 'e', 'i', 'o', 'u', 'y':
			return true
		}
	}
	return false
}

// undouble turns a doubled final consonant into a single one ("shipp" ->
// "ship"), except for l, s and z ("fill", "pass", "buzz").
func undouble(w []byte) []byte {
	n := len(w)
	if n < 2 || w[n-1] != w[n-2] {
		return w
	}
	switch c := w[n-1]; {
	case c < 'a' || c > 'z':
		return w
	case c == 'l' || c == 's' || c == 'z':
		return w
	case c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u':
		return w
	}
	return w[:n-1]
}

// stopWords are common English words that carry no meaning for retrieval.
// The list is applied before stemming, to lowercased words.
var stopWords = makeSet(
	"a", "about", "above", "after", "again", "against", "all", "am", "an", "and",
	"any", "are", "aren", "as", "at", "be", "because", "been", "before", "being",
	"below", "between", "both", "but", "by", "can", "could", "couldn", "d", "did",
	"didn", "do", "does", "doesn", "doing", "don", "down", "during", "each", "few",
	"for", "from", "further", "had", "hadn", "has", "hasn", "have", "haven", "having",
	"he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i",
	"if", "in", "into", "is", "isn", "it", "its", "itself", "just", "ll", "m",
	"me", "might", "more", "most", "must", "mustn", "my", "myself", "no", "nor",
	"not", "now", "o", "of", "off", "on", "once", "only", "or", "other", "our",
	"ours", "ourselves", "out", "over", "own", "re", "s", "same", "shall", "she",
	"should", "shouldn", "so", "some", "such", "t", "than", "that", "the", "their",
	"theirs", "them", "themselves", "then", "there", "these", "they", "this", "those",
	"through", "to", "too", "under", "until", "up", "us", "ve", "very", "was",
	"wasn", "we", "were", "weren", "what", "when", "where", "which", "while", "who",
	"whom", "why", "will", "with", "won", "would", "wouldn", "y", "you", "your",
	"yours", "yourself", "yourselves", "also", "may", "tell", "please", "let",
	"know", "get", "gets", "getting", "got",
)

func makeSet(words ...string) map[string]struct{} {
	set := make(map[string]struct{}, len(words))
	for _, w := range words {
		set[w] = struct{}{}
	}
	return set
}
