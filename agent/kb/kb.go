// Package kb is the offline knowledge-base engine: it answers from the
// passages retrieved for the question, quoting the sentences that match it
// best and naming their document, and says that it does not know when
// nothing was retrieved. It never calls the network and never invents.
package kb

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"parley/agent"
	"parley/agent/knowledge"
)

// Fixed answers.
const (
	// DontKnow is the answer when no passage matches the question.
	DontKnow = "I'm sorry, I don't know the answer to that. I couldn't find it in my documents."
	// Hello answers a greeting, or a reply requested with no question.
	Hello = "Hello! How can I help you today?"
	// Fine answers "how are you?".
	Fine = "I'm doing well, thank you! How can I help you today?"
	// Welcome answers thanks.
	Welcome = "You're welcome! Is there anything else I can help you with?"
	// Anything answers an acknowledgement such as "ok".
	Anything = "Is there anything else I can help you with?"
	// Goodbye answers a farewell.
	Goodbye = "Goodbye, and have a nice day!"
)

// DefaultMaxSentences is the number of sentences an answer quotes when
// Config.MaxSentences is 0.
const DefaultMaxSentences = 3

// maxPassages is how many of the retrieved passages (best first) compete to
// provide the answer.
const maxPassages = 3

// Config configures the engine.
type Config struct {
	// MaxSentences is the most sentences an answer quotes; 0 means
	// DefaultMaxSentences.
	MaxSentences int
	// DeltaDelay is a pause between streamed words, to mimic a speaking
	// pace; 0 streams as fast as emit accepts.
	DeltaDelay time.Duration
}

// Engine is the knowledge-base Responder. It holds no per-conversation
// state and is safe for concurrent use.
type Engine struct {
	maxSentences int
	delay        time.Duration
}

var _ agent.Responder = (*Engine)(nil)

// New returns an engine for cfg. Negative values are treated as 0.
func New(cfg Config) *Engine {
	e := &Engine{maxSentences: cfg.MaxSentences, delay: max(cfg.DeltaDelay, 0)}
	if e.maxSentences <= 0 {
		e.maxSentences = DefaultMaxSentences
	}
	return e
}

// Respond answers the last user message of req.History from req.Passages
// and streams the answer in word-sized deltas (each word with the space that
// follows it). It stops when ctx is cancelled (returning ctx.Err()) or when
// emit fails (returning emit's error). Usage is estimated at about four
// characters per token. req.MaxOutputTokens is not used: answers are short
// by construction (Config.MaxSentences).
func (e *Engine) Respond(ctx context.Context, req *agent.Request, emit func(delta string) error) (agent.Usage, error) {
	usage := agent.Usage{InputTokens: estimateTokens(inputText(req))}
	if err := ctx.Err(); err != nil {
		return usage, err
	}
	answer := e.Answer(req)

	var timer *time.Timer
	if e.delay > 0 {
		timer = time.NewTimer(e.delay)
		defer timer.Stop()
	}
	sent := 0 // bytes of answer emitted
	for sent < len(answer) {
		end := len(answer)
		if i := strings.IndexByte(answer[sent:], ' '); i >= 0 {
			end = sent + i + 1
		}
		err := ctx.Err()
		if err == nil && timer != nil && sent > 0 {
			timer.Reset(e.delay)
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-timer.C:
			}
		}
		if err == nil {
			err = emit(answer[sent:end])
		}
		if err != nil {
			usage.OutputTokens = estimateTokens(answer[:sent])
			return usage, err
		}
		sent = end
	}
	usage.OutputTokens = estimateTokens(answer)
	return usage, nil
}

