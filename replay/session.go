// Package replay plays session recordings (package recording) against a
// Parley gateway, one session or many at once, and measures what a user
// would feel: connection time, transcripts, the first word and the first
// audio of each answer. `parley replay` is its command line.
package replay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"parley/recording"
)

// Options configure sessions.
type Options struct {
	// URL is the gateway's base URL (http, https, ws or wss).
	URL string
	// Key is the API key (sk_…) or an ephemeral key.
	Key string
	// Agent overrides the recordings' agents when set.
	Agent string
	// Speed divides every delay (2 plays twice as fast); 0 means 1.
	Speed float64
	// Timeout bounds each wait for the gateway: the connection, an await,
	// the last answer (default 30 s).
	Timeout time.Duration
	// HTTPClient dials (for TLS settings); nil uses http.DefaultClient.
	HTTPClient *http.Client
	// Transport is "websocket" (default) or "webrtc": a call with the
	// audio on an Opus track and the events on the data channel.
	Transport string
}

// Transports.
const (
	TransportWebSocket = "websocket"
	TransportWebRTC    = "webrtc"
)

func (o *Options) defaults() {
	if o.Transport == "" {
		o.Transport = TransportWebSocket
	}
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
}

// Metric names, in report order.
const (
	MConnect         = "connect"           // dial to session.created
	MTranscriptFirst = "transcript_first"  // end of turn to the first partial transcript
	MTranscriptFinal = "transcript_final"  // end of turn to the final transcript
	MReplyFirstToken = "reply_first_token" // end of turn to the answer's first text
	MReplyFirstAudio = "reply_first_audio" // start of turn to the answer's first audio
	MTurnToAudio     = "turn_to_audio"     // end of turn to the answer's first audio
	MReplyDone       = "reply_done"        // end of turn to response.done
)

// Metrics lists the metric names in report order.
var Metrics = []string{MConnect, MTranscriptFirst, MTranscriptFinal, MReplyFirstToken, MReplyFirstAudio, MTurnToAudio, MReplyDone}

// Error kinds.
const (
	KindUnreachable = "unreachable" // the gateway could not be reached
	KindAuth        = "auth"        // the key was refused (401/403)
	KindRefused     = "refused"     // another refusal of the session (4xx/5xx, limits)
	KindProtocol    = "protocol"    // an error event from the gateway
	KindTimeout     = "timeout"     // the gateway did not answer in time
	KindExpectation = "expectation" // an answer did not meet the recording's expectation
	KindClosed      = "closed"      // the gateway closed the session early
	KindCancelled   = "cancelled"   // the run ended (duration, signal) mid-session
	KindOverload    = "overload"    // the replay client itself fell behind (measurements incomplete)
)

// Failure is one thing that went wrong in a session.
type Failure struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Turn is what one answer measured (durations; zero when not seen).
type Turn struct {
	Index    int                      `json:"index"`
	Status   string                   `json:"status"`
	Spoken   bool                     `json:"spoken"` // the turn was the visitor's speech
	Times    map[string]time.Duration `json:"-"`
	Reply    string                   `json:"-"`
	Heard    string                   `json:"-"` // the visitor's transcript
	turnFrom time.Time                // the turn's first input
	endAt    time.Time                // end of turn (speech_stopped or response.create)
}

// Result is one session's outcome.
type Result struct {
	Recording string        `json:"recording"`
	Start     time.Time     `json:"start"`
	Connect   time.Duration `json:"connect_ns"`
	Turns     []*Turn       `json:"turns"`
	Failures  []Failure     `json:"failures"`
	Duration  time.Duration `json:"duration_ns"`
}

// OK reports whether the session had no failure.
func (r *Result) OK() bool { return len(r.Failures) == 0 }

