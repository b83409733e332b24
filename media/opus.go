package media

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hraban/opus"
)

// OpusMaxPacketSize is the largest Opus packet OpusDecoder accepts and
// OpusEncoder produces, in bytes: the largest single Opus frame (RFC 6716
// §3.2.1), and the largest packet libopus emits for one 20 ms frame.
// Multi-frame packets longer than this are legal Opus but are never sent by
// WebRTC peers or realtime clients; rejecting them bounds per-packet work.
const OpusMaxPacketSize = 1275

// opusMaxPacketMs is the longest audio a packet may carry (RFC 6716 §3.2.5).
const opusMaxPacketMs = 120

// ErrBadOpusPacket is wrapped by every error about the contents of an Opus
// packet (empty, too large, malformed, or refused by libopus), so callers
// can tell a bad client packet from a broken decoder.
var ErrBadOpusPacket = errors.New("bad opus packet")

// opusValidRate reports whether libopus codes at rate Hz.
func opusValidRate(rate int) bool {
	switch rate {
	case 8000, 12000, 16000, 24000, 48000:
		return true
	}
	return false
}

// opusFrameSamples48k is each TOC configuration's frame duration in 48 kHz
// samples (RFC 6716 §3.1, Table 2).
var opusFrameSamples48k = [32]int{
	480, 960, 1920, 2880, // SILK NB 10, 20, 40, 60 ms
	480, 960, 1920, 2880, // SILK MB
	480, 960, 1920, 2880, // SILK WB
	480, 960, // Hybrid SWB 10, 20 ms
	480, 960, // Hybrid FB
	120, 240, 480, 960, // CELT NB 2.5, 5, 10, 20 ms
	120, 240, 480, 960, // CELT WB
	120, 240, 480, 960, // CELT SWB
	120, 240, 480, 960, // CELT FB
}

// OpusPacketSamples returns how many samples (per channel) packet decodes
// to at rate Hz, from its TOC byte and frame count (RFC 6716 §3.1–3.2),
// without decoding it. rate must be one of 8000, 12000, 16000, 24000, 48000.
// The error wraps ErrBadOpusPacket for an empty packet, a missing frame
// count, zero frames, or more than 120 ms of audio.
func OpusPacketSamples(packet []byte, rate int) (int, error) {
	if !opusValidRate(rate) {
		return 0, fmt.Errorf("media: opus rate %d Hz not one of 8000, 12000, 16000, 24000, 48000", rate)
	}
	if len(packet) == 0 {
		return 0, fmt.Errorf("media: %w: empty", ErrBadOpusPacket)
	}
	toc := packet[0]
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(packet) < 2 {
			return 0, fmt.Errorf("media: %w: code 3 packet without a frame count", ErrBadOpusPacket)
		}
		frames = int(packet[1] & 0x3F)
		if frames == 0 {
			return 0, fmt.Errorf("media: %w: zero frames", ErrBadOpusPacket)
		}
	}
	n48 := frames * opusFrameSamples48k[toc>>3]
	if n48 > 48*opusMaxPacketMs {
		return 0, fmt.Errorf("media: %w: %d frames of %.1f ms exceed 120 ms", ErrBadOpusPacket,
			frames, float64(opusFrameSamples48k[toc>>3])/48)
	}
	return n48 / (48000 / rate), nil
}

// OpusDecoder decodes mono Opus packets (stereo packets are downmixed by
// libopus) to 16-bit PCM at a fixed output rate. libopus synthesizes
// directly at 8, 12, 16, 24 or 48 kHz whatever rate the sender encoded at,
// so decoding to the recognizer's rate needs no resampler.
//
// An OpusDecoder is not safe for concurrent use.
type OpusDecoder struct {
	dec  *opus.Decoder
	rate int
}

// NewOpusDecoder returns a decoder producing mono PCM at rate Hz: 8000,
// 12000, 16000, 24000 or 48000.
func NewOpusDecoder(rate int) (*OpusDecoder, error) {
	if !opusValidRate(rate) {
		return nil, fmt.Errorf("media: opus decoder rate %d Hz not one of 8000, 12000, 16000, 24000, 48000", rate)
	}
	dec, err := opus.NewDecoder(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("media: opus decoder: %w", err)
	}
	return &OpusDecoder{dec: dec, rate: rate}, nil
}

// SampleRate returns the output rate in Hz.
func (d *OpusDecoder) SampleRate() int { return d.rate }

// Decode decodes one packet and appends its samples (20 ms of audio is
// rate/50 samples) to dst, returning the extended slice. It allocates only
// when dst lacks capacity for the packet's samples. An empty packet, one
// larger than OpusMaxPacketSize, one that is malformed, or one libopus
// rejects gives an error wrapping ErrBadOpusPacket, and dst unchanged; the
// decoder stays usable. (An empty payload is not a loss signal: use
// DecodeLost for packets that never arrived.)
func (d *OpusDecoder) Decode(packet []byte, dst []int16) ([]int16, error) {
	if len(packet) > OpusMaxPacketSize {
		return dst, fmt.Errorf("media: %w: %d bytes, more than %d", ErrBadOpusPacket, len(packet), OpusMaxPacketSize)
	}
	samples, err := OpusPacketSamples(packet, d.rate)
	if err != nil {
		return dst, err
	}
	n := len(dst)
	dst = slices.Grow(dst, samples)
	// hraban/opus passes cap(pcm) to libopus as the frame size: give it
	// exactly the packet's duration.
	got, err := d.dec.Decode(packet, dst[n:n+samples:n+samples])
	if err != nil {
		return dst[:n], fmt.Errorf("media: %w: %w", ErrBadOpusPacket, err)
	}
	return dst[:n+got], nil
}

