package rtc

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"parley/media"
)

// testLogger shows pion's warnings on stderr (seen with -v or on failure).
func testLogger() zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

func newTestEdge(t *testing.T, mod func(*Config)) *Edge {
	t.Helper()
	cfg := Config{UDPAddr: "127.0.0.1:0", IncludeLoopback: true, Logger: testLogger()}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewEdge(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// rtpIn is one RTP packet the test client received.
type rtpIn struct {
	seq    uint16
	ts     uint32
	marker bool
	at     time.Time
}

// testClient plays the browser: a pion peer connection with an Opus
// microphone track and the oai-events data channel, on loopback only.
type testClient struct {
	t      *testing.T
	pc     *webrtc.PeerConnection
	mic    *webrtc.TrackLocalStaticSample
	mic2   *webrtc.TrackLocalStaticSample
	dc     *webrtc.DataChannel
	dcOpen chan struct{}
	msgs   chan webrtc.DataChannelMessage
	other  chan struct{} // closed when the "other" channel closes

	mu   sync.Mutex
	rtp  []rtpIn
	mux  ice.UDPMux
	hole *blackholeConn
	wg   sync.WaitGroup
}

type clientOptions struct {
	blackhole bool // route the client's ICE through a socket the test can cut
	otherDC   bool // also open a data channel with another label
	tcpOnly   bool // ICE over TCP only (the client dials the edge's passive candidate)
	secondMic bool // a second audio track (a second audio m-line)
}

func newTestClient(t *testing.T, o clientOptions) *testClient {
	t.Helper()
	c := &testClient{t: t, dcOpen: make(chan struct{}), msgs: make(chan webrtc.DataChannelMessage, 16), other: make(chan struct{})}
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLoggerFactory{log: testLogger()}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if o.tcpOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 300*time.Millisecond)
	if o.blackhole {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		c.hole = &blackholeConn{PacketConn: conn}
		c.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c.hole})
		se.SetICEUDPMux(c.mux)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c.pc = pc
	c.mic, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"mic", "browser")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pc.AddTrack(c.mic)
	if err != nil {
		t.Fatal(err)
	}
	if o.secondMic {
		c.mic2, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
			"mic2", "browser")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTrack(c.mic2); err != nil {
			t.Fatal(err)
		}
	}
	c.wg.Add(1)
	go func() { // the client's RTCP, as a browser reads it
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnTrack(func(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.wg.Add(1)
		defer c.wg.Done()
		for {
			p, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.rtp = append(c.rtp, rtpIn{seq: p.SequenceNumber, ts: p.Timestamp, marker: p.Marker, at: time.Now()})
			c.mu.Unlock()
		}
	})
	c.dc, err = pc.CreateDataChannel(EventsLabel, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.dc.OnOpen(func() { close(c.dcOpen) })
	c.dc.OnMessage(func(m webrtc.DataChannelMessage) { c.msgs <- m })
	if o.otherDC {
		other, err := pc.CreateDataChannel("other", nil)
		if err != nil {
			t.Fatal(err)
		}
		other.OnClose(func() { close(c.other) })
	}
	return c
}

// offer returns the client's offer as a browser posts it: createOffer's
// SDP, no candidates.
func (c *testClient) offer() string {
	c.t.Helper()
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	return offer.SDP
}

func (c *testClient) answer(sdp string) {
	c.t.Helper()
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testClient) received() []rtpIn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rtpIn(nil), c.rtp...)
}

func (c *testClient) close() {
	if err := c.pc.GracefulClose(); err != nil {
		c.t.Error(err)
	}
	c.wg.Wait()
	if c.mux != nil {
		_ = c.mux.Close()
	}
}

// blackholeConn drops everything both ways once cut.
type blackholeConn struct {
	net.PacketConn
	cut atomic.Bool
}

func (b *blackholeConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := b.PacketConn.ReadFrom(p)
		if err != nil || !b.cut.Load() {
			return n, addr, err
		}
	}
}

func (b *blackholeConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if b.cut.Load() {
		return len(p), nil
	}
	return b.PacketConn.WriteTo(p, addr)
}

// tone returns n 20 ms Opus packets of a 440 Hz tone.
func tone(t testing.TB, n int) [][]byte {
	t.Helper()
	enc, err := media.NewOpusEncoder(48000)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 960)
	var out [][]byte
	for i := 0; i < n; i++ {
		for j := range pcm {
			s := float64(i*960+j) / 48000
			pcm[j] = int16(8000 * math.Sin(2*math.Pi*440*s))
		}
		pkt, err := enc.Encode(pcm, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pkt)
	}
	return out
}

