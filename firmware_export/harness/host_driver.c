/* Host test driver for generated model code: binary in on stdin, binary out on stdout.
 *
 *   classify: int32 0, int32 n_windows, int32 n_steps, then per window n_steps * N_CHANNELS
 *             floats and N_SIDE floats  ->  per window N_CLASSES floats (probabilities)
 *   filter:   int32 1, int32 n_samples, then n_samples floats (one channel, input rate)
 *             ->  int32 n_out, then n_out floats (filtered, decimated, scaled)
 *
 * Built with -DMODEL_HEADER='"bse_float32.h"' (or bse_int8.h). Buffers are static. */
#include <stdint.h>
#include <stdio.h>
#include MODEL_HEADER

#define MAX_STEPS 4096
#define MAX_SAMPLES (1 << 20)

static bse_state_t state;
static float window[MAX_STEPS * BSE_N_CHANNELS];
static float side[BSE_N_SIDE + 1];
static float x_in[MAX_SAMPLES], y_out[MAX_SAMPLES];

static int read_exact(void *dst, size_t size, size_t count)
{
    return fread(dst, size, count, stdin) == count;
}

int main(void)
{
    int32_t mode, n, n_steps, i;
    float probs[BSE_N_CLASSES];
    if (!read_exact(&mode, sizeof mode, 1)) return 2;
    if (mode == 0) {
        if (!read_exact(&n, sizeof n, 1) || !read_exact(&n_steps, sizeof n_steps, 1)) return 2;
        if (n_steps <= 0 || n_steps > MAX_STEPS) return 3;
        for (i = 0; i < n; i++) {
            if (!read_exact(window, sizeof(float), (size_t)n_steps * BSE_N_CHANNELS)) return 2;
            if (BSE_N_SIDE && !read_exact(side, sizeof(float), BSE_N_SIDE)) return 2;
            bse_init(&state);
            bse_push(&state, window, n_steps);
            bse_decision(&state, side, probs);
            fwrite(probs, sizeof(float), BSE_N_CLASSES, stdout);
        }
        return 0;
    }
#if BSE_FILTER_SECTIONS > 0
    if (mode == 1) {
        bse_filter_t filter;
        int32_t n_out;
        if (!read_exact(&n, sizeof n, 1) || n <= 0 || n > MAX_SAMPLES) return 2;
        if (!read_exact(x_in, sizeof(float), (size_t)n)) return 2;
        bse_filter_init(&filter, x_in[0]);
        n_out = bse_filter_push(&filter, x_in, n, y_out);
        fwrite(&n_out, sizeof n_out, 1, stdout);
        fwrite(y_out, sizeof(float), (size_t)n_out, stdout);
        return 0;
    }
#endif
    return 4;
}
