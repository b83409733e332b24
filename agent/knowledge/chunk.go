package knowledge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Chunk sizes, in words (whitespace-separated fields) of body text. A
// section's paragraphs are packed together up to maxChunkWords; a short tail
// is merged into the chunk before it (up to maxChunkWords+minChunkWords), so
// a chunk is shorter than minChunkWords only when its whole section is.
const (
	minChunkWords = 40
	maxChunkWords = 180
)

// piece is one chunk of a document before indexing: the heading trail of
// its section ("# Refunds > Digital goods", empty for plain text) and the
// body text.
type piece struct {
	heading string
	body    string
}

// text is the chunk text handed out in passages: the heading trail, a blank
// line and the body.
func (p piece) text() string {
	if p.heading == "" {
		return p.body
	}
	return p.heading + "\n\n" + p.body
}

// chunkMarkdown splits a Markdown document into chunks. Sections start at
// ATX ("## Title") and setext ("Title" over "=====") headings; each chunk
// carries its section's heading trail. Fenced code blocks are kept whole (a
// "#" inside them is not a heading) and YAML front matter is skipped.
func chunkMarkdown(doc string) []piece {
	lines := skipFrontMatter(splitLines(doc))
	var (
		chunks   []piece
		headings [6]string
		paras    []string // paragraphs of the current section
		cur      []string // lines of the current paragraph
		fence    string   // opening fence while inside a code block
	)
	endPara := func() {
		if len(cur) > 0 {
			paras = append(paras, strings.Join(cur, "\n"))
			cur = cur[:0]
		}
	}
	endSection := func() {
		endPara()
		chunks = append(chunks, sectionChunks(headingContext(headings[:]), paras)...)
		paras = paras[:0]
	}
	setHeading := func(level int, text string) {
		headings[level-1] = text
		for i := level; i < len(headings); i++ {
			headings[i] = ""
		}
	}

	for _, line := range lines {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			cur = append(cur, line)
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if f := fenceMarker(trimmed); f != "" {
			fence = f
			cur = append(cur, line)
			continue
		}
		if level, text, ok := atxHeading(line); ok {
			endSection()
			setHeading(level, text)
			continue
		}
		if trimmed == "" {
			endPara()
			continue
		}
		if len(cur) == 1 && isSetextUnderline(trimmed) {
			text := strings.TrimSpace(cur[0])
			cur = cur[:0]
			endSection()
			level := 2
			if trimmed[0] == '=' {
				level = 1
			}
			setHeading(level, text)
			continue
		}
		if isThematicBreak(trimmed) {
			endPara()
			continue
		}
		cur = append(cur, line)
	}
	endSection()
	return chunks
}

// chunkPlain splits a plain-text document into chunks: paragraphs are
// separated by blank lines and packed like Markdown paragraphs, without
// headings.
func chunkPlain(doc string) []piece {
	var paras, cur []string
	for _, line := range splitLines(doc) {
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				paras = append(paras, strings.Join(cur, "\n"))
				cur = cur[:0]
			}
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 {
		paras = append(paras, strings.Join(cur, "\n"))
	}
	return sectionChunks("", paras)
}

// splitLines normalises line endings, drops a byte order mark and splits
// doc into lines.
func splitLines(doc string) []string {
	doc = strings.TrimPrefix(doc, "\uFEFF")
	doc = strings.ReplaceAll(doc, "\r\n", "\n")
	doc = strings.ReplaceAll(doc, "\r", "\n")
	return strings.Split(doc, "\n")
}

// skipFrontMatter drops a leading YAML front matter block ("---" ... "---").
func skipFrontMatter(lines []string) []string {
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != "---" {
		return lines
	}
	for i := 1; i < len(lines); i++ {
		switch strings.TrimSpace(lines[i]) {
		case "---", "...":
			return lines[i+1:]
		}
	}
	return lines // no closing line: not front matter
}

// atxHeading recognises "# Title" to "###### Title" (up to three leading
// spaces, optional closing #s) and returns its level and text.
func atxHeading(line string) (level int, text string, ok bool) {
	s := line
	for i := 0; i < 3 && strings.HasPrefix(s, " "); i++ {
		s = s[1:]
	}
	for level < len(s) && s[level] == '#' {
		level++
	}
	if level == 0 || level > 6 {
		return 0, "", false
	}
	rest := s[level:]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return 0, "", false // "#hashtag" is not a heading
	}
	text = strings.TrimSpace(rest)
	text = strings.TrimSpace(strings.TrimRight(text, "#"))
	return level, text, true
}

// fenceMarker returns the fence ("```" or "~~~", possibly longer) a trimmed
// line opens, or "".
func fenceMarker(trimmed string) string {
	for _, c := range []byte{'`', '~'} {
		n := 0
		for n < len(trimmed) && trimmed[n] == c {
			n++
		}
		if n >= 3 {
			return trimmed[:n]
		}
	}
	return ""
}

func isSetextUnderline(trimmed string) bool {
	if len(trimmed) < 2 || (trimmed[0] != '=' && trimmed[0] != '-') {
		return false
	}
	return strings.Count(trimmed, trimmed[:1]) == len(trimmed)
}