func (r *Result) fail(kind, format string, args ...any) {
	r.Failures = append(r.Failures, Failure{Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// serverEvent is what the replay reads of a server event (audio payloads
// are skipped by the decoder).
type serverEvent struct {
	Type       string `json:"type"`
	Delta      string `json:"delta"`
	Transcript string `json:"transcript"`
	Error      *struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Response *struct {
		Status string `json:"status"`
	} `json:"response"`
	at time.Time
}

// endpoint turns a base URL into the realtime WebSocket URL for agent.
func endpoint(base, agent string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("gateway URL %q is not a URL like http://localhost:8080", base)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("gateway URL %q: the scheme must be http, https, ws or wss", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/v1/realtime"
	u.RawQuery = url.Values{"model": {agent}}.Encode()
	return u.String(), nil
}

// Play runs rec once against the gateway and reports what it measured.
// It returns an error only for a recording it cannot play (no agent);
// everything the gateway does wrong is in the Result's Failures.
func Play(ctx context.Context, rec *recording.Recording, o Options) (*Result, error) {
	o.defaults()
	agent := o.Agent
	if agent == "" {
		agent = rec.Header.Agent
	}
	if agent == "" {
		return nil, &recording.Error{Path: rec.Path, Line: 1, Err: errors.New(`no agent: the header has no "agent" and none was given (-agent)`)}
	}
	if o.Transport == TransportWebRTC && len(rec.Events) > 0 && rec.Header.AudioFormat != "" && rec.Header.AudioFormat != recording.AudioOpus {
		return nil, &recording.Error{Path: rec.Path, Line: 1, Err: fmt.Errorf("a WebRTC replay sends Opus: the recording's audio is %s (make it with parley record -format opus)", rec.Header.AudioFormat)}
	}
	res := &Result{Recording: rec.Path, Start: time.Now()}
	defer func() { res.Duration = time.Since(res.Start) }()
	p := &player{rec: rec, o: o, res: res, events: make(chan serverEvent, 1024), readErr: make(chan error, 1), dialed: time.Now()}
	var err error
	switch o.Transport {
	case TransportWebSocket:
		p.t, err = dialSocket(ctx, o, agent, p, res)
	case TransportWebRTC:
		p.t, err = dialCall(ctx, o, agent, p, res)
	default:
		return nil, fmt.Errorf("transport %q is not websocket or webrtc", o.Transport)
	}
	if err != nil {
		return nil, err
	}
	if p.t == nil { // the failure is in res
		return res, nil
	}
	p.run(ctx)
	p.t.close()
	return res, nil
}

// transport carries one session's events and audio.
type transport interface {
	writeEvent(ctx context.Context, b []byte) error
	// writeAudio sends one chunk of the recording's audio.
	writeAudio(ctx context.Context, chunk []byte) error
	close()
}

// wsTransport is a session over the realtime WebSocket.
type wsTransport struct {
	conn *websocket.Conn
	buf  []byte
}

// dialSocket opens the WebSocket session and starts reading it into p;
// a refused or failed dial is recorded in res (nil transport).
func dialSocket(ctx context.Context, o Options, agent string, p *player, res *Result) (transport, error) {
	target, err := endpoint(o.URL, agent)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	conn, resp, err := websocket.Dial(dctx, target, &websocket.DialOptions{
		HTTPClient: o.HTTPClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + o.Key}},
	})
	cancel()
	if err != nil {
		kind := KindUnreachable
		if resp != nil {
			kind = KindRefused
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				kind = KindAuth
			}
			res.fail(kind, "%s: HTTP %d", target, resp.StatusCode)
		} else if ctx.Err() != nil {
			res.fail(KindCancelled, "cancelled while connecting")
		} else {
			res.fail(kind, "%s: %v", target, err)
		}
		return nil, nil
	}
	conn.SetReadLimit(16 << 20)
	t := &wsTransport{conn: conn, buf: make([]byte, 0, 4096)}
	go t.read(ctx, p)
	return t, nil
}

func (t *wsTransport) read(ctx context.Context, p *player) {
	for {
		_, b, err := t.conn.Read(ctx)
		if err != nil {
			p.readErr <- err
			close(p.events)
			return
		}
		var ev serverEvent
		if bytes.HasPrefix(b, audioDeltaPrefix) {
			// Most of a spoken answer's bytes: only its arrival matters, so
			// its base64 audio is not decoded into a string.
			ev.Type = "response.output_audio.delta"
		} else if json.Unmarshal(b, &ev) != nil {
			continue
		}
		ev.at = time.Now()
		select {
		case p.events <- ev:
		case <-ctx.Done():
		}
	}
}

// audioDeltaPrefix starts every response.output_audio.delta Parley sends
// (the type comes first; another gateway's order only costs a decode).
var audioDeltaPrefix = []byte(`{"type":"response.output_audio.delta"`)

func (t *wsTransport) writeEvent(ctx context.Context, b []byte) error {
	return t.conn.Write(ctx, websocket.MessageText, b)
}

func (t *wsTransport) writeAudio(ctx context.Context, chunk []byte) error {
	t.buf = append(t.buf[:0], `{"type":"input_audio_buffer.append","audio":"`...)
	t.buf = base64.StdEncoding.AppendEncode(t.buf, chunk)
	t.buf = append(t.buf, `"}`...)
	return t.conn.Write(ctx, websocket.MessageText, t.buf)
}

func (t *wsTransport) close() { _ = t.conn.Close(websocket.StatusNormalClosure, "replay done") }

// player drives one session: it sends the recording's events on their
// schedule while it consumes the server's events.
type player struct {
	rec     *recording.Recording
	o       Options
	res     *Result
	t       transport
	dialed  time.Time // when the dial began
	events  chan serverEvent
	readErr chan error

	seen      map[string]int         // server events seen, by type
	baseline  map[string]int         // seen when the last await was met
	arrived   map[string][]time.Time // arrival times of awaitable events
	expects   []*expectation
	cur       *Turn // the answer being measured
	pendEnd   time.Time
	pendFrom  time.Time
	spoken    bool
	heard     string
	active    bool // a response is under way (response.create sent or created)
	committed bool // speech ended and no answer yet
	closed    bool
	turnFrom  time.Time
	early     map[string]time.Duration // transcript times before the answer began
}

type expectation struct {
	recording.Expect
	line int
}

// run plays the events, then waits for the last answer.
func (p *player) run(ctx context.Context) {
	p.seen, p.baseline, p.arrived = map[string]int{}, map[string]int{}, map[string][]time.Time{}
	// session.created first: connect counts from the dial (for a call:
	// the key, the offer, ICE and DTLS) to its arrival.
	at, ok := p.waitFor(ctx, "session.created", time.Now(), 0)
	if !ok {
		return
	}
	p.res.Connect = at.Sub(p.dialed)
	sched := time.Now()
	for i, ev := range p.rec.Events {
		line := p.rec.Lines[i]
		if ev.Await != "" {
			at, ok := p.waitFor(ctx, ev.Await, time.Now(), line)
			if !ok {
				return
			}
			// dt counts from the awaited event's arrival, which may be
			// while earlier audio was still streaming.
			sched = at
			for k, v := range p.seen {
				p.baseline[k] = v
			}
		}
		sched = sched.Add(time.Duration(ev.Delay / p.o.Speed * float64(time.Millisecond)))
		if !p.sleepUntil(ctx, sched) {
			return
		}
		var err error
		switch {
		case ev.Expect != nil:
			p.expects = append(p.expects, &expectation{Expect: *ev.Expect, line: line})
			continue
		case ev.Audio != nil:
			if p.turnFrom.IsZero() {
				p.turnFrom = time.Now()
			}
			err = p.t.writeAudio(ctx, ev.Audio)
		default:
			p.noteSend(ev.Send)
			err = p.t.writeEvent(ctx, ev.Send)
		}
		if err != nil {
			if ctx.Err() != nil {
				p.res.fail(KindCancelled, "cancelled at %s:%d", p.rec.Path, line)
			} else if !p.closed {
				p.res.fail(KindClosed, "%s:%d: the connection failed: %v", p.rec.Path, line, err)
			}
			return
		}
	}
	// The last answer, if one is coming.
	deadline := time.Now().Add(p.o.Timeout)
	for p.active || p.committed || len(p.expects) > 0 {
		if !p.next(ctx, deadline, "the last answer", 0) {
			return
		}
	}
}

// noteSend tracks what a sent client event starts.
func (p *player) noteSend(raw json.RawMessage) {
	var probe struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw, &probe)
	switch probe.Type {
	case "conversation.item.create":
		if p.turnFrom.IsZero() {
			p.turnFrom = time.Now()
		}
	case "response.create":
		p.active = true
		p.pendEnd, p.pendFrom, p.spoken = time.Now(), p.turnFrom, false
		if p.pendFrom.IsZero() {
			p.pendFrom = p.pendEnd
		}
		p.turnFrom = time.Time{}
	}
}

