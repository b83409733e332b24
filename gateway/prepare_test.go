package gateway

import (
	"context"
	"slices"
	"testing"
	"time"

	"parley/agent"
	"parley/stt"
)

// preparingRecognizer is a fakeRecognizer that can be prepared: it
// records the configurations it was prepared for.
type preparingRecognizer struct {
	fakeRecognizer
	prepared chan stt.StreamConfig
}

func (p *preparingRecognizer) Prepare(ctx context.Context, cfg stt.StreamConfig) error {
	p.prepared <- cfg
	return nil
}

// TestRecognizerPreparedAtStartup: the gateway has the recognizer do its
// per-agent setup (pocketsphinx: a decoder and the agent's domain language
// model, seconds of CPU) when it starts, once per distinct corpus, instead
// of inside the first utterance's NewStream, where it held back all of that
// utterance's audio until after speech_stopped (first partial ~1-2 s after
// the end of the turn on a fresh server, most visibly on WebRTC calls).
func TestRecognizerPreparedAtStartup(t *testing.T) {
	rec := &preparingRecognizer{fakeRecognizer: fakeRecognizer{text: "x"}, prepared: make(chan stt.StreamConfig, 8)}
	corpus := []string{"Parley is a realtime voice gateway."}
	newHarness(t, &scriptAgent{}, func(o *Options) {
		o.Recognizer = rec
		o.Agents = map[string]*agent.Agent{
			"assistant": {ID: "assistant", Responder: &scriptAgent{}, SpeechCorpus: corpus, Language: "en"},
			"twin":      {ID: "twin", Responder: &scriptAgent{}, SpeechCorpus: slices.Clone(corpus), Language: "en"},
			"plain":     {ID: "plain", Responder: &scriptAgent{}},
		}
	})
	var got []stt.StreamConfig
	timeout := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case cfg := <-rec.prepared:
			got = append(got, cfg)
		case <-timeout:
			t.Fatalf("recognizer prepared for %d configurations, want 2 (no Prepare at startup?)", len(got))
		}
	}
	select {
	case cfg := <-rec.prepared:
		t.Fatalf("prepared again for %+v: the same corpus is prepared once", cfg)
	case <-time.After(100 * time.Millisecond):
	}
	var withCorpus bool
	for _, cfg := range got {
		if slices.Equal(cfg.Corpus, corpus) && cfg.Language == "en" {
			withCorpus = true
		}
	}
	if !withCorpus {
		t.Errorf("prepared %+v, want the agents' corpus among them", got)
	}
	if rec.streams.Load() != 0 {
		t.Errorf("preparing opened %d streams", rec.streams.Load())
	}
}
