package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
)

// Ogg Opus (RFC 3533 for Ogg pages, RFC 7845 for Opus in Ogg).
//
// An Ogg page is a 27-byte header ("OggS", version 0, flags, 64-bit granule
// position, stream serial, page sequence number, CRC-32, segment count),
// a segment table of up to 255 lacing values, and the segments. A packet is
// a run of segments ending with one shorter than 255 bytes, so a packet
// whose length is a multiple of 255 ends with a 0; a page whose last lacing
// value is 255 continues its last packet on the next page (flag 0x01).
// An Opus stream's first packet is the OpusHead header (alone on the first,
// beginning-of-stream page), its second the OpusTags comment header, and
// the rest are audio packets. A page's granule position counts the 48 kHz
// samples that all packets up to the last one completed on it decode to;
// playback drops the first pre-skip of them, so the playback position is
// granule - pre-skip, and the last page's granule may end the audio before
// the end of its last packet (end trimming).

const (
	oggHeaderSize   = 27
	oggFlagContinue = 0x01
	oggFlagBOS      = 0x02
	oggFlagEOS      = 0x04

	// OggOpusMaxPacketSize bounds one audio packet in an Ogg Opus stream,
	// for OggOpusReader (bounding its memory) and OggOpusWriter. 120 ms of
	// the largest legal frames (48 × 1275 bytes plus framing) fits.
	OggOpusMaxPacketSize = 1 << 16
)

// oggCRCTable is the CRC-32 of Ogg: polynomial 0x04C11DB7, not reflected,
// initial value 0, no final XOR.
var oggCRCTable = func() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04C11DB7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return &t
}()

func oggCRC(crc uint32, b []byte) uint32 {
	t := oggCRCTable
	for _, c := range b {
		crc = crc<<8 ^ t[byte(crc>>24)^c]
	}
	return crc
}

// OggOpusReader reads the audio packets of an Ogg Opus stream (a .opus
// file as opusenc writes it, or OggOpusWriter's output). NewOggOpusReader
// parses the OpusHead and OpusTags headers; Next returns the audio packets
// in order. It checks every page's CRC, reassembles packets that span
// pages, and follows the first Opus stream, skipping pages of other
// multiplexed streams. Memory is bounded: one page (at most 64 KiB) plus one
// packet (at most OggOpusMaxPacketSize); the comment header, which may hold
// large cover art, is skipped without being buffered.
//
// An OggOpusReader is not safe for concurrent use.
type OggOpusReader struct {
	r       io.Reader
	offset  int64 // input bytes consumed, for error messages
	hdr     [oggHeaderSize]byte
	lacing  [255]byte
	nseg    int    // segments in the current page
	seg     int    // next segment of the current page
	body    []byte // current page's segments
	bodyOff int    // offset in body of segment seg
	pageNo  int    // pages read
	flags   byte   // current page's header flags
	granule int64  // current page's granule position

	serial   uint32
	haveHead bool
	pending  bool   // a packet continues onto the next page
	pkt      []byte // partial (and reassembled) packet
	pktLen   int    // length of a packet being skipped
	discard  bool   // skip the packet being assembled (comment header)
	lastGran int64  // granule of the page the last returned packet ended on
	done     bool   // end of stream reached
	skipCRC  bool   // fuzzing only: exercise parsing past corrupt CRCs
	err      error  // first error (or io.EOF) Next returned

	channels, preSkip, inputRate, outputGain int
}

// NewOggOpusReader reads the headers of the Ogg Opus stream in r and
// returns a reader positioned at its first audio packet. It reads r in
// pieces, so wrap it in a bufio.Reader only if r is slow at small reads.
func NewOggOpusReader(r io.Reader) (*OggOpusReader, error) {
	return newOggOpusReader(r, false)
}

