/* bse_qrs: the streaming QRS detector of pipeline/runtime/qrs.py (PanTompkins) in C.
 *
 * Hand-written C99, float32 arithmetic only, no malloc, no libm; every number that depends
 * on the sampling rate comes from a bse_qrs_config_t (generated data: the Python detector's
 * own coefficients and sample counts, written by firmware_export/c_chain.py), so nothing
 * here assumes 360 Hz.
 *
 * API
 *   bse_qrs_status_t bse_qrs_init(bse_qrs_state_t *s, const bse_qrs_config_t *cfg);
 *       Check cfg against the state's capacities (BSE_QRS_MAX_FS_HZ) once and start afresh;
 *       cfg must outlive s (it is read, never copied). Call again to restart (after a gap,
 *       a non-finite or flat stretch: the session's rule).
 *   int32_t bse_qrs_push(bse_qrs_state_t *s, const float *samples, int32_t n_samples,
 *                        int32_t *out_beats, int32_t max_beats);
 *       Push n_samples samples at cfg->fs_hz; write the R peaks found to out_beats as
 *       sample indices counted from the first sample pushed since init; return how many
 *       were written. Any split of a signal into pushes gives the same beats. A beat is
 *       reported lookahead_samples after its integrated-signal peak (about 0.25 s after the
 *       R). max_beats >= (n_samples + learn_samples) / refractory_samples + 2 never drops
 *       one (the push that ends the learning period judges its whole backlog); beats past
 *       max_beats are counted in s->n_dropped_beats, not written.
 *   int32_t bse_qrs_state_bytes(void);  sizeof(bse_qrs_state_t), for ctypes callers.
 *
 * Versus Python (float64): the same algorithm step by step (band-pass, five-point
 * derivative, two Ricker matched filters, 120 ms integration, peak lookahead, adaptive
 * levels with the 4x cap, T-wave test, search-back, relearning, R at the steepest slope),
 * in float32. Two changes that do not change the results: the moving integration is
 * summed afresh each sample (window_samples adds; a float32 running total would drift over
 * a record), and a search-back candidate keeps only the largest noise peak since the last
 * QRS with its R peak found when it was recorded (Python keeps every noise peak and the
 * signal back to the oldest, unbounded in a long pause; only the largest is ever used, and
 * its R search reads samples that no longer change). The R search's choice between the
 * largest and the smallest sample (which lies further from the median) is made in exact
 * arithmetic, as float64 makes it for float32 samples. Sample indices are int32: restart
 * within 2^31 samples (138 days at 180 Hz). On the 22 MIT-BIH DS2 records the beats equal
 * Python's, every one (tests/test_c_chain.py).
 *
 * RAM: the state is 4.9 KB at BSE_QRS_MAX_FS_HZ=180, 9.5 KB at 360, most of it 2 s of input,
 * |derivative| and integrated signal (the learning period's peaks are judged when it ends).
 */
#ifndef BSE_QRS_H_
#define BSE_QRS_H_

#include <stdint.h>

/* The highest rate the state's buffers hold (override with -DBSE_QRS_MAX_FS_HZ=...); the
 * Python defaults' durations at this rate set each capacity. 180 Hz (the ECG model's rate)
 * halves the state of 360 Hz. */
#ifndef BSE_QRS_MAX_FS_HZ
#define BSE_QRS_MAX_FS_HZ 360
#endif
#define BSE_QRS_N_RICKERS 2
/* 0.08 s Ricker (+ the derivative's 5 samples), 0.12 s integration, 0.1 s lookahead, 2 s learning. */
#define BSE_QRS_RICKER_CAP ((BSE_QRS_MAX_FS_HZ * 8 + 99) / 100 + 5)
#define BSE_QRS_WINDOW_CAP ((BSE_QRS_MAX_FS_HZ * 12 + 99) / 100 + 1)
#define BSE_QRS_LOOKAHEAD_CAP ((BSE_QRS_MAX_FS_HZ + 9) / 10 + 1)
#define BSE_QRS_LEARN_CAP (2 * BSE_QRS_MAX_FS_HZ + 1)
/* History of the input, |derivative| and integrated signal, counted back from the newest
 * sample: the R search, slope test and relearning of a peak lookahead_samples old, and at
 * the end of the learning period every peak of it (judged then, as in Python). */
