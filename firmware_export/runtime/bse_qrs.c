/* bse_qrs: the streaming QRS detector of pipeline/runtime/qrs.py in float32 C (see bse_qrs.h).
 * Each function names the Python method it follows. */
#include "bse_qrs.h"

#include <string.h>

#define AT(ring, cap, index) ((ring)[(uint32_t)(index) % (uint32_t)(cap)])

int32_t bse_qrs_state_bytes(void) { return (int32_t)sizeof(bse_qrs_state_t); }

static int32_t max_i(int32_t a, int32_t b) { return a > b ? a : b; }
static int32_t min_i(int32_t a, int32_t b) { return a < b ? a : b; }
static float min_f(float a, float b) { return a < b ? a : b; }
static float abs_f(float x) { return x < 0.0f ? -x : x; }

/* A float's order as an unsigned key (negative numbers reversed), and back. */
static uint32_t key_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
static float float_of(uint32_t key)
{
    uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static int32_t count_at_most(const float *ring, int32_t cap, int32_t lo, int32_t n, uint32_t key)
{
    int32_t i, count = 0;
    for (i = 0; i < n; i++)
        count += key_of(AT(ring, cap, lo + i)) <= key;
    return count;
}

/* The middle values of ring[lo .. lo + n), n >= 1, without a copy: *p the k-th smallest
 * (k = (n - 1) / 2), found by bisection on the floats' order (32 passes), *q the next one
 * (equal to *p if n is odd). numpy.median is (*p + *q) / 2. */
static void middle(const float *ring, int32_t cap, int32_t lo, int32_t n, float *p, float *q)
{
    int32_t k = (n - 1) / 2, i;
    uint32_t a = 0, b = 0xffffffffu, next = 0xffffffffu;
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        if (count_at_most(ring, cap, lo, n, mid) > k)
            b = mid;
        else
            a = mid + 1;
    }
    *p = *q = float_of(a);
    if (n % 2 || count_at_most(ring, cap, lo, n, a) > k + 1)
        return; /* odd, or the two middle values are equal */
    for (i = 0; i < n; i++) {
        uint32_t key = key_of(AT(ring, cap, lo + i));
        if (key > a && key < next)
            next = key;
    }
    *q = float_of(next);
}

/* s + e == a + b exactly (Knuth's TwoSum; round to nearest, no contraction). */
static void two_sum(float a, float b, float *s, float *e)
{
    float x = a + b, bv = x - a, av = x - bv;
    *e = (a - av) + (b - bv);
    *s = x;
}

/* The sign of a + b + c + d in exact arithmetic: Shewchuk's expansion (grow-expansion by
 * TwoSum), whose largest nonzero component outweighs the rest. */
static int sign_of_sum(float a, float b, float c, float d)
{
    float h[4], add[2] = {c, d}, q, t;
    int32_t m = 2, i, j;
    two_sum(a, b, &h[1], &h[0]);
    for (j = 0; j < 2; j++, m++) {
        q = add[j];
        for (i = 0; i < m; i++) {
            two_sum(q, h[i], &q, &t);
            h[i] = t;
        }
        h[m] = q;
    }
    for (i = 3; i >= 0; i--)
        if (h[i] != 0.0f)
            return h[i] > 0.0f ? 1 : -1;
    return 0;
}

static float threshold(const bse_qrs_state_t *s)
{
    return s->npki + s->cfg->threshold_share * (s->spki - s->npki);
}

/* _slope: the largest |derivative| over [index - window, index]. */
static float slope_at(const bse_qrs_state_t *s, int32_t index)
{
    int32_t i, lo = max_i(index - s->cfg->window_samples, 0);
    float best = AT(s->slope, BSE_QRS_HIST_CAP, lo);
    for (i = lo + 1; i <= index; i++)
        if (AT(s->slope, BSE_QRS_HIST_CAP, i) > best)
            best = AT(s->slope, BSE_QRS_HIST_CAP, i);
    return best;
}

