package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"

	"parley/media"
)

// spurtGap is the silence on the agent's track that separates two
// answers: the gateway sends no packets between answers, so the first
// packet after such a gap is an answer's first audio.
const spurtGap = 100 * time.Millisecond

// callTransport is a session as a WebRTC call, the way a browser makes
// one: an ephemeral key minted with the key, the SDP offer posted to
// /v1/realtime/calls, the recording's Opus packets on the microphone
// track, events on the "oai-events" data channel.
type callTransport struct {
	pc  *webrtc.PeerConnection
	dc  *webrtc.DataChannel
	mic *webrtc.TrackLocalStaticSample
	p   *player

	mu      sync.Mutex
	closed  bool
	dropped int // events dropped because the player was too far behind
	wg      sync.WaitGroup
}

// push hands a server event to the player, unless the call is over.
func (t *callTransport) push(ev serverEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	select {
	case t.p.events <- ev:
	default: // the player is far behind: drop (and report) rather than block pion
		t.dropped++
	}
}

// end closes the player's event stream once, with why.
func (t *callTransport) end(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	t.p.readErr <- err
	close(t.p.events)
}

// mint gets an ephemeral key for agent with the secret key.
func mint(ctx context.Context, o Options, agent string) (string, int, error) {
	if strings.HasPrefix(o.Key, "ek_") {
		return o.Key, 0, nil
	}
	body, _ := json.Marshal(map[string]any{"session": map[string]any{"type": "realtime", "model": agent}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.URL, "/")+"/v1/realtime/client_secrets", strings.NewReader(string(body)))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+o.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient(o).Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, fmt.Errorf("client_secrets: HTTP %d %s", resp.StatusCode, clip(string(b), 300))
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Value == "" {
		return "", resp.StatusCode, fmt.Errorf("client_secrets answered without a key: %s", clip(string(b), 300))
	}
	return out.Value, resp.StatusCode, nil
}

func httpClient(o Options) *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return http.DefaultClient
}

// dialCall makes the call and starts feeding p; a refused or failed call
// is recorded in res (nil transport).
func dialCall(ctx context.Context, o Options, agent string, p *player, res *Result) (transport, error) {
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q: a WebRTC replay needs http:// or https://", o.URL)
	}
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	refused := func(status int, err error) (transport, error) {
		switch {
		case ctx.Err() != nil:
			res.fail(KindCancelled, "cancelled while calling")
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			res.fail(KindAuth, "%v", err)
		case status != 0:
			res.fail(KindRefused, "%v", err)
		case dctx.Err() != nil:
			res.fail(KindTimeout, "the call did not connect within %v: %v", o.Timeout, err)
		default:
			res.fail(KindUnreachable, "%v", err)
		}
		return nil, nil
	}
	ek, status, err := mint(dctx, o, agent)
	if err != nil {
		return refused(status, err)
	}
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	t := &callTransport{pc: pc, p: p}
	fail := func(status int, err error) (transport, error) {
		t.close()
		return refused(status, err)
	}
	t.mic, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "replay")
	if err != nil {
		return fail(0, err)
	}
	sender, err := pc.AddTrack(t.mic)
	if err != nil {
		return fail(0, err)
	}
	t.wg.Add(1)
	go func() { // the microphone sender's RTCP, read so pion can process it
		defer t.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		t.wg.Add(1)
		defer t.wg.Done()
		buf := make([]byte, 1500) // one read buffer for the call, not ReadRTP's
		var last time.Time
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			now := time.Now()
			if now.Sub(last) > spurtGap {
				// An answer's first audio, as the WebSocket's first
				// response.output_audio.delta.
				t.push(serverEvent{Type: "response.output_audio.delta", at: now})
			}
			last = now
		}
	})
	t.dc, err = pc.CreateDataChannel("oai-events", nil)
	if err != nil {
		return fail(0, err)
	}
	open := make(chan struct{})
	t.dc.OnOpen(func() { close(open) })
	t.dc.OnClose(func() { t.end(errors.New("the call's data channel closed")) })
	t.dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var ev serverEvent
		if !m.IsString || json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		ev.at = time.Now()
		t.push(ev)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			t.end(fmt.Errorf("the call's connection %s", s))
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(0, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(0, err)
	}
	select {
	case <-gathered:
	case <-dctx.Done():
		return fail(0, dctx.Err())
	}
	req, err := http.NewRequestWithContext(dctx, http.MethodPost,
		strings.TrimRight(o.URL, "/")+"/v1/realtime/calls?"+url.Values{"model": {agent}}.Encode(),
		strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return fail(0, err)
	}
	req.Header.Set("Authorization", "Bearer "+ek)
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := httpClient(o).Do(req)
	if err != nil {
		return fail(0, err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fail(resp.StatusCode, fmt.Errorf("POST /v1/realtime/calls: HTTP %d %s", resp.StatusCode, clip(string(answer), 300)))
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		return fail(0, fmt.Errorf("the gateway's answer: %w", err))
	}
	select {
	case <-open:
		return t, nil
	case <-dctx.Done():
		return fail(0, errors.New("the data channel did not open"))
	}
}

func (t *callTransport) writeEvent(_ context.Context, b []byte) error {
	return t.dc.SendText(string(b))
}

// writeAudio sends one Opus packet on the microphone track, lasting what
// its table of contents says.
func (t *callTransport) writeAudio(_ context.Context, chunk []byte) error {
	n, err := media.OpusPacketSamples(chunk, 48000)
	if err != nil {
		return fmt.Errorf("an audio chunk is not an Opus packet: %w", err)
	}
	return t.mic.WriteSample(pmedia.Sample{Data: chunk, Duration: time.Duration(n) * time.Second / 48000})
}

func (t *callTransport) close() {
	_ = t.pc.Close()
	t.wg.Wait()
	t.end(errors.New("call closed"))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped > 0 {
		t.p.res.fail(KindOverload, "the replay client fell behind the call and dropped %d server events: its measurements are incomplete", t.dropped)
	}
}
