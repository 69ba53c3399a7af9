/* bse_ecg: the whole ECG chain of pipeline/runtime/session.py (ECGSession) in C: samples at
 * the model's input rate in, beat decisions and signal-quality events out.
 *
 *   input checks (non-finite, flat line, out of range: a gap that restarts every state;
 *   spikes held at the last good value; clipping at the converter's full scale)
 *   -> causal filter and decimation (bse_lstm_filter_push, the generated model's filter)
 *   -> QRS detector (bse_qrs) -> RR features (bse_rr) -> ring, beat window, running
 *   template, side features (bse_beat) -> the model (bse_lstm_push / bse_lstm_decision on
 *   the generated model's data, float32 or int8) -> a decision event.
 *
 * Hand-written C99, no malloc, no libm; one state struct the caller owns. Everything the
 * model and the manifest decide comes in a bse_ecg_config_t (written by
 * firmware_export/c_chain.py from the artifact's manifest, pointing at the generated
 * model's bse_model / bse_filter_config).
 *
 * API
 *   bse_ecg_status_t bse_ecg_init(bse_ecg_state_t *s, const bse_ecg_config_t *cfg);
 *       Check the model, the filter and every configuration against each other and the
 *       state's capacities, once; start afresh. cfg must outlive s.
 *   int32_t bse_ecg_push(bse_ecg_state_t *s, const float *samples, int32_t n_samples,
 *                        bse_ecg_event_t *events, int32_t max_events);
 *       Push n_samples samples, (n_samples, n_channels) row-major, at cfg->fs_in_hz in the
 *       model's channels and units (picking channels and converting units is the caller's:
 *       the session's input contract). Writes the events completed, in sample order per
 *       kind, returns how many; events past max_events are counted in s->n_dropped_events.
 *       Any split of a signal into pushes gives the same events. On an ECG a push
 *       completes about one beat decision per refractory period (0.2 s) at most; on any
 *       input max_events >= 2 n_samples + 16 never drops one (alternating bad and good
 *       samples give 3 events per 2 samples: a gap, good samples back, a spike).
 *   int32_t bse_ecg_flush(bse_ecg_state_t *s, bse_ecg_event_t *events, int32_t max_events);
 *       The input has ended: decide the beats whose window closed and whose next beat is
 *       known but whose quality lag the stream did not reach (as ECGSession.flush).
 *   int32_t bse_ecg_state_bytes(void);  int32_t bse_ecg_event_bytes(void);
 *
 * Events (sample indices at the input rate, counted from the first sample pushed):
 *   BSE_ECG_BEAT: sample = the R peak (segment start + r x decimate), class_index, probs,
 *       flags = BSE_ECG_FLAG_* over the window's input samples;
 *   BSE_ECG_NONFINITE / _FLAT / _OUT_OF_RANGE: a bad stretch begins at sample (every state
 *       restarts when good samples return); flags = the channels concerned, a bit each;
 *   BSE_ECG_RECOVERED: good samples return at sample, gap_samples after the bad stretch began;
 *   BSE_ECG_SPIKE: out-of-range samples held at the last good value from sample on;
 *   BSE_ECG_SATURATED: clipping at the full scale begins at sample (after 2 s without).
 *
 * As the session: a beat is decided once its window has closed, the next beat gave its RR
 * features and the signal has reached r + sqi_lag_samples (where the session takes its
 * quality indices, 2.3 s after the R); a restart forgets beats still waiting. The first beat
 * of a segment feeds the template but is not decided (no pre-RR).
 *
 * Quality, what is here and what is not: the input checks and the flags "spike" and
 * "saturated" are the session's, sample for sample. The noise indices the session takes per
 * beat (bSQI from a second QRS detector, kSQI, pSQI, nSQI) are not computed in C: every
 * decision carries BSE_ECG_FLAG_NOISE_UNASSESSED, and a device must treat it as the session
 * treats "unassessed" (shown, never counted as good) until they are.
 *
 * Versus the Python session with the same generated model as its backend (c_float32,
 * c_int8): the causal filter and the template run in float32 here, float64 there (filter
 * outputs differ by up to ~3e-4 mV on MIT-BIH); the detector, RR features, gating and model
 * calls are the same. On all 22 DS2 records (49,631 decisions, a trained LSTM(16)) every
 * beat is decided at the session's sample; the classes differ at 1 beat with float32 (a tie
 * within 1e-4: N 0.3317 / V 0.3317) and 13 with int8 (whose input quantisation turns the
 * filter's 1e-4 into up to 8e-2 of probability); chunk-invariant (tests/test_c_chain.py).
 * Sample indices are int32: 69 days at 360 Hz.
 */