func newOggOpusReader(r io.Reader, skipCRC bool) (*OggOpusReader, error) {
	o := &OggOpusReader{r: r, skipCRC: skipCRC}
	// The Opus stream's beginning-of-stream page carries OpusHead alone.
	for !o.haveHead {
		if err := o.readPage(); err != nil {
			if err == io.EOF {
				return nil, errors.New("media: no Opus stream in Ogg input (no OpusHead)")
			}
			return nil, err
		}
		if o.flags&oggFlagBOS == 0 {
			return nil, fmt.Errorf("media: Ogg page %d: no Opus stream among the beginning-of-stream pages", o.pageNo-1)
		}
		if len(o.body) < 8 || string(o.body[:8]) != "OpusHead" {
			continue // another codec's stream (e.g. video): skip it
		}
		o.serial = binary.LittleEndian.Uint32(o.hdr[14:])
		// OpusHead must complete on its page.
		for o.seg < o.nseg {
			l := int(o.lacing[o.seg])
			o.seg++
			o.bodyOff += l
			if l < 255 {
				break
			}
		}
		if o.seg == o.nseg && o.lacing[o.nseg-1] == 255 {
			return nil, fmt.Errorf("media: Ogg page %d: OpusHead continues past its page", o.pageNo-1)
		}
		if err := o.parseHead(o.body[:o.bodyOff]); err != nil {
			return nil, err
		}
		o.haveHead = true
	}
	// The comment header, possibly spanning pages; its content is unused.
	o.discard = true
	tags, err := o.next()
	o.discard = false
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("media: Ogg Opus stream ends before its OpusTags header")
		}
		return nil, err
	}
	if string(tags) != "OpusTags" {
		return nil, fmt.Errorf("media: Ogg Opus second packet starts %q, want OpusTags", tags)
	}
	return o, nil
}

func (o *OggOpusReader) parseHead(h []byte) error {
	if len(h) < 19 {
		return fmt.Errorf("media: OpusHead of %d bytes, want at least 19", len(h))
	}
	if v := h[8]; v>>4 != 0 {
		return fmt.Errorf("media: OpusHead version %d not supported", v)
	}
	o.channels = int(h[9])
	o.preSkip = int(binary.LittleEndian.Uint16(h[10:]))
	o.inputRate = int(binary.LittleEndian.Uint32(h[12:]))
	o.outputGain = int(int16(binary.LittleEndian.Uint16(h[16:])))
	if o.channels == 0 {
		return errors.New("media: OpusHead with 0 channels")
	}
	if family := h[18]; family != 0 {
		return fmt.Errorf("media: Opus channel mapping family %d (%d channels, multistream) not supported", family, o.channels)
	}
	if o.channels > 2 {
		return fmt.Errorf("media: OpusHead mapping family 0 with %d channels", o.channels)
	}
	return nil
}

// PreSkip returns the number of 48 kHz samples to drop from the start of
// the decoded audio (from OpusHead): the encoder's look-ahead.
func (o *OggOpusReader) PreSkip() int { return o.preSkip }

// InputSampleRate returns the sample rate of the audio the encoder was fed,
// from OpusHead (0 if unspecified). It is informational: Opus always codes
// at 48 kHz, and a decoder may output any supported rate.
func (o *OggOpusReader) InputSampleRate() int { return o.inputRate }

// Channels returns the channel count from OpusHead (1 or 2).
func (o *OggOpusReader) Channels() int { return o.channels }

// OutputGain returns the gain to apply to the decoded audio, in units of
// 1/256 dB (Q7.8), from OpusHead.
func (o *OggOpusReader) OutputGain() int { return o.outputGain }

// Granule returns the granule position of the page on which the packet
// last returned by Next ended: the number of 48 kHz samples decoded from
// the start of the stream to the end of the last packet completed on that
// page, counting the PreSkip samples a player drops. After the last packet,
// Granule()-PreSkip() is the length of the audio; it may end before the
// last packet's samples do (end trimming).
func (o *OggOpusReader) Granule() int64 { return o.lastGran }

// Next returns the next audio packet, or io.EOF after the last one (at the
// end-of-stream page, or at the end of input between pages). The packet is
// only valid until the next call. A CRC mismatch, a malformed page, or input
// ending inside a page or packet is an error.
func (o *OggOpusReader) Next() ([]byte, error) {
	if o.err != nil {
		return nil, o.err
	}
	for {
		p, err := o.next()
		if err != nil {
			o.err = err // sticky: the stream position is lost
			return nil, err
		}
		if len(p) > 0 {
			return p, nil
		}
		// A zero-length packet carries no audio (and is not valid Opus):
		// skip it.
	}
}

