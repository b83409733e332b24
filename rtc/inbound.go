package rtc

import (
	"errors"
	"io"
	"strings"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"parley/media"
)

const (
	// DecodeRate is the rate of the PCM given to CallOptions.OnAudio.
	DecodeRate = 16000

	// maxConcealPackets: a gap of up to this many lost packets is filled
	// with libopus packet-loss concealment; the rest of a longer gap with
	// silence.
	maxConcealPackets = 5
	// maxGap48 caps the audio inserted for one gap (1 s at 48 kHz): a
	// longer gap (the browser paused the track, a stream restart) is a
	// discontinuity, not audio the turn detector should count.
	maxGap48 = 48000
	// chunk16 is the largest PCM given to OnAudio at once: 120 ms at
	// 16 kHz, the longest Opus packet and DecodeLost's limit.
	chunk16 = DecodeRate * 120 / 1000
	// plcStep16 is DecodeLost's granularity: 2.5 ms at 16 kHz.
	plcStep16 = DecodeRate / 400

	rtpBufSize = 1500
	// maxReadErrors ends a reader after this many consecutive errors that
	// are not the end of the stream (a broken transport would otherwise
	// spin until the call is torn down).
	maxReadErrors = 100
)

// inbound turns a track's RTP packets into 16 kHz PCM: it drops duplicate
// and late packets, conceals losses (libopus PLC for up to
// maxConcealPackets packets, silence beyond, capped at maxGap48), inserts
// silence for timestamp jumps with continuous sequence numbers (DTX, a
// paused sender) so the listener's clock follows the sender's, and decodes
// into a reused buffer. It allocates nothing per packet.
type inbound struct {
	dec     *media.OpusDecoder
	onAudio func(pcm []int16, at time.Time)
	pt      uint8 // the negotiated Opus payload type
	pkt     rtp.Packet
	pcm     []int16

	started bool
	lastSeq uint16
	nextTS  uint32 // timestamp expected for the next packet
	lastDur int    // duration of the last decoded packet, 48 kHz units

	received, lost, late, bad uint64
}

func newInbound(pt uint8, onAudio func([]int16, time.Time)) (*inbound, error) {
	dec, err := media.NewOpusDecoder(DecodeRate)
	if err != nil {
		return nil, err
	}
	return &inbound{dec: dec, onAudio: onAudio, pt: pt, pcm: make([]int16, 0, chunk16), lastDur: frameTicks}, nil
}

// handle processes one RTP packet read at at.
func (in *inbound) handle(raw []byte, at time.Time) {
	if err := in.pkt.Unmarshal(raw); err != nil {
		in.bad++
		return
	}
	seq, ts := in.pkt.SequenceNumber, in.pkt.Timestamp
	if in.started {
		d := int16(seq - in.lastSeq)
		if d <= 0 {
			in.late++ // duplicate, or reordered past its turn
			return
		}
		gap := int32(ts - in.nextTS) // audio missing before this packet, 48 kHz
		if lost := int(d) - 1; lost > 0 {
			in.lost += uint64(lost)
			g := int(gap)
			if gap <= 0 || gap > maxGap48 { // timestamps unusable: trust the sequence numbers
				g = min(lost*in.lastDur, maxGap48)
			}
			in.conceal(g, at)
		} else if gap > 0 && gap <= maxGap48 {
			in.silence(int(gap)/3, at)
		}
	}
	in.started = true
	in.lastSeq = seq
	if in.pkt.PayloadType != in.pt || len(in.pkt.Payload) == 0 {
		return // not audio (padding-only, another payload type): it only moves the sequence on
	}
	in.received++
	pcm, err := in.dec.Decode(in.pkt.Payload, in.pcm[:0])
	if err != nil {
		in.bad++
		in.conceal(in.lastDur, at) // keep the clock: the packet's time is lost
		in.nextTS = ts + uint32(in.lastDur)
		return
	}
	in.lastDur = len(pcm) * (48000 / DecodeRate)
	in.nextTS = ts + uint32(in.lastDur)
	in.onAudio(pcm, at)
}

// conceal fills gap48 (48 kHz units) of lost audio: libopus PLC for the
// first maxConcealPackets packets' worth, silence after.
func (in *inbound) conceal(gap48 int, at time.Time) {
	total := gap48 / 3
	plc := min(total, maxConcealPackets*in.lastDur/3)
	plc -= plc % plcStep16
	for done := 0; done < plc; {
		n := min(plc-done, chunk16)
		pcm, err := in.dec.DecodeLost(in.pcm[:0], n)
		if err != nil {
			break // cannot happen for a multiple of 2.5 ms up to 120 ms; fall back to silence
		}
		in.onAudio(pcm, at)
		done += n
		total -= n
	}
	in.silence(total, at)
}

// silence gives n16 samples of silence to OnAudio, in chunks.
func (in *inbound) silence(n16 int, at time.Time) {
	for n16 > 0 {
		n := min(n16, chunk16)
		pcm := in.pcm[:n]
		clear(pcm)
		in.onAudio(pcm, at)
		n16 -= n
	}
}

// rtpReader is TrackRemote's and RTPReceiver's / RTPSender's read method.
type rtpReader func([]byte) (int, interceptor.Attributes, error)

// endOfStream reports whether a read error means the stream is over.
func endOfStream(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
}

// readTrack is the reader goroutine of an inbound track: it reads every
// packet into one reused buffer (pion's advice, rather than ReadRTP's
// allocation per packet) and decodes the call's audio track; other tracks
// are read and discarded so pion's buffers never fill.
func (c *Call) readTrack(track *webrtc.TrackRemote, decode bool) {
	var in *inbound
	if decode && c.opts.OnAudio != nil {
		if strings.EqualFold(track.Codec().MimeType, webrtc.MimeTypeOpus) {
			var err error
			if in, err = newInbound(uint8(track.PayloadType()), c.opts.OnAudio); err != nil {
				c.log.Error().Err(err).Msg("rtc: opus decoder")
			}
		} else {
			c.log.Warn().Str("codec", track.Codec().MimeType).Msg("rtc: inbound audio is not opus; discarded")
		}
	}
	buf := make([]byte, rtpBufSize)
	c.readLoop(track.Read, buf, func(n int) {
		if in != nil {
			in.handle(buf[:n], time.Now())
		}
	})
}

// readRTCP reads an RTP sender's or receiver's RTCP until the call ends,
// so the report interceptors see the peer's reports (and pion's buffers
// never fill).
func (c *Call) readRTCP(read rtpReader) {
	c.readLoop(read, make([]byte, rtpBufSize), nil)
}

func (c *Call) readLoop(read rtpReader, buf []byte, got func(int)) {
	errs := 0
	for {
		n, _, err := read(buf)
		if err != nil {
			if endOfStream(err) || c.isEnding() {
				return
			}
			if errs++; errs >= maxReadErrors {
				c.log.Warn().Err(err).Msg("rtc: giving up reading a stream")
				return
			}
			continue // a malformed packet
		}
		errs = 0
		if got != nil {
			got(n)
		}
	}
}
