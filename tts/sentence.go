package tts

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxSentence is SentenceSplitter's default MaxLen.
const DefaultMaxSentence = 200

// SentenceSplitter cuts streamed text (an LLM's deltas) into sentences as
// soon as each one is complete, so speech can start before the reply is
// finished. The zero value is ready to use; a splitter is used by one
// goroutine at a time.
//
// A sentence ends after ".", "!", "?", "…" (or a run of them, with closing
// quotes or brackets) followed by white space, unless what follows starts
// with a lower-case letter, or the "." ends an abbreviation ("Dr.", "e.g.",
// "U.S.", an initial "J.") or a list number ("1."). Punctuation not
// followed by white space never ends one ("3.5", "example.com/a?b",
// "wait...what"). A line break ends a sentence too, so list items and
// headings come out one per line. CJK "。！？" end a sentence without
// white space. A run of more than MaxLen characters with no sentence end
// is cut at its last clause break (",", ";", ":", dash) or else its last
// space, so speech is not held back by run-on text.
//
// Sentences are returned whole, with the white space that follows them,
// so the concatenation of everything Push and Flush return is exactly the
// text pushed. Every sentence Push returns has at least one letter, digit
// or symbol (punctuation-only pieces are joined to the next sentence).
// The decision at each point depends only on the text, never on how it was
// split into deltas: a sentence end is reported once the first character
// after it (past any white space) has arrived.
type SentenceSplitter struct {
	// MaxLen is the length, in characters, past which a run without a
	// sentence end is cut. 0 means DefaultMaxSentence.
	MaxLen int

	buf   []byte // buf[start:] is the text not returned yet
	start int    // buf[:start] was returned (dropped at the end of Push)
	pos   int    // buf[start:pos] is scanned
	runes int    // characters in buf[start:pos]
	state splitState

	hasContent bool // buf[start:pos] has a letter, digit or symbol
	afterSpace bool // the last character scanned in stateText was white space
	lastMark   rune // the last non-space character scanned

	// The terminator run being decided (stateTerm, stateGap).
	termStart  int  // where it starts in buf; -1 for a line break
	termDots   int  // "." in the run
	termOther  bool // "!", "?", "…" or another terminator in the run
	termCJK    bool // "。", "！", "？" in the run
	sawNewline bool // a line break in the white space after it

	// Cut points for an overlong run: offsets in buf after white space,
	// with the characters from start to them. 0 means none.
	clauseCut, clauseRunes int // after a clause break
	spaceCut, spaceRunes   int // after any white space
}

type splitState uint8

const (
	stateText splitState = iota // inside a sentence
	stateTerm                   // after a terminator run (and closers)
	stateGap                    // in white space after a terminator or a line break
)

// Push adds a delta and returns the sentences it completed (nil if none).
func (s *SentenceSplitter) Push(delta string) []string {
	s.buf = append(s.buf, delta...)
	var out []string
	for s.pos < len(s.buf) && utf8.FullRune(s.buf[s.pos:]) {
		r, size := utf8.DecodeRune(s.buf[s.pos:])
		if sent, ok := s.step(r, size); ok {
			out = append(out, sent)
		}
	}
	s.compact()
	return out
}

// compact drops the text already returned from buf. Doing it once per
// Push, not per sentence, keeps a large delta with many sentences linear.
func (s *SentenceSplitter) compact() {
	if s.start == 0 {
		return
	}
	n := copy(s.buf, s.buf[s.start:])
	s.buf = s.buf[:n]
	s.pos -= s.start
	if s.termStart >= s.start {
		s.termStart -= s.start
	}
	for _, c := range []*int{&s.clauseCut, &s.spaceCut} {
		if *c > s.start {
			*c -= s.start
		} else {
			*c = 0
		}
	}
	s.start = 0
}

// Flush returns the text not returned yet (possibly "" or only white
// space) and resets the splitter for a new text.
func (s *SentenceSplitter) Flush() string {
	rest := string(s.buf[s.start:])
	*s = SentenceSplitter{MaxLen: s.MaxLen, buf: s.buf[:0]}
	return rest
}

