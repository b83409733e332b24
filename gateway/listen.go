package gateway

import (
	"context"
	"encoding/base64"
	"time"
	"unsafe"

	"parley/media"
	"parley/realtime"
	"parley/storage"
	"parley/stt"
)

// Limits of the listening path.
const (
	vadFrame = PipelineRate / 100 // 10 ms
	// Audio may arrive faster than real time (clients buffer, replays
	// speed up) but not without bound: after a burst allowance, more than
	// maxAudioSpeed times real time is refused.
	maxAudioSpeed      = 10
	audioBurstMS       = 30_000
	maxUtteranceMS     = 60_000 // a longer turn is committed as it is
	maxAppendMS        = 15_000 // audio in one append (bigger events close with 1009 at the read limit)
	maxAppendDecodedKB = 2048
)

// listener is a session's listening path: decode, resample, VAD, turn
// detection, and the utterance being recognized. The loop owns it.
type listener struct {
	format          realtime.AudioFormat
	dec             *inputDecoder
	turn            *media.TurnDetector // nil when turn_detection is null (manual commits)
	turnCfg         realtime.TurnDetection
	b64             []byte  // decoded base64
	frame           []int16 // samples waiting for a full VAD frame
	chunk           *[]int16
	audioMS         int64 // audio received in this session
	samples         int64
	first           time.Time
	buffered        int64 // samples since the last commit or clear
	utt             *utterance
	speaking        bool
	pendingResponse *realtime.ResponseParams // response.create waiting for a transcript
	pendingAuto     bool
}

// configure (re)builds the path for the session's current settings.
func (s *session) configureListener() *realtime.Error {
	l := s.listen
	in := s.state.Audio.Input
	if s.call == nil && (l.dec == nil || l.format != in.Format) { // a call's audio arrives decoded
		dec, err := newInputDecoder(in.Format)
		if err != nil {
			return &realtime.Error{Type: realtime.ServerError, Code: realtime.CodeInternal, Message: "audio decoder: " + err.Error()}
		}
		l.dec, l.format = dec, in.Format
	}
	td := in.TurnDetection
	switch {
	case td == nil:
		l.turn = nil
	case l.turn == nil || *td != l.turnCfg:
		cfg := media.TurnConfig{Threshold: td.Threshold, PrefixPaddingMS: td.PrefixPaddingMS,
			SilenceDurationMS: td.SilenceDurationMS, SampleRate: PipelineRate}
		if td.IdleTimeoutMS != nil {
			cfg.IdleTimeoutMS = *td.IdleTimeoutMS
		}
		t, err := media.NewTurnDetector(cfg)
		if err != nil {
			return &realtime.Error{Type: realtime.ServerError, Code: realtime.CodeInternal, Message: "turn detection: " + err.Error()}
		}
		t.SetAudioTimeMS(l.audioMS)
		l.turn, l.turnCfg = t, *td
	}
	return nil
}

func (s *session) appendAudio(ev *realtime.ClientEvent, at time.Time) *realtime.Error {
	if s.srv.opts.Recognizer == nil {
		return realtime.Invalid(realtime.CodeUnsupported, "type", "this gateway has no speech recognizer configured; send text items")
	}
	if s.listen == nil {
		s.listen = &listener{}
	}
	l := s.listen
	if err := s.configureListener(); err != nil {
		return err
	}
	n := base64.StdEncoding.DecodedLen(len(ev.Audio))
	if cap(l.b64) < n {
		l.b64 = make([]byte, n)
	}
	// Decode only reads its source: view the string's bytes instead of
	// copying them (this runs for every appended frame).
	src := unsafe.Slice(unsafe.StringData(ev.Audio), len(ev.Audio))
	m, err := base64.StdEncoding.Decode(l.b64[:n], src)
	if err != nil {
		return realtime.Invalid(realtime.CodeInvalidValue, "audio", "audio is not valid base64: %v", err)
	}
	if m == 0 {
		return realtime.Invalid(realtime.CodeInvalidValue, "audio", "audio is empty")
	}
	pcm, rerr := l.dec.decode(l.b64[:m])
	if rerr != nil {
		return rerr
	}
	ms := int64(len(pcm)) * 1000 / PipelineRate
	if ms > maxAppendMS {
		return realtime.Invalid("audio_append_too_large", "audio", "one append carries %d ms of audio; send at most %d ms per append", ms, maxAppendMS)
	}
	return s.ingest(pcm, at)
}

