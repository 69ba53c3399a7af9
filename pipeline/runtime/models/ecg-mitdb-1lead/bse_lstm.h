/* bse_lstm: the arithmetic of a causal LSTM classifier, for microcontrollers and CPUs.
 *
 * Hand-written C99, no malloc, no libm. A generated model file (firmware_export/c_model.py)
 * holds only data: its weights, its sizes, and the structs below filled in with them; it
 * binds this runtime to a prefix (bse_init, bse_push, ...). Everything that computes is
 * here, in one place, read and tested as C.
 *
 * Layer stack: LSTM layer(s) (Keras gate order i, f, c, o; sigmoid gates, tanh cell) ->
 * the last hidden state joined with side features -> Dense(relu) -> Dense(softmax).
 * Two precisions share the code:
 *   float32  float weights, Cephes-style expf/tanhf/sigmoid written here, so every build
 *            (x86, aarch64, Cortex-M4) computes the same bits when compiled without
 *            floating-point contraction (-ffp-contract=off) and without -ffast-math;
 *   int8     the LSTM's weights in int8 with one float scale per output row, each input
 *            vector quantised to int8 (one scale per vector and step), int32 dot products
 *            (SMLAD on cores with the DSP extension); gates from a sigmoid table; cell state,
 *            the dense head (run once per decision) and softmax in float.
 *
 * Validate once, compute fast: bse_lstm_check() checks every dimension of a model against
 * the buffers its state was sized with; the per-step functions check nothing.
 */
#ifndef BSE_LSTM_H_
#define BSE_LSTM_H_

#include <stdint.h>

#define BSE_LSTM_MAX_LAYERS 4

typedef enum { BSE_LSTM_FLOAT32 = 0, BSE_LSTM_INT8 = 1 } bse_lstm_dtype_t;

typedef enum {
    BSE_LSTM_OK = 0,
    BSE_LSTM_ERR_DTYPE = 1,      /* unknown dtype, a matrix without weights, int8 in a float model */
    BSE_LSTM_ERR_LAYERS = 2,     /* no LSTM layer, or more than BSE_LSTM_MAX_LAYERS */
    BSE_LSTM_ERR_SHAPE = 3,      /* a matrix does not take its input's size or give its output's */
    BSE_LSTM_ERR_BUFFER = 4,     /* a buffer of the state struct is too small for a layer */
    BSE_LSTM_ERR_TABLE = 5,      /* int8: no sigmoid table, or a table of under 2 entries */
    BSE_LSTM_ERR_FILTER = 6      /* decimation < 1, or sections without coefficients */
} bse_lstm_status_t;

/* One weight matrix: out[j] += sum_i W[i][j] * v[i], i < n_in, j < n_out. Float weights
 * if w is set, else int8 (w_q, w_scale). */
typedef struct {
    int32_t n_in, n_out;
    const float *w;          /* float32: (n_in, n_out) row-major: Keras' kernel layout */
    const int8_t *w_q;       /* int8: (n_out, n_in_padded) row-major: one row per output */
    const float *w_scale;    /* int8: (n_out,) the row's scale: W[i][j] ~ w_scale[j] * w_q[j][i] */
    int32_t n_in_padded;     /* int8: n_in rounded up to whole 32-bit words (zeros) */
} bse_lstm_matrix_t;

typedef struct {
    int32_t n_in, n_units;
    bse_lstm_matrix_t wx;    /* n_in -> 4 n_units */
    bse_lstm_matrix_t wh;    /* n_units -> 4 n_units */
    const float *bias;       /* (4 n_units,) */
} bse_lstm_layer_t;

typedef struct {
    bse_lstm_matrix_t w;
    const float *bias;       /* (n_out,) */
} bse_lstm_dense_t;

/* sigmoid(x) by linear interpolation in n values at x_min + k / per_unit, k < n; clamped
 * to the end values outside [x_min, x_max]. */
typedef struct {
    const float *values;
    int32_t n;
    float x_min, x_max, per_unit;
} bse_lstm_table_t;