#define BSE_QRS_HIST_CAP (BSE_QRS_LEARN_CAP + BSE_QRS_LOOKAHEAD_CAP + 2)
#define BSE_QRS_RR_CAP 8 /* Pan & Tompkins' average of the last 8 QRS intervals */

typedef enum {
    BSE_QRS_OK = 0,
    BSE_QRS_ERR_CONFIG = 1,   /* a count below its minimum (lookahead, window, Ricker length) */
    BSE_QRS_ERR_CAPACITY = 2  /* a count above what BSE_QRS_MAX_FS_HZ's buffers hold */
} bse_qrs_status_t;

/* Everything rate-dependent: PanTompkins(fs_hz)'s attributes, as float32 / int32. */
typedef struct {
    float fs_hz;
    float band_sos[6];                 /* 5-15 Hz order-1 band-pass, scipy layout, a0 = 1 */
    float band_zi[2];                  /* its steady state per unit input (sosfilt_zi) */
    int32_t n_rickers;                 /* <= BSE_QRS_N_RICKERS */
    int32_t ricker_len[BSE_QRS_N_RICKERS];
    float ricker[BSE_QRS_N_RICKERS][BSE_QRS_RICKER_CAP]; /* unit-energy, symmetric taps */
    int32_t window_samples;            /* moving integration (and the slope test's span) */
    int32_t learn_samples;             /* initial (and re-) learning period */
    int32_t lookahead_samples;         /* a peak is the maximum of this many samples after it */
    int32_t refractory_samples;
    int32_t t_wave_samples;
    int32_t search_r_samples;          /* R search span before the integrated peak */
    int32_t relearn_samples;           /* no QRS for this long: learn the levels again */
    int32_t r_before_samples, r_after_samples; /* R search around the steepest slope */
    float cap;                         /* a peak moves a level by at most cap x signal level */
    float threshold_share;             /* threshold = noise + share (signal - noise) */
    float search_back_rr;              /* search back after this many average RRs ... */
    float search_back_share;           /* ... at this share of the threshold */
} bse_qrs_config_t;

typedef struct {
    const bse_qrs_config_t *cfg;
    int32_t n_seen;                    /* samples pushed since init: the next sample's index */
    int32_t n_dropped_beats;           /* beats found past a push's max_beats */
    float zi[2];                       /* band-pass state */
    float band[BSE_QRS_RICKER_CAP];    /* rings by sample index: band-passed samples, */
    float energy[BSE_QRS_WINDOW_CAP];  /* matched-filter energy, */
    float sig[BSE_QRS_HIST_CAP];        /* input samples, */
    float slope[BSE_QRS_HIST_CAP];      /* |five-point derivative|, */
    float mwi[BSE_QRS_HIST_CAP];        /* integrated signal */
    int32_t learnt;                    /* levels learnt (after learn_samples) */
    int32_t learnt_at;                 /* index where they were last learnt */
    float spki, npki;                  /* signal and noise levels */
    int32_t last_qrs;                  /* index of the last QRS (integrated peak); -1: none */
    int32_t last_r;                    /* index of the last R reported; -1: none */
    float last_slope;
    int32_t rr[BSE_QRS_RR_CAP];        /* last QRS intervals (samples), a ring */
    int32_t n_rr, rr_next;
    int32_t has_noise;                 /* the largest noise peak since the last QRS: */
    int32_t noise_index, noise_r;      /* its index and its R peak, */
    float noise_value, noise_slope;    /* its value and slope */
} bse_qrs_state_t;

bse_qrs_status_t bse_qrs_init(bse_qrs_state_t *s, const bse_qrs_config_t *cfg);
int32_t bse_qrs_push(bse_qrs_state_t *s, const float *samples, int32_t n_samples, int32_t *out_beats,
                     int32_t max_beats);
int32_t bse_qrs_state_bytes(void);

#endif /* BSE_QRS_H_ */