// step scans one character. It returns a sentence when one ended just
// before r (r itself is then scanned as the start of the next).
func (s *SentenceSplitter) step(r rune, size int) (string, bool) {
	switch s.state {
	case stateTerm:
		switch {
		case isTerminator(r) || isCloser(r):
			s.noteTerminator(r)
			s.consume(r, size)
			return "", false
		case unicode.IsSpace(r):
			s.state = stateGap
			s.sawNewline = r == '\n'
			s.consume(r, size)
			return "", false
		case s.termCJK && s.hasContent:
			return s.cut(s.pos), true
		}
		s.state = stateText
	case stateGap:
		if unicode.IsSpace(r) {
			s.sawNewline = s.sawNewline || r == '\n'
			s.consume(r, size)
			return "", false
		}
		if s.hasContent && (s.sawNewline || s.termStart >= 0 && s.endsSentence(r)) {
			return s.cut(s.pos), true
		}
		s.state = stateText
		s.afterSpace = true
	}
	return s.text(r, size)
}

// text scans r inside a sentence.
func (s *SentenceSplitter) text(r rune, size int) (string, bool) {
	switch {
	case isTerminator(r):
		s.state = stateTerm
		s.termStart, s.termDots, s.termOther, s.termCJK = s.pos, 0, false, false
		s.noteTerminator(r)
		s.consume(r, size)
		return "", false
	case r == '\n' && s.hasContent:
		s.state = stateGap
		s.termStart, s.sawNewline = -1, true
		s.consume(r, size)
		return "", false
	case unicode.IsSpace(r):
		s.afterSpace = true
		s.consume(r, size)
		return "", false
	}
	if s.afterSpace && s.hasContent {
		s.spaceCut, s.spaceRunes = s.pos, s.runes
		if isClauseBreak(s.lastMark) {
			s.clauseCut, s.clauseRunes = s.pos, s.runes
		}
	}
	s.afterSpace = false
	hadContent := s.hasContent
	s.consume(r, size)
	if isCJKClauseBreak(r) && s.hasContent {
		s.clauseCut, s.clauseRunes = s.pos, s.runes
	}
	if s.runes > s.maxLen() && s.hasContent {
		at := s.overlongCut()
		if at == 0 { // one long word: cut before r, or after it if r is all there is to speak
			at = s.pos
			if hadContent {
				at -= size
			}
		}
		return s.cut(at), true
	}
	return "", false
}

// consume moves past r.
func (s *SentenceSplitter) consume(r rune, size int) {
	s.pos += size
	s.runes++
	if !unicode.IsSpace(r) {
		s.lastMark = r
		if isContent(r) {
			s.hasContent = true
		}
	}
}

func (s *SentenceSplitter) noteTerminator(r rune) {
	switch {
	case r == '.':
		s.termDots++
	case r == '。' || r == '！' || r == '？' || r == '｡':
		s.termCJK = true
	case isTerminator(r):
		s.termOther = true
	}
}

func (s *SentenceSplitter) maxLen() int {
	if s.MaxLen > 0 {
		return s.MaxLen
	}
	return DefaultMaxSentence
}

// overlongCut picks where to cut a run longer than MaxLen: the last clause
// break if it leaves a first piece of a reasonable length, else the last
// space, else the last clause break; 0 if there is none (one long word).
func (s *SentenceSplitter) overlongCut() int {
	switch {
	case s.clauseCut > 0 && s.clauseRunes >= s.maxLen()/4:
		return s.clauseCut
	case s.spaceCut > 0:
		return s.spaceCut
	}
	return s.clauseCut
}

// endsSentence decides, at r (the first character after a terminator run
// and white space), whether the run ended a sentence.
func (s *SentenceSplitter) endsSentence(r rune) bool {
	if unicode.IsLower(r) {
		return false
	}
	if s.termDots == 1 && !s.termOther && !s.termCJK {
		before := s.buf[s.start:s.termStart]
		if isAbbreviation(lastWord(before)) || isListNumber(before) {
			return false
		}
	}
	return true
}