// waitFor consumes server events until one of typ has arrived since the
// previous await was met (or the session began), and returns when that
// one arrived.
func (p *player) waitFor(ctx context.Context, typ string, from time.Time, line int) (time.Time, bool) {
	deadline := from.Add(p.o.Timeout)
	for p.seen[typ] <= p.baseline[typ] {
		what := typ
		if line > 0 {
			what = fmt.Sprintf("%s (awaited at %s:%d)", typ, p.rec.Path, line)
		}
		if !p.next(ctx, deadline, what, line) {
			return time.Time{}, false
		}
	}
	return p.arrived[typ][p.baseline[typ]], true
}

// sleepUntil consumes server events until t.
func (p *player) sleepUntil(ctx context.Context, t time.Time) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		timer := time.NewTimer(d)
		select {
		case ev, ok := <-p.events:
			timer.Stop()
			if !ok {
				return p.gone(ctx, "")
			}
			p.handle(ev)
		case <-timer.C:
			return true
		case <-ctx.Done():
			timer.Stop()
			p.res.fail(KindCancelled, "cancelled")
			return false
		}
	}
}

// next consumes one server event before deadline.
func (p *player) next(ctx context.Context, deadline time.Time, what string, line int) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case ev, ok := <-p.events:
		if !ok {
			return p.gone(ctx, what)
		}
		p.handle(ev)
		return true
	case <-timer.C:
		p.res.fail(KindTimeout, "no %s within %v", what, p.o.Timeout)
		return false
	case <-ctx.Done():
		p.res.fail(KindCancelled, "cancelled waiting for %s", what)
		return false
	}
}

