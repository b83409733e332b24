package media

import (
	"errors"
	"fmt"
	"math"
)

// TurnConfig configures a TurnDetector. Threshold, PrefixPaddingMS and
// SilenceDurationMS are the realtime API's server_vad parameters (defaults
// 0.5, 300 and 500); IdleTimeoutMS is its idle_timeout_ms (0: off). The
// other fields tune the detector and may be left zero for their defaults.
type TurnConfig struct {
	// Threshold is the speech probability, in [0, 1], at or above which a
	// frame counts as voiced. Higher needs louder, clearer speech.
	Threshold float64
	// PrefixPaddingMS is how much audio before the detected onset the
	// utterance includes (and AudioStartMS reports).
	PrefixPaddingMS int
	// SilenceDurationMS is how long speech must stay below the release
	// threshold before the turn ends.
	SilenceDurationMS int
	// IdleTimeoutMS, when positive, makes an armed detector (see ArmIdle)
	// report TurnIdleTimeout after that much audio without speech.
	IdleTimeoutMS int

	// SampleRate of the PCM pushed, Hz (default 16000). Process needs a rate
	// NewVAD supports.
	SampleRate int
	// MinSpeechMS is how much voiced audio the onset window must hold before
	// speech starts (default 80 ms): shorter sounds such as clicks never
	// start a turn.
	MinSpeechMS int
	// OnsetWindowMS is the window over which voiced audio is counted for an
	// onset (default 150 ms, at least MinSpeechMS).
	OnsetWindowMS int
	// ReleaseThreshold is the probability below which a frame counts as
	// silence during speech (default Threshold−0.15, or Threshold/2 when
	// Threshold < 0.3). Frames between the two thresholds extend neither.
	ReleaseThreshold float64
	// MaxReadLagMS bounds how far behind the newest audio the utterance
	// reader may fall before ReadUtterance reports ErrTurnOverrun (default
	// 2000 ms). It sizes the ring buffer together with the prefix and onset
	// window.
	MaxReadLagMS int
}

// TurnDefaultConfig returns server_vad's defaults: threshold 0.5, 300 ms
// prefix padding, 500 ms silence, 16 kHz.
func TurnDefaultConfig() TurnConfig {
	return TurnConfig{Threshold: 0.5, PrefixPaddingMS: 300, SilenceDurationMS: 500, SampleRate: 16000}
}

// TurnEventType says which edge a TurnEvent reports.
type TurnEventType uint8

// Turn event types.
const (
	TurnNone          TurnEventType = iota // nothing happened
	TurnSpeechStarted                      // input_audio_buffer.speech_started
	TurnSpeechStopped                      // input_audio_buffer.speech_stopped
	TurnIdleTimeout                        // input_audio_buffer.timeout_triggered
)

// String returns the event type's name.
func (t TurnEventType) String() string {
	switch t {
	case TurnNone:
		return "none"
	case TurnSpeechStarted:
		return "speech_started"
	case TurnSpeechStopped:
		return "speech_stopped"
	case TurnIdleTimeout:
		return "timeout_triggered"
	}
	return fmt.Sprintf("TurnEventType(%d)", uint8(t))
}

// TurnEvent is an edge reported by TurnDetector.Push. Times are milliseconds
// of audio since the stream began (see SetAudioTimeMS).
type TurnEvent struct {
	Type TurnEventType
	// AudioStartMS, for TurnSpeechStarted, is where the utterance's audio
	// begins: the onset less the prefix padding (the realtime API's
	// audio_start_ms). For TurnIdleTimeout it is when the idle timer was
	// armed.
	AudioStartMS int64
	// SpeechStartMS, for TurnSpeechStarted, is the detected onset: the start
	// of the first voiced frame of the onset window.
	SpeechStartMS int64
	// AudioEndMS, for TurnSpeechStopped, is where the utterance's audio
	// ends, after the trailing silence (the realtime API's audio_end_ms).
	// For TurnIdleTimeout it is when the timeout fired.
	AudioEndMS int64
	// SpeechEndMS, for TurnSpeechStopped, is where the trailing silence
	// began.
	SpeechEndMS int64
}

// ErrTurnOverrun reports that the utterance reader fell more than
// MaxReadLagMS behind the newest audio, so audio was lost.
var ErrTurnOverrun = errors.New("media: turn detector: utterance reader fell behind; audio lost")

