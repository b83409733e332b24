package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"parley/media"
)

// frame is the duration of one packet / append: 20 ms, real-time pace.
const frame = 20 * time.Millisecond

// script is the audio every session sends, looped: the spoken fixtures'
// Opus packets (20 ms each), each followed by gap of silence, and the same
// audio as the append events of the two WebSocket formats.
type script struct {
	names      []string
	opus       [][]byte // one 20 ms Opus packet each
	pcmEvents  [][]byte // input_audio_buffer.append, audio/pcm 24 kHz: the packets decoded
	opusEvents [][]byte // input_audio_buffer.append, audio/opus: the packets as they are
	pcm24      []int16  // the whole script decoded to 24 kHz
	speech     time.Duration

	silenceOpus      []byte // one 20 ms packet of silence
	silencePCMEvent  []byte
	silenceOpusEvent []byte
}

func (s *script) duration() time.Duration { return time.Duration(len(s.opus)) * frame }

// loadScript reads the fixtures listed in dir/fixtures.tsv that have an
// Ogg Opus file (the spoken ones) and builds the looped script.
func loadScript(dir string, gap time.Duration) (*script, error) {
	b, err := os.ReadFile(filepath.Join(dir, "fixtures.tsv"))
	if err != nil {
		return nil, err
	}
	enc, err := media.NewOpusEncoder(48000)
	if err != nil {
		return nil, err
	}
	s := &script{}
	zero := make([]int16, 960)
	for range 5 { // the encoder settles on its silence packet
		if s.silenceOpus, err = enc.Encode(zero, nil); err != nil {
			return nil, err
		}
	}
	gapPackets := int(gap / frame)
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Split(line, "\t")
		if i == 0 || len(f) < 5 || strings.TrimSpace(f[4]) == "" {
			continue
		}
		path := filepath.Join(dir, f[0]+".opus")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		ps, err := oggPackets(path)
		if err != nil {
			return nil, err
		}
		s.names = append(s.names, f[0])
		s.opus = append(s.opus, ps...)
		s.speech += time.Duration(len(ps)) * frame
		for range gapPackets {
			s.opus = append(s.opus, s.silenceOpus)
		}
	}
	if len(s.names) == 0 {
		return nil, fmt.Errorf("%s: no spoken fixtures (NAME.opus with a text in fixtures.tsv)", dir)
	}

	// The same audio for the WebSocket sessions: decoded to 24 kHz for
	// audio/pcm, as is for audio/opus.
	dec, err := media.NewOpusDecoder(24000)
	if err != nil {
		return nil, err
	}
	var pcm []int16
	var raw []byte
	for _, p := range s.opus {
		if pcm, err = dec.Decode(p, pcm[:0]); err != nil {
			return nil, err
		}
		if len(pcm) != 480 {
			return nil, fmt.Errorf("a packet decoded to %d samples at 24 kHz, want 480 (20 ms)", len(pcm))
		}
		s.pcm24 = append(s.pcm24, pcm...)
		raw = media.PCM16LEToBytes(raw[:0], pcm)
		s.pcmEvents = append(s.pcmEvents, appendEvent(raw))
		s.opusEvents = append(s.opusEvents, appendEvent(p))
	}
	s.silencePCMEvent = appendEvent(make([]byte, 960))
	s.silenceOpusEvent = appendEvent(s.silenceOpus)
	return s, nil
}

// appendEvent is an input_audio_buffer.append event carrying audio.
func appendEvent(audio []byte) []byte {
	const pre, post = `{"type":"input_audio_buffer.append","audio":"`, `"}`
	b := make([]byte, 0, len(pre)+base64.StdEncoding.EncodedLen(len(audio))+len(post))
	b = append(b, pre...)
	b = base64.StdEncoding.AppendEncode(b, audio)
	return append(b, post...)
}

// oggPackets reads an Ogg Opus file's packets, each of which must be 20 ms.
func oggPackets(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := media.NewOggOpusReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ps [][]byte
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if n, err := media.OpusPacketSamples(p, 48000); err != nil || n != 960 {
			return nil, fmt.Errorf("%s: packet %d is not 20 ms (%d samples at 48 kHz, %v)", path, len(ps), n, err)
		}
		ps = append(ps, append([]byte(nil), p...))
	}
	return ps, nil
}