// isThematicBreak recognises "---", "***", "___" (spaces allowed between).
func isThematicBreak(trimmed string) bool {
	s := strings.ReplaceAll(trimmed, " ", "")
	if len(s) < 3 || (s[0] != '-' && s[0] != '*' && s[0] != '_') {
		return false
	}
	return strings.Count(s, s[:1]) == len(s)
}

func headingContext(headings []string) string {
	var parts []string
	for _, h := range headings {
		if h != "" {
			parts = append(parts, h)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "# " + strings.Join(parts, " > ")
}

// sectionChunks packs the paragraphs of one section into chunks that carry
// the section's heading trail.
func sectionChunks(heading string, paras []string) []piece {
	bodies := pack(paras)
	chunks := make([]piece, 0, len(bodies))
	for _, body := range bodies {
		chunks = append(chunks, piece{heading: heading, body: body})
	}
	return chunks
}

// pack groups paragraphs into bodies of at most maxChunkWords words,
// splitting paragraphs that are longer than that.
func pack(paras []string) []string {
	var pieces []string
	for _, p := range paras {
		if wordCount(p) > maxChunkWords {
			pieces = append(pieces, splitLong(p)...)
		} else {
			pieces = append(pieces, p)
		}
	}
	return packUnits(pieces, "\n\n", true)
}

// packUnits joins consecutive units with sep into groups of at most
// maxChunkWords words. With mergeTail, a last group shorter than
// minChunkWords joins the group before it when the result stays within
// maxChunkWords+minChunkWords.
func packUnits(units []string, sep string, mergeTail bool) []string {
	var (
		groups []string
		cur    []string
		n      int
	)
	for _, u := range units {
		w := wordCount(u)
		if n > 0 && n+w > maxChunkWords {
			groups = append(groups, strings.Join(cur, sep))
			cur = cur[:0]
			n = 0
		}
		cur = append(cur, u)
		n += w
	}
	if n == 0 {
		return groups
	}
	last := strings.Join(cur, sep)
	if mergeTail && n < minChunkWords && len(groups) > 0 &&
		wordCount(groups[len(groups)-1])+n <= maxChunkWords+minChunkWords {
		groups[len(groups)-1] += sep + last
		return groups
	}
	return append(groups, last)
}

// splitLong splits a paragraph longer than maxChunkWords: lists and code
// blocks by line, prose by sentence, and any single unit that is still too
// long into runs of maxChunkWords words.
func splitLong(p string) []string {
	lines := strings.Split(p, "\n")
	var units []string
	sep := " "
	if len(lines) > 1 && (isListItem(lines[0]) || fenceMarker(strings.TrimSpace(lines[0])) != "") {
		units = lines
		sep = "\n"
	} else {
		units = SplitSentences(strings.Join(lines, " "))
	}
	var small []string
	for _, u := range units {
		if wordCount(u) <= maxChunkWords {
			small = append(small, u)
			continue
		}
		words := strings.Fields(u)
		for len(words) > 0 {
			n := min(len(words), maxChunkWords)
			small = append(small, strings.Join(words[:n], " "))
			words = words[n:]
		}
	}
	return packUnits(small, sep, false)
}

// isListItem recognises "- item", "* item", "+ item", "1. item", "1) item".
func isListItem(line string) bool {
	s := strings.TrimLeft(line, " \t")
	if len(s) >= 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+') && (s[1] == ' ' || s[1] == '\t') {
		return true
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 0 && i+1 < len(s) && (s[i] == '.' || s[i] == ')') && (s[i+1] == ' ' || s[i+1] == '\t')
}

// wordCount counts whitespace-separated fields without allocating.
func wordCount(s string) int {
	n := 0
	inWord := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			inWord = false
			continue
		}
		if !inWord {
			n++
			inWord = true
		}
	}
	return n
}

// SplitSentences splits text into trimmed, non-empty sentences. A sentence
// ends at ".", "!" or "?" (with any closing quotes or brackets) followed by
// white space and a character that is not a lowercase letter, so "e.g. the"
// and "1.5" do not end one.
func SplitSentences(text string) []string {
	var out []string
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	start := 0
	i := 0
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if r != '.' && r != '!' && r != '?' {
			continue
		}
		j := i
		for j < len(text) {
			r2, s2 := utf8.DecodeRuneInString(text[j:])
			if !strings.ContainsRune(".!?\"')]”’»", r2) {
				break
			}
			j += s2
		}
		k := j
		for k < len(text) {
			r3, s3 := utf8.DecodeRuneInString(text[k:])
			if !unicode.IsSpace(r3) {
				break
			}
			k += s3
		}
		if k == j && j < len(text) {
			i = j // no white space after the terminator: "1.5", "v1.2.3", "a.md"
			continue
		}
		if k < len(text) {
			if next, _ := utf8.DecodeRuneInString(text[k:]); unicode.IsLower(next) {
				i = j
				continue
			}
		}
		add(text[start:j])
		start = j
		i = j
	}
	add(text[start:])
	return out
}
