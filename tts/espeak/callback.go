package espeak

// This file holds only the exported callback: a file with //export may
// have declarations, not definitions, in its preamble.

/*
#include <espeak-ng/speak_lib.h>
*/
import "C"

import "unsafe"

// parleyEspeakSynthCallback is libespeak-ng's synth callback. espeak_Synth
// calls it, on the worker goroutine, with each buffer of PCM it produces
// (NULL at the end, sometimes zero samples). It hands the samples to the
// job being synthesized and returns 1 to make espeak_Synth stop when the
// caller has gone (ctx ended, emit failed).
//
//export parleyEspeakSynthCallback
func parleyEspeakSynthCallback(wav *C.short, numsamples C.int, _ *C.espeak_EVENT) C.int {
	j := current
	if j == nil {
		return 1
	}
	var pcm []int16
	if wav != nil && numsamples > 0 {
		// C memory, valid during this call only: deliver copies it.
		pcm = unsafe.Slice((*int16)(unsafe.Pointer(wav)), int(numsamples))
	}
	if !j.deliver(pcm) {
		return 1
	}
	return 0
}
