// Package media holds Parley's audio plumbing: the codecs, converters and
// containers that sit between the realtime transports and the speech
// engines. Everything works on 16-bit signed mono PCM ([]int16) in memory;
// nothing here touches the disk.
//
//   - G.711 µ-law and A-law (audio/pcmu, audio/pcma): MuLawDecode,
//     MuLawEncode, ALawDecode, ALawEncode. Decoding is a 256-entry table
//     lookup, encoding a few integer operations per sample.
//   - Resampling: Resampler, a streaming polyphase windowed-sinc (Kaiser)
//     converter for any rational ratio (24 kHz client audio to the 16 kHz a
//     recognizer wants, espeak-ng's 22.05 kHz to 24 or 48 kHz, ...). Chunk
//     boundaries are seamless: feeding audio in pieces gives exactly the
//     samples that feeding it in one piece gives.
//   - Opus (libopus through github.com/hraban/opus): OpusDecoder decodes
//     straight to 8, 12, 16, 24 or 48 kHz, so Parley decodes WebRTC and
//     audio/opus packets directly at the rate the recognizer wants, with no
//     separate resampling step; OpusEncoder makes 20 ms VoIP packets for
//     speech going back to the client.
//   - Containers: EncodeWAV/AppendWAV/DecodeWAV (16-bit PCM RIFF WAVE, e.g.
//     to upload an utterance to a transcription API) and
//     OggOpusReader/OggOpusWriter (Ogg Opus files as written by opusenc:
//     fixtures, recordings, the replay tool).
//   - PCM helpers: BytesToPCM16LE, PCM16LEToBytes, RMS, DBFS.
//
// # Buffers and allocation
//
// The per-frame paths (G.711, resampling, Opus, PCM conversion) allocate
// nothing in steady state: they write into a destination slice supplied by
// the caller and return it, growing it only when its capacity is too small.
// Two conventions are used, and each function's documentation says which:
//
//   - Conversions (MuLawDecode, ALawEncode, BytesToPCM16LE, PCM16LEToBytes,
//     OpusEncoder.Encode) overwrite: the result is written to dst[:0], so
//     the caller can pass the same buffer every frame.
//   - Streams (Resampler.Process and Flush, OpusDecoder.Decode and
//     DecodeLost, AppendWAV) append to dst, so output can be accumulated;
//     pass buf[:0] to reuse a buffer.
//
// A returned slice may share memory with dst; OggOpusReader.Next returns a
// packet that is only valid until the next call.
//
// # Concurrency
//
// Resampler, OpusDecoder, OpusEncoder, OggOpusReader and OggOpusWriter hold
// per-stream state and must be used by one goroutine at a time (a session
// owns its own). The functions are safe for concurrent use. Resamplers of the
// same ratio share one read-only filter table.
package media