/* _r_peak: the largest |sample - median| near the steepest slope of [index - search_r,
 * index], the median over that whole span; the first such sample, as numpy.argmax. The
 * largest |x - m| is at the largest or the smallest sample of the range, and which one is
 * decided exactly (float64 decides exactly for float32 samples; float32 subtraction would
 * not: ADC steps make real ties, such as -0.03 and -1.75 mV about -0.89 in record 117). */
static int32_t r_peak(const bse_qrs_state_t *s, int32_t index)
{
    const bse_qrs_config_t *c = s->cfg;
    int32_t lo = max_i(index - c->search_r_samples, 0), n = index + 1 - lo, i, steepest = 0, a, b, hi_i, lo_i, sign;
    float p, q, steepest_v = AT(s->slope, BSE_QRS_HIST_CAP, lo), hi_v, lo_v;
    middle(s->sig, BSE_QRS_HIST_CAP, lo, n, &p, &q);
    for (i = 1; i < n; i++) {
        float v = AT(s->slope, BSE_QRS_HIST_CAP, lo + i);
        if (v > steepest_v) {
            steepest_v = v;
            steepest = i;
        }
    }
    a = max_i(steepest - c->r_before_samples, 0);
    b = min_i(steepest + c->r_after_samples + 1, n);
    if (b <= a) {
        a = 0;
        b = n;
    }
    hi_i = lo_i = a;
    hi_v = lo_v = AT(s->sig, BSE_QRS_HIST_CAP, lo + a);
    for (i = a + 1; i < b; i++) {
        float v = AT(s->sig, BSE_QRS_HIST_CAP, lo + i);
        if (v > hi_v) {
            hi_v = v;
            hi_i = i;
        }
        if (v < lo_v) {
            lo_v = v;
            lo_i = i;
        }
    }
    /* (hi - m) - (m - lo) = hi + lo - p - q */
    sign = sign_of_sum(hi_v, lo_v, -p, -q);
    return lo + (sign > 0 ? hi_i : sign < 0 ? lo_i : min_i(hi_i, lo_i));
}

/* _accept: take a peak as a QRS; write its R unless within the refractory period of the
 * last one reported. Returns the number of beats written (0 or 1). */
static int32_t accept(bse_qrs_state_t *s, int32_t index, float value, float slope, float weight, int32_t r,
                      int32_t *out, int32_t room)
{
    const bse_qrs_config_t *c = s->cfg;
    if (s->last_qrs >= 0) {
        s->rr[s->rr_next] = index - s->last_qrs;
        s->rr_next = (s->rr_next + 1) % BSE_QRS_RR_CAP;
        s->n_rr = min_i(s->n_rr + 1, BSE_QRS_RR_CAP);
    }
    s->spki = weight * min_f(value, c->cap * s->spki) + (1.0f - weight) * s->spki;
    s->last_qrs = index;
    s->last_slope = slope;
    s->has_noise = 0;
    if (s->last_r >= 0 && r - s->last_r < c->refractory_samples)
        return 0;
    s->last_r = r;
    if (room <= 0) {
        s->n_dropped_beats++;
        return 0;
    }
    *out = r;
    return 1;
}

/* _relearn_if_lost: no QRS for relearn_samples: learn both levels again from the last
 * learn_samples of integrated signal, if QRS-like peaks went on beneath the threshold. */
