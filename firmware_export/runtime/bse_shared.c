/* Entry points of the shared library a CPU (x86-64, aarch64) loads with ctypes: the same
 * generated model and runtime as the firmware, plus calls that take a numpy array's memory
 * directly. Compiled with the model's .c and bse_lstm.c and the names of model_api.h
 * (firmware_export/build.py::build_shared_library). No state between calls: each call
 * keeps its LSTM state on its own stack, so two sessions may share the library. */
#include <stdint.h>
#include <string.h>

#include "model_api.h"

/* Layout of what info() writes; the version changes with the layout. */
#define INFO_VERSION 1
enum {
    INFO_VERSION_AT, INFO_DTYPE, INFO_N_CHANNELS, INFO_N_STEPS, INFO_N_SIDE, INFO_N_CLASSES,
    INFO_N_LAYERS, INFO_N_DENSE, INFO_N_STATE, INFO_FILTER_SECTIONS, INFO_DECIMATE,
    INFO_STATE_BYTES, INFO_FILTER_BYTES, INFO_UNITS   /* then one value per layer */
};

static const float zeros[MODEL_N_SIDE + 1];

/* The sizes the compiled code has (the loader holds them against the manifest), in the order
 * of the enum above: writes at most capacity values to out, returns how many there are. */
int32_t MODEL_FN(info)(int32_t *out, int32_t capacity)
{
    int32_t values[INFO_UNITS + BSE_LSTM_MAX_LAYERS], n = INFO_UNITS + model_model.n_layers, k;
    values[INFO_VERSION_AT] = INFO_VERSION;
    values[INFO_DTYPE] = (int32_t)model_model.dtype;
    values[INFO_N_CHANNELS] = model_model.n_channels;
    values[INFO_N_STEPS] = MODEL_N_STEPS;
    values[INFO_N_SIDE] = model_model.n_side;
    values[INFO_N_CLASSES] = model_model.n_classes;
    values[INFO_N_LAYERS] = model_model.n_layers;
    values[INFO_N_DENSE] = model_model.hidden.w.n_out;
    values[INFO_N_STATE] = model_model.n_state;
    values[INFO_FILTER_SECTIONS] = MODEL_FILTER_SECTIONS;
    values[INFO_DECIMATE] = MODEL_DECIMATE;
    values[INFO_STATE_BYTES] = (int32_t)sizeof(model_state_t);
    values[INFO_FILTER_BYTES] = (int32_t)sizeof(model_filter_t);
    for (k = 0; k < model_model.n_layers && k < BSE_LSTM_MAX_LAYERS; k++)
        values[INFO_UNITS + k] = model_model.layers[k].n_units;
    for (k = 0; k < n && k < capacity; k++) out[k] = values[k];
    return n;
}

/* Whole windows: signal (n_windows, n_steps, N_CHANNELS), side (n_windows, N_SIDE) or NULL
 * (zeros) -> probs (n_windows, N_CLASSES), each window from zero state. */
int32_t MODEL_FN(predict)(const float *signal, const float *side, int32_t n_windows, int32_t n_steps,
                          float *probs)
{
    model_state_t s;
    int32_t i;
    for (i = 0; i < n_windows; i++) {
        model_init(&s);
        model_push(&s, signal + (size_t)i * (size_t)n_steps * MODEL_N_CHANNELS, n_steps);
        model_decision(&s, side ? side + (size_t)i * MODEL_N_SIDE : zeros, probs + (size_t)i * MODEL_N_CLASSES);
    }
    return 0;
}

/* One chunk from a given state: h, c (N_STATE each, layer after layer) are read and
 * overwritten with the state after chunk (n_steps, N_CHANNELS); probs (N_CLASSES) are the
 * head's on that state with side (N_SIDE, or NULL: zeros). n_steps = 0 runs the head alone. */
int32_t MODEL_FN(step)(float *h, float *c, const float *chunk, int32_t n_steps, const float *side, float *probs)
{
    model_state_t s;
    memcpy(s.h, h, sizeof s.h);
    memcpy(s.c, c, sizeof s.c);
    model_push(&s, chunk, n_steps);
    model_decision(&s, side ? side : zeros, probs);
    memcpy(h, s.h, sizeof s.h);
    memcpy(c, s.c, sizeof s.c);
    return 0;
}
