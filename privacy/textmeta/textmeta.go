// Package textmeta derives conversation metadata from transcript text:
// its language and its sentiment. Both run offline from data compiled into
// the binary (whatlanggo's trigram profiles, VADER's lexicon): nothing is
// downloaded or read from disk at run time. The functions are safe for
// concurrent use; an Aggregate is not.
package textmeta

import (
	"math"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/abadojack/whatlanggo"
	"github.com/jonreiter/govader"
)

// Limits of Language and Sentiment.
const (
	// MinLetters is the fewest letters (unicode.IsLetter) a text needs
	// for Language to name its language.
	MinLetters = 12
	// MinConfidence is the least whatlanggo confidence (0-1) Language
	// accepts. Measured on short customer-service sentences in seven
	// languages: every detection with a confidence of 0.5 or more was
	// right, below it single sentences were often wrong (English taken for
	// Afrikaans, Spanish for Portuguese); two to four sentences together
	// were right at 0.5 or more but once (Spanish taken for Portuguese).
	MinConfidence = 0.5
	// MaxLanguageBytes caps the text Language looks at (the first bytes),
	// and the user text an Aggregate keeps.
	MaxLanguageBytes = 4 << 10
	// MaxSentimentBytes caps the text Sentiment scores (the first bytes).
	MaxSentimentBytes = 16 << 10
)

// Language detects the language of text and returns its ISO 639-1 code
// ("en", "de", "fr", ...), or "" when the text is too short (fewer than
// MinLetters letters), the detector is not confident (a confidence below
// MinConfidence), or the language has no ISO 639-1 code (Cebuano, Ilocano,
// Maithili, Saraiki). It looks at the first MaxLanguageBytes of text and
// ignores placeholders such as "[email]" left by privacy/redact.
//
// It uses github.com/abadojack/whatlanggo, a trigram detector of 84
// languages; texts in scripts used by a single language (Han, Hangul,
// Kana, Greek, Thai, ...) are named by script alone.
func Language(text string) string {
	text = stripPlaceholders(truncate(text, MaxLanguageBytes))
	n := 0
	for _, r := range text {
		if unicode.IsLetter(r) {
			if n++; n >= MinLetters {
				break
			}
		}
	}
	if n < MinLetters {
		return ""
	}
	info := whatlanggo.Detect(text)
	if info.Confidence < MinConfidence || info.Lang < 0 || int(info.Lang) >= len(iso6391()) {
		return ""
	}
	return iso6391()[info.Lang]
}

// iso6391 maps whatlanggo's languages to ISO 639-1 codes ("" for none).
// Lang.Iso6391 builds a map on each call, so the table is built once.
var iso6391 = sync.OnceValue(func() []string {
	var codes []string
	for l := range whatlanggo.Langs {
		if int(l) >= len(codes) {
			codes = append(codes, make([]string, int(l)+1-len(codes))...)
		}
		code := l.Iso6391()
		switch {
		case code != "":
		case l == whatlanggo.Pes: // Persian
			code = "fa"
		case l == whatlanggo.Ydd: // Yiddish
			code = "yi"
		}
		codes[l] = code
	}
	return codes
})

// vader is the sentiment analyzer, built on first use: it parses its
// lexicon (about 7,500 words and 3,500 emoji) from data compiled into the
// binary. Its methods only read it, so it is shared.
var vader = sync.OnceValue(govader.NewSentimentIntensityAnalyzer)

// Sentiment returns the sentiment of text as a score in [-1, 1]: above 0
// positive, below 0 negative, 0 neutral or unknown (no text). It is
// VADER's "compound" score (github.com/jonreiter/govader), an offline
// lexicon-and-rules method for English that weighs negation ("not
// happy"), boosters ("very"), capitals, exclamation marks and emoji. Text
// in other languages mostly scores near 0 (only emoji and words shared
// with English count). It scores the first MaxSentimentBytes of text.
func Sentiment(text string) float64 {
	text = strings.TrimSpace(truncate(text, MaxSentimentBytes))
	if text == "" {
		return 0
	}
	return clamp(vader().PolarityScores(text).Compound)
}

func clamp(x float64) float64 {
	switch {
	case math.IsNaN(x):
		return 0
	case x > 1:
		return 1
	case x < -1:
		return -1
	}
	return x
}

// Aggregate accumulates the user turns of a conversation: Add each
// turn's text, then read Language (detected on the turns' text together,
// up to MaxLanguageBytes) and Sentiment (the mean of the turns' scores).
// The zero value is ready to use. It is not safe for concurrent use.
type Aggregate struct {
	text  []byte  // the turns' text, up to MaxLanguageBytes
	sum   float64 // of the turns' sentiment scores
	turns int
	lang  string // Language's last result; valid when !dirty
	dirty bool   // text changed since lang was computed
}

// Add adds a user turn. Blank turns are ignored.
func (a *Aggregate) Add(text string) {
	if strings.TrimSpace(text) == "" {
		return
	}
	a.AddScored(text, Sentiment(text))
}

// AddScored adds a user turn whose Sentiment the caller already has
// (sentiment), saving the second scoring Add would do. Blank turns are
// ignored.
func (a *Aggregate) AddScored(text string, sentiment float64) {
	if strings.TrimSpace(text) == "" {
		return
	}
	a.turns++
	a.sum += clamp(sentiment)
	if room := MaxLanguageBytes - len(a.text); room > 1 {
		if len(a.text) > 0 {
			a.text = append(a.text, '\n')
			room--
		}
		a.text = append(a.text, truncate(stripPlaceholders(text), room)...)
		a.dirty = true
	}
}

// Turns returns how many turns were added.
func (a *Aggregate) Turns() int { return a.turns }

// Language returns the language of the turns' text together, as Language
// does ("" when it is too short or uncertain, or with no turns).
func (a *Aggregate) Language() string {
	if a.dirty {
		a.lang = Language(string(a.text))
		a.dirty = false
	}
	return a.lang
}

// Sentiment returns the mean sentiment score of the turns, in [-1, 1]; 0
// with no turns.
func (a *Aggregate) Sentiment() float64 {
	if a.turns == 0 {
		return 0
	}
	return clamp(a.sum / float64(a.turns))
}

// truncate returns the longest prefix of s of at most n bytes that does
// not split a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i >= 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n] // not UTF-8 there
}

// stripPlaceholders returns s without the placeholders privacy/redact
// puts in place of personal data: "[" + 1-10 lower-case ASCII letters +
// "]".
func stripPlaceholders(s string) string {
	i := strings.IndexByte(s, '[')
	if i < 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for ; i >= 0 && i < len(s); i++ {
		if s[i] != '[' {
			continue
		}
		j := i + 1
		for j < len(s) && j-i <= 10 && 'a' <= s[j] && s[j] <= 'z' {
			j++
		}
		if j > i+1 && j < len(s) && s[j] == ']' {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:i])
			last = j + 1
			i = j
		}
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}