// Answer returns the full answer Respond streams for req.
func (e *Engine) Answer(req *agent.Request) string {
	question := lastUserText(req.History)
	if reply, ok := smallTalk(question); ok {
		return reply
	}
	if len(req.Passages) == 0 {
		return DontKnow
	}
	qterms := termSet(question)
	if len(qterms) == 0 {
		return DontKnow
	}

	var (
		best       []unit
		bestScore  int
		bestSource string
	)
	for i, p := range req.Passages {
		if i == maxPassages {
			break
		}
		heading, units := parsePassage(p.Text)
		top := 0
		for j := range units {
			context := termSet(heading + "\n" + units[j].context)
			units[j].score = score(qterms, units[j].terms, context)
			top = max(top, units[j].score)
		}
		if top > bestScore {
			best, bestScore, bestSource = units, top, p.Source
		}
	}
	if bestScore == 0 || (bestScore == 1 && len(qterms) > 1) {
		// Nothing matched, or only one of several question terms and only
		// in a heading: too weak to answer from.
		return DontKnow
	}

	// Keep the sentences that score at least half the best, up to
	// maxSentences of them (highest score first, then earliest), in their
	// original order.
	threshold := max(1, (bestScore+1)/2)
	var picked []unit
	for _, u := range best {
		if u.score >= threshold {
			picked = append(picked, u)
		}
	}
	slices.SortStableFunc(picked, func(a, b unit) int { return b.score - a.score })
	picked = picked[:min(len(picked), e.maxSentences)]
	slices.SortFunc(picked, func(a, b unit) int { return a.pos - b.pos })

	parts := make([]string, 0, len(picked)+1)
	for _, u := range picked {
		parts = append(parts, u.text)
	}
	parts = append(parts, "(Source: "+bestSource+")")
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// score rates a sentence for a question: two points per question term in
// the sentence, one per question term found only in its context (the
// section heading above it, or the document's own question it answers),
// which says what the sentence is about.
func score(question, sentence, context map[string]struct{}) int {
	s := 0
	for t := range question {
		if _, ok := sentence[t]; ok {
			s += 2
		} else if _, ok := context[t]; ok {
			s++
		}
	}
	return s
}

func lastUserText(history []agent.Message) string {
	for i := len(history) - 1; i >= 0; i-- {
		if history[i].Role == "user" {
			return history[i].Text
		}
	}
	return ""
}

func inputText(req *agent.Request) string {
	var sb strings.Builder
	sb.WriteString(req.Instructions)
	for _, m := range req.History {
		sb.WriteString(m.Text)
	}
	for _, p := range req.Passages {
		sb.WriteString(p.Text)
	}
	return sb.String()
}

// estimateTokens estimates a token count at about four characters per token.
func estimateTokens(s string) int {
	return (utf8.RuneCountInString(s) + 3) / 4
}

func termSet(text string) map[string]struct{} {
	set := make(map[string]struct{})
	for _, t := range knowledge.Tokenize(text) {
		set[t] = struct{}{}
	}
	return set
}

// unit is a sentence or list item of a passage, ready to be quoted.
type unit struct {
	text    string
	terms   map[string]struct{}
	context string // a question the document asked just before, in the same block
	pos     int
	score   int
}

// parsePassage splits a passage into its heading lines (Markdown headings,
// such as the "# Section > Subsection" trail agent/knowledge puts first) and
// quotable units: the sentences of its paragraphs and its list items, with
// Markdown markup removed. A question the document asks ("Do you ship
// abroad?" in a FAQ) is not quoted; it becomes the context of the units that
// follow it in the same block. Fenced code blocks are left out: they do not
// read well as an answer.
func parsePassage(text string) (heading string, units []unit) {
	var (
		headings []string
		prose    []string
		question string
		inFence  bool
	)
	add := func(s string) {
		s = cleanMarkup(s)
		if s == "" {
			return
		}
		last, _ := utf8.DecodeLastRuneInString(s)
		if last == '?' {
			question = s
			return
		}
		if !strings.ContainsRune(".!:;", last) {
			s += "."
		}
		units = append(units, unit{text: s, terms: termSet(s), context: question, pos: len(units)})
	}
	endProse := func() {
		for _, s := range knowledge.SplitSentences(strings.Join(prose, " ")) {
			add(s)
		}
		prose = prose[:0]
	}
	endBlock := func() {
		endProse()
		question = ""
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"):
			endBlock()
			inFence = !inFence
		case inFence:
		case trimmed == "":
			endBlock()
		case strings.HasPrefix(trimmed, "#"):
			endBlock()
			headings = append(headings, strings.TrimLeft(trimmed, "# "))
		case listItem.MatchString(trimmed):
			endProse()
			prose = append(prose, listItem.ReplaceAllString(trimmed, ""))
			endProse()
		default:
			prose = append(prose, trimmed)
		}
	}
	endBlock()
	return strings.Join(headings, " "), units
}

