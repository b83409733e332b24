package rtc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/rs/zerolog"
)

// DefaultConnectTimeout is CallOptions.ConnectTimeout's default.
const DefaultConnectTimeout = 15 * time.Second

// Call end reasons (Call.Reason).
const (
	// ReasonConnectTimeout: ICE+DTLS, and the data channel if the offer
	// had one, did not complete within CallOptions.ConnectTimeout.
	ReasonConnectTimeout = "connect_timeout"
	// ReasonDisconnected: no packet from the browser for the edge's
	// DisconnectedTimeout (tab killed, network gone).
	ReasonDisconnected = "disconnected"
	// ReasonFailed: ICE or DTLS failed.
	ReasonFailed = "failed"
	// ReasonClosed: Close or CloseAsync, or the browser closed the peer
	// connection (DTLS close_notify).
	ReasonClosed = "closed"
)

// CallOptions configures a call. Callbacks run on the call's goroutines
// (see the package documentation): they must not block for long, and must
// not call Close (use CloseAsync).
type CallOptions struct {
	// ConnectTimeout bounds ICE+DTLS (+ the data channel if offered), from
	// Accept's start (default DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// OnAudio receives the inbound Opus track decoded to DecodeRate
	// (16 kHz) mono PCM, on the track's reader goroutine: at least one call
	// per received packet, plus concealment or silence for lost packets
	// and timestamp gaps, at most 120 ms per call. pcm is reused: it is
	// valid only during the call. at is when the packet was read. Nil: the
	// audio is read and discarded, not decoded.
	OnAudio func(pcm []int16, at time.Time)
	// OnPlayback receives Started/Stopped events, from the player goroutine.
	OnPlayback func(PlaybackEvent)
	// OnConnected is called once ICE and DTLS are connected, from the
	// call's supervisor goroutine.
	OnConnected func()
}

// Call is one browser's WebRTC session. All its methods are safe for
// concurrent use.
type Call struct {
	pc       *webrtc.PeerConnection
	opts     CallOptions
	events   *EventChannel
	player   *player
	log      zerolog.Logger
	wantData bool
	deadline time.Time

	mu      sync.Mutex
	closing bool // no goroutine may start any more
	tracks  int
	wg      sync.WaitGroup // every goroutine of the call but the supervisor

	stateSig   chan struct{} // pion state changes, coalesced
	connected  chan struct{} // closed at the first connected state
	ending     chan struct{} // closed when the teardown starts
	endReq     chan struct{} // closed by CloseAsync
	endReqOnce sync.Once
	done       chan struct{} // closed when the teardown is complete
	reason     string        // set before done is closed
	closeErr   error         // likewise
}

