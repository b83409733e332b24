package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"parley/media"
	"parley/recording"
)

// parley record: make a session recording (docs/RECORDING.md) from audio
// files and text scripts. Every input is one or more turns of the visitor;
// the recording sends them in order, each later turn waiting for the
// previous answer (or, with -barge-in, for the end of the previous speech).
// With -conversation it records a stored live session instead
// (record_live.go).

const recordUsage = `usage: parley record -o FILE [-name N] [-agent A] [-format pcm|opus] [-modality text|audio]
                    [-lead DUR] [-trail DUR] [-gap DUR] [-barge-in DUR]
                    [-expect-transcript S]... [-expect-reply S]... INPUT...
       parley record -o FILE -tenant T -conversation ID [-expect] [-config FILE] [-storage URL]
                    [-name N] [-agent A] [-modality text|audio] [-lead DUR] [-trail DUR]

INPUT is a WAV file (16-bit PCM mono, any rate), an Ogg Opus file (.opus,
.ogg) or a text script (.txt: a visitor message per line; "# comment",
"expect reply: TEXT", "expect transcript: TEXT", "wait DUR"). Each audio
file is one spoken turn, each script message one typed turn.

With -conversation, the recording is made from a stored conversation of the
tenant (a live session): its typed messages, and its spoken turns from their
logged audio, so only from a tenant with conversation logging on
(privacy.audio_logging). The store and the master key come from the config
like parley export's. The file holds the conversation's content (mode 0600).
See docs/RECORDING.md.

`

// Audio of recordings: 24 kHz PCM (audio/pcm's only rate), cut into 20 ms
// events.
const (
	recRate        = 24000
	recChunk       = recRate / 50 // samples in 20 ms
	recChunkMS     = 20
	recMaxPadding  = 10 * time.Minute
	recMaxDelay    = time.Hour // recording.Event.Delay's limit
	recOpusClock   = 48000
	recOpus20ms48k = recOpusClock / 50
)

// recTurn is one visitor turn: a typed message, or speech.
type recTurn struct {
	src  string // "file" or "file:line", for messages
	text string // a typed message ("" for speech)
	// Speech: 24 kHz PCM, or (for -format opus from an Ogg Opus file of
	// 20 ms mono packets) the file's packets, passed through.
	pcm     []int16
	packets [][]byte
	wait    time.Duration // extra delay before the turn ("wait DUR")
	expect  recording.Expect
	// Where the expectations come from, for conflict messages.
	replyFrom, transcriptFrom string
}

func (t *recTurn) audio() bool { return t.text == "" }

