// Package recording is Parley's session-recording format (docs/RECORDING.md):
// the client's side of a realtime session as timed lines of JSON, written
// by `parley record` and replayed by `parley replay`.
//
// A recording is JSON Lines. The first line is the Header; every other
// line is one Event: a client event to send, an audio chunk to append,
// or an expectation about the next answer. Events are timed by Delay
// (milliseconds after the previous event was sent, or after the awaited
// event arrived) and may first Await a server event (the previous answer
// finished, say), so that a replay keeps a conversation's rhythm against a
// gateway of any speed.
package recording

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Version is the format version this package reads and writes.
const Version = 1

// MaxLine is the longest line a recording may have (a session.update with
// long instructions fits; so does a second of PCM audio).
const MaxLine = 1 << 20

// Audio formats of audio events: the realtime protocol's input formats
// (REALTIME-PROTOCOL.md). audio/pcm is 24 kHz 16-bit little-endian mono;
// audio/opus is one Opus packet per event (48 kHz clock).
const (
	AudioPCM  = "audio/pcm"
	AudioPCMU = "audio/pcmu"
	AudioPCMA = "audio/pcma"
	AudioOpus = "audio/opus"
)

// Header is a recording's first line.
type Header struct {
	// Format names the format and its version: {"parley_recording": 1}.
	Format int `json:"parley_recording"`
	// Name says what the session is ("voice question", …).
	Name string `json:"name,omitempty"`
	// Agent is the agent the session talks to (the model query parameter);
	// a replay may override it.
	Agent string `json:"agent,omitempty"`
	// AudioFormat is the format of the audio events ("" when there are
	// none).
	AudioFormat string `json:"audio_format,omitempty"`
	// Source says how it was made: "record" (parley record) or "live" (a
	// logged session).
	Source string `json:"source,omitempty"`
	// Created is when it was made (RFC 3339), informational.
	Created string `json:"created,omitempty"`
}

// Awaitable server events an Event may wait for.
const (
	AwaitResponseDone   = "response.done"
	AwaitSpeechStopped  = "input_audio_buffer.speech_stopped"
	AwaitTranscript     = "conversation.item.input_audio_transcription.completed"
	AwaitOutputAudioEnd = "output_audio_buffer.stopped"
)

var awaitable = map[string]bool{
	AwaitResponseDone: true, AwaitSpeechStopped: true, AwaitTranscript: true, AwaitOutputAudioEnd: true,
}

// Event is one line after the header. Exactly one of Send, Audio and
// Expect is set.
type Event struct {
	// Await, when set, is a server event the replay waits for: one of that
	// type that arrived since the previous await was met (or the session
	// began), even while earlier events were being sent. Delay then
	// counts from that event's arrival.
	Await string `json:"await,omitempty"`
	// Delay is milliseconds to wait after the previous event was sent
	// (after Await, when set).
	Delay float64 `json:"dt,omitempty"`
	// Send is a client event of the realtime protocol, sent as it is.
	Send json.RawMessage `json:"send,omitempty"`
	// Audio is a chunk of audio in the header's AudioFormat, sent as an
	// input_audio_buffer.append.
	Audio []byte `json:"audio,omitempty"`
	// Expect is checked against the next answer (response.done) after it
	// in the session.
	Expect *Expect `json:"expect,omitempty"`
}

// Expect is what the next answer should show. Comparisons ignore case.
type Expect struct {
	// TranscriptContains: the transcript of the visitor's spoken turn
	// answered next contains this.
	TranscriptContains string `json:"transcript_contains,omitempty"`
	// ReplyContains: the answer's text (or spoken transcript) contains this.
	ReplyContains string `json:"reply_contains,omitempty"`
	// Status is the answer's status (default "completed").
	Status string `json:"status,omitempty"`
}

// Recording is a parsed recording.
type Recording struct {
	// Path is where it was read from ("" when built in memory).
	Path   string
	Header Header
	Events []Event
	// Lines[i] is the line number of Events[i], for messages.
	Lines []int
}

// Error is a problem in a recording, naming the file and line.
type Error struct {
	Path string
	Line int
	Err  error
}

func (e *Error) Error() string {
	name := e.Path
	if name == "" {
		name = "recording"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", name, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", name, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrVersion is wrapped when a recording has a format version this
// package does not read.
var ErrVersion = errors.New("unsupported recording version")

// ReadFile reads and validates the recording at path.
func ReadFile(path string) (*Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f, path)
}

// Read parses and validates a recording; path names it in errors.
func Read(r io.Reader, path string) (*Recording, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	rec := &Recording{Path: path}
	line := 0
	fail := func(err error) (*Recording, error) { return nil, &Error{Path: path, Line: line, Err: err} }
	sawHeader := false
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if !sawHeader {
			sawHeader = true
			h, err := parseHeader(b)
			if err != nil {
				return fail(err)
			}
			rec.Header = h
			continue
		}
		ev, err := parseEvent(b, rec.Header.AudioFormat)
		if err != nil {
			return fail(err)
		}
		rec.Events = append(rec.Events, ev)
		rec.Lines = append(rec.Lines, line)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			line++
			return fail(fmt.Errorf("line longer than %d bytes", MaxLine))
		}
		return fail(err)
	}
	if !sawHeader {
		return fail(errors.New(`empty: the first line must be the header {"parley_recording":1,…}`))
	}
	if len(rec.Events) == 0 {
		return fail(errors.New("no events after the header"))
	}
	return rec, nil
}