#ifndef BSE_ECG_H_
#define BSE_ECG_H_

#include <stdint.h>

#include "bse_beat.h"
#include "bse_lstm.h"
#include "bse_qrs.h"
#include "bse_rr.h"

#ifndef BSE_ECG_MAX_CLASSES
#define BSE_ECG_MAX_CLASSES 8
#endif
#ifndef BSE_ECG_MAX_SECTIONS
#define BSE_ECG_MAX_SECTIONS 4
#endif
/* The model's buffers (bse_lstm_buffers_t): LSTM units of all layers, gates of the widest
 * layer or the dense layer, the head's input, an int8 vector. */
#ifndef BSE_ECG_MAX_STATE
#define BSE_ECG_MAX_STATE 64
#endif
#ifndef BSE_ECG_MAX_SCRATCH
#define BSE_ECG_MAX_SCRATCH 256
#endif
#ifndef BSE_ECG_MAX_FEATURES
#define BSE_ECG_MAX_FEATURES 96
#endif
#ifndef BSE_ECG_MAX_QUANTISED
#define BSE_ECG_MAX_QUANTISED 64
#endif
/* Beats detected but not yet decided: those within the quality lag (2.3 s) of the newest
 * sample, at most one a refractory period (0.2 s). */
#ifndef BSE_ECG_PENDING_CAP
#define BSE_ECG_PENDING_CAP 16
#endif
#ifndef BSE_ECG_ROWS
#define BSE_ECG_ROWS 16 /* model input rows normalised and pushed at a time */
#endif

typedef enum {
    BSE_ECG_OK = 0,
    BSE_ECG_ERR_MODEL = 1,    /* bse_lstm_check or bse_lstm_filter_check failed */
    BSE_ECG_ERR_CONFIG = 2,   /* the parts disagree (channels, side features, rates) or a bad number */
    BSE_ECG_ERR_CAPACITY = 3, /* a size beyond the state's buffers */
    BSE_ECG_ERR_QRS = 4,      /* bse_qrs_init refused its configuration */
    BSE_ECG_ERR_RR = 5,       /* bse_rr_init refused */
    BSE_ECG_ERR_BEAT = 6      /* bse_beat_init refused */
} bse_ecg_status_t;

typedef enum {
    BSE_ECG_BEAT = 0,
    BSE_ECG_NONFINITE = 1,
    BSE_ECG_FLAT = 2,
    BSE_ECG_OUT_OF_RANGE = 3,
    BSE_ECG_RECOVERED = 4,
    BSE_ECG_SPIKE = 5,
    BSE_ECG_SATURATED = 6
} bse_ecg_kind_t;

#define BSE_ECG_FLAG_SPIKE 1u
#define BSE_ECG_FLAG_SATURATED 2u
#define BSE_ECG_FLAG_NOISE_UNASSESSED 4u

typedef struct {
    const bse_lstm_model_t *model;
    const bse_lstm_filter_t *filter;
    const bse_qrs_config_t *qrs;    /* at the model's rate, fs_in_hz / decimate */
    const bse_beat_config_t *beat;
    float fs_in_hz;                 /* the rate samples are pushed at (the model's input rate) */
    int32_t rr_local_beats;
    float rr_average_s;
    int32_t sqi_lag_samples;        /* model-rate samples after the R before a beat is decided */
    float valid_low, valid_high;    /* the plausible range of a sample (manifest's valid_range) */
    int32_t flat_samples;           /* a channel holding one value this long is a flat line */
    int32_t spike_samples;          /* out of range this long at most: held, not a gap */
    int32_t has_full_scale;         /* the converter's range is known: clipping is flagged */
    float full_scale_low[BSE_BEAT_MAX_CHANNELS], full_scale_high[BSE_BEAT_MAX_CHANNELS];
} bse_ecg_config_t;