// recordCmd is `parley record`.
func recordCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, recordUsage)
		fs.PrintDefaults()
	}
	out := fs.String("o", "", "recording to write (JSON Lines; required)")
	name := fs.String("name", "", "the recording's name (default: the output file's name)")
	agentID := fs.String("agent", "assistant", "agent the session talks to")
	format := fs.String("format", "pcm", "audio format: pcm (24 kHz 16-bit) or opus (20 ms packets)")
	modality := fs.String("modality", "", "the answers' output modality, text or audio (default: audio when there is speech, else text)")
	lead := fs.Duration("lead", 300*time.Millisecond, "silence before each spoken turn")
	trail := fs.Duration("trail", 1500*time.Millisecond, "silence after each spoken turn (lets server VAD end the turn)")
	gap := fs.Duration("gap", time.Second, "pause between an answer's response.done and the next turn")
	bargeIn := fs.Duration("barge-in", 0, "speak each later spoken turn this long after the previous turn's speech_stopped, over the answer (0: off)")
	var expTranscript, expReply multiFlag
	fs.Var(&expTranscript, "expect-transcript", "the i-th flag: the i-th turn's transcript contains S (repeatable; \"\" skips a turn)")
	fs.Var(&expReply, "expect-reply", "the i-th flag: the i-th turn's answer contains S (repeatable; \"\" skips a turn)")
	live := addLiveFlags(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError(err.Error())
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		max  time.Duration
	}{{"lead", *lead, recMaxPadding}, {"trail", *trail, recMaxPadding}, {"gap", *gap, recMaxDelay}, {"barge-in", *bargeIn, recMaxDelay}} {
		if d.v < 0 || d.v > d.max {
			return usageError(fmt.Sprintf("-%s %v: want 0 to %v", d.name, d.v, d.max))
		}
	}
	if live.requested(fs) {
		return recordLive(ctx, fs, live, liveOptions{out: *out, name: *name, agent: *agentID, modality: *modality,
			lead: *lead, trail: *trail}, stdout, stderr)
	}
	inputs := fs.Args()
	switch {
	case *out == "":
		return usageError("-o FILE is required")
	case len(inputs) == 0:
		return usageError("name at least one input: a .wav, .opus, .ogg or .txt file")
	case *format != "pcm" && *format != "opus":
		return usageError(fmt.Sprintf("-format must be pcm or opus, not %q", *format))
	case *modality != "" && *modality != "text" && *modality != "audio":
		return usageError(fmt.Sprintf("-modality must be text or audio, not %q", *modality))
	}

	var turns []*recTurn
	var carry time.Duration // a script's trailing "wait": before the next input's first turn
	carryFrom := ""
	for _, in := range inputs {
		var got []*recTurn
		var tail time.Duration
		var tailFrom string
		var err error
		switch ext := strings.ToLower(filepath.Ext(in)); ext {
		case ".wav":
			got, err = recLoadWAV(in)
		case ".opus", ".ogg":
			got, err = recLoadOgg(in, *format == "opus")
		case ".txt":
			got, tail, tailFrom, err = recLoadScript(in)
		default:
			err = fmt.Errorf("%s: unsupported input %q: want .wav, .opus, .ogg or .txt", in, ext)
		}
		if err != nil {
			return err
		}
		got[0].wait += carry
		carry, carryFrom = tail, tailFrom
		turns = append(turns, got...)
	}
	if carry > 0 {
		return fmt.Errorf("%s: \"wait\" at the end: no turn follows it", carryFrom)
	}
	if err := recApplyFlags(turns, expTranscript, "transcript"); err != nil {
		return err
	}
	if err := recApplyFlags(turns, expReply, "reply"); err != nil {
		return err
	}

	rec := &recorder{format: *format, lead: *lead, trail: *trail, gap: *gap, bargeIn: *bargeIn}
	hasAudio := false
	for _, t := range turns {
		hasAudio = hasAudio || t.audio()
	}
	rec.modality = *modality
	if rec.modality == "" {
		rec.modality = "text"
		if hasAudio {
			rec.modality = "audio"
		}
	}
	h := recording.Header{Name: *name, Agent: *agentID, Source: "record", Created: recCreated()}
	if h.Name == "" {
		h.Name = strings.TrimSuffix(filepath.Base(*out), filepath.Ext(*out))
	}
	if hasAudio {
		h.AudioFormat = recording.AudioPCM
		if *format == "opus" {
			h.AudioFormat = recording.AudioOpus
		}
	}
	st, err := recWriteFile(*out, 0o644, func(w io.Writer) error { return rec.write(w, h, turns) })
	if err != nil {
		return err
	}
	spoken := 0
	for _, t := range turns {
		if t.audio() {
			spoken++
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d spoken and %d typed turns, %d events, %.1f s of audio, %d bytes\n",
		*out, spoken, len(turns)-spoken, rec.events, rec.audioMS/1000, st)
	return nil
}

// recCreated is the header's creation time: SOURCE_DATE_EPOCH when set
// (reproducible output), else now.
func recCreated() string {
	t := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			t = time.Unix(n, 0)
		}
	}
	return t.UTC().Format(time.RFC3339)
}

// recApplyFlags applies the i-th -expect-KIND flag to the i-th turn.
func recApplyFlags(turns []*recTurn, vals []string, kind string) error {
	if len(vals) > len(turns) {
		return usageError(fmt.Sprintf("%d -expect-%s flags for %d turns", len(vals), kind, len(turns)))
	}
	for i, v := range vals {
		if v == "" {
			continue
		}
		t := turns[i]
		field, from := &t.expect.ReplyContains, &t.replyFrom
		if kind == "transcript" {
			field, from = &t.expect.TranscriptContains, &t.transcriptFrom
		}
		if kind == "transcript" && !t.audio() {
			return fmt.Errorf("-expect-transcript %q: turn %d is a typed message (%s), and only spoken turns have a transcript", v, i+1, t.src)
		}
		if *field != "" {
			return fmt.Errorf("turn %d has two %s expectations: -expect-%s %q and the one at %s", i+1, kind, kind, v, *from)
		}
		*field, *from = v, fmt.Sprintf("-expect-%s", kind)
	}
	return nil
}

