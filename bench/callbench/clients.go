package main

// The clients, in the harness process: pion callers (rtctest) for WebRTC,
// coder/websocket clients for the WebSocket sessions. Both stream the same
// script in real time and count what comes back.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"parley/rtc/rtctest"
)

// transport is what a group of sessions uses.
type transport string

const (
	tWebRTC transport = "webrtc"
	tWSPCM  transport = "ws-pcm"
	tWSOpus transport = "ws-opus"
)

func (t transport) describe() string {
	switch t {
	case tWebRTC:
		return "WebRTC call (Opus over SRTP, events on the data channel)"
	case tWSPCM:
		return "WebSocket, appends of audio/pcm 24 kHz base64 (20 ms each)"
	case tWSOpus:
		return "WebSocket, appends of audio/opus (one 20 ms packet each)"
	}
	return string(t)
}

// client is one session of any transport.
type client interface {
	// stream sends the script from frame offset in real time (one frame
	// per 20 ms) until ctx ends, for at most d.
	stream(ctx context.Context, sc *script, offset int, d time.Duration) error
	// silence sends n frames of silence in real time.
	silence(ctx context.Context, sc *script, n int) error
	// speak asks for a response (the agent's long answer); cancel ends it.
	speak() error
	cancel() error
	// audio is how much of the agent's audio has arrived.
	audio() time.Duration
	counts() *counters
	close()
}

// counters are a client's received events.
type counters struct {
	events, errors, speechStarted, transcripts atomic.Int64
}

// errorLog keeps the first few errors of a run.
type errorLog struct {
	mu      sync.Mutex
	samples []string
	n       atomic.Int64
}

func (l *errorLog) add(format string, args ...any) {
	l.n.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) < 5 {
		l.samples = append(l.samples, fmt.Sprintf(format, args...))
	}
}

func (l *errorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.samples...)
}

// Session settings: server_vad without responses (no agent runs while
// listening), and a voice of its own per session (the child's synthesizer
// keeps one clock per voice).
func turnDetectionJSON() string {
	return `"turn_detection":{"type":"server_vad","create_response":false}`
}

func voiceOf(i int) string { return "callbench-" + strconv.Itoa(i) }

// clientAPI builds the pion API of every caller: UDP over IPv4 loopback
// only (one socket per caller), no mDNS, Opus, and the RTCP report
// interceptors a browser's reports stand for.
func clientAPI(logw io.Writer) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	lf := logging.NewDefaultLoggerFactory()
	lf.Writer = logw
	lf.DefaultLogLevel = logging.LogLevelError
	se.LoggerFactory = lf
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir)), nil
}

// signalHTTP posts offers and mints keys; no proxy, ever (loopback).
var signalHTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}

// mintBody is the client_secrets request of call i: the session settings
// ride the ephemeral key, as a browser's would.
func mintBody(i int) string {
	return `{"session":{"type":"realtime","model":"` + agentID + `","audio":{"input":{` + turnDetectionJSON() +
		`},"output":{"voice":"` + voiceOf(i) + `"}}}}`
}