// Accept answers a browser's offer: it validates it (CheckOffer), creates
// the peer connection with a sendrecv audio transceiver (track
// "agent-audio" in stream "parley", so the browser's ontrack gets
// e.streams[0]), waits for ICE gathering to complete (no trickle: the
// answer carries every candidate; bounded by ctx) and returns the call and
// the answer SDP. A bad offer gives an *OfferError. On any error nothing
// of the call is left (no goroutine, no socket).
func (e *Edge) Accept(ctx context.Context, offerSDP string, o CallOptions) (*Call, string, error) {
	start := time.Now()
	info, oerr := checkOffer(offerSDP)
	if oerr != nil {
		return nil, "", oerr
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	cert, err := e.certificate()
	if err != nil {
		return nil, "", err
	}
	pc, err := e.api.NewPeerConnection(webrtc.Configuration{
		ICEServers:   e.iceServers,
		Certificates: []webrtc.Certificate{cert},
	})
	if err != nil {
		return nil, "", fmt.Errorf("rtc: peer connection: %w", err)
	}
	c := &Call{
		pc:        pc,
		opts:      o,
		events:    newEventChannel(e.maxMessage),
		log:       e.log,
		wantData:  info.dataLine,
		deadline:  start.Add(o.ConnectTimeout),
		stateSig:  make(chan struct{}, 1),
		connected: make(chan struct{}),
		ending:    make(chan struct{}),
		endReq:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	sdp, err := c.negotiate(ctx, offerSDP)
	if err != nil {
		_ = c.teardown()
		return nil, "", err
	}
	go c.supervise()
	return c, sdp, nil
}

func (c *Call) negotiate(ctx context.Context, offerSDP string) (string, error) {
	track, err := webrtc.NewTrackLocalStaticRTP(opusCapability, "agent-audio", "parley")
	if err != nil {
		return "", fmt.Errorf("rtc: track: %w", err)
	}
	c.player = newPlayer(track, c.opts.OnPlayback, c.connected, c.spawn)
	tr, err := c.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if err != nil {
		return "", fmt.Errorf("rtc: transceiver: %w", err)
	}
	c.pc.OnConnectionStateChange(c.onState)
	c.pc.OnTrack(c.onTrack)
	c.pc.OnDataChannel(c.onDataChannel)
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		return "", &OfferError{Code: CodeUnsupported, Message: err.Error()}
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("rtc: answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("rtc: local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("rtc: gathering candidates: %w", ctx.Err())
	}
	sender := tr.Sender()
	c.spawn(func() { c.readRTCP(sender.Read) })
	return c.pc.LocalDescription().SDP, nil
}

// Events returns the oai-events data channel.
func (c *Call) Events() *EventChannel { return c.events }

// Done is closed when the call has ended (connect timeout, ICE
// disconnected or failed, the browser closed, Close) and everything it
// held is released: after Done, Close is optional.
func (c *Call) Done() <-chan struct{} { return c.done }

// Reason says why the call ended: one of the Reason* constants; "" before
// Done is closed.
func (c *Call) Reason() string {
	select {
	case <-c.done:
		return c.reason
	default:
		return ""
	}
}

// Close ends the call and waits until every goroutine it started has
// exited and the peer connection is closed. It is idempotent and safe
// from any goroutine except the call's own callbacks (OnAudio, OnPlayback,
// OnConnected), where it would wait for itself: use CloseAsync there.
func (c *Call) Close() error {
	c.CloseAsync()
	<-c.done
	return c.closeErr
}

// CloseAsync asks the call to end and returns at once; Done is closed when
// it has. Safe from anywhere, callbacks included.
func (c *Call) CloseAsync() {
	c.endReqOnce.Do(func() { close(c.endReq) })
}

// Play queues one 20 ms Opus packet of tag's audio (copied: the caller
// may reuse packet). It returns false when the call has ended, the queue
// holds MaxQueuedAudio already, or packet is not one 20 ms Opus packet.
// Audio queued before the call is connected is played once it is.
func (c *Call) Play(tag string, opusPacket []byte) bool { return c.player.play(tag, opusPacket) }

// EndOf marks the end of tag's audio: when the player reaches the mark
// (20 ms after writing tag's last packet) it emits Stopped{tag}, if it
// emitted Started{tag} and tag was not cleared.
func (c *Call) EndOf(tag string) { c.player.endOf(tag) }

// Clear drops everything queued now: playback stops within one frame (a
// packet being written completes). It returns the tag that was playing
// (else the first queued one), how much of it was written, and whether it
// was playing (Started emitted, not yet Stopped). No Stopped is emitted
// for a cleared tag.
func (c *Call) Clear() (tag string, playedMS float64, wasPlaying bool) { return c.player.clear() }

// PlayedMS returns how much of tag has been written to the track: exactly
// packets x 20 ms, counted as each packet is taken for writing. Tags are
// remembered for the 16 most recent ones; older or unknown tags give 0.
func (c *Call) PlayedMS(tag string) float64 { return c.player.playedMS(tag) }

// enter registers a goroutine of the call (wg), unless the call is ending.
func (c *Call) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.wg.Add(1)
	return true
}

// spawn starts f as a goroutine of the call; false if the call is ending.
func (c *Call) spawn(f func()) bool {
	if !c.enter() {
		return false
	}
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

func (c *Call) isEnding() bool {
	select {
	case <-c.ending:
		return true
	default:
		return false
	}
}

// onState is pion's connection-state handler (run on a goroutine pion
// starts per change, so changes may be delivered out of order: the
// supervisor reads the current state instead of trusting the argument).
func (c *Call) onState(webrtc.PeerConnectionState) {
	select {
	case c.stateSig <- struct{}{}:
	default:
	}
}

// onTrack runs on the goroutine pion starts for the track, which becomes
// the track's reader.
func (c *Call) onTrack(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	if !c.enter() {
		return
	}
	defer c.wg.Done()
	c.mu.Lock()
	first := c.tracks == 0 && track.Kind() == webrtc.RTPCodecTypeAudio
	c.tracks++
	c.mu.Unlock()
	if first {
		c.spawn(func() { c.readRTCP(receiver.Read) })
	}
	c.readTrack(track, first)
}

func (c *Call) onDataChannel(dc *webrtc.DataChannel) {
	if dc.Label() != EventsLabel {
		_ = dc.Close()
		return
	}
	dc.OnOpen(func() {
		raw, err := dc.Detach()
		if err != nil {
			c.log.Warn().Err(err).Msg("rtc: detach data channel")
			_ = dc.Close()
			return
		}
		if !c.events.attach(raw) {
			_ = raw.Close() // a second oai-events channel, or the call ended
		}
	})
}

// supervise is the call's supervisor goroutine: it waits for the end
// (connect timeout, a terminal state, CloseAsync), fires OnConnected, and
// tears the call down.
func (c *Call) supervise() {
	timer := time.NewTimer(time.Until(c.deadline))
	defer timer.Stop()
	timeout := timer.C
	ready := c.events.Ready()
	connected := false
	var reason string
loop:
	for {
		select {
		case <-c.endReq:
			reason = ReasonClosed
			break loop
		case <-timeout:
			reason = ReasonConnectTimeout
			break loop
		case <-ready:
			ready = nil
		case <-c.stateSig:
			switch c.pc.ConnectionState() {
			case webrtc.PeerConnectionStateConnected:
				if !connected {
					connected = true
					close(c.connected)
					if c.opts.OnConnected != nil {
						c.opts.OnConnected()
					}
				}
			case webrtc.PeerConnectionStateDisconnected:
				reason = ReasonDisconnected
				break loop
			case webrtc.PeerConnectionStateFailed:
				reason = ReasonFailed
				break loop
			case webrtc.PeerConnectionStateClosed:
				reason = ReasonClosed
				break loop
			default:
			}
		}
		if timeout != nil && connected && (ready == nil || !c.wantData) {
			timer.Stop()
			timeout = nil
		}
	}
	err := c.teardown()
	c.reason = reason
	c.closeErr = err
	close(c.done)
}

// teardown stops everything: no new goroutine may start, the player stops,
// the event channel ends, the peer connection closes (pion's GracefulClose
// waits for pion's own goroutines), and then it waits for the call's
// goroutines, which all end when their streams close.
func (c *Call) teardown() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	close(c.ending)
	if c.player != nil {
		c.player.close()
	}
	c.events.end()
	err := c.pc.GracefulClose()
	c.wg.Wait()
	if err != nil {
		return errors.Join(errors.New("rtc: closing the peer connection"), err)
	}
	return nil
}
