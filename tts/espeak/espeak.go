// Package espeak is the offline text-to-speech engine: libespeak-ng (the
// 1.51 library Debian ships) through cgo, entirely in memory: no audio
// device, no temporary file, no subprocess.
//
// Concurrency is one synthesis per process. libespeak-ng keeps its state
// in globals and is not thread-safe, so the package owns a single instance:
// one worker goroutine, locked to its OS thread, initializes it on first
// use (espeak_Initialize with AUDIO_OUTPUT_SYNCHRONOUS) and runs
// syntheses one after another; every Engine shares it. That costs little:
// libespeak-ng is a formant synthesizer and produces speech hundreds of
// times faster than real time (a sentence takes a few milliseconds), and
// the worker never waits for a caller's emit. It copies each buffer
// libespeak-ng produces into a pooled Go chunk and queues it to the
// calling goroutine, which calls emit, so a slow consumer delays only
// itself (up to about 12 s of audio queued ahead; past that the worker
// waits for it). Callers waiting for the worker give up as soon as their
// ctx ends.
//
// Audio is 16-bit mono PCM at the rate espeak_Initialize reports (22050
// Hz), delivered in buffers of up to about 50 ms (libespeak-ng's shortest).
// Each text ends with a sentence pause, so texts spoken one after the
// other (sentence by sentence) sound like continuous speech.
package espeak

import (
	"context"
	"fmt"
	"math"
	"strings"

	"parley/tts"
)

// Defaults and bounds of the speaking rate (espeakRATE_NORMAL,
// espeakRATE_MINIMUM, espeakRATE_MAXIMUM).
const (
	DefaultVoice          = "en-us"
	DefaultWordsPerMinute = 175
	MinWordsPerMinute     = 80
	MaxWordsPerMinute     = 450
)

// WorkerTopFunction is the function on top of the stack of the library's
// worker goroutine while it waits for work. The worker lives as long as
// the process, so goroutine leak checks ignore it, e.g.
// goleak.IgnoreTopFunction(espeak.WorkerTopFunction).
const WorkerTopFunction = "parley/tts/espeak.(*library).run"

// Config is the engine's defaults. The zero value means American English
// at 175 words per minute.
type Config struct {
	// Voice is the default voice: a language code ("en-us", "en-gb",
	// "fr", "pt-br"; case and "_" versus "-" do not matter), optionally
	// with a variant ("en-us+f3"). Default "en-us". Engine.Voices lists
	// the names accepted.
	Voice string
	// WordsPerMinute is the speaking rate at Request.Speed 1.0 (default
	// 175, within 80..450).
	WordsPerMinute int
}

// Engine is a libespeak-ng text-to-speech engine; it implements
// tts.Synthesizer and is safe for concurrent use (syntheses run one at a
// time per process, see the package documentation). It needs no Close:
// the library lives as long as the process.
type Engine struct {
	lib   *library
	voice string // resolved default voice
	wpm   int
}

var _ tts.Synthesizer = (*Engine)(nil)

// New validates cfg and returns an Engine, initializing libespeak-ng if
// this is the first Engine of the process. An unknown voice is a
// *tts.Error with code tts.CodeBadVoice; a library that cannot start
// (missing espeak-ng-data) is tts.CodeUnavailable.
func New(cfg Config) (*Engine, error) {
	if cfg.WordsPerMinute == 0 {
		cfg.WordsPerMinute = DefaultWordsPerMinute
	}
	if cfg.WordsPerMinute < MinWordsPerMinute || cfg.WordsPerMinute > MaxWordsPerMinute {
		return nil, fmt.Errorf("espeak: Config.WordsPerMinute %d is outside %d..%d",
			cfg.WordsPerMinute, MinWordsPerMinute, MaxWordsPerMinute)
	}
	if cfg.Voice == "" {
		cfg.Voice = DefaultVoice
	}
	l, err := getLibrary()
	if err != nil {
		return nil, err
	}
	voice, err := l.resolve(cfg.Voice)
	if err != nil {
		return nil, fmt.Errorf("espeak: Config.Voice: %w", err)
	}
	return &Engine{lib: l, voice: voice, wpm: cfg.WordsPerMinute}, nil
}

// SampleRate is the rate libespeak-ng reported at initialization (22050).
func (e *Engine) SampleRate() int { return e.lib.sampleRate }

// Voices lists the voice names Synthesize and Config accept (language
// codes and voice file names, lower case, sorted). Any of them may take a
// "+variant" suffix naming one of libespeak-ng's voice variants ("f3",
// "m2", "klatt", ...).
func (e *Engine) Voices() []string { return append([]string(nil), e.lib.names...) }

// Synthesize speaks req.Text and calls emit, on the calling goroutine,
// with each buffer of PCM in order (see tts.Synthesizer). The voice is
// req.Voice, else req.Language read as a voice name, else the engine's
// default; an unknown one is a *tts.Error coded tts.CodeBadVoice (a
// Language with no voice of its own falls back to its primary subtag:
// "de-AT" speaks "de"). Speed
// scales Config.WordsPerMinute (clamped to 80..450); a negative or
// non-finite Speed is tts.CodeBadRequest. Text that is empty or only
// white space produces no audio and no error.
func (e *Engine) Synthesize(ctx context.Context, req tts.Request, emit func(pcm []int16) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	voice := e.voice
	var err error
	switch {
	case req.Voice != "":
		voice, err = e.lib.resolve(req.Voice)
	case req.Language != "":
		voice, err = e.lib.resolve(req.Language)
		if primary, _, ok := strings.Cut(normalize(req.Language), "-"); err != nil && ok {
			// "de-AT" → "de", "en-Latn-US" → "en".
			if v, perr := e.lib.resolve(primary); perr == nil {
				voice, err = v, nil
			}
		}
	}
	if err != nil {
		return err
	}
	rate, err := e.rate(req.Speed)
	if err != nil {
		return err
	}
	text := cleanText(req.Text)
	if strings.TrimSpace(text) == "" {
		return nil
	}

	j := &job{
		text:   text,
		voice:  voice,
		rate:   rate,
		chunks: make(chan *chunk, queueChunks),
		quit:   make(chan struct{}),
	}
	// However Synthesize ends (done, ctx, emit error or panic), the
	// worker sees quit at its next buffer and stops espeak_Synth.
	defer close(j.quit)
	select {
	case e.lib.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		select {
		case c, ok := <-j.chunks:
			if !ok {
				return j.err // set before the worker closed chunks
			}
			if err := ctx.Err(); err != nil {
				chunkPool.Put(c)
				return err
			}
			err := emit(c.pcm)
			chunkPool.Put(c)
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// rate converts a Request.Speed to words per minute.
func (e *Engine) rate(speed float64) (int, error) {
	if speed == 0 {
		speed = 1
	}
	if speed < 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		return 0, &tts.Error{Code: tts.CodeBadRequest, Message: "espeak-ng: speed must be a positive number"}
	}
	r := math.Round(float64(e.wpm) * speed)
	return int(min(max(r, MinWordsPerMinute), MaxWordsPerMinute)), nil
}

// cleanText makes text safe to hand to C as UTF-8: invalid bytes and NULs
// (which would end the C string early) become spaces.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, " ")
	return strings.ReplaceAll(s, "\x00", " ")
}
