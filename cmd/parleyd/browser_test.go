package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"parley/media"
)

// callPage is the customer's web page: OpenAI's Realtime WebRTC guide,
// pointed at Parley.
//
//go:embed testdata/browser/call.html
var callPage []byte

// chromiumPath is Debian's chromium (scripts/deps.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// browserCallTimeout bounds the call, from loading the page to the agent's
// spoken answer.
const browserCallTimeout = 60 * time.Second

// TestBrowserWebRTCCall: a real browser talks to a real parleyd over WebRTC,
// the way a customer's website would with OpenAI. The website's backend
// mints an ephemeral key with the secret key (POST
// /v1/realtime/client_secrets); the page, on another origin, posts its SDP
// offer with that key to /v1/realtime/calls, speaks "what is Parley" through
// Chromium's fake microphone, and gets the realtime events on the
// "oai-events" data channel and the agent's voice on the remote track.
func TestBrowserWebRTCCall(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("PARLEY_TEST_REQUIRE_BROWSER") == "" {
			t.Skipf("%s not found: browser WebRTC call SKIPPED (make deps installs Debian's chromium; "+
				"PARLEY_TEST_REQUIRE_BROWSER=1 makes this a failure)", chromiumPath)
		}
		t.Fatalf("PARLEY_TEST_REQUIRE_BROWSER is set and %s is missing: %v", chromiumPath, err)
	}
	mic := fakeMicrophoneWAV(t, "what_is_parley")

	// The customer's website, on its own origin: its address must be known
	// before parleyd starts, to allow it.
	site := httptest.NewUnstartedServer(nil)
	backend := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(func() {
		site.Close()
		backend.CloseIdleConnections()
	})
	siteHost := site.Listener.Addr().String()
	r := start(t, "../../configs/parley.yaml",
		"PARLEY_STORAGE_URL="+filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_WEBRTC_UDP_ADDRESS=0.0.0.0:0",
		"PARLEY_REALTIME_ALLOWED_ORIGINS="+siteHost)
	parleyURL := "http://" + r.m.Addr.String()
	site.Config.Handler = customerSite(parleyURL, backend)
	site.Start()

	b := launchChromium(t, mic)
	defer func() {
		if t.Failed() {
			b.dump(t, r)
		}
	}()

	pageURL := site.URL + "/?" + url.Values{"parley": {parleyURL}, "agent": {"assistant"}}.Encode()
	ctx, cancel := context.WithTimeout(b.ctx, browserCallTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("load %s: %v", pageURL, err)
	}

	// Wait for the answer: response.done after a completed transcription.
	type callState struct {
		Done    bool    `json:"done"`
		Failure *string `json:"failure"`
		Events  int     `json:"events"`
	}
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[callState](
			`({done: window.done === true, failure: window.failure ?? null, events: (window.events ?? []).length})`))
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("no response.done after a transcription within %v", browserCallTimeout)
			}
			t.Fatalf("reading the page's state: %v", err)
		}
		if st.Failure != nil {
			t.Fatalf("the page's call failed: %s", *st.Failure)
		}
		if st.Done {
			break
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("no response.done after a transcription within %v (%d events)", browserCallTimeout, st.Events)
		}
	}

	evs, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]any](`window.events`))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || evs[0]["type"] != "session.created" {
		t.Errorf("the first event is not session.created")
	}
	seen := map[string]bool{}
	var transcript, answer, status, responseID, startedFor string
	for _, ev := range evs {
		typ, _ := ev["type"].(string)
		seen[typ] = true
		switch typ {
		case "error", "conversation.item.input_audio_transcription.failed":
			t.Errorf("%s: %v", typ, ev)
		case "conversation.item.input_audio_transcription.completed":
			transcript, _ = ev["transcript"].(string)
		case "output_audio_buffer.started":
			startedFor, _ = ev["response_id"].(string)
		case "response.done":
			responseID, status, answer = responseDone(ev)
		}
	}
	t.Logf("transcript %q; answer (%s) %q", transcript, status, answer)
	for _, typ := range []string{
		"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
		"response.created", "output_audio_buffer.started",
	} {
		if !seen[typ] {
			t.Errorf("no %s event", typ)
		}
	}
	// The recognizer uses the language model built from the agent's
	// documents, so "Parley" comes through (as in the WebSocket voice tests).
	if !strings.Contains(strings.ToLower(transcript), "parley") {
		t.Errorf("transcript %q does not contain \"parley\"", transcript)
	}
	if status != "completed" || answer == "" {
		t.Errorf("response.done: status %q, transcript %q; want completed with a spoken answer", status, answer)
	}
	if startedFor != responseID {
		t.Errorf("output_audio_buffer.started for response %q, response.done for %q", startedFor, responseID)
	}
	loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.callLocation ?? ""`))
	if err != nil || !strings.Contains(loc, "/v1/realtime/calls/") {
		t.Errorf("Location of the call %q (%v): want /v1/realtime/calls/{id}, exposed to the page's origin", loc, err)
	}

	// The agent's voice arrived on the remote track and was decoded for
	// playback: packets, and energy in them (silence has none).
	var stats audioStats
	for {
		stats, err = chromedp.Run(ctx, chromedp.Evaluate[audioStats](`window.callStats()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("getStats: %v", err)
		}
		if stats.PacketsReceived > 10 && stats.TotalAudioEnergy > 0 {
			break
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("no audio from Parley on the remote track: %+v", stats)
		}
	}
	t.Logf("audio: %+v", stats)
}

