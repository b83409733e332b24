package gateway

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"parley/stt"
	"parley/tts"
)

// fakeRecognizer is an stt.Recognizer test fake: every utterance is
// transcribed as text, with a partial result halfway.
type fakeRecognizer struct {
	text    string
	fail    error
	hang    bool // Final waits for its context
	streams atomic.Int32
	mu      sync.Mutex
	samples []int // samples received per stream
}

func (f *fakeRecognizer) SampleRate() int { return PipelineRate }

func (f *fakeRecognizer) NewStream(ctx context.Context, cfg stt.StreamConfig) (stt.Stream, error) {
	f.streams.Add(1)
	return &fakeStream{f: f}, nil
}

type fakeStream struct {
	f *fakeRecognizer
	n int
}

func (s *fakeStream) Write(pcm []int16) error { s.n += len(pcm); return nil }
func (s *fakeStream) Partial() string {
	if s.n > PipelineRate/2 {
		return "what"
	}
	return ""
}
func (s *fakeStream) Final(ctx context.Context) (string, error) {
	s.f.mu.Lock()
	s.f.samples = append(s.f.samples, s.n)
	s.f.mu.Unlock()
	if s.f.hang {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if s.f.fail != nil {
		return "", s.f.fail
	}
	return s.f.text, nil
}
func (s *fakeStream) Close() error { return nil }

// toneSynth is a tts.Synthesizer test fake: each character of text is
// 10 ms of a 440 Hz tone at 24 kHz, delivered in 20 ms chunks, optionally
// paced in real time.
type toneSynth struct {
	realtime bool
	fail     error
	calls    atomic.Int32
}

func (t *toneSynth) SampleRate() int { return 24000 }

func (t *toneSynth) Synthesize(ctx context.Context, req tts.Request, emit func([]int16) error) error {
	t.calls.Add(1)
	if t.fail != nil {
		return t.fail
	}
	total := len(req.Text) * 240
	buf := make([]int16, 480)
	for i := 0; i < total; i += len(buf) {
		for j := range buf {
			buf[j] = int16(8000 * math.Sin(2*math.Pi*440*float64(i+j)/24000))
		}
		if t.realtime {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(buf); err != nil {
			return err
		}
	}
	return nil
}
