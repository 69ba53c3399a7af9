/* Host test driver for a generated model: binary in on stdin, binary out on stdout.
 *
 *   classify: int32 0, int32 n_windows, int32 n_steps, then per window n_steps * N_CHANNELS
 *             floats and N_SIDE floats  ->  per window N_CLASSES floats (probabilities)
 *   filter:   int32 1, int32 n_samples, then n_samples floats (one channel, input rate)
 *             ->  int32 n_out, then n_out floats (filtered, decimated, scaled)
 *
 * Built with the model and the runtime, and the names of model_api.h. Buffers are static.
 * Exit codes: 2 short input, 3 too many steps, 4 unknown mode, 5 the model's check failed. */
#include <stdint.h>
#include <stdio.h>
#include "model_api.h"

#define MAX_STEPS 4096
#define MAX_SAMPLES (1 << 20)

static model_state_t state;
static float window[MAX_STEPS * MODEL_N_CHANNELS];
static float side[MODEL_N_SIDE + 1];
static float x_in[MAX_SAMPLES], y_out[MAX_SAMPLES];

static int read_exact(void *dst, size_t size, size_t count)
{
    return fread(dst, size, count, stdin) == count;
}

int main(void)
{
    int32_t mode, n, n_steps, i;
    float probs[MODEL_N_CLASSES];
    if (model_check() != 0) return 5;
    if (!read_exact(&mode, sizeof mode, 1)) return 2;
    if (mode == 0) {
        if (!read_exact(&n, sizeof n, 1) || !read_exact(&n_steps, sizeof n_steps, 1)) return 2;
        if (n_steps <= 0 || n_steps > MAX_STEPS) return 3;
        for (i = 0; i < n; i++) {
            if (!read_exact(window, sizeof(float), (size_t)n_steps * MODEL_N_CHANNELS)) return 2;
            if (MODEL_N_SIDE && !read_exact(side, sizeof(float), MODEL_N_SIDE)) return 2;
            model_init(&state);
            model_push(&state, window, n_steps);
            model_decision(&state, side, probs);
            fwrite(probs, sizeof(float), MODEL_N_CLASSES, stdout);
        }
        return 0;
    }
    if (mode == 1) {
        model_filter_t filter;
        int32_t n_out;
        if (!read_exact(&n, sizeof n, 1) || n <= 0 || n > MAX_SAMPLES) return 2;
        if (!read_exact(x_in, sizeof(float), (size_t)n)) return 2;
        model_filter_init(&filter, x_in[0]);
        n_out = model_filter_push(&filter, x_in, n, y_out);
        fwrite(&n_out, sizeof n_out, 1, stdout);
        fwrite(y_out, sizeof(float), (size_t)n_out, stdout);
        return 0;
    }
    return 4;
}
