/* bse_lstm: the arithmetic of a causal LSTM classifier (see bse_lstm.h).
 *
 * Bit-identical builds: every float operation below is written in the order it is meant to
 * run, and nothing here depends on the compiler reassociating or fusing it. Compile with
 * -ffp-contract=off (no fused multiply-add: gcc fuses by default on aarch64 and on x86 with
 * FMA) and never with -ffast-math; then x86-64, aarch64 and a Cortex-M4F compute the same
 * bits. Loops that a compiler may vectorise (the float matrix-vector product across its
 * outputs, the int8 dot product, the quantiser) keep each output's own order of operations
 * whatever the vector width, so vectorising does not change a bit either. */
#include "bse_lstm.h"

#include <string.h>   /* memcpy: word loads of int8 pairs, float bits */

/* Two forms of the float loops, the same bits (tests/test_c_backend.py holds a CPU build
 * to the Cortex-M4 build, tests/test_c_runtime.py one form to the other): on a CPU with
 * SIMD, the matrix-vector product and the activations a vector at a time (GCC's vector
 * extension: 4 lanes with SSE2 or NEON, 8 with AVX2; written out, not left to the
 * auto-vectoriser, which leaves the activations scalar on aarch64); on a scalar core,
 * eight sums in registers and activations that branch. */
#ifndef BSE_LSTM_VECTOR_LOOPS
#if defined(__GNUC__) && (defined(__SSE2__) || defined(__ARM_NEON) || defined(__ARM_NEON__))
#define BSE_LSTM_VECTOR_LOOPS 1
#else
#define BSE_LSTM_VECTOR_LOOPS 0
#endif
#endif

/* ------------------------------------------------------------------ activations */

/* exp(x) in float: Cephes' expf (range reduction by ln 2, degree-6 polynomial), within one
 * ulp (0.94 at most on [-87, 88]; tests/test_c_runtime.py); written here so that every
 * build computes the same bits. */
static inline float expf_(float x)
{
    int32_t bits;
    float z, n, two_n;
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    n = x * 1.44269504088896341f;
    n = (float)(int32_t)(n + (n >= 0.0f ? 0.5f : -0.5f));      /* round half away from zero */
    x = x - n * 0.693359375f;
    x = x - n * -2.12194440e-4f;
    z = x * x;
    z = ((((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x
           + 4.1665795894e-2f) * x + 1.6666665459e-1f) * x + 5.0000001201e-1f) * z) + x + 1.0f;
    bits = ((int32_t)n + 127) << 23;                             /* 2^n */
    memcpy(&two_n, &bits, sizeof two_n);
    return z * two_n;
}

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf_(-x)); }

/* tanh as Cephes' tanhf: an odd polynomial near zero, where 1 - 2 / (exp(2x) + 1) would
 * cancel (the cell state's error would then build up over the steps), the exponential
 * form elsewhere. */
static inline float tanh_near_zero(float x)
{
    const float z = x * x;
    return ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
             + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
}

static inline float tanh_from_exp(float x)
{
    const float a = x < 0.0f ? -x : x, y = 1.0f - 2.0f / (expf_(2.0f * a) + 1.0f);
    return x < 0.0f ? -y : y;
}

static inline float tanhf_(float x)
{
    const float a = x < 0.0f ? -x : x;
    return a < 0.625f ? tanh_near_zero(x) : tanh_from_exp(x);
}

/* int8 builds: a fifth of the instructions of the exact pair, well inside what int8
 * weights already cost. Linear interpolation between knots h apart errs by at most
 * h^2/8 max|sigmoid''| (4.7e-5 at h = 1/16); past the table's ends the clamp errs by up to
 * sigmoid(-x_max) (3.4e-4 at 8). tanh(x) = 2 sigmoid(2x) - 1 doubles both. */