// next returns the next packet of the stream (with discard set, the first
// 8 bytes of it).
func (o *OggOpusReader) next() ([]byte, error) {
	if o.done {
		return nil, io.EOF
	}
	for {
		if o.seg >= o.nseg {
			if o.flags&oggFlagEOS != 0 {
				o.done = true
				if o.pending {
					return nil, fmt.Errorf("media: Ogg stream ends inside a packet: %w", io.ErrUnexpectedEOF)
				}
				return nil, io.EOF
			}
			if err := o.nextStreamPage(); err != nil {
				if err == io.EOF {
					o.done = true
					if o.pending {
						return nil, fmt.Errorf("media: Ogg input ends inside a packet: %w", io.ErrUnexpectedEOF)
					}
				}
				return nil, err
			}
			continue
		}
		start := o.bodyOff
		complete := false
		for o.seg < o.nseg {
			l := int(o.lacing[o.seg])
			o.seg++
			o.bodyOff += l
			if l < 255 {
				complete = true
				break
			}
		}
		part := o.body[start:o.bodyOff]
		if o.discard {
			if o.pktLen < 8 {
				o.pkt = append(o.pkt, part[:min(len(part), 8-o.pktLen)]...)
			}
			o.pktLen += len(part)
		} else if o.pending || !complete {
			if len(o.pkt)+len(part) > OggOpusMaxPacketSize {
				return nil, fmt.Errorf("media: Ogg Opus packet over %d bytes", OggOpusMaxPacketSize)
			}
			o.pkt = append(o.pkt, part...)
		}
		if !complete {
			o.pending = true
			continue
		}
		o.lastGran = o.granule
		if !o.pending && !o.discard {
			return part, nil // the common case: no copy
		}
		o.pending = false
		p := o.pkt
		o.pkt, o.pktLen = o.pkt[:0], 0
		return p, nil
	}
}

// nextStreamPage reads pages until one of the followed stream, and checks
// that it continues (or does not continue) a packet as expected.
func (o *OggOpusReader) nextStreamPage() error {
	for {
		if err := o.readPage(); err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(o.hdr[14:]) != o.serial {
			continue
		}
		cont := o.flags&oggFlagContinue != 0
		switch {
		case o.pending && !cont:
			return fmt.Errorf("media: Ogg page %d does not continue the packet the previous page left open", o.pageNo-1)
		case !o.pending && cont:
			// Continuation of a packet we never saw the start of (e.g. a
			// file cut at a page boundary): skip to the first new packet.
			for o.seg < o.nseg {
				l := o.lacing[o.seg]
				o.seg++
				o.bodyOff += int(l)
				if l < 255 {
					break
				}
			}
		}
		return nil
	}
}

// readPage reads and checks one page. It returns io.EOF only when the input
// ends cleanly between pages.
func (o *OggOpusReader) readPage() error {
	n, err := io.ReadFull(o.r, o.hdr[:])
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("media: Ogg page header at byte %d: %w", o.offset, err)
	}
	h := o.hdr[:]
	if string(h[:4]) != "OggS" {
		return fmt.Errorf("media: not an Ogg page at byte %d (starts %q, want \"OggS\")", o.offset, h[:4])
	}
	if h[4] != 0 {
		return fmt.Errorf("media: Ogg page at byte %d has version %d, want 0", o.offset, h[4])
	}
	nseg := int(h[26])
	if _, err := io.ReadFull(o.r, o.lacing[:nseg]); err != nil {
		return fmt.Errorf("media: Ogg segment table at byte %d: %w", o.offset+int64(n), wavEOF(err))
	}
	size := 0
	for _, l := range o.lacing[:nseg] {
		size += int(l)
	}
	// Pages of an Opus stream are small (about 4 KiB per second at 32
	// kbit/s); the buffer grows to the largest seen, at most 64 KiB.
	o.body = slices.Grow(o.body[:0], size)[:size]
	if _, err := io.ReadFull(o.r, o.body); err != nil {
		return fmt.Errorf("media: Ogg page at byte %d: body of %d bytes: %w", o.offset, size, wavEOF(err))
	}
	stored := binary.LittleEndian.Uint32(h[22:])
	clear(h[22:26])
	crc := oggCRC(0, h)
	crc = oggCRC(crc, o.lacing[:nseg])
	crc = oggCRC(crc, o.body)
	binary.LittleEndian.PutUint32(h[22:], stored)
	if crc != stored && !o.skipCRC {
		return fmt.Errorf("media: Ogg page %d at byte %d: CRC mismatch (stored %08x, computed %08x): corrupt file", o.pageNo, o.offset, stored, crc)
	}
	o.offset += int64(oggHeaderSize + nseg + size)
	o.pageNo++
	o.nseg, o.seg, o.bodyOff = nseg, 0, 0
	o.flags = h[5]
	o.granule = int64(binary.LittleEndian.Uint64(h[6:]))
	return nil
}

