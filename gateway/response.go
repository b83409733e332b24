package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/agent"
	"parley/realtime"
	"parley/storage"
	"parley/tts"
)

// startResponse validates response.create and starts the engine.
func (s *session) startResponse(p *realtime.ResponseParams, at time.Time) *realtime.Error {
	if s.active != nil {
		return realtime.Invalid(realtime.CodeResponseActive, "",
			"conversation already has an active response %s; cancel it or wait for response.done", s.active.id)
	}
	if s.draining {
		return &realtime.Error{Type: realtime.ServerError, Code: realtime.CodeShuttingDown,
			Message: "the server is shutting down; reconnect to continue"}
	}
	if p == nil {
		p = &realtime.ResponseParams{}
	}
	if s.pendingTranscripts > 0 && s.listen != nil {
		// The user's last words are still being transcribed: answer them
		// once the transcript is in.
		if s.listen.pendingResponse != nil {
			return realtime.Invalid(realtime.CodeResponseActive, "", "a response is already waiting for the transcription of the user's audio")
		}
		s.listen.pendingResponse = p
		return nil
	}
	req := &agent.Request{Instructions: s.state.Instructions, MaxOutputTokens: int(s.state.MaxOutputTokens)}
	if p.Instructions != nil {
		req.Instructions = *p.Instructions
	}
	if p.MaxOutputTokens != nil {
		req.MaxOutputTokens = int(*p.MaxOutputTokens)
	}
	inConv := p.Conversation == nil || *p.Conversation == "auto"

	// The context the engine sees: the conversation, or response.input.
	var history []agent.Message
	if p.Input != nil {
		for i, raw := range p.Input {
			param := "response.input[" + strconv.Itoa(i) + "]"
			it, ref, e := realtime.DecodeInputItem(raw, param)
			if e != nil {
				return e
			}
			if ref != "" {
				if it = s.byID[ref]; it == nil {
					return realtime.Invalid(realtime.CodeItemNotFound, param+".id", "no item with id %q in this conversation", ref)
				}
			}
			history = appendMessage(history, it)
		}
	} else {
		// The last HistoryMessages messages, without walking (or copying)
		// the whole conversation.
		n := s.srv.opts.HistoryMessages
		history = make([]agent.Message, 0, min(n, len(s.items)))
		for i := len(s.items) - 1; i >= 0 && len(history) < n; i-- {
			history = appendMessage(history, s.items[i])
		}
		slices.Reverse(history)
	}
	if n := s.srv.opts.HistoryMessages; len(history) > n {
		history = history[len(history)-n:]
	}
	req.History = history

	modalities := s.state.OutputModalities
	if p.OutputModalities != nil {
		modalities = p.OutputModalities
	}
	audio := len(modalities) == 1 && modalities[0] == realtime.ModalityAudio
	if audio && s.srv.opts.Synthesizer == nil {
		return realtime.Invalid(realtime.CodeUnsupported, "response.output_modalities", "this gateway has no speech synthesizer configured; use [\"text\"]")
	}
	r := &response{
		id: s.ids.next("resp_"), inConversation: inConv, maxTokens: req.MaxOutputTokens,
		metadata: p.Metadata, requested: at, utt: s.lastUtterance,
	}
	s.lastUtterance = nil
	r.obj = realtime.Response{
		ID: r.id, Object: "realtime.response", Status: realtime.StatusInProgress, Output: []*realtime.Item{},
		OutputModalities: modalities, MaxOutputTokens: realtime.MaxTokens(req.MaxOutputTokens),
		Metadata: json.RawMessage("null"),
	}
	if inConv {
		r.obj.ConversationID = s.convID
	}
	s.active = r
	created := r.obj
	s.send(&realtime.ResponseEvent{Type: realtime.TypeResponseCreated, EventID: s.nextEventID(), Response: &created})

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if s.agentCh == nil {
		s.agentCh = make(chan agentMsg, 4)
	}
	if audio {
		if s.audioCh == nil {
			s.audioCh = make(chan audioMsg, 8)
		}
		syn := s.srv.opts.Synthesizer
		format := s.state.Audio.Output.Format
		if s.call != nil { // a call's track carries Opus whatever the session's format
			format = realtime.AudioFormat{Type: realtime.FormatOpus, Rate: 48000}
		}
		enc, err := newOutputEncoder(format, syn.SampleRate())
		if err != nil {
			cancel()
			s.active = nil
			return &realtime.Error{Type: realtime.ServerError, Code: realtime.CodeInternal, Message: "audio encoder: " + err.Error()}
		}
		r.speaker = &speaker{ch: make(chan string, 16), splitter: &tts.SentenceSplitter{}}
		if c := s.call; c != nil {
			id := r.id
			r.speaker.played = func() float64 { return c.PlayedMS(id) }
		}
		voice := s.agent.Voice
		if v := s.state.Audio.Output.Voice; v != "" && v != "alloy" {
			voice = v
		}
		s.ttsWG.Add(1)
		go s.runTTS(ctx, r, syn, enc, tts.Request{Voice: voice, Speed: s.state.Audio.Output.Speed, Language: s.agent.Language}, r.speaker.ch)
	}
	s.agentWG.Add(1)
	go s.runEngine(ctx, r, req)
	return nil
}