static void relearn_if_lost(bse_qrs_state_t *s, int32_t index)
{
    const bse_qrs_config_t *c = s->cfg;
    int32_t since = max_i(s->last_qrs >= 0 ? s->last_qrs : 0, s->learnt_at), lo, n, i;
    float peak, sum = 0.0f, p, q;
    if (index - since <= c->relearn_samples)
        return;
    lo = max_i(index - c->learn_samples, 0);
    n = index + 1 - lo;
    s->learnt_at = index;
    peak = AT(s->mwi, BSE_QRS_HIST_CAP, lo);
    for (i = lo; i <= index; i++) {
        float v = AT(s->mwi, BSE_QRS_HIST_CAP, i);
        if (v > peak)
            peak = v;
        sum += v;
    }
    middle(s->mwi, BSE_QRS_HIST_CAP, lo, n, &p, &q);
    if (peak > 8.0f * ((p + q) / 2.0f) && peak / 3.0f < 0.5f * s->spki) {
        s->spki = peak / 3.0f;
        s->npki = sum / (float)n / 2.0f;
        s->has_noise = 0;
        s->n_rr = 0;
        s->rr_next = 0;
    }
}

/* _judge: one integrated-signal peak, QRS or noise. Returns the beats written. */
static int32_t judge(bse_qrs_state_t *s, int32_t index, float value, int32_t *out, int32_t room)
{
    const bse_qrs_config_t *c = s->cfg;
    int32_t n_out = 0, i;
    float slope;
    relearn_if_lost(s, index);
    if (s->last_qrs >= 0 && s->n_rr >= 2 && s->has_noise) {
        int32_t sum = 0;
        for (i = 0; i < s->n_rr; i++)
            sum += s->rr[i];
        if ((float)(index - s->last_qrs) > c->search_back_rr * ((float)sum / (float)s->n_rr) &&
            s->noise_value > c->search_back_share * threshold(s) &&
            s->noise_index - s->last_qrs >= c->refractory_samples)
            n_out += accept(s, s->noise_index, s->noise_value, s->noise_slope, 0.25f, s->noise_r, out, room);
    }
    if (s->last_qrs >= 0 && index - s->last_qrs < c->refractory_samples)
        return n_out;
    slope = slope_at(s, index);
    if (value > threshold(s)) {
        int t_wave = s->last_qrs >= 0 && index - s->last_qrs < c->t_wave_samples && slope < 0.5f * s->last_slope;
        if (!t_wave)
            return n_out + accept(s, index, value, slope, 0.125f, r_peak(s, index), out + n_out, room - n_out);
    }
    s->npki = 0.125f * min_f(value, c->cap * s->spki) + 0.875f * s->npki;
    if (!s->has_noise || value > s->noise_value) { /* the first of equal largest, as max() */
        s->has_noise = 1;
        s->noise_index = index;
        s->noise_value = value;
        s->noise_slope = slope;
        s->noise_r = r_peak(s, index);
    }
    return n_out;
}

/* _scan for one index: judge it if it is a peak of the integrated signal and the maximum of
 * its lookahead span (index + lookahead is the newest sample). */
static int32_t scan(bse_qrs_state_t *s, int32_t index, int32_t *out, int32_t room)
{
    int32_t k;
    float v = AT(s->mwi, BSE_QRS_HIST_CAP, index);
    if (!(v >= AT(s->mwi, BSE_QRS_HIST_CAP, index - 1) && v > AT(s->mwi, BSE_QRS_HIST_CAP, index + 1)))
        return 0;
    for (k = 2; k <= s->cfg->lookahead_samples; k++)
        if (AT(s->mwi, BSE_QRS_HIST_CAP, index + k) > v)
            return 0;
    return judge(s, index, v, out, room);
}

bse_qrs_status_t bse_qrs_init(bse_qrs_state_t *s, const bse_qrs_config_t *c)
{
    int32_t k;
    if (c->n_rickers < 1 || c->n_rickers > BSE_QRS_N_RICKERS || c->window_samples < 1 || c->lookahead_samples < 1 ||
        c->learn_samples < 1 || c->search_r_samples < 0 || c->r_before_samples < 0 || c->r_after_samples < 0)
        return BSE_QRS_ERR_CONFIG;
    for (k = 0; k < c->n_rickers; k++) {
        if (c->ricker_len[k] < 1)
            return BSE_QRS_ERR_CONFIG;
        if (c->ricker_len[k] > BSE_QRS_RICKER_CAP)
            return BSE_QRS_ERR_CAPACITY;
    }
    if (c->window_samples > BSE_QRS_WINDOW_CAP ||
        max_i(max_i(c->learn_samples, c->search_r_samples), c->window_samples) + c->lookahead_samples + 2 >
            BSE_QRS_HIST_CAP)
        return BSE_QRS_ERR_CAPACITY;
    memset(s, 0, sizeof *s);
    s->cfg = c;
    s->last_qrs = -1;
    s->last_r = -1;
    return BSE_QRS_OK;
}

