package gateway

import (
	"fmt"

	"parley/media"
	"parley/realtime"
)

// PipelineRate is the PCM rate of Parley's listening path: VAD, turn
// detection and recognizers all work at 16 kHz.
const PipelineRate = 16000

// inputDecoder turns the audio of one input_audio_buffer.append, in the
// session's input format, into 16 kHz PCM. Its buffers are reused: after
// warm-up a decode allocates nothing.
type inputDecoder struct {
	format string
	raw    []int16 // decoded at the source rate
	out    []int16 // at PipelineRate
	rs     *media.Resampler
	opus   *media.OpusDecoder
}

func newInputDecoder(f realtime.AudioFormat) (*inputDecoder, error) {
	d := &inputDecoder{format: f.Type}
	var err error
	switch f.Type {
	case realtime.FormatPCM:
		d.rs, err = media.NewResampler(24000, PipelineRate)
	case realtime.FormatPCMU, realtime.FormatPCMA:
		d.rs, err = media.NewResampler(8000, PipelineRate)
	case realtime.FormatOpus:
		// libopus decodes straight to the pipeline rate: no resampling.
		d.opus, err = media.NewOpusDecoder(PipelineRate)
	default:
		err = fmt.Errorf("unsupported input format %q", f.Type)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// decode returns the 16 kHz PCM of b. The slice is reused by the next call.
func (d *inputDecoder) decode(b []byte) ([]int16, *realtime.Error) {
	var err error
	switch d.format {
	case realtime.FormatPCM:
		if d.raw, err = media.BytesToPCM16LE(d.raw[:0], b); err != nil {
			return nil, realtime.Invalid(realtime.CodeInvalidValue, "audio", "audio/pcm is 16-bit samples: %d bytes is not a whole number of samples", len(b))
		}
	case realtime.FormatPCMU:
		d.raw = media.MuLawDecode(d.raw[:0], b)
	case realtime.FormatPCMA:
		d.raw = media.ALawDecode(d.raw[:0], b)
	case realtime.FormatOpus:
		if d.out, err = d.opus.Decode(b, d.out[:0]); err != nil {
			return nil, realtime.Invalid("invalid_opus_packet", "audio", "audio/opus expects one Opus packet per append: %v", err)
		}
		return d.out, nil
	}
	d.out = d.rs.Process(d.out[:0], d.raw)
	return d.out, nil
}