// turnOnsetEntry is one pushed frame in the onset history.
type turnOnsetEntry struct {
	end  int64   // stream position after the frame, samples
	n    int32   // samples
	prob float32 // speech probability
}

// Onset backtracking: once speech is confirmed, the reported onset moves
// back over earlier frames at or above the release threshold, across gaps of
// at most turnBacktrackGapMS, up to turnBacktrackMS before the first voiced
// frame of the onset window. In noise the first syllable is often only
// partly above the threshold; this recovers its start.
const (
	turnBacktrackMS    = 400
	turnBacktrackGapMS = 100
)

// TurnDetector turns per-frame speech probabilities into turn edges, the way
// the realtime API's server_vad does: speech starts once the onset window
// holds MinSpeechMS of frames at or above Threshold, and stops once
// SilenceDurationMS of audio has stayed below the release threshold.
//
// It keeps the recent PCM in a ring buffer so that the utterance's audio,
// starting PrefixPaddingMS before the onset, can be streamed to a recognizer
// as it arrives: after TurnSpeechStarted, call ReadUtterance after every
// Push to drain the new audio (the first read returns the prefix too); after
// TurnSpeechStopped one more read drains the rest, up to AudioEndMS.
//
// The gateway maps a session's turn_detection onto it: Threshold,
// PrefixPaddingMS, SilenceDurationMS and IdleTimeoutMS come from
// realtime.TurnDetection; on TurnSpeechStarted it sends
// input_audio_buffer.speech_started with AudioStartMS (and, with
// interrupt_response, cancels the playing response); on TurnSpeechStopped
// it sends speech_stopped with AudioEndMS, commits the utterance and, with
// create_response, asks for a reply; it calls ArmIdle when a reply has
// finished playing and Reset on input_audio_buffer.clear.
//
// Push and Process allocate nothing. A TurnDetector is not safe for
// concurrent use; a session's loop owns it.
type TurnDetector struct {
	cfg     TurnConfig
	rate    int
	release float64
	vad     *VAD

	minSpeech, window, prefix, silence, idle int64 // in samples
	backtrack, backGap                       int64

	ring []int16 // recent audio; sample at stream position p is ring[p%len]
	pos  int64   // stream position: samples pushed
	base int64   // position at which the audio clock reads baseMS
	// baseMS is the audio time at position base.
	baseMS int64
	epoch  int64 // oldest position still valid (after Reset)

	onset    []turnOnsetEntry
	onsetN   int // entries in use
	onsetEnd int // index after the newest entry

	inSpeech     bool
	silent       bool  // a silence run is in progress
	silenceStart int64 // position where it began

	// Utterance audio: [uttStart, uttEnd) once stopped, [uttStart, pos)
	// while in speech; readable while uttOpen.
	uttOpen  bool
	uttStart int64
	uttEnd   int64
	readPos  int64

	idleArmed bool
	idleFrom  int64
}

