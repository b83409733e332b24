// Package pocketsphinx is the offline speech-to-text engine: CMU
// PocketSphinx (the 0.8+5prealpha library Debian ships) through cgo.
//
// Decoders load an acoustic model, an n-gram language model and a
// pronunciation dictionary: with the Debian en-us model about 90 MB
// resident and 0.3 s of CPU each. A
// Recognizer therefore keeps a pool of initialized decoders, creates them
// lazily up to Config.MaxDecoders, reuses them utterance after utterance,
// and admits at most MaxDecoders streams at once (NewStream waits for a
// free decoder). Everything stays in memory: audio goes straight from the
// caller's slice into the decoder, no file is written, and the library's
// own logging is switched off (it would otherwise print hundreds of lines
// to stderr per decoder).
//
// Cepstral mean normalization: in streaming mode PocketSphinx normalizes
// features with a running mean that starts from the model's built-in
// estimate and adapts only after seconds of speech, so short utterances on
// a channel unlike the training data (another microphone, a codec, a
// synthetic voice) come out badly: 68% word error rate on this package's
// espeak-ng test corpus. Each stream therefore first measures the cepstral
// mean of its first Config.Priming of speech with the decoder's front end,
// starts the utterance with a blend of that and the model's estimate, and
// replays the measured audio: 22% on the same corpus, and on a wider set
// of sentences as good as decoding the whole utterance at once (which
// could give no partial results). Partial results start once priming is
// done. The estimate, like the front end's noise estimate, is reset for
// every utterance, so nothing acoustic carries over between users of a
// pooled decoder and the same audio gives the same transcript on any
// decoder.
package pocketsphinx

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"parley/stt"
)

// Default model paths: the Debian package pocketsphinx-en-us.
const (
	DefaultModelDir = "/usr/share/pocketsphinx/model/en-us/en-us"
	DefaultLM       = "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin"
	DefaultDict     = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"
	// DefaultLanguage is the language of the default model.
	DefaultLanguage = "en-US"
	// DefaultMaxAudio bounds one utterance.
	DefaultMaxAudio = 5 * time.Minute
	// DefaultPriming is the speech measured before decoding starts.
	DefaultPriming = 800 * time.Millisecond
)

// maxPrimeWait bounds the audio buffered while priming: after this much
// audio without enough speech, decoding starts with what was measured.
const maxPrimeWait = 10 * time.Second

// sampleRate is what the en-us acoustic model was trained on.
const sampleRate = 16000

// Config selects the model and sizes the decoder pool. The zero value
// means the Debian en-us model with one decoder per CPU core.
type Config struct {
	// ModelDir is the acoustic model directory (mdef, means, variances,
	// transition_matrices, sendump or mixture_weights, noisedict).
	ModelDir string
	// LM is the n-gram language model (.lm.bin, .lm or .DMP).
	LM string
	// Dict is the pronunciation dictionary.
	Dict string
	// MaxDecoders bounds decoders, hence concurrent streams. Default:
	// runtime.NumCPU() (one decoder keeps one core busy while decoding).
	MaxDecoders int
	// Language is the BCP 47 tag of the model (default "en-US").
	// NewStream rejects a StreamConfig.Language whose primary subtag
	// differs ("en" and "en-GB" are accepted for "en-US").
	Language string
	// MaxAudio bounds one utterance (default 5 minutes); Write beyond it
	// fails with stt.CodeAudioTooLong.
	MaxAudio time.Duration
	// Priming is how much speech (silence does not count) a stream
	// measures for cepstral mean normalization before decoding starts
	// (default 800ms; see the package doc). The model's own estimate
	// weighs as much as Priming of speech. Longer is more accurate but
	// delays the first Partial; negative disables priming (decode from
	// the first sample with the model's estimate: lowest latency, much
	// less accurate on unfamiliar channels).
	Priming time.Duration
}

// Stats is a snapshot of the decoder pool.
type Stats struct {
	Created int // decoders ever initialized
	Live    int // decoders currently allocated (idle + in use)
	Idle    int // decoders waiting in the pool
	InUse   int // streams holding a decoder
}

// Recognizer is a pool of PocketSphinx decoders; it implements
// stt.Recognizer. It is safe for concurrent use.
type Recognizer struct {
	cfg         Config
	maxAudio    int           // samples per utterance
	primeFrames int           // speech frames (10 ms) to measure; 0: no priming
	primeWait   int           // samples buffered at most while priming
	slots       chan struct{} // one token per stream holding a decoder
	done        chan struct{} // closed by Close

	mu      sync.Mutex
	idle    []*decoder
	live    int
	created int
	closed  bool
	// preparing counts Prepare calls holding a decoder, awaiting the
	// NewStream calls waiting for one of those decoders instead of
	// initializing another; prepared is closed (and replaced) whenever a
	// Prepare ends, waking them.
	preparing int
	awaiting  int
	prepared  chan struct{}
}

