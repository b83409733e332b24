/* glue.c: see glue.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pocketsphinx.h>
#include <sphinxbase/ckd_alloc.h>
#include <sphinxbase/cmd_ln.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/fe.h>
#include <sphinxbase/feat.h>

#include "glue.h"

#define PARLEY_MAX_CEP 64
#define PARLEY_PRIME_FRAMES 32 /* front-end frames computed per call */

struct parley_dec {
    ps_decoder_t *ps;
    mfcc_t cmn0[PARLEY_MAX_CEP]; /* CMN estimate right after ps_init */
    int ncmn;                    /* entries used in cmn0 and sum; 0: no CMN */
    double sum[PARLEY_MAX_CEP];  /* sum of primed speech cepstra */
    int nprimed;                 /* speech frames in sum */
    mfcc_t **cep;                /* PARLEY_PRIME_FRAMES x ncmn scratch */
};

/* Last ERR_ERROR/ERR_FATAL message logged on this thread, so that a failed
 * ps_init can say why. Only initialization failures copy it out. */
static __thread char parley_last_err[512];

/* The callback is variadic with a format, as err.h declares err_cb_f. */
static void
parley_log_cb(void *user, err_lvl_t lvl, const char *fmt, ...)
{
    va_list ap;
    (void)user;
    if (lvl < ERR_ERROR)
        return;
    va_start(ap, fmt);
    vsnprintf(parley_last_err, sizeof(parley_last_err), fmt, ap);
    va_end(ap);
    if (lvl == ERR_FATAL) {
        /* The library calls exit() right after this message. */
        fprintf(stderr, "pocketsphinx fatal: %s", parley_last_err);
        fflush(stderr);
    }
}

void
parley_ps_quiet(void)
{
    /* Both are needed: the configuration dump ps_init prints goes to the
     * log file handle directly, other messages through the callback. */
    err_set_logfp(NULL);
    err_set_callback(parley_log_cb, NULL);
}

parley_dec *
parley_dec_new(const char *hmm, const char *lm, const char *dict,
               char *errbuf, size_t errlen)
{
    cmd_ln_t *cfg;
    parley_dec *d;
    feat_t *feat;

    parley_last_err[0] = '\0';
    if (errlen > 0)
        errbuf[0] = '\0';
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    cfg = cmd_ln_init(NULL, ps_args(), TRUE,
                      "-hmm", hmm, "-lm", lm, "-dict", dict,
                      "-samprate", "16000",
                      NULL);
    if (cfg == NULL) {
        snprintf(errbuf, errlen, "configuration rejected: %s", parley_last_err);
        free(d);
        return NULL;
    }
    d->ps = ps_init(cfg);
    /* ps_init holds its own reference to cfg. */
    cmd_ln_free_r(cfg);
    if (d->ps == NULL) {
        snprintf(errbuf, errlen, "%s", parley_last_err);
        free(d);
        return NULL;
    }
    feat = ps_get_feat(d->ps);
    if (feat != NULL && feat->cmn_struct != NULL
        && feat->cmn_struct->veclen > 0
        && feat->cmn_struct->veclen <= PARLEY_MAX_CEP) {
        d->ncmn = feat->cmn_struct->veclen;
        cmn_live_get(feat->cmn_struct, d->cmn0);
    }
    if (d->ncmn > 0 && fe_get_output_size(ps_get_fe(d->ps)) == d->ncmn)
        d->cep = (mfcc_t **)ckd_calloc_2d(PARLEY_PRIME_FRAMES, d->ncmn,
                                          sizeof(mfcc_t));
    return d;
}

int
parley_dec_prime_begin(parley_dec *d)
{
    memset(d->sum, 0, sizeof(d->sum));
    d->nprimed = 0;
    if (d->cep == NULL)
        return 0;
    /* Forget the previous utterance's noise estimate (which also drives the
     * front end's speech detector), then start a front-end utterance. */
    ps_start_stream(d->ps);
    return fe_start_utt(ps_get_fe(d->ps));
}

int
parley_dec_prime_add(parley_dec *d, const int16_t *pcm, size_t n)
{
    fe_t *fe;
    const int16 *p = pcm;

    if (d->cep == NULL)
        return 0; /* no CMN to prime: priming is a no-op */
    fe = ps_get_fe(d->ps);
    while (n > 0) {
        int32 nfr = PARLEY_PRIME_FRAMES, idx, i, j;
        size_t before = n;
        if (fe_process_frames(fe, &p, &n, d->cep, &nfr, &idx) < 0)
            return -1;
        for (i = 0; i < nfr; i++) {
            /* Like cmn_live: frames with negative log energy do not count. */
            if (d->cep[i][0] < 0)
                continue;
            for (j = 0; j < d->ncmn; j++)
                d->sum[j] += d->cep[i][j];
            d->nprimed++;
        }
        if (nfr == 0 && n == before)
            break; /* cannot happen per fe.h; never spin */
    }
    return d->nprimed;
}

int
parley_dec_start(parley_dec *d, int prior_frames)
{
    if (d->ncmn > 0) {
        mfcc_t mean[PARLEY_MAX_CEP];
        double w0 = prior_frames > 0 ? prior_frames : 0;
        double n = d->nprimed;
        int j;
        for (j = 0; j < d->ncmn; j++) {
            if (w0 + n > 0)
                mean[j] = (mfcc_t)((w0 * d->cmn0[j] + d->sum[j]) / (w0 + n));
            else
                mean[j] = d->cmn0[j];
        }
        cmn_live_set(ps_get_feat(d->ps)->cmn_struct, mean);
    }
    memset(d->sum, 0, sizeof(d->sum));
    d->nprimed = 0;
    /* The noise estimate persists across utterances unless the stream is
     * restarted; restart it so every utterance is decoded alike. */
    ps_start_stream(d->ps);
    return ps_start_utt(d->ps);
}

int
parley_dec_process(parley_dec *d, const int16_t *pcm, size_t n)
{
    return ps_process_raw(d->ps, pcm, n, FALSE, FALSE);
}

int
parley_dec_frames(parley_dec *d)
{
    return ps_get_n_frames(d->ps);
}

const char *
parley_dec_hyp(parley_dec *d)
{
    int32 score;
    return ps_get_hyp(d->ps, &score);
}

int
parley_dec_end(parley_dec *d)
{
    return ps_end_utt(d->ps);
}

void
parley_dec_free(parley_dec *d)
{
    if (d == NULL)
        return;
    if (d->cep != NULL)
        ckd_free_2d((void **)d->cep);
    ps_free(d->ps);
    free(d);
}

int
parley_dec_add_lm_file(parley_dec *d, const char *name, const char *path)
{
    return ps_set_lm_file(d->ps, name, path);
}

int
parley_dec_use_search(parley_dec *d, const char *name)
{
    return ps_set_search(d->ps, name);
}

const char *
parley_dec_search(parley_dec *d)
{
    return ps_get_search(d->ps);
}
