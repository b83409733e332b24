package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/coder/websocket"

	"parley/realtime"
)

// callMedia is the media side of a WebRTC call as a session sees it: the
// player that paces the agent's Opus packets onto the call's track.
// rtc.Call implements it.
type callMedia interface {
	// Play queues one 20 ms Opus packet of response tag; false when the
	// queue is full or the call ended.
	Play(tag string, opusPacket []byte) bool
	// EndOf marks the end of tag's audio (the player reports Stopped).
	EndOf(tag string)
	// Clear drops everything queued at once and reports what was playing
	// and how much of it was played.
	Clear() (tag string, playedMS float64, wasPlaying bool)
	// PlayedMS is how much of tag's audio was written to the track.
	PlayedMS(tag string) float64
	// Done is closed when the call has ended.
	Done() <-chan struct{}
}

// callChunk is inbound call audio, decoded to 16 kHz, on its way from the
// track's reader goroutine to the loop.
type callChunk struct {
	pcm *[]int16
	at  time.Time
}

// callAudioQueue bounds the inbound audio waiting for the loop (chunks of
// 20 ms): a loop this far behind drops audio instead of stalling the
// track reader.
const callAudioQueue = 50

// playbackMsg is a player event on its way to the loop.
type playbackMsg struct {
	started bool // else stopped
	tag     string
}

// playingItem is the spoken item whose audio is playing out on the call's
// track (its response may be done already: synthesis runs ahead of
// playback). A barge-in cuts it to what was heard.
type playingItem struct {
	respID, itemID string
}

// deliverCallAudio hands inbound audio to the loop. It runs on the track's
// reader goroutine and never blocks: pcm is copied into a pooled chunk, and
// dropped (counted) when the loop is too far behind.
func (s *session) deliverCallAudio(pcm []int16, at time.Time) {
	b := getPCM()
	*b = append((*b)[:0], pcm...)
	select {
	case s.callAudio <- callChunk{pcm: b, at: at}:
	default:
		putPCM(b)
		s.srv.metrics.rtpDropped.Inc()
	}
}

// deliverPlayback hands a player event to the loop without blocking the
// player (which paces audio for the call).
func (s *session) deliverPlayback(m playbackMsg) {
	select {
	case s.playback <- m:
	default:
		s.log.Warn().Str("response_id", m.tag).Bool("started", m.started).Msg("playback event dropped: the session is not keeping up")
	}
}

// onCallAudio runs a chunk of the call's audio through the listening path.
func (s *session) onCallAudio(c callChunk) {
	defer putPCM(c.pcm)
	if s.srv.opts.Recognizer == nil {
		return // no recognizer: the call's audio is not listened to
	}
	if s.listen == nil {
		s.listen = &listener{}
	}
	if err := s.configureListener(); err != nil {
		s.sendError(err)
		return
	}
	if err := s.ingest(*c.pcm, c.at); err != nil {
		s.sendError(err)
	}
}

func (s *session) onPlayback(m playbackMsg) {
	typ := realtime.TypeOutputAudioStopped
	if m.started {
		typ = realtime.TypeOutputAudioStarted
		switch r := s.active; {
		case r != nil && r.id == m.tag && r.speaker != nil:
			r.speaker.firstWritten.stamp(time.Now().UnixNano())
		case s.unstamped != nil && s.unstampedID == m.tag:
			// The answer was done before its audio started playing.
			s.unstamped.firstWritten.stamp(time.Now().UnixNano())
		}
		s.unstamped = nil
	} else if p := s.playing; p != nil && p.respID == m.tag {
		s.playing = nil
	}
	s.send(&realtime.OutputAudioBufferEvent{Type: typ, EventID: s.nextEventID(), ResponseID: m.tag})
}