var _ stt.Recognizer = (*Recognizer)(nil)

// New validates cfg (model files must exist and be readable) and returns a
// Recognizer. No decoder is created until the first NewStream; call Warm
// to pay that cost up front.
func New(cfg Config) (*Recognizer, error) {
	if cfg.ModelDir == "" {
		cfg.ModelDir = DefaultModelDir
	}
	if cfg.LM == "" {
		cfg.LM = DefaultLM
	}
	if cfg.Dict == "" {
		cfg.Dict = DefaultDict
	}
	if cfg.Language == "" {
		cfg.Language = DefaultLanguage
	}
	if cfg.MaxDecoders == 0 {
		cfg.MaxDecoders = runtime.NumCPU()
	}
	if cfg.MaxAudio == 0 {
		cfg.MaxAudio = DefaultMaxAudio
	}
	if cfg.Priming == 0 {
		cfg.Priming = DefaultPriming
	}
	if cfg.MaxDecoders < 0 {
		return nil, fmt.Errorf("pocketsphinx: MaxDecoders %d is negative", cfg.MaxDecoders)
	}
	if cfg.MaxAudio < 0 {
		return nil, fmt.Errorf("pocketsphinx: MaxAudio %v is negative", cfg.MaxAudio)
	}
	if err := validateModel(cfg); err != nil {
		return nil, err
	}
	r := &Recognizer{
		cfg:       cfg,
		maxAudio:  int(cfg.MaxAudio.Seconds() * sampleRate),
		primeWait: int(maxPrimeWait.Seconds() * sampleRate),
		slots:     make(chan struct{}, cfg.MaxDecoders),
		done:      make(chan struct{}),
		prepared:  make(chan struct{}),
	}
	if cfg.Priming > 0 {
		r.primeFrames = max(1, int(cfg.Priming/(10*time.Millisecond)))
	}
	return r, nil
}

// SampleRate is 16000: the en-us model's rate.
func (r *Recognizer) SampleRate() int { return sampleRate }

// Config returns the effective configuration (defaults filled in).
func (r *Recognizer) Config() Config { return r.cfg }

// Stats reports the pool's state.
func (r *Recognizer) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Created: r.created, Live: r.live, Idle: len(r.idle), InUse: r.live - len(r.idle)}
}

// Warm initializes up to n idle decoders now (bounded by MaxDecoders), so
// the first utterances do not pay for loading the model. It stops early
// when ctx ends (between decoders; one initialization is not
// interruptible).
func (r *Recognizer) Warm(ctx context.Context, n int) error {
	n = min(n, r.cfg.MaxDecoders)
	streams := make([]stt.Stream, 0, n)
	defer func() {
		for _, s := range streams {
			s.Close()
		}
	}()
	for range n {
		s, err := r.NewStream(ctx, stt.StreamConfig{})
		if err != nil {
			return err
		}
		streams = append(streams, s)
	}
	return nil
}

// NewStream takes a decoder from the pool (creating one if fewer than
// MaxDecoders exist) and starts an utterance. When all MaxDecoders are in
// use it waits; if ctx ends first it returns an *stt.Error with code
// stt.CodeBusy that wraps ctx.Err(). If ctx is already done on entry it
// returns ctx.Err(). cfg.Prompt is ignored.
func (r *Recognizer) NewStream(ctx context.Context, cfg stt.StreamConfig) (stt.Stream, error) {
	if !sameLanguage(cfg.Language, r.cfg.Language) {
		return nil, &stt.Error{Code: stt.CodeUnsupportedLanguage,
			Message: fmt.Sprintf("pocketsphinx model is %s, stream asked for %q", r.cfg.Language, cfg.Language)}
	}
	if err := r.acquire(ctx); err != nil {
		return nil, err
	}
	d, err := r.take(ctx, true)
	if err != nil {
		<-r.slots
		return nil, err
	}
	if err := r.selectDomain(d, cfg.Corpus); err != nil {
		r.put(d, false)
		return nil, &stt.Error{Code: stt.CodeError, Message: "loading the domain language model", Err: err}
	}
	st := &stream{r: r, d: d, priming: r.primeFrames > 0}
	var err2 error
	if st.priming {
		d.pending = d.pending[:0]
		err2 = d.primeBegin()
	} else {
		err2 = d.start(0)
	}
	if err2 != nil {
		r.put(d, false)
		return nil, &stt.Error{Code: stt.CodeError, Message: "starting utterance", Err: err2}
	}
	return st, nil
}

