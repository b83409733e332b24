package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"parley/agent"
	"parley/realtime"
	"parley/storage"
)

// maxItems bounds the conversation a session keeps in memory; older items
// stay in storage (subject to retention) but leave the model's context.
const maxItems = 512

// session is one realtime conversation. A single goroutine (run) owns all
// of its state; the reader goroutine decodes client events and hands them
// over, each response's engine runs in its own goroutine under a context
// the loop cancels, and outbound events leave through the bounded outbox.
type session struct {
	srv       *Server
	conn      eventConn
	out       *outbox
	log       zerolog.Logger
	agent     *agent.Agent
	principal Principal
	channel   string

	id       string
	ids      idGen
	evPrefix string
	evSeq    uint64
	state    realtime.Session

	convID     string
	convStart  time.Time
	convStored bool
	turnSeq    int

	items  []*realtime.Item
	byID   map[string]*realtime.Item
	active *response

	inbound    chan inbound
	agentCh    chan agentMsg // made with the first response (idle sessions stay small)
	readerDone chan struct{}
	loopDone   chan struct{} // closed when run returns
	agentWG    sync.WaitGroup
	draining   bool

	// Voice: the listening path (nil until the first append), recognizer
	// and synthesizer goroutines and their messages.
	listen             *listener
	sttCh              chan sttMsg
	audioCh            chan audioMsg
	sttWG, ttsWG       sync.WaitGroup
	pendingTranscripts int
	lastUtterance      *utterance
	inflight           []*utterance // recognizers started, for cancellation at the end
	spoken             map[string]*spokenItem

	// WebRTC calls only (nil for WebSocket sessions): the call's media,
	// its inbound audio and player events, the item playing out, and the
	// sideband WebSockets attached (owned by the loop; their readers are
	// counted in sideWG).
	call      callMedia
	callAudio chan callChunk
	playback  chan playbackMsg
	playing   *playingItem
	// unstamped is the speaker of a call's answer that was done before its
	// audio started playing (its first-write time is stamped then).
	unstamped   *speaker
	unstampedID string
	sides       []*sideband
	attach      chan *sideband
	sideGone    chan *sideband
	sideWG      sync.WaitGroup

	// policy is the tenant's privacy policy, read when the session
	// started; endUser the end user's pseudonym ("" when not named).
	policy  storage.Policy
	endUser string
}

type inbound struct {
	ev  *realtime.ClientEvent
	err *realtime.Error
	at  time.Time
}

// agentMsg carries an engine's output to the loop.
type agentMsg struct {
	resp  *response
	delta string
	done  bool
	usage agent.Usage
	err   error
	at    time.Time // when the engine produced it
	start time.Time // when Respond was called
}

// response is the one response a session may run at a time.
type response struct {
	id             string
	obj            realtime.Response
	item           *realtime.Item // created with the first delta
	prevItemID     *string        // the item before it in the conversation
	inConversation bool
	text           strings.Builder
	maxTokens      int
	metadata       map[string]string
	cancel         context.CancelFunc
	requested      time.Time     // response.create decoded by the reader
	engineFirst    time.Duration // Respond call → its first delta
	firstTokenAt   time.Time     // the loop received the first delta
	firstSent      time.Time     // first delta queued for the client
	finished       bool
	agentDone      bool
	speaker        *speaker   // non-nil for audio responses
	utt            *utterance // the spoken turn this response answers, if any
}

func newSession(srv *Server, conn eventConn, a *agent.Agent, p Principal, channel string) *session {
	s := &session{
		srv: srv, conn: conn, agent: a, principal: p, channel: channel,
		ids:        newIDGen(srv.now()),
		byID:       map[string]*realtime.Item{},
		inbound:    make(chan inbound),
		readerDone: make(chan struct{}),
		loopDone:   make(chan struct{}),
	}
	s.id = "sess_" + s.ids.stem
	s.convID = "conv_" + s.ids.stem
	s.evPrefix = "event_" + s.ids.stem + "_"
	s.out = newOutbox(conn, srv.opts.OutboundQueue, srv.opts.WriteTimeout)
	s.log = srv.log.With().Str("session_id", s.id).Str("agent", a.ID).Logger()
	now := srv.now()
	s.convStart = now
	s.state = realtime.NewSession(s.id, a.ID, a.Instructions, now.Add(srv.opts.MaxDuration).Unix())
	return s
}