static inline float sigmoid_table(const bse_lstm_table_t *t, float x)
{
    float u;
    int i;
    if (x <= t->x_min) return t->values[0];
    if (x >= t->x_max) return t->values[t->n - 1];
    u = (x - t->x_min) * t->per_unit;
    i = (int)u;
    u = u - (float)i;
    return t->values[i] + u * (t->values[i + 1] - t->values[i]);
}

/* tanh(x) = 2 sigmoid(2x) - 1 */
static inline float tanh_table(const bse_lstm_table_t *t, float x) { return 2.0f * sigmoid_table(t, 2.0f * x) - 1.0f; }

/* ------------------------------------------------------------------ the same, a vector at a time */

#if BSE_LSTM_VECTOR_LOOPS
/* The activations above for a vector of values at once (GCC's vector extension: 8 lanes
 * where AVX2 is enabled, else 4: SSE2, NEON): each lane runs the scalar function's
 * operations in its order, both sides of a select computed and one kept, so every lane's
 * bits are the scalar function's. */
#if defined(__AVX2__)
#define LANES 8
#else
#define LANES 4
#endif
typedef float vec_f __attribute__((vector_size(4 * LANES)));
typedef int32_t vec_i __attribute__((vector_size(4 * LANES)));

static inline vec_f load_v(const float *p)
{
    vec_f r;
    memcpy(&r, p, sizeof r);
    return r;
}

static inline void store_v(float *p, vec_f v) { memcpy(p, &v, sizeof v); }

static inline vec_f splat(float x)
{
#if LANES == 8
    const vec_f r = {x, x, x, x, x, x, x, x};
#else
    const vec_f r = {x, x, x, x};
#endif
    return r;
}

/* mask ? a : b, lane by lane (mask lanes all ones or all zeros, as comparisons give) */
static inline vec_f select_v(vec_i mask, vec_f a, vec_f b)
{
    return (vec_f)(((vec_i)a & mask) | ((vec_i)b & ~mask));
}

static inline vec_f expf_v(vec_f x)
{
    vec_f z, n;
    vec_i k;
    x = select_v(x > splat(88.0f), splat(88.0f), x);
    x = select_v(x < splat(-87.0f), splat(-87.0f), x);
    n = x * 1.44269504088896341f;
    n = n + select_v(n >= splat(0.0f), splat(0.5f), splat(-0.5f));
    k = __builtin_convertvector(n, vec_i);                          /* toward zero, as (int32_t) */
    n = __builtin_convertvector(k, vec_f);
    x = x - n * 0.693359375f;
    x = x - n * -2.12194440e-4f;
    z = x * x;
    z = ((((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x
           + 4.1665795894e-2f) * x + 1.6666665459e-1f) * x + 5.0000001201e-1f) * z) + x + 1.0f;
    return z * (vec_f)((k + 127) << 23);
}

static inline vec_f sigmoidf_v(vec_f x) { return 1.0f / (1.0f + expf_v(-x)); }

static inline vec_f tanhf_v(vec_f x)
{
    const vec_i negative = x < splat(0.0f);
    const vec_f a = select_v(negative, -x, x), z = x * x;
    const vec_f p = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                      + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    const vec_f y = 1.0f - 2.0f / (expf_v(2.0f * a) + 1.0f);
    return select_v(a < splat(0.625f), p, select_v(negative, -y, y));
}
#endif

/* ------------------------------------------------------------------ matrix-vector */

/* out[j] += sum_i W[i][j] v[i] for float W in Keras' (n_in, n_out) layout. Each output's sum
 * starts from 0, runs over i = 0, 1, ... and only then is added to out[j]: the order a
 * plain dot product per output would take, in both forms. */
#if BSE_LSTM_VECTOR_LOOPS
/* SIMD: 4 LANES outputs at a time, their sums in four vector registers while the input runs
 * once, then one register's worth, then one by one. Lanes are independent outputs, so no
 * sum is reordered: each lane adds w[i][j] * v[i] for i = 0, 1, ... */