// recOpenErr words a missing input plainly.
func recOpenErr(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no such file", path)
	}
	return err
}

// recMediaErr names the file in a media package error.
func recMediaErr(path string, err error) error {
	return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "media: "))
}

// recLoadWAV reads a 16-bit PCM mono WAV file as one spoken turn, resampled
// to 24 kHz.
func recLoadWAV(path string) ([]*recTurn, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, recOpenErr(path, err)
	}
	// media.DecodeWAV downmixes stereo; a recording's speech is one voice,
	// so refuse anything but mono, with a message saying what was found.
	if tag, channels, bits, ok := recWAVFormat(b); ok {
		switch {
		case tag != 1 || bits != 16:
			return nil, fmt.Errorf("%s: %d-bit %s WAV: parley record takes 16-bit PCM mono (sox %s -b 16 -e signed OUT.wav)", path, bits, recWAVTag(tag), path)
		case channels != 1:
			return nil, fmt.Errorf("%s: a WAV of %d channels: parley record takes mono (sox %s -c 1 OUT.wav)", path, channels, path)
		}
	}
	pcm, rate, err := media.DecodeWAV(bytes.NewReader(b))
	if err != nil {
		return nil, recMediaErr(path, err)
	}
	if len(pcm) == 0 {
		return nil, fmt.Errorf("%s: the WAV holds no audio", path)
	}
	if rate != recRate {
		rs, err := media.NewResampler(rate, recRate)
		if err != nil {
			return nil, recMediaErr(path, err)
		}
		out := rs.Process(make([]int16, 0, len(pcm)*recRate/rate+recChunk), pcm)
		pcm = rs.Flush(out)
	}
	return []*recTurn{{src: path, pcm: pcm}}, nil
}

// recWAVFormat finds a WAV file's format tag (the subformat's, for
// WAVE_FORMAT_EXTENSIBLE), channel count and sample size; ok is false when
// there is no readable fmt chunk (DecodeWAV then says what is wrong).
func recWAVFormat(b []byte) (tag, channels, bits int, ok bool) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, 0, 0, false
	}
	le16 := func(p int) int { return int(binary.LittleEndian.Uint16(b[p:])) }
	for p := 12; p+8 <= len(b); {
		size := int(binary.LittleEndian.Uint32(b[p+4:]))
		body := p + 8
		if string(b[p:p+4]) == "fmt " {
			if size < 16 || body+16 > len(b) {
				return 0, 0, 0, false
			}
			tag, channels, bits = le16(body), le16(body+2), le16(body+14)
			if tag == 0xFFFE && size >= 40 && body+26 <= len(b) {
				tag = le16(body + 24)
			}
			return tag, channels, bits, true
		}
		p = body + size + size&1
	}
	return 0, 0, 0, false
}

func recWAVTag(tag int) string {
	switch tag {
	case 1:
		return "PCM"
	case 3:
		return "IEEE float"
	case 6:
		return "A-law"
	case 7:
		return "µ-law"
	}
	return fmt.Sprintf("format %#04x", tag)
}

// recLoadOgg reads an Ogg Opus file as one spoken turn. With passThrough
// (-format opus) a mono stream of 20 ms packets is kept as it is; anything
// else is decoded to 24 kHz PCM (and re-encoded in 20 ms packets for
// -format opus).
func recLoadOgg(path string, passThrough bool) ([]*recTurn, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, recOpenErr(path, err)
	}
	return recParseOgg(path, b, passThrough)
}

