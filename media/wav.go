package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// WAVMaxDataBytes bounds the audio DecodeWAV reads: 1 GiB, over 9 hours of
// 16 kHz mono. A larger data chunk is an error rather than an allocation.
const WAVMaxDataBytes = 1 << 30

const (
	wavHeaderSize  = 44
	wavFormatPCM   = 1
	wavFormatExt   = 0xFFFE
	wavMaxDataSize = math.MaxUint32 - (wavHeaderSize - 8) // RIFF size must fit 32 bits
)

// wavFormatNames names the WAVE format tags DecodeWAV reports when refusing
// a file.
var wavFormatNames = map[uint16]string{
	0x0001: "PCM",
	0x0002: "Microsoft ADPCM",
	0x0003: "IEEE float",
	0x0006: "A-law",
	0x0007: "µ-law",
	0x0011: "IMA ADPCM",
	0x0031: "GSM 6.10",
	0x0050: "MPEG",
	0x0055: "MP3",
	0xFFFE: "extensible",
}

// wavPCMSubformat is KSDATAFORMAT_SUBTYPE_PCM, the GUID that marks an
// extensible-format file as plain integer PCM.
var wavPCMSubformat = [16]byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

func wavHeader(h *[wavHeaderSize]byte, samples, rate int) {
	data := uint32(2 * samples)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], wavHeaderSize-8+data)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], wavFormatPCM)
	binary.LittleEndian.PutUint16(h[22:], 1) // mono
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(2*rate)) // byte rate
	binary.LittleEndian.PutUint16(h[32:], 2)              // block align
	binary.LittleEndian.PutUint16(h[34:], 16)             // bits per sample
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], data)
}

func wavCheck(pcm []int16, rate int) error {
	if rate <= 0 || rate > math.MaxUint32/2 {
		return fmt.Errorf("media: WAV sample rate %d out of range", rate)
	}
	if uint64(len(pcm))*2 > wavMaxDataSize {
		return fmt.Errorf("media: %d samples are too many for a WAV file (4 GiB limit)", len(pcm))
	}
	return nil
}

// AppendWAV appends a complete WAV file (RIFF WAVE, 16-bit PCM, mono, rate
// Hz: a 44-byte header then the samples, little-endian) to dst and returns
// the extended slice. This is the in-memory form to upload an utterance to
// a transcription API. It panics if rate is not positive or the audio does
// not fit a WAV file's 32-bit sizes (over 2^31 samples).
func AppendWAV(dst []byte, pcm []int16, rate int) []byte {
	if err := wavCheck(pcm, rate); err != nil {
		panic(err)
	}
	var h [wavHeaderSize]byte
	wavHeader(&h, len(pcm), rate)
	dst = append(dst, h[:]...)
	n := len(dst)
	dst = append(dst, make([]byte, 2*len(pcm))...)
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(dst[n+2*i:], uint16(s))
	}
	return dst
}

// EncodeWAV writes pcm as a WAV file (16-bit PCM, mono, rate Hz) to w,
// converting it in small pieces rather than building the file in memory.
func EncodeWAV(w io.Writer, pcm []int16, rate int) error {
	if err := wavCheck(pcm, rate); err != nil {
		return err
	}
	var h [wavHeaderSize]byte
	wavHeader(&h, len(pcm), rate)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	buf := make([]byte, 0, 8192)
	for len(pcm) > 0 {
		n := min(len(pcm), cap(buf)/2)
		buf = PCM16LEToBytes(buf, pcm[:n])
		if _, err := w.Write(buf); err != nil {
			return err
		}
		pcm = pcm[n:]
	}
	return nil
}

// wavFormat is what DecodeWAV needs from the "fmt " chunk.
type wavFormat struct {
	tag      uint16
	channels int
	rate     int
	bits     int
}

func (f wavFormat) String() string {
	name := wavFormatNames[f.tag]
	if name == "" {
		name = "unknown"
	}
	return fmt.Sprintf("%s (format %#04x), %d-bit, %d channel(s), %d Hz", name, f.tag, f.bits, f.channels, f.rate)
}

// DecodeWAV reads a RIFF WAVE file of 16-bit integer PCM, mono or stereo
// (stereo is downmixed to mono by averaging the channels), and returns the
// samples and the sample rate. Chunks other than "fmt " and "data" (LIST,
// fact, JUNK, ...) are skipped, with RIFF's pad byte after odd-sized
// chunks. Other formats are refused with an error naming the format, sample
// size and channel count found. A file that ends before its data chunk's
// declared size is an error; a data size of 0xFFFFFFFF (written by
// streaming encoders that could not seek back) means "to the end of the
// input". Memory grows with the audio actually read, never with a declared
// size, and stops at WAVMaxDataBytes.
func DecodeWAV(r io.Reader) (pcm []int16, rate int, err error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("media: WAV header: %w", wavEOF(err))
	}
	switch id := string(hdr[0:4]); {
	case id == "RIFX":
		return nil, 0, errors.New("media: big-endian WAV (RIFX) not supported")
	case id == "RF64":
		return nil, 0, errors.New("media: RF64 (64-bit WAV) not supported")
	case id != "RIFF" || string(hdr[8:12]) != "WAVE":
		return nil, 0, fmt.Errorf("media: not a WAV file (starts %q)", hdr[:])
	}
	var format *wavFormat
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if err == io.EOF {
				return nil, 0, errors.New("media: WAV file has no data chunk")
			}
			return nil, 0, fmt.Errorf("media: WAV chunk header: %w", wavEOF(err))
		}
		id := string(ch[0:4])
		size := binary.LittleEndian.Uint32(ch[4:])
		switch id {
		case "fmt ":
			f, err := wavReadFormat(r, size)
			if err != nil {
				return nil, 0, err
			}
			format = &f
		case "data":
			if format == nil {
				return nil, 0, errors.New("media: WAV data chunk before fmt chunk")
			}
			pcm, err := wavReadData(r, size, format.channels)
			if err != nil {
				return nil, 0, err
			}
			return pcm, format.rate, nil
		default:
			skip := int64(size) + int64(size&1)
			if n, err := io.CopyN(io.Discard, r, skip); err != nil {
				return nil, 0, fmt.Errorf("media: WAV truncated in %q chunk (%d of %d bytes): %w", id, n, skip, wavEOF(err))
			}
		}
	}
}

