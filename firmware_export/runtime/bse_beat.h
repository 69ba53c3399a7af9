/* bse_beat: the beat window the ECG model gets, in C: a ring of preprocessed samples at the
 * model's rate, the window [r - n_before, r + n_after) cut from it, normalised as
 * pipeline/window/ecg.py does (normalise = "none", "zscore", or "template": the patient's
 * running average beat of pipeline/window/template.py), and the side features of
 * pipeline/window/side.py (the manifest's RR features, standardised and clipped).
 *
 * Hand-written C99, float32 arithmetic, no malloc, no libm. Every number comes from a
 * bse_beat_config_t (the manifest's window, template and side_features, written by
 * firmware_export/c_chain.py).
 *
 * API
 *   bse_beat_status_t bse_beat_init(bse_beat_state_t *s, const bse_beat_config_t *cfg);
 *       Check cfg against the capacities once and start afresh (no template, empty ring);
 *       cfg must outlive s. Call again to restart (after a gap: the session's rule).
 *   void bse_beat_push(bse_beat_state_t *s, const float *y, int32_t n_samples);
 *       Append n_samples preprocessed samples, (n_samples, n_channels) row-major.
 *   int32_t bse_beat_window(const bse_beat_state_t *s, int32_t r, float *window);
 *       Copy beat r's window (n_steps = n_before + n_after, n_channels) out of the ring, r
 *       counted in samples since init. Returns BSE_BEAT_READY, BSE_BEAT_OPEN (its last
 *       sample has not come: nothing written) or BSE_BEAT_OFF (it starts before the first
 *       sample, or the ring no longer holds its start: the session skips such a beat).
 *   void bse_beat_normalise(bse_beat_state_t *s, const float *window, float *out);
 *       The model's input for a window, (n_steps, n_out_channels) row-major: "template"
 *       gives [w / scale, (w - template) / scale] per channel (2 x n_channels: the beats,
 *       then the differences) and then learns the beat; "zscore" each channel to zero mean
 *       and unit spread; "none" a copy. Call it for every window the session would feed the
 *       template, in beat order.
 *   bse_beat_begin / bse_beat_row: the same, one output row at a time (no (n_steps x
 *       n_out_channels) buffer: the chain pushes rows straight into the model): begin
 *       once per window, then row k = 0 .. n_steps - 1 in order. Template only.
 *   void bse_beat_side(const bse_beat_config_t *cfg, const float rr[7], float *side);
 *       The side features of a beat from its 7 RR features (bse_rr's order).
 *   int32_t bse_beat_state_bytes(void);
 *
 * Versus Python (float64 template, float32 outputs): the template here is float32, so it
 * carries the rounding of every update (an exponential average forgets old roundings: the
 * error stays near alpha^-1 ulps of the signal, it does not grow with the record), and
 * outputs round once more. On DS2 records the windows equal Python's within 2e-5 absolute
 * (values of order 1; tests/test_c_chain.py), the side features within 2 ulps.
 */
#ifndef BSE_BEAT_H_
#define BSE_BEAT_H_

#include <stdint.h>

#ifndef BSE_BEAT_MAX_CHANNELS
#define BSE_BEAT_MAX_CHANNELS 2
#endif
#ifndef BSE_BEAT_MAX_STEPS
#define BSE_BEAT_MAX_STEPS 256 /* 0.7 s windows up to 360 Hz */
#endif
/* Ring of preprocessed samples: 12 s at 180 Hz, what the Python session keeps (a beat the
 * detector reports later than this after its window starts is skipped, there as here). */
#ifndef BSE_BEAT_RING_CAP
#define BSE_BEAT_RING_CAP 2160
#endif
#define BSE_BEAT_N_RR 7
#ifndef BSE_BEAT_MAX_SIDE
#define BSE_BEAT_MAX_SIDE 7
#endif

typedef enum { BSE_BEAT_NONE = 0, BSE_BEAT_ZSCORE = 1, BSE_BEAT_TEMPLATE = 2 } bse_beat_normalise_t;

typedef enum {
    BSE_BEAT_OK = 0,
    BSE_BEAT_ERR_CONFIG = 1,  /* no channels, an empty window, an unknown normalisation, a side index not in 0..6 */
    BSE_BEAT_ERR_CAPACITY = 2 /* channels, steps, side features or the window beyond the state's buffers */
} bse_beat_status_t;

enum { BSE_BEAT_READY = 0, BSE_BEAT_OPEN = 1, BSE_BEAT_OFF = 2 };

typedef struct {
    int32_t n_channels;                    /* preprocessed channels (the ring's) */
    int32_t n_before_samples;              /* window = [r - n_before, r + n_after) */
    int32_t n_after_samples;
    int32_t normalise;                     /* bse_beat_normalise_t */
    float template_alpha;                  /* weight of each new beat in the template */
    float template_min_scale;              /* floor of the template's peak-to-peak amplitude */
    int32_t n_side;                        /* side features given to the model */
    int32_t side_index[BSE_BEAT_MAX_SIDE]; /* each one's RR feature (RR_FEATURE_NAMES order) */
    float side_mean[BSE_BEAT_MAX_SIDE];
    float side_std[BSE_BEAT_MAX_SIDE];
    float side_clip;                       /* +- this many standard deviations */
} bse_beat_config_t;

typedef struct {
    const bse_beat_config_t *cfg;
    int32_t n_seen;                        /* samples pushed since init */
    int32_t has_template;
    float ring[BSE_BEAT_RING_CAP][BSE_BEAT_MAX_CHANNELS];
    float tmpl[BSE_BEAT_MAX_STEPS][BSE_BEAT_MAX_CHANNELS];
    float scale[BSE_BEAT_MAX_CHANNELS];     /* this window's (bse_beat_begin) */
} bse_beat_state_t;

bse_beat_status_t bse_beat_init(bse_beat_state_t *s, const bse_beat_config_t *cfg);
void bse_beat_push(bse_beat_state_t *s, const float *y, int32_t n_samples);
int32_t bse_beat_window(const bse_beat_state_t *s, int32_t r, float *window);
void bse_beat_normalise(bse_beat_state_t *s, const float *window, float *out);
void bse_beat_begin(bse_beat_state_t *s, const float *window);
void bse_beat_row(bse_beat_state_t *s, const float *window, int32_t k, float *out_row);
void bse_beat_side(const bse_beat_config_t *cfg, const float *rr, float *side);
int32_t bse_beat_n_out_channels(const bse_beat_config_t *cfg);
int32_t bse_beat_state_bytes(void);

#endif /* BSE_BEAT_H_ */
