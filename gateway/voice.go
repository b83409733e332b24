package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"parley/agent"
	"parley/realtime"
	"parley/stt"
	"parley/tts"
)

// pcmPool holds the 16 kHz chunks handed from the loop to a recognizer
// goroutine.
var pcmPool = sync.Pool{New: func() any { b := make([]int16, 0, 1024); return &b }}

func getPCM() *[]int16 { return pcmPool.Get().(*[]int16) }

func putPCM(b *[]int16) {
	if cap(*b) > 1<<16 {
		return
	}
	*b = (*b)[:0]
	pcmPool.Put(b)
}

// utteranceQueue bounds the audio waiting for a recognizer (in chunks; a
// chunk is one append, typically 20-100 ms). A recognizer that falls this
// far behind fails the transcription instead of growing memory.
const utteranceQueue = 1024

// partialEvery is how much audio passes between partial-result checks.
const partialEvery = PipelineRate * 3 / 10 // 300 ms

// utterance is one user turn of audio on its way through a recognizer.
type utterance struct {
	itemID   string
	audio    chan *[]int16 // closed by the loop at commit
	cancel   context.CancelFunc
	closed   bool
	failed   bool
	samples  int64 // 16 kHz samples sent
	startMS  int64 // audio_start_ms
	endMS    int64 // audio_end_ms
	prevItem *string

	// Latency marks (zero when not reached).
	speechEnd   time.Time     // the audio frame that ended speech arrived
	decided     time.Time     // end of turn decided (speech_stopped sent)
	firstResult time.Time     // first partial transcript
	final       time.Time     // final transcript
	sttFinal    time.Duration // time inside the recognizer's Final
	transcript  string
	done        bool
	// logged is a copy of the turn's audio, kept only when the tenant
	// logs audio (at most maxLoggedAudio samples); it goes to the
	// recorder with the turn.
	logged []int16
}

// sttMsg carries a recognizer's output to the loop.
type sttMsg struct {
	u       *utterance
	delta   string
	final   bool
	text    string
	err     error
	at      time.Time
	engineD time.Duration // time inside Final
}