// ingest runs 16 kHz PCM through turn detection into the utterance being
// recognized: appended audio after decoding, a WebRTC call's track as it
// arrives.
func (s *session) ingest(pcm []int16, at time.Time) *realtime.Error {
	l := s.listen
	ms := int64(len(pcm)) * 1000 / PipelineRate
	if l.first.IsZero() {
		l.first = at
	}
	if allowed := at.Sub(l.first).Milliseconds()*maxAudioSpeed + audioBurstMS; l.audioMS+ms > allowed {
		return realtime.Invalid("audio_too_fast", "audio", "audio is arriving faster than %dx real time; this append was dropped", maxAudioSpeed)
	}
	l.audioMS += ms
	l.samples += int64(len(pcm))
	l.buffered += int64(len(pcm))

	// Manual commits: everything appended belongs to the next item.
	if l.turn == nil && l.utt == nil {
		s.startUtterance(l.audioMS - ms)
	}
	l.frame = append(l.frame, pcm...)
	i := 0
	for ; len(l.frame)-i >= vadFrame; i += vadFrame {
		f := l.frame[i : i+vadFrame]
		if l.turn == nil {
			s.feedUtterance(f)
			continue
		}
		ev := l.turn.Process(f)
		switch ev.Type {
		case media.TurnSpeechStarted:
			s.onSpeechStarted(ev.AudioStartMS)
			s.drainTurn()
		case media.TurnSpeechStopped:
			s.drainTurn()
			s.onSpeechStopped(ev.AudioEndMS, at)
		case media.TurnIdleTimeout:
			start, end := ev.AudioStartMS, ev.AudioEndMS
			s.send(&realtime.SpeechEvent{Type: realtime.TypeAudioTimeoutTriggered, EventID: s.nextEventID(),
				AudioStartMS: &start, AudioEndMS: &end, ItemID: s.ids.next("item_")})
		default:
			s.drainTurn()
		}
	}
	l.frame = append(l.frame[:0], l.frame[i:]...)
	s.flushUtterance()
	if u := l.utt; u != nil && u.samples*1000/PipelineRate > maxUtteranceMS {
		s.commitUtterance(l.audioMS, at)
	}
	return nil
}

// drainTurn moves the turn detector's new utterance audio (the prefix
// padding first) into the chunk bound for the recognizer.
func (s *session) drainTurn() {
	l := s.listen
	n := l.turn.UtterancePending()
	if n == 0 || l.utt == nil || l.utt.closed {
		return
	}
	if l.chunk == nil {
		l.chunk = getPCM()
	}
	c := *l.chunk
	if cap(c)-len(c) < n {
		c = append(c, make([]int16, n)...)[:len(c)]
	}
	m, _ := l.turn.ReadUtterance(c[len(c) : len(c)+n])
	*l.chunk = c[:len(c)+m]
}

// feedUtterance adds a frame to the chunk bound for the recognizer.
func (s *session) feedUtterance(f []int16) {
	l := s.listen
	if l.utt == nil || l.utt.closed {
		return
	}
	if l.chunk == nil {
		l.chunk = getPCM()
	}
	*l.chunk = append(*l.chunk, f...)
}

// flushUtterance hands the chunk to the recognizer goroutine.
func (s *session) flushUtterance() {
	l := s.listen
	if l.chunk == nil || len(*l.chunk) == 0 || l.utt == nil || l.utt.closed {
		return
	}
	u := l.utt
	n := len(*l.chunk)
	if s.policy.AudioLogging && len(u.logged) < maxLoggedAudio {
		u.logged = append(u.logged, (*l.chunk)[:min(n, maxLoggedAudio-len(u.logged))]...)
	}
	select {
	case u.audio <- l.chunk: // the recognizer goroutine owns it now
		u.samples += int64(n)
		l.chunk = nil
	default:
		// The recognizer is too far behind: fail this transcription.
		putPCM(l.chunk)
		l.chunk = nil
		u.failed = true
		s.log.Warn().Str("item_id", u.itemID).Msg("recognizer fell behind; transcription failed")
		s.closeUtterance(u)
	}
}

