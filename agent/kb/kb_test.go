package kb

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/agent"
	"parley/agent/knowledge"
)

func ask(question string, passages ...agent.Passage) *agent.Request {
	return &agent.Request{
		Instructions: "You are the shop assistant.",
		History: []agent.Message{
			{Role: "assistant", Text: "Welcome to Brightleaf!"},
			{Role: "user", Text: question},
		},
		Passages: passages,
	}
}

// collect runs Respond and returns the concatenated deltas.
func collect(t *testing.T, e *Engine, req *agent.Request) (string, []string, agent.Usage) {
	t.Helper()
	var deltas []string
	usage, err := e.Respond(context.Background(), req, func(d string) error {
		deltas = append(deltas, d)
		return nil
	})
	if err != nil {
		t.Fatalf("Respond: %v", err)
	}
	return strings.Join(deltas, ""), deltas, usage
}

func TestRespondGrounded(t *testing.T) {
	ix, err := knowledge.Load("../../testdata/knowledge")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		question string
		source   string
		facts    []string // all must appear
		absent   []string // none may appear
	}{
		{
			question: "How do I get a refund?",
			source:   "policies/refunds.md",
			facts:    []string{"within 30 days of delivery"},
		},
		{
			question: "When are you open on Sunday?",
			source:   "opening-hours.md",
			facts:    []string{"Sunday from noon to 5 pm"},
			absent:   []string{"tasting bar"}, // only the matching sentence
		},
		{
			question: "How much does shipping cost?",
			source:   "shipping.md",
			facts:    []string{"free for orders over 40 euros", "4.95 euros"},
		},
		{
			question: "How much is the tea subscription?",
			source:   "pricing.md",
			facts:    []string{"19 euros per month"},
		},
		{
			question: "Do you accept PayPal?",
			source:   "faq.txt",
			facts:    []string{"We accept Visa, Mastercard, iDEAL and PayPal"},
		},
		{
			// The FAQ's own question is context, not the answer.
			question: "Do you have caffeine free tea?",
			source:   "faq.txt",
			facts:    []string{"contain no caffeine"},
			absent:   []string{"?", "PayPal"},
		},
	}
	e := New(Config{})
	for _, tt := range tests {
		t.Run(tt.question, func(t *testing.T) {
			req := ask(tt.question, ix.Search(tt.question, 4)...)
			got, deltas, usage := collect(t, e, req)
			if !strings.HasSuffix(got, "(Source: "+tt.source+")") {
				t.Errorf("answer %q does not name %s", got, tt.source)
			}
			for _, f := range tt.facts {
				if !strings.Contains(got, f) {
					t.Errorf("answer %q lacks %q", got, f)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("answer %q contains %q", got, a)
				}
			}
			if n := len(knowledge.SplitSentences(strings.TrimSuffix(got, "(Source: "+tt.source+")"))); n < 1 || n > DefaultMaxSentences {
				t.Errorf("answer has %d sentences", n)
			}
			if got != e.Answer(req) {
				t.Errorf("streamed %q, Answer %q", got, e.Answer(req))
			}
			for i, d := range deltas {
				if strings.TrimSpace(d) == "" || strings.Count(strings.TrimSpace(d), " ") > 0 ||
					(i < len(deltas)-1 && !strings.HasSuffix(d, " ")) {
					t.Errorf("delta %d %q is not one word and its space", i, d)
				}
			}
			if usage.InputTokens <= 0 || usage.OutputTokens != (len([]rune(got))+3)/4 {
				t.Errorf("usage = %+v for %d runes", usage, len([]rune(got)))
			}
		})
	}
}

