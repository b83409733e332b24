package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// voiceLatency is the timeline of one spoken turn and its spoken answer,
// measured from the end of the user's speech.
type voiceLatency struct {
	endOfTurn, firstPartial, finalTranscript, firstToken, firstAudio, firstAudioSent time.Duration
	// Time inside engines: the recognizer's Final, the agent until its
	// first token, the synthesizer until its first audio.
	sttFinal, agentFirst, ttsFirst time.Duration
	// gateway is Parley's own share of speech end → first audio sent:
	// the total minus the turn detector's silence wait and the engines.
	gateway time.Duration
}

// voiceTimeline computes the figures of response r, which answers u, or
// nil when r has no audio or is not the answer to a spoken turn.
func voiceTimeline(u *utterance, r *response, silence time.Duration) *voiceLatency {
	sp := r.speaker
	if u == nil || sp == nil || u.speechEnd.IsZero() {
		return nil
	}
	since := func(t time.Time) time.Duration {
		if t.IsZero() {
			return 0
		}
		return t.Sub(u.speechEnd)
	}
	v := &voiceLatency{
		endOfTurn: since(u.decided), firstPartial: since(u.firstResult), finalTranscript: since(u.final),
		firstToken: since(r.firstTokenAt), firstAudio: since(sp.firstAudio),
		sttFinal: u.sttFinal, agentFirst: r.engineFirst, ttsFirst: sp.ttsFirst,
	}
	if w := sp.firstWritten.Load(); w != 0 {
		v.firstAudioSent = time.Unix(0, w).Sub(u.speechEnd)
		v.gateway = v.firstAudioSent - silence - v.sttFinal - v.agentFirst - v.ttsFirst
	}
	return v
}

func (v *voiceLatency) metadata() map[string]any {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return map[string]any{
		"from_speech_end_ms": map[string]any{
			"end_of_turn": ms(v.endOfTurn), "first_partial": ms(v.firstPartial), "final_transcript": ms(v.finalTranscript),
			"first_token": ms(v.firstToken), "first_audio": ms(v.firstAudio), "first_audio_sent": ms(v.firstAudioSent),
		},
		"engine_ms":  map[string]any{"stt_final": ms(v.sttFinal), "agent_first_token": ms(v.agentFirst), "tts_first_audio": ms(v.ttsFirst)},
		"gateway_ms": ms(v.gateway),
	}
}

// observe records the figures in the voice histograms.
func (v *voiceLatency) observe(h *prometheus.HistogramVec, gw prometheus.Histogram) {
	for _, st := range []struct {
		stage string
		d     time.Duration
	}{{"end_of_turn", v.endOfTurn}, {"first_partial", v.firstPartial}, {"final_transcript", v.finalTranscript},
		{"first_token", v.firstToken}, {"first_audio", v.firstAudio}, {"first_audio_sent", v.firstAudioSent}} {
		if st.d > 0 {
			h.WithLabelValues(st.stage).Observe(st.d.Seconds())
		}
	}
	if v.firstAudioSent > 0 {
		gw.Observe(max(v.gateway, 0).Seconds())
	}
}