// OggOpusWriter writes Opus packets as an Ogg Opus stream: the OpusHead
// and OpusTags header pages, then audio pages of about one second each, the
// last one marked end-of-stream by Close. Granule positions are computed
// from each packet's duration (its TOC byte), so 20 ms packets advance 960
// samples each. The result reads back with OggOpusReader and decodes with
// opus-tools' opusdec (both tested).
//
// An OggOpusWriter is not safe for concurrent use.
type OggOpusWriter struct {
	w       io.Writer
	serial  uint32
	seq     uint32
	granule int64 // 48 kHz samples in the packets written
	preSkip int64
	pageEnd int64  // granule of the last page written
	lacing  []byte // current page's lacing values
	body    []byte // current page's segments
	page    []byte // assembled page
	ended   bool   // a packet ends on the current page
	cont    bool   // the current page starts by continuing a packet
	pageDur int    // 48 kHz samples of packets ending on the current page
	closed  bool
	err     error
}

// oggMaxPageDuration makes audio pages of about one second, like opusenc.
const oggMaxPageDuration = 48000

// NewOggOpusWriter writes the headers of a mono Ogg Opus stream to w and
// returns a writer for its packets. inputRate is recorded in OpusHead as
// the original sample rate (informational; 0 if unknown); preSkip is the
// number of 48 kHz samples a player drops from the start
// (OpusEncoder.PreSkip for packets from OpusEncoder).
func NewOggOpusWriter(w io.Writer, inputRate, preSkip int) (*OggOpusWriter, error) {
	if inputRate < 0 || int64(inputRate) > 0xFFFFFFFF {
		return nil, fmt.Errorf("media: Ogg Opus input rate %d out of range", inputRate)
	}
	if preSkip < 0 || preSkip > 0xFFFF {
		return nil, fmt.Errorf("media: Ogg Opus pre-skip %d out of range [0, 65535]", preSkip)
	}
	o := &OggOpusWriter{
		w:       w,
		serial:  rand.Uint32(),
		preSkip: int64(preSkip),
		lacing:  make([]byte, 0, 255),
		body:    make([]byte, 0, 8192),
		page:    make([]byte, 0, 8192),
	}
	head := make([]byte, 19)
	copy(head, "OpusHead")
	head[8] = 1 // version
	head[9] = 1 // channels
	binary.LittleEndian.PutUint16(head[10:], uint16(preSkip))
	binary.LittleEndian.PutUint32(head[12:], uint32(inputRate))
	// Output gain 0, mapping family 0.
	if err := o.writeHeaderPacket(head, oggFlagBOS); err != nil {
		return nil, err
	}
	const vendor = "parley"
	tags := make([]byte, 0, 8+4+len(vendor)+4)
	tags = append(tags, "OpusTags"...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(vendor)))
	tags = append(tags, vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0) // no user comments
	if err := o.writeHeaderPacket(tags, 0); err != nil {
		return nil, err
	}
	o.pageEnd = 0
	return o, nil
}

// writeHeaderPacket writes p alone on its own page(s), granule 0.
func (o *OggOpusWriter) writeHeaderPacket(p []byte, flags byte) error {
	o.appendPacket(p)
	return o.emit(flags, 0)
}

// appendPacket adds p's lacing values and bytes to the current page,
// emitting full pages (255 segments) as it goes.
func (o *OggOpusWriter) appendPacket(p []byte) {
	for started := false; ; started = true {
		if len(o.lacing) == 255 {
			if err := o.emit(0, o.granule); err != nil {
				return
			}
			o.cont = started // the new page continues p
		}
		n := min(len(p), 255)
		o.lacing = append(o.lacing, byte(n))
		o.body = append(o.body, p[:n]...)
		p = p[n:]
		if n < 255 {
			o.ended = true
			return
		}
	}
}

