package gateway

import (
	"sync/atomic"
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

	speechEnd time.Time
	silence   time.Duration
}

// written completes the timeline with the moment the first audio reached
// the client (unix nanoseconds).
func (v *voiceLatency) written(at int64) {
	v.firstAudioSent = time.Unix(0, at).Sub(v.speechEnd)
	v.gateway = v.firstAudioSent - v.silence - v.sttFinal - v.agentFirst - v.ttsFirst
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
		speechEnd: u.speechEnd, silence: silence,
	}
	if w := sp.firstWritten.at.Load(); w != 0 {
		v.written(w)
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

// firstWrite is the moment an answer's first audio reached the client
// (the socket, or the call's track), and what waits for it. The answer is
// often done (response.done built) before its first audio is written; the
// voice figures that need the write time are observed then.
type firstWrite struct {
	at   atomic.Int64 // unix nanoseconds; 0 until written
	then atomic.Pointer[func(int64)]
}

// stamp records the first write (later calls change nothing) and runs
// what waits for it.
func (f *firstWrite) stamp(now int64) {
	if f.at.CompareAndSwap(0, now) {
		if fn := f.then.Swap(nil); fn != nil {
			(*fn)(now)
		}
	}
}

// whenWritten runs fn with the write time once it is known: at once if it
// is, else on the writer's goroutine at the write. fn runs at most once;
// never if the audio is never written (dropped by a barge-in).
func (f *firstWrite) whenWritten(fn func(int64)) {
	f.then.Store(&fn)
	if at := f.at.Load(); at != 0 {
		if g := f.then.Swap(nil); g != nil {
			(*g)(at)
		}
	}
}