var (
	listItem  = regexp.MustCompile(`^([-*+]|\d{1,9}[.)])\s+`)
	image     = regexp.MustCompile(`!\[([^\]]*)\]\([^)]*\)`)
	link      = regexp.MustCompile(`\[([^\]]+)\]\([^)]*\)`)
	emphasis  = regexp.MustCompile("\\*\\*|__|`")
	blockQuot = regexp.MustCompile(`^(>\s?)+`)
)

// cleanMarkup removes the Markdown markup that would be read out loud:
// links and images keep their text, emphasis markers and backticks go.
func cleanMarkup(s string) string {
	s = blockQuot.ReplaceAllString(strings.TrimSpace(s), "")
	s = image.ReplaceAllString(s, "$1")
	s = link.ReplaceAllString(s, "$1")
	s = emphasis.ReplaceAllString(s, "")
	return strings.TrimSpace(s)
}

// Small talk is recognised when every word of the message is one of these
// and at least one is not filler.
var (
	helloWords  = wordSet("hi", "hello", "hey", "hiya", "howdy", "greetings", "morning", "afternoon", "evening", "yo")
	thanksWords = wordSet("thanks", "thank", "thx", "ty", "cheers", "appreciated", "appreciate")
	byeWords    = wordSet("bye", "goodbye", "farewell", "cya", "later")
	ackWords    = wordSet("ok", "okay", "alright", "great", "perfect", "cool", "awesome", "understood", "got", "nice", "fine")
	fillerWords = wordSet("good", "you", "there", "so", "much", "very", "a", "lot", "all", "again", "and", "for",
		"the", "your", "help", "that", "thats", "it", "is", "oh", "well", "see", "have", "day", "bot", "assistant",
		"everyone", "folks", "then", "i", "really", "many", "now", "sir", "madam")
	howAreYou = wordSet("how are you", "how are you doing", "how are you today", "how is it going", "hows it going", "how do you do")
)

func wordSet(words ...string) map[string]bool {
	set := make(map[string]bool, len(words))
	for _, w := range words {
		set[w] = true
	}
	return set
}

// smallTalk returns the reply to a greeting, thanks, farewell or
// acknowledgement, and false for anything else. An empty question (a reply
// requested before the user said anything) is answered with Hello.
func smallTalk(question string) (string, bool) {
	words := strings.FieldsFunc(strings.ToLower(question), func(r rune) bool {
		return !unicode.IsLetter(r) && r != '\''
	})
	for i, w := range words {
		words[i] = strings.ReplaceAll(strings.Trim(w, "'"), "'", "")
	}
	words = slices.DeleteFunc(words, func(w string) bool { return w == "" })
	if len(words) == 0 {
		if strings.TrimSpace(question) == "" {
			return Hello, true
		}
		return "", false
	}
	phrase := strings.Join(words, " ")
	if howAreYou[phrase] {
		return Fine, true
	}
	// "hi, how are you?", "hello there, how are you doing?"
	rest := slices.DeleteFunc(slices.Clone(words), func(w string) bool { return helloWords[w] || w == "there" })
	if howAreYou[strings.Join(rest, " ")] {
		return Fine, true
	}
	var hello, thanks, bye, ack bool
	for _, w := range words {
		switch {
		case helloWords[w]:
			hello = true
		case thanksWords[w]:
			thanks = true
		case byeWords[w]:
			bye = true
		case ackWords[w]:
			ack = true
		case fillerWords[w]:
		default:
			return "", false
		}
	}
	switch {
	case bye:
		return Goodbye, true
	case thanks:
		return Welcome, true
	case hello:
		return Hello, true
	case ack:
		return Anything, true
	}
	return "", false
}