static void matvec_f32(const bse_lstm_matrix_t *m, const float *restrict v, float *restrict out)
{
    const int n_in = m->n_in, n_out = m->n_out;
    int i, j;
    for (j = 0; j + 4 * LANES <= n_out; j += 4 * LANES) {
        vec_f a0 = splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
        const float *w = m->w + j;
        for (i = 0; i < n_in; i++, w += n_out) {
            const vec_f vi = splat(v[i]);
            a0 += load_v(w) * vi;
            a1 += load_v(w + LANES) * vi;
            a2 += load_v(w + 2 * LANES) * vi;
            a3 += load_v(w + 3 * LANES) * vi;
        }
        store_v(out + j, load_v(out + j) + a0);
        store_v(out + j + LANES, load_v(out + j + LANES) + a1);
        store_v(out + j + 2 * LANES, load_v(out + j + 2 * LANES) + a2);
        store_v(out + j + 3 * LANES, load_v(out + j + 3 * LANES) + a3);
    }
    for (; j + LANES <= n_out; j += LANES) {
        vec_f a = splat(0.0f);
        const float *w = m->w + j;
        for (i = 0; i < n_in; i++, w += n_out) a += load_v(w) * splat(v[i]);
        store_v(out + j, load_v(out + j) + a);
    }
    for (; j < n_out; j++) {                    /* the last outputs, one by one */
        float acc = 0.0f;
        for (i = 0; i < n_in; i++) acc += m->w[(int32_t)i * n_out + j] * v[i];
        out[j] += acc;
    }
}
#else
/* Scalar core: eight outputs at a time, their sums in registers while the input runs once
 * (the Cortex-M4F loads the eight weights with one instruction). */
static void matvec_f32(const bse_lstm_matrix_t *m, const float *v, float *out)
{
    const int n_in = m->n_in, n_out = m->n_out;
    int i, j;
    for (j = 0; j + 8 <= n_out; j += 8) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
        const float *w = m->w + j;
        for (i = 0; i < n_in; i++, w += n_out) {
            const float vi = v[i];
            a0 += w[0] * vi;
            a1 += w[1] * vi;
            a2 += w[2] * vi;
            a3 += w[3] * vi;
            a4 += w[4] * vi;
            a5 += w[5] * vi;
            a6 += w[6] * vi;
            a7 += w[7] * vi;
        }
        out[j] += a0;
        out[j + 1] += a1;
        out[j + 2] += a2;
        out[j + 3] += a3;
        out[j + 4] += a4;
        out[j + 5] += a5;
        out[j + 6] += a6;
        out[j + 7] += a7;
    }
    for (; j < n_out; j++) {                    /* the outputs past the last whole eight */
        float acc = 0.0f;
        for (i = 0; i < n_in; i++) acc += m->w[(int32_t)i * n_out + j] * v[i];
        out[j] += acc;
    }
}
#endif

/* Quantise v (n values) to int8 with one symmetric scale, zero-padded to n_padded;
 * returns the scale (v ~ scale * q). */
static float quantise(const float *v, int n, int n_padded, int8_t *q)
{
    float peak = 0.0f, inv, r;
    int i, k;
    for (i = 0; i < n; i++) {
        float a = v[i] < 0.0f ? -v[i] : v[i];
        if (a > peak) peak = a;
    }
    for (i = n; i < n_padded; i++) q[i] = 0;
    if (peak == 0.0f) {
        for (i = 0; i < n; i++) q[i] = 0;
        return 1.0f;
    }
    inv = 127.0f / peak;
    for (i = 0; i < n; i++) {
        r = v[i] * inv;
        k = (int)(r >= 0.0f ? r + 0.5f : r - 0.5f);
        q[i] = (int8_t)(k > 127 ? 127 : (k < -127 ? -127 : k));
    }
    return peak / 127.0f;
}

/* sum_i a[i] * b[i] over n int8 values (n a multiple of 4), exactly, in int32. On a core
 * with the DSP extension (Cortex-M4/M7/M33) four products take two SXTB16 pairs and two
 * SMLAD instead of eight loads and four multiply-adds; elsewhere the plain loop, which
 * compilers vectorise (integer sums are exact in any order). */