// NewTurnDetector returns a detector for cfg, with its own VAD for Process.
func NewTurnDetector(cfg TurnConfig) (*TurnDetector, error) {
	if cfg.SampleRate == 0 {
		cfg.SampleRate = 16000
	}
	if cfg.MinSpeechMS == 0 {
		cfg.MinSpeechMS = 80
	}
	if cfg.OnsetWindowMS == 0 {
		cfg.OnsetWindowMS = max(150, cfg.MinSpeechMS)
	}
	if cfg.MaxReadLagMS == 0 {
		cfg.MaxReadLagMS = 2000
	}
	switch {
	case math.IsNaN(cfg.Threshold) || cfg.Threshold < 0 || cfg.Threshold > 1:
		return nil, fmt.Errorf("media: turn threshold %v is not in [0, 1]", cfg.Threshold)
	case cfg.PrefixPaddingMS < 0 || cfg.PrefixPaddingMS > 10000:
		return nil, fmt.Errorf("media: turn prefix padding %d ms is not in [0, 10000]", cfg.PrefixPaddingMS)
	case cfg.SilenceDurationMS < 0 || cfg.SilenceDurationMS > 60000:
		return nil, fmt.Errorf("media: turn silence duration %d ms is not in [0, 60000]", cfg.SilenceDurationMS)
	case cfg.IdleTimeoutMS < 0:
		return nil, fmt.Errorf("media: turn idle timeout %d ms is negative", cfg.IdleTimeoutMS)
	case cfg.SampleRate < 1000 || cfg.SampleRate > 192000:
		return nil, fmt.Errorf("media: turn sample rate %d Hz is not supported", cfg.SampleRate)
	case cfg.MinSpeechMS < 0 || cfg.MinSpeechMS > 2000:
		return nil, fmt.Errorf("media: turn minimum speech %d ms is not in [0, 2000]", cfg.MinSpeechMS)
	case cfg.OnsetWindowMS < cfg.MinSpeechMS || cfg.OnsetWindowMS > 5000:
		return nil, fmt.Errorf("media: turn onset window %d ms is not in [MinSpeechMS, 5000]", cfg.OnsetWindowMS)
	case math.IsNaN(cfg.ReleaseThreshold) || cfg.ReleaseThreshold < 0 || cfg.ReleaseThreshold > cfg.Threshold:
		return nil, fmt.Errorf("media: turn release threshold %v is not in [0, Threshold]", cfg.ReleaseThreshold)
	case cfg.MaxReadLagMS < 0 || cfg.MaxReadLagMS > 60000:
		return nil, fmt.Errorf("media: turn read lag %d ms is not in [0, 60000]", cfg.MaxReadLagMS)
	}
	t := &TurnDetector{cfg: cfg, rate: cfg.SampleRate}
	t.release = cfg.ReleaseThreshold
	if t.release == 0 {
		if cfg.Threshold >= 0.3 {
			t.release = cfg.Threshold - 0.15
		} else {
			t.release = cfg.Threshold / 2
		}
	}
	ms := func(v int) int64 { return int64(v) * int64(t.rate) / 1000 }
	t.minSpeech, t.window = ms(cfg.MinSpeechMS), ms(cfg.OnsetWindowMS)
	t.prefix, t.silence, t.idle = ms(cfg.PrefixPaddingMS), ms(cfg.SilenceDurationMS), ms(cfg.IdleTimeoutMS)
	// The ring holds the prefix, the onset window, the reader's slack and a
	// margin for large frames.
	t.ring = make([]int16, ms(cfg.PrefixPaddingMS+cfg.OnsetWindowMS+cfg.MaxReadLagMS+200))
	// One entry per frame of at least 1 ms covers the onset window and the
	// backtracking span.
	t.onset = make([]turnOnsetEntry, cfg.OnsetWindowMS+turnBacktrackMS+2)
	t.backtrack, t.backGap = ms(turnBacktrackMS), ms(turnBacktrackGapMS)
	if v, err := NewVAD(t.rate); err == nil {
		t.vad = v
	}
	return t, nil
}

// Config returns the configuration in use, defaults filled in.
func (t *TurnDetector) Config() TurnConfig { return t.cfg }

// VAD returns the detector's own VAD (nil when the sample rate is one NewVAD
// does not support), for callers that want the probability too.
func (t *TurnDetector) VAD() *VAD { return t.vad }

// InSpeech reports whether speech has started and not yet stopped.
func (t *TurnDetector) InSpeech() bool { return t.inSpeech }

// NowMS returns the audio time at the end of the audio pushed so far.
func (t *TurnDetector) NowMS() int64 { return t.msAt(t.pos) }

// SetAudioTimeMS sets the audio clock: the next sample pushed is at ms. Use
// it when turn detection starts partway through a session's audio.
func (t *TurnDetector) SetAudioTimeMS(ms int64) {
	t.base, t.baseMS = t.pos, ms
}

// msAt converts a stream position to audio milliseconds.
func (t *TurnDetector) msAt(p int64) int64 {
	return t.baseMS + (p-t.base)*1000/int64(t.rate)
}

// Reset ends any speech without an event, drops the buffered audio and the
// utterance, disarms the idle timer and resets the VAD, as for
// input_audio_buffer.clear or a manual commit. The audio clock runs on.
func (t *TurnDetector) Reset() {
	t.epoch = t.pos
	t.onsetN, t.onsetEnd = 0, 0
	t.inSpeech, t.silent = false, false
	t.uttOpen = false
	t.readPos = t.pos
	t.idleArmed = false
	if t.vad != nil {
		t.vad.Reset()
	}
}