// responseDone returns the response id and status of a response.done event
// and the transcripts of its audio output.
func responseDone(ev map[string]any) (id, status, transcript string) {
	resp, _ := ev["response"].(map[string]any)
	id, _ = resp["id"].(string)
	status, _ = resp["status"].(string)
	output, _ := resp["output"].([]any)
	var sb strings.Builder
	for _, it := range output {
		item, _ := it.(map[string]any)
		content, _ := item["content"].([]any)
		for _, c := range content {
			part, _ := c.(map[string]any)
			if s, ok := part["transcript"].(string); ok {
				sb.WriteString(s)
			}
		}
	}
	return id, status, sb.String()
}

// audioStats is what call.html's window.callStats() reports from getStats().
type audioStats struct {
	ConnectionState      string  `json:"connectionState"`
	SelectedPair         string  `json:"selectedPair"`
	MicAudioEnergy       float64 `json:"micAudioEnergy"`
	MicSamplesDuration   float64 `json:"micSamplesDuration"`
	PacketsSent          int     `json:"packetsSent"`
	PacketsReceived      int     `json:"packetsReceived"`
	BytesReceived        int     `json:"bytesReceived"`
	TotalAudioEnergy     float64 `json:"totalAudioEnergy"`
	TotalSamplesReceived int     `json:"totalSamplesReceived"`
	ConcealedSamples     int     `json:"concealedSamples"`
}

