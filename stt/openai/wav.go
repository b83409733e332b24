package openai

import "encoding/binary"

// wavHeaderSize is the size of the canonical 44-byte RIFF/WAVE header for
// PCM data.
const wavHeaderSize = 44

// putWAVHeader writes a canonical 16-bit mono PCM WAVE header for
// dataBytes bytes of samples at sampleRate into b[:44].
func putWAVHeader(b []byte, sampleRate, dataBytes int) {
	const (
		channels      = 1
		bitsPerSample = 16
		blockAlign    = channels * bitsPerSample / 8
	)
	le := binary.LittleEndian
	copy(b[0:4], "RIFF")
	le.PutUint32(b[4:8], uint32(36+dataBytes)) // rest of the file after this field
	copy(b[8:12], "WAVE")
	copy(b[12:16], "fmt ")
	le.PutUint32(b[16:20], 16) // fmt chunk size for PCM
	le.PutUint16(b[20:22], 1)  // WAVE_FORMAT_PCM
	le.PutUint16(b[22:24], channels)
	le.PutUint32(b[24:28], uint32(sampleRate))
	le.PutUint32(b[28:32], uint32(sampleRate*blockAlign)) // byte rate
	le.PutUint16(b[32:34], blockAlign)
	le.PutUint16(b[34:36], bitsPerSample)
	copy(b[36:40], "data")
	le.PutUint32(b[40:44], uint32(dataBytes))
}

// appendPCM appends samples to b as 16-bit little-endian PCM.
func appendPCM(b []byte, pcm []int16) []byte {
	for _, s := range pcm {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b
}