static inline int32_t dot_q8(const int8_t *a, const int8_t *b, int n)
{
    int32_t acc = 0;
    int i;
#if defined(__ARM_FEATURE_DSP)
    for (i = 0; i < n; i += 4) {
        uint32_t wa, wb, a_even, a_odd, b_even, b_odd;
        memcpy(&wa, a + i, 4);
        memcpy(&wb, b + i, 4);
        __asm__("sxtb16 %0, %1" : "=r"(a_even) : "r"(wa));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(a_odd) : "r"(wa));
        __asm__("sxtb16 %0, %1" : "=r"(b_even) : "r"(wb));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(b_odd) : "r"(wb));
        __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(a_even), "r"(b_even));
        __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(a_odd), "r"(b_odd));
    }
#else
    for (i = 0; i < n; i++) acc += (int32_t)a[i] * (int32_t)b[i];
#endif
    return acc;
}

#if defined(__ARM_FEATURE_DSP)
/* Two rows against one vector: each word of q is split into its two pairs once for both. */
static inline void dot2_q8(const int8_t *a0, const int8_t *a1, const int8_t *q, int n, int32_t *acc0, int32_t *acc1)
{
    int32_t s0 = 0, s1 = 0;
    int i;
    for (i = 0; i < n; i += 4) {
        uint32_t wq, w0, w1, q_even, q_odd, even, odd;
        memcpy(&wq, q + i, 4);
        memcpy(&w0, a0 + i, 4);
        memcpy(&w1, a1 + i, 4);
        __asm__("sxtb16 %0, %1" : "=r"(q_even) : "r"(wq));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(q_odd) : "r"(wq));
        __asm__("sxtb16 %0, %1" : "=r"(even) : "r"(w0));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(odd) : "r"(w0));
        __asm__("smlad %0, %1, %2, %0" : "+r"(s0) : "r"(even), "r"(q_even));
        __asm__("smlad %0, %1, %2, %0" : "+r"(s0) : "r"(odd), "r"(q_odd));
        __asm__("sxtb16 %0, %1" : "=r"(even) : "r"(w1));
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(odd) : "r"(w1));
        __asm__("smlad %0, %1, %2, %0" : "+r"(s1) : "r"(even), "r"(q_even));
        __asm__("smlad %0, %1, %2, %0" : "+r"(s1) : "r"(odd), "r"(q_odd));
    }
    *acc0 = s0;
    *acc1 = s1;
}
#endif

/* out[j] += w_scale[j] * scale_v * sum_i w_q[j][i] q[i], with v quantised into q first. */
static void matvec_q8(const bse_lstm_matrix_t *m, const float *v, int8_t *q, float *out)
{
    const int cols = m->n_in_padded;
    const float scale_v = quantise(v, m->n_in, cols, q);
    int j = 0;
#if defined(__ARM_FEATURE_DSP)
    for (; j + 2 <= m->n_out; j += 2) {
        int32_t acc0, acc1;
        dot2_q8(m->w_q + (int32_t)j * cols, m->w_q + (int32_t)(j + 1) * cols, q, cols, &acc0, &acc1);
        out[j] += m->w_scale[j] * scale_v * (float)acc0;
        out[j + 1] += m->w_scale[j + 1] * scale_v * (float)acc1;
    }
#endif
    for (; j < m->n_out; j++)
        out[j] += m->w_scale[j] * scale_v * (float)dot_q8(m->w_q + (int32_t)j * cols, q, cols);
}

/* Each matrix says how it is stored: float weights if it has them, else int8. */
static void matvec(const bse_lstm_buffers_t *b, const bse_lstm_matrix_t *w, const float *v, float *out)
{
    if (w->w)
        matvec_f32(w, v, out);
    else
        matvec_q8(w, v, b->q, out);
}

/* ------------------------------------------------------------------ LSTM */