func TestRespondSentenceSelection(t *testing.T) {
	p := agent.Passage{
		Source: "guide.md",
		Text: "# Guide > Parking\n\n" +
			"The car park is behind the **building**. It is free for customers.\n" +
			"Bicycles can be left at the [front door](https://example.com/door).\n\n" +
			"- Electric cars can charge at two stations\n" +
			"- Parking for buses is not available\n\n" +
			"```\n# code is never quoted\n```",
		Score: 3,
	}
	tests := []struct {
		question string
		max      int
		want     string
	}{
		{"Where can I charge my electric car?", 0,
			"Electric cars can charge at two stations. (Source: guide.md)"},
		{"Can I park my bicycle?", 0,
			// "Bicycles" and "bicycle" meet, and "park" counts for every
			// sentence under the "Parking" heading; sentences scoring at
			// least half the best are kept, in their original order.
			"The car park is behind the building. Bicycles can be left at the front door. Parking for buses is not available. (Source: guide.md)"},
		{"Can I park my bicycle?", 1,
			"Bicycles can be left at the front door. (Source: guide.md)"},
		{"Is there parking for buses?", 0,
			"The car park is behind the building. Parking for buses is not available. (Source: guide.md)"},
		{"Is there parking for buses?", 1,
			"Parking for buses is not available. (Source: guide.md)"},
	}
	for _, tt := range tests {
		got := New(Config{MaxSentences: tt.max}).Answer(ask(tt.question, p))
		if got != tt.want {
			t.Errorf("Answer(%q, max %d)\n got  %q\n want %q", tt.question, tt.max, got, tt.want)
		}
	}
}

func TestRespondPicksPassageWithMatchingSentence(t *testing.T) {
	// The first passage matched only weakly; the second has the sentence.
	req := ask("What is the return address?",
		agent.Passage{Source: "a.md", Text: "# Returns\n\nWe are happy to help.", Score: 2},
		agent.Passage{Source: "b.md", Text: "# Contact\n\nThe return address is Oudegracht 112, Utrecht.", Score: 1.5},
	)
	got := New(Config{}).Answer(req)
	if got != "The return address is Oudegracht 112, Utrecht. (Source: b.md)" {
		t.Errorf("Answer = %q", got)
	}
}

