package pocketsphinx

/*
#cgo pkg-config: pocketsphinx sphinxbase
#include <stdlib.h>
#include "glue.h"
*/
import "C"

import (
	"errors"
	"sync"
	"unsafe"
)

// This file is the whole cgo boundary. Rules it keeps:
//   - every call goes through glue.h, whose functions take only scalars,
//     C strings allocated here, and pointers into Go memory that holds no
//     Go pointers (PCM as []int16, an error message buffer) which C uses
//     during the call only and never retains, as the cgo rules allow;
//   - C-owned strings (hypotheses) are copied with C.GoString before the
//     next call on the same decoder;
//   - a decoder is used by one goroutine at a time (the stream holding it
//     serializes calls under its mutex); pocketsphinx decoders are not
//     thread-safe but distinct decoders may run on distinct threads.

var quietOnce sync.Once

// quiet installs the log sink once per process, before the first decoder.
// The sink is process-global in sphinxbase.
func quiet() { quietOnce.Do(func() { C.parley_ps_quiet() }) }

// decoder is one initialized pocketsphinx decoder.
type decoder struct {
	c *C.parley_dec
	// pending holds audio received while priming, replayed into the
	// decoder when the utterance starts. It belongs to whichever stream
	// holds the decoder and is reused from utterance to utterance.
	pending []int16
	// lm is the search ps_init set up (the configured language model);
	// domains are the domain language models loaded on this decoder.
	lm      string
	domains map[string]bool
}

// newDecoder loads the acoustic model, language model and dictionary.
// It takes about a second and tens of MB.
func newDecoder(hmm, lm, dict string) (*decoder, error) {
	quiet()
	chmm, clm, cdict := C.CString(hmm), C.CString(lm), C.CString(dict)
	defer C.free(unsafe.Pointer(chmm))
	defer C.free(unsafe.Pointer(clm))
	defer C.free(unsafe.Pointer(cdict))
	// The glue copies the library's last error message into errbuf within
	// the same C call (it is kept in thread-local storage).
	var errbuf [512]C.char
	c := C.parley_dec_new(chmm, clm, cdict, &errbuf[0], C.size_t(len(errbuf)))
	if c == nil {
		msg := C.GoString(&errbuf[0])
		if msg == "" {
			msg = "ps_init failed"
		}
		return nil, errors.New(trimNL(msg))
	}
	return &decoder{c: c}, nil
}

// primeBegin resets the front end and the priming sums (see glue.h).
func (d *decoder) primeBegin() error {
	if C.parley_dec_prime_begin(d.c) < 0 {
		return errors.New("fe_start_utt failed")
	}
	return nil
}

// primeAdd measures pcm (read during the call only) and returns the speech
// frames measured since primeBegin.
func (d *decoder) primeAdd(pcm []int16) (int, error) {
	if len(pcm) == 0 {
		return 0, nil
	}
	n := C.parley_dec_prime_add(d.c, (*C.int16_t)(unsafe.Pointer(&pcm[0])), C.size_t(len(pcm)))
	if n < 0 {
		return 0, errors.New("fe_process_frames failed")
	}
	return int(n), nil
}

// start sets cepstral normalization from the model's estimate (weighted
// as priorFrames frames) and the primed frames, then begins an utterance.
// No acoustic state carries over from the decoder's previous utterance.
func (d *decoder) start(priorFrames int) error {
	if C.parley_dec_start(d.c, C.int(priorFrames)) < 0 {
		return errors.New("ps_start_utt failed")
	}
	return nil
}

// process feeds PCM. pcm is read during the call only.
func (d *decoder) process(pcm []int16) error {
	if len(pcm) == 0 {
		return nil
	}
	if C.parley_dec_process(d.c, (*C.int16_t)(unsafe.Pointer(&pcm[0])), C.size_t(len(pcm))) < 0 {
		return errors.New("ps_process_raw failed")
	}
	return nil
}

// frames reports how many 10 ms frames have been searched.
func (d *decoder) frames() int { return int(C.parley_dec_frames(d.c)) }

// hyp returns the current best hypothesis, "" if none.
func (d *decoder) hyp() string {
	p := C.parley_dec_hyp(d.c)
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// end finishes the utterance (final search passes run here).
func (d *decoder) end() error {
	if C.parley_dec_end(d.c) < 0 {
		return errors.New("ps_end_utt failed")
	}
	return nil
}

// free releases the C decoder. d must not be used afterwards.
func (d *decoder) free() {
	if d.c != nil {
		C.parley_dec_free(d.c)
		d.c = nil
	}
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}

// defaultSearch names the search ps_init set up.
func (d *decoder) defaultSearch() string { return C.GoString(C.parley_dec_search(d.c)) }

// addLMFile loads a language model file into the named search.
func (d *decoder) addLMFile(name, path string) error {
	cn, cp := C.CString(name), C.CString(path)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cp))
	if C.parley_dec_add_lm_file(d.c, cn, cp) != 0 {
		return errors.New("pocketsphinx could not load the domain language model")
	}
	return nil
}

// useSearch activates a named search for the next utterance.
func (d *decoder) useSearch(name string) error {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	if C.parley_dec_use_search(d.c, cn) != 0 {
		return errors.New("pocketsphinx has no search " + name)
	}
	return nil
}