// recParseOgg is recLoadOgg on a file's bytes; path names it in errors
// (and is the turn's src).
func recParseOgg(path string, b []byte, passThrough bool) ([]*recTurn, error) {
	r, err := media.NewOggOpusReader(bytes.NewReader(b))
	if err != nil {
		return nil, recMediaErr(path, err)
	}
	var packets [][]byte
	all20 := r.Channels() == 1
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, recMediaErr(path, err)
		}
		n, err := media.OpusPacketSamples(p, recOpusClock)
		if err != nil {
			return nil, fmt.Errorf("%s: packet %d: %s", path, len(packets)+1, strings.TrimPrefix(err.Error(), "media: "))
		}
		all20 = all20 && n == recOpus20ms48k
		packets = append(packets, bytes.Clone(p))
	}
	if len(packets) == 0 {
		return nil, fmt.Errorf("%s: the Ogg Opus stream holds no audio", path)
	}
	if !recOggEnded(b) {
		return nil, fmt.Errorf("%s: truncated: the Ogg Opus stream has no end-of-stream page", path)
	}
	if passThrough && all20 {
		return []*recTurn{{src: path, packets: packets}}, nil
	}
	dec, err := media.NewOpusDecoder(recRate)
	if err != nil {
		return nil, recMediaErr(path, err)
	}
	var pcm []int16
	for i, p := range packets {
		if pcm, err = dec.Decode(p, pcm); err != nil {
			return nil, fmt.Errorf("%s: packet %d: %s", path, i+1, strings.TrimPrefix(err.Error(), "media: "))
		}
	}
	// Drop the encoder's look-ahead (pre-skip) and what the last page's
	// granule position trims from the end; both count 48 kHz samples.
	skip := r.PreSkip() * recRate / recOpusClock
	if end := (r.Granule() - int64(r.PreSkip())) * recRate / recOpusClock; end > 0 && int(end)+skip < len(pcm) {
		pcm = pcm[:int(end)+skip]
	}
	if skip >= len(pcm) {
		return nil, fmt.Errorf("%s: the Ogg Opus stream holds no audio", path)
	}
	return []*recTurn{{src: path, pcm: pcm[skip:]}}, nil
}

// recOggEnded reports whether the Ogg file's pages end with an
// end-of-stream page of its first stream (OggOpusReader takes a file cut at
// a page boundary for a complete one). The reader has checked the pages'
// CRCs already.
func recOggEnded(b []byte) bool {
	if len(b) < 27 {
		return false
	}
	serial := binary.LittleEndian.Uint32(b[14:])
	for p := 0; p+27 <= len(b); {
		if string(b[p:p+4]) != "OggS" {
			return false
		}
		nseg := int(b[p+26])
		if p+27+nseg > len(b) {
			return false
		}
		size := 0
		for _, l := range b[p+27 : p+27+nseg] {
			size += int(l)
		}
		if b[p+5]&0x04 != 0 && binary.LittleEndian.Uint32(b[p+14:]) == serial {
			return true
		}
		p += 27 + nseg + size
	}
	return false
}

// recLoadScript reads a text script: one typed turn per message line. It
// also returns a trailing "wait" (for the next input's first turn) and
// where it was.
func recLoadScript(path string) (turns []*recTurn, wait time.Duration, waitFrom string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, "", recOpenErr(path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 256<<10)
	n := 0
	var last *recTurn
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		where := fmt.Sprintf("%s:%d", path, n)
		lower := strings.ToLower(line)
		if !recValidUTF8(line) {
			return nil, 0, "", fmt.Errorf("%s: not UTF-8 text", where)
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(lower, "expect reply:"), strings.HasPrefix(lower, "expect transcript:"):
			kind, val, _ := strings.Cut(line, ":")
			kind = strings.ToLower(strings.Join(strings.Fields(kind), " "))
			val = strings.TrimSpace(val)
			if val == "" {
				return nil, 0, "", fmt.Errorf("%s: %q needs the text to look for", where, kind+":")
			}
			if last == nil {
				return nil, 0, "", fmt.Errorf("%s: %q before any message: an expectation follows the message it is about", where, kind+":")
			}
			if kind == "expect transcript" {
				// The format's transcript_contains is about speech.
				return nil, 0, "", fmt.Errorf("%s: %q after a typed message: only spoken turns have a transcript (use -expect-transcript for an audio input)", where, kind+":")
			}
			field, from := &last.expect.ReplyContains, &last.replyFrom
			if *field != "" {
				return nil, 0, "", fmt.Errorf("%s: a second %q for the message of %s (the first is at %s)", where, kind+":", last.src, *from)
			}
			*field, *from = val, where
		case recIsWait(line):
			arg := strings.Fields(line)[1]
			d, err := time.ParseDuration(arg)
			if err != nil || d < 0 || d > recMaxDelay {
				return nil, 0, "", fmt.Errorf("%s: wait %s: want a duration from 0 to 1h, like 500ms, 2s or 1m30s", where, arg)
			}
			wait += d
			waitFrom = where
		default:
			last = &recTurn{src: where, text: line, wait: wait}
			turns = append(turns, last)
			wait, waitFrom = 0, ""
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, 0, "", fmt.Errorf("%s:%d: a line longer than 256 KiB", path, n+1)
		}
		return nil, 0, "", fmt.Errorf("%s: %w", path, err)
	}
	if len(turns) == 0 {
		return nil, 0, "", fmt.Errorf("%s: an empty script: no message lines", path)
	}
	return turns, wait, waitFrom, nil
}