func appendMessage(h []agent.Message, it *realtime.Item) []agent.Message {
	if it.Type != realtime.ItemMessage {
		return h
	}
	if text := it.Text(); text != "" {
		h = append(h, agent.Message{Role: it.Role, Text: text})
	}
	return h
}

// runEngine retrieves grounding and streams the agent's reply to the loop.
// It runs in its own goroutine; the loop owns r and only reads messages.
func (s *session) runEngine(ctx context.Context, r *response, req *agent.Request) {
	defer s.agentWG.Done()
	// The response's context also runs its synthesizer, which outlives the
	// agent's text: release only the agent's own child context here.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := s.agent
	if a.Knowledge != nil {
		if q := lastUserText(req.History); q != "" {
			k := a.TopK
			if k == 0 {
				k = 4
			}
			req.Passages = a.Knowledge.Search(q, k)
		}
	}
	start := time.Now()
	usage, err := a.Responder.Respond(ctx, req, func(delta string) error {
		if delta == "" {
			return nil
		}
		select {
		case s.agentCh <- agentMsg{resp: r, delta: delta, at: time.Now(), start: start}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if ctx.Err() != nil {
		return // the loop ended this response already
	}
	select {
	case s.agentCh <- agentMsg{resp: r, done: true, usage: usage, err: err, at: time.Now(), start: start}:
	case <-ctx.Done():
	}
}

func lastUserText(h []agent.Message) string {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Role == "user" {
			return h[i].Text
		}
	}
	return ""
}

// onAgent applies one engine message to the active response.
func (s *session) onAgent(m agentMsg) {
	r := m.resp
	if r != s.active || r.finished {
		return // a late message of a response that already ended
	}
	if !m.done {
		s.emitDelta(r, m)
		if r.maxTokens > 0 && estimateTokens(r.text.Len()) >= r.maxTokens {
			s.finishResponse(r, realtime.StatusIncomplete, "max_output_tokens", nil)
		}
		return
	}
	if m.err != nil {
		s.finishResponse(r, realtime.StatusFailed, "", m.err)
		return
	}
	r.obj.Usage = usageOf(m.usage)
	r.agentDone = true
	if sp := r.speaker; sp != nil {
		if rest := sp.splitter.Flush(); strings.TrimSpace(rest) != "" {
			sp.queue(rest)
		}
		sp.textDone = true
		sp.pump()
		if !sp.audioDone {
			return // response.done follows the last audio
		}
	}
	s.finishResponse(r, realtime.StatusCompleted, "", nil)
}

func estimateTokens(chars int) int { return (chars + 3) / 4 }

func usageOf(u agent.Usage) *realtime.Usage {
	return &realtime.Usage{
		TotalTokens: u.InputTokens + u.OutputTokens, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		InputTokenDetails:  realtime.InputTokenDetails{TextTokens: u.InputTokens},
		OutputTokenDetails: realtime.OutputTokenDetails{TextTokens: u.OutputTokens},
	}
}

// emitDelta sends one text delta, opening the output item on the first.
func (s *session) emitDelta(r *response, m agentMsg) {
	if r.item == nil {
		r.firstTokenAt = m.at
		r.engineFirst = m.at.Sub(m.start)
		r.item = &realtime.Item{ID: s.ids.next("item_"), Object: "realtime.item", Type: realtime.ItemMessage,
			Status: realtime.StatusInProgress, Role: "assistant", Content: []realtime.Content{}}
		var prev *string
		if r.inConversation {
			prev = s.insertItem(r.item, nil)
			r.prevItemID = prev
		}
		s.send(&realtime.OutputItemEvent{Type: realtime.TypeOutputItemAdded, EventID: s.nextEventID(), ResponseID: r.id, Item: r.item})
		if r.inConversation {
			s.send(&realtime.ItemEvent{Type: realtime.TypeItemAdded, EventID: s.nextEventID(), PreviousItemID: prev, Item: r.item})
		}
		part := realtime.Content{Type: realtime.ContentOutputText}
		if r.speaker != nil {
			part.Type = realtime.ContentOutputAudio
		}
		s.send(&realtime.ContentPartEvent{Type: realtime.TypeContentPartAdded, EventID: s.nextEventID(), ResponseID: r.id,
			ItemID: r.item.ID, Part: part})
	}
	r.text.WriteString(m.delta)
	if sp := r.speaker; sp != nil {
		s.send(&realtime.TranscriptDeltaEvent{Type: realtime.TypeOutputAudioTranscriptDelta, EventID: s.nextEventID(),
			ResponseID: r.id, ItemID: r.item.ID, Delta: m.delta})
		for _, sentence := range sp.splitter.Push(m.delta) {
			sp.queue(sentence)
		}
		sp.pump()
		if r.firstSent.IsZero() {
			r.firstSent = time.Now()
		}
		return
	}
	s.evSeq++
	bp := getBuf()
	*bp = realtime.AppendTextDelta((*bp)[:0], s.evPrefix, s.evSeq, r.id, r.item.ID, 0, 0, m.delta)
	s.enqueue(bp)
	if r.firstSent.IsZero() {
		r.firstSent = time.Now()
	}
}

// finishResponse ends r with a final status, sends the closing events and
// records the assistant turn. cause is the engine error of a failed response.
func (s *session) finishResponse(r *response, status, reason string, cause error) {
	if r.finished {
		return
	}
	r.finished = true
	r.cancel()
	s.active = nil
	now := time.Now()
	text := r.text.String()

	if sp := r.speaker; sp != nil {
		if status != realtime.StatusCompleted {
			// Keep only what the user heard; drop audio not yet written.
			text = sp.heardText(now)
			if s.call != nil {
				s.clearPlayback()
			} else {
				s.out.dropAudio(r.id)
			}
		} else if s.call != nil {
			s.call.EndOf(r.id) // output_audio_buffer.stopped once played out
			if r.item != nil && r.inConversation {
				s.playing = &playingItem{respID: r.id, itemID: r.item.ID}
			}
		}
		sp.stop()
	}
	if r.item != nil && r.speaker != nil {
		s.send(&realtime.AudioDoneEvent{Type: realtime.TypeOutputAudioDone, EventID: s.nextEventID(), ResponseID: r.id, ItemID: r.item.ID})
		s.send(&realtime.TranscriptDoneEvent{Type: realtime.TypeOutputAudioTranscriptDone, EventID: s.nextEventID(), ResponseID: r.id,
			ItemID: r.item.ID, Transcript: text})
		part := realtime.Content{Type: realtime.ContentOutputAudio, Transcript: text}
		s.send(&realtime.ContentPartEvent{Type: realtime.TypeContentPartDone, EventID: s.nextEventID(), ResponseID: r.id,
			ItemID: r.item.ID, Part: part})
		r.item.Content = []realtime.Content{part}
		r.item.Status = "completed"
		if status != realtime.StatusCompleted {
			r.item.Status = "incomplete"
		}
		s.send(&realtime.OutputItemEvent{Type: realtime.TypeOutputItemDone, EventID: s.nextEventID(), ResponseID: r.id, Item: r.item})
		if r.inConversation {
			s.send(&realtime.ItemEvent{Type: realtime.TypeItemDone, EventID: s.nextEventID(), PreviousItemID: r.prevItemID, Item: r.item})
			if status == realtime.StatusCompleted {
				s.rememberSpoken(r.item.ID, r.speaker)
			}
		}
		r.obj.Output = []*realtime.Item{r.item}
	} else if r.item != nil {
		s.send(&realtime.TextDoneEvent{Type: realtime.TypeOutputTextDone, EventID: s.nextEventID(), ResponseID: r.id,
			ItemID: r.item.ID, Text: text})
		part := realtime.Content{Type: realtime.ContentOutputText, Text: text}
		s.send(&realtime.ContentPartEvent{Type: realtime.TypeContentPartDone, EventID: s.nextEventID(), ResponseID: r.id,
			ItemID: r.item.ID, Part: part})
		r.item.Content = []realtime.Content{part}
		r.item.Status = "completed"
		if status != realtime.StatusCompleted {
			r.item.Status = "incomplete"
		}
		s.send(&realtime.OutputItemEvent{Type: realtime.TypeOutputItemDone, EventID: s.nextEventID(), ResponseID: r.id, Item: r.item})
		if r.inConversation {
			s.send(&realtime.ItemEvent{Type: realtime.TypeItemDone, EventID: s.nextEventID(), PreviousItemID: r.prevItemID, Item: r.item})
		}
		r.obj.Output = []*realtime.Item{r.item}
	}

	var errEv *realtime.Error
	if cause != nil {
		errEv = engineError(cause)
	}
	r.obj.Status = status
	switch status {
	case realtime.StatusCancelled:
		r.obj.StatusDetails = &realtime.StatusDetails{Type: status, Reason: reason}
	case realtime.StatusIncomplete:
		r.obj.StatusDetails = &realtime.StatusDetails{Type: status, Reason: reason}
	case realtime.StatusFailed:
		r.obj.StatusDetails = &realtime.StatusDetails{Type: status, Error: errEv}
	}
	if r.obj.Usage == nil {
		out := estimateTokens(len(text))
		r.obj.Usage = &realtime.Usage{TotalTokens: out, OutputTokens: out,
			OutputTokenDetails: realtime.OutputTokenDetails{TextTokens: out}}
	}
	lat := r.latency(now)
	if r.speaker != nil && r.utt != nil {
		lat.voice = voiceTimeline(r.utt, r, time.Duration(s.listenSilenceMS())*time.Millisecond)
		switch {
		case lat.voice == nil:
		case lat.voice.firstAudioSent > 0 || r.speaker.firstAudio.IsZero():
			lat.voice.observe(s.srv.metrics.voiceStages, s.srv.metrics.voiceGateway)
		default:
			// Done before its first audio reached the client: observe the
			// timeline when it does.
			v := *lat.voice
			stages, gw := s.srv.metrics.voiceStages, s.srv.metrics.voiceGateway
			r.speaker.firstWritten.whenWritten(func(at int64) {
				v.written(at)
				v.observe(stages, gw)
			})
			s.unstamped, s.unstampedID = r.speaker, r.id
		}
	}
	r.obj.Metadata = r.metadataJSON(lat)
	if errEv != nil {
		s.sendError(errEv)
	}
	final := r.obj
	s.send(&realtime.ResponseEvent{Type: realtime.TypeResponseDone, EventID: s.nextEventID(), Response: &final})

	// With idle_timeout_ms, silence after the answer is watched from now.
	if l := s.listen; l != nil && l.turn != nil && l.turnCfg.IdleTimeoutMS != nil {
		l.turn.ArmIdle()
	}
	m := s.srv.metrics
	m.responses.WithLabelValues(status).Inc()
	m.responseTime.Observe(now.Sub(r.requested).Seconds())
	if !r.firstSent.IsZero() {
		m.firstToken.Observe(r.firstSent.Sub(r.requested).Seconds())
		m.gatewayAdded.Observe(lat.gateway.Seconds())
	}
	ev := s.log.Info()
	if status == realtime.StatusFailed {
		ev = s.log.Warn().Str("code", errEv.Code)
	}
	ev.Str("response_id", r.id).Str("status", status).Dur("total_ms", now.Sub(r.requested)).
		Dur("first_token_ms", lat.firstToken).Int("chars", len(text)).Msg("response done")

	if r.inConversation && r.item != nil {
		turnStatus := storage.TurnCompleted
		switch status {
		case realtime.StatusCancelled, realtime.StatusIncomplete:
			turnStatus = storage.TurnCancelled
		case realtime.StatusFailed:
			turnStatus = storage.TurnFailed
		}
		stored := storage.Latency{
			FirstTokenMS: lat.firstToken.Milliseconds(), TotalMS: now.Sub(r.requested).Milliseconds(),
			EngineMS: lat.engineFirst.Milliseconds(),
		}
		if v := lat.voice; v != nil {
			stored.EndOfTurnMS, stored.FirstPartialMS = v.endOfTurn.Milliseconds(), v.firstPartial.Milliseconds()
			stored.FinalTranscriptMS, stored.FirstAudioMS = v.finalTranscript.Milliseconds(), v.firstAudio.Milliseconds()
			stored.FirstAudioSentMS = v.firstAudioSent.Milliseconds()
		}
		s.persistTurn(r.item.ID, "assistant", text, turnStatus, r.requested, now, stored, nil)
	}
}

type latency struct {
	voice       *voiceLatency // nil unless the response answers a spoken turn with audio
	firstToken  time.Duration // response.create decoded → first delta queued for the client
	engineFirst time.Duration // inside Respond, until its first delta
	gateway     time.Duration // firstToken - engineFirst: Parley's own share
	total       time.Duration
}

func (r *response) latency(now time.Time) latency {
	l := latency{total: now.Sub(r.requested)}
	if !r.firstSent.IsZero() {
		l.firstToken = r.firstSent.Sub(r.requested)
		l.engineFirst = r.engineFirst
		l.gateway = l.firstToken - l.engineFirst
	}
	return l
}

// metadataJSON merges the client's metadata with Parley's latency figures
// under "parley" (milliseconds, microsecond precision).
func (r *response) metadataJSON(l latency) json.RawMessage {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	md := make(map[string]any, len(r.metadata)+1)
	for k, v := range r.metadata {
		md[k] = v
	}
	p := map[string]any{"total_ms": ms(l.total)}
	if l.firstToken > 0 {
		p["first_token_ms"] = ms(l.firstToken)
		p["engine_first_token_ms"] = ms(l.engineFirst)
		p["gateway_ms"] = ms(l.gateway)
	}
	if v := l.voice; v != nil {
		p["voice"] = v.metadata()
	}
	md["parley"] = p
	b, _ := json.Marshal(md)
	return b
}

// engineError turns an engine failure into the error event clients see.
func engineError(err error) *realtime.Error {
	var ae *agent.Error
	if errors.As(err, &ae) {
		return &realtime.Error{Type: realtime.ServerError, Code: ae.Code, Message: ae.Message}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &realtime.Error{Type: realtime.ServerError, Code: "agent_timeout", Message: "the agent did not answer in time"}
	}
	return &realtime.Error{Type: realtime.ServerError, Code: "agent_error", Message: "the agent failed to answer"}
}
