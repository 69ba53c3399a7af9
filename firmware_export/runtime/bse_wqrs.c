/* bse_wqrs: LengthTransformQRS of pipeline/runtime/quality.py in float32 C (see bse_wqrs.h). */
#include "bse_wqrs.h"

#include <string.h>

#define AT(ring, cap, index) ((ring)[(uint32_t)(index) % (uint32_t)(cap)])
#define LT(i) AT(s->lt, BSE_WQRS_HIST_CAP, i)
#define SIG(i) AT(s->sig, BSE_WQRS_HIST_CAP, i)

int32_t bse_wqrs_state_bytes(void) { return (int32_t)sizeof(bse_wqrs_state_t); }

static float abs_f(float x) { return x < 0.0f ? -x : x; }

bse_wqrs_status_t bse_wqrs_init(bse_wqrs_state_t *s, const bse_wqrs_config_t *c)
{
    if (c->window_samples < 2 || c->eye_samples < 2 || c->learn_samples < 1 || c->expect_samples < 0 ||
        !(c->fs_hz > 0.0f))
        return BSE_WQRS_ERR_CONFIG;
    if (c->window_samples > BSE_WQRS_WINDOW_CAP || 2 * (c->eye_samples / 2) > 4 * BSE_WQRS_HALF_CAP ||
        c->learn_samples + 2 * c->eye_samples + 4 > BSE_WQRS_HIST_CAP)
        return BSE_WQRS_ERR_CAPACITY;
    memset(s, 0, sizeof *s);
    s->cfg = c;
    s->last_beat = -1;
    return BSE_WQRS_OK;
}

/* decay^n by squaring (n >= 0). */
static float power(float x, int32_t n)
{
    float r = 1.0f;
    while (n > 0) {
        if (n & 1)
            r *= x;
        x *= x;
        n >>= 1;
    }
    return r;
}

/* _threshold: Ta / 3, Ta decaying once no beat was seen for expect_samples. */
static float threshold(const bse_wqrs_state_t *s, int32_t idx)
{
    int32_t since = idx - (s->last_beat >= 0 ? s->last_beat : s->ta_at);
    int32_t overdue = since - s->cfg->expect_samples;
    return s->ta * power(s->cfg->decay_per_sample, overdue > 0 ? overdue : 0) / 3.0f;
}

/* _scan: judge every crossing that has half an eye closing of signal after it. */
static int32_t scan(bse_wqrs_state_t *s, int32_t *out, int32_t room)
{
    const bse_wqrs_config_t *c = s->cfg;
    int32_t half = c->eye_samples / 2, n_out = 0;
    for (;;) {
        int32_t hi = s->n_seen - half, t, i, a, b;
        float maxd, mind, slope = 0.0f;
        if (hi <= s->next)
            return n_out;
        for (t = s->next; t < hi && !(LT(t) > threshold(s, t)); t++) {
        }
        if (t == hi) {
            s->next = hi;
            return n_out;
        }
        maxd = LT(t);
        for (i = t + 1; i <= t + half; i++)
            maxd = LT(i) > maxd ? LT(i) : maxd;
        mind = LT(t);
        for (i = t - half > 0 ? t - half : 0; i < t; i++)
            mind = LT(i) < mind ? LT(i) : mind;
        a = t - half > 1 ? t - half : 1;
        b = t + half < s->n_seen ? t + half : s->n_seen;
        for (i = a; i < b; i++) {
            float d = abs_f(SIG(i) - SIG(i - 1));
            slope = d > slope ? d : slope;
        }
        {
            int t_wave = s->last_beat >= 0 && t - s->last_beat < c->t_wave_samples && slope < 0.5f * s->last_slope;
            if (maxd > 1.5f * mind && !t_wave) {
                /* the largest |x - median| of sig[a, b), the first one (numpy.argmax) */
                float sorted[4 * BSE_WQRS_HALF_CAP], m, best = -1.0f;
                int32_t n = b - a, j, beat = a;
                for (i = 0; i < n; i++) { /* insertion sort: at most an eye closing of values */
                    float v = SIG(a + i);
                    for (j = i; j > 0 && sorted[j - 1] > v; j--)
                        sorted[j] = sorted[j - 1];
                    sorted[j] = v;
                }
                m = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0f;
                for (i = a; i < b; i++) {
                    float d = abs_f(SIG(i) - m);
                    if (d > best) {
                        best = d;
                        beat = i;
                    }
                }
                if (n_out < room)
                    out[n_out++] = beat;
                else
                    s->n_dropped_beats++;
                s->ta = threshold(s, t) * 3.0f;
                s->ta += (maxd - s->ta) / 10.0f;
                s->last_beat = t;
                s->last_slope = slope;
                s->next = t + c->eye_samples;
            } else if (t_wave) {
                s->next = t + c->eye_samples;
            } else {
                s->next = t + 1;
            }
        }
    }
}

int32_t bse_wqrs_push(bse_wqrs_state_t *s, const float *samples, int32_t n_samples, int32_t *out_beats,
                      int32_t max_beats)
{
    const bse_wqrs_config_t *c = s->cfg;
    const float d = 0.005f;
    int32_t i, k, n_out = 0;
    for (i = 0; i < n_samples; i++) {
        int32_t t = s->n_seen;
        float x = samples[i], y, dy, total = 0.0f;
        if (t == 0) {
            s->zi[0] = c->zi[0] * x;
            s->zi[1] = c->zi[1] * x;
        }
        y = c->sos[0] * x + s->zi[0];
        s->zi[0] = c->sos[1] * x - c->sos[4] * y + s->zi[1];
        s->zi[1] = c->sos[2] * x - c->sos[5] * y;
        dy = t == 0 ? 0.0f : y - s->prev;
        s->prev = y;
        AT(s->seg, BSE_WQRS_WINDOW_CAP, t) = dy * dy / (__builtin_sqrtf(d * d + dy * dy) + d);
        for (k = 0; k < c->window_samples && k <= t; k++)
            total += AT(s->seg, BSE_WQRS_WINDOW_CAP, t - k);
        LT(t) = total;
        SIG(t) = y;
        s->n_seen = t + 1;
        if (!s->learnt) {
            float sum = 0.0f;
            if (s->n_seen < c->learn_samples)
                continue;
            for (k = 0; k < c->learn_samples; k++)
                sum += LT(k);
            s->ta = 3.0f * (sum / (float)c->learn_samples) + 1e-9f;
            s->ta_at = c->learn_samples;
            s->learnt = 1;
        }
        n_out += scan(s, out_beats + n_out, max_beats - n_out);
    }
    return n_out;
}
