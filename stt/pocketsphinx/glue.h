/*
 * glue.h: the whole C surface the Go package uses. Every function here is
 * a thin wrapper over the pocketsphinx 5prealpha API so that the cgo
 * boundary stays small: no variadic calls, no C structs read from Go, and
 * every string pointer returned is owned by C and copied by Go at once.
 */
#ifndef PARLEY_PS_GLUE_H
#define PARLEY_PS_GLUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct parley_dec parley_dec;

/* parley_ps_quiet routes sphinxbase's logger to a sink that drops every
 * message except ERR_FATAL (which precedes exit() inside the library and is
 * written to stderr so that such a crash is not silent). Call once before
 * any other function. */
void parley_ps_quiet(void);

/* parley_dec_new initializes a decoder. On failure it returns NULL and
 * copies the last error the library logged on this thread into errbuf. */
parley_dec *parley_dec_new(const char *hmm, const char *lm, const char *dict,
                           char *errbuf, size_t errlen);

/* Cepstral mean normalization (CMN) priming. Live decoding normalizes
 * each frame with a running cepstral mean that only adapts after seconds
 * of speech, so a short utterance is decoded with the model's built-in
 * estimate; when the caller's channel differs (another microphone, a
 * synthetic voice) accuracy collapses. Instead, between utterances, the
 * caller runs the front end over the first part of the utterance
 * (parley_dec_prime_begin, then parley_dec_prime_add as audio arrives),
 * then parley_dec_start sets the CMN estimate to the model's estimate and
 * the speech frames' mean combined as a MAP estimate, and starts the
 * utterance; the caller then replays the primed audio through
 * parley_dec_process. */

/* parley_dec_prime_begin resets the priming sums and the front end
 * (including its noise estimate). */
int parley_dec_prime_begin(parley_dec *d);

/* parley_dec_prime_add runs the front end over n samples (not retained)
 * and accumulates the cepstra of speech frames. Returns the number of
 * speech frames accumulated since parley_dec_prime_begin, <0 on error. */
int parley_dec_prime_add(parley_dec *d, const int16_t *pcm, size_t n);

/* parley_dec_start sets CMN to (prior_frames * model estimate + sum of
 * primed frames) / (prior_frames + primed frames), resets the noise
 * estimate (ps_start_stream) and starts an utterance. With nothing primed
 * the CMN is the model's estimate: no acoustic state carries over from the
 * decoder's previous utterance.
 * Returns <0 on error. */
int parley_dec_start(parley_dec *d, int prior_frames);

/* parley_dec_process feeds n samples (not retained). Returns <0 on error. */
int parley_dec_process(parley_dec *d, const int16_t *pcm, size_t n);

/* parley_dec_frames returns the number of frames searched so far. */
int parley_dec_frames(parley_dec *d);

/* parley_dec_hyp returns the current best hypothesis (owned by the decoder,
 * valid until the next call on d), or NULL. */
const char *parley_dec_hyp(parley_dec *d);

/* parley_dec_end ends the utterance. Returns <0 on error. */
int parley_dec_end(parley_dec *d);

/* parley_dec_free releases the decoder and its configuration. */
void parley_dec_free(parley_dec *d);

/* Searches. parley_dec_add_lm_file loads an n-gram language model (ARPA
 * or binary) into a named search and activates it; parley_dec_use_search
 * activates a named search between utterances; parley_dec_search names the
 * active one (right after initialization: the model of parley_dec_new).
 * 0 on success. */
int parley_dec_add_lm_file(parley_dec *d, const char *name, const char *path);
int parley_dec_use_search(parley_dec *d, const char *name);
const char *parley_dec_search(parley_dec *d);

#endif
