package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"parley/agent"
	"parley/media"
	"parley/realtime"
	"parley/rtc"
	"parley/rtc/rtctest"
	"parley/storage"
)

// callHarness is a gateway with a real WebRTC edge on loopback and fake
// speech engines.
func callHarness(t *testing.T, rec *fakeRecognizer, syn *toneSynth, deltas []string, mod func(*Options)) *harness {
	t.Helper()
	edge, err := rtc.NewEdge(rtc.Config{UDPAddr: "127.0.0.1:0", IncludeLoopback: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = edge.Close() }) // after the gateway's cleanup has ended every call
	return newHarness(t, &scriptAgent{deltas: deltas}, func(o *Options) {
		o.Recognizer, o.Synthesizer, o.RTC = rec, syn, edge
		o.ConnectTimeout = 3 * time.Second
		if mod != nil {
			mod(o)
		}
	})
}

func (h *harness) httpBase() string { return h.srv.URL }

// call mints an ephemeral key and calls with it.
func (h *harness) call(session string) *rtctest.Caller {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := h.mustMint(`{"session":` + session + `}`)
	c, err := rtctest.Dial(ctx, h.httpBase(), key, rtctest.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(c.Close)
	ev, err := c.Next(5 * time.Second)
	if err != nil || ev["type"] != realtime.TypeSessionCreated {
		h.t.Fatalf("first event %v %v", ev, err)
	}
	return c
}

// opusFixture encodes a 24 kHz fixture (plus trailing silence) into 20 ms
// Opus packets, as a browser's microphone track carries them.
func opusFixture(t *testing.T, name string, silenceMS int) [][]byte {
	t.Helper()
	pcm := append(loadFixture(t, name), silence(silenceMS)...)
	rs, err := media.NewResampler(24000, 48000)
	if err != nil {
		t.Fatal(err)
	}
	pcm48 := append(rs.Process(nil, pcm), rs.Flush(nil)...)
	enc, err := media.NewOpusEncoder(48000)
	if err != nil {
		t.Fatal(err)
	}
	var packets [][]byte
	for i := 0; i+960 <= len(pcm48); i += 960 {
		p, err := enc.Encode(pcm48[i:i+960], nil)
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, p)
	}
	return packets
}