// rtcClient is one WebRTC call.
type rtcClient struct {
	c    *rtctest.Caller
	cnt  counters
	errs *errorLog
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// dialRTC mints an ephemeral key and calls; it returns once the data
// channel is open and session.created has arrived.
func dialRTC(ctx context.Context, base string, api *webrtc.API, i int, errs *errorLog) (*rtcClient, error) {
	key, err := rtctest.Mint(ctx, base, benchKey, mintBody(i))
	if err != nil {
		return nil, err
	}
	c, err := rtctest.Dial(ctx, base, key, rtctest.Options{API: api, Client: signalHTTP})
	if err != nil {
		return nil, err
	}
	evs, err := c.Until("session.created", 10*time.Second, false)
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := checkSession(evs[len(evs)-1]); err != nil {
		c.Close()
		return nil, err
	}
	rc := &rtcClient{c: c, errs: errs, stop: make(chan struct{})}
	rc.wg.Add(1)
	go rc.drain()
	return rc, nil
}

// checkSession verifies that the call got the settings it was minted with.
func checkSession(ev map[string]any) error {
	b, _ := json.Marshal(ev)
	var s struct {
		Session struct {
			Audio struct {
				Input struct {
					TurnDetection *struct {
						Type           string `json:"type"`
						CreateResponse bool   `json:"create_response"`
					} `json:"turn_detection"`
				} `json:"input"`
			} `json:"audio"`
		} `json:"session"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	td := s.Session.Audio.Input.TurnDetection
	if td == nil || td.Type != "server_vad" || td.CreateResponse {
		return fmt.Errorf("the call's session has turn_detection %+v, want server_vad without create_response", td)
	}
	return nil
}

// drain reads the call's events (the caller's buffer would otherwise fill).
func (r *rtcClient) drain() {
	defer r.wg.Done()
	for {
		select {
		case ev := <-r.c.Events:
			r.cnt.events.Add(1)
			switch typ, _ := ev["type"].(string); typ {
			case "error":
				r.cnt.errors.Add(1)
				b, _ := json.Marshal(ev["error"])
				r.errs.add("webrtc: error event: %.300s", b)
			case "input_audio_buffer.speech_started":
				r.cnt.speechStarted.Add(1)
			case "conversation.item.input_audio_transcription.completed":
				r.cnt.transcripts.Add(1)
			}
		case <-r.stop:
			return
		}
	}
}

func (r *rtcClient) stream(ctx context.Context, sc *script, offset int, d time.Duration) error {
	ps := make([][]byte, int(d/frame)+1)
	for k := range ps {
		ps[k] = sc.opus[(offset+k)%len(sc.opus)]
	}
	err := r.c.SendPackets(ctx, ps, frame)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (r *rtcClient) silence(ctx context.Context, sc *script, n int) error {
	ps := make([][]byte, n)
	for k := range ps {
		ps[k] = sc.silenceOpus
	}
	return r.c.SendPackets(ctx, ps, frame)
}

func (r *rtcClient) speak() error         { return r.c.Send(`{"type":"response.create"}`) }
func (r *rtcClient) cancel() error        { return r.c.Send(`{"type":"response.cancel"}`) }
func (r *rtcClient) audio() time.Duration { return time.Duration(r.c.Packets()) * frame }
func (r *rtcClient) counts() *counters    { return &r.cnt }

func (r *rtcClient) close() {
	r.once.Do(func() {
		close(r.stop)
		r.wg.Wait()
		r.c.Close()
		if bad := r.c.BadEvents(); len(bad) > 0 {
			r.errs.add("webrtc: %d data channel messages dropped or not JSON (first: %.200s)", len(bad), bad[0])
		}
	})
}

// wsHTTP dials the WebSocket connections: one connection each, no proxy.
var wsHTTP = &http.Client{Transport: &http.Transport{
	Proxy:              nil,
	DialContext:        (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}).DialContext,
	DisableCompression: true,
	MaxIdleConns:       1,
}}

// wsClient is one WebSocket voice session.
type wsClient struct {
	t        transport
	conn     *websocket.Conn
	ctx      context.Context // the connection's lifetime
	stopConn context.CancelFunc
	cnt      counters
	errs     *errorLog
	samples  atomic.Int64 // 24 kHz samples of agent audio received
	updated  chan struct{}
	done     chan struct{} // the reader ended
	once     sync.Once
}

// dialWS opens a session and configures its input format (audio/pcm or
// audio/opus), server_vad without responses, and spoken answers in
// audio/pcm; it returns once session.updated has arrived.
func dialWS(ctx context.Context, addr string, t transport, i int, errs *errorLog) (*wsClient, error) {
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, "ws://"+addr+"/v1/realtime?model="+agentID, &websocket.DialOptions{
		HTTPClient: wsHTTP, HTTPHeader: http.Header{"Authorization": {"Bearer " + benchKey}}})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	w := &wsClient{t: t, conn: conn, errs: errs, updated: make(chan struct{}), done: make(chan struct{})}
	w.ctx, w.stopConn = context.WithCancel(context.Background())
	_, b, err := conn.Read(dctx)
	if err != nil || eventType(b) != "session.created" {
		w.stopConn()
		conn.CloseNow()
		return nil, fmt.Errorf("first event %.200q, %v; want session.created", b, err)
	}
	format := "audio/pcm"
	if t == tWSOpus {
		format = "audio/opus"
	}
	update := `{"type":"session.update","session":{"type":"realtime","output_modalities":["audio"],"audio":{"input":{"format":{"type":"` +
		format + `"},` + turnDetectionJSON() + `},"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"` + voiceOf(i) + `"}}}}`
	go w.read()
	if err := conn.Write(dctx, websocket.MessageText, []byte(update)); err != nil {
		w.close()
		return nil, fmt.Errorf("session.update: %w", err)
	}
	select {
	case <-w.updated:
		return w, nil
	case <-w.done:
		w.close()
		return nil, errors.New("the connection ended before session.updated")
	case <-dctx.Done():
		w.close()
		return nil, fmt.Errorf("no session.updated: %w", dctx.Err())
	}
}

// read counts the session's events until the connection ends.
func (w *wsClient) read() {
	defer close(w.done)
	buf := make([]byte, 0, 16<<10)
	updated := false
	for {
		_, rd, err := w.conn.Reader(w.ctx)
		if err != nil {
			return
		}
		b := buf[:0]
		for {
			if len(b) == cap(b) {
				b = append(b, 0)[:len(b)]
			}
			n, err := rd.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		buf = b
		w.cnt.events.Add(1)
		switch eventType(b) {
		case "response.output_audio.delta":
			w.samples.Add(deltaSamples(b))
		case "session.updated":
			if !updated {
				updated = true
				close(w.updated)
			}
		case "input_audio_buffer.speech_started":
			w.cnt.speechStarted.Add(1)
		case "conversation.item.input_audio_transcription.completed":
			w.cnt.transcripts.Add(1)
		case "error":
			w.cnt.errors.Add(1)
			w.errs.add("%s: error event: %.300s", w.t, b)
		}
	}
}

func (w *wsClient) send(b []byte) error {
	return w.conn.Write(w.ctx, websocket.MessageText, b)
}

// stream writes the script's append events, one per 20 ms tick. ctx only
// stops the loop: cancelling a write's context would close the connection.
func (w *wsClient) stream(ctx context.Context, sc *script, offset int, d time.Duration) error {
	evs := sc.pcmEvents
	if w.t == tWSOpus {
		evs = sc.opusEvents
	}
	t := time.NewTicker(frame)
	defer t.Stop()
	for k := offset; k <= offset+int(d/frame); k++ {
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
		if err := w.send(evs[k%len(evs)]); err != nil {
			return err
		}
	}
	return nil
}

func (w *wsClient) silence(ctx context.Context, sc *script, n int) error {
	ev := sc.silencePCMEvent
	if w.t == tWSOpus {
		ev = sc.silenceOpusEvent
	}
	t := time.NewTicker(frame)
	defer t.Stop()
	for range n {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := w.send(ev); err != nil {
			return err
		}
	}
	return nil
}

func (w *wsClient) speak() error  { return w.send([]byte(`{"type":"response.create"}`)) }
func (w *wsClient) cancel() error { return w.send([]byte(`{"type":"response.cancel"}`)) }
func (w *wsClient) audio() time.Duration {
	return time.Duration(w.samples.Load()) * time.Second / 24000
}
func (w *wsClient) counts() *counters { return &w.cnt }

func (w *wsClient) close() {
	w.once.Do(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if w.conn.Close(websocket.StatusNormalClosure, "") != nil {
				w.conn.CloseNow()
			}
		}()
		select {
		case <-done:
		case <-cctx.Done():
			w.conn.CloseNow()
			<-done
		}
		w.stopConn()
		<-w.done
	})
}

// eventType returns the "type" of a server event: the gateway writes it
// first; anything else takes the slow path.
func eventType(b []byte) string {
	const pre = `{"type":"`
	if bytes.HasPrefix(b, []byte(pre)) {
		if i := bytes.IndexByte(b[len(pre):], '"'); i >= 0 {
			return string(b[len(pre) : len(pre)+i])
		}
	}
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &ev)
	return ev.Type
}

// deltaSamples returns the 16-bit samples in a response.output_audio.delta
// event's base64 "delta", from its length.
func deltaSamples(b []byte) int64 {
	const key = `"delta":"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0
	}
	n := j / 4 * 3
	if j >= 1 && rest[j-1] == '=' {
		n--
	}
	if j >= 2 && rest[j-2] == '=' {
		n--
	}
	return int64(n / 2)
}