/* The float gates of one layer from their pre-activations z (4u: i, f, c, o), and the
 * state update c = f c + i g, h = o tanh(c); a vector of units at a time on a CPU with
 * SIMD, the rest one by one. */
static void gates_f32(int u, float *restrict z, float *restrict h, float *restrict c)
{
    int j = 0;
#if BSE_LSTM_VECTOR_LOOPS
    for (; j + LANES <= u; j += LANES) {
        const vec_f ig = sigmoidf_v(load_v(z + j)), fg = sigmoidf_v(load_v(z + u + j));
        const vec_f gg = tanhf_v(load_v(z + 2 * u + j)), og = sigmoidf_v(load_v(z + 3 * u + j));
        const vec_f cj = fg * load_v(c + j) + ig * gg;
        store_v(c + j, cj);
        store_v(h + j, og * tanhf_v(cj));
    }
#endif
    for (; j < u; j++) {
        const float ig = sigmoidf_(z[j]), fg = sigmoidf_(z[u + j]);
        const float gg = tanhf_(z[2 * u + j]), og = sigmoidf_(z[3 * u + j]);
        c[j] = fg * c[j] + ig * gg;
        h[j] = og * tanhf_(c[j]);
    }
}

/* One time step of one layer: input x (n_in), state h, c (n_units), in place. */
static void lstm_step(const bse_lstm_model_t *m, const bse_lstm_buffers_t *b, const bse_lstm_layer_t *layer,
                      const float *x, float *h, float *c)
{
    const int u = layer->n_units;
    float *z = b->z;
    int j;
    for (j = 0; j < 4 * u; j++) z[j] = layer->bias[j];
    matvec(b, &layer->wx, x, z);
    matvec(b, &layer->wh, h, z);
    if (m->dtype == BSE_LSTM_INT8) {
        const bse_lstm_table_t *t = &m->sigmoid;
        for (j = 0; j < u; j++) {
            float ig = sigmoid_table(t, z[j]);
            float fg = sigmoid_table(t, z[u + j]);
            float gg = tanh_table(t, z[2 * u + j]);
            float og = sigmoid_table(t, z[3 * u + j]);
            c[j] = fg * c[j] + ig * gg;
            h[j] = og * tanh_table(t, c[j]);
        }
    } else {
        gates_f32(u, z, h, c);
    }
}

void bse_lstm_reset(const bse_lstm_model_t *m, const bse_lstm_buffers_t *b)
{
    int i;
    for (i = 0; i < m->n_state; i++) {
        b->h[i] = 0.0f;
        b->c[i] = 0.0f;
    }
}

void bse_lstm_push(const bse_lstm_model_t *m, const bse_lstm_buffers_t *b, const float *x, int n_steps)
{
    int t, k;
    for (t = 0; t < n_steps; t++) {
        const float *in = x + (int32_t)t * m->n_channels;
        int32_t offset = 0;
        for (k = 0; k < m->n_layers; k++) {           /* layer k reads layer k-1's new h */
            lstm_step(m, b, &m->layers[k], in, b->h + offset, b->c + offset);
            in = b->h + offset;
            offset += m->layers[k].n_units;
        }
    }
}

int bse_lstm_decision(const bse_lstm_model_t *m, const bse_lstm_buffers_t *b, const float *side, float *probs)
{
    const int u = m->layers[m->n_layers - 1].n_units, d = m->hidden.w.n_out, k = m->n_classes;
    const float *h_last = b->h + (m->n_state - u);
    float *hidden = b->z, peak, total;
    int j, best = 0;
    for (j = 0; j < u; j++) b->v[j] = h_last[j];
    for (j = 0; j < m->n_side; j++) b->v[u + j] = side[j];
    for (j = 0; j < d; j++) hidden[j] = m->hidden.bias[j];
    matvec(b, &m->hidden.w, b->v, hidden);
    for (j = 0; j < d; j++)
        if (hidden[j] < 0.0f) hidden[j] = 0.0f;
    for (j = 0; j < k; j++) probs[j] = m->output.bias[j];
    matvec(b, &m->output.w, hidden, probs);
    peak = probs[0];
    for (j = 1; j < k; j++)
        if (probs[j] > peak) {
            peak = probs[j];
            best = j;
        }
    total = 0.0f;
    for (j = 0; j < k; j++) {
        probs[j] = expf_(probs[j] - peak);
        total += probs[j];
    }
    for (j = 0; j < k; j++) probs[j] = probs[j] / total;
    return best;
}