// ArmIdle starts the idle timer: unless speech starts first, Push reports
// TurnIdleTimeout once IdleTimeoutMS of audio has passed. The gateway arms
// it when the assistant's reply has finished playing. It does nothing when
// IdleTimeoutMS is 0 or during speech.
func (t *TurnDetector) ArmIdle() {
	if t.idle > 0 && !t.inSpeech {
		t.idleArmed, t.idleFrom = true, t.pos
	}
}

// DisarmIdle stops the idle timer.
func (t *TurnDetector) DisarmIdle() { t.idleArmed = false }

// Process runs frame through the detector's own VAD and pushes it with the
// resulting probability. Frames should be 10 ms (VAD.FrameSize); see
// VAD.Process for other lengths. Without a VAD (unsupported sample rate) it
// pushes the frame as silence.
func (t *TurnDetector) Process(frame []int16) TurnEvent {
	p := 0.0
	if t.vad != nil {
		p = t.vad.Process(frame)
	}
	return t.Push(frame, p)
}

// Push appends one frame of PCM whose speech probability is prob and
// returns the edge it causes, if any. Frames may be of any length (10 or
// 20 ms typically); the audio clock advances by the frame's duration.
// Probabilities outside [0, 1] are clamped (NaN counts as 0).
func (t *TurnDetector) Push(frame []int16, prob float64) TurnEvent {
	n := int64(len(frame))
	if n == 0 {
		return TurnEvent{}
	}
	t.write(frame)
	start := t.pos
	t.pos += n
	if !(prob >= 0) {
		prob = 0
	}
	voiced := prob >= t.cfg.Threshold

	if !t.inSpeech {
		t.addOnset(n, prob)
		if voiced {
			if onset, ok := t.onsetReady(); ok {
				return t.startSpeech(onset)
			}
		}
		if t.idleArmed && t.pos-t.idleFrom >= t.idle {
			t.idleArmed = false
			return TurnEvent{Type: TurnIdleTimeout, AudioStartMS: t.msAt(t.idleFrom), AudioEndMS: t.msAt(t.pos)}
		}
		return TurnEvent{}
	}

	switch {
	case voiced:
		t.silent = false
	case prob < t.release && !t.silent:
		t.silent, t.silenceStart = true, start
	}
	if t.silent && t.pos-t.silenceStart >= t.silence {
		t.inSpeech, t.silent = false, false
		t.uttEnd = t.pos
		t.onsetN, t.onsetEnd = 0, 0
		return TurnEvent{Type: TurnSpeechStopped, AudioEndMS: t.msAt(t.pos), SpeechEndMS: t.msAt(t.silenceStart)}
	}
	return TurnEvent{}
}

// startSpeech opens an utterance at onset (a stream position).
func (t *TurnDetector) startSpeech(onset int64) TurnEvent {
	t.inSpeech, t.silent = true, false
	t.idleArmed = false
	st := max(onset-t.prefix, t.epoch, t.pos-int64(len(t.ring)), 0)
	t.uttOpen, t.uttStart, t.readPos = true, st, st
	return TurnEvent{Type: TurnSpeechStarted, AudioStartMS: t.msAt(st), SpeechStartMS: t.msAt(onset)}
}

// write copies frame into the ring at the current position (only its last
// len(ring) samples when it is longer than the ring).
func (t *TurnDetector) write(frame []int16) {
	size := int64(len(t.ring))
	p := t.pos
	if int64(len(frame)) > size {
		skip := int64(len(frame)) - size
		frame = frame[skip:]
		p += skip
	}
	for len(frame) > 0 {
		c := copy(t.ring[p%size:], frame)
		frame = frame[c:]
		p += int64(c)
	}
}

// UtteranceOpen reports whether an utterance is readable: from
// TurnSpeechStarted until the next one, or until Reset. After
// TurnSpeechStopped it stays readable up to its AudioEndMS.
func (t *TurnDetector) UtteranceOpen() bool { return t.uttOpen }

// uttLimit is the end of the readable utterance audio.
func (t *TurnDetector) uttLimit() int64 {
	if t.inSpeech {
		return t.pos
	}
	return t.uttEnd
}