func TestRespondDontKnow(t *testing.T) {
	e := New(Config{})
	tests := []struct {
		name string
		req  *agent.Request
	}{
		{"no passages", ask("What is the meaning of life?")},
		{"no sentence matches", ask("Who is the CEO?", agent.Passage{Source: "x.md", Text: "Tea is good.", Score: 1})},
		{"question of stop words only", ask("What is it?", agent.Passage{Source: "x.md", Text: "Tea is good.", Score: 1})},
		{"one of several terms, only in a heading", ask("Who delivers the parcels?", agent.Passage{Source: "x.md", Text: "# Parcels\n\nWe use recycled boxes.", Score: 1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, _ := collect(t, e, tt.req)
			if got != DontKnow {
				t.Errorf("got %q, want DontKnow", got)
			}
		})
	}
}

func TestRespondSmallTalk(t *testing.T) {
	tea := agent.Passage{Source: "x.md", Text: "Hello tea lovers, thanks for visiting.", Score: 1}
	tests := []struct{ message, want string }{
		{"hi", Hello},
		{"Hello!", Hello},
		{"Good morning", Hello},
		{"hey there", Hello},
		{"How are you?", Fine},
		{"Hi, how are you doing?", Fine},
		{"thanks", Welcome},
		{"Thank you so much for your help!", Welcome},
		{"ok great", Anything},
		{"bye", Goodbye},
		{"Thanks, goodbye!", Goodbye},
		{"", Hello},
	}
	e := New(Config{})
	for _, tt := range tests {
		// Passages are ignored for small talk, even when retrieval matched.
		if got := e.Answer(ask(tt.message, tea)); got != tt.want {
			t.Errorf("Answer(%q) = %q, want %q", tt.message, got, tt.want)
		}
	}
	// A greeting followed by a question is a question.
	if got := e.Answer(ask("Hi, do you sell tea?")); got != DontKnow {
		t.Errorf("greeting with question = %q", got)
	}
	// No user message at all.
	if got := e.Answer(&agent.Request{}); got != Hello {
		t.Errorf("empty request = %q", got)
	}
}

func TestRespondCancel(t *testing.T) {
	p := agent.Passage{Source: "x.md", Text: "The shop is open every day from nine to five, including public holidays.", Score: 2}
	tests := []struct {
		delay    time.Duration
		cancelAt int // cancel in this emit call
	}{
		{0, 2},
		{time.Hour, 1}, // cancelled while waiting to send the second word
	}
	for _, tt := range tests {
		ctx, cancel := context.WithCancel(context.Background())
		var deltas []string
		start := time.Now()
		_, err := New(Config{DeltaDelay: tt.delay}).Respond(ctx, ask("When is the shop open?", p), func(d string) error {
			deltas = append(deltas, d)
			if len(deltas) == tt.cancelAt {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("delay %v: err = %v, want context.Canceled", tt.delay, err)
		}
		if len(deltas) != tt.cancelAt {
			t.Errorf("delay %v: %d deltas, want %d", tt.delay, len(deltas), tt.cancelAt)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("delay %v: cancel not prompt", tt.delay)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(Config{}).Respond(ctx, ask("hi"), func(string) error {
		t.Error("emit called after cancel")
		return nil
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled before start: err = %v", err)
	}
}

func TestRespondEmitError(t *testing.T) {
	errGone := errors.New("client gone")
	calls := 0
	usage, err := New(Config{}).Respond(context.Background(), ask("hello"), func(string) error {
		calls++
		if calls == 3 {
			return errGone
		}
		return nil
	})
	if err != errGone {
		t.Errorf("err = %v, want the emit error", err)
	}
	if calls != 3 {
		t.Errorf("emit called %d times", calls)
	}
	if want := estimateTokens("Hello! How "); usage.OutputTokens != want {
		t.Errorf("output tokens = %d, want %d for the words sent", usage.OutputTokens, want)
	}
}

func TestRespondPacing(t *testing.T) {
	start := time.Now()
	got, deltas, _ := collect(t, New(Config{DeltaDelay: 5 * time.Millisecond}), ask("thanks"))
	if got != Welcome {
		t.Fatalf("got %q", got)
	}
	if min := time.Duration(len(deltas)-1) * 5 * time.Millisecond; time.Since(start) < min {
		t.Errorf("paced stream took %v, want at least %v", time.Since(start), min)
	}
}

func TestRespondConcurrent(t *testing.T) {
	ix, err := knowledge.Load("../../testdata/knowledge")
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{})
	want := e.Answer(ask("How much does shipping cost?", ix.Search("How much does shipping cost?", 4)...))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				req := ask("How much does shipping cost?", ix.Search("How much does shipping cost?", 4)...)
				var sb strings.Builder
				if _, err := e.Respond(context.Background(), req, func(d string) error {
					sb.WriteString(d)
					return nil
				}); err != nil || sb.String() != want {
					t.Errorf("concurrent answer %q, %v", sb.String(), err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAssistantKnowledge(t *testing.T) {
	ix, err := knowledge.Load("../../configs/knowledge/assistant")
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{})
	tests := []struct{ question, fact string }{
		{"What is Parley?", "self-hosted gateway"},
		{"How long are transcripts kept?", "90 days"},
		{"How do I start it?", "make run"},
		{"What is the WebSocket URL?", "ws://localhost:8080/v1/realtime?model=assistant"},
		{"How do I add documents to an agent?", "knowledge directory"},
		{"Which environment variables override the configuration?", "PARLEY_"},
	}
	for _, tt := range tests {
		got := e.Answer(ask(tt.question, ix.Search(tt.question, 4)...))
		if !strings.Contains(got, tt.fact) || !strings.Contains(got, "(Source: ") {
			t.Errorf("Answer(%q) = %q, want %q and a source", tt.question, got, tt.fact)
		}
	}
}