/* ------------------------------------------------------------------ filter */

void bse_lstm_filter_init(const bse_lstm_filter_t *f, float (*zi)[2], int32_t *phase, float *norm, float x0)
{
    int k;
    for (k = 0; k < f->n_sections; k++) {
        zi[k][0] = f->zi[k][0] * x0;
        zi[k][1] = f->zi[k][1] * x0;
    }
    *phase = 0;
    norm[0] = 0.0f;          /* running mean square, before its bias correction */
    norm[1] = 1.0f;          /* (1 - alpha)^n: underflows to 0 after some thousand samples */
}

int bse_lstm_filter_push(const bse_lstm_filter_t *f, float (*zi)[2], int32_t *phase, float *norm,
                         const float *x, int n, float *y)
{
    int i, k, n_out = 0;
    for (i = 0; i < n; i++) {
        float v = x[i];
        for (k = 0; k < f->n_sections; k++) {
            const float *s = f->sos[k];
            float out = s[0] * v + zi[k][0];
            zi[k][0] = s[1] * v - s[4] * out + zi[k][1];
            zi[k][1] = s[2] * v - s[5] * out;
            v = out;
        }
        if (*phase == 0) {
            v *= f->gain;
            if (f->norm_alpha > 0.0f) {
                /* sqrt is correctly rounded in IEEE 754 (one instruction on every target, with
                 * -fno-math-errno), so the bits stay the same everywhere */
                norm[1] *= 1.0f - f->norm_alpha;
                norm[0] += f->norm_alpha * (v * v - norm[0]);
                v /= __builtin_sqrtf(norm[0] / (1.0f - norm[1]) + f->norm_floor);
            }
            y[n_out++] = v;
        }
        *phase = (*phase + 1) % f->decimate;
    }
    return n_out;
}

/* ------------------------------------------------------------------ building blocks, for tests */

/* The per-element functions above are static so that the compiler inlines them into the
 * loops (a call per gate costs as much as the gate); these are the same functions. */
float bse_lstm_expf(float x) { return expf_(x); }
float bse_lstm_sigmoidf(float x) { return sigmoidf_(x); }
float bse_lstm_tanhf(float x) { return tanhf_(x); }
float bse_lstm_sigmoid_table(const bse_lstm_table_t *t, float x) { return sigmoid_table(t, x); }
float bse_lstm_tanh_table(const bse_lstm_table_t *t, float x) { return tanh_table(t, x); }
float bse_lstm_quantise(const float *v, int n, int n_padded, int8_t *q) { return quantise(v, n, n_padded, q); }
int32_t bse_lstm_dot_q8(const int8_t *a, const int8_t *b, int n) { return dot_q8(a, b, n); }

/* ------------------------------------------------------------------ checks */

static int matrix_ok(const bse_lstm_model_t *m, const bse_lstm_matrix_t *w, int32_t n_in, int32_t n_out)
{
    if (w->n_in != n_in || w->n_out != n_out) return BSE_LSTM_ERR_SHAPE;
    if (w->w) return BSE_LSTM_OK;                                 /* float weights */
    if (m->dtype == BSE_LSTM_FLOAT32 || !w->w_q || !w->w_scale) return BSE_LSTM_ERR_DTYPE;
    if (w->n_in_padded < n_in || w->n_in_padded % 4) return BSE_LSTM_ERR_SHAPE;
    if (w->n_in_padded > m->n_quantised) return BSE_LSTM_ERR_BUFFER;
    return BSE_LSTM_OK;
}