// serve runs the session until it ends and everything it started has
// stopped. It is called on the HTTP handler goroutine, which owns it.
func (s *session) serve() {
	go s.readLoop()

	code, reason := s.run()
	close(s.loopDone)

	// Stop the engines, keep what was said, record the end.
	if s.active != nil {
		s.finishResponse(s.active, realtime.StatusCancelled, "session_ended", nil)
	}
	if l := s.listen; l != nil && l.utt != nil {
		l.utt.cancel()
		s.closeUtterance(l.utt)
	}
	s.cancelPendingSTT()
	s.agentWG.Wait()
	s.ttsWG.Wait()
	s.sttWG.Wait()
	if s.convStored {
		s.srv.recorder.submit(s.convID, recordJob{sessionID: s.id, end: &endJob{tenantID: s.principal.TenantID, id: s.convID,
			at: s.srv.now(), channel: s.channel, started: s.convStart}})
	}

	s.closeSidebands(code, reason)
	select {
	case <-s.readerDone: // the client is gone or broke the protocol
		_ = s.conn.closeNow()
	default:
		fctx, fcancel := context.WithTimeout(context.Background(), s.srv.opts.WriteTimeout)
		err := s.out.flush(fctx)
		fcancel()
		if err != nil {
			_ = s.conn.closeNow()
		} else {
			_ = s.conn.close(code, reason)
		}
	}
	s.out.stop(errSessionClosed)
	<-s.readerDone
}

var errSessionClosed = errors.New("session closed")

// open queues session.created and the agent's greeting. It runs before
// the session goroutine starts (see Server.realtime).
func (s *session) open() {
	s.sendSession(realtime.TypeSessionCreated)
	if s.agent.Greeting != "" {
		it := &realtime.Item{ID: s.ids.next("item_"), Object: "realtime.item", Type: realtime.ItemMessage,
			Status: "completed", Role: "assistant", Content: []realtime.Content{{Type: realtime.ContentOutputText, Text: s.agent.Greeting}}}
		prev := s.insertItem(it, nil)
		s.send(&realtime.ItemEvent{Type: realtime.TypeItemAdded, EventID: s.nextEventID(), PreviousItemID: prev, Item: it})
		s.send(&realtime.ItemEvent{Type: realtime.TypeItemDone, EventID: s.nextEventID(), PreviousItemID: prev, Item: it})
	}
}

// readLoop decodes client events into s.inbound until the connection
// ends (serve closes it) or the loop stops taking events. It reuses pooled
// read buffers, so a message costs no allocation beyond what decoding
// keeps.
func (s *session) readLoop() {
	defer close(s.readerDone)
	s.readEvents(s.conn)
}

// readEvents feeds conn's messages to the loop until conn fails or the
// loop ends.
func (s *session) readEvents(conn eventConn) {
	for {
		bp := getBuf()
		b, text, err := conn.read((*bp)[:0])
		*bp = b
		in := inbound{at: time.Now()}
		switch {
		case errors.Is(err, errMessageTooLarge):
			in.err = realtime.Invalid(realtime.CodeInvalidValue, "", "the event is larger than this channel accepts; it was dropped")
		case err != nil:
			putBuf(bp)
			if !isClosed(s.loopDone) {
				logReadEnd(s.log, err)
			}
			return
		case !text:
			in.err = realtime.Invalid(realtime.CodeInvalidJSON, "", "events are JSON text messages; binary messages are not accepted")
		default:
			in.ev, in.err = realtime.Decode(b)
		}
		putBuf(bp)
		select {
		case s.inbound <- in:
		case <-s.loopDone:
			return
		}
	}
}

func logReadEnd(log zerolog.Logger, err error) {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		log.Debug().Msg("client closed the session")
	case websocket.StatusMessageTooBig:
		log.Info().Msg("client sent a message over the read limit; closed with 1009")
	case -1:
		log.Debug().Err(err).Msg("connection ended")
	default:
		log.Info().Int("close_code", int(websocket.CloseStatus(err))).Msg("client closed the session")
	}
}

