// Package agent defines what answers the user: a Responder streams a reply
// to a conversation. Engines live in sub-packages (agent/openai, agent/kb);
// retrieval over an agent's documents lives in agent/knowledge.
package agent

import (
	"context"
	"errors"
)

// Message is one entry of the conversation history.
type Message struct {
	Role string // "user", "assistant" or "system"
	Text string
}

// Passage is a piece of an agent's knowledge retrieved for the current
// question, with the document it came from.
type Passage struct {
	Source string  // document path relative to the knowledge directory
	Text   string  // the chunk text
	Score  float64 // retrieval score, higher is better
}

// Request is everything an engine needs to produce one reply.
type Request struct {
	Instructions    string
	History         []Message // oldest first; the last one is usually the user's question
	Passages        []Passage // grounding retrieved for the last user message, best first
	MaxOutputTokens int       // 0 means the engine's default
}

// Usage counts tokens as the engine reports them (or estimates them).
type Usage struct {
	InputTokens  int
	OutputTokens int
}

// Responder streams one reply. Respond calls emit with each text delta, in
// order, from the calling goroutine, and returns when the reply is complete,
// when emit returns an error (which Respond returns), or when ctx is
// cancelled (it then returns ctx.Err() promptly). Implementations are safe
// for concurrent use by many sessions.
type Responder interface {
	Respond(ctx context.Context, req *Request, emit func(delta string) error) (Usage, error)
}

// Error is an engine failure with a stable code the gateway forwards to the
// client in an `error` event. Message must not contain conversation text.
type Error struct {
	Code      string // e.g. "provider_error", "provider_timeout", "rate_limited"
	Message   string
	Retryable bool
	Err       error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of err if it is (or wraps) an *Error, and
// fallback otherwise.
func ErrorCode(err error, fallback string) string {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return fallback
}

// Retriever finds the passages of an agent's knowledge that best match a
// query. agent/knowledge provides the BM25 implementation.
type Retriever interface {
	Search(query string, k int) []Passage
}

// Agent is a configured agent: who it is and which engine answers for it.
type Agent struct {
	ID           string
	Name         string
	Instructions string
	Greeting     string
	Responder    Responder
	Knowledge    Retriever // nil when the agent has no knowledge directory
	TopK         int       // passages retrieved per question (0 means 4)
	Voice        string    // synthesizer voice for spoken replies ("" for the engine default)
	Language     string    // BCP 47 language of the conversation ("" for the engines' default)
	// SpeechCorpus is text of the agent's domain (its documents) that
	// speech recognizers adapt their language model to.
	SpeechCorpus []string
}
