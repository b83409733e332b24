package espeak

/*
#cgo pkg-config: espeak-ng
#include <stdlib.h>
#include <string.h>
#include <espeak-ng/speak_lib.h>

// Defined in callback.go (//export); the prototype matches _cgo_export.h.
extern int parleyEspeakSynthCallback(short *wav, int numsamples, espeak_EVENT *events);

static void parley_espeak_set_callback(void) {
	espeak_SetSynthCallback(parleyEspeakSynthCallback);
}

// parley_espeak_synth speaks UTF-8 text (no SSML, no phoneme input) with a
// sentence pause at the end. In AUDIO_OUTPUT_SYNCHRONOUS mode it returns
// when the text is spoken or the callback returned 1.
static espeak_ERROR parley_espeak_synth(const char *text) {
	return espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0,
		espeakCHARS_UTF8 | espeakENDPAUSE, NULL, NULL);
}

// parley_espeak_list lists the voices (variants when variants != 0).
static const espeak_VOICE **parley_espeak_list(int variants) {
	if (!variants) {
		return espeak_ListVoices(NULL);
	}
	espeak_VOICE spec;
	memset(&spec, 0, sizeof spec);
	spec.languages = "variant";
	return espeak_ListVoices(&spec);
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"parley/tts"
)

// This file is the whole cgo boundary except the exported callback. Rules
// it keeps:
//   - libespeak-ng has process-global state and is not thread-safe, so one
//     goroutine (the worker, locked to its OS thread) makes every call into
//     it, from espeak_Initialize on; others talk to it over channels;
//   - the worker never calls the caller's emit: it copies each PCM buffer
//     out of C memory into a pooled Go chunk and queues it to the caller,
//     so a slow consumer never holds the library (unless it falls more
//     than queueChunks buffers behind);
//   - C strings are allocated and freed by the worker around each call;
//     strings libespeak-ng returns are copied before the next call.

const (
	// bufferMillis asks for short callback buffers. libespeak-ng 1.51
	// does not go below about 50 ms (at most 1081 samples at 22050 Hz)
	// whatever is asked; 20 gives that minimum.
	bufferMillis = 20
	// queueChunks bounds the audio queued ahead of a slow consumer:
	// 256 buffers of up to ~50 ms, about 12 s.
	queueChunks = 256
	// maxVoiceName bounds accepted voice names (libespeak-ng copies names
	// into a 60-byte buffer).
	maxVoiceName = 40
)

// chunk is one callback buffer copied into Go memory. Chunks are pooled:
// the worker fills one, the caller emits it and puts it back.
type chunk struct{ pcm []int16 }

var chunkPool = sync.Pool{New: func() any { return &chunk{pcm: make([]int16, 0, 2048)} }}

// job is one synthesis handed to the worker.
type job struct {
	text  string // UTF-8, no NUL
	voice string // resolved libespeak-ng voice name (identifier[+variant])
	rate  int    // words per minute, within espeakRATE_MINIMUM..MAXIMUM

	chunks chan *chunk   // worker → caller, in order; closed by the worker when done
	quit   chan struct{} // closed by the caller when it stops receiving

	err     error // set by the worker before it closes chunks
	aborted bool  // worker only: the caller left, synthesis was stopped
}

// deliver queues a copy of pcm to the caller. It reports false when the
// caller has left, which stops the synthesis. It runs on the worker.
func (j *job) deliver(pcm []int16) bool {
	select {
	case <-j.quit:
		j.aborted = true
		return false
	default:
	}
	if len(pcm) == 0 {
		return true
	}
	c := chunkPool.Get().(*chunk)
	c.pcm = append(c.pcm[:0], pcm...)
	select {
	case j.chunks <- c:
		return true
	case <-j.quit:
		chunkPool.Put(c)
		j.aborted = true
		return false
	}
}

// current is the job espeak_Synth is running, for the callback. Only the
// worker goroutine reads or writes it (the callback runs on the worker).
var current *job

// library is the process's single libespeak-ng instance and its worker.
type library struct {
	sampleRate int
	voices     map[string]string // accepted name (lower case) → voice identifier
	variants   map[string]string // accepted variant (lower case) → variant file name
	names      []string          // sorted keys of voices
	jobs       chan *job

	curVoice string // worker only: the voice last loaded
}

var (
	libOnce sync.Once
	lib     *library
	libErr  error
)

// getLibrary initializes libespeak-ng on first use (once per process) and
// returns it.
func getLibrary() (*library, error) {
	libOnce.Do(func() {
		l := &library{jobs: make(chan *job)}
		ready := make(chan error)
		go l.run(ready)
		if err := <-ready; err != nil {
			libErr = err
			return
		}
		lib = l
	})
	return lib, libErr
}

// run is the worker: it initializes the library, reports on ready, then
// runs jobs one at a time for the life of the process.
func (l *library) run(ready chan<- error) {
	// Never unlocked: if initialization fails the goroutine exits and the
	// thread with it; otherwise the thread belongs to the library.
	runtime.LockOSThread()
	// DONT_EXIT: without it libespeak-ng calls exit(1) when its data
	// directory is missing.
	rate := C.espeak_Initialize(C.AUDIO_OUTPUT_SYNCHRONOUS, bufferMillis, nil, C.espeakINITIALIZE_DONT_EXIT)
	if rate <= 0 {
		ready <- &tts.Error{Code: tts.CodeUnavailable, Message: "espeak-ng: initialization failed (is espeak-ng-data installed?)"}
		return
	}
	l.sampleRate = int(rate)
	C.parley_espeak_set_callback()
	l.loadCatalog()
	if len(l.voices) == 0 {
		ready <- &tts.Error{Code: tts.CodeUnavailable, Message: "espeak-ng: no voices found"}
		return
	}
	ready <- nil
	for j := range l.jobs {
		l.process(j)
	}
}

// process runs one job on the worker.
func (l *library) process(j *job) {
	defer close(j.chunks)
	select {
	case <-j.quit: // the caller left while the job was being handed over
		return
	default:
	}
	if j.voice != l.curVoice {
		cv := C.CString(j.voice)
		r := C.espeak_SetVoiceByName(cv)
		C.free(unsafe.Pointer(cv))
		if r != C.EE_OK {
			l.curVoice = ""
			j.err = &tts.Error{Code: tts.CodeBadVoice, Message: fmt.Sprintf("espeak-ng: cannot load voice %q (status %d)", j.voice, int(r))}
			return
		}
		l.curVoice = j.voice
	}
	// Set every time: a voice change may reset it.
	C.espeak_SetParameter(C.espeakRATE, C.int(j.rate), 0)
	ct := C.CString(j.text)
	current = j
	r := C.parley_espeak_synth(ct)
	current = nil
	C.free(unsafe.Pointer(ct))
	if r != C.EE_OK && !j.aborted {
		j.err = &tts.Error{Code: tts.CodeError, Message: fmt.Sprintf("espeak-ng: synthesis failed (status %d)", int(r))}
	}
}

// loadCatalog lists the installed voices and variants. MBROLA voices are
// not listed by espeak_ListVoices(NULL) and are never selectable: loading
// one would start an mbrola process.
func (l *library) loadCatalog() {
	type pick struct {
		id   string
		prio int
	}
	best := map[string]pick{}
	offer := func(name, id string, prio int) {
		name = normalize(name)
		if !validName(name) {
			return
		}
		if p, ok := best[name]; !ok || prio < p.prio {
			best[name] = pick{id, prio}
		}
	}
	for _, v := range listVoices(false) {
		if v.id == "" || strings.HasPrefix(v.id, "mb/") || strings.HasPrefix(v.id, "!v/") {
			continue
		}
		// The file name names the voice exactly; languages (with their
		// priority, lower is preferred) pick the best voice for a code.
		offer(v.id[strings.LastIndexByte(v.id, '/')+1:], v.id, -1)
		for _, lang := range v.langs {
			offer(lang.name, v.id, lang.prio)
		}
	}
	l.voices = make(map[string]string, len(best))
	for name, p := range best {
		l.voices[name] = p.id
		l.names = append(l.names, name)
	}
	sort.Strings(l.names)
	l.variants = map[string]string{}
	for _, v := range listVoices(true) {
		if file, ok := strings.CutPrefix(v.id, "!v/"); ok {
			if name := normalize(file); validName(name) {
				l.variants[name] = file
			}
		}
	}
}

// voiceInfo is a copy of one espeak_VOICE.
type voiceInfo struct {
	id    string
	langs []struct {
		name string
		prio int
	}
}

// listVoices copies espeak_ListVoices' static result into Go memory.
func listVoices(variants bool) []voiceInfo {
	flag := C.int(0)
	if variants {
		flag = 1
	}
	list := C.parley_espeak_list(flag)
	if list == nil {
		return nil
	}
	var out []voiceInfo
	for i := uintptr(0); ; i++ {
		v := *(**C.espeak_VOICE)(unsafe.Add(unsafe.Pointer(list), i*unsafe.Sizeof(list)))
		if v == nil {
			break
		}
		info := voiceInfo{id: C.GoString(v.identifier)}
		// languages: (priority byte, NUL-terminated name)*, then a 0 byte.
		p := unsafe.Pointer(v.languages)
		for p != nil && *(*C.char)(p) != 0 {
			prio := int(*(*C.uchar)(p))
			name := C.GoString((*C.char)(unsafe.Add(p, 1)))
			info.langs = append(info.langs, struct {
				name string
				prio int
			}{name, prio})
			p = unsafe.Add(p, 1+len(name)+1)
		}
		out = append(out, info)
	}
	return out
}

// normalize folds a voice or language name for lookup: lower case, with
// "_" and " " read as "-" ("en_US" and "en-us" are the same voice).
func normalize(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	return strings.NewReplacer("_", "-", " ", "-").Replace(name)
}

// validName reports whether a normalized name is plausible: ASCII letters,
// digits and "-", at most maxVoiceName bytes. It keeps path separators and
// other surprises away from libespeak-ng, which loads voices by file name.
func validName(name string) bool {
	if name == "" || len(name) > maxVoiceName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// resolve maps a requested voice ("en-us", "fr", "en-GB+f3", "en_US") to
// the name given to espeak_SetVoiceByName.
func (l *library) resolve(name string) (string, error) {
	n := normalize(name)
	base, variant, hasVariant := strings.Cut(n, "+")
	id, ok := "", validName(base)
	if ok {
		id, ok = l.voices[base]
	}
	if ok && hasVariant {
		var file string
		if file, ok = l.variants[variant]; ok {
			id += "+" + file
		}
	}
	if !ok {
		return "", &tts.Error{Code: tts.CodeBadVoice, Message: fmt.Sprintf("espeak-ng: unknown voice %q", clip(name, maxVoiceName+8))}
	}
	return id, nil
}

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