// recIsWait tells a "wait DUR" line from a message that starts with "wait":
// two words, the second starting like a number.
func recIsWait(line string) bool {
	f := strings.Fields(line)
	if len(f) != 2 || !strings.EqualFold(f[0], "wait") {
		return false
	}
	c := f[1][0]
	return c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+'
}

func recValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// recorder writes the turns as recording events.
type recorder struct {
	format, modality          string
	lead, trail, gap, bargeIn time.Duration

	w       *recording.Writer
	enc     *media.OpusEncoder
	packet  []byte
	events  int
	audioMS float64
	// The timing of the next line: a turn's await and delay go on its
	// first line (its expectation, when it has one).
	await string
	dt    float64
}

// Client events of the recordings, in a fixed field order.
type (
	recSessionUpdate struct {
		Type    string     `json:"type"`
		Session recSession `json:"session"`
	}
	recSession struct {
		Type             string   `json:"type"`
		OutputModalities []string `json:"output_modalities"`
		Audio            struct {
			Input struct {
				Format struct {
					Type string `json:"type"`
					Rate int    `json:"rate"`
				} `json:"format"`
				TurnDetection recTurnDetection `json:"turn_detection"`
			} `json:"input"`
		} `json:"audio"`
	}
	recTurnDetection struct {
		Type              string  `json:"type"`
		Threshold         float64 `json:"threshold"`
		PrefixPaddingMS   int     `json:"prefix_padding_ms"`
		SilenceDurationMS int     `json:"silence_duration_ms"`
		CreateResponse    bool    `json:"create_response"`
		InterruptResponse bool    `json:"interrupt_response"`
	}
	recItemCreate struct {
		Type string `json:"type"`
		Item struct {
			Type    string `json:"type"`
			Role    string `json:"role"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"item"`
	}
)

func (r *recorder) sessionUpdate() recSessionUpdate {
	u := recSessionUpdate{Type: "session.update"}
	s := &u.Session
	s.Type = "realtime"
	s.OutputModalities = []string{r.modality}
	s.Audio.Input.Format.Type, s.Audio.Input.Format.Rate = recording.AudioPCM, recRate
	if r.format == "opus" {
		s.Audio.Input.Format.Type, s.Audio.Input.Format.Rate = recording.AudioOpus, recOpusClock
	}
	s.Audio.Input.TurnDetection = recTurnDetection{Type: "server_vad", Threshold: 0.5, PrefixPaddingMS: 300,
		SilenceDurationMS: 500, CreateResponse: true, InterruptResponse: true}
	return u
}

func (r *recorder) write(w io.Writer, h recording.Header, turns []*recTurn) error {
	var err error
	if r.w, err = recording.NewWriter(w, h); err != nil {
		return err
	}
	if err := r.send(r.sessionUpdate()); err != nil {
		return err
	}
	for i, t := range turns {
		// The turn's timing.
		switch {
		case i == 0:
			r.await = ""
			r.dt = ms(t.wait)
		case r.bargeIn > 0 && t.audio() && turns[i-1].audio():
			r.await = recording.AwaitSpeechStopped
			r.dt = ms(r.bargeIn + t.wait)
		default:
			r.await = recording.AwaitResponseDone
			r.dt = ms(r.gap + t.wait)
		}
		if t.expect != (recording.Expect{}) {
			e := t.expect
			if err := r.event(recording.Event{Expect: &e}); err != nil {
				return err
			}
		}
		if t.audio() {
			err = r.speech(t)
		} else {
			err = r.message(t.text)
		}
		if err != nil {
			return err
		}
	}
	return r.w.Flush()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// event writes ev with the pending timing (then none).
func (r *recorder) event(ev recording.Event) error {
	ev.Await, ev.Delay = r.await, r.dt
	r.await, r.dt = "", 0
	r.events++
	return r.w.Event(ev)
}

func (r *recorder) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.event(recording.Event{Send: b})
}

// message sends a typed visitor message and asks for the answer.
func (r *recorder) message(text string) error {
	if err := r.item("user", "input_text", text); err != nil {
		return err
	}
	return r.respond()
}

// item sends a conversation.item.create of a text message.
func (r *recorder) item(role, contentType, text string) error {
	var ev recItemCreate
	ev.Type = "conversation.item.create"
	ev.Item.Type, ev.Item.Role = "message", role
	ev.Item.Content = append(ev.Item.Content, struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}{contentType, text})
	return r.send(ev)
}

