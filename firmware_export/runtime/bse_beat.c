/* bse_beat: beat windows, their normalisation and the side features in C (see bse_beat.h).
 * Each function names the Python it follows. */
#include "bse_beat.h"

#include <string.h>

int32_t bse_beat_state_bytes(void) { return (int32_t)sizeof(bse_beat_state_t); }

int32_t bse_beat_n_out_channels(const bse_beat_config_t *c)
{
    return c->normalise == BSE_BEAT_TEMPLATE ? 2 * c->n_channels : c->n_channels;
}

bse_beat_status_t bse_beat_init(bse_beat_state_t *s, const bse_beat_config_t *c)
{
    int32_t j, n_steps = c->n_before_samples + c->n_after_samples;
    if (c->n_channels < 1 || c->n_before_samples < 0 || c->n_after_samples < 1 || c->n_side < 0 ||
        (c->normalise != BSE_BEAT_NONE && c->normalise != BSE_BEAT_ZSCORE && c->normalise != BSE_BEAT_TEMPLATE))
        return BSE_BEAT_ERR_CONFIG;
    if (c->n_channels > BSE_BEAT_MAX_CHANNELS || n_steps > BSE_BEAT_MAX_STEPS || n_steps > BSE_BEAT_RING_CAP ||
        c->n_side > BSE_BEAT_MAX_SIDE)
        return BSE_BEAT_ERR_CAPACITY;
    for (j = 0; j < c->n_side; j++)
        if (c->side_index[j] < 0 || c->side_index[j] >= BSE_BEAT_N_RR)
            return BSE_BEAT_ERR_CONFIG;
    memset(s, 0, sizeof *s);
    s->cfg = c;
    return BSE_BEAT_OK;
}

void bse_beat_push(bse_beat_state_t *s, const float *y, int32_t n_samples)
{
    int32_t i, ch, n_ch = s->cfg->n_channels;
    for (i = 0; i < n_samples; i++) {
        float *slot = s->ring[(uint32_t)s->n_seen % BSE_BEAT_RING_CAP];
        for (ch = 0; ch < n_ch; ch++)
            slot[ch] = y[i * n_ch + ch];
        s->n_seen++;
    }
}

/* ECGSession._decide_ready: a window closes when r + n_after samples exist; it is off the
 * segment if it starts before its first sample or the ring no longer holds its start. */
int32_t bse_beat_window(const bse_beat_state_t *s, int32_t r, float *window)
{
    const bse_beat_config_t *c = s->cfg;
    int32_t start = r - c->n_before_samples, n_steps = c->n_before_samples + c->n_after_samples, k, ch;
    if (r + c->n_after_samples > s->n_seen)
        return BSE_BEAT_OPEN;
    if (start < 0 || s->n_seen - start > BSE_BEAT_RING_CAP)
        return BSE_BEAT_OFF;
    for (k = 0; k < n_steps; k++)
        for (ch = 0; ch < c->n_channels; ch++)
            window[k * c->n_channels + ch] = s->ring[(uint32_t)(start + k) % BSE_BEAT_RING_CAP][ch];
    return BSE_BEAT_READY;
}

/* BeatTemplate.push, first half: the template's peak-to-peak amplitude per channel, floored
 * (the first window is its own template). */
void bse_beat_begin(bse_beat_state_t *s, const float *w)
{
    const bse_beat_config_t *c = s->cfg;
    int32_t n_steps = c->n_before_samples + c->n_after_samples, k, ch, n_ch = c->n_channels;
    if (!s->has_template) {
        for (k = 0; k < n_steps; k++)
            for (ch = 0; ch < n_ch; ch++)
                s->tmpl[k][ch] = w[k * n_ch + ch];
        s->has_template = 1;
    }
    for (ch = 0; ch < n_ch; ch++) {
        float lo = s->tmpl[0][ch], hi = lo, scale;
        for (k = 1; k < n_steps; k++) {
            float v = s->tmpl[k][ch];
            hi = v > hi ? v : hi;
            lo = v < lo ? v : lo;
        }
        scale = hi - lo;
        s->scale[ch] = scale > c->template_min_scale ? scale : c->template_min_scale;
    }
}

/* BeatTemplate.push, row k: [w / scale, (w - t) / scale], then t += alpha (w - t). */
void bse_beat_row(bse_beat_state_t *s, const float *w, int32_t k, float *out)
{
    const bse_beat_config_t *c = s->cfg;
    int32_t ch, n_ch = c->n_channels;
    for (ch = 0; ch < n_ch; ch++) {
        float v = w[k * n_ch + ch], t = s->tmpl[k][ch], d = v - t;
        out[ch] = v / s->scale[ch];
        out[n_ch + ch] = d / s->scale[ch];
        s->tmpl[k][ch] = t + c->template_alpha * d;
    }
}

/* normalise_windows for one window in beat order. */
void bse_beat_normalise(bse_beat_state_t *s, const float *w, float *out)
{
    const bse_beat_config_t *c = s->cfg;
    int32_t n_steps = c->n_before_samples + c->n_after_samples, n_ch = c->n_channels, k, ch;
    if (c->normalise == BSE_BEAT_TEMPLATE) {
        bse_beat_begin(s, w);
        for (k = 0; k < n_steps; k++)
            bse_beat_row(s, w, k, out + k * 2 * n_ch);
        return;
    }
    if (c->normalise == BSE_BEAT_NONE) {
        memcpy(out, w, (size_t)n_steps * (size_t)n_ch * sizeof(float));
        return;
    }
    for (ch = 0; ch < n_ch; ch++) { /* zscore: (x - mean) / (std + 0.01) over the steps */
        float sum = 0.0f, mean, ss = 0.0f, std, x;
        for (k = 0; k < n_steps; k++)
            sum += w[k * n_ch + ch];
        mean = sum / (float)n_steps;
        for (k = 0; k < n_steps; k++) {
            float d = w[k * n_ch + ch] - mean;
            ss += d * d;
        }
        x = ss / (float)n_steps;
        /* correctly rounded everywhere (one instruction with -fno-math-errno, as bse_lstm) */
        std = __builtin_sqrtf(x);
        for (k = 0; k < n_steps; k++)
            out[k * n_ch + ch] = (w[k * n_ch + ch] - mean) / (std + 0.01f);
    }
}

/* Standardiser.__call__ on the manifest's side features. */
void bse_beat_side(const bse_beat_config_t *c, const float *rr, float *side)
{
    int32_t j;
    for (j = 0; j < c->n_side; j++) {
        float z = (rr[c->side_index[j]] - c->side_mean[j]) / c->side_std[j];
        side[j] = z > c->side_clip ? c->side_clip : z < -c->side_clip ? -c->side_clip : z;
    }
}