func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

func parseHeader(b []byte) (Header, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return Header{}, fmt.Errorf("the header is not a JSON object: %v", jsonMsg(err))
	}
	if _, ok := probe["parley_recording"]; !ok {
		return Header{}, errors.New(`the first line is not a recording header: it needs "parley_recording": 1`)
	}
	var h Header
	if err := strictDecode(b, &h); err != nil {
		return Header{}, fmt.Errorf("header: %v", jsonMsg(err))
	}
	if h.Format != Version {
		return Header{}, fmt.Errorf("%w %d (this Parley reads version %d)", ErrVersion, h.Format, Version)
	}
	switch h.AudioFormat {
	case "", AudioPCM, AudioPCMU, AudioPCMA, AudioOpus:
	default:
		return Header{}, fmt.Errorf("header: audio_format %q is not one of audio/pcm, audio/pcmu, audio/pcma, audio/opus", h.AudioFormat)
	}
	return h, nil
}

func parseEvent(b []byte, audioFormat string) (Event, error) {
	var ev Event
	if err := strictDecode(b, &ev); err != nil {
		return Event{}, fmt.Errorf("event: %v", jsonMsg(err))
	}
	n := 0
	if len(ev.Send) > 0 {
		n++
		var probe struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(ev.Send, &probe); err != nil {
			return Event{}, fmt.Errorf(`"send" is not a JSON object: %v`, jsonMsg(err))
		}
		if probe.Type == "" {
			return Event{}, errors.New(`"send" has no "type": it must be a client event of the realtime protocol`)
		}
		if probe.Type == "input_audio_buffer.append" {
			return Event{}, errors.New(`send audio as {"audio": "<base64>"} lines, not input_audio_buffer.append events`)
		}
	}
	if ev.Audio != nil {
		n++
		if audioFormat == "" {
			return Event{}, errors.New(`an audio event, but the header names no "audio_format"`)
		}
		if len(ev.Audio) == 0 {
			return Event{}, errors.New("an empty audio chunk")
		}
		if audioFormat == AudioPCM && len(ev.Audio)%2 != 0 {
			return Event{}, fmt.Errorf("%d bytes of audio/pcm: 16-bit samples need an even count", len(ev.Audio))
		}
	}
	if ev.Expect != nil {
		n++
		if ev.Expect.TranscriptContains == "" && ev.Expect.ReplyContains == "" && ev.Expect.Status == "" {
			return Event{}, errors.New(`an empty "expect"`)
		}
	}
	if n != 1 {
		return Event{}, fmt.Errorf(`an event needs exactly one of "send", "audio" and "expect" (it has %d)`, n)
	}
	if ev.Delay < 0 || ev.Delay > 3600e3 {
		return Event{}, fmt.Errorf(`"dt" %v is not between 0 and 3,600,000 ms`, ev.Delay)
	}
	if ev.Await != "" && !awaitable[ev.Await] {
		return Event{}, fmt.Errorf(`"await" %q is not one of response.done, input_audio_buffer.speech_stopped, `+
			`conversation.item.input_audio_transcription.completed, output_audio_buffer.stopped`, ev.Await)
	}
	return ev, nil
}

// jsonMsg shortens encoding/json's messages.
func jsonMsg(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// Writer writes a recording, a line at a time.
type Writer struct {
	w   *bufio.Writer
	err error
}

// NewWriter writes h and returns a Writer for the events.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format = Version
	wr := &Writer{w: bufio.NewWriter(w)}
	wr.line(h)
	return wr, wr.err
}

func (w *Writer) line(v any) {
	if w.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return
	}
	b = append(b, '\n')
	_, w.err = w.w.Write(b)
}

// Event writes ev.
func (w *Writer) Event(ev Event) error {
	w.line(ev)
	return w.err
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}

// Duration is the recording's length at real-time pacing, without the
// time spent awaiting server events.
func (r *Recording) Duration() float64 {
	var ms float64
	for _, ev := range r.Events {
		ms += ev.Delay
	}
	return ms
}

// AudioBase64 is ev's audio as the realtime protocol carries it.
func (ev *Event) AudioBase64() string { return base64.StdEncoding.EncodeToString(ev.Audio) }