// UtterancePending returns how many samples of the utterance ReadUtterance
// would return now.
func (t *TurnDetector) UtterancePending() int {
	if !t.uttOpen {
		return 0
	}
	from := max(t.readPos, t.pos-int64(len(t.ring)))
	return int(max(t.uttLimit()-from, 0))
}

// ReadUtterance copies the utterance audio not read yet into dst, oldest
// first, and returns how many samples it copied. The first read after
// TurnSpeechStarted begins with the prefix padding. When the reader has
// fallen so far behind that audio was overwritten, it skips to the oldest
// audio still buffered and returns 0, ErrTurnOverrun; the next read goes on
// from there. Unread audio of an utterance is dropped when the next one
// starts.
func (t *TurnDetector) ReadUtterance(dst []int16) (int, error) {
	if !t.uttOpen {
		return 0, nil
	}
	if oldest := t.pos - int64(len(t.ring)); t.readPos < oldest {
		t.readPos = oldest
		return 0, ErrTurnOverrun
	}
	n := min(int64(len(dst)), max(t.uttLimit()-t.readPos, 0))
	t.copyOut(dst[:n], t.readPos)
	t.readPos += n
	return int(n), nil
}

// UtteranceAudio appends the whole utterance so far (or, once stopped, up to
// its AudioEndMS) to dst, without moving the read position. It returns
// ErrTurnOverrun, and dst unchanged, when the utterance's start is no longer
// buffered (utterances longer than about MaxReadLagMS).
func (t *TurnDetector) UtteranceAudio(dst []int16) ([]int16, error) {
	if !t.uttOpen {
		return dst, nil
	}
	if t.uttStart < t.pos-int64(len(t.ring)) {
		return dst, ErrTurnOverrun
	}
	n := int(max(t.uttLimit()-t.uttStart, 0))
	l := len(dst)
	dst = append(dst, make([]int16, n)...)
	t.copyOut(dst[l:], t.uttStart)
	return dst, nil
}

// copyOut copies len(dst) samples starting at stream position p from the
// ring; the caller ensures they are still buffered.
func (t *TurnDetector) copyOut(dst []int16, p int64) {
	size := int64(len(t.ring))
	for len(dst) > 0 {
		c := copy(dst, t.ring[p%size:])
		dst = dst[c:]
		p += int64(c)
	}
}

// addOnset records a frame in the onset window.
func (t *TurnDetector) addOnset(n int64, prob float64) {
	if t.onsetN < len(t.onset) {
		t.onsetN++
	}
	t.onset[t.onsetEnd] = turnOnsetEntry{end: t.pos, n: int32(min(n, math.MaxInt32)), prob: float32(min(prob, 1))}
	t.onsetEnd++
	if t.onsetEnd == len(t.onset) {
		t.onsetEnd = 0
	}
}

// onsetReady reports whether the onset window holds MinSpeechMS of voiced
// audio, and if so the onset: where its first voiced frame starts, moved
// back over nearby weaker frames (see turnBacktrackMS).
func (t *TurnDetector) onsetReady() (int64, bool) {
	var voiced int64
	first := int64(-1)
	from := t.pos - t.window
	th := float32(t.cfg.Threshold)
	i := t.onsetEnd
	k := 0
	for ; k < t.onsetN; k++ {
		if i--; i < 0 {
			i = len(t.onset) - 1
		}
		e := t.onset[i]
		if e.end <= from || e.end <= t.epoch {
			break
		}
		if e.prob >= th {
			voiced += int64(e.n)
			first = e.end - int64(e.n)
		}
	}
	if first < 0 || voiced < max(t.minSpeech, 1) {
		return 0, false
	}
	// Backtrack from the oldest entry not yet examined (i is the entry that
	// ended the scan, when k < onsetN).
	rel := float32(t.release)
	limit := max(first-t.backtrack, t.epoch)
	for ; k < t.onsetN; k++ {
		e := t.onset[i]
		if e.end <= limit {
			break
		}
		if e.prob >= rel && e.prob > 0 {
			if first-e.end > t.backGap {
				break
			}
			first = max(e.end-int64(e.n), limit)
		}
		if i--; i < 0 {
			i = len(t.onset) - 1
		}
	}
	return max(first, t.epoch), true
}