typedef struct {
    int32_t kind;                   /* bse_ecg_kind_t */
    int32_t sample;                 /* input sample index */
    int32_t class_index;            /* beats: the most probable class; otherwise -1 */
    uint32_t flags;                 /* beats: BSE_ECG_FLAG_*; gaps: channel bits */
    int32_t gap_samples;            /* BSE_ECG_RECOVERED */
    float probs[BSE_ECG_MAX_CLASSES];
} bse_ecg_event_t;

typedef struct {
    int32_t r;                      /* model-rate sample since the segment's start */
    int32_t has_features;
    int32_t window;                 /* BSE_BEAT_OPEN, _READY (in the ring or parked) or _OFF */
    int32_t parked;                 /* its window is in s->park (the ring was to overwrite it) */
    float features[BSE_RR_N_FEATURES];
} bse_ecg_pending_t;

typedef struct {
    const bse_ecg_config_t *cfg;
    int32_t n_dropped_events;
    int32_t max_report_lag;         /* the most model-rate samples a beat was reported after its R */
    /* input checks */
    int32_t n_in;                   /* input samples pushed since init */
    int32_t gap_start;              /* where a bad stretch began; -1: none */
    int32_t has_last;               /* last_sample is set */
    float last_sample[BSE_BEAT_MAX_CHANNELS];
    int32_t run[BSE_BEAT_MAX_CHANNELS]; /* equal-sample pairs in a row, per channel */
    int32_t oor_run;                /* out-of-range samples in a row */
    int32_t has_good;
    float last_good[BSE_BEAT_MAX_CHANNELS];
    int32_t spike_stop;             /* end of the last held spike's span; -1: none */
    int32_t saturated_stop;         /* end of the last clipped span; -1: none */
    /* the segment (since the last restart) */
    int32_t segment_start;          /* input sample of the segment's first sample */
    int32_t seg_in;                 /* input samples fed since the restart */
    int32_t n_out;                  /* model-rate samples since the restart */
    float zi[BSE_BEAT_MAX_CHANNELS][BSE_ECG_MAX_SECTIONS][2];
    int32_t phase[BSE_BEAT_MAX_CHANNELS];
    float norm[BSE_BEAT_MAX_CHANNELS][2];
    /* BSE_ECG_FLAG_SPIKE | _SATURATED of each model-rate sample's inputs: 2 bits each */
    uint8_t flags[(BSE_BEAT_RING_CAP + 3) / 4];
    bse_qrs_state_t qrs;
    bse_rr_state_t rr;
    bse_beat_state_t beat;
    bse_ecg_pending_t pending[BSE_ECG_PENDING_CAP];
    int32_t n_pending;
    int32_t dropped_last;           /* the newest beat found the queue full */
    /* The window being decided, copied out of the ring; or the front beat's, parked here
     * with its flags when the ring was about to overwrite it (its next beat is late). */
    float park[BSE_BEAT_MAX_STEPS * BSE_BEAT_MAX_CHANNELS];
    uint32_t park_flags;
    int32_t fresh;                  /* the filter starts at the next sample fed */
    /* the model */
    float h[BSE_ECG_MAX_STATE], c[BSE_ECG_MAX_STATE], z[BSE_ECG_MAX_SCRATCH], v[BSE_ECG_MAX_FEATURES];
    int8_t q[BSE_ECG_MAX_QUANTISED];
    float rows[BSE_ECG_ROWS * 2 * BSE_BEAT_MAX_CHANNELS];
    float side[BSE_BEAT_MAX_SIDE];
} bse_ecg_state_t;

bse_ecg_status_t bse_ecg_init(bse_ecg_state_t *s, const bse_ecg_config_t *cfg);
int32_t bse_ecg_push(bse_ecg_state_t *s, const float *samples, int32_t n_samples, bse_ecg_event_t *events,
                     int32_t max_events);
int32_t bse_ecg_flush(bse_ecg_state_t *s, bse_ecg_event_t *events, int32_t max_events);
int32_t bse_ecg_state_bytes(void);
int32_t bse_ecg_event_bytes(void);

#endif /* BSE_ECG_H_ */