func (s *session) startUtterance(startMS int64) *utterance {
	ctx, cancel := context.WithCancel(context.Background())
	u := &utterance{itemID: s.ids.next("item_"), audio: make(chan *[]int16, utteranceQueue), cancel: cancel, startMS: startMS}
	s.listen.utt = u
	s.inflight = append(s.inflight, u)
	if len(s.inflight) > 64 {
		s.inflight = compactInflight(s.inflight)
	}
	if s.sttCh == nil {
		s.sttCh = make(chan sttMsg, 4)
	}
	s.sttWG.Add(1)
	cfg := stt.StreamConfig{Language: s.agent.Language, Corpus: s.agent.SpeechCorpus}
	if t := s.state.Audio.Input.Transcription; t != nil {
		if t.Language != "" {
			cfg.Language = t.Language
		}
		cfg.Prompt = t.Prompt
	}
	go s.runSTT(ctx, u, s.srv.opts.Recognizer, cfg)
	return u
}

func (s *session) closeUtterance(u *utterance) {
	if !u.closed {
		u.closed = true
		close(u.audio)
	}
}

func (s *session) onSpeechStarted(atMS int64) {
	l := s.listen
	l.speaking = true
	if l.utt != nil { // a manual-mode remainder: commit what came before
		s.commitUtterance(atMS, time.Now())
	}
	u := s.startUtterance(atMS)
	start := atMS
	s.send(&realtime.SpeechEvent{Type: realtime.TypeSpeechStarted, EventID: s.nextEventID(), AudioStartMS: &start, ItemID: u.itemID})
	if l.turnCfg.InterruptResponse {
		if s.active != nil {
			s.bargeIn()
		}
		s.clearPlayback() // a call may still be playing a finished answer
	}
}

func (s *session) onSpeechStopped(atMS int64, at time.Time) {
	l := s.listen
	l.speaking = false
	if l.utt == nil {
		return
	}
	end := atMS
	l.utt.speechEnd = at.Add(-time.Duration(l.turnCfg.SilenceDurationMS) * time.Millisecond)
	s.send(&realtime.SpeechEvent{Type: realtime.TypeSpeechStopped, EventID: s.nextEventID(), AudioEndMS: &end, ItemID: l.utt.itemID})
	l.pendingAuto = l.turnCfg.CreateResponse
	s.commitUtterance(atMS, at)
}

// commitUtterance ends the current utterance's audio: the user item is
// added now and completed when its transcript arrives.
func (s *session) commitUtterance(endMS int64, at time.Time) {
	l := s.listen
	u := l.utt
	if u == nil {
		return
	}
	s.flushUtterance()
	l.utt = nil
	l.buffered = 0
	u.endMS = endMS
	u.decided = at
	s.closeUtterance(u)
	it := &realtime.Item{ID: u.itemID, Object: "realtime.item", Type: realtime.ItemMessage, Status: "completed", Role: "user",
		Content: []realtime.Content{{Type: realtime.ContentInputAudio}}}
	prev := s.insertItem(it, nil)
	u.prevItem = prev
	s.send(&realtime.AudioCommittedEvent{Type: realtime.TypeAudioCommitted, EventID: s.nextEventID(), PreviousItemID: prev, ItemID: u.itemID})
	s.send(&realtime.ItemEvent{Type: realtime.TypeItemAdded, EventID: s.nextEventID(), PreviousItemID: prev, Item: it})
	s.pendingTranscripts++
}

func (s *session) commitAudio() *realtime.Error {
	l := s.listen
	if l == nil || l.utt == nil || (l.buffered == 0 && len(l.frame) == 0) {
		return realtime.Invalid("input_audio_buffer_commit_empty", "", "the input audio buffer is empty: nothing to commit")
	}
	// The partial last frame belongs to the utterance too.
	s.feedUtterance(l.frame)
	l.frame = l.frame[:0]
	l.speaking = false
	if l.turn != nil {
		l.turn.Reset()
		l.turn.SetAudioTimeMS(l.audioMS)
	}
	s.commitUtterance(l.audioMS, time.Now())
	return nil
}