// run is the session loop. It returns the close code and reason.
func (s *session) run() (websocket.StatusCode, string) {
	opts := &s.srv.opts
	idle := time.NewTimer(opts.IdleTimeout)
	defer idle.Stop()
	maxDur := time.NewTimer(opts.MaxDuration)
	defer maxDur.Stop()
	drain := s.srv.draining
	for {
		select {
		case in := <-s.inbound:
			idle.Reset(opts.IdleTimeout)
			s.handle(in)
		case m := <-s.agentCh:
			s.onAgent(m)
		case m := <-s.sttCh:
			s.onSTT(m)
		case m := <-s.audioCh:
			s.onAudio(m)
		case c := <-s.callAudio:
			idle.Reset(opts.IdleTimeout) // a live microphone is activity
			s.onCallAudio(c)
		case m := <-s.playback:
			s.onPlayback(m)
		case sb := <-s.attach:
			idle.Reset(opts.IdleTimeout)
			s.onAttach(sb)
		case sb := <-s.sideGone:
			s.onSideGone(sb)
		case <-s.readerDone:
			return websocket.StatusNormalClosure, ""
		case <-s.out.failed:
			if errors.Is(s.out.err, errSlowClient) {
				s.srv.metrics.slowClients.Inc()
				s.log.Warn().Int("queue", opts.OutboundQueue).Msg("client did not read its events; closing")
				return websocket.StatusPolicyViolation, "client too slow: outbound queue full"
			}
			return websocket.StatusInternalError, "write failed"
		case <-idle.C:
			s.sendError(realtime.Invalid("session_idle_timeout", "", "no client event for %s; closing the session", opts.IdleTimeout))
			return websocket.StatusNormalClosure, "idle timeout"
		case <-maxDur.C:
			s.sendError(realtime.Invalid("session_expired", "", "the session reached its maximum duration of %s", opts.MaxDuration))
			return websocket.StatusNormalClosure, "session expired"
		case <-drain:
			drain = nil
			s.draining = true
		case <-s.srv.hardStop:
			return websocket.StatusGoingAway, "server shutting down"
		}
		if s.draining && s.active == nil {
			return websocket.StatusGoingAway, "server shutting down"
		}
	}
}

func (s *session) handle(in inbound) {
	if in.err != nil {
		s.srv.metrics.clientEvents.WithLabelValues("unknown").Inc()
		s.sendError(in.err)
		return
	}
	ev := in.ev
	s.srv.metrics.clientEvents.WithLabelValues(eventLabel(ev.Type)).Inc()
	var err *realtime.Error
	switch ev.Type {
	case realtime.TypeSessionUpdate:
		prev := s.state
		if err = s.state.Apply(ev.Session); err == nil {
			if err = s.checkVoiceSettings(); err != nil {
				s.state = prev
			} else {
				s.sendSession(realtime.TypeSessionUpdated)
			}
		}
	case realtime.TypeItemCreate:
		err = s.createItem(ev)
	case realtime.TypeItemDelete:
		err = s.deleteItem(ev.ItemID)
	case realtime.TypeItemRetrieve:
		if it, ok := s.byID[ev.ItemID]; ok {
			s.send(&realtime.ItemEvent{Type: realtime.TypeItemRetrieved, EventID: s.nextEventID(), Item: it})
		} else {
			err = realtime.Invalid(realtime.CodeItemNotFound, "item_id", "no item with id %q in this conversation", ev.ItemID)
		}
	case realtime.TypeItemTruncate:
		err = s.truncateItem(ev)
	case realtime.TypeResponseCreate:
		err = s.startResponse(ev.Response, in.at)
	case realtime.TypeResponseCancel:
		r := s.active
		switch {
		case r == nil:
			err = realtime.Invalid(realtime.CodeNoActiveResponse, "", "there is no active response to cancel")
		case ev.ResponseID != "" && ev.ResponseID != r.id:
			err = realtime.Invalid(realtime.CodeNoActiveResponse, "response_id", "response %q is not the active response", ev.ResponseID)
		default:
			s.finishResponse(r, realtime.StatusCancelled, "client_cancelled", nil)
		}
	case realtime.TypeAudioAppend:
		err = s.appendAudio(ev, in.at)
	case realtime.TypeAudioCommit:
		err = s.commitAudio()
	case realtime.TypeAudioClear:
		s.clearAudio()
	case realtime.TypeOutputAudioClear:
		err = s.outputAudioClear()
	}
	if err != nil {
		s.sendError(err.WithEventID(ev.EventID))
	}
}

// insertItem adds it after the item named by prev (nil: at the end; "root":
// first) and returns the id of the item before it, for previous_item_id.
func (s *session) insertItem(it *realtime.Item, prev *string) *string {
	pos := len(s.items)
	if prev != nil {
		if *prev == "root" {
			pos = 0
		} else {
			for i, x := range s.items {
				if x.ID == *prev {
					pos = i + 1
					break
				}
			}
		}
	}
	s.items = append(s.items, nil)
	copy(s.items[pos+1:], s.items[pos:])
	s.items[pos] = it
	s.byID[it.ID] = it
	if len(s.items) > maxItems {
		old := s.items[0]
		delete(s.byID, old.ID)
		s.items = append(s.items[:0], s.items[1:]...)
		pos--
	}
	if pos <= 0 {
		return nil
	}
	id := s.items[pos-1].ID
	return &id
}