var errClosedRecognizer = &stt.Error{Code: stt.CodeClosed, Message: "pocketsphinx recognizer closed"}

// acquire takes a slot (a right to hold a decoder), waiting while all
// MaxDecoders are in use: if ctx ends first it returns an *stt.Error with
// code stt.CodeBusy; if ctx is already done, ctx.Err().
func (r *Recognizer) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-r.done:
		return errClosedRecognizer
	case r.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case <-r.done:
		return errClosedRecognizer
	case r.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &stt.Error{Code: stt.CodeBusy,
			Message: fmt.Sprintf("all %d pocketsphinx decoders stayed busy", r.cfg.MaxDecoders),
			Err:     ctx.Err()}
	}
}

// Prepare readies a decoder for streams with cfg ahead of the first
// NewStream: it initializes a decoder if none is idle, loads the language
// model of cfg.Corpus onto it (a domain model takes a second or more to
// load, once per decoder), and returns it to the pool. A NewStream that
// finds no idle decoder while a Prepare runs waits for that decoder rather
// than initialize another one. Prepare waits for a free slot like
// NewStream (see there for the errors when ctx ends first).
func (r *Recognizer) Prepare(ctx context.Context, cfg stt.StreamConfig) error {
	if !sameLanguage(cfg.Language, r.cfg.Language) {
		return &stt.Error{Code: stt.CodeUnsupportedLanguage,
			Message: fmt.Sprintf("pocketsphinx model is %s, asked to prepare %q", r.cfg.Language, cfg.Language)}
	}
	if err := r.acquire(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	r.preparing++
	r.mu.Unlock()
	d, err := r.take(ctx, false)
	if err == nil {
		if err = r.selectDomain(d, cfg.Corpus); err != nil {
			err = &stt.Error{Code: stt.CodeError, Message: "loading the domain language model", Err: err}
		}
	}
	r.mu.Lock()
	keep := d != nil && err == nil && !r.closed
	if keep {
		r.idle = append(r.idle, d)
	} else if d != nil {
		r.live--
	}
	r.preparing--
	close(r.prepared)
	r.prepared = make(chan struct{})
	r.mu.Unlock()
	if d != nil && !keep {
		d.free()
	}
	<-r.slots
	return err
}

// take returns an idle decoder or creates one. The caller holds a slot,
// so at most MaxDecoders decoders ever exist. With waitPrepared, while
// no decoder is idle but a Prepare is running that no other take waits
// for, it waits for that decoder (until ctx ends) instead of creating one.
func (r *Recognizer) take(ctx context.Context, waitPrepared bool) (*decoder, error) {
	r.mu.Lock()
	for waitPrepared && len(r.idle) == 0 && r.preparing > r.awaiting && !r.closed {
		wake := r.prepared
		r.awaiting++
		r.mu.Unlock()
		var err error
		select {
		case <-wake:
		case <-r.done:
		case <-ctx.Done():
			err = &stt.Error{Code: stt.CodeBusy, Message: "waiting for a pocketsphinx decoder being prepared", Err: ctx.Err()}
		}
		r.mu.Lock()
		r.awaiting--
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
	}
	if r.closed {
		r.mu.Unlock()
		return nil, errClosedRecognizer
	}
	if n := len(r.idle); n > 0 {
		d := r.idle[n-1]
		r.idle[n-1] = nil
		r.idle = r.idle[:n-1]
		r.mu.Unlock()
		return d, nil
	}
	r.live++ // reserve before the slow part so Stats counts it
	r.mu.Unlock()

	d, err := newDecoder(r.cfg.ModelDir, r.cfg.LM, r.cfg.Dict)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.live--
		return nil, &stt.Error{Code: stt.CodeUnavailable, Message: "initializing pocketsphinx decoder", Err: err}
	}
	r.created++
	if r.closed {
		r.live--
		d.free()
		return nil, errClosedRecognizer
	}
	return d, nil
}

// put returns d to the pool (or frees it when reusable is false or the
// Recognizer is closed) and releases the caller's slot.
func (r *Recognizer) put(d *decoder, reusable bool) {
	r.mu.Lock()
	keep := reusable && !r.closed
	if keep {
		r.idle = append(r.idle, d)
	} else {
		r.live--
	}
	r.mu.Unlock()
	if !keep {
		d.free()
	}
	<-r.slots
}

// Close frees the idle decoders and makes NewStream fail (waiting callers
// included) with stt.CodeClosed. Decoders held by open streams are freed
// when those streams end. Close is idempotent and always returns nil.
func (r *Recognizer) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	idle := r.idle
	r.idle = nil
	r.live -= len(idle)
	r.mu.Unlock()
	for _, d := range idle {
		d.free()
	}
	return nil
}

