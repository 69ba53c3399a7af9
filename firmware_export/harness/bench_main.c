/* Microbenchmark: how fast this machine runs the generated model's arithmetic, with no
 * Python, no copies and no calls across a library boundary: the compute bound every
 * backend is compared with (python -m pipeline.tools.stream_benchmark).
 *
 * stdin: int32 n_windows, int32 n_steps, then per window n_steps * N_CHANNELS floats and
 * N_SIDE floats (real held-out windows). argv[1]: repetitions (default 200).
 * stdout, one JSON line: the minimum over repetitions of the mean time of
 *   "step_ns"    one time step (bse_push of one sample, every layer), over all windows' steps,
 *   "window_ns"  one decision: bse_init + bse_push(n_steps) + bse_decision,
 * and the median of the window times, so a loaded machine shows in the spread.
 * Built with the shared library's flags (build.py::build_benchmark). */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model_api.h"

#define MAX_WINDOWS 256
#define MAX_STEPS 4096

static model_state_t state;
static float windows[MAX_WINDOWS][MAX_STEPS * MODEL_N_CHANNELS];
static float sides[MAX_WINDOWS][MODEL_N_SIDE + 1];
static double window_ns[10000];

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int32_t n, n_steps, i, r, t, reps = argc > 1 ? atoi(argv[1]) : 200;
    float probs[MODEL_N_CLASSES];
    double best_step = 1e30, best_window = 1e30, sink = 0.0;
    if (model_check() != 0) return 5;
    if (fread(&n, sizeof n, 1, stdin) != 1 || fread(&n_steps, sizeof n_steps, 1, stdin) != 1) return 2;
    if (n < 1 || n > MAX_WINDOWS || n_steps < 1 || n_steps > MAX_STEPS || reps < 1 || reps > 10000) return 3;
    for (i = 0; i < n; i++) {
        if (fread(windows[i], sizeof(float), (size_t)n_steps * MODEL_N_CHANNELS, stdin)
            != (size_t)n_steps * MODEL_N_CHANNELS) return 2;
        if (MODEL_N_SIDE && fread(sides[i], sizeof(float), MODEL_N_SIDE, stdin) != MODEL_N_SIDE) return 2;
    }
    for (r = 0; r < reps; r++) {
        double t0 = now_ns(), t1;
        for (i = 0; i < n; i++) {
            model_init(&state);
            for (t = 0; t < n_steps; t++) model_push(&state, windows[i] + t * MODEL_N_CHANNELS, 1);
        }
        t1 = now_ns();
        if ((t1 - t0) / ((double)n * n_steps) < best_step) best_step = (t1 - t0) / ((double)n * n_steps);
        t0 = now_ns();
        for (i = 0; i < n; i++) {
            model_init(&state);
            model_push(&state, windows[i], n_steps);
            sink += model_decision(&state, sides[i], probs);
        }
        t1 = now_ns();
        window_ns[r] = (t1 - t0) / n;
        if (window_ns[r] < best_window) best_window = window_ns[r];
    }
    qsort(window_ns, (size_t)reps, sizeof window_ns[0], compare);
    printf("{\"step_ns\": %.1f, \"window_ns\": %.1f, \"window_ns_median\": %.1f, \"windows\": %d, "
           "\"n_steps\": %d, \"reps\": %d, \"checksum\": %.0f}\n",
           best_step, best_window, window_ns[reps / 2], (int)n, (int)n_steps, (int)reps, sink);
    return 0;
}