// cut returns buf[start:at] as a sentence and moves start to at, keeping
// buf[at:pos] scanned; the state that depends on where the sentence
// starts is recomputed.
func (s *SentenceSplitter) cut(at int) string {
	sent := string(s.buf[s.start:at])
	s.start = at
	s.runes = utf8.RuneCount(s.buf[s.start:s.pos])
	s.hasContent = false
	for i := s.start; i < s.pos && !s.hasContent; {
		r, size := utf8.DecodeRune(s.buf[i:s.pos])
		s.hasContent = isContent(r)
		i += size
	}
	if s.pos == s.start {
		s.state = stateText
		s.afterSpace = false
		s.lastMark = 0
	}
	for _, c := range []struct{ cut, runes *int }{{&s.clauseCut, &s.clauseRunes}, {&s.spaceCut, &s.spaceRunes}} {
		if *c.cut > at {
			*c.runes = utf8.RuneCount(s.buf[s.start:*c.cut])
		} else {
			*c.cut, *c.runes = 0, 0
		}
	}
	return sent
}

// lastWord returns the word of letters and dots at the end of b ("Dr" in
// "Ask Dr", "e.g" in "like e.g"), or "" when those letters are the tail
// of a longer token ("e" in "?c=d!e", "3a").
func lastWord(b []byte) string {
	i := len(b)
	for i > 0 {
		r, size := utf8.DecodeLastRune(b[:i])
		if r != '.' && !unicode.IsLetter(r) {
			break
		}
		i -= size
	}
	if i > 0 {
		if r, _ := utf8.DecodeLastRune(b[:i]); !unicode.IsSpace(r) && !strings.ContainsRune("([{\"'“‘«", r) {
			return ""
		}
	}
	return string(b[i:])
}

// abbreviations end with "." without ending a sentence, even before a
// capital ("Dr. Smith", "vs. Google"). Words that often end sentences
// ("etc.", "Inc.", "No.") are left out.
var abbreviations = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "mx": true, "dr": true, "prof": true, "sr": true, "jr": true,
	"st": true, "mt": true, "rev": true, "hon": true, "gen": true, "col": true, "lt": true, "sgt": true,
	"capt": true, "cmdr": true, "adm": true, "gov": true, "sen": true, "rep": true, "pres": true,
	"vs": true, "cf": true, "ca": true, "approx": true, "viz": true, "fig": true, "figs": true,
	"vol": true, "vols": true, "nos": true, "dept": true, "est": true, "incl": true, "al": true,
	"jan": true, "feb": true, "apr": true, "aug": true, "sep": true, "sept": true, "oct": true,
	"nov": true, "dec": true, "ph.d": true,
}

// isAbbreviation: a known abbreviation, an initial ("J"), or dotted single
// letters ("e.g", "i.e", "U.S", "a.m").
func isAbbreviation(w string) bool {
	w = strings.TrimLeft(w, ".")
	if w == "" {
		return false
	}
	if abbreviations[strings.ToLower(w)] {
		return true
	}
	for _, part := range strings.Split(w, ".") {
		if utf8.RuneCountInString(part) != 1 {
			return false
		}
	}
	return true
}

// isListNumber: the sentence so far is only a number of up to three
// digits, maybe after a bullet ("1", "  12", "- 3").
func isListNumber(b []byte) bool {
	t := strings.TrimLeft(string(b), " \t\r\n*-#>")
	if t == "" || len(t) > 3 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return true
}

func isTerminator(r rune) bool {
	switch r {
	case '.', '!', '?', '…', '‼', '⁇', '⁈', '⁉', '。', '！', '？', '｡', '؟', '।', '॥':
		return true
	}
	return false
}

// isCloser: characters that may follow a terminator inside the sentence
// (closing quotes and brackets, Markdown emphasis).
func isCloser(r rune) bool {
	switch r {
	case '"', '\'', ')', ']', '}', '”', '’', '»', '›', '」', '』', '）', '】', '*', '_', '`':
		return true
	}
	return false
}

func isClauseBreak(r rune) bool {
	switch r {
	case ',', ';', ':', '—', '–', '-':
		return true
	}
	return false
}

func isCJKClauseBreak(r rune) bool {
	switch r {
	case '，', '、', '；', '：':
		return true
	}
	return false
}

// isContent: a character that is spoken (not white space or punctuation).
func isContent(r rune) bool { return !unicode.IsSpace(r) && !unicode.IsPunct(r) }