int32_t bse_qrs_push(bse_qrs_state_t *s, const float *samples, int32_t n_samples, int32_t *out_beats,
                     int32_t max_beats)
{
    const bse_qrs_config_t *c = s->cfg;
    const float *sos = c->band_sos;
    int32_t i, k, j, n_out = 0;
    for (i = 0; i < n_samples; i++) {
        int32_t t = s->n_seen;
        float x = samples[i], band, deriv, energy = 0.0f, total = 0.0f;
        if (t == 0) { /* CausalFilter: the steady state of the first sample */
            s->zi[0] = c->band_zi[0] * x;
            s->zi[1] = c->band_zi[1] * x;
        }
        band = sos[0] * x + s->zi[0];
        s->zi[0] = sos[1] * x - sos[4] * band + s->zi[1];
        s->zi[1] = sos[2] * x - sos[5] * band;
        AT(s->band, BSE_QRS_RICKER_CAP, t) = band;
        /* Five-point derivative (2x[n] + x[n-1] - x[n-3] - 2x[n-4]) / 8; zeros before the start
         * (the ring's unwritten slots). */
#define BAND(back) AT(s->band, BSE_QRS_RICKER_CAP, t + BSE_QRS_RICKER_CAP - (back))
        deriv = (2.0f * BAND(0) + BAND(1) - BAND(3) - 2.0f * BAND(4)) / 8.0f;
        for (k = 0; k < c->n_rickers; k++) { /* causal matched filters ending at sample t */
            float matched = 0.0f;
            for (j = 0; j < c->ricker_len[k]; j++)
                matched += c->ricker[k][j] * BAND(j);
            energy += matched * matched;
        }
#undef BAND
        AT(s->energy, BSE_QRS_WINDOW_CAP, t) = energy;
        for (k = 0; k < c->window_samples; k++) /* zeros before the start, as MovingSum */
            total += AT(s->energy, BSE_QRS_WINDOW_CAP, t + BSE_QRS_WINDOW_CAP - k);
        AT(s->sig, BSE_QRS_HIST_CAP, t) = x;
        AT(s->slope, BSE_QRS_HIST_CAP, t) = abs_f(deriv);
        AT(s->mwi, BSE_QRS_HIST_CAP, t) = total / (float)c->window_samples;
        s->n_seen = t + 1;
        if (!s->learnt) {
            float peak, sum = 0.0f;
            if (s->n_seen < c->learn_samples)
                continue;
            /* The levels from the first learn_samples, then every peak so far. */
            peak = AT(s->mwi, BSE_QRS_HIST_CAP, 0);
            for (k = 0; k < c->learn_samples; k++) {
                float v = AT(s->mwi, BSE_QRS_HIST_CAP, k);
                if (v > peak)
                    peak = v;
                sum += v;
            }
            s->spki = peak / 3.0f;
            s->npki = sum / (float)c->learn_samples / 2.0f;
            s->learnt = 1;
            s->learnt_at = c->learn_samples;
            for (k = 1; k < t - c->lookahead_samples; k++)
                n_out += scan(s, k, out_beats + n_out, max_beats - n_out);
        }
        if (t - c->lookahead_samples >= 1)
            n_out += scan(s, t - c->lookahead_samples, out_beats + n_out, max_beats - n_out);
    }
    return n_out;
}