func TestCallVoiceTurn(t *testing.T) {
	rec := &fakeRecognizer{text: "what is parley"}
	h := callHarness(t, rec, &toneSynth{}, []string{"Hi there."}, nil)
	c := h.call(`{"model":"assistant"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.SendPackets(ctx, opusFixture(t, "what_is_parley", 800), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Until(realtime.TypeOutputAudioStopped, 10*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	ids := map[string]string{}
	for _, ev := range evs {
		typ := ev["type"].(string)
		order = append(order, typ)
		switch typ {
		case realtime.TypeOutputAudioDelta:
			t.Error("audio deltas on the data channel")
		case realtime.TypeTranscriptionCompleted:
			if ev["transcript"] != "what is parley" {
				t.Errorf("transcript %v", ev["transcript"])
			}
		case realtime.TypeResponseDone:
			ids[typ] = ev["response"].(map[string]any)["id"].(string)
		case realtime.TypeOutputAudioStarted, realtime.TypeOutputAudioStopped:
			ids[typ] = ev["response_id"].(string)
		}
	}
	// Playback runs on its own clock: with an instant synthesizer the
	// whole answer can be done (response.done) before the player writes
	// its first packet, so output_audio_buffer.started is ordered only
	// after response.created and before stopped.
	for _, want := range [][]string{
		{realtime.TypeSpeechStarted, realtime.TypeSpeechStopped, realtime.TypeAudioCommitted,
			realtime.TypeTranscriptionCompleted, realtime.TypeResponseCreated, realtime.TypeResponseDone},
		{realtime.TypeResponseCreated, realtime.TypeOutputAudioStarted, realtime.TypeOutputAudioStopped},
	} {
		idx := 0
		for _, typ := range order {
			if idx < len(want) && typ == want[idx] {
				idx++
			}
		}
		if idx != len(want) {
			t.Fatalf("event order\n got %v\nwant (in order) %v", order, want)
		}
	}
	if ids[realtime.TypeOutputAudioStarted] != ids[realtime.TypeResponseDone] || ids[realtime.TypeOutputAudioStopped] != ids[realtime.TypeResponseDone] {
		t.Errorf("response ids %v", ids)
	}
	// "Hi there." is 9 characters = 90 ms of tone: 5 packets of 20 ms.
	if n := c.Packets(); n < 4 || n > 6 {
		t.Errorf("%d audio packets, want 5", n)
	}
	c.Close()
	waitNoSessions(t, h.gw)
	// The conversation was recorded as a webrtc one.
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.store.mu.Lock()
		var cv storage.Conversation
		for _, x := range h.store.convs {
			cv = *x
		}
		n := len(h.store.convs)
		h.store.mu.Unlock()
		if n == 1 && !cv.EndedAt.IsZero() {
			if cv.Channel != "webrtc" || cv.TurnCount != 2 {
				t.Errorf("conversation %+v", cv)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d conversations stored (%+v)", n, cv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCallCancelStopsPlayback: response.cancel while the agent speaks
// stops the track within a frame.
func TestCallCancelStopsPlayback(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{realtime: true}, []string{strings.Repeat("A long answer. ", 20)}, nil)
	c := h.call(`{"model":"assistant"}`)
	_ = c.Send(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"talk"}]}}`)
	_ = c.Send(`{"type":"response.create"}`)
	if _, err := c.Until(realtime.TypeOutputAudioStarted, 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	_ = c.Send(`{"type":"response.cancel"}`)
	evs, err := c.Until(realtime.TypeResponseDone, 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	cleared := false
	for _, ev := range evs {
		cleared = cleared || ev["type"] == realtime.TypeOutputAudioCleared
	}
	if !cleared {
		t.Errorf("no output_audio_buffer.cleared before response.done")
	}
	done := evs[len(evs)-1]["response"].(map[string]any)
	if done["status"] != realtime.StatusCancelled {
		t.Errorf("status %v", done["status"])
	}
	n := c.Packets()
	time.Sleep(200 * time.Millisecond)
	if m := c.Packets(); m > n+2 {
		t.Errorf("%d packets after the cancel", m-n)
	}
	// The stored reply is the part played (about 300 ms of a 3 s answer).
	tr := done["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)["transcript"].(string)
	if tr == "" || len(tr) > 60 {
		t.Errorf("heard transcript %q", tr)
	}
}

func TestCallDataChannelBadInput(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Fine."}, nil)
	c := h.call(`{"model":"assistant","output_modalities":["text"]}`)
	for _, tc := range []struct{ msg, code string }{
		{`not json`, realtime.CodeInvalidJSON},
		{`{"type":"nope"}`, "unknown_event"},
		{`{"type":"input_audio_buffer.commit"}`, "input_audio_buffer_commit_empty"},
		{`{"type":"response.cancel"}`, realtime.CodeNoActiveResponse},
	} {
		if err := c.Send(tc.msg); err != nil {
			t.Fatal(err)
		}
		evs, err := c.Until(realtime.TypeError, 5*time.Second, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := evs[len(evs)-1]["error"].(map[string]any)["code"]; got != tc.code {
			t.Errorf("%s: code %v, want %s", tc.msg, got, tc.code)
		}
	}
	if err := c.DC.Send([]byte(`{"type":"response.create"}`)); err != nil { // binary
		t.Fatal(err)
	}
	evs, err := c.Until(realtime.TypeError, 5*time.Second, true)
	if err != nil || evs[len(evs)-1]["error"].(map[string]any)["code"] != realtime.CodeInvalidJSON {
		t.Fatalf("binary message: %v %v", evs, err)
	}
	// A large event (bigger than the call's first read buffer) arrives
	// whole.
	long := strings.Repeat("Be kind. ", 3000) // 27 KB
	if err := c.Send(`{"type":"session.update","session":{"instructions":"` + long + `"}}`); err != nil {
		t.Fatal(err)
	}
	evs, err = c.Until(realtime.TypeSessionUpdated, 5*time.Second, false)
	if err != nil || evs[len(evs)-1]["session"].(map[string]any)["instructions"] != long {
		t.Fatalf("large session.update: %v", err)
	}
	// The call goes on.
	_ = c.Send(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}}`)
	_ = c.Send(`{"type":"response.create"}`)
	evs, err = c.Until(realtime.TypeResponseDone, 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if st := evs[len(evs)-1]["response"].(map[string]any)["status"]; st != realtime.StatusCompleted {
		t.Fatalf("status %v", st)
	}
}

// offerSDP returns a real offer from a pion peer (closed at cleanup).
func offerSDP(t *testing.T, audio bool) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if audio {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.CreateDataChannel("oai-events", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

type httpResult struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) post(path, ctype, key string, body io.Reader, hdr http.Header) httpResult {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, body)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, resp.Header, b}
}

func errCode(b []byte) string {
	var m struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &m)
	return m.Error.Code
}

func multipartOffer(t *testing.T, sdp, session string) (string, io.Reader) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("sdp", sdp)
	if session != "" {
		_ = mw.WriteField("session", session)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), &buf
}

func TestCallSignalingErrors(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Fine."}, nil)
	good := offerSDP(t, true)
	videoOnly := strings.ReplaceAll(good, "m=audio", "m=video")
	noOpus := strings.ReplaceAll(good, "opus/48000/2", "speex/48000/2")
	cases := []struct {
		name, ctype, key, body string
		status                 int
		code                   string
	}{
		{"wrong content type", "text/plain", "", good, 415, "unsupported_media_type"},
		{"empty offer", "application/sdp", "", "", 400, realtime.CodeMissingParameter},
		{"oversize", "application/sdp", "", strings.Repeat("a=x\r\n", 20000), 413, "body_too_large"},
		{"malformed", "application/sdp", "", "v=0\r\nthis is not sdp\r\n", 400, "invalid_sdp"},
		{"video only", "application/sdp", "", videoOnly, 400, "no_audio"},
		{"audio without opus", "application/sdp", "", noOpus, 400, "no_opus"},
		{"no key", "application/sdp", "-", good, 401, "missing_api_key"},
		{"unknown key", "application/sdp", "ek_unknown0123456789abcdefghijklmnopqrstuvwxyz0123", good, 401, "invalid_api_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			switch key {
			case "":
				key = h.mustMint(`{}`)
			case "-":
				key = ""
			}
			res := h.post("/v1/realtime/calls", tc.ctype, key, strings.NewReader(tc.body), nil)
			if res.status != tc.status || errCode(res.body) != tc.code {
				t.Fatalf("got %d %s, want %d %s", res.status, res.body, tc.status, tc.code)
			}
			if tc.key == "" && tc.status == 400 && tc.code != realtime.CodeMissingParameter {
				// A refused offer does not use the key up.
				if res := h.post("/v1/realtime/calls", "application/sdp", key, strings.NewReader("v=0\r\n"), nil); errCode(res.body) == "ephemeral_key_used" {
					t.Error("a refused offer used the ephemeral key up")
				}
			}
		})
	}
	t.Run("used key", func(t *testing.T) {
		key := h.mustMint(`{}`)
		c, err := rtctest.Dial(context.Background(), h.httpBase(), key, rtctest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		res := h.post("/v1/realtime/calls", "application/sdp", key, strings.NewReader(offerSDP(t, true)), nil)
		if res.status != 401 || errCode(res.body) != "ephemeral_key_used" {
			t.Fatalf("got %d %s", res.status, res.body)
		}
	})
	t.Run("multipart with a secret key", func(t *testing.T) {
		ctype, body := multipartOffer(t, offerSDP(t, true), `{"type":"realtime","model":"assistant","instructions":"Be brief."}`)
		res := h.post("/v1/realtime/calls", ctype, testKey, body, nil)
		if res.status != 201 || !strings.HasPrefix(string(res.body), "v=0") || !strings.HasPrefix(res.header.Get("Location"), "/v1/realtime/calls/rtc_") {
			t.Fatalf("got %d %s %v", res.status, res.body, res.header)
		}
		id := strings.TrimPrefix(res.header.Get("Location"), "/v1/realtime/calls/")
		// Nobody completes ICE for it: hang it up.
		if res := h.post("/v1/realtime/calls/"+id+"/hangup", "", testKey, nil, nil); res.status != 200 {
			t.Fatalf("hangup: %d %s", res.status, res.body)
		}
	})
	t.Run("multipart bad session", func(t *testing.T) {
		ctype, body := multipartOffer(t, offerSDP(t, true), `{"modalities":["text"]}`)
		res := h.post("/v1/realtime/calls", ctype, testKey, body, nil)
		if res.status != 400 || errCode(res.body) != realtime.CodeUnknownParameter {
			t.Fatalf("got %d %s", res.status, res.body)
		}
	})
	t.Run("unknown agent", func(t *testing.T) {
		res := h.post("/v1/realtime/calls?model=nobody", "application/sdp", testKey, strings.NewReader(offerSDP(t, true)), nil)
		if res.status != 404 || errCode(res.body) != "model_not_found" {
			t.Fatalf("got %d %s", res.status, res.body)
		}
	})
	t.Run("hangup unknown call", func(t *testing.T) {
		if res := h.post("/v1/realtime/calls/rtc_nope/hangup", "", testKey, nil, nil); res.status != 404 {
			t.Fatalf("got %d %s", res.status, res.body)
		}
	})
	waitNoSessions(t, h.gw)
}

func TestCallsDisabled(t *testing.T) {
	h := newHarness(t, &scriptAgent{deltas: []string{"x"}}, nil)
	res := h.post("/v1/realtime/calls", "application/sdp", testKey, strings.NewReader(offerSDP(t, true)), nil)
	if res.status != 501 || errCode(res.body) != "webrtc_disabled" {
		t.Fatalf("got %d %s", res.status, res.body)
	}
}

func TestCallCORS(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Fine."}, func(o *Options) {
		o.AllowedOrigins = []string{"shop.example.com"}
	})
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, h.srv.URL+"/v1/realtime/calls", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A preflight carries no key: it is answered for any origin, and the
	// POST decides.
	for _, origin := range []string{"https://shop.example.com", "https://evil.example.net"} {
		resp := pre(origin)
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != origin ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight from %s: %d %v", origin, resp.StatusCode, resp.Header)
		}
	}
	if resp := pre(""); resp.StatusCode != 400 {
		t.Fatalf("no origin: %d", resp.StatusCode)
	}
	// The call itself from another origin is refused, readably; the
	// ephemeral key is used up by then (its bound origin, if any, is only
	// known once it is redeemed).
	key := h.mustMint(`{}`)
	res := h.post("/v1/realtime/calls", "application/sdp", key, strings.NewReader(offerSDP(t, true)), http.Header{"Origin": {"https://evil.example.net"}})
	if res.status != 403 || errCode(res.body) != "origin_not_allowed" || res.header.Get("Access-Control-Allow-Origin") != "https://evil.example.net" {
		t.Fatalf("other origin: %d %s %v", res.status, res.body, res.header)
	}
	res = h.post("/v1/realtime/calls", "application/sdp", key, strings.NewReader(offerSDP(t, true)), http.Header{"Origin": {"https://shop.example.com"}})
	if res.status != 401 || errCode(res.body) != "ephemeral_key_used" {
		t.Fatalf("the key after the refused origin: %d %s", res.status, res.body)
	}
	// From the allowed origin, a call works and exposes Location (and
	// Retry-After, for refusals).
	res = h.post("/v1/realtime/calls", "application/sdp", h.mustMint(`{}`), strings.NewReader(offerSDP(t, true)), http.Header{"Origin": {"https://shop.example.com"}})
	if res.status != 201 || res.header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
		res.header.Get("Access-Control-Expose-Headers") != "Location, Retry-After" {
		t.Fatalf("allowed origin: %d %v", res.status, res.header)
	}
	if res := h.post(res.header.Get("Location")+"/hangup", "", testKey, nil, nil); res.status != 200 {
		t.Fatalf("hangup: %d %s", res.status, res.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rtctest.Dial(ctx, h.httpBase(), h.mustMint(`{}`), rtctest.Options{Header: http.Header{"Origin": {"https://shop.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitNoSessions(t, h.gw)
}

func TestCallLimits(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Fine."}, func(o *Options) {
		o.MaxCalls, o.MaxCallsPerKey = 2, 1
	})
	c := h.call(`{}`) // minted with testKey: counts against it
	res := h.post("/v1/realtime/calls", "application/sdp", h.mustMint(`{}`), strings.NewReader(offerSDP(t, true)), nil)
	if res.status != 429 || errCode(res.body) != "call_limit_reached" || res.header.Get("Retry-After") == "" {
		t.Fatalf("second call of the key: %d %s %v", res.status, res.body, res.header)
	}
	c.Close()
	waitNoSessions(t, h.gw)
	c = h.call(`{}`) // the slot came back
	c.Close()
	waitNoSessions(t, h.gw)
}

// TestCallConnectTimeout: a caller that never completes ICE is dropped
// after the connect timeout.
func TestCallConnectTimeout(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Fine."}, func(o *Options) {
		o.ConnectTimeout = time.Second
	})
	res := h.post("/v1/realtime/calls", "application/sdp", h.mustMint(`{}`), strings.NewReader(offerSDP(t, true)), nil)
	if res.status != 201 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	if h.gw.ActiveSessions() != 1 {
		t.Fatalf("%d sessions", h.gw.ActiveSessions())
	}
	waitNoSessions(t, h.gw)
	if n := counterValue(h.gw.metrics.callsEnded.WithLabelValues("connect_timeout")); n != 1 {
		t.Errorf("calls ended by connect timeout: %v", n)
	}
}

func TestCallSideband(t *testing.T) {
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Hello from the agent."}, nil)
	c := h.call(`{"model":"assistant","output_modalities":["text"]}`)

	dial := func(key, callID string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return websocket.Dial(ctx, h.url+"/v1/realtime?call_id="+callID, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	}
	if _, resp, err := dial(testKey, "rtc_nope"); err == nil || resp.StatusCode != 404 {
		t.Fatalf("unknown call: %v %v", err, resp)
	}
	if _, resp, err := dial(h.mustMint(`{}`), c.CallID()); err == nil || resp.StatusCode != 401 {
		t.Fatalf("ephemeral key on a sideband: %v %v", err, resp)
	}
	conn, _, err := dial(testKey, c.CallID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	side := &client{t: t, conn: conn}
	if ev := side.next(); ev["type"] != realtime.TypeSessionCreated {
		t.Fatalf("sideband's first event %v", ev)
	}
	// The customer's server drives the call from the sideband; the browser
	// sees the same events on its data channel.
	side.send(`{"type":"session.update","session":{"instructions":"Be brief."}}`)
	side.until(realtime.TypeSessionUpdated)
	side.send(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}}`)
	side.send(`{"type":"response.create"}`)
	side.until(realtime.TypeResponseDone)
	evs, err := c.Until(realtime.TypeResponseDone, 5*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if tr := evs[len(evs)-1]["response"].(map[string]any)["output"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)["text"]; tr != "Hello from the agent." {
		t.Errorf("data channel saw %v", tr)
	}
	// Hanging up from the server ends the call and the sideband.
	if res := h.post("/v1/realtime/calls/"+c.CallID()+"/hangup", "", testKey, nil, nil); res.status != 200 {
		t.Fatalf("hangup: %d %s", res.status, res.body)
	}
	for {
		if _, err := side.read(5 * time.Second); err != nil {
			break
		}
	}
	waitNoSessions(t, h.gw)
	if n := counterValue(h.gw.metrics.callsEnded.WithLabelValues("hangup")); n != 1 {
		t.Errorf("calls ended by hangup: %v", n)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// tenantAuth maps keys to principals of different tenants.
type tenantAuth map[string]Principal

func (a tenantAuth) Authenticate(ctx context.Context, key string) (Principal, error) {
	if p, ok := a[key]; ok {
		return p, nil
	}
	return Principal{}, ErrUnauthenticated
}

// TestCallsAreTenantScoped (OWASP API1): another tenant's key cannot hang
// up, or attach a sideband to, a call; it gets 404 as for no call at all.
func TestCallsAreTenantScoped(t *testing.T) {
	const keyA, keyB = "sk_tenant_a_0123456789abcdef", "sk_tenant_b_0123456789abcdef"
	h := callHarness(t, &fakeRecognizer{text: "x"}, &toneSynth{}, []string{"Fine."}, func(o *Options) {
		o.Auth = tenantAuth{
			keyA: ownerPrincipal("tenant-a", "key-a"),
			keyB: ownerPrincipal("tenant-b", "key-b"),
		}
		a := o.Agents["assistant"]
		o.TenantAgent = func(ctx context.Context, tenantID, id string) (*agent.Agent, error) {
			if tenantID == "tenant-a" && id == "assistant" {
				return a, nil
			}
			return nil, storage.ErrNotFound
		}
	})
	if code, m := h.mint(keyB, "application/json", `{"session":{"model":"assistant"}}`); code != 404 {
		t.Fatalf("B minting for A's agent: %d %v", code, m)
	}
	code, m := h.mint(keyA, "application/json", `{"session":{"model":"assistant"}}`)
	if code != 200 {
		t.Fatalf("mint: %d %v", code, m)
	}
	c, err := rtctest.Dial(context.Background(), h.httpBase(), m["value"].(string), rtctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res := h.post("/v1/realtime/calls/"+c.CallID()+"/hangup", "", keyB, nil, nil); res.status != 404 || errCode(res.body) != "call_not_found" {
		t.Fatalf("B hanging up A's call: %d %s", res.status, res.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, h.url+"/v1/realtime?call_id="+c.CallID(), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + keyB}}}); err == nil || resp.StatusCode != 404 {
		t.Fatalf("B attaching to A's call: %v %v", err, resp)
	}
	if res := h.post("/v1/realtime/calls/"+c.CallID()+"/hangup", "", keyA, nil, nil); res.status != 200 {
		t.Fatalf("A hanging up its call: %d %s", res.status, res.body)
	}
	waitNoSessions(t, h.gw)
}
