/* bse_rr: the RR-interval features of pipeline/window/rr.py (RRFeatures) in C.
 *
 * Hand-written C99, float32 arithmetic, no malloc, no libm. Beats come in as sample indices
 * (as bse_qrs_push writes them) at fs_hz; intervals are kept as whole samples, so the sums
 * are exact and each feature is rounded once or twice to float32.
 *
 * API
 *   bse_rr_status_t bse_rr_init(bse_rr_state_t *s, float fs_hz, int32_t local_beats, float average_s);
 *       Start afresh (the manifest's rr.local_beats and rr.average_s; the beats' rate).
 *   int32_t bse_rr_push(bse_rr_state_t *s, int32_t beat_sample, float features[BSE_RR_N_FEATURES]);
 *       Register a beat. Returns 1 and writes the features of the *previous* beat (its
 *       post-RR is known now) in the order of RR_FEATURE_NAMES: pre_rr_s, post_rr_s,
 *       local_rr_s, avg_rr_s, pre_rr_norm, post_rr_norm, local_rr_norm; 0 until two
 *       earlier beats were seen; -1 (state unchanged) if beat_sample is not after the last.
 *   int32_t bse_rr_state_bytes(void);  sizeof(bse_rr_state_t), for ctypes callers.
 *
 * The running average holds the intervals ending within average_s before the newest beat.
 * Python compares times in float64 seconds, t_end < t - average_s; here in samples,
 * beat - end > floor(average_s * fs_hz): the same rule in exact arithmetic. Where an
 * interval ends exactly average_s before the beat (beat - end == average_s * fs_hz) Python's
 * rounding of the two times decides, and keeps or drops it either way (on the annotated
 * beats of the 22 DS2 records at 360 Hz, a few beats per record); this code keeps it.
 *
 * Capacity: BSE_RR_WINDOW_CAP intervals, the most that end within BSE_RR_MAX_AVERAGE_S at
 * BSE_RR_MAX_BPM (300 s at 300 bpm: 1501; the QRS detector's 0.2 s refractory period
 * reports no faster rhythm). Past it (a faster rhythm, or a longer average_s than
 * BSE_RR_MAX_AVERAGE_S, which init refuses) the oldest interval leaves early: the average
 * covers the last BSE_RR_WINDOW_CAP intervals, and s->n_overflow counts them. Intervals are
 * stored as uint16 samples (3 KB): one of 65536 samples or more (182 s at 360 Hz, 364 s at
 * 180 Hz) starts the average afresh with itself alone, which is Python's rule whenever
 * average_s * fs_hz < 65536 (300 s at up to 218 Hz) and otherwise differs only after such
 * a pause.
 */
#ifndef BSE_RR_H_
#define BSE_RR_H_

#include <stdint.h>

#define BSE_RR_N_FEATURES 7
#ifndef BSE_RR_MAX_BPM
#define BSE_RR_MAX_BPM 300
#endif
#ifndef BSE_RR_MAX_AVERAGE_S
#define BSE_RR_MAX_AVERAGE_S 300
#endif
#ifndef BSE_RR_LOCAL_CAP
#define BSE_RR_LOCAL_CAP 16
#endif
#define BSE_RR_WINDOW_CAP (BSE_RR_MAX_AVERAGE_S * BSE_RR_MAX_BPM / 60 + 1)

typedef enum {
    BSE_RR_OK = 0,
    BSE_RR_ERR_CONFIG = 1,   /* fs_hz or average_s not above 0, local_beats below 1 */
    BSE_RR_ERR_CAPACITY = 2  /* local_beats > BSE_RR_LOCAL_CAP, average_s > BSE_RR_MAX_AVERAGE_S */
} bse_rr_status_t;

typedef struct {
    float fs_hz;
    int32_t local_beats;
    int32_t average_samples;            /* floor(average_s * fs_hz) */
    int32_t n_beats;                    /* beats pushed (counted up to 2) */
    int32_t last, prev;                 /* sample of the newest beat and of the one before */
    int32_t local[BSE_RR_LOCAL_CAP];    /* last local_beats intervals (samples), a ring */
    int32_t n_local, local_next, local_sum;
    uint16_t window[BSE_RR_WINDOW_CAP]; /* intervals in the average, a ring from `head`; */
    int32_t head, n_window, window_sum; /* 0 marks the front's, which is long_rr */
    int32_t long_rr;                    /* an interval of 65536 samples or more (the front) */
    int32_t front_end;                  /* sample where the front interval ends */
    int32_t n_overflow;                 /* intervals dropped for capacity */
} bse_rr_state_t;

bse_rr_status_t bse_rr_init(bse_rr_state_t *s, float fs_hz, int32_t local_beats, float average_s);
int32_t bse_rr_push(bse_rr_state_t *s, int32_t beat_sample, float features[BSE_RR_N_FEATURES]);
int32_t bse_rr_state_bytes(void);

#endif /* BSE_RR_H_ */