// respond asks for an answer.
func (r *recorder) respond() error { return r.send(map[string]string{"type": "response.create"}) }

// samples is d at 24 kHz, to the nearest sample.
func samples(d time.Duration) int { return int(math.Round(d.Seconds() * recRate)) }

// speech sends a spoken turn: lead silence, the speech, trail silence, in
// 20 ms events paced at 20 ms.
func (r *recorder) speech(t *recTurn) error {
	if t.packets != nil {
		// Opus packets passed through, between encoded silences rounded
		// to whole 20 ms packets.
		silence := make([]int16, recChunk)
		for range int(math.Round(ms(r.lead) / recChunkMS)) {
			if err := r.opusFrame(silence); err != nil {
				return err
			}
		}
		for _, p := range t.packets {
			if err := r.audio(p, recChunkMS); err != nil {
				return err
			}
		}
		for range int(math.Round(ms(r.trail) / recChunkMS)) {
			if err := r.opusFrame(silence); err != nil {
				return err
			}
		}
		return nil
	}
	pcm := make([]int16, samples(r.lead), samples(r.lead)+len(t.pcm)+samples(r.trail)+recChunk)
	pcm = append(pcm, t.pcm...)
	pcm = append(pcm, make([]int16, samples(r.trail))...)
	if r.format == "opus" {
		// Whole 20 ms frames: the last one is padded with silence.
		if n := len(pcm) % recChunk; n != 0 {
			pcm = append(pcm, make([]int16, recChunk-n)...)
		}
	}
	var b []byte
	for i := 0; i < len(pcm); i += recChunk {
		frame := pcm[i:min(i+recChunk, len(pcm))]
		if r.format == "opus" {
			if err := r.opusFrame(frame); err != nil {
				return err
			}
			continue
		}
		b = media.PCM16LEToBytes(b[:0], frame)
		if err := r.audio(b, float64(len(frame))*1000/recRate); err != nil {
			return err
		}
	}
	return nil
}

// opusFrame encodes 20 ms of 24 kHz PCM and sends the packet. One encoder
// serves the whole recording, as one client's stream.
func (r *recorder) opusFrame(frame []int16) error {
	if r.enc == nil {
		var err error
		if r.enc, err = media.NewOpusEncoder(recRate); err != nil {
			return err
		}
	}
	var err error
	if r.packet, err = r.enc.Encode(frame, r.packet); err != nil {
		return err
	}
	return r.audio(r.packet, recChunkMS)
}

// audio sends one chunk of audio lasting durMS. Every chunk but a turn's
// first is sent 20 ms after the previous one: real-time pacing.
func (r *recorder) audio(b []byte, durMS float64) error {
	if err := r.event(recording.Event{Audio: b}); err != nil {
		return err
	}
	r.audioMS += durMS
	r.dt = recChunkMS // the next chunk's delay, unless a new turn sets it
	return nil
}

// recWriteFile writes path (with permissions perm) through a temporary
// file in its directory, checks it reads back as a recording, and renames
// it into place: a failure leaves no partial output. It returns the size
// written.
func recWriteFile(path string, perm os.FileMode, write func(io.Writer) error) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("-o %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := write(bw); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := recording.Read(tmp, path); err != nil {
		return 0, fmt.Errorf("the recording made is not valid: %w", err)
	}
	st, err := tmp.Stat()
	if err != nil {
		return 0, err
	}
	if err := tmp.Chmod(perm); err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	done = true
	return st.Size(), nil
}