// sameLanguage reports whether a requested language tag (possibly "")
// matches the model's: equal primary subtags, case-insensitively.
func sameLanguage(req, model string) bool {
	if req == "" {
		return true
	}
	return strings.EqualFold(primary(req), primary(model))
}

func primary(tag string) string {
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		return tag[:i]
	}
	return tag
}

// stream is one utterance on a pooled decoder.
type stream struct {
	r *Recognizer

	mu       sync.Mutex
	d        *decoder // nil once the decoder went back to the pool
	priming  bool     // measuring CMN; utterance not started yet
	samples  int      // samples written
	finished bool     // Final returned a result
	final    string
	partial  string
	pframes  int // frames searched when partial was computed
}

// Write feeds PCM at 16 kHz. While priming it measures and buffers the
// audio; afterwards it decodes synchronously, so the caller pays the CPU
// cost as audio arrives and Final is quick.
func (s *stream) Write(pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.finished:
		return &stt.Error{Code: stt.CodeClosed, Message: "write after Final"}
	case s.d == nil:
		return &stt.Error{Code: stt.CodeClosed, Message: "write on closed stream"}
	}
	if s.samples+len(pcm) > s.r.maxAudio {
		return &stt.Error{Code: stt.CodeAudioTooLong,
			Message: fmt.Sprintf("utterance longer than %v", s.r.cfg.MaxAudio)}
	}
	s.samples += len(pcm)
	if s.priming {
		n, err := s.d.primeAdd(pcm)
		if err != nil {
			return &stt.Error{Code: stt.CodeError, Message: "measuring audio", Err: err}
		}
		s.d.pending = append(s.d.pending, pcm...)
		if n < s.r.primeFrames && len(s.d.pending) < s.r.primeWait {
			return nil
		}
		return s.startDecoding()
	}
	if err := s.d.process(pcm); err != nil {
		return &stt.Error{Code: stt.CodeError, Message: "decoding audio", Err: err}
	}
	return nil
}

// startDecoding ends priming: it starts the utterance with the measured
// normalization and decodes the buffered audio. Called with s.mu held.
func (s *stream) startDecoding() error {
	s.priming = false
	pending := s.d.pending
	s.d.pending = pending[:0]
	defer clear(pending) // audio does not outlive its use
	if err := s.d.start(s.r.primeFrames); err != nil {
		return &stt.Error{Code: stt.CodeError, Message: "starting utterance", Err: err}
	}
	if err := s.d.process(pending); err != nil {
		return &stt.Error{Code: stt.CodeError, Message: "decoding audio", Err: err}
	}
	return nil
}

// Partial returns the current best hypothesis ("" while priming). It
// re-reads it from the decoder only when new frames were searched since
// the last call; after Final it returns the final transcript, after Close
// "".
func (s *stream) Partial() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return s.final
	}
	if s.d == nil || s.priming {
		return ""
	}
	if n := s.d.frames(); n != s.pframes {
		s.pframes = n
		s.partial = s.d.hyp()
	}
	return s.partial
}

// Final ends the utterance, returns the decoder to the pool and returns
// the transcript (lower-case words separated by single spaces, "" for
// silence). The remaining decoding runs synchronously and is not
// interruptible; ctx is checked before it starts. Calling Final again
// returns the same transcript.
func (s *stream) Final(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return s.final, nil
	}
	if s.d == nil {
		return "", &stt.Error{Code: stt.CodeClosed, Message: "Final on closed stream"}
	}
	if err := ctx.Err(); err != nil {
		return "", stt.ContextError(err, "before final pass")
	}
	if s.priming {
		if err := s.startDecoding(); err != nil {
			s.release(false)
			return "", err
		}
	}
	if err := s.d.end(); err != nil {
		s.release(false)
		return "", &stt.Error{Code: stt.CodeError, Message: "ending utterance", Err: err}
	}
	s.final = s.d.hyp()
	s.finished = true
	s.release(true)
	return s.final, nil
}

// release hands the decoder back to the pool. Called with s.mu held.
func (s *stream) release(reusable bool) {
	d := s.d
	s.d = nil
	s.partial = ""
	clear(d.pending)
	d.pending = d.pending[:0]
	s.r.put(d, reusable)
}

// Close abandons the utterance if Final was not called and returns the
// decoder to the pool. Safe to call more than once and concurrently with
// other methods (it waits for a Write in progress).
func (s *stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d == nil {
		return nil
	}
	if s.priming {
		// No utterance was started: the decoder is ready for reuse.
		s.release(true)
		return nil
	}
	// pocketsphinx cannot abort an utterance: end it (discarding the
	// result) so the decoder can start the next one. If that fails the
	// decoder's state is unknown, so it is freed instead of reused.
	s.release(s.d.end() == nil)
	return nil
}