// audioSink accumulates what OnAudio delivers.
type audioSink struct {
	mu        sync.Mutex
	samples   int
	sumSq     float64
	crossings int
	last      int16
	calls     int
}

func (s *audioSink) onAudio(pcm []int16, _ time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	for _, v := range pcm {
		s.sumSq += float64(v) * float64(v)
		if (v >= 0) != (s.last >= 0) {
			s.crossings++
		}
		s.last = v
	}
	s.samples += len(pcm)
}

func (s *audioSink) stats() (samples int, rms float64, crossings int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples > 0 {
		rms = math.Sqrt(s.sumSq / float64(s.samples))
	}
	return s.samples, rms, s.crossings
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitChan(t *testing.T, what string, ch <-chan struct{}, timeout time.Duration) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// readMsg reads one message from ec with a timeout.
func readMsg(t *testing.T, ec *EventChannel, buf []byte) (string, bool, error) {
	t.Helper()
	type res struct {
		n    int
		text bool
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		n, text, err := ec.Read(buf)
		ch <- res{n, text, err}
	}()
	select {
	case r := <-ch:
		return string(buf[:r.n]), r.text, r.err
	case <-time.After(5 * time.Second):
		t.Fatal("timed out reading the data channel")
		return "", false, nil
	}
}

// connected sets up a call between a test client and e.
type connected struct {
	client *testClient
	call   *Call
	audio  *audioSink
	events chan PlaybackEvent
}

func connect(t *testing.T, e *Edge, co clientOptions, o CallOptions) *connected {
	t.Helper()
	cn := &connected{client: newTestClient(t, co), audio: &audioSink{}, events: make(chan PlaybackEvent, 64)}
	onConnected := make(chan struct{})
	o.OnAudio = cn.audio.onAudio
	o.OnPlayback = func(ev PlaybackEvent) { cn.events <- ev }
	o.OnConnected = func() { close(onConnected) }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call, answer, err := e.Accept(ctx, cn.client.offer(), o)
	if err != nil {
		t.Fatal(err)
	}
	cn.call = call
	cn.client.answer(answer)
	waitChan(t, "OnConnected", onConnected, 5*time.Second)
	waitChan(t, "the client's data channel", cn.client.dcOpen, 5*time.Second)
	waitChan(t, "the edge's data channel", call.Events().Ready(), 5*time.Second)
	return cn
}

func (cn *connected) close(t *testing.T) {
	t.Helper()
	if err := cn.call.Close(); err != nil {
		t.Error(err)
	}
	cn.client.close()
}

func TestEndToEnd(t *testing.T) {
	e := newTestEdge(t, nil)
	cn := connect(t, e, clientOptions{otherDC: true}, CallOptions{})
	call, client := cn.call, cn.client

	t.Run("other data channel closed", func(t *testing.T) {
		waitChan(t, "the other channel to close", client.other, 5*time.Second)
	})

	t.Run("data channel", func(t *testing.T) {
		ec := call.Events()
		if err := ec.WriteText([]byte(`{"type":"session.created"}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-client.msgs:
			if !m.IsString || string(m.Data) != `{"type":"session.created"}` {
				t.Fatalf("client got %q (string %v)", m.Data, m.IsString)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("client got nothing")
		}
		big := strings.Repeat("x", 3000)
		for _, send := range []func() error{
			func() error { return client.dc.SendText(`{"type":"response.create"}`) },
			func() error { return client.dc.SendText(big) },
			func() error { return client.dc.Send([]byte{1, 2, 3}) },
			func() error { return client.dc.SendText("") },
		} {
			if err := send(); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 1024)
		if msg, text, err := readMsg(t, ec, buf); err != nil || !text || msg != `{"type":"response.create"}` {
			t.Fatalf("Read = %q, %v, %v", msg, text, err)
		}
		_, _, err := readMsg(t, ec, buf)
		var tooLarge *MessageTooLargeError
		if !errors.Is(err, ErrMessageTooLarge) || !errors.As(err, &tooLarge) || tooLarge.Size != 3000 || tooLarge.Buffer != 1024 {
			t.Fatalf("Read of 3000 bytes into 1024 = %v", err)
		}
		if msg, text, err := readMsg(t, ec, buf); err != nil || text || msg != "\x01\x02\x03" {
			t.Fatalf("Read after the large message = %q, %v, %v", msg, text, err)
		}
		if msg, text, err := readMsg(t, ec, buf); err != nil || !text || msg != "" {
			t.Fatalf("Read of an empty text message = %q, %v, %v", msg, text, err)
		}
		if ec.BufferedAmount() > 1<<20 {
			t.Fatalf("BufferedAmount %d", ec.BufferedAmount())
		}
	})

	t.Run("inbound audio", func(t *testing.T) {
		packets := tone(t, 50)
		ticker := time.NewTicker(FrameDuration)
		for _, p := range packets {
			if err := client.mic.WriteSample(pionmedia.Sample{Data: p, Duration: FrameDuration}); err != nil {
				t.Fatal(err)
			}
			<-ticker.C
		}
		ticker.Stop()
		waitFor(t, "1 s of decoded audio", 3*time.Second, func() bool {
			n, _, _ := cn.audio.stats()
			return n >= 16000
		})
		time.Sleep(100 * time.Millisecond)
		n, rms, crossings := cn.audio.stats()
		seconds := float64(n) / DecodeRate
		t.Logf("decoded %d samples (%.3f s), RMS %.0f, %.0f zero crossings/s", n, seconds, rms, float64(crossings)/seconds)
		if n != 16000 {
			t.Errorf("decoded %d samples, want 16000 (50 packets, no loss on loopback)", n)
		}
		if rms < 2000 {
			t.Errorf("RMS %.0f: the tone did not come through", rms)
		}
		if zc := float64(crossings) / seconds; zc < 800 || zc > 960 {
			t.Errorf("%.0f zero crossings/s, want about 880 (440 Hz)", zc)
		}
	})

	t.Run("playback", func(t *testing.T) {
		packets := tone(t, 50)
		for _, p := range packets[:25] {
			if !call.Play("r1", p) {
				t.Fatal("Play refused a packet")
			}
		}
		call.EndOf("r1")
		waitFor(t, "25 packets at the client", 3*time.Second, func() bool { return len(client.received()) >= 25 })
		started, stopped := nextEvent(t, cn.events), nextEvent(t, cn.events)
		if started.Type != PlaybackStarted || started.Tag != "r1" || stopped.Type != PlaybackStopped || stopped.Tag != "r1" {
			t.Fatalf("events %+v, %+v", started, stopped)
		}
		if d := stopped.At.Sub(started.At); d < 450*time.Millisecond || d > 650*time.Millisecond {
			t.Errorf("Started to Stopped %v, want 500 ms", d)
		}
		got := client.received()
		if len(got) != 25 {
			t.Fatalf("client received %d packets, want 25", len(got))
		}
		checkSpurt(t, got, 0, 25)
		span := got[24].at.Sub(got[0].at)
		t.Logf("25 packets over %v", span)
		if span < 380*time.Millisecond || span > 600*time.Millisecond {
			t.Errorf("25 packets arrived over %v, want 480 ms (20 ms pace)", span)
		}
		if ms := call.PlayedMS("r1"); ms != 500 {
			t.Errorf("PlayedMS(r1) = %v, want 500", ms)
		}

		// Clear mid-playback. (A pause first, so r2 is a new talkspurt:
		// queued in the very tick that emitted r1's Stopped, it would
		// rightly continue r1's, without a marker.)
		time.Sleep(60 * time.Millisecond)
		for _, p := range packets {
			call.Play("r2", p)
		}
		call.EndOf("r2")
		if ev := nextEvent(t, cn.events); ev.Type != PlaybackStarted || ev.Tag != "r2" {
			t.Fatalf("event %+v, want Started r2", ev)
		}
		waitFor(t, "10 packets of r2", 3*time.Second, func() bool { return len(client.received()) >= 35 })
		tag, played, wasPlaying := call.Clear()
		atClear := len(client.received())
		if tag != "r2" || !wasPlaying || played < 200 || played > 400 {
			t.Fatalf("Clear = %q, %v, %v", tag, played, wasPlaying)
		}
		time.Sleep(200 * time.Millisecond)
		after := client.received()
		if extra := len(after) - atClear; extra > 2 {
			t.Errorf("client received %d packets after Clear, want at most 2", extra)
		}
		if ms := call.PlayedMS("r2"); ms != played {
			t.Errorf("PlayedMS(r2) = %v after Clear returned %v", ms, played)
		}
		if r2 := len(after) - 25; float64(r2*20) != played {
			t.Errorf("client received %d packets of r2 (%d ms), PlayedMS %v", r2, r2*20, played)
		}
		checkSpurt(t, after, 25, len(after))
		select {
		case ev := <-cn.events:
			t.Errorf("unexpected event after Clear: %+v", ev)
		default:
		}

		// A new talkspurt after silence: marker, continuous sequence, the
		// timestamp jumps by the silence.
		time.Sleep(200 * time.Millisecond)
		for _, p := range packets[:5] {
			call.Play("r3", p)
		}
		call.EndOf("r3")
		nextEvent(t, cn.events)
		if ev := nextEvent(t, cn.events); ev.Type != PlaybackStopped || ev.Tag != "r3" {
			t.Fatalf("event %+v, want Stopped r3", ev)
		}
		all := client.received()
		n2 := len(after)
		if len(all) != n2+5 {
			t.Fatalf("client received %d packets of r3, want 5", len(all)-n2)
		}
		checkSpurt(t, all, n2, len(all))
		prev, first := all[n2-1], all[n2]
		if first.seq != prev.seq+1 {
			t.Errorf("sequence %d after %d", first.seq, prev.seq)
		}
		wall := first.at.Sub(prev.at).Seconds() * 48000
		if jump := float64(first.ts - prev.ts); math.Abs(jump-wall) > 0.03*48000 {
			t.Errorf("timestamp jumped %v for %.0f of wall clock (48 kHz units)", jump, wall)
		}
	})

	cn.close(t)
	if r := call.Reason(); r != ReasonClosed {
		t.Errorf("Reason %q", r)
	}
	if call.Play("late", tone(t, 1)[0]) {
		t.Error("Play after Close accepted a packet")
	}
	if err := call.Events().WriteText([]byte("x")); !errors.Is(err, ErrCallEnded) {
		t.Errorf("WriteText after Close = %v", err)
	}
	if _, _, err := call.Events().Read(make([]byte, 10)); err != io.EOF {
		t.Errorf("Read after Close = %v", err)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

func nextEvent(t *testing.T, ch <-chan PlaybackEvent) PlaybackEvent {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(3 * time.Second):
		t.Fatal("no playback event")
		return PlaybackEvent{}
	}
}

// checkSpurt checks pkts[from:to] form one talkspurt: marker on the first
// only, continuous sequence numbers, timestamps 960 apart.
func checkSpurt(t *testing.T, pkts []rtpIn, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		p := pkts[i]
		if p.marker != (i == from) {
			t.Errorf("packet %d: marker %v", i, p.marker)
		}
		if i > from {
			if q := pkts[i-1]; p.seq != q.seq+1 || p.ts != q.ts+960 {
				t.Errorf("packet %d: seq %d ts %d after seq %d ts %d", i, p.seq, p.ts, q.seq, q.ts)
			}
		}
	}
}

// TestICETCP: a client that cannot use UDP reaches the edge's ICE-TCP
// listener; audio and events flow.
func TestICETCP(t *testing.T) {
	e := newTestEdge(t, func(c *Config) { c.TCPAddr = "127.0.0.1:0" })
	cn := connect(t, e, clientOptions{tcpOnly: true}, CallOptions{})
	pair, err := cn.client.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("selected pair %v, %v: want TCP", pair, err)
	}
	for _, p := range tone(t, 5) {
		cn.call.Play("t", p)
	}
	waitFor(t, "5 packets over TCP", 3*time.Second, func() bool { return len(cn.client.received()) == 5 })
	if err := cn.call.Events().WriteText([]byte("over tcp")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-cn.client.msgs:
		if string(m.Data) != "over tcp" {
			t.Fatalf("client got %q", m.Data)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("client got nothing")
	}
	cn.close(t)
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

// TestSecondAudioTrack: the first inbound audio track is decoded, a
// second one is read and discarded.
func TestSecondAudioTrack(t *testing.T) {
	e := newTestEdge(t, nil)
	cn := connect(t, e, clientOptions{secondMic: true}, CallOptions{})
	first := tone(t, 25)
	enc, err := media.NewOpusEncoder(48000)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 960)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*2000*float64(i)/48000))
	}
	other, err := enc.Encode(pcm, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(track *webrtc.TrackLocalStaticSample, p []byte) {
		if err := track.WriteSample(pionmedia.Sample{Data: p, Duration: FrameDuration}); err != nil {
			t.Fatal(err)
		}
	}
	write(cn.client.mic, first[0]) // the first track to arrive is the one decoded
	waitFor(t, "the first track", 3*time.Second, func() bool { n, _, _ := cn.audio.stats(); return n > 0 })
	ticker := time.NewTicker(FrameDuration)
	for _, p := range first[1:] {
		<-ticker.C
		write(cn.client.mic, p)
		write(cn.client.mic2, other)
	}
	ticker.Stop()
	waitFor(t, "the second track's reader", 3*time.Second, func() bool {
		cn.call.mu.Lock()
		defer cn.call.mu.Unlock()
		return cn.call.tracks == 2
	})
	time.Sleep(150 * time.Millisecond)
	n, _, crossings := cn.audio.stats()
	zc := float64(crossings) / (float64(n) / DecodeRate)
	if n != 25*320 || zc < 800 || zc > 960 {
		t.Errorf("decoded %d samples at %.0f zero crossings/s, want 8000 of the 440 Hz track", n, zc)
	}
	cn.close(t)
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

func TestConnectTimeout(t *testing.T) {
	e := newTestEdge(t, nil)
	client := newTestClient(t, clientOptions{})
	start := time.Now()
	call, _, err := e.Accept(context.Background(), client.offer(), CallOptions{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The client never sets the answer.
	waitChan(t, "the call to end", call.Done(), 3*time.Second)
	if d := time.Since(start); d < 900*time.Millisecond || d > 2*time.Second {
		t.Errorf("ended after %v, want 1 s", d)
	}
	if r := call.Reason(); r != ReasonConnectTimeout {
		t.Errorf("Reason %q", r)
	}
	if err := call.Close(); err != nil {
		t.Error(err)
	}
	client.close()
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

func TestPeerCloses(t *testing.T) {
	e := newTestEdge(t, nil)
	cn := connect(t, e, clientOptions{}, CallOptions{})
	readErr := make(chan error, 1)
	go func() { // the gateway's reader sees the end
		_, _, err := cn.call.Events().Read(make([]byte, 100))
		readErr <- err
	}()
	start := time.Now()
	cn.client.close()
	waitChan(t, "the call to end", cn.call.Done(), 5*time.Second)
	t.Logf("ended %v after the client closed: %s", time.Since(start), cn.call.Reason())
	switch cn.call.Reason() {
	case ReasonClosed, ReasonDisconnected, ReasonFailed:
	default:
		t.Errorf("Reason %q", cn.call.Reason())
	}
	if err := <-readErr; err != io.EOF {
		t.Errorf("Read = %v, want io.EOF", err)
	}
	if err := cn.call.Close(); err != nil {
		t.Error(err)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

func TestPeerVanishes(t *testing.T) {
	e := newTestEdge(t, func(c *Config) { c.DisconnectedTimeout = time.Second })
	cn := connect(t, e, clientOptions{blackhole: true}, CallOptions{})
	start := time.Now()
	cn.client.hole.cut.Store(true) // the tab is killed: nothing more arrives
	waitChan(t, "the call to end", cn.call.Done(), 5*time.Second)
	t.Logf("ended %v after the client vanished", time.Since(start))
	if r := cn.call.Reason(); r != ReasonDisconnected {
		t.Errorf("Reason %q, want %q", r, ReasonDisconnected)
	}
	cn.close(t)
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

// TestAcceptChromeOffer answers a real browser's offer (nobody connects).
func TestAcceptChromeOffer(t *testing.T) {
	e := newTestEdge(t, nil)
	call, answer, err := e.Accept(context.Background(), chromeOffer, CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(e.UDPAddr().Port)
	for _, want := range []string{
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
		"a=rtpmap:111 opus/48000/2\r\n",
		"a=fmtp:111 minptime=10;useinbandfec=1\r\n",
		"a=msid:parley agent-audio\r\n",
		"a=sendrecv\r\n",
		"a=mid:0\r\n",
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
		"a=max-message-size:262144\r\n",
		"a=setup:active\r\n",
		"a=group:BUNDLE 0 1\r\n",
		"127.0.0.1 " + port + " typ host",
		"a=end-of-candidates",
	} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q:\n%s", want, answer)
		}
	}
	for _, bad := range []string{"red/48000", "G722", "transport-cc", "a=candidate:1 1 tcp"} {
		if strings.Contains(answer, bad) {
			t.Errorf("answer has %q", bad)
		}
	}
	if err := call.Close(); err != nil {
		t.Error(err)
	}
	if r := call.Reason(); r != ReasonClosed {
		t.Errorf("Reason %q", r)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	if _, _, err := e.Accept(context.Background(), chromeOffer, CallOptions{}); !errors.Is(err, ErrEdgeClosed) {
		t.Errorf("Accept after Close = %v", err)
	}
	goleak.VerifyNone(t)
}

// TestAcceptValidOffers: what CheckOffer accepts, pion answers.
func TestAcceptValidOffers(t *testing.T) {
	e := newTestEdge(t, nil)
	audio := chromeOffer[strings.Index(chromeOffer, "m=audio"):strings.Index(chromeOffer, "m=application")]
	for name, tc := range map[string]struct{ offer, want string }{
		"LF endings":                       {strings.ReplaceAll(chromeOffer, "\r\n", "\n"), "a=sendrecv"},
		"recvonly audio":                   {edit(t, "a=sendrecv", "a=recvonly"), "a=sendonly"},
		"no data channel":                  {chromeOffer[:strings.Index(chromeOffer, "m=application")], "a=sendrecv"},
		"data channel first in the bundle": {edit(t, "a=group:BUNDLE 0 1", "a=group:BUNDLE 1 0"), "a=sendrecv"},
		"two audio m-lines": {strings.Replace(chromeOffer, "a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2", 1) +
			strings.ReplaceAll(strings.ReplaceAll(audio, "a=mid:0", "a=mid:2"), "3735928559", "3735928560"), "a=mid:2"},
		"Firefox style, session-level ICE": {crlf(`v=0
o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 A3:FD:06:6A:62:BA:4C:F4:84:C3:2F:63:57:10:23:23:0C:12:78:FD:1A:10:3D:34:B9:A8:43:E9:A5:89:66:1F
a=group:BUNDLE 0
a=ice-options:trickle
a=msid-semantic:WMS *
a=ice-ufrag:5a1c7b9e
a=ice-pwd:0f1e2d3c4b5a69788796a5b4c3d2e1f0
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a=sendrecv
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=mid:0
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=setup:actpass
a=ssrc:1111111111 cname:{7d230ae0-f69c-414f-88dc-0c1301b6c2a8}
`), "a=rtpmap:109 opus/48000/2"},
	} {
		if err := CheckOffer(tc.offer); err != nil {
			t.Errorf("%s: CheckOffer: %v", name, err)
			continue
		}
		call, answer, err := e.Accept(context.Background(), tc.offer, CallOptions{})
		if err != nil {
			t.Errorf("%s: Accept: %v", name, err)
			continue
		}
		if !strings.Contains(answer, tc.want) || !strings.Contains(answer, "opus/48000/2") {
			t.Errorf("%s: answer lacks %q:\n%s", name, tc.want, answer)
		}
		if err := call.Close(); err != nil {
			t.Error(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

func TestAcceptErrors(t *testing.T) {
	e := newTestEdge(t, nil)
	var oe *OfferError
	if _, _, err := e.Accept(context.Background(), "v=0", CallOptions{}); !errors.As(err, &oe) || oe.Code != CodeInvalidSDP {
		t.Errorf("bad offer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := e.Accept(ctx, chromeOffer, CallOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}

func TestNewEdgeErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{UDPAddr: "127.0.0.1:0"}, // loopback without IncludeLoopback
		{UDPAddr: "nonsense"},
		{UDPAddr: "0.0.0.0:0", NAT1To1IPs: []string{"my.host"}},
		{UDPAddr: "0.0.0.0:0", ICEServers: []ICEServer{{URLs: []string{"http://x"}}}},
		{UDPAddr: "0.0.0.0:0", ICEServers: []ICEServer{{URLs: []string{"turn:turn.example.com"}}}},
		{UDPAddr: "0.0.0.0:0", MaxMessageSize: 10 << 20},
		{UDPAddr: "0.0.0.0:0", TCPAddr: "nonsense"},
	} {
		cfg.Logger = zerolog.Nop()
		if e, err := NewEdge(cfg); err == nil {
			_ = e.Close()
			t.Errorf("NewEdge(%+v) accepted", cfg)
		}
	}
	e, err := NewEdge(Config{UDPAddr: "0.0.0.0:0", TCPAddr: "127.0.0.1:0", NAT1To1IPs: []string{"203.0.113.7"},
		ICEServers: []ICEServer{{URLs: []string{"stun:stun.example.com:3478"}}}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Error(err)
	}
	goleak.VerifyNone(t)
}