// runSTT feeds an utterance's audio to a recognizer stream and reports
// partial and final results. It owns the stream; the loop owns u except
// for u.audio, which it only sends on and closes.
func (s *session) runSTT(ctx context.Context, u *utterance, rec stt.Recognizer, cfg stt.StreamConfig) {
	defer s.sttWG.Done()
	defer u.cancel()
	report := func(m sttMsg) {
		m.u, m.at = u, time.Now()
		select {
		case s.sttCh <- m:
		case <-ctx.Done():
		}
	}
	drain := func() {
		for b := range u.audio {
			putPCM(b)
		}
	}
	stream, err := rec.NewStream(ctx, cfg)
	if err != nil {
		drain()
		if ctx.Err() == nil {
			report(sttMsg{final: true, err: err})
		}
		return
	}
	defer stream.Close()
	last, since := "", 0
	var werr error
	for b := range u.audio {
		if werr == nil && ctx.Err() == nil {
			werr = stream.Write(*b)
			since += len(*b)
		}
		putPCM(b)
		if werr == nil && since >= partialEvery {
			since = 0
			if p := stream.Partial(); p != last && strings.HasPrefix(p, last) {
				report(sttMsg{delta: p[len(last):]})
				last = p
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	if werr != nil {
		report(sttMsg{final: true, err: werr})
		return
	}
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, s.srv.opts.EngineTimeout)
	text, err := stream.Final(fctx)
	timedOut := errors.Is(fctx.Err(), context.DeadlineExceeded)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil && timedOut {
		err = &stt.Error{Code: stt.CodeTimeout, Message: "the recognizer did not finish in time", Err: err}
	}
	report(sttMsg{final: true, text: strings.TrimSpace(text), err: err, engineD: time.Since(start)})
}

// audioMsg carries synthesized, encoded audio to the loop.
type audioMsg struct {
	r        *response
	payload  *[]byte // base64 of one delta (WebSocket), or one Opus packet (WebRTC call)
	ms       float64 // its duration
	sentence int     // index of the sentence it belongs to
	endOf    int     // >= 0: sentence endOf is fully synthesized (b64 nil)
	done     bool    // all sentences spoken
	err      error
	at       time.Time
	ttsFirst time.Duration // with the first payload: Synthesize call to first PCM
}

// speaker is the loop's side of one response's synthesis: sentences wait in
// pending until the synthesizer goroutine's channel has room (the loop
// never blocks on it), and the channel is closed once the agent is done
// and everything was handed over.
type speaker struct {
	splitter     *tts.SentenceSplitter
	ch           chan string
	pending      []string
	textDone     bool
	closed       bool
	sentences    []spokenSentence // in order, as synthesized
	audioMS      float64          // audio sent so far
	audioDone    bool
	firstAudio   time.Time
	ttsFirst     time.Duration
	firstWritten firstWrite
	// played, when set (WebRTC calls), reports exactly how much audio the
	// call's player wrote; otherwise playback is assumed to run in real
	// time from firstWritten.
	played func() float64
}

// spokenSentence is a sentence and where its audio ends in the response.
type spokenSentence struct {
	text  string
	endMS float64 // 0 until fully synthesized
}

// pump hands pending sentences to the synthesizer without blocking.
func (sp *speaker) pump() {
	for len(sp.pending) > 0 && !sp.closed {
		select {
		case sp.ch <- sp.pending[0]:
			sp.pending = sp.pending[1:]
		default:
			return
		}
	}
	if sp.textDone && len(sp.pending) == 0 && !sp.closed {
		sp.closed = true
		close(sp.ch)
	}
}

// queue adds a sentence for synthesis.
func (sp *speaker) queue(text string) {
	sp.pending = append(sp.pending, text)
	sp.sentences = append(sp.sentences, spokenSentence{text: text})
}

// heardText is the part of the reply the user has heard by now: audio is
// played from the moment its first delta was written, in real time, up to
// what was sent.
func (sp *speaker) heardText(now time.Time) string {
	if sp.played != nil {
		return textUpTo(sp.sentences, sp.audioMS, sp.played())
	}
	first := sp.firstWritten.at.Load()
	if first == 0 {
		return ""
	}
	played := float64(now.UnixNano()-first) / 1e6
	return textUpTo(sp.sentences, sp.audioMS, played)
}

// textUpTo returns the text spoken in the first playedMS of audio: whole
// sentences whose audio ended by then, and the sentence playing then cut in
// proportion to its audio played (by words). audioMS is the audio
// synthesized so far (the length of a sentence still being synthesized).
func textUpTo(sentences []spokenSentence, audioMS, playedMS float64) string {
	if playedMS > audioMS {
		playedMS = audioMS
	}
	var b strings.Builder
	start := 0.0
	for _, sen := range sentences {
		end := sen.endMS
		if end == 0 {
			end = audioMS
		}
		if sen.endMS > 0 && end <= playedMS {
			b.WriteString(sen.text)
			start = end
			continue
		}
		if playedMS > start && end > start {
			words := strings.Fields(sen.text)
			if n := int(float64(len(words)) * (playedMS - start) / (end - start)); n > 0 {
				if b.Len() > 0 && !strings.HasSuffix(b.String(), " ") {
					b.WriteByte(' ')
				}
				b.WriteString(strings.Join(words[:n], " "))
			}
		}
		break
	}
	return strings.TrimSpace(b.String())
}

// stop closes the channel whatever is pending (the response ended).
func (sp *speaker) stop() {
	sp.pending = nil
	if !sp.closed {
		sp.closed = true
		close(sp.ch)
	}
}

func (s *session) runTTS(ctx context.Context, r *response, syn tts.Synthesizer, enc *outputEncoder, req tts.Request, sentences <-chan string) {
	defer s.ttsWG.Done()
	send := func(m audioMsg) bool {
		m.r, m.at = r, time.Now()
		select {
		case s.audioCh <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	idx := 0
	var synthStart time.Time
	first := true
	call := s.call != nil
	emit := func(payload []byte, ms float64) error {
		var b *[]byte
		if call {
			b = getBuf()
			*b = append((*b)[:0], payload...)
		} else {
			b = b64Of(payload)
		}
		m := audioMsg{payload: b, ms: ms, sentence: idx, endOf: -1}
		if first {
			first = false
			m.ttsFirst = time.Since(synthStart)
		}
		if !send(m) {
			putBuf(b)
			return ctx.Err()
		}
		return nil
	}
	fail := func(err error) {
		send(audioMsg{err: err, endOf: -1})
		for range sentences { // the loop closes it when it ends the response
		}
	}
	for text := range sentences {
		req.Text = text
		synthStart = time.Now()
		sctx, cancel := context.WithTimeout(ctx, s.srv.opts.EngineTimeout)
		err := syn.Synthesize(sctx, req, func(pcm []int16) error { return enc.push(pcm, emit) })
		timedOut := errors.Is(sctx.Err(), context.DeadlineExceeded)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && timedOut {
			err = &tts.Error{Code: tts.CodeTimeout, Message: "the synthesizer did not finish a sentence in time", Err: err}
		}
		if err != nil {
			fail(err)
			return
		}
		if !send(audioMsg{endOf: idx}) {
			return
		}
		idx++
	}
	if err := enc.flush(emit); err != nil {
		if ctx.Err() == nil {
			send(audioMsg{err: err, endOf: -1})
		}
		return
	}
	send(audioMsg{done: true, endOf: -1})
}

// onAudio applies a synthesizer message to the active response.
func (s *session) onAudio(m audioMsg) {
	r := m.r
	if r != s.active || r.finished || r.speaker == nil {
		if m.payload != nil {
			putBuf(m.payload)
		}
		return
	}
	sp := r.speaker
	switch {
	case m.err != nil:
		s.finishResponse(r, realtime.StatusFailed, "", &agent.Error{Code: tts.Code(m.err, "tts_error"), Message: "speech synthesis failed", Err: m.err})
	case m.payload != nil:
		if sp.firstAudio.IsZero() {
			sp.firstAudio = m.at
			sp.ttsFirst = m.ttsFirst
		}
		sp.audioMS += m.ms
		if s.call != nil {
			// The call's player paces it onto the track.
			if !s.call.Play(r.id, *m.payload) && !isClosed(s.call.Done()) {
				s.log.Warn().Str("response_id", r.id).Msg("call playback queue full; audio dropped")
			}
			putBuf(m.payload)
			return
		}
		s.evSeq++
		bp := getBuf()
		*bp = realtime.AppendAudioDelta((*bp)[:0], s.evPrefix, s.evSeq, r.id, r.item.ID, 0, 0, *m.payload)
		putBuf(m.payload)
		_ = s.out.enqueueAudio(bp, r.id, &sp.firstWritten)
	case m.endOf >= 0:
		if m.endOf < len(sp.sentences) {
			sp.sentences[m.endOf].endMS = sp.audioMS
		}
		sp.pump()
	case m.done:
		sp.audioDone = true
		if r.agentDone {
			s.finishResponse(r, realtime.StatusCompleted, "", nil)
		}
	}
}

// bargeIn ends the active response because the user started speaking.
func (s *session) bargeIn() {
	r := s.active
	if r == nil {
		return
	}
	s.srv.metrics.bargeIns.Inc()
	s.finishResponse(r, realtime.StatusCancelled, "turn_detected", nil)
}

// checkVoiceSettings refuses settings the configured engines cannot serve.
func (s *session) checkVoiceSettings() *realtime.Error { return s.srv.checkEngines(s.state) }

// cancelPendingSTT stops recognizers still working on committed turns.
func (s *session) cancelPendingSTT() {
	for _, u := range s.inflight {
		if !u.done {
			u.cancel()
		}
	}
	s.inflight = nil
}

// spokenItem remembers how an assistant item's audio maps to its text, so
// conversation.item.truncate can cut the text at the audio the client says
// it played.
type spokenItem struct {
	sentences []spokenSentence
	audioMS   float64
}

// maxSpokenItems bounds how many recent audio items can be truncated.
const maxSpokenItems = 8

func (s *session) rememberSpoken(itemID string, sp *speaker) {
	if s.spoken == nil {
		s.spoken = map[string]*spokenItem{}
	}
	if len(s.spoken) >= maxSpokenItems {
		for id := range s.spoken { // drop any one; only recent items matter
			delete(s.spoken, id)
			break
		}
	}
	s.spoken[itemID] = &spokenItem{sentences: sp.sentences, audioMS: sp.audioMS}
}

// truncateItem implements conversation.item.truncate for assistant audio.
func (s *session) truncateItem(ev *realtime.ClientEvent) *realtime.Error {
	it, ok := s.byID[ev.ItemID]
	if !ok {
		return realtime.Invalid(realtime.CodeItemNotFound, "item_id", "no item with id %q in this conversation", ev.ItemID)
	}
	sp, ok := s.spoken[ev.ItemID]
	if !ok || it.Role != "assistant" {
		return realtime.Invalid(realtime.CodeInvalidValue, "item_id", "only recent assistant items with audio can be truncated")
	}
	if s.active != nil && s.active.item == it {
		return realtime.Invalid(realtime.CodeInvalidValue, "item_id", "item %q is still being spoken; cancel the response first", ev.ItemID)
	}
	if ev.ContentIndex != 0 {
		return realtime.Invalid(realtime.CodeInvalidValue, "content_index", "the item has one content part (index 0)")
	}
	if float64(ev.AudioEndMS) > sp.audioMS+1 {
		return realtime.Invalid(realtime.CodeInvalidValue, "audio_end_ms", "audio_end_ms %d is past the end of the item's audio (%.0f ms)", ev.AudioEndMS, sp.audioMS)
	}
	s.cutSpoken(it.ID, ev.AudioEndMS)
	return nil
}

// cutSpoken cuts a spoken assistant item's text to its first endMS of
// audio, tells the client, and updates the stored turn.
func (s *session) cutSpoken(itemID string, endMS int) {
	it, sp := s.byID[itemID], s.spoken[itemID]
	if it == nil || sp == nil {
		return
	}
	text := textUpTo(sp.sentences, sp.audioMS, float64(endMS))
	it.Content[0].Transcript = text
	sp.audioMS = float64(endMS)
	s.send(&realtime.ItemTruncatedEvent{Type: realtime.TypeItemTruncated, EventID: s.nextEventID(), ItemID: it.ID,
		ContentIndex: 0, AudioEndMS: endMS})
	if s.convStored {
		s.srv.recorder.submit(s.convID, recordJob{sessionID: s.id, truncate: &truncateJob{
			tenantID: s.principal.TenantID, conversationID: s.convID, itemID: it.ID, text: s.storedText(text), redact: s.policy.Redact}})
	}
}
