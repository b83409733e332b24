package stt

import (
	"strings"
	"unicode"
)

// WordErrorRate returns the word error rate of hyp against the reference
// ref: the minimum number of word substitutions, deletions and insertions
// that turn ref into hyp, divided by the number of words in ref. Words are
// compared case-insensitively after stripping punctuation at their edges
// (so "Hours?" matches "hours"). An empty ref gives 0 when hyp is empty too
// and 1 otherwise. The result can exceed 1 when hyp has many insertions.
func WordErrorRate(ref, hyp string) float64 {
	r, h := normWords(ref), normWords(hyp)
	if len(r) == 0 {
		if len(h) == 0 {
			return 0
		}
		return 1
	}
	return float64(WordEdits(r, h)) / float64(len(r))
}

// WordEdits returns the word-level Levenshtein distance between ref and
// hyp (substitutions, deletions and insertions all cost 1). Words are
// compared exactly; WordErrorRate normalizes them first.
func WordEdits(ref, hyp []string) int {
	// One row of the DP table: prev[j] = distance(ref[:i], hyp[:j]).
	prev := make([]int, len(hyp)+1)
	cur := make([]int, len(hyp)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ref); i++ {
		cur[0] = i
		for j := 1; j <= len(hyp); j++ {
			sub := prev[j-1]
			if ref[i-1] != hyp[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(hyp)]
}

// normWords splits s on white space, lower-cases each word and trims
// punctuation from both ends, dropping words that become empty.
func normWords(s string) []string {
	fields := strings.Fields(s)
	out := fields[:0]
	for _, f := range fields {
		f = strings.TrimFunc(strings.ToLower(f), func(r rune) bool {
			return unicode.IsPunct(r) || unicode.IsSymbol(r)
		})
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}
