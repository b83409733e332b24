package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"parley/media"
	"parley/recording"
	"parley/storage"
	"parley/storage/seal"
	"parley/storage/sqlite"
)

// liveOgg is what the gateway logs for a spoken turn: the fixture at 16
// kHz, encoded to Ogg Opus in frames of frameMS (the gateway's are 20 ms).
func liveOgg(t *testing.T, frameMS int) []byte {
	t.Helper()
	f, err := os.Open(fixtures + "what_is_parley.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcm, rate, err := media.DecodeWAV(f)
	if err != nil {
		t.Fatal(err)
	}
	const pipelineRate = 16000 // gateway.PipelineRate
	if rate != pipelineRate {
		rs, err := media.NewResampler(rate, pipelineRate)
		if err != nil {
			t.Fatal(err)
		}
		pcm = rs.Flush(rs.Process(nil, pcm))
	}
	enc, err := media.NewOpusEncoder(pipelineRate)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := media.NewOggOpusWriter(&buf, pipelineRate, enc.PreSkip())
	if err != nil {
		t.Fatal(err)
	}
	frame := pipelineRate * frameMS / 1000
	for i := 0; i < len(pcm); i += frame {
		fr := make([]int16, frame)
		copy(fr, pcm[i:min(i+frame, len(pcm))])
		p, err := enc.Encode(fr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// oggPacketsOf returns the audio packets of an Ogg Opus stream.
func oggPacketsOf(t *testing.T, b []byte) [][]byte {
	t.Helper()
	r, err := media.NewOggOpusReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var ps [][]byte
	for {
		p, err := r.Next()
		if err == io.EOF {
			return ps
		}
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, bytes.Clone(p))
	}
}

// liveTurn is a stored turn of a test conversation; times count from the
// conversation's start.
type liveTurn struct {
	id, role, text string
	noText         bool // the retention kept metadata only
	at, end        time.Duration
	lat            storage.Latency
	status         string // default completed
	audio          []byte // logged Ogg Opus
	expired        bool   // swept before the test
}

// Latencies of a spoken turn and of the answer to one.
var (
	spokenLat = storage.Latency{EndOfTurnMS: 520, FirstPartialMS: 300, FinalTranscriptMS: 700}
	answerLat = storage.Latency{FirstTokenMS: 150, TotalMS: 1500, EndOfTurnMS: 520, FinalTranscriptMS: 700, FirstAudioMS: 900}
	typedLat  = storage.Latency{FirstTokenMS: 120, TotalMS: 1000}
)

// writeLiveConversation stores a conversation of agent "support-bot" as
// the gateway's recorder does: turns sealed under TurnAAD, logged audio
// ("audio/ogg") under AudioAAD.
func writeLiveConversation(t *testing.T, f *privacyFixture, tenant, id string, turns ...liveTurn) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kr, err := seal.NewKeyring(st, []seal.MasterKey{f.mk}, seal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	expires := start.Add(30 * 24 * time.Hour)
	ws := []storage.Write{{Create: &storage.Conversation{ID: id, TenantID: tenant, AgentID: "support-bot", Channel: "websocket",
		StartedAt: start, ExpiresAt: expires}}}
	expired := false
	for i, lt := range turns {
		tr := &storage.Turn{ID: lt.id, ConversationID: id, TenantID: tenant, Seq: i + 1, Role: lt.role, Status: lt.status,
			StartedAt: start.Add(lt.at), EndedAt: start.Add(lt.end), Latency: lt.lat, ExpiresAt: expires}
		if tr.Status == "" {
			tr.Status = storage.TurnCompleted
		}
		if lt.expired {
			tr.ExpiresAt, expired = start.Add(-time.Minute), true
		}
		if !lt.noText {
			if tr.TextSealed, err = kr.Seal(ctx, tenant, []byte(lt.text), seal.TurnAAD(tenant, id, lt.id)); err != nil {
				t.Fatal(err)
			}
			tr.TextStored = true
		}
		ws = append(ws, storage.Write{Turn: tr})
		if lt.audio != nil {
			sealed, err := kr.Seal(ctx, tenant, lt.audio, seal.AudioAAD(tenant, id, lt.id))
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, storage.Write{Audio: &storage.TurnAudio{TenantID: tenant, ConversationID: id, TurnID: lt.id,
				Format: "audio/ogg", Sealed: sealed, DurationMS: 1200, CreatedAt: tr.EndedAt, ExpiresAt: expires}})
		}
	}
	errs, err := st.WriteBatch(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s write %d: %v", id, i, err)
		}
	}
	if expired {
		if _, err := st.DeleteExpired(ctx, time.Now(), 100); err != nil {
			t.Fatal(err)
		}
	}
}

// liveOutline describes a recording's events in a line each, a run of
// 20 ms audio in one: "@done +3000 item user: Hi" is a
// conversation.item.create that awaits response.done, then 3 s.
func liveOutline(t *testing.T, rec *recording.Recording) []string {
	t.Helper()
	short := map[string]string{recording.AwaitResponseDone: "@done ", recording.AwaitSpeechStopped: "@stopped "}
	var out []string
	for i := 0; i < len(rec.Events); i++ {
		ev := rec.Events[i]
		line := short[ev.Await]
		if ev.Delay != 0 {
			line += fmt.Sprintf("+%v ", ev.Delay)
		}
		switch {
		case ev.Audio != nil:
			n := 1
			for i+1 < len(rec.Events) && rec.Events[i+1].Audio != nil {
				if next := rec.Events[i+1]; next.Await != "" || next.Delay != 20 {
					t.Errorf("audio event %d of a run: await %q, dt %v", i+1, next.Await, next.Delay)
				}
				i++
				n++
			}
			line += fmt.Sprintf("audio×%d", n)
		case ev.Expect != nil:
			line += "expect"
			if e := ev.Expect.TranscriptContains; e != "" {
				line += " transcript=" + e
			}
			if e := ev.Expect.ReplyContains; e != "" {
				line += " reply=" + e
			}
		default:
			var send struct {
				Type string `json:"type"`
				Item struct {
					Role    string `json:"role"`
					Content []struct {
						Type string `json:"type"`
						Text string `json:"text"`
					} `json:"content"`
				} `json:"item"`
			}
			if err := json.Unmarshal(ev.Send, &send); err != nil {
				t.Fatal(err)
			}
			switch send.Type {
			case "conversation.item.create":
				c := send.Item.Content[0]
				if want := map[string]string{"user": "input_text", "assistant": "output_text"}[send.Item.Role]; c.Type != want {
					t.Errorf("a %s item with %s content", send.Item.Role, c.Type)
				}
				line += "item " + send.Item.Role + ": " + c.Text
			case "response.create":
				line += "respond"
			default:
				line += send.Type
			}
		}
		out = append(out, line)
	}
	return out
}

func TestRecordLive(t *testing.T) {
	f := newPrivacyFixture(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	ogg, ogg40 := liveOgg(t, 20), liveOgg(t, 40)
	packets := oggPacketsOf(t, ogg)
	speech := len(packets)     // 20 ms packets
	const lead, trail = 15, 75 // 300 ms and 1.5 s of silence, in 20 ms packets
	s := time.Second

	writeLiveConversation(t, f, "acme", "c-live",
		liveTurn{id: "u1", role: "user", text: "what is parley", at: 0, end: 2500 * time.Millisecond, lat: spokenLat, audio: ogg},
		liveTurn{id: "a1", role: "assistant", text: "Parley is a privacy-first voice gateway.", at: 2500 * time.Millisecond, end: 4 * s, lat: answerLat},
		liveTurn{id: "u2", role: "user", text: "How long are transcripts kept?", at: 7 * s, end: 7 * s},
		liveTurn{id: "a2", role: "assistant", text: "[email] Transcripts are kept for 30 days.", at: 7 * s, end: 8200 * time.Millisecond, lat: typedLat},
		liveTurn{id: "u3", role: "user", text: "Thanks!", at: 98200 * time.Millisecond, end: 98200 * time.Millisecond},
		liveTurn{id: "a3", role: "assistant", text: "You are welcome.", at: 98200 * time.Millisecond, end: 99 * s, lat: typedLat},
	)
	// An interruption: the second question starts while the first answer
	// is being made, and cancels it.
	writeLiveConversation(t, f, "acme", "c-barge",
		liveTurn{id: "u1", role: "user", text: "what is parley", at: 0, end: 2500 * time.Millisecond, lat: spokenLat, audio: ogg},
		liveTurn{id: "a1", role: "assistant", text: "Parley is", at: 2500 * time.Millisecond, end: 3 * s, lat: answerLat, status: storage.TurnCancelled},
		liveTurn{id: "u2", role: "user", text: "stop please", at: 2800 * time.Millisecond, end: 5500 * time.Millisecond, lat: spokenLat, audio: ogg},
		liveTurn{id: "a2", role: "assistant", text: "Stopping now.", at: 5500 * time.Millisecond, end: 6500 * time.Millisecond, lat: answerLat},
	)
	// Logged audio of 40 ms packets: encoded again in 20 ms ones.
	writeLiveConversation(t, f, "acme", "c-40ms",
		liveTurn{id: "u1", role: "user", text: "what is parley", at: 0, end: 2 * s, lat: spokenLat, audio: ogg40},
		liveTurn{id: "a1", role: "assistant", text: "Parley is a gateway.", at: 2 * s, end: 3 * s, lat: answerLat},
	)
	// The agent speaks first (the client asked with response.create).
	writeLiveConversation(t, f, "acme", "c-greeting",
		liveTurn{id: "a0", role: "assistant", text: "Hello, how can I help?", at: 0, end: 1200 * time.Millisecond, lat: typedLat},
		liveTurn{id: "u1", role: "user", text: "Hi", at: 5 * s, end: 5 * s},
		liveTurn{id: "a1", role: "assistant", text: "Welcome to Parley.", at: 5 * s, end: 6 * s, lat: typedLat},
	)
	// The client adds history (a user and an assistant item, no answer
	// asked for), then asks.
	writeLiveConversation(t, f, "acme", "c-history",
		liveTurn{id: "u1", role: "user", text: "I asked before", at: 0, end: 0},
		liveTurn{id: "h1", role: "assistant", text: "You did.", at: 0, end: 0},
		liveTurn{id: "u2", role: "user", text: "Again?", at: 2 * s, end: 2 * s},
		liveTurn{id: "a2", role: "assistant", text: "Again then.", at: 2 * s, end: 3 * s, lat: typedLat},
	)
	// What was not kept.
	writeLiveConversation(t, f, "acme", "c-nolog",
		liveTurn{id: "u1", role: "user", text: "what is parley", at: 0, end: 2 * s, lat: spokenLat},
		liveTurn{id: "a1", role: "assistant", text: "Parley is a gateway.", at: 2 * s, end: 3 * s, lat: answerLat},
	)
	writeLiveConversation(t, f, "acme", "c-voice-answer", // spoken: only the answer's figures tell
		liveTurn{id: "u1", role: "user", text: "what is parley", at: 0, end: 0},
		liveTurn{id: "a1", role: "assistant", text: "Parley is a gateway.", at: 0, end: s, lat: answerLat},
	)
	writeLiveConversation(t, f, "acme", "c-meta",
		liveTurn{id: "u1", role: "user", noText: true, at: 0, end: 2 * s, lat: spokenLat},
		liveTurn{id: "a1", role: "assistant", noText: true, at: 2 * s, end: 3 * s, lat: answerLat},
	)
	writeLiveConversation(t, f, "acme", "c-typed-notext",
		liveTurn{id: "u1", role: "user", noText: true, at: 0, end: 0},
		liveTurn{id: "a1", role: "assistant", text: "Hello.", at: 0, end: s, lat: typedLat},
	)
	writeLiveConversation(t, f, "acme", "c-expired",
		liveTurn{id: "u1", role: "user", text: "Hi", at: 0, end: 0, expired: true},
		liveTurn{id: "a1", role: "assistant", text: "Hello.", at: 0, end: s, lat: typedLat},
	)

	dir := t.TempDir()
	out := filepath.Join(dir, "live.jsonl")
	spoken := fmt.Sprintf("audio×%d", lead+speech+trail)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // the outline, on success
		msg  string   // in stderr
	}{
		{name: "spoken and typed", args: []string{"-tenant", "acme", "-conversation", "c-live"}, want: []string{
			"session.update", spoken,
			"@done +3000 item user: How long are transcripts kept?", "respond",
			"@done +60000 item user: Thanks!", "respond",
		}},
		{name: "spoken and typed, -expect", args: []string{"-tenant", "acme", "-conversation", "c-live", "-expect"}, want: []string{
			"session.update", "expect transcript=what reply=parley", spoken,
			"@done +3000 expect reply=transcripts", "item user: How long are transcripts kept?", "respond",
			"@done +60000 expect reply=welcome", "item user: Thanks!", "respond",
		}},
		{name: "interruption", args: []string{"-tenant", "acme", "-conversation", "c-barge", "-expect"}, want: []string{
			"session.update", spoken, // the cancelled answer is no reference
			"@stopped +480 expect transcript=stop reply=stopping", spoken,
		}},
		{name: "greeting", args: []string{"-tenant", "acme", "-conversation", "c-greeting", "-expect"}, want: []string{
			"session.update", "expect reply=hello", "respond",
			"@done +3800 expect reply=welcome", "item user: Hi", "respond",
		}},
		{name: "history", args: []string{"-tenant", "acme", "-conversation", "c-history"}, want: []string{
			"session.update", "item user: I asked before", "item assistant: You did.",
			"+2000 item user: Again?", "respond",
		}},
		{name: "lead and trail", args: []string{"-tenant", "acme", "-conversation", "c-live", "-lead", "100ms", "-trail", "1s"}, want: []string{
			"session.update", fmt.Sprintf("audio×%d", 5+speech+50),
			"@done +3000 item user: How long are transcripts kept?", "respond",
			"@done +60000 item user: Thanks!", "respond",
		}},

		{name: "spoken, audio not logged", args: []string{"-tenant", "acme", "-conversation", "c-nolog"}, code: 1,
			msg: "cannot record conversation c-nolog of tenant acme: turn 1 (u1) was spoken, but its audio was not logged"},
		{name: "spoken by the answer's figures", args: []string{"-tenant", "acme", "-conversation", "c-voice-answer"}, code: 1,
			msg: "turn 1 (u1) was spoken, but its audio was not logged"},
		{name: "metadata only", args: []string{"-tenant", "acme", "-conversation", "c-meta"}, code: 1,
			msg: "it holds metadata only, no transcript and no audio were kept"},
		{name: "typed, text not kept", args: []string{"-tenant", "acme", "-conversation", "c-typed-notext"}, code: 1,
			msg: "turn 1 (u1) was typed, but its text was not kept"},
		{name: "turns expired", args: []string{"-tenant", "acme", "-conversation", "c-expired"}, code: 1,
			msg: "only 1 of its 2 turns are left"},
		{name: "unknown conversation", args: []string{"-tenant", "acme", "-conversation", "c-nope"}, code: 1,
			msg: "conversation c-nope of tenant acme: not found"},
		{name: "another tenant's conversation", args: []string{"-tenant", "acme", "-conversation", "c-globex-1"}, code: 1,
			msg: "conversation c-globex-1 of tenant acme: not found"},
		{name: "wrong tenant", args: []string{"-tenant", "globex", "-conversation", "c-live"}, code: 1,
			msg: "conversation c-live of tenant globex: not found"},
		{name: "unknown tenant", args: []string{"-tenant", "nobody", "-conversation", "c-live"}, code: 1,
			msg: "tenant nobody: not found"},

		{name: "no -tenant", args: []string{"-conversation", "c-live"}, code: 2, msg: "-tenant is required"},
		{name: "no -conversation", args: []string{"-tenant", "acme", "-expect"}, code: 2, msg: "name it with -conversation ID"},
		{name: "an input", args: []string{"-tenant", "acme", "-conversation", "c-live", fixtures + "hello.wav"}, code: 2, msg: "takes no INPUT files"},
		{name: "-format", args: []string{"-tenant", "acme", "-conversation", "c-live", "-format", "opus"}, code: 2, msg: "-format does not apply"},
		{name: "-gap", args: []string{"-tenant", "acme", "-conversation", "c-live", "-gap", "2s"}, code: 2, msg: "-gap does not apply"},
		{name: "-expect-reply", args: []string{"-tenant", "acme", "-conversation", "c-live", "-expect-reply", "x"}, code: 2, msg: "use -expect"},
		{name: "bad -lead", args: []string{"-tenant", "acme", "-conversation", "c-live", "-lead", "-1s"}, code: 2, msg: "-lead -1s: want 0 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			var stdout, stderr bytes.Buffer
			args := append([]string{"record", "-o", out}, tc.args...)
			code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.msg)
			}
			if code != 0 {
				if _, err := os.Stat(out); err == nil {
					t.Error("a failed recording left a file")
				}
				// A refusal names the settings that keep what is missing.
				var keep []string
				if strings.Contains(tc.msg, "not logged") || strings.Contains(tc.msg, "metadata only") {
					keep = append(keep, "privacy.audio_logging", `PUT /v1/tenants/acme/privacy with "audio_logging": true`)
				}
				if strings.Contains(tc.msg, "not kept") || strings.Contains(tc.msg, "metadata only") {
					keep = append(keep, `"transcript_days" above 0`)
				}
				if keep != nil {
					keep = append(keep, "recorded only from what was kept", "must turn conversation logging on")
				}
				for _, s := range keep {
					if !strings.Contains(stderr.String(), s) {
						t.Errorf("the refusal does not say %q: %s", s, stderr.String())
					}
				}
				return
			}
			rec, err := recording.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := liveOutline(t, rec); !slices.Equal(got, tc.want) {
				t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			conv := tc.args[3]
			h := rec.Header
			wantFormat := ""
			if slices.ContainsFunc(tc.want, func(s string) bool { return strings.HasPrefix(s, "audio") }) {
				wantFormat = recording.AudioOpus
			}
			if h.Source != "live" || h.Name != "conversation "+conv || h.Agent != "support-bot" || h.AudioFormat != wantFormat ||
				h.Created != "2026-01-01T00:00:00Z" {
				t.Errorf("header %+v", h)
			}
			if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600: the file holds the conversation", fi.Mode().Perm())
			}
			if warn := stderr.String(); strings.Count(warn, "\n") != 1 || !strings.Contains(warn, "warning: "+out+" holds the content of conversation "+conv) ||
				!strings.Contains(warn, "retention") {
				t.Errorf("warning %q", warn)
			}
			if !strings.HasPrefix(stdout.String(), "wrote "+out+": conversation "+conv+" of tenant acme") {
				t.Errorf("stdout %q", stdout.String())
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("%d files in the output directory, want the recording only", len(entries))
			}
		})
	}

	// The logged packets pass through as they are, between silences; every
	// audio event is 20 ms, in both the passed-through and the re-encoded
	// recordings, and the session asks for spoken answers in Opus.
	for _, conv := range []string{"c-live", "c-40ms"} {
		rec := record(t, "-tenant", "acme", "-conversation", conv)
		var audio [][]byte
		for _, ev := range rec.Events {
			if ev.Audio != nil {
				if d := audioMS(t, recording.AudioOpus, ev.Audio); d != 20 {
					t.Fatalf("%s: a %v ms audio event", conv, d)
				}
				audio = append(audio, ev.Audio)
			}
		}
		if !bytes.Contains(rec.Events[0].Send, []byte(`"output_modalities":["audio"]`)) ||
			!bytes.Contains(rec.Events[0].Send, []byte(`"format":{"type":"audio/opus","rate":48000}`)) {
			t.Errorf("%s: session.update %s", conv, rec.Events[0].Send)
		}
		switch conv {
		case "c-live":
			if len(audio) != lead+speech+trail {
				t.Fatalf("c-live: %d audio events", len(audio))
			}
			for i, p := range packets {
				if !bytes.Equal(audio[lead+i], p) {
					t.Fatalf("c-live: logged packet %d is not passed through", i)
				}
			}
		case "c-40ms":
			// lead + speech (without the pre-skip) + trail, to a packet.
			want := 300 + float64(speech)*20 - 312.0/48 + 1500
			if got := float64(len(audio)) * 20; math.Abs(got-want) > 40 {
				t.Errorf("c-40ms: %v ms of audio, want about %v", got, want)
			}
		}
	}
	// -name and -agent apply; a text-only conversation asks for text.
	rec := record(t, "-tenant", "acme", "-conversation", "c-greeting", "-name", "greeting", "-agent", "other")
	if rec.Header.Name != "greeting" || rec.Header.Agent != "other" || rec.Header.AudioFormat != "" ||
		!bytes.Contains(rec.Events[0].Send, []byte(`"output_modalities":["text"]`)) {
		t.Errorf("c-greeting: %+v, %s", rec.Header, rec.Events[0].Send)
	}
}