// wavEOF turns a bare io.EOF (the input ended where a structure should
// start) into io.ErrUnexpectedEOF: for a WAV file, both mean "truncated".
func wavEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func wavReadFormat(r io.Reader, size uint32) (wavFormat, error) {
	if size < 16 {
		return wavFormat{}, fmt.Errorf("media: WAV fmt chunk of %d bytes, want at least 16", size)
	}
	var b [40]byte
	n := min(int(size), len(b))
	if _, err := io.ReadFull(r, b[:n]); err != nil {
		return wavFormat{}, fmt.Errorf("media: WAV fmt chunk: %w", wavEOF(err))
	}
	if rest := int64(size) - int64(n) + int64(size&1); rest > 0 {
		if _, err := io.CopyN(io.Discard, r, rest); err != nil {
			return wavFormat{}, fmt.Errorf("media: WAV fmt chunk: %w", wavEOF(err))
		}
	}
	f := wavFormat{
		tag:      binary.LittleEndian.Uint16(b[0:]),
		channels: int(binary.LittleEndian.Uint16(b[2:])),
		rate:     int(binary.LittleEndian.Uint32(b[4:])),
		bits:     int(binary.LittleEndian.Uint16(b[14:])),
	}
	ok := f.tag == wavFormatPCM
	if f.tag == wavFormatExt {
		// WAVEFORMATEXTENSIBLE: cbSize, valid bits, channel mask, subformat.
		ok = n >= 40 && binary.LittleEndian.Uint16(b[16:]) >= 22 && [16]byte(b[24:40]) == wavPCMSubformat
		if n >= 40 && !ok {
			f.tag = binary.LittleEndian.Uint16(b[24:]) // report the subformat
		}
	}
	if !ok || f.bits != 16 || f.channels < 1 || f.channels > 2 {
		return f, fmt.Errorf("media: unsupported WAV audio: %v; want 16-bit PCM, mono or stereo", f)
	}
	if f.rate <= 0 || f.rate > 1_000_000 {
		return f, fmt.Errorf("media: WAV sample rate %d Hz out of range", f.rate)
	}
	return f, nil
}

// wavReadData reads a data chunk of size bytes (0xFFFFFFFF: to EOF) of
// 16-bit samples with the given channel count, downmixing stereo.
func wavReadData(r io.Reader, size uint32, channels int) ([]int16, error) {
	toEOF := size == math.MaxUint32
	if !toEOF && size > WAVMaxDataBytes {
		return nil, fmt.Errorf("media: WAV data chunk of %d bytes exceeds the %d-byte limit", size, WAVMaxDataBytes)
	}
	block := 2 * channels
	remaining := int64(size)
	if toEOF {
		remaining = WAVMaxDataBytes + 1
	}
	// Start small: the declared size is not trusted for allocation.
	pcm := make([]int16, 0, min(remaining/int64(block), 1<<16))
	buf := make([]byte, 16384) // a multiple of every block size
	var read int64
	for remaining > 0 {
		want := int(min(int64(len(buf)), remaining))
		n, err := io.ReadFull(r, buf[:want])
		read += int64(n)
		remaining -= int64(n)
		frames := n / block
		if channels == 1 {
			for i := range frames {
				pcm = append(pcm, int16(binary.LittleEndian.Uint16(buf[2*i:])))
			}
		} else {
			for i := range frames {
				l := int32(int16(binary.LittleEndian.Uint16(buf[4*i:])))
				r := int32(int16(binary.LittleEndian.Uint16(buf[4*i+2:])))
				pcm = append(pcm, int16((l+r)>>1))
			}
		}
		if err != nil { // io.EOF or io.ErrUnexpectedEOF: the input ended
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("media: WAV data: %w", err)
			}
			if toEOF {
				return pcm, nil
			}
			return nil, fmt.Errorf("media: WAV truncated: data chunk declares %d bytes, only %d present: %w",
				size, read, io.ErrUnexpectedEOF)
		}
		if toEOF && read > WAVMaxDataBytes {
			return nil, fmt.Errorf("media: WAV data exceeds the %d-byte limit", WAVMaxDataBytes)
		}
	}
	return pcm, nil
}
