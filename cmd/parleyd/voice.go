package main

import (
	"context"
	"fmt"
	"strings"

	"parley/config"
	"parley/stt"
	sttopenai "parley/stt/openai"
	"parley/stt/pocketsphinx"
	"parley/tts"
	"parley/tts/espeak"
	ttsopenai "parley/tts/openai"
)

// BuildVoice constructs the configured recognizer and synthesizer (either
// may be nil when its engine is "none"). close releases them.
func BuildVoice(cfg *config.Config, getenv func(string) string) (rec stt.Recognizer, syn tts.Synthesizer, close func(), err error) {
	v := cfg.Voice
	close = func() {}
	switch v.STTEngine {
	case config.EnginePocketsphinx:
		r, err := pocketsphinx.New(pocketsphinx.Config{ModelDir: v.Pocketsphinx.ModelDir, LM: v.Pocketsphinx.LM,
			Dict: v.Pocketsphinx.Dict, MaxDecoders: v.Pocketsphinx.MaxDecoders})
		if err != nil {
			return nil, nil, close, fmt.Errorf("voice.pocketsphinx: %w", err)
		}
		rec, close = r, func() { _ = r.Close() }
	case config.EngineOpenAI:
		o := v.OpenAISTT
		key := ""
		if o.APIKeyEnv != "" {
			key = getenv(o.APIKeyEnv)
		}
		r, err := sttopenai.New(sttopenai.Config{BaseURL: o.BaseURL, APIKey: key, Model: o.Model,
			Timeout: o.Timeout, MaxConcurrent: o.MaxConcurrent, SampleRate: 16000})
		if err != nil {
			return nil, nil, close, fmt.Errorf("voice.openai_stt: %w", err)
		}
		rec, close = r, func() { _ = r.Close() }
	}
	switch v.TTSEngine {
	case config.EngineEspeak:
		e, err := espeak.New(espeak.Config{Voice: v.Espeak.Voice, WordsPerMinute: v.Espeak.WordsPerMinute})
		if err != nil {
			close()
			return nil, nil, func() {}, fmt.Errorf("voice.espeak: %w", err)
		}
		known := map[string]bool{}
		for _, n := range e.Voices() {
			known[n] = true
		}
		syn = &voiceFallback{Synthesizer: e, known: known}
	case config.EngineOpenAI:
		o := v.OpenAITTS
		key := ""
		if o.APIKeyEnv != "" {
			key = getenv(o.APIKeyEnv)
		}
		e, err := ttsopenai.New(ttsopenai.Config{BaseURL: o.BaseURL, APIKey: key, Model: o.Model, Voice: o.Voice,
			Timeout: o.Timeout, MaxConcurrent: o.MaxConcurrent})
		if err != nil {
			close()
			return nil, nil, func() {}, fmt.Errorf("voice.openai_tts: %w", err)
		}
		syn = e
	}
	return rec, syn, close, nil
}

// voiceFallback lets sessions name voices of other providers (OpenAI's
// "alloy", "marin", ...): a voice espeak-ng does not know speaks with the
// engine's configured default instead of failing the response.
type voiceFallback struct {
	tts.Synthesizer
	known map[string]bool
}

func (v *voiceFallback) Synthesize(ctx context.Context, req tts.Request, emit func([]int16) error) error {
	if req.Voice != "" {
		base, _, _ := strings.Cut(strings.ToLower(req.Voice), "+")
		if !v.known[base] {
			req.Voice = ""
		}
	}
	return v.Synthesizer.Synthesize(ctx, req, emit)
}