// TestRecordLiveShredded: a shredded tenant's conversation cannot be
// recorded, and the message says why.
func TestRecordLiveShredded(t *testing.T) {
	f := newPrivacyFixture(t)
	writeLiveConversation(t, f, "acme", "c-live",
		liveTurn{id: "u1", role: "user", text: "what is parley", at: 0, end: 2 * time.Second, lat: spokenLat, audio: liveOgg(t, 20)},
		liveTurn{id: "a1", role: "assistant", text: "Parley is a gateway.", at: 2 * time.Second, end: 3 * time.Second, lat: answerLat},
	)
	writeLiveConversation(t, f, "acme", "c-typed",
		liveTurn{id: "u1", role: "user", text: "Hi", at: 0, end: 0},
		liveTurn{id: "a1", role: "assistant", text: "Hello.", at: 0, end: time.Second, lat: typedLat},
	)
	if code, _, stderr := cli("shred", "-tenant", "acme", "-yes"); code != 0 {
		t.Fatalf("shred: %d %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "live.jsonl")
	for _, conv := range []string{"c-live", "c-typed"} {
		code, stdout, stderr := cli("record", "-o", out, "-tenant", "acme", "-conversation", conv)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "cannot record conversation "+conv+" of tenant acme: its transcripts and audio are unreadable, because the tenant's data key was shredded") {
			t.Errorf("%s after shred: %d %q %s", conv, code, stdout, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: a file was written", conv)
		}
	}
	// No master key: the usage error of the data-rights commands.
	t.Setenv("PARLEY_MASTER_KEY", "")
	if code, _, stderr := cli("record", "-o", out, "-tenant", "acme", "-conversation", "c-live"); code != 2 || !strings.Contains(stderr, "no master key configured") {
		t.Errorf("without a master key: %d %s", code, stderr)
	}
}