// emit writes the current page (granule -1 when no packet ends on it) and
// starts a new one.
func (o *OggOpusWriter) emit(flags byte, granule int64) error {
	if o.err != nil {
		return o.err
	}
	if o.cont {
		flags |= oggFlagContinue
	}
	if !o.ended {
		granule = -1
	} else {
		o.pageEnd = granule
	}
	p := o.page[:0]
	p = append(p, "OggS"...)
	p = append(p, 0, flags)
	p = binary.LittleEndian.AppendUint64(p, uint64(granule))
	p = binary.LittleEndian.AppendUint32(p, o.serial)
	p = binary.LittleEndian.AppendUint32(p, o.seq)
	p = append(p, 0, 0, 0, 0, byte(len(o.lacing)))
	p = append(p, o.lacing...)
	p = append(p, o.body...)
	binary.LittleEndian.PutUint32(p[22:], oggCRC(0, p))
	o.page = p
	o.seq++
	o.lacing, o.body = o.lacing[:0], o.body[:0]
	o.ended, o.cont, o.pageDur = false, false, 0
	if _, err := o.w.Write(p); err != nil {
		o.err = fmt.Errorf("media: writing Ogg page: %w", err)
	}
	return o.err
}

// WritePacket adds one Opus packet to the stream. Packets are buffered into
// pages of about one second; Flush writes the current page out early. The
// packet must be a valid Opus packet of at most OggOpusMaxPacketSize bytes
// (its TOC gives the duration the granule position advances by).
func (o *OggOpusWriter) WritePacket(packet []byte) error {
	if o.err != nil {
		return o.err
	}
	if o.closed {
		return errors.New("media: write to closed OggOpusWriter")
	}
	if len(packet) > OggOpusMaxPacketSize {
		return fmt.Errorf("media: %w: %d bytes, more than %d", ErrBadOpusPacket, len(packet), OggOpusMaxPacketSize)
	}
	samples, err := OpusPacketSamples(packet, 48000)
	if err != nil {
		return err
	}
	// A full page goes out when the next packet arrives, so that Close can
	// still mark the last page end-of-stream.
	if o.pageDur >= oggMaxPageDuration {
		if err := o.emit(0, o.granule); err != nil {
			return err
		}
	}
	o.appendPacket(packet)
	if o.err != nil {
		return o.err
	}
	o.granule += int64(samples)
	o.pageDur += samples
	return nil
}

// Flush writes out the packets buffered for the current page (for a
// recording, so that what was said so far is on disk).
func (o *OggOpusWriter) Flush() error {
	if o.err != nil || len(o.lacing) == 0 {
		return o.err
	}
	return o.emit(0, o.granule)
}

// Close writes the last page, marked end-of-stream, with the final granule
// position. It does not close the underlying writer. Further writes fail.
//
// The final granule position counts every sample of every packet; a
// player trims nothing from the end. (An encoder's look-ahead holds back
// the last PreSkip samples of its input: to get them out, encode one more
// frame of silence, then call CloseAt.)
func (o *OggOpusWriter) Close() error {
	return o.CloseAt(-1)
}

// CloseAt is Close with end trimming: the stream plays samples 48 kHz
// samples (after the pre-skip is dropped), discarding what the last packets
// decode beyond that. samples must not exceed the audio written (the
// packets' samples minus the pre-skip) nor cut into packets before the last
// page; a negative value means no trimming.
func (o *OggOpusWriter) CloseAt(samples int64) error {
	if o.closed {
		return o.err
	}
	o.closed = true
	g := o.granule
	if samples >= 0 {
		// Trimming may only cut into the last page's audio.
		lo, hi := max(0, o.pageEnd-o.preSkip), o.granule-o.preSkip
		if samples < lo || samples > hi {
			o.err = fmt.Errorf("media: Ogg Opus end position %d outside the last page's audio [%d, %d]", samples, lo, hi)
			return o.err
		}
		g = samples + o.preSkip
	}
	// An empty end-of-stream page is legal when nothing is buffered.
	o.ended = true
	return o.emit(oggFlagEOS, g)
}
