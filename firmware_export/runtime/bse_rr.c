/* bse_rr: RR-interval features of pipeline/window/rr.py in C (see bse_rr.h). */
#include "bse_rr.h"

#include <string.h>

int32_t bse_rr_state_bytes(void) { return (int32_t)sizeof(bse_rr_state_t); }

bse_rr_status_t bse_rr_init(bse_rr_state_t *s, float fs_hz, int32_t local_beats, float average_s)
{
    if (!(fs_hz > 0.0f) || !(average_s > 0.0f) || local_beats < 1)
        return BSE_RR_ERR_CONFIG;
    if (local_beats > BSE_RR_LOCAL_CAP || average_s > (float)BSE_RR_MAX_AVERAGE_S)
        return BSE_RR_ERR_CAPACITY;
    memset(s, 0, sizeof *s);
    s->fs_hz = fs_hz;
    s->local_beats = local_beats;
    s->average_samples = (int32_t)(average_s * fs_hz); /* positive: truncation is floor */
    return BSE_RR_OK;
}

static int32_t front_rr(const bse_rr_state_t *s)
{
    uint16_t v = s->window[s->head];
    return v ? (int32_t)v : s->long_rr;
}

/* The front interval leaves the average; the next one (if any) ends its rr later. */
static void pop_front(bse_rr_state_t *s)
{
    s->window_sum -= front_rr(s);
    s->head = (s->head + 1) % BSE_RR_WINDOW_CAP;
    s->n_window--;
    if (s->n_window > 0)
        s->front_end += s->window[s->head];
}

int32_t bse_rr_push(bse_rr_state_t *s, int32_t beat_sample, float features[BSE_RR_N_FEATURES])
{
    int32_t written = 0;
    if (s->n_beats > 0 && beat_sample <= s->last)
        return -1;
    if (s->n_beats >= 2) {
        float pre = (float)(s->last - s->prev) / s->fs_hz;
        float post = (float)(beat_sample - s->last) / s->fs_hz;
        float local = (float)s->local_sum / ((float)s->n_local * s->fs_hz);
        float avg = (float)s->window_sum / ((float)s->n_window * s->fs_hz);
        features[0] = pre;
        features[1] = post;
        features[2] = local;
        features[3] = avg;
        features[4] = pre / avg;
        features[5] = post / avg;
        features[6] = local / avg;
        written = 1;
    }
    if (s->n_beats > 0) {
        int32_t rr = beat_sample - s->last, slot;
        if (s->n_local == s->local_beats)
            s->local_sum -= s->local[s->local_next];
        else
            s->n_local++;
        s->local[s->local_next] = rr;
        s->local_sum += rr;
        s->local_next = (s->local_next + 1) % s->local_beats;
        if (s->n_window == BSE_RR_WINDOW_CAP) {
            pop_front(s);
            s->n_overflow++;
        }
        if (rr > 0xffff) { /* alone in the average: see bse_rr.h */
            s->n_window = 0;
            s->window_sum = 0;
            s->long_rr = rr;
        }
        if (s->n_window == 0)
            s->front_end = beat_sample;
        slot = (s->head + s->n_window) % BSE_RR_WINDOW_CAP;
        s->window[slot] = (uint16_t)(rr > 0xffff ? 0 : rr);
        s->n_window++;
        s->window_sum += rr;
        while (beat_sample - s->front_end > s->average_samples)
            pop_front(s);
    }
    s->prev = s->last;
    s->last = beat_sample;
    if (s->n_beats < 2)
        s->n_beats++;
    return written;
}
