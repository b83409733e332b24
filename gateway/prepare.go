package gateway

import (
	"context"
	"time"

	"parley/stt"
)

// recognizerPreparer is a recognizer that can do a stream's one-time setup
// ahead of the first utterance (pocketsphinx: initialize a decoder and load
// the agent's domain language model, together about two seconds of CPU).
// Without it the first utterance of each agent pays that cost inside
// NewStream, before any of its audio reaches the recognizer, so its first
// partial and its final transcript come seconds after speech stopped.
type recognizerPreparer interface {
	Prepare(ctx context.Context, cfg stt.StreamConfig) error
}

// prepareTimeout bounds the recognizer's preparation at startup.
const prepareTimeout = time.Minute

// prepareRecognizer prepares the recognizer for the configured agents (one
// stream configuration per distinct language and corpus), in the
// background from New; it stops early when the server starts draining.
// Failures are only logged: the first utterance then does the setup.
func (s *Server) prepareRecognizer(p recognizerPreparer) {
	defer close(s.prepared)
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	seen := map[string]bool{}
	for _, id := range s.agentIDs() {
		a := s.opts.Agents[id]
		cfg := stt.StreamConfig{Language: a.Language, Corpus: a.SpeechCorpus}
		key := cfg.Language + "\x00" + domainKey(cfg.Corpus)
		if seen[key] {
			continue
		}
		seen[key] = true
		start := time.Now()
		if err := p.Prepare(ctx, cfg); err != nil {
			if ctx.Err() == nil {
				s.log.Warn().Err(err).Str("agent", id).Msg("preparing the speech recognizer failed; the first utterance will do it")
			}
			return
		}
		s.log.Info().Str("agent", id).Dur("took", time.Since(start)).Msg("speech recognizer prepared")
	}
}

// domainKey identifies a corpus (the same strings in the same order).
func domainKey(corpus []string) string {
	n := 0
	for _, c := range corpus {
		n += len(c) + 1
	}
	b := make([]byte, 0, n)
	for _, c := range corpus {
		b = append(b, c...)
		b = append(b, 0)
	}
	return string(b)
}