// clearPlayback stops the call's playback at once. The audio item that was
// playing keeps only what the user heard (as conversation.item.truncate
// would do; over WebRTC the server knows what was played).
func (s *session) clearPlayback() {
	if s.call == nil {
		return
	}
	tag, playedMS, was := s.call.Clear()
	if !was {
		return
	}
	s.send(&realtime.OutputAudioBufferEvent{Type: realtime.TypeOutputAudioCleared, EventID: s.nextEventID(), ResponseID: tag})
	if p := s.playing; p != nil && p.respID == tag {
		s.playing = nil
		if sp, ok := s.spoken[p.itemID]; ok && playedMS < sp.audioMS {
			s.cutSpoken(p.itemID, int(playedMS))
		}
	}
}

// outputAudioClear implements output_audio_buffer.clear: the response
// speaking now is cancelled and playback stops within one frame.
func (s *session) outputAudioClear() *realtime.Error {
	if s.call == nil {
		return realtime.Invalid(realtime.CodeUnsupported, "type", "output_audio_buffer.clear applies to WebRTC calls; over WebSocket send response.cancel")
	}
	if r := s.active; r != nil && r.speaker != nil {
		s.finishResponse(r, realtime.StatusCancelled, "client_cancelled", nil)
	}
	s.clearPlayback()
	return nil
}

// sideband is a WebSocket a customer's server attached to a live call
// (GET /v1/realtime?call_id=…): it sees the call's events and may send
// events to it.
type sideband struct {
	conn eventConn
	out  *outbox
}

// attachSideband hands a sideband connection to the session's loop; false
// when the session has ended.
func (s *session) attachSideband(conn eventConn) bool {
	sb := &sideband{conn: conn, out: newOutbox(conn, s.srv.opts.OutboundQueue, s.srv.opts.WriteTimeout)}
	select {
	case s.attach <- sb:
		return true
	case <-s.loopDone:
		return false
	}
}

func (s *session) onAttach(sb *sideband) {
	s.sides = append(s.sides, sb)
	s.srv.metrics.sidebands.Inc()
	s.log.Info().Int("sidebands", len(s.sides)).Msg("sideband attached")
	s.sideWG.Add(1)
	go func() {
		defer s.sideWG.Done()
		s.readEvents(sb.conn)
		select {
		case s.sideGone <- sb:
		case <-s.loopDone:
		}
	}()
	// The sideband's own first event.
	st := s.state
	b, err := json.Marshal(&realtime.SessionEvent{Type: realtime.TypeSessionCreated, EventID: s.nextEventID(), Session: &st})
	if err == nil {
		if sb.out.enqueue(&b) != nil {
			_ = sb.conn.closeNow()
		}
	}
}

func (s *session) onSideGone(sb *sideband) {
	for i, x := range s.sides {
		if x == sb {
			s.sides = append(s.sides[:i], s.sides[i+1:]...)
			break
		}
	}
	_ = sb.conn.closeNow()
	sb.out.stop(errSessionClosed)
	s.log.Info().Int("sidebands", len(s.sides)).Msg("sideband detached")
}

// fanout queues a copy of an encoded event for each sideband. A sideband
// that cannot keep up is dropped; the call goes on.
func (s *session) fanout(b []byte) {
	for _, sb := range s.sides {
		bp := getBuf()
		*bp = append((*bp)[:0], b...)
		if sb.out.enqueue(bp) != nil {
			_ = sb.conn.closeNow() // its reader ends and reports sideGone
		}
	}
}

// closeSidebands ends the sidebands with the session: their events are
// flushed (bounded by the write timeout), then they are closed and their
// readers waited for.
func (s *session) closeSidebands(code websocket.StatusCode, reason string) {
	for _, sb := range s.sides {
		ctx, cancel := context.WithTimeout(context.Background(), s.srv.opts.WriteTimeout)
		err := sb.out.flush(ctx)
		cancel()
		if err != nil {
			_ = sb.conn.closeNow()
		} else {
			_ = sb.conn.close(code, reason)
		}
		sb.out.stop(errSessionClosed)
	}
	s.sides = nil
	s.sideWG.Wait()
}