typedef struct {
    bse_lstm_dtype_t dtype;
    int32_t n_channels;      /* inputs per time step */
    int32_t n_side;          /* side features joined to the last hidden state */
    int32_t n_classes;
    int32_t n_layers;
    bse_lstm_layer_t layers[BSE_LSTM_MAX_LAYERS];
    bse_lstm_dense_t hidden; /* relu */
    bse_lstm_dense_t output; /* softmax */
    bse_lstm_table_t sigmoid;   /* int8 only */
    /* Lengths of the buffers the model's state struct holds (bse_lstm_buffers_t). */
    int32_t n_state, n_scratch, n_features, n_quantised;
} bse_lstm_model_t;

/* The caller's state, seen by the runtime: pointers into the model's state struct. */
typedef struct {
    float *h;                /* (n_state,) hidden state, layer after layer */
    float *c;                /* (n_state,) cell state, likewise */
    float *z;                /* (n_scratch,) gate pre-activations; the dense layer's output */
    float *v;                /* (n_features,) the head's input: last hidden state + side */
    int8_t *q;               /* (n_quantised,) int8: a quantised input vector */
} bse_lstm_buffers_t;

/* Causal filter: second-order sections at the input rate in scipy's layout
 * (b0 b1 b2 a0 a1 a2, a0 = 1), transposed direct form II as scipy.signal.sosfilt, then
 * every decimate-th sample kept and multiplied by gain. No sections: decimation and gain.
 * With norm_alpha > 0, each kept sample is then divided by the channel's running RMS
 * (pipeline.preprocess.filters.RunningNormaliser): a one-pole mean of y^2 with
 * coefficient norm_alpha, bias-corrected by 1 - (1 - norm_alpha)^(n + 1) so it is the
 * weighted mean from the first sample on; the output does not depend on the input's scale. */
typedef struct {
    int32_t n_sections;
    const float (*sos)[6];   /* (n_sections, 6) */
    const float (*zi)[2];    /* (n_sections, 2) steady state for a unit step (scipy's sosfilt_zi) */
    int32_t decimate;
    float gain;
    float norm_alpha;        /* 1 - exp(-1 / (running_norm_s * model rate)); 0: no normalisation */
    float norm_floor;        /* added to the mean square before the square root */
} bse_lstm_filter_t;

/* Checks, once: every dimension of m against its layers and buffers. */
bse_lstm_status_t bse_lstm_check(const bse_lstm_model_t *m);
bse_lstm_status_t bse_lstm_filter_check(const bse_lstm_filter_t *f);
const char *bse_lstm_status_text(bse_lstm_status_t status);

/* Zero the LSTM state: at the start of every window. */
void bse_lstm_reset(const bse_lstm_model_t *m, const bse_lstm_buffers_t *b);
/* Advance over x: n_steps samples of n_channels floats, row-major. Chunks of any length
 * give the same state as the whole window, bit for bit. */
void bse_lstm_push(const bse_lstm_model_t *m, const bse_lstm_buffers_t *b, const float *x, int n_steps);
/* Dense head + softmax on the current state and n_side side features (unread if 0):
 * writes probs[n_classes], returns the index of the largest. */
int bse_lstm_decision(const bse_lstm_model_t *m, const bse_lstm_buffers_t *b, const float *side, float *probs);

/* Filter state: zi (n_sections, 2), phase (input samples since the last kept one) and
 * norm[2] (the running mean square and (1 - norm_alpha)^n; unused without normalisation).
 * x0: the first input sample; the state starts at its steady state (no transient). */
void bse_lstm_filter_init(const bse_lstm_filter_t *f, float (*zi)[2], int32_t *phase, float *norm, float x0);
/* Filter n input samples x, write the kept (decimated, scaled, normalised) ones to y,
 * return their number. */
int bse_lstm_filter_push(const bse_lstm_filter_t *f, float (*zi)[2], int32_t *phase, float *norm,
                         const float *x, int n, float *y);

/* Building blocks, exposed for their tests. */
float bse_lstm_expf(float x);
float bse_lstm_sigmoidf(float x);
float bse_lstm_tanhf(float x);
float bse_lstm_sigmoid_table(const bse_lstm_table_t *t, float x);
float bse_lstm_tanh_table(const bse_lstm_table_t *t, float x);
float bse_lstm_quantise(const float *v, int n, int n_padded, int8_t *q);
int32_t bse_lstm_dot_q8(const int8_t *a, const int8_t *b, int n);

#endif /* BSE_LSTM_H_ */