bse_lstm_status_t bse_lstm_check(const bse_lstm_model_t *m)
{
    int32_t k, n_state = 0, n_in, status;
    const bse_lstm_layer_t *last;
    if (m->dtype != BSE_LSTM_FLOAT32 && m->dtype != BSE_LSTM_INT8) return BSE_LSTM_ERR_DTYPE;
    if (m->n_layers < 1 || m->n_layers > BSE_LSTM_MAX_LAYERS) return BSE_LSTM_ERR_LAYERS;
    if (m->n_channels < 1 || m->n_side < 0 || m->n_classes < 1) return BSE_LSTM_ERR_SHAPE;
    n_in = m->n_channels;
    for (k = 0; k < m->n_layers; k++) {
        const bse_lstm_layer_t *layer = &m->layers[k];
        if (layer->n_in != n_in || layer->n_units < 1 || !layer->bias) return BSE_LSTM_ERR_SHAPE;
        if ((status = matrix_ok(m, &layer->wx, n_in, 4 * layer->n_units))) return (bse_lstm_status_t)status;
        if ((status = matrix_ok(m, &layer->wh, layer->n_units, 4 * layer->n_units))) return (bse_lstm_status_t)status;
        if (4 * layer->n_units > m->n_scratch) return BSE_LSTM_ERR_BUFFER;
        n_state += layer->n_units;
        n_in = layer->n_units;
    }
    last = &m->layers[m->n_layers - 1];
    if ((status = matrix_ok(m, &m->hidden.w, last->n_units + m->n_side, m->hidden.w.n_out)))
        return (bse_lstm_status_t)status;
    if ((status = matrix_ok(m, &m->output.w, m->hidden.w.n_out, m->n_classes))) return (bse_lstm_status_t)status;
    if (!m->hidden.bias || !m->output.bias || m->hidden.w.n_out < 1) return BSE_LSTM_ERR_SHAPE;
    if (n_state > m->n_state || m->hidden.w.n_out > m->n_scratch || m->n_classes > m->n_scratch
        || last->n_units + m->n_side > m->n_features)
        return BSE_LSTM_ERR_BUFFER;
    if (m->dtype == BSE_LSTM_INT8 && (!m->sigmoid.values || m->sigmoid.n < 2 || !(m->sigmoid.x_max > m->sigmoid.x_min)))
        return BSE_LSTM_ERR_TABLE;
    return BSE_LSTM_OK;
}

bse_lstm_status_t bse_lstm_filter_check(const bse_lstm_filter_t *f)
{
    if (f->decimate < 1 || f->n_sections < 0) return BSE_LSTM_ERR_FILTER;
    if (f->n_sections > 0 && (!f->sos || !f->zi)) return BSE_LSTM_ERR_FILTER;
    if (!(f->norm_alpha >= 0.0f && f->norm_alpha < 1.0f) || !(f->norm_floor >= 0.0f)) return BSE_LSTM_ERR_FILTER;
    return BSE_LSTM_OK;
}

const char *bse_lstm_status_text(bse_lstm_status_t status)
{
    switch (status) {
    case BSE_LSTM_OK: return "ok";
    case BSE_LSTM_ERR_DTYPE: return "unknown dtype, or a matrix without weights of the model's dtype";
    case BSE_LSTM_ERR_LAYERS: return "no LSTM layer, or more than BSE_LSTM_MAX_LAYERS";
    case BSE_LSTM_ERR_SHAPE: return "a matrix does not take its input's size or give its output's";
    case BSE_LSTM_ERR_BUFFER: return "a buffer of the state struct is too small for a layer";
    case BSE_LSTM_ERR_TABLE: return "int8 model without a usable sigmoid table";
    case BSE_LSTM_ERR_FILTER: return "filter: decimation < 1, sections without coefficients, or a normalisation outside [0, 1)";
    }
    return "unknown status";
}
