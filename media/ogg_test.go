package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// oggWrite writes packets through an OggOpusWriter and returns the stream.
func oggWrite(t testing.TB, inputRate, preSkip int, packets [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewOggOpusWriter(&buf, inputRate, preSkip)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packets {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// oggReadAll reads every packet (copied) of an Ogg Opus stream.
func oggReadAll(t testing.TB, stream []byte) (*OggOpusReader, [][]byte) {
	t.Helper()
	r, err := NewOggOpusReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for {
		p, err := r.Next()
		if err == io.EOF {
			return r, pkts
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, slices.Clone(p))
	}
}

// oggPages splits a stream into its pages.
func oggPages(t testing.TB, stream []byte) [][]byte {
	t.Helper()
	var pages [][]byte
	for len(stream) > 0 {
		if len(stream) < oggHeaderSize || string(stream[:4]) != "OggS" {
			t.Fatalf("bad page at %d", len(stream))
		}
		n := int(stream[26])
		size := oggHeaderSize + n
		for _, l := range stream[oggHeaderSize : oggHeaderSize+n] {
			size += int(l)
		}
		pages = append(pages, stream[:size])
		stream = stream[size:]
	}
	return pages
}

// oggFixCRC recomputes a page's CRC after a test edits it.
func oggFixCRC(page []byte) {
	clear(page[22:26])
	binary.LittleEndian.PutUint32(page[22:], oggCRC(0, page))
}

// tocPacket returns an n-byte packet whose TOC says one 20 ms CELT frame
// (the content is not decoded by the Ogg layer).
func tocPacket(n int, fill byte) []byte {
	p := bytes.Repeat([]byte{fill}, n)
	p[0] = 31 << 3
	return p
}

func TestOggOpusRoundTrip(t *testing.T) {
	enc, err := NewOpusEncoder(48000)
	if err != nil {
		t.Fatal(err)
	}
	speech := encodeAll(t, enc, speechLike(48000, 3))
	manySmall := make([][]byte, 300) // 2.5 ms packets: pages fill by segment count
	for i := range manySmall {
		manySmall[i] = []byte{16 << 3, byte(i), byte(i >> 8)}
	}
	tests := []struct {
		name    string
		packets [][]byte
		granule int64 // 48 kHz samples in the packets
		pages   int   // 0: don't check
	}{
		{"speech 3 s", speech, 150 * 960, 2 + 3},
		{"no packets", nil, 0, 3},
		{"lacing edges", [][]byte{
			tocPacket(1, 0), tocPacket(254, 1), tocPacket(255, 2), tocPacket(256, 3),
			tocPacket(510, 4), tocPacket(511, 5), tocPacket(1275, 6),
		}, 7 * 960, 3},
		{"spanning pages", [][]byte{
			tocPacket(100, 1), tocPacket(255*255, 2), tocPacket(OggOpusMaxPacketSize, 3), tocPacket(7, 4),
		}, 4 * 960, 0},
		{"255 segments per page", manySmall, 300 * 120, 2 + 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := oggWrite(t, 24000, 312, tc.packets)
			if tc.pages > 0 {
				if n := len(oggPages(t, stream)); n != tc.pages {
					t.Errorf("%d pages, want %d", n, tc.pages)
				}
			}
			r, got := oggReadAll(t, stream)
			if len(got) != len(tc.packets) {
				t.Fatalf("read %d packets, wrote %d", len(got), len(tc.packets))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.packets[i]) {
					t.Fatalf("packet %d differs (%d vs %d bytes)", i, len(got[i]), len(tc.packets[i]))
				}
			}
			if r.PreSkip() != 312 || r.InputSampleRate() != 24000 || r.Channels() != 1 || r.OutputGain() != 0 {
				t.Errorf("header: preskip %d rate %d channels %d gain %d", r.PreSkip(), r.InputSampleRate(), r.Channels(), r.OutputGain())
			}
			if len(tc.packets) > 0 && r.Granule() != tc.granule {
				t.Errorf("final granule %d, want %d", r.Granule(), tc.granule)
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after the end: %v", err)
			}
		})
	}
}

// Granule positions on pages: the last packet ending on a page sets it;
// a page on which no packet ends has -1.
func TestOggOpusWriterGranules(t *testing.T) {
	stream := oggWrite(t, 48000, 100, [][]byte{tocPacket(10, 1), tocPacket(70000-5000, 2), tocPacket(10, 3)})
	pages := oggPages(t, stream)
	var granules []int64
	var flags []byte
	for i, p := range pages {
		granules = append(granules, int64(binary.LittleEndian.Uint64(p[6:])))
		flags = append(flags, p[5])
		if seq := binary.LittleEndian.Uint32(p[18:]); seq != uint32(i) {
			t.Errorf("page %d has sequence %d", i, seq)
		}
	}
	// head, tags, [pkt1 + start of pkt2 (255 segments)], [rest of pkt2, pkt3 + EOS]
	wantG := []int64{0, 0, 960, 3 * 960}
	wantF := []byte{oggFlagBOS, 0, 0, oggFlagContinue | oggFlagEOS}
	if !slices.Equal(granules, wantG) || !bytes.Equal(flags, wantF) {
		t.Errorf("granules %v flags %v; want %v %v", granules, flags, wantG, wantF)
	}
	stream = oggWrite(t, 48000, 0, [][]byte{tocPacket(255*255+10, 1)})
	pages = oggPages(t, stream)
	if g := int64(binary.LittleEndian.Uint64(pages[2][6:])); g != -1 {
		t.Errorf("page with no packet end has granule %d, want -1", g)
	}
}

func TestOggOpusWriterErrors(t *testing.T) {
	if _, err := NewOggOpusWriter(io.Discard, 48000, 70000); err == nil {
		t.Error("pre-skip 70000 accepted")
	}
	if _, err := NewOggOpusWriter(io.Discard, -1, 0); err == nil {
		t.Error("rate -1 accepted")
	}
	werr := errors.New("disk full")
	if _, err := NewOggOpusWriter(failWriter{werr}, 48000, 0); !errors.Is(err, werr) {
		t.Errorf("header write error: %v", err)
	}
	w, _ := NewOggOpusWriter(io.Discard, 48000, 0)
	for _, p := range [][]byte{nil, {0xFB}, tocPacket(OggOpusMaxPacketSize+1, 0)} {
		if err := w.WritePacket(p); !errors.Is(err, ErrBadOpusPacket) {
			t.Errorf("WritePacket(%d bytes): %v", len(p), err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Error(err)
	}
	if err := w.Close(); err != nil {
		t.Error(err)
	}
	if err := w.WritePacket(tocPacket(3, 0)); err == nil {
		t.Error("write after Close accepted")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// CloseAt trims the end: the final granule is pre-skip + the audio length,
// which may only cut into the last page's packets.
func TestOggOpusWriterCloseAt(t *testing.T) {
	tests := []struct {
		name    string
		flush   bool // Flush after the first two packets
		end     int64
		wantErr bool
	}{
		{"no trim", false, 3*960 - 312, false},
		{"trim into last packet", false, 1700, false},
		{"trim to first packet", false, 500, false},
		{"nothing", false, 0, false},
		{"beyond the audio", false, 3*960 - 311, true},
		{"before the last page", true, 960, true},
		{"start of the last page after flush", true, 2*960 - 312, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, _ := NewOggOpusWriter(&buf, 48000, 312)
			for i := range 3 {
				if err := w.WritePacket(tocPacket(20, byte(i))); err != nil {
					t.Fatal(err)
				}
				if i == 1 && tc.flush {
					w.Flush()
				}
			}
			err := w.CloseAt(tc.end)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, pkts := oggReadAll(t, buf.Bytes())
			if len(pkts) != 3 || r.Granule()-int64(r.PreSkip()) != tc.end {
				t.Errorf("%d packets, end %d; want 3, %d", len(pkts), r.Granule()-int64(r.PreSkip()), tc.end)
			}
		})
	}
}

// Flush puts buffered packets on a page at once, so a reader of a growing
// recording sees them.
func TestOggOpusWriterFlush(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewOggOpusWriter(&buf, 16000, 312)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := w.WritePacket(tocPacket(20, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := NewOggOpusReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		p, err := r.Next()
		if err != nil || p[1] != byte(i) {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if _, err := r.Next(); err != io.EOF { // input ends cleanly between pages
		t.Fatalf("end of unfinished stream: %v", err)
	}
}

func TestOggOpusReaderErrors(t *testing.T) {
	good := oggWrite(t, 48000, 312, [][]byte{tocPacket(50, 1), tocPacket(60, 2), tocPacket(70, 3)})
	pages := oggPages(t, good)
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)-10] ^= 0x40
	notHead := slices.Clone(good)
	copy(notHead[oggHeaderSize+1:], "OpusHEAD")
	oggFixCRC(notHead[:len(pages[0])])
	badTags := slices.Clone(good)
	off := len(pages[0]) + oggHeaderSize + 1
	copy(badTags[off:], "OpusTAGS")
	oggFixCRC(badTags[len(pages[0]) : len(pages[0])+len(pages[1])])
	noBOS := slices.Clone(good)
	noBOS[5] = 0
	oggFixCRC(noBOS[:len(pages[0])])
	version := slices.Clone(good)
	version[4] = 1
	head := func(edit func(h []byte)) []byte {
		s := slices.Clone(good)
		edit(s[oggHeaderSize+1 : oggHeaderSize+1+19])
		oggFixCRC(s[:len(pages[0])])
		return s
	}
	tests := []struct {
		name    string
		stream  []byte
		atOpen  bool // NewOggOpusReader fails (else a later Next)
		wantErr string
		eof     bool
	}{
		{"empty", nil, true, "no Opus stream", false},
		{"not Ogg", []byte("RIFF....WAVEfmt and so on, long enough"), true, "not an Ogg page", false},
		{"page version", version, true, "version 1", false},
		{"CRC mismatch", corrupt, false, "CRC mismatch", false},
		{"no OpusHead", notHead, true, "no Opus stream", false},
		{"no BOS", noBOS, true, "beginning-of-stream", false},
		{"not OpusTags", badTags, true, "want OpusTags", false},
		{"only head", pages[0], true, "before its OpusTags", false},
		{"truncated header", good[:len(good)-len(pages[len(pages)-1])+10], false, "page header", true},
		{"truncated body", good[:len(good)-5], false, "body of", true},
		{"truncated segment table", good[:len(good)-len(pages[len(pages)-1])+oggHeaderSize+1], false, "segment table", true},
		{"head version 16", head(func(h []byte) { h[8] = 16 }), true, "version 16", false},
		{"head 0 channels", head(func(h []byte) { h[9] = 0 }), true, "0 channels", false},
		{"head 3 channels family 0", head(func(h []byte) { h[9] = 3 }), true, "3 channels", false},
		{"head family 1", head(func(h []byte) { h[18] = 1 }), true, "mapping family 1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewOggOpusReader(bytes.NewReader(tc.stream))
			if !tc.atOpen {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				for err == nil {
					_, err = r.Next()
				}
			}
			if err == nil || err == io.EOF || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) != tc.eof {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v (%v)", !tc.eof, err)
			}
			t.Log(err)
		})
	}
}

// Pages of another logical stream interleaved with the Opus stream (as in
// a multiplexed file) are skipped; so is a non-Opus stream's BOS page.
func TestOggOpusReaderMultiplexed(t *testing.T) {
	a := [][]byte{tocPacket(30, 1), tocPacket(40, 2)}
	b := [][]byte{tocPacket(35, 9), tocPacket(45, 8), tocPacket(55, 7)}
	pa := oggPages(t, oggWrite(t, 48000, 312, a))
	pb := oggPages(t, oggWrite(t, 16000, 0, b))
	// A foreign (non-Opus) BOS page first, with its own serial.
	foreign := slices.Clone(pb[0])
	copy(foreign[oggHeaderSize+1:], "\x80theora")
	binary.LittleEndian.PutUint32(foreign[14:], 0xABCDEF)
	oggFixCRC(foreign)
	var s []byte
	s = append(s, foreign...)
	s = append(s, pa[0]...)
	s = append(s, pb[0]...)
	for i := 1; i < max(len(pa), len(pb)); i++ {
		if i < len(pb) {
			s = append(s, pb[i]...)
		}
		if i < len(pa) {
			s = append(s, pa[i]...)
		}
	}
	r, got := oggReadAll(t, s)
	if len(got) != 2 || !bytes.Equal(got[0], a[0]) || !bytes.Equal(got[1], a[1]) {
		t.Fatalf("read %d packets, want stream A's 2", len(got))
	}
	if r.InputSampleRate() != 48000 {
		t.Errorf("followed the wrong stream (rate %d)", r.InputSampleRate())
	}
}

// A page that continues a packet whose start is missing is skipped to its
// first new packet; a page that fails to continue an open packet is an
// error.
func TestOggOpusReaderContinuation(t *testing.T) {
	pk := [][]byte{tocPacket(10, 1), tocPacket(255*255+100, 2), tocPacket(20, 3), tocPacket(30, 4)}
	pages := oggPages(t, oggWrite(t, 48000, 0, pk))
	if len(pages) != 4 || pages[3][5]&oggFlagContinue == 0 {
		t.Fatalf("unexpected layout: %d pages", len(pages))
	}
	// Drop page 2 (pkt 1 and the start of pkt 2).
	var s []byte
	for _, p := range [][]byte{pages[0], pages[1], pages[3]} {
		s = append(s, p...)
	}
	_, got := oggReadAll(t, s)
	if len(got) != 2 || !bytes.Equal(got[0], pk[2]) || !bytes.Equal(got[1], pk[3]) {
		t.Fatalf("got %d packets after a lost page, want the 2 after the broken one", len(got))
	}
	// Clear the continuation flag on page 3: the open packet is broken.
	p3 := slices.Clone(pages[3])
	p3[5] &^= oggFlagContinue
	oggFixCRC(p3)
	s = nil
	for _, p := range [][]byte{pages[0], pages[1], pages[2], p3} {
		s = append(s, p...)
	}
	r, err := NewOggOpusReader(bytes.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Next(); err != nil || !bytes.Equal(p, pk[0]) {
		t.Fatalf("first packet: %v", err)
	}
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "does not continue") {
		t.Fatalf("err = %v", err)
	}
	// End of stream inside a packet.
	s = nil
	p2 := slices.Clone(pages[2])
	p2[5] |= oggFlagEOS
	oggFixCRC(p2)
	for _, p := range [][]byte{pages[0], pages[1], p2} {
		s = append(s, p...)
	}
	r, _ = NewOggOpusReader(bytes.NewReader(s))
	r.Next()
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("EOS inside a packet: %v", err)
	}
}

// A huge comment header (cover art) is skipped without buffering it, and an
// audio packet over the limit is an error, not an allocation.
func TestOggOpusReaderBoundedMemory(t *testing.T) {
	var buf bytes.Buffer
	w := &OggOpusWriter{w: &buf, lacing: make([]byte, 0, 255)}
	head := []byte("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00")
	if err := w.writeHeaderPacket(head, oggFlagBOS); err != nil {
		t.Fatal(err)
	}
	tags := append([]byte("OpusTags"), make([]byte, 8<<20)...)
	if err := w.writeHeaderPacket(tags, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(tocPacket(77, 5)); err != nil {
		t.Fatal(err)
	}
	w.appendPacket(tocPacket(OggOpusMaxPacketSize+1000, 6)) // bypasses WritePacket's check
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := NewOggOpusReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Next(); err != nil || len(p) != 77 {
		t.Fatalf("first audio packet: %d bytes, %v", len(p), err)
	}
	_, err = r.Next()
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "packet over") {
		t.Fatalf("oversize packet: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("reading an 8 MiB comment header allocated %d bytes", n)
	}
}

// Files made by opusenc (opus-tools) read back, decode, and line up with
// the input: the interoperability check for OggOpusReader, and opusdec
// reads OggOpusWriter's output likewise.
func TestOggOpusInteropOpusTools(t *testing.T) {
	opusenc, err := exec.LookPath("opusenc")
	if err != nil {
		t.Skip("opusenc (opus-tools) not on PATH; `make deps` installs it")
	}
	dir := t.TempDir()
	for _, rate := range []int{16000, 24000, 48000} {
		t.Run(fmt.Sprintf("opusenc %d Hz", rate), func(t *testing.T) {
			src := speechLike(rate, 2)
			in := filepath.Join(dir, fmt.Sprintf("in%d.wav", rate))
			out := filepath.Join(dir, fmt.Sprintf("out%d.opus", rate))
			if err := os.WriteFile(in, AppendWAV(nil, src, rate), 0o600); err != nil {
				t.Fatal(err)
			}
			if msg, err := exec.Command(opusenc, "--quiet", "--bitrate", "32", in, out).CombinedOutput(); err != nil {
				t.Fatalf("opusenc: %v: %s", err, msg)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := NewOggOpusReader(f)
			if err != nil {
				t.Fatal(err)
			}
			if r.InputSampleRate() != rate || r.Channels() != 1 {
				t.Errorf("header: rate %d channels %d", r.InputSampleRate(), r.Channels())
			}
			dec, err := NewOpusDecoder(rate)
			if err != nil {
				t.Fatal(err)
			}
			var pcm []int16
			n := 0
			for {
				p, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if pcm, err = dec.Decode(p, pcm); err != nil {
					t.Fatal(err)
				}
				n++
			}
			// The end granule marks exactly the input's length.
			if got := r.Granule() - int64(r.PreSkip()); got != int64(len(src))*48000/int64(rate) {
				t.Errorf("granule length %d, want %d", got, len(src)*48000/rate)
			}
			skip := r.PreSkip() * rate / 48000
			pcm = pcm[skip:]
			lag, c := bestLag(src, pcm, rate/100)
			if c < 0.9 || lag > 2 {
				t.Errorf("decoded vs input: lag %d, correlation %.3f", lag, c)
			}
			t.Logf("%d packets, pre-skip %d, lag %d, correlation %.3f", n, r.PreSkip(), lag, c)
		})
	}
	t.Run("opusdec reads OggOpusWriter", func(t *testing.T) {
		opusdec, err := exec.LookPath("opusdec")
		if err != nil {
			t.Skip("opusdec not on PATH")
		}
		enc, _ := NewOpusEncoder(48000)
		src := speechLike(48000, 2)
		// One more frame of silence flushes the encoder's look-ahead; the
		// end granule trims it off again.
		pkts := encodeAll(t, enc, append(slices.Clone(src), make([]int16, 960)...))
		var buf bytes.Buffer
		w, err := NewOggOpusWriter(&buf, 48000, enc.PreSkip())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			if err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.CloseAt(int64(len(src))); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "ours.opus")
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		wav := filepath.Join(dir, "ours.wav")
		if msg, err := exec.Command(opusdec, "--quiet", "--rate", "48000", path, wav).CombinedOutput(); err != nil {
			t.Fatalf("opusdec: %v: %s", err, msg)
		}
		b, err := os.ReadFile(wav)
		if err != nil {
			t.Fatal(err)
		}
		pcm, rate, err := DecodeWAV(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if rate != 48000 || len(pcm) != len(src) {
			t.Errorf("opusdec gave %d samples at %d Hz, want %d (pre-skip and granule honoured)", len(pcm), rate, len(src))
		}
		// opusdec's output is libopus's, as ours is, give or take its
		// dither: the same samples, aligned.
		dec, _ := NewOpusDecoder(48000)
		var ours []int16
		for _, p := range pkts {
			if ours, err = dec.Decode(p, ours); err != nil {
				t.Fatal(err)
			}
		}
		ours = ours[enc.PreSkip():][:len(src)]
		lag, c := bestLag(ours, pcm, 48)
		if c < 0.999 || lag != 0 {
			t.Errorf("opusdec output vs our decode: lag %d, correlation %.5f", lag, c)
		}
	})
}

// The spoken fixtures (made by scripts/make-testdata.sh with opusenc) decode
// straight to the 16 kHz a recognizer wants and match their WAV twins.
func TestOggOpusFixtures(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/audio/*.opus")
	if len(paths) == 0 {
		t.Skip("no fixtures in testdata/audio")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := NewOggOpusReader(f)
			if err != nil {
				t.Fatal(err)
			}
			dec, _ := NewOpusDecoder(16000)
			var pcm []int16
			for {
				pkt, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if pcm, err = dec.Decode(pkt, pcm); err != nil {
					t.Fatal(err)
				}
			}
			// Drop the pre-skip; the end granule trims the last packet's
			// padding.
			end := (r.Granule() - int64(r.PreSkip())) / 3
			if int64(len(pcm)) < end+int64(r.PreSkip()/3) {
				t.Fatalf("decoded %d samples, end granule says %d", len(pcm), end)
			}
			pcm = pcm[r.PreSkip()/3:][:end]
			b, err := os.ReadFile(strings.TrimSuffix(p, ".opus") + ".wav")
			if err != nil {
				t.Skip("no WAV twin")
			}
			wav, rate, err := DecodeWAV(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			ref := resampleAll(t, rate, 16000, wav)
			if d := len(ref) - len(pcm); d < -1 || d > 1 {
				t.Errorf("decoded %d samples, WAV has %d at 16 kHz", len(pcm), len(ref))
			}
			lag, c := bestLag(ref, pcm, 80)
			if c < 0.9 || lag > 2 {
				t.Errorf("lag %d, correlation %.3f", lag, c)
			}
			lvl := DBFS(pcm) - DBFS(ref[:min(len(ref), len(pcm))])
			if math.Abs(lvl) > 1.5 {
				t.Errorf("level differs by %.2f dB", lvl)
			}
		})
	}
}

// FuzzOggOpusReader: arbitrary input never panics, packets stay within the
// size limit, and reading stops. It runs with the CRC check both on (the
// real reader) and off (so mutations reach the parser past the CRC).
func FuzzOggOpusReader(f *testing.F) {
	f.Add(oggWrite(f, 48000, 312, [][]byte{tocPacket(50, 1), tocPacket(300, 2)}))
	f.Add(oggWrite(f, 16000, 0, [][]byte{tocPacket(255*255+3, 1), tocPacket(2, 2)}))
	f.Add(oggWrite(f, 16000, 0, nil))
	f.Add([]byte("OggS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, skip := range []bool{false, true} {
			r, err := newOggOpusReader(bytes.NewReader(b), skip)
			if err != nil {
				continue
			}
			for i := 0; ; i++ {
				p, err := r.Next()
				if err != nil {
					break
				}
				if len(p) == 0 || len(p) > OggOpusMaxPacketSize {
					t.Fatalf("packet of %d bytes", len(p))
				}
				if i > len(b) {
					t.Fatal("more packets than input bytes")
				}
			}
		}
	})
}

func BenchmarkOggOpusReadPacket(b *testing.B) {
	enc, _ := NewOpusEncoder(48000)
	stream := oggWrite(b, 48000, 312, encodeAll(b, enc, speechLike(48000, 10)))
	rd := bytes.NewReader(stream)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)) / 500)
	var r *OggOpusReader
	for b.Loop() {
		if r == nil {
			rd.Reset(stream)
			var err error
			if r, err = NewOggOpusReader(rd); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := r.Next(); err == io.EOF {
			r = nil
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOggOpusWritePacket(b *testing.B) {
	enc, _ := NewOpusEncoder(48000)
	pkts := encodeAll(b, enc, speechLike(48000, 1))
	w, err := NewOggOpusWriter(io.Discard, 48000, enc.PreSkip())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := w.WritePacket(pkts[i%len(pkts)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
