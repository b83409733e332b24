// Package fakeengines holds the zero-latency engines the benchmarks put
// behind a real gateway: a recognizer that hears a fixed transcript, a
// synthesizer that speaks a short tone, and an agent with a fixed answer,
// each returning at once. What remains of a voice turn's latency is the
// gateway's.
package fakeengines

import (
	"context"
	"math"

	"parley/agent"
	"parley/gateway"
	"parley/stt"
	"parley/tts"
)

// Transcript is what Recognizer hears by default.
const Transcript = "what is parley"

// Reply is Agent's default answer, in the deltas it emits.
var Reply = []string{"Parley is a gateway. ", "It speaks the ", "realtime protocol."}

// Recognizer returns Text (Transcript when empty) as the final transcript
// of every utterance, at once, and ignores the audio.
type Recognizer struct{ Text string }

// SampleRate is the gateway's pipeline rate: no resampling before it.
func (Recognizer) SampleRate() int { return gateway.PipelineRate }

// NewStream starts an utterance.
func (r Recognizer) NewStream(context.Context, stt.StreamConfig) (stt.Stream, error) {
	t := r.Text
	if t == "" {
		t = Transcript
	}
	return stream(t), nil
}

type stream string

func (stream) Write([]int16) error                     { return nil }
func (stream) Partial() string                         { return "" }
func (s stream) Final(context.Context) (string, error) { return string(s), nil }
func (stream) Close() error                            { return nil }

// SynthRate is Synth's sample rate (the WebSocket audio/pcm output rate:
// no resampling after it).
const SynthRate = 24000

// SamplesPerChar is how much audio Synth makes per character of text
// (10 ms).
const SamplesPerChar = SynthRate / 100

// chunk is what Synth emits at a time (20 ms).
const chunk = SynthRate / 50

// tone is one chunk of a 300 Hz tone (a whole number of periods).
var tone = func() []int16 {
	t := make([]int16, chunk)
	for i := range t {
		t[i] = int16(6000 * math.Sin(2*math.Pi*300*float64(i)/SynthRate))
	}
	return t
}()

// Synth speaks SamplesPerChar of a 300 Hz tone per character of text, in
// 20 ms chunks, at once.
type Synth struct{}

// SampleRate is SynthRate.
func (Synth) SampleRate() int { return SynthRate }

// Synthesize emits the tone for req.Text.
func (Synth) Synthesize(ctx context.Context, req tts.Request, emit func([]int16) error) error {
	for n := len(req.Text) * SamplesPerChar; n > 0; n -= chunk {
		if err := emit(tone[:min(n, chunk)]); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Agent answers every request at once with Deltas (Reply when empty).
type Agent struct{ Deltas []string }

// Respond emits the answer.
func (a Agent) Respond(ctx context.Context, req *agent.Request, emit func(string) error) (agent.Usage, error) {
	ds := a.Deltas
	if len(ds) == 0 {
		ds = Reply
	}
	out := 0
	for _, d := range ds {
		if err := emit(d); err != nil {
			return agent.Usage{}, err
		}
		out += len(d)
	}
	return agent.Usage{InputTokens: 10, OutputTokens: (out + 3) / 4}, nil
}