// gone reports the connection's end while the replay still needed it.
func (p *player) gone(ctx context.Context, what string) bool {
	p.closed = true
	err := <-p.readErr
	switch {
	case ctx.Err() != nil:
		p.res.fail(KindCancelled, "cancelled")
	case websocket.CloseStatus(err) != -1:
		var ce websocket.CloseError
		errors.As(err, &ce)
		msg := fmt.Sprintf("the gateway closed the session (%d %s)", ce.Code, ce.Reason)
		if what != "" {
			msg += " while waiting for " + what
		}
		p.res.fail(KindClosed, "%s", msg)
	default:
		p.res.fail(KindClosed, "the connection ended: %v", err)
	}
	return false
}

// handle updates the turn being measured with one server event.
func (p *player) handle(ev serverEvent) {
	p.seen[ev.Type]++
	if awaitable[ev.Type] {
		p.arrived[ev.Type] = append(p.arrived[ev.Type], ev.at)
	}
	switch ev.Type {
	case "error":
		if ev.Error != nil {
			p.res.fail(KindProtocol, "%s: %s", ev.Error.Code, ev.Error.Message)
		}
	case "input_audio_buffer.speech_stopped":
		p.committed = true
		p.pendEnd, p.pendFrom, p.spoken = ev.at, p.turnFrom, true
		p.turnFrom = time.Time{}
	case "conversation.item.input_audio_transcription.delta":
		p.mark(MTranscriptFirst, ev.at)
	case "conversation.item.input_audio_transcription.completed":
		p.mark(MTranscriptFirst, ev.at)
		p.mark(MTranscriptFinal, ev.at)
		p.heard = ev.Transcript
	case "response.created":
		p.active = true
		p.cur = &Turn{Index: len(p.res.Turns), Spoken: p.spoken, Times: map[string]time.Duration{}, endAt: p.pendEnd, turnFrom: p.pendFrom}
		if p.cur.endAt.IsZero() {
			p.cur.endAt = ev.at
		}
		p.carry()
	case "response.output_text.delta", "response.output_audio_transcript.delta":
		if t := p.turn(ev.at); t != nil {
			p.markTurn(t, MReplyFirstToken, ev.at)
			t.Reply += ev.Delta
		}
	case "response.output_audio.delta":
		t := p.cur
		if t == nil && len(p.res.Turns) > 0 {
			// A call's audio plays on its own clock: its first packet may
			// come after response.done.
			if last := p.res.Turns[len(p.res.Turns)-1]; last.Times[MTurnToAudio] == 0 {
				t = last
			}
		}
		if t == nil {
			t = p.turn(ev.at)
		}
		if t != nil {
			p.markTurn(t, MTurnToAudio, ev.at)
			if !t.turnFrom.IsZero() {
				if _, ok := t.Times[MReplyFirstAudio]; !ok {
					t.Times[MReplyFirstAudio] = ev.at.Sub(t.turnFrom)
				}
			}
		}
	case "response.done":
		t := p.turn(ev.at)
		p.cur = nil
		p.active, p.committed = false, false
		p.pendEnd, p.pendFrom = time.Time{}, time.Time{}
		if t == nil {
			return
		}
		if ev.Response != nil {
			t.Status = ev.Response.Status
		}
		p.markTurn(t, MReplyDone, ev.at)
		t.Heard = p.heard
		p.heard = ""
		p.res.Turns = append(p.res.Turns, t)
		p.check(t)
	}
}