func (s *session) clearAudio() {
	l := s.listen
	if l != nil {
		if u := l.utt; u != nil {
			u.cancel()
			s.closeUtterance(u)
			l.utt = nil
		}
		if l.chunk != nil {
			putPCM(l.chunk)
			l.chunk = nil
		}
		l.frame = l.frame[:0]
		l.buffered = 0
		l.speaking = false
		if l.turn != nil {
			l.turn.Reset()
			l.turn.SetAudioTimeMS(l.audioMS)
		}
	}
	s.send(&realtime.AudioClearedEvent{Type: realtime.TypeAudioCleared, EventID: s.nextEventID()})
}

// onSTT applies a recognizer message.
func (s *session) onSTT(m sttMsg) {
	u := m.u
	if u.done {
		return
	}
	if !m.final {
		if u.firstResult.IsZero() {
			u.firstResult = m.at
		}
		d := m.delta
		s.send(&realtime.TranscriptionEvent{Type: realtime.TypeTranscriptionDelta, EventID: s.nextEventID(), ItemID: u.itemID, Delta: &d})
		return
	}
	u.done = true
	u.final = m.at
	u.sttFinal = m.engineD
	s.pendingTranscripts--
	it := s.byID[u.itemID]
	if m.err != nil || u.failed {
		u.logged = nil // no turn to log it with: the audio does not outlive it
		code := stt.Code(m.err, "stt_error")
		msg := "speech recognition failed"
		if u.failed {
			code, msg = "stt_overloaded", "the recognizer could not keep up with the audio"
		}
		s.srv.metrics.errors.WithLabelValues(code).Inc()
		s.send(&realtime.TranscriptionEvent{Type: realtime.TypeTranscriptionFailed, EventID: s.nextEventID(), ItemID: u.itemID,
			Error: &realtime.Error{Type: "transcription_error", Code: code, Message: msg}})
		if it != nil {
			s.send(&realtime.ItemEvent{Type: realtime.TypeItemDone, EventID: s.nextEventID(), PreviousItemID: u.prevItem, Item: it})
		}
		s.afterTranscript(false)
		return
	}
	u.transcript = m.text
	tr := m.text
	s.send(&realtime.TranscriptionEvent{Type: realtime.TypeTranscriptionCompleted, EventID: s.nextEventID(), ItemID: u.itemID, Transcript: &tr})
	if it != nil {
		it.Content[0].Transcript = m.text
		s.send(&realtime.ItemEvent{Type: realtime.TypeItemDone, EventID: s.nextEventID(), PreviousItemID: u.prevItem, Item: it})
	}
	started := s.convStart.Add(time.Duration(u.startMS) * time.Millisecond)
	if !u.speechEnd.IsZero() {
		started = u.speechEnd.Add(-time.Duration(u.endMS-u.startMS) * time.Millisecond)
	}
	var lat storage.Latency
	if !u.speechEnd.IsZero() {
		since := func(t time.Time) int64 {
			if t.IsZero() {
				return 0
			}
			return t.Sub(u.speechEnd).Milliseconds()
		}
		lat = storage.Latency{EndOfTurnMS: since(u.decided), FirstPartialMS: since(u.firstResult), FinalTranscriptMS: since(u.final)}
	}
	s.persistTurn(u.itemID, storage.RoleUser, m.text, storage.TurnCompleted, started, m.at, lat, u.logged)
	u.logged = nil
	s.lastUtterance = u
	s.afterTranscript(m.text != "")
}

// afterTranscript starts the response that waited for a transcript.
func (s *session) afterTranscript(ok bool) {
	l := s.listen
	if s.pendingTranscripts > 0 || l == nil {
		return
	}
	switch {
	case l.pendingResponse != nil:
		p := l.pendingResponse
		l.pendingResponse = nil
		if err := s.startResponse(p, time.Now()); err != nil {
			s.sendError(err)
		}
	case l.pendingAuto && ok && s.active == nil:
		l.pendingAuto = false
		if err := s.startResponse(nil, time.Now()); err != nil {
			s.sendError(err)
		}
	}
	l.pendingAuto = false
}

func compactInflight(us []*utterance) []*utterance {
	out := us[:0]
	for _, u := range us {
		if !u.done {
			out = append(out, u)
		}
	}
	for i := len(out); i < len(us); i++ {
		us[i] = nil
	}
	return out
}

// listenSilenceMS is the silence the turn detector waits for.
func (s *session) listenSilenceMS() int {
	if s.listen == nil || s.listen.turn == nil {
		return 0
	}
	return s.listen.turnCfg.SilenceDurationMS
}
