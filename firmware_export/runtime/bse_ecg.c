/* bse_ecg: the whole ECG chain of ECGSession in C (see bse_ecg.h). Each function names the
 * Python it follows (pipeline/runtime/session.py). */
#include "bse_ecg.h"

#include <string.h>

#define QRS_ROOM 48 /* beats one sample can complete: the end of the learning period's backlog */

int32_t bse_ecg_state_bytes(void) { return (int32_t)sizeof(bse_ecg_state_t); }
int32_t bse_ecg_event_bytes(void) { return (int32_t)sizeof(bse_ecg_event_t); }

static int finite_f(float x) { return x - x == 0.0f; } /* NaN and inf give NaN */

static bse_lstm_buffers_t buffers(bse_ecg_state_t *s)
{
    bse_lstm_buffers_t b;
    b.h = s->h;
    b.c = s->c;
    b.z = s->z;
    b.v = s->v;
    b.q = s->q;
    return b;
}

/* StreamSession._restart_all / ECGSession._restart: every state afresh from input sample at. */
static void restart(bse_ecg_state_t *s, int32_t at)
{
    const bse_ecg_config_t *c = s->cfg;
    s->segment_start = at;
    s->seg_in = 0;
    s->n_out = 0;
    s->n_pending = 0;
    s->dropped_last = 0;
    s->fresh = 1;
    (void)bse_qrs_init(&s->qrs, c->qrs); /* checked in bse_ecg_init */
    (void)bse_rr_init(&s->rr, c->qrs->fs_hz, c->rr_local_beats, c->rr_average_s);
    (void)bse_beat_init(&s->beat, c->beat);
}

bse_ecg_status_t bse_ecg_init(bse_ecg_state_t *s, const bse_ecg_config_t *c)
{
    const bse_lstm_model_t *m = c->model;
    const bse_beat_config_t *b = c->beat;
    int32_t n_steps = b->n_before_samples + b->n_after_samples;
    if (bse_lstm_check(m) != BSE_LSTM_OK || bse_lstm_filter_check(c->filter) != BSE_LSTM_OK)
        return BSE_ECG_ERR_MODEL;
    if (m->n_channels != bse_beat_n_out_channels(b) || m->n_side != b->n_side || !(c->fs_in_hz > 0.0f) ||
        c->qrs->fs_hz * (float)c->filter->decimate != c->fs_in_hz || c->flat_samples < 2 || c->spike_samples < 1 ||
        c->sqi_lag_samples < b->n_after_samples || !(c->valid_low <= c->valid_high))
        return BSE_ECG_ERR_CONFIG;
    if (m->n_classes > BSE_ECG_MAX_CLASSES || m->n_state > BSE_ECG_MAX_STATE || m->n_scratch > BSE_ECG_MAX_SCRATCH ||
        m->n_features > BSE_ECG_MAX_FEATURES || m->n_quantised > BSE_ECG_MAX_QUANTISED ||
        c->filter->n_sections > BSE_ECG_MAX_SECTIONS || b->n_channels > BSE_BEAT_MAX_CHANNELS ||
        n_steps + c->sqi_lag_samples + 1 > BSE_BEAT_RING_CAP)
        return BSE_ECG_ERR_CAPACITY;
    memset(s, 0, sizeof *s);
    s->cfg = c;
    if (bse_qrs_init(&s->qrs, c->qrs) != BSE_QRS_OK)
        return BSE_ECG_ERR_QRS;
    if (bse_rr_init(&s->rr, c->qrs->fs_hz, c->rr_local_beats, c->rr_average_s) != BSE_RR_OK)
        return BSE_ECG_ERR_RR;
    if (bse_beat_init(&s->beat, b) != BSE_BEAT_OK)
        return BSE_ECG_ERR_BEAT;
    s->gap_start = -1;
    s->spike_stop = -1;
    s->saturated_stop = -1;
    restart(s, 0);
    return BSE_ECG_OK;
}