// awaitable are the server events a recording may await (their arrival
// times are kept); session.created starts every session.
var awaitable = map[string]bool{
	"session.created": true, recording.AwaitResponseDone: true, recording.AwaitSpeechStopped: true,
	recording.AwaitTranscript: true, recording.AwaitOutputAudioEnd: true,
}

// pending holds transcript times seen before the answer's turn exists.
var pendingKeys = []string{MTranscriptFirst, MTranscriptFinal}

func (p *player) mark(metric string, at time.Time) {
	if p.cur != nil {
		p.markTurn(p.cur, metric, at)
		return
	}
	if p.pendEnd.IsZero() {
		return
	}
	if p.early == nil {
		p.early = map[string]time.Duration{}
	}
	if _, ok := p.early[metric]; !ok {
		p.early[metric] = at.Sub(p.pendEnd)
	}
}

// carry moves transcript times seen before response.created to the turn.
func (p *player) carry() {
	for _, k := range pendingKeys {
		if d, ok := p.early[k]; ok {
			p.cur.Times[k] = d
		}
	}
	p.early = nil
}

func (p *player) turn(at time.Time) *Turn {
	if p.cur == nil {
		// Deltas without response.created: measure from now on.
		p.cur = &Turn{Index: len(p.res.Turns), Times: map[string]time.Duration{}, endAt: at}
	}
	return p.cur
}

func (p *player) markTurn(t *Turn, metric string, at time.Time) {
	if _, ok := t.Times[metric]; !ok && !t.endAt.IsZero() {
		t.Times[metric] = at.Sub(t.endAt)
	}
}

// check tests the oldest pending expectation against the answer t.
func (p *player) check(t *Turn) {
	if len(p.expects) == 0 {
		return
	}
	e := p.expects[0]
	p.expects = p.expects[1:]
	want := e.Status
	if want == "" {
		want = "completed"
	}
	where := fmt.Sprintf("%s:%d", p.rec.Path, e.line)
	if t.Status != want {
		p.res.fail(KindExpectation, "%s: answer %d: status %q, want %q", where, t.Index+1, t.Status, want)
	}
	if s := e.TranscriptContains; s != "" && !strings.Contains(strings.ToLower(t.Heard), strings.ToLower(s)) {
		p.res.fail(KindExpectation, "%s: answer %d: the transcript %q does not contain %q", where, t.Index+1, t.Heard, s)
	}
	if s := e.ReplyContains; s != "" && !strings.Contains(strings.ToLower(t.Reply), strings.ToLower(s)) {
		p.res.fail(KindExpectation, "%s: answer %d: the reply %q does not contain %q", where, t.Index+1, clip(t.Reply, 200), s)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