// customerSite is the customer's website: the page, and the backend
// endpoint that mints an ephemeral key for it with the secret key, which
// never reaches the browser.
func customerSite(parleyURL string, client *http.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(callPage)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]any{"session": map[string]any{
			"type":              "realtime",
			"model":             r.URL.Query().Get("agent"),
			"output_modalities": []string{"audio"},
		}})
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost,
			parleyURL+"/v1/realtime/client_secrets", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var secret struct {
			Value string `json:"value"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &secret) != nil || !strings.HasPrefix(secret.Value, "ek_") {
			http.Error(w, fmt.Sprintf("client_secrets answered %s: %s", resp.Status, b), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	return mux
}

// fakeMicrophoneWAV writes the fixture as Chromium's fake microphone plays
// it (--use-file-for-fake-audio-capture with %noloop): the file starts when
// getUserMedia opens the device, before the call is connected, so the
// speech comes after leadSilence; the silence after it lets the server's
// voice activity detection end the turn.
func fakeMicrophoneWAV(t *testing.T, fixture string) string {
	t.Helper()
	const (
		rate         = 24000 // the fixtures' rate; Chromium converts it to the device's
		leadSilence  = 3 * rate
		trailSilence = 10 * rate
	)
	speech := fixturePCM(t, fixture)
	pcm := make([]int16, leadSilence, leadSilence+len(speech)+trailSilence)
	pcm = append(pcm, speech...)
	pcm = append(pcm, make([]int16, trailSilence)...)
	path := filepath.Join(t.TempDir(), fixture+".wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(media.EncodeWAV(f, pcm, rate), f.Close()); err != nil {
		t.Fatal(err)
	}
	return path
}

// browser is a Chromium driven through chromedp, with what it printed.
type browser struct {
	ctx     context.Context // the tab
	console *syncBuffer     // the page's console, exceptions and browser log
	output  *syncBuffer     // chromium's stdout and stderr
}

// launchChromium starts Debian's chromium, headless, with a fake
// microphone playing wav. The test's cleanup closes it, kills whatever is
// left of it, and waits for every goroutine chromedp started.
func launchChromium(t *testing.T, wav string) *browser {
	t.Helper()
	profile := t.TempDir()
	b := &browser{console: &syncBuffer{}, output: &syncBuffer{}}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		// Only the flags the test needs, not chromedp's default list (its
		// Headless option would add --hide-scrollbars and --mute-audio).
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // chromium refuses to start as root without it
		chromedp.Flag("disable-gpu", true),
		// No traffic of its own, no first-run or sync UI: only the call.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		// getUserMedia: granted without a prompt, from a fake device that
		// plays the file. Once (%noloop): looped, the question would come
		// round again while the agent answers and interrupt it (barge-in).
		// Chromium converts the file's 24 kHz 16-bit mono itself.
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		fakeAudio(wav),
		// The <audio> element of the remote track plays without a click.
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Not needed: --allow-loopback-in-peer-connection (chromium sends
		// from its eth0 host candidate, and reaches Parley's host candidates
		// from there, 127.0.0.1 included), and anything about chromium's
		// mDNS host-candidate names (the page posts the offer before ICE
		// gathering, as OpenAI's guide does, so the offer carries no
		// candidates at all: Parley learns the browser's address as a
		// peer-reflexive candidate from its connectivity checks).
		chromedp.CombinedOutput(b.output),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b.ctx = ctx
	consoleDone := make(chan struct{})
	t.Cleanup(func() {
		// Close the browser gracefully, then kill it (allocCancel waits for
		// the process), then anything still running with its profile.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		ccancel()
		cancel()
		allocCancel()
		<-consoleDone
		if n := killProcessesUsing(profile); n > 0 {
			t.Logf("killed %d chromium processes left after the browser closed", n)
		}
	})

	ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
	if err != nil {
		close(consoleDone)
		t.Fatalf("start %s: %v\n%s", chromiumPath, err, b.output)
	}
	t.Logf("browser: %s", ua)
	msgs := chromedp.Console(ctx)
	go func() {
		defer close(consoleDone)
		for m, err := range msgs {
			if err != nil {
				return
			}
			fmt.Fprintf(b.console, "%s %s", m.Type, m.Text)
			if m.URL != "" {
				fmt.Fprintf(b.console, " (%s:%d)", m.URL, m.Line+1)
			}
			b.console.Write([]byte("\n"))
		}
	}()
	return b
}

// fakeAudio feeds the fake microphone from wav, once; without a wav it
// plays Chromium's own test tone.
func fakeAudio(wav string) chromedp.ExecAllocatorOption {
	if wav == "" {
		return func(*chromedp.ExecAllocator) {}
	}
	return chromedp.Flag("use-file-for-fake-audio-capture", wav+"%noloop")
}

// dump logs what helps understand a failed call: the page's events,
// state and statistics, its console, chromium's output and parleyd's log.
func (b *browser) dump(t *testing.T, r *running) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => JSON.stringify({
		failure: window.failure ?? null,
		location: window.callLocation ?? null,
		stats: window.callStats ? await window.callStats() : null,
		events: window.events ?? null,
	}, null, 1))()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Logf("page state: %v", err)
	} else {
		t.Logf("page state:\n%s", state)
	}
	t.Logf("browser console:\n%s", b.console)
	t.Logf("chromium output (last 8 KiB, without its D-Bus complaints):\n%s", tail(chromiumLog(b.output.String()), 8<<10))
	t.Logf("parleyd stderr:\n%s", r.stderr)
}

// chromiumLog drops the lines chromium prints because the machine has no
// D-Bus (a few dozen per run, all harmless).
func chromiumLog(out string) string {
	var sb strings.Builder
	for line := range strings.Lines(out) {
		if !strings.Contains(line, ":ERROR:dbus/") {
			sb.WriteString(line)
		}
	}
	return sb.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// killProcessesUsing kills every process started with --user-data-dir=dir
// (chromium passes it to all its children: zygote, renderer, network
// service, which can outlive the browser process by a moment and write into
// the profile while the test removes it). It looks again until a pass finds
// nothing, for at most 5 s, and returns how many it killed.
func killProcessesUsing(dir string) int {
	want := []byte("--user-data-dir=" + dir)
	killed := 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return killed
		}
		found := 0
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
				if bytes.Equal(arg, want) {
					if syscall.Kill(pid, syscall.SIGKILL) == nil {
						found++
					}
					break
				}
			}
		}
		if found == 0 {
			return killed
		}
		killed += found
	}
	return killed
}