static bse_ecg_event_t *new_event(bse_ecg_state_t *s, bse_ecg_event_t *events, int32_t max_events, int32_t *n,
                                  int32_t kind, int32_t sample)
{
    bse_ecg_event_t *e;
    if (*n >= max_events) {
        s->n_dropped_events++;
        return 0;
    }
    e = &events[(*n)++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->sample = sample;
    e->class_index = -1;
    return e;
}

/* The 2-bit input flags of model-rate sample k (a ring by sample index). */
static uint32_t flags_at(const bse_ecg_state_t *s, int32_t k)
{
    uint32_t slot = (uint32_t)k % BSE_BEAT_RING_CAP;
    return (uint32_t)(s->flags[slot / 4] >> (2 * (slot % 4))) & 3u;
}

static void set_flags(bse_ecg_state_t *s, int32_t k, uint32_t flags, int replace)
{
    uint32_t slot = (uint32_t)k % BSE_BEAT_RING_CAP, shift = 2 * (slot % 4);
    uint32_t byte = s->flags[slot / 4];
    if (replace)
        byte &= ~(3u << shift);
    s->flags[slot / 4] = (uint8_t)(byte | ((flags & 3u) << shift));
}

/* _flags_over: the input flags of model-rate samples [lo, hi) (their input samples). */
static uint32_t flags_over(const bse_ecg_state_t *s, int32_t lo, int32_t hi)
{
    uint32_t f = 0;
    int32_t k;
    for (k = lo; k < hi; k++)
        f |= flags_at(s, k);
    return f;
}

/* ECGSession._classify without the noise indices: the model on the front beat's window. */
static void classify(bse_ecg_state_t *s, const bse_ecg_pending_t *p, uint32_t flags, bse_ecg_event_t *events,
                     int32_t max_events, int32_t *n_events)
{
    const bse_ecg_config_t *c = s->cfg;
    const bse_beat_config_t *b = c->beat;
    const bse_lstm_model_t *m = c->model;
    const bse_lstm_buffers_t buf = buffers(s);
    int32_t n_steps = b->n_before_samples + b->n_after_samples, k, j, n_ch = m->n_channels, best;
    bse_ecg_event_t *e;
    float probs[BSE_ECG_MAX_CLASSES];
    /* every window feeds the template, decided or not (the first beat of a segment) */
    if (b->normalise == BSE_BEAT_TEMPLATE) {
        bse_beat_begin(&s->beat, s->park);
        if (p->has_features)
            bse_lstm_reset(m, &buf);
        for (k = 0; k < n_steps; k += BSE_ECG_ROWS) {
            int32_t rows = n_steps - k < BSE_ECG_ROWS ? n_steps - k : BSE_ECG_ROWS;
            for (j = 0; j < rows; j++)
                bse_beat_row(&s->beat, s->park, k + j, s->rows + j * n_ch);
            if (p->has_features)
                bse_lstm_push(m, &buf, s->rows, rows);
        }
    } else if (p->has_features) {
        if (b->normalise == BSE_BEAT_ZSCORE)
            bse_beat_normalise(&s->beat, s->park, s->park); /* in place: per channel, read before written */
        bse_lstm_reset(m, &buf);
        bse_lstm_push(m, &buf, s->park, n_steps);
    }
    if (!p->has_features)
        return;
    bse_beat_side(b, p->features, s->side);
    best = bse_lstm_decision(m, &buf, s->side, probs);
    e = new_event(s, events, max_events, n_events, BSE_ECG_BEAT,
                  s->segment_start + p->r * c->filter->decimate);
    if (!e)
        return;
    e->class_index = best;
    e->flags = flags | BSE_ECG_FLAG_NOISE_UNASSESSED;
    for (k = 0; k < m->n_classes; k++)
        e->probs[k] = probs[k];
}

/* ECGSession._decide_ready: windows that closed; beats whose window, next beat and quality
 * lag are known, in order (flushing: the lag is not waited for). */
static void decide_ready(bse_ecg_state_t *s, int flushing, bse_ecg_event_t *events, int32_t max_events,
                         int32_t *n_events)
{
    const bse_ecg_config_t *c = s->cfg;
    const bse_beat_config_t *b = c->beat;
    int32_t i;
    for (i = 0; i < s->n_pending; i++) {
        bse_ecg_pending_t *p = &s->pending[i];
        if (p->window == BSE_BEAT_OPEN && p->r + b->n_after_samples <= s->n_out) {
            int32_t start = p->r - b->n_before_samples;
            p->window = start < 0 || s->n_out - start > BSE_BEAT_RING_CAP ? BSE_BEAT_OFF : BSE_BEAT_READY;
        }
    }
    while (s->n_pending > 0) {
        bse_ecg_pending_t *p = &s->pending[0];
        uint32_t flags;
        if (p->window == BSE_BEAT_OPEN || (!p->has_features && s->n_pending == 1) ||
            (!flushing && p->r + c->sqi_lag_samples > s->n_out))
            break;
        if (p->window == BSE_BEAT_READY) {
            if (p->parked) {
                flags = s->park_flags;
            } else {
                (void)bse_beat_window(&s->beat, p->r, s->park);
                flags = flags_over(s, p->r - b->n_before_samples, p->r + b->n_after_samples);
            }
            classify(s, p, flags, events, max_events, n_events);
        }
        s->n_pending--;
        memmove(&s->pending[0], &s->pending[1], (size_t)s->n_pending * sizeof s->pending[0]);
    }
}

/* The front beat's window is about to leave the ring (its next beat is late): keep it. */
static void park_if_needed(bse_ecg_state_t *s)
{
    const bse_beat_config_t *b = s->cfg->beat;
    bse_ecg_pending_t *p = &s->pending[0];
    if (s->n_pending == 0 || p->window != BSE_BEAT_READY || p->parked)
        return;
    if (s->n_out + 1 - (p->r - b->n_before_samples) > BSE_BEAT_RING_CAP) {
        (void)bse_beat_window(&s->beat, p->r, s->park);
        s->park_flags = flags_over(s, p->r - b->n_before_samples, p->r + b->n_after_samples);
        p->parked = 1;
    }
}

/* ECGSession._process for one model-rate sample y (n_channels). */
static void model_sample(bse_ecg_state_t *s, const float *y, bse_ecg_event_t *events, int32_t max_events,
                         int32_t *n_events)
{
    int32_t beats[QRS_ROOM], n_beats, k;
    park_if_needed(s);
    bse_beat_push(&s->beat, y, 1);
    n_beats = bse_qrs_push(&s->qrs, y, 1, beats, QRS_ROOM);
    s->n_out++;
    for (k = 0; k < n_beats; k++) {
        float features[BSE_RR_N_FEATURES];
        bse_ecg_pending_t *p;
        int32_t got = bse_rr_push(&s->rr, beats[k], features);
        if (s->n_out - 1 - beats[k] > s->max_report_lag)
            s->max_report_lag = s->n_out - 1 - beats[k];
        if (s->n_pending > 0 && got == 1 && !s->dropped_last) { /* the previous beat's post-RR is known */
            memcpy(s->pending[s->n_pending - 1].features, features, sizeof features);
            s->pending[s->n_pending - 1].has_features = 1;
        }
        /* Full (more beats within the quality lag than the capacity: a rhythm over 300 bpm,
         * which the detector's refractory period does not report): the beat is not decided,
         * and its features (from the next beat) go to no other beat. */
        s->dropped_last = s->n_pending == BSE_ECG_PENDING_CAP;
        if (s->dropped_last) {
            s->n_dropped_events++;
            continue;
        }
        p = &s->pending[s->n_pending++];
        memset(p, 0, sizeof *p);
        p->r = beats[k];
        p->window = BSE_BEAT_OPEN;
    }
    decide_ready(s, 0, events, max_events, n_events);
}

/* One good input sample x into the segment (StreamSession._feed). */
static void feed(bse_ecg_state_t *s, const float *x, uint32_t flags, bse_ecg_event_t *events, int32_t max_events,
                 int32_t *n_events)
{
    const bse_ecg_config_t *c = s->cfg;
    int32_t ch, n_ch = c->beat->n_channels, d = c->filter->decimate, emitted = 0;
    float y[BSE_BEAT_MAX_CHANNELS];
    if (s->fresh) {
        for (ch = 0; ch < n_ch; ch++)
            bse_lstm_filter_init(c->filter, s->zi[ch], &s->phase[ch], s->norm[ch], x[ch]);
        s->fresh = 0;
    }
    for (ch = 0; ch < n_ch; ch++)
        emitted = bse_lstm_filter_push(c->filter, s->zi[ch], &s->phase[ch], s->norm[ch], &x[ch], 1, &y[ch]);
    set_flags(s, s->seg_in / d, flags, s->seg_in % d == 0);
    s->seg_in++;
    if (emitted)
        model_sample(s, y, events, max_events, n_events);
}

int32_t bse_ecg_push(bse_ecg_state_t *s, const float *samples, int32_t n_samples, bse_ecg_event_t *events,
                     int32_t max_events)
{
    const bse_ecg_config_t *c = s->cfg;
    int32_t i, ch, n_ch = c->beat->n_channels, n_events = 0;
    int32_t quiet = (int32_t)(2.0f * c->fs_in_hz);
    for (i = 0; i < n_samples; i++) {
        const float *raw = samples + i * n_ch;
        float x[BSE_BEAT_MAX_CHANNELS];
        uint32_t nonfinite = 0, flat = 0, outside = 0, flags = 0;
        int32_t at = s->n_in, finite, oor, gap_oor = 0, held = 0, clipped = 0, good;
        bse_ecg_event_t *e;
        /* _flat_mask: equal-sample pairs in a row, per channel, on the samples as pushed */
        for (ch = 0; ch < n_ch; ch++) {
            float v = raw[ch];
            x[ch] = v;
            if (!finite_f(v))
                nonfinite |= 1u << ch;
            s->run[ch] = s->has_last && v == s->last_sample[ch] ? s->run[ch] + 1 : 0;
            s->last_sample[ch] = v;
            if (s->run[ch] >= c->flat_samples - 1)
                flat |= 1u << ch;
            if (v < c->valid_low || v > c->valid_high)
                outside |= 1u << ch;
        }
        s->has_last = 1;
        finite = nonfinite == 0;
        /* _spikes: out of range for at most spike_samples is held at the last good value */
        oor = finite && outside != 0;
        if (oor) {
            s->oor_run++;
            gap_oor = s->oor_run > c->spike_samples;
            held = !gap_oor;
            if (held)
                for (ch = 0; ch < n_ch; ch++)
                    x[ch] = s->has_good ? s->last_good[ch] : 0.0f;
        } else {
            s->oor_run = 0;
            if (finite) {
                memcpy(s->last_good, x, (size_t)n_ch * sizeof(float));
                s->has_good = 1;
            }
        }
        /* _saturation_marks: at the converter's full scale (on the held samples) */
        if (c->has_full_scale && finite)
            for (ch = 0; ch < n_ch; ch++) {
                float lo = c->full_scale_low[ch], hi = c->full_scale_high[ch];
                float tol = 1e-6f * ((lo < 0.0f ? -lo : lo) > (hi < 0.0f ? -hi : hi) ? (lo < 0.0f ? -lo : lo)
                                                                                       : (hi < 0.0f ? -hi : hi));
                if (x[ch] <= lo + tol || x[ch] >= hi - tol)
                    clipped = 1;
            }
        good = finite && !flat && !gap_oor;
        if (good && s->gap_start >= 0) {
            e = new_event(s, events, max_events, &n_events, BSE_ECG_RECOVERED, at);
            if (e)
                e->gap_samples = at - s->gap_start;
            restart(s, at);
            s->gap_start = -1;
        }
        if (held) {
            if (s->spike_stop != at && good)
                (void)new_event(s, events, max_events, &n_events, BSE_ECG_SPIKE, at);
            s->spike_stop = at + 1;
            flags |= BSE_ECG_FLAG_SPIKE;
        }
        if (clipped) {
            if ((s->saturated_stop < 0 || at - s->saturated_stop > quiet) && good)
                (void)new_event(s, events, max_events, &n_events, BSE_ECG_SATURATED, at);
            s->saturated_stop = at + 1;
            flags |= BSE_ECG_FLAG_SATURATED;
        }
        if (good) {
            feed(s, x, flags, events, max_events, &n_events);
        } else if (s->gap_start < 0) {
            int32_t kind = !finite ? BSE_ECG_NONFINITE : flat ? BSE_ECG_FLAT : BSE_ECG_OUT_OF_RANGE;
            s->gap_start = at;
            e = new_event(s, events, max_events, &n_events, kind, at);
            if (e)
                e->flags = !finite ? nonfinite : flat ? flat : outside;
        }
        s->n_in++;
    }
    return n_events;
}

int32_t bse_ecg_flush(bse_ecg_state_t *s, bse_ecg_event_t *events, int32_t max_events)
{
    int32_t n_events = 0;
    if (s->gap_start < 0)
        decide_ready(s, 1, events, max_events, &n_events);
    return n_events;
}