// DecodeLost appends samples of packet-loss concealment (libopus PLC,
// extrapolated from the audio decoded so far; silence before any) to dst,
// for packets that never arrived. samples must be a positive multiple of
// 2.5 ms (rate/400) and at most 120 ms; for one lost 20 ms packet it is
// rate/50.
func (d *OpusDecoder) DecodeLost(dst []int16, samples int) ([]int16, error) {
	step := d.rate / 400
	if samples <= 0 || samples%step != 0 || samples > d.rate*opusMaxPacketMs/1000 {
		return dst, fmt.Errorf("media: opus concealment of %d samples at %d Hz: want a positive multiple of %d up to %d",
			samples, d.rate, step, d.rate*opusMaxPacketMs/1000)
	}
	n := len(dst)
	dst = slices.Grow(dst, samples)
	if err := d.dec.DecodePLC(dst[n : n+samples : n+samples]); err != nil {
		return dst[:n], fmt.Errorf("media: opus concealment: %w", err)
	}
	return dst[:n+samples], nil
}

// OpusEncoderBitrate is OpusEncoder's default bitrate, bits per second:
// transparent for speech, about 80 bytes per 20 ms packet.
const OpusEncoderBitrate = 32000

// OpusEncoder encodes mono 16-bit PCM to Opus packets with libopus's VoIP
// application (speech-tuned) at OpusEncoderBitrate unless SetBitrate
// changes it.
//
// An OpusEncoder is not safe for concurrent use.
type OpusEncoder struct {
	enc  *opus.Encoder
	rate int
}

// NewOpusEncoder returns an encoder of mono PCM at rate Hz: 8000, 12000,
// 16000, 24000 or 48000. The packets always carry a 48 kHz clock (RTP and
// Ogg Opus count 48 kHz samples whatever the input rate).
func NewOpusEncoder(rate int) (*OpusEncoder, error) {
	if !opusValidRate(rate) {
		return nil, fmt.Errorf("media: opus encoder rate %d Hz not one of 8000, 12000, 16000, 24000, 48000", rate)
	}
	enc, err := opus.NewEncoder(rate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("media: opus encoder: %w", err)
	}
	if err := enc.SetBitrate(OpusEncoderBitrate); err != nil {
		return nil, fmt.Errorf("media: opus encoder bitrate: %w", err)
	}
	return &OpusEncoder{enc: enc, rate: rate}, nil
}

// SampleRate returns the input rate in Hz.
func (e *OpusEncoder) SampleRate() int { return e.rate }

// FrameSize returns the number of samples in a 20 ms frame at the input
// rate: what Encode expects.
func (e *OpusEncoder) FrameSize() int { return e.rate / 50 }

// PreSkip returns how many 48 kHz samples a decoder must drop from the
// start of the stream to align it with the input: libopus's encoder
// look-ahead (2.5 ms + 4 ms for the VoIP application). It is the value for
// an Ogg Opus header.
func (e *OpusEncoder) PreSkip() int { return 312 }

// SetBitrate sets the target bitrate in bits per second (500 to 512000).
func (e *OpusEncoder) SetBitrate(bps int) error {
	if bps < 500 || bps > 512000 {
		return fmt.Errorf("media: opus bitrate %d out of range [500, 512000]", bps)
	}
	if err := e.enc.SetBitrate(bps); err != nil {
		return fmt.Errorf("media: opus bitrate %d: %w", bps, err)
	}
	return nil
}

// SetComplexity sets libopus's encoder complexity, 0 (cheapest) to 10
// (best). libopus 1.3 defaults to 9.
func (e *OpusEncoder) SetComplexity(c int) error {
	if c < 0 || c > 10 {
		return fmt.Errorf("media: opus complexity %d out of range [0, 10]", c)
	}
	if err := e.enc.SetComplexity(c); err != nil {
		return fmt.Errorf("media: opus complexity %d: %w", c, err)
	}
	return nil
}

// Encode encodes one frame of pcm, normally 20 ms (FrameSize samples;
// 2.5, 5, 10, 40 and 60 ms frames work too), and writes the packet to
// dst[:0], returning it. It allocates only when cap(dst) is less than
// OpusMaxPacketSize.
func (e *OpusEncoder) Encode(pcm []int16, dst []byte) ([]byte, error) {
	units := -1 // frame duration in 2.5 ms units
	if n := len(pcm); n > 0 && (n*400)%e.rate == 0 {
		units = n * 400 / e.rate
	}
	switch units {
	case 1, 2, 4, 8, 16, 24:
	default:
		return dst[:0], fmt.Errorf("media: opus frame of %d samples at %d Hz: want 2.5, 5, 10, 20, 40 or 60 ms", len(pcm), e.rate)
	}
	if cap(dst) < OpusMaxPacketSize {
		dst = make([]byte, OpusMaxPacketSize)
	}
	// hraban/opus passes cap(data) to libopus as the packet size limit.
	n, err := e.enc.Encode(pcm, dst[:OpusMaxPacketSize:OpusMaxPacketSize])
	if err != nil {
		return dst[:0], fmt.Errorf("media: opus encode: %w", err)
	}
	return dst[:n], nil
}
