package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"parley/media"
	"parley/recording"
)

const fixtures = "../../testdata/audio/"

func runRecord(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"record"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String() + errb.String()
}

// record runs parley record into a temporary file and reads the result.
func record(t *testing.T, args ...string) *recording.Recording {
	t.Helper()
	out := filepath.Join(t.TempDir(), "r.jsonl")
	if code, msg := runRecord(t, append([]string{"-o", out}, args...)...); code != 0 {
		t.Fatalf("record %v: exit %d: %s", args, code, msg)
	}
	rec, err := recording.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// audioMS is the duration of an audio event.
func audioMS(t *testing.T, format string, b []byte) float64 {
	t.Helper()
	if format == recording.AudioOpus {
		n, err := media.OpusPacketSamples(b, 48000)
		if err != nil {
			t.Fatal(err)
		}
		return float64(n) / 48
	}
	return float64(len(b)) / 48 // 24 kHz, 2 bytes a sample
}

// sendType is the type of a send event ("" for other events).
func sendType(ev recording.Event) string {
	var probe struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(ev.Send, &probe)
	return probe.Type
}

func wavMS(t *testing.T, name string) float64 {
	t.Helper()
	f, err := os.Open(fixtures + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pcm, rate, err := media.DecodeWAV(f)
	if err != nil {
		t.Fatal(err)
	}
	return float64(len(pcm)) * 1000 / float64(rate)
}

func oggPackets(t *testing.T, name string) int {
	t.Helper()
	f, err := os.Open(fixtures + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := media.NewOggOpusReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			return n
		}
		n++
	}
}

// writeWAV writes a WAV file with the given format fields around pcm.
func writeWAV(t *testing.T, path string, channels, bits, rate int, data []byte) {
	t.Helper()
	h := make([]byte, 44)
	copy(h, "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], uint16(channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*channels*bits/8))
	binary.LittleEndian.PutUint16(h[32:], uint16(channels*bits/8))
	binary.LittleEndian.PutUint16(h[34:], uint16(bits))
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	if err := os.WriteFile(path, append(h, data...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRecordAudio: a spoken fixture in both formats, from WAV and Ogg
// Opus, makes a valid recording whose audio adds up to lead + speech +
// trail, in 20 ms events paced at 20 ms after a session.update that names
// the format.
func TestRecordAudio(t *testing.T) {
	// A 16 kHz WAV: resampled to 24 kHz.
	dir := t.TempDir()
	tone := make([]int16, 16000)
	for i := range tone {
		tone[i] = int16(8000 * ((i / 20) % 2))
	}
	wav16k := filepath.Join(dir, "tone16k.wav")
	if err := os.WriteFile(wav16k, media.AppendWAV(nil, tone, 16000), 0o644); err != nil {
		t.Fatal(err)
	}
	whatWAV := wavMS(t, "what_is_parley.wav")
	whatOgg := float64(oggPackets(t, "what_is_parley.opus")) * 20
	tests := []struct {
		name, input, format string
		flags               []string
		leadMS, trailMS     float64
		speechMS            float64
	}{
		{"wav pcm", fixtures + "what_is_parley.wav", "pcm", nil, 300, 1500, whatWAV},
		{"wav opus", fixtures + "what_is_parley.wav", "opus", nil, 300, 1500, whatWAV},
		{"wav pcm odd padding", fixtures + "what_is_parley.wav", "pcm", []string{"-lead", "110ms", "-trail", "255ms"}, 110, 255, whatWAV},
		{"wav opus odd padding", fixtures + "what_is_parley.wav", "opus", []string{"-lead", "110ms", "-trail", "255ms"}, 110, 255, whatWAV},
		{"wav no padding", fixtures + "what_is_parley.wav", "opus", []string{"-lead", "0s", "-trail", "0s"}, 0, 0, whatWAV},
		{"ogg pcm (decoded, trimmed)", fixtures + "what_is_parley.opus", "pcm", nil, 300, 1500, whatWAV},
		{"ogg opus (passed through)", fixtures + "what_is_parley.opus", "opus", nil, 300, 1500, whatOgg},
		{"16 kHz wav", wav16k, "pcm", nil, 300, 1500, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-format", tc.format, "-agent", "support", "-name", "n"}, tc.flags...)
			rec := record(t, append(args, tc.input)...)
			want := map[string]string{"pcm": recording.AudioPCM, "opus": recording.AudioOpus}[tc.format]
			h := rec.Header
			if h.Format != 1 || h.AudioFormat != want || h.Agent != "support" || h.Name != "n" || h.Source != "record" || h.Created == "" {
				t.Fatalf("header %+v", h)
			}
			first := rec.Events[0]
			var su struct {
				Type    string `json:"type"`
				Session struct {
					Type             string   `json:"type"`
					OutputModalities []string `json:"output_modalities"`
					Audio            struct {
						Input struct {
							Format struct {
								Type string `json:"type"`
								Rate int    `json:"rate"`
							} `json:"format"`
							TurnDetection struct {
								Type string `json:"type"`
							} `json:"turn_detection"`
						} `json:"input"`
					} `json:"audio"`
				} `json:"session"`
			}
			if err := json.Unmarshal(first.Send, &su); err != nil {
				t.Fatal(err)
			}
			s := su.Session
			if su.Type != "session.update" || s.Type != "realtime" || s.Audio.Input.Format.Type != want ||
				s.Audio.Input.TurnDetection.Type != "server_vad" || !slices.Equal(s.OutputModalities, []string{"audio"}) {
				t.Fatalf("first event %s", first.Send)
			}
			var total float64
			for i, ev := range rec.Events[1:] {
				if ev.Audio == nil {
					t.Fatalf("event %d is not audio", i+1)
				}
				d := audioMS(t, want, ev.Audio)
				if d > 20 || (tc.format == "opus" && d != 20) {
					t.Fatalf("event %d: %v ms of audio", i+1, d)
				}
				if wantDT := map[bool]float64{true: 0, false: 20}[i == 0]; ev.Delay != wantDT || ev.Await != "" {
					t.Fatalf("event %d: await %q dt %v", i+1, ev.Await, ev.Delay)
				}
				total += d
			}
			if exp := tc.leadMS + tc.speechMS + tc.trailMS; total < exp-20 || total > exp+20 {
				t.Errorf("%v ms of audio, want %v (lead %v + speech %v + trail %v)", total, exp, tc.leadMS, tc.speechMS, tc.trailMS)
			}
			if d := rec.Duration(); d < total-40 || d > total {
				t.Errorf("paced over %v ms for %v ms of audio", d, total)
			}
		})
	}
}

// TestRecordScript: typed messages with a wait and expectations, and
// expectations from flags.
func TestRecordScript(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.txt")
	if err := os.WriteFile(script, []byte(`# two questions
What is Parley?
expect reply: gateway

  wait 2s
How long are transcripts kept?
Expect Reply:  90 days
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := record(t, "-gap", "500ms", script)
	if rec.Header.AudioFormat != "" {
		t.Fatalf("header %+v", rec.Header)
	}
	type line struct {
		typ, await string
		dt         float64
		expect     recording.Expect
	}
	var got []line
	for _, ev := range rec.Events {
		l := line{typ: sendType(ev), await: ev.Await, dt: ev.Delay}
		if ev.Expect != nil {
			l.typ, l.expect = "expect", *ev.Expect
		}
		got = append(got, l)
	}
	want := []line{
		{typ: "session.update"},
		{typ: "expect", expect: recording.Expect{ReplyContains: "gateway"}},
		{typ: "conversation.item.create"},
		{typ: "response.create"},
		{typ: "expect", await: "response.done", dt: 2500, expect: recording.Expect{ReplyContains: "90 days"}},
		{typ: "conversation.item.create"},
		{typ: "response.create"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%+v\nwant\n%+v", got, want)
	}
	if !strings.Contains(string(rec.Events[0].Send), `"output_modalities":["text"]`) {
		t.Errorf("session.update %s", rec.Events[0].Send)
	}
	var item struct {
		Item struct {
			Type, Role string
			Content    []struct{ Type, Text string }
		}
	}
	if err := json.Unmarshal(rec.Events[5].Send, &item); err != nil || item.Item.Type != "message" || item.Item.Role != "user" ||
		len(item.Item.Content) != 1 || item.Item.Content[0].Type != "input_text" || item.Item.Content[0].Text != "How long are transcripts kept?" {
		t.Fatalf("item %s", rec.Events[5].Send)
	}

	// Flags: the i-th applies to the i-th turn, "" skips one; -modality
	// overrides the default; a message that starts with "wait" is a message.
	plain := filepath.Join(dir, "plain.txt")
	if err := os.WriteFile(plain, []byte("Hello\nWait for me please\nBye\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec = record(t, "-expect-reply", "", "-expect-reply", "second", "-expect-transcript", "x", "-modality", "audio", fixtures+"hello.wav", plain)
	var expects, texts []string
	for _, ev := range rec.Events {
		if ev.Expect != nil {
			expects = append(expects, ev.Expect.ReplyContains+"/"+ev.Expect.TranscriptContains+"@"+ev.Await)
		}
		if sendType(ev) == "conversation.item.create" {
			if err := json.Unmarshal(ev.Send, &item); err != nil {
				t.Fatal(err)
			}
			texts = append(texts, item.Item.Content[0].Text)
		}
	}
	if !slices.Equal(expects, []string{"/x@", "second/@response.done"}) || !slices.Equal(texts, []string{"Hello", "Wait for me please", "Bye"}) ||
		!strings.Contains(string(rec.Events[0].Send), `"output_modalities":["audio"]`) {
		t.Fatalf("expects %q, messages %q", expects, texts)
	}
}

// TestRecordTurns: later turns await the previous answer; with -barge-in
// spoken turns after spoken turns await its speech_stopped instead; a
// script's trailing wait delays the next input's first turn.
func TestRecordTurns(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.txt")
	if err := os.WriteFile(script, []byte("Thanks\nwait 250ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wav := fixtures + "hello.wav"
	firsts := func(rec *recording.Recording) []string {
		var s []string
		for _, ev := range rec.Events[1:] {
			if ev.Await != "" {
				s = append(s, fmt.Sprintf("%s/%v", ev.Await, ev.Delay))
			}
		}
		return s
	}
	rec := record(t, "-format", "opus", wav, wav, script, wav)
	if got := firsts(rec); !slices.Equal(got, []string{"response.done/1000", "response.done/1000", "response.done/1250"}) {
		t.Errorf("awaits %q", got)
	}
	rec = record(t, "-format", "opus", "-barge-in", "1500ms", "-gap", "2s", wav, wav, script, wav, wav)
	if got := firsts(rec); !slices.Equal(got, []string{"input_audio_buffer.speech_stopped/1500", "response.done/2000",
		"response.done/2250", "input_audio_buffer.speech_stopped/1500"}) {
		t.Errorf("barge-in awaits %q", got)
	}
	// The interrupting turn starts with its lead silence, right away.
	for i, ev := range rec.Events {
		if ev.Await == recording.AwaitSpeechStopped && (ev.Audio == nil || rec.Events[i-1].Audio == nil) {
			t.Errorf("event %d awaits speech_stopped but is not audio after audio", i)
		}
	}
}

// TestRecordErrors: bad inputs and flags give a message naming the file
// (and line) and exit 1, usage errors exit 2, and nothing is written: an
// existing output is left as it was.
func TestRecordErrors(t *testing.T) {
	dir := t.TempDir()
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wavBytes, err := os.ReadFile(fixtures + "what_is_parley.wav")
	if err != nil {
		t.Fatal(err)
	}
	oggBytes, err := os.ReadFile(fixtures + "what_is_parley.opus")
	if err != nil {
		t.Fatal(err)
	}
	corruptOgg := bytes.Clone(oggBytes)
	corruptOgg[len(corruptOgg)/2] ^= 0xFF
	// A cut at a page boundary: every page whole, no end-of-stream page.
	boundary := bytes.LastIndex(oggBytes, []byte("OggS"))
	stereo := filepath.Join(dir, "stereo.wav")
	writeWAV(t, stereo, 2, 16, 24000, make([]byte, 4800))
	eight := filepath.Join(dir, "eight.wav")
	writeWAV(t, eight, 1, 8, 8000, make([]byte, 800))
	empty := filepath.Join(dir, "empty.wav")
	writeWAV(t, empty, 1, 16, 24000, nil)
	float := put("float.wav", func() []byte {
		b := bytes.Clone(wavBytes)
		binary.LittleEndian.PutUint16(b[20:], 3)
		binary.LittleEndian.PutUint16(b[34:], 32)
		return b
	}())

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing file", []string{dir + "/nope.wav"}, 1, "nope.wav: no such file"},
		{"missing script", []string{dir + "/nope.txt"}, 1, "nope.txt: no such file"},
		{"corrupt wav", []string{put("junk.wav", []byte("this is not audio at all"))}, 1, "junk.wav: not a WAV file"},
		{"truncated wav", []string{put("cut.wav", wavBytes[:5000])}, 1, "cut.wav: WAV truncated"},
		{"truncated header", []string{put("head.wav", wavBytes[:30])}, 1, "head.wav: WAV"},
		{"stereo wav", []string{stereo}, 1, "stereo.wav: a WAV of 2 channels: parley record takes mono"},
		{"8-bit wav", []string{eight}, 1, "eight.wav: 8-bit PCM WAV: parley record takes 16-bit PCM mono"},
		{"float wav", []string{float}, 1, "float.wav: 32-bit IEEE float WAV"},
		{"empty wav", []string{empty}, 1, "empty.wav: the WAV holds no audio"},
		{"corrupt ogg", []string{put("bad.opus", corruptOgg)}, 1, "bad.opus: Ogg page"},
		{"not ogg", []string{put("junk.ogg", []byte("OggT and then some more bytes of nothing"))}, 1, "junk.ogg: not an Ogg page"},
		{"truncated ogg", []string{put("cut.opus", oggBytes[:len(oggBytes)/2+7])}, 1, "cut.opus: Ogg"},
		{"ogg cut at a page", []string{put("page.opus", oggBytes[:boundary])}, 1, "page.opus: truncated: the Ogg Opus stream has no end-of-stream page"},
		{"unsupported", []string{put("a.mp3", []byte("ID3"))}, 1, `a.mp3: unsupported input ".mp3": want .wav, .opus, .ogg or .txt`},
		{"empty script", []string{put("empty.txt", []byte("\n# only a comment\n\n"))}, 1, "empty.txt: an empty script"},
		{"bad wait", []string{put("wait.txt", []byte("Hi\nwait 5\nBye\n"))}, 1, "wait.txt:2: wait 5: want a duration"},
		{"negative wait", []string{put("neg.txt", []byte("Hi\n\nwait -1s\nBye\n"))}, 1, "neg.txt:3: wait -1s"},
		{"trailing wait", []string{put("tail.txt", []byte("Hi\nwait 1s\n"))}, 1, `tail.txt:2: "wait" at the end: no turn follows it`},
		{"expect first", []string{put("exp.txt", []byte("expect reply: x\nHi\n"))}, 1, `exp.txt:1: "expect reply:" before any message`},
		{"empty expect", []string{put("exp2.txt", []byte("Hi\nexpect transcript:\n"))}, 1, `exp2.txt:2: "expect transcript:" needs the text`},
		{"two expects", []string{put("exp3.txt", []byte("Hi\nexpect reply: a\nexpect reply: b\n"))}, 1, "exp3.txt:3: a second"},
		{"flag and script", []string{"-expect-reply", "y", put("exp4.txt", []byte("Hi\nexpect reply: a\n"))}, 1,
			`turn 1 has two reply expectations: -expect-reply "y" and the one at ` + dir + "/exp4.txt:2"},
		{"typed transcript", []string{put("exp5.txt", []byte("Hi\nexpect transcript: hi\n"))}, 1, `exp5.txt:2: "expect transcript:" after a typed message`},
		{"typed transcript flag", []string{"-expect-transcript", "", "-expect-transcript", "x", fixtures + "hello.wav", put("t.txt", []byte("Hi\n"))}, 1,
			`-expect-transcript "x": turn 2 is a typed message (` + dir + "/t.txt:1)"},
		{"not utf-8", []string{put("latin1.txt", []byte("caf\xe9\n"))}, 1, "latin1.txt:1: not UTF-8"},
		{"bad lead", []string{"-lead", "soon", fixtures + "hello.wav"}, 2, `invalid value "soon" for flag -lead`},
		{"negative trail", []string{"-trail", "-1s", fixtures + "hello.wav"}, 2, "-trail -1s: want 0 to 10m0s"},
		{"huge gap", []string{"-gap", "2h", fixtures + "hello.wav"}, 2, "-gap 2h0m0s"},
		{"bad format", []string{"-format", "mp3", fixtures + "hello.wav"}, 2, "-format must be pcm or opus"},
		{"bad modality", []string{"-modality", "video", fixtures + "hello.wav"}, 2, "-modality must be text or audio"},
		{"no input", nil, 2, "name at least one input"},
		{"too many expectations", []string{"-expect-reply", "a", "-expect-reply", "b", fixtures + "hello.wav"}, 2, "2 -expect-reply flags for 1 turns"},
		{"unknown flag", []string{"-speed", "2", fixtures + "hello.wav"}, 2, "flag provided but not defined: -speed"},
	}
	out := filepath.Join(dir, "out", "r.jsonl")
	if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, msg := runRecord(t, append([]string{"-o", out}, tc.args...)...)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d, output %q; want %d and %q", code, msg, tc.code, tc.want)
			}
			if b, _ := os.ReadFile(out); string(b) != "old" {
				t.Errorf("the output was changed: %.60q", b)
			}
			if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
				t.Errorf("left %d files in the output directory", len(ents))
			}
		})
	}
	// Without -o; into a directory that does not exist.
	if code, msg := runRecord(t, fixtures+"hello.wav"); code != 2 || !strings.Contains(msg, "-o FILE is required") {
		t.Errorf("no -o: exit %d %q", code, msg)
	}
	if code, msg := runRecord(t, "-o", dir+"/no/such/dir/r.jsonl", fixtures+"hello.wav"); code != 1 || !strings.Contains(msg, "no/such/dir/r.jsonl") {
		t.Errorf("missing directory: exit %d %q", code, msg)
	}
}

// TestRecordDeterministic: the same inputs make the same bytes, dated by
// SOURCE_DATE_EPOCH.
func TestRecordDeterministic(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	dir := t.TempDir()
	var outs [2][]byte
	for i := range outs {
		p := filepath.Join(dir, "r.jsonl")
		if code, msg := runRecord(t, "-o", p, "-format", "opus", fixtures+"hello.wav", fixtures+"what_is_parley.opus"); code != 0 {
			t.Fatal(msg)
		}
		outs[i], _ = os.ReadFile(p)
	}
	if !bytes.Equal(outs[0], outs[1]) || !bytes.Contains(outs[0], []byte(`"created":"2026-01-01T00:00:00Z"`)) {
		t.Fatalf("two runs differ, or the date is not SOURCE_DATE_EPOCH's:\n%.300s", outs[0])
	}
}

// TestCommittedSessions: every recording in testdata/sessions reads, and
// is what scripts/make-sessions.sh makes today (same events, timing and
// packet durations; the Opus bytes may differ between libopus versions).
// Keep the arguments here in step with the script.
func TestCommittedSessions(t *testing.T) {
	const dir = "../../testdata/sessions/"
	paths, err := filepath.Glob(dir + "*.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	made := map[string][]string{
		"text_only.jsonl":      {"-name", "text only", dir + "text_only.txt"},
		"voice_question.jsonl": {"-name", "voice question", "-format", "opus", "-expect-transcript", "parley", "-expect-reply", "Parley", fixtures + "what_is_parley.wav"},
		"interruption.jsonl":   {"-name", "interruption", "-format", "opus", "-barge-in", "2s", fixtures + "what_is_parley.wav", fixtures + "long_answer_stop.wav"},
		"long_silence.jsonl": {"-name", "long silence", "-format", "opus", "-trail", "10s", "-expect-reply", "", "-expect-reply", "Parley",
			fixtures + "hello.wav", fixtures + "what_is_parley.wav"},
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	if want := slices.Sorted(func(yield func(string) bool) {
		for k := range made {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(names, want) {
		t.Fatalf("testdata/sessions holds %q, want %q", names, want)
	}
	for _, p := range paths {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			rec, err := recording.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(p)
			if st.Size() > 200<<10 {
				t.Errorf("%d bytes: keep committed sessions small", st.Size())
			}
			fresh := record(t, made[name]...)
			if rec.Header.Name != fresh.Header.Name || rec.Header.AudioFormat != fresh.Header.AudioFormat || len(rec.Events) != len(fresh.Events) {
				t.Fatalf("stale: %+v with %d events, record makes %+v with %d (run make testdata)",
					rec.Header, len(rec.Events), fresh.Header, len(fresh.Events))
			}
			for i, ev := range rec.Events {
				f := fresh.Events[i]
				same := ev.Await == f.Await && ev.Delay == f.Delay && bytes.Equal(ev.Send, f.Send) &&
					(ev.Expect == nil) == (f.Expect == nil) && (ev.Expect == nil || *ev.Expect == *f.Expect) &&
					(ev.Audio == nil) == (f.Audio == nil)
				if same && ev.Audio != nil {
					same = audioMS(t, rec.Header.AudioFormat, ev.Audio) == audioMS(t, rec.Header.AudioFormat, f.Audio)
				}
				if !same {
					t.Fatalf("stale at line %d (run make testdata)", rec.Lines[i])
				}
			}
		})
	}
	if _, err := os.Stat(dir + "text_only.txt"); err != nil {
		t.Error(err)
	}
}
