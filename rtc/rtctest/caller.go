// Package rtctest is a WebRTC caller for tests and benchmarks: a pion peer
// that calls a Parley gateway the way OpenAI's WebRTC guide has browsers do
// it (a microphone track, the "oai-events" data channel, the offer posted
// to /v1/realtime/calls with an ephemeral key) and records what comes back.
package rtctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"
)

// Caller is one call. Events arrive on Events; the agent's Opus packets
// are counted (and kept when KeepAudio was set).
type Caller struct {
	PC       *webrtc.PeerConnection
	Mic      *webrtc.TrackLocalStaticSample
	DC       *webrtc.DataChannel
	Events   chan map[string]any
	Location string        // of the call, from the 201 answer
	Setup    time.Duration // offer posted to answer received

	open      chan struct{}
	keepAudio bool
	mu        sync.Mutex
	packets   int
	audio     [][]byte
	badEvents []string
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Options configure Dial.
type Options struct {
	// KeepAudio keeps the payloads of the agent's track (else they are
	// only counted).
	KeepAudio bool
	// Header adds request headers to the call's POST (Origin, say).
	Header http.Header
	// Client posts the offer (http.DefaultClient).
	Client *http.Client
	// API builds the peer connection (a default API when nil).
	API *webrtc.API
}

// Dial calls base (http://host:port) with key; it returns once the data
// channel is open or ctx is done.
func Dial(ctx context.Context, base, key string, o Options) (*Caller, error) {
	newPC := webrtc.NewPeerConnection
	if o.API != nil {
		newPC = o.API.NewPeerConnection
	}
	pc, err := newPC(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	c := &Caller{PC: pc, Events: make(chan map[string]any, 4096), open: make(chan struct{}), keepAudio: o.KeepAudio}
	fail := func(err error) (*Caller, error) {
		c.Close()
		return nil, err
	}
	c.Mic, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "caller")
	if err != nil {
		return fail(err)
	}
	sender, err := pc.AddTrack(c.Mic)
	if err != nil {
		return fail(err)
	}
	c.wg.Add(1)
	go func() { // RTCP of the microphone's sender
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.wg.Add(1)
		defer c.wg.Done()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.packets++
			if c.keepAudio {
				c.audio = append(c.audio, append([]byte(nil), p.Payload...))
			}
			c.mu.Unlock()
		}
	})
	c.DC, err = pc.CreateDataChannel("oai-events", nil)
	if err != nil {
		return fail(err)
	}
	c.DC.OnOpen(func() { close(c.open) })
	c.DC.OnMessage(func(m webrtc.DataChannelMessage) {
		var ev map[string]any
		if !m.IsString || json.Unmarshal(m.Data, &ev) != nil {
			c.mu.Lock()
			c.badEvents = append(c.badEvents, string(m.Data))
			c.mu.Unlock()
			return
		}
		select {
		case c.Events <- ev:
		default:
			c.mu.Lock()
			c.badEvents = append(c.badEvents, "event buffer full")
			c.mu.Unlock()
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/realtime/calls", strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return fail(err)
	}
	for k, v := range o.Header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/sdp")
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return fail(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.Setup = time.Since(start)
	if resp.StatusCode != http.StatusCreated {
		return fail(fmt.Errorf("POST /v1/realtime/calls: %d %s", resp.StatusCode, answer))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		return fail(fmt.Errorf("answer content type %q", ct))
	}
	c.Location = resp.Header.Get("Location")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		return fail(err)
	}
	select {
	case <-c.open:
		return c, nil
	case <-ctx.Done():
		return fail(fmt.Errorf("the data channel did not open: %w", ctx.Err()))
	}
}

// Close hangs up and waits for the caller's goroutines.
func (c *Caller) Close() {
	c.closeOnce.Do(func() {
		_ = c.PC.Close()
		c.wg.Wait()
	})
}

// CallID is the call's id, from its Location.
func (c *Caller) CallID() string {
	return c.Location[strings.LastIndexByte(c.Location, '/')+1:]
}

// Packets returns how many packets of the agent's audio arrived.
func (c *Caller) Packets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets
}

// Audio returns the kept payloads of the agent's audio (Options.KeepAudio).
func (c *Caller) Audio() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.audio...)
}

// BadEvents returns data channel messages that were not JSON text.
func (c *Caller) BadEvents() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.badEvents...)
}

// Send sends one event (any JSON-encodable value, or a string as is).
func (c *Caller) Send(v any) error {
	if s, ok := v.(string); ok {
		return c.DC.SendText(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.DC.SendText(string(b))
}

// Next returns the next event, or an error after d.
func (c *Caller) Next(d time.Duration) (map[string]any, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev := <-c.Events:
		return ev, nil
	case <-t.C:
		return nil, errors.New("no event in time")
	}
}

// Until collects events up to and including the first of type typ. An
// error event ends it with an error unless allowErrors.
func (c *Caller) Until(typ string, d time.Duration, allowErrors bool) ([]map[string]any, error) {
	deadline := time.Now().Add(d)
	var evs []map[string]any
	for {
		ev, err := c.Next(time.Until(deadline))
		if err != nil {
			return evs, fmt.Errorf("waiting for %s: %w (got %d events)", typ, err, len(evs))
		}
		evs = append(evs, ev)
		if ev["type"] == "error" && !allowErrors && typ != "error" {
			return evs, fmt.Errorf("error event while waiting for %s: %v", typ, ev["error"])
		}
		if ev["type"] == typ {
			return evs, nil
		}
	}
}

// SendPackets writes Opus packets on the microphone track, one per tick
// of pace (20 ms for real time; 0 sends as fast as possible), until done or
// ctx ends.
func (c *Caller) SendPackets(ctx context.Context, packets [][]byte, pace time.Duration) error {
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(pace)
		defer t.Stop()
		tick = t.C
	}
	for _, p := range packets {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := c.Mic.WriteSample(pmedia.Sample{Data: p, Duration: 20 * time.Millisecond}); err != nil {
			return err
		}
	}
	return nil
}

// Mint asks the gateway at base for an ephemeral key with the secret key,
// as a customer's server does; body is the request's JSON.
func Mint(ctx context.Context, base, secretKey, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/realtime/client_secrets", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+secretKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Value string `json:"value"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Value == "" {
		return "", fmt.Errorf("client_secrets: %d %s", resp.StatusCode, b)
	}
	return out.Value, nil
}