func (s *session) createItem(ev *realtime.ClientEvent) *realtime.Error {
	it := ev.Item
	if it.ID == "" {
		it.ID = s.ids.next("item_")
	} else if _, dup := s.byID[it.ID]; dup {
		return realtime.Invalid(realtime.CodeDuplicateItemID, "item.id", "an item with id %q already exists", it.ID)
	}
	if p := ev.PreviousItemID; p != nil && *p != "root" {
		if _, ok := s.byID[*p]; !ok {
			return realtime.Invalid(realtime.CodeItemNotFound, "previous_item_id", "no item with id %q in this conversation", *p)
		}
	}
	prev := s.insertItem(it, ev.PreviousItemID)
	s.send(&realtime.ItemEvent{Type: realtime.TypeItemAdded, EventID: s.nextEventID(), PreviousItemID: prev, Item: it})
	s.send(&realtime.ItemEvent{Type: realtime.TypeItemDone, EventID: s.nextEventID(), PreviousItemID: prev, Item: it})
	if it.Role == "user" || it.Role == "assistant" {
		now := s.srv.now()
		s.persistTurn(it.ID, it.Role, it.Text(), storage.TurnCompleted, now, now, storage.Latency{}, nil)
	}
	return nil
}

func (s *session) deleteItem(id string) *realtime.Error {
	if _, ok := s.byID[id]; !ok {
		return realtime.Invalid(realtime.CodeItemNotFound, "item_id", "no item with id %q in this conversation", id)
	}
	if s.active != nil && s.active.item != nil && s.active.item.ID == id {
		return realtime.Invalid(realtime.CodeInvalidValue, "item_id", "item %q belongs to the active response; cancel it first", id)
	}
	for i, x := range s.items {
		if x.ID == id {
			s.items = append(s.items[:i], s.items[i+1:]...)
			break
		}
	}
	delete(s.byID, id)
	s.send(&realtime.ItemDeletedEvent{Type: realtime.TypeItemDeleted, EventID: s.nextEventID(), ItemID: id})
	return nil
}

// persistTurn hands a finished turn to the recorder, under the tenant's
// privacy policy: without transcript retention no text leaves the session,
// and audio (16 kHz, the user's turn) only when the tenant logs audio.
func (s *session) persistTurn(id, role, text, status string, started, ended time.Time, lat storage.Latency, audio []int16) {
	pol := s.policy.Retention()
	if !s.convStored {
		s.convStored = true
		s.srv.recorder.submit(s.convID, recordJob{sessionID: s.id, create: &storage.Conversation{
			ID: s.convID, TenantID: s.principal.TenantID, AgentID: s.agent.ID, Channel: s.channel, EndUser: s.endUser,
			StartedAt: s.convStart.UTC(), ExpiresAt: pol.ConversationExpiry(s.convStart).UTC(),
		}})
	}
	s.turnSeq++
	t := &turnJob{row: &storage.Turn{
		ID: id, ConversationID: s.convID, TenantID: s.principal.TenantID, Seq: s.turnSeq, Role: role,
		Status: status, StartedAt: started.UTC(), EndedAt: ended.UTC(), Latency: lat,
		ExpiresAt: pol.TurnExpiry(started).UTC(),
	}, redact: s.policy.Redact}
	if pol.StoresText() {
		t.row.TextStored, t.text = true, text
	}
	if s.policy.AudioLogging && len(audio) > 0 {
		t.audio = audio
		t.audioExpires = ended.Add(time.Duration(s.policy.AudioDays) * 24 * time.Hour).UTC()
	}
	s.srv.recorder.submit(s.convID, recordJob{sessionID: s.id, turn: t})
}

func (s *session) nextEventID() string {
	s.evSeq++
	b := realtime.AppendEventID(make([]byte, 0, len(s.evPrefix)+16), s.evPrefix, s.evSeq)
	return string(b[1 : len(b)-1])
}

// send encodes a server event and queues it.
func (s *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error().Err(err).Msg("encoding a server event failed")
		return
	}
	s.enqueue(&b)
}

// enqueue queues an encoded event for the client (and the sidebands of a
// call). A failure surfaces through out.failed.
func (s *session) enqueue(b *[]byte) {
	if len(s.sides) > 0 {
		s.fanout(*b)
	}
	_ = s.out.enqueue(b)
}

func (s *session) sendSession(typ string) {
	st := s.state
	s.send(&realtime.SessionEvent{Type: typ, EventID: s.nextEventID(), Session: &st})
}

func (s *session) sendError(e *realtime.Error) {
	s.srv.metrics.errors.WithLabelValues(e.Code).Inc()
	s.send(&realtime.ErrorEvent{Type: realtime.TypeError, EventID: s.nextEventID(), Error: e})
}

// storedText is what of text the retention policy lets storage keep.
func (s *session) storedText(text string) string {
	if !s.policy.Retention().StoresText() {
		return ""
	}
	return text
}
