"""Generate dependency-free C99 inference for a trained classifier: LSTM layer(s), the
dense head, softmax, and the causal preprocessing filter, with a streaming API and static
buffers only (no malloc, no libm).

Two precisions:

- ``float32``: float weights and arithmetic; equals the numpy float reference to ~1e-6.
- ``int8``: int8 weights with one float scale per output row; each matrix-vector product
  quantises its input vector to int8 (one scale per vector, per step) and accumulates in
  int32, so the multiply-accumulate loops, which are nearly all the work, are integer.
  Gates, cell state and softmax stay in float: the Cortex-M4 has a single-precision FPU,
  and a fixed-point cell state would cost accuracy for little speed.

The exponential is the file's own (Cephes' ``expf`` polynomial), so a host build and a
Cortex-M build of the same source compute the same bits (``-ffp-contract=off``).

API, for a prefix ``p`` (the header documents shapes)::

    p_init(&state)                       zero LSTM state: at the start of every window
    p_push(&state, x, n_steps)           advance over n_steps samples of P_N_CHANNELS floats
    p_decision(&state, side, probs)      dense head + softmax -> probs; returns the argmax
    p_filter_init(&f, x0) / p_filter_push(&f, x, n, y)   causal filter + decimation

Keras layers it expresses: ``InputLayer``, ``LSTM`` (tanh / sigmoid, with bias, forward,
not stateful; dropout ignored at inference), ``Concatenate`` (LSTM output then side
features), ``Dense`` (relu hidden, softmax output), ``Dropout``. Anything else is refused
with the layer named: the generator never writes C that computes something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import BiosigError

PRECISIONS = ("float32", "int8")


class UnsupportedModelError(BiosigError):
    """The model holds a layer, activation or shape the C generator cannot express."""


@dataclass
class CModelSpec:
    """Everything the generated C computes.

    ``lstm``: per layer (kernel (n_in, 4U), recurrent (U, 4U), bias (4U,)), Keras gate
    order i, f, c, o. ``dense``: (kernel (U_last + n_side, D), bias (D,)), relu.
    ``head``: (kernel (D, K), bias (K,)), softmax.
    """

    lstm: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    dense: tuple[np.ndarray, np.ndarray]
    head: tuple[np.ndarray, np.ndarray]
    n_channels: int
    n_side: int
    classes: list[str]
    n_steps: int
    sos: np.ndarray | None = None                 # (n_sections, 6) at the input rate
    sos_zi: np.ndarray | None = None              # (n_sections, 2) steady state per unit step
    decimate: int = 1
    gain: float = 1.0
    notes: list[str] = field(default_factory=list)

    @property
    def units(self) -> list[int]:
        return [r.shape[0] for _, r, _ in self.lstm]


def _refuse(layer, why: str):
    raise UnsupportedModelError(f"cannot generate C for layer '{layer.name}' ({type(layer).__name__}): {why}")


def spec_from_keras(model, n_steps: int, classes: list[str]) -> CModelSpec:
    """Read a trained Keras 2 classifier into a :class:`CModelSpec`, refusing anything the
    generated C would not compute exactly as Keras does."""
    lstm, dense, order = [], [], []
    n_side = 0
    for layer in model.layers:
        kind = type(layer).__name__
        cfg = layer.get_config()
        if kind == "InputLayer":
            shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
            if layer.name == "side":
                n_side = int(shape[-1])
            elif len(shape) != 3:
                _refuse(layer, f"input of shape {shape}; expected (batch, steps, channels)")
            continue
        if kind == "LSTM":
            if cfg["activation"] != "tanh" or cfg["recurrent_activation"] != "sigmoid":
                _refuse(layer, f"activation {cfg['activation']}/{cfg['recurrent_activation']}; only tanh/sigmoid")
            if not cfg["use_bias"] or cfg.get("go_backwards") or cfg.get("stateful") or cfg.get("return_state"):
                _refuse(layer, "needs use_bias, forward direction, not stateful, no returned state")
            if lstm and not model.layers[model.layers.index(layer) - 1].get_config().get("return_sequences", True):
                _refuse(layer, "stacked on an LSTM that does not return sequences")
            if order and order[-1] != "lstm":
                _refuse(layer, "an LSTM after a non-LSTM layer")
            kernel, recurrent, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
            lstm.append((kernel, recurrent, bias))
            order.append("lstm")
        elif kind == "Concatenate":
            if order != ["lstm"] * len(order) or not lstm:
                _refuse(layer, "only the LSTM output joined with the side features is supported")
            if cfg.get("axis", -1) not in (-1, 1):
                _refuse(layer, f"concatenation on axis {cfg['axis']}")
            order.append("join")
        elif kind == "Dense":
            act = cfg["activation"]
            want = "relu" if not dense else "softmax"
            if act != want or not cfg["use_bias"]:
                _refuse(layer, f"activation '{act}' (bias {cfg['use_bias']}); the head must be "
                               "Dense(relu) then Dense(softmax), with biases")
            dense.append(tuple(np.asarray(w, np.float32) for w in layer.get_weights()))
            order.append("dense")
        elif kind == "Dropout":
            continue                                   # identity at inference
        else:
            _refuse(layer, "not a layer the generator knows")
    if not lstm or len(dense) != 2:
        raise UnsupportedModelError(f"model '{model.name}': expected LSTM layer(s), then Dense(relu) and "
                                    f"Dense(softmax); found {order}")
    if lstm[-1][1].shape[0] + n_side != dense[0][0].shape[0]:
        raise UnsupportedModelError(f"model '{model.name}': the dense layer takes {dense[0][0].shape[0]} "
                                    f"features, not LSTM units + side features")
    if dense[1][0].shape[1] != len(classes):
        raise UnsupportedModelError(f"model '{model.name}': {dense[1][0].shape[1]} outputs for {len(classes)} classes")
    return CModelSpec(lstm, dense[0], dense[1], int(lstm[0][0].shape[0]), n_side, list(classes), int(n_steps))


def spec_from_weights(weights: dict[str, np.ndarray], n_steps: int, classes: list[str]) -> CModelSpec:
    """From ``reference_float32.npz`` arrays (an export's layout; the layer checks were made
    when that file was written from the Keras model)."""
    lstm, i = [], 0
    while f"lstm_{i}_kernel" in weights:
        lstm.append(tuple(np.asarray(weights[f"lstm_{i}_{k}"], np.float32) for k in ("kernel", "recurrent", "bias")))
        i += 1
    dense = (np.asarray(weights["dense_kernel"], np.float32), np.asarray(weights["dense_bias"], np.float32))
    head = (np.asarray(weights["probs_kernel"], np.float32), np.asarray(weights["probs_bias"], np.float32))
    n_side = dense[0].shape[0] - lstm[-1][1].shape[0]
    return CModelSpec(lstm, dense, head, int(lstm[0][0].shape[0]), n_side, list(classes), int(n_steps))


def with_preprocessing(spec: CModelSpec, preprocess: dict) -> CModelSpec:
    """Add the manifest's causal filter (SOS at the input rate), decimation and gain."""
    from pipeline.preprocess.iir import sosfilt_zi

    if preprocess.get("bands_hz"):
        raise UnsupportedModelError(
            f"the preprocessing computes relative log band powers (bands_hz = {preprocess['bands_hz']}), "
            "which the generated C does not implement yet")
    if preprocess.get("running_norm_s"):
        raise UnsupportedModelError(
            f"the preprocessing divides by a running RMS (running_norm_s = {preprocess['running_norm_s']} s), "
            "which the generated C does not implement yet")

    sos = np.asarray(preprocess["sos"], np.float64)
    sos = sos / sos[:, 3:4]                          # a0 = 1, as the generated loop assumes
    spec.sos, spec.sos_zi = sos, sosfilt_zi(sos)
    spec.decimate, spec.gain = int(preprocess["decimate"]), float(preprocess["gain"])
    return spec


# ----------------------------------------------------------------------------- C text

def _floats(values) -> str:
    vals = np.asarray(values, np.float32).ravel()
    items = [f"{float(v)!r}f".replace("inf", "INFINITY") for v in vals]
    return ",\n    ".join(", ".join(items[i:i + 6]) for i in range(0, len(items), 6))


def _ints(values) -> str:
    vals = np.asarray(values).ravel()
    return ",\n    ".join(", ".join(str(int(v)) for v in vals[i:i + 16]) for i in range(0, len(vals), 16))


def quantise_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) float -> int8 (rows, cols) and one scale per row (symmetric, [-127, 127])."""
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def padded(n: int) -> int:
    """int8 rows and vectors are padded with zeros to whole 32-bit words (4 values)."""
    return -(-n // 4) * 4


def _matrix(name: str, w_rows: np.ndarray, precision: str) -> str:
    """A weight matrix stored row by row (one row per output), as const data."""
    rows, cols = w_rows.shape
    if precision == "float32":
        return f"static const float {name}[{rows} * {cols}] = {{\n    {_floats(w_rows)}\n}};\n"
    q, scale = quantise_rows(w_rows)
    q = np.pad(q, ((0, 0), (0, padded(cols) - cols)))
    return (f"/* int8, {rows} rows of {cols} weights padded to {padded(cols)}; one scale per row */\n"
            f"static const int8_t {name}[{rows} * {padded(cols)}] = {{\n    {_ints(q)}\n}};\n"
            f"static const float {name}_scale[{rows}] = {{\n    {_floats(scale)}\n}};\n")


_COMMON = r"""
/* exp(x) in float: Cephes' expf (range reduction by ln 2, degree-6 polynomial), about one
 * ulp; written here so that every build of this file computes the same bits. */
static float P_expf(float x)
{
    union { float f; int32_t i; } two_n;
    float z, n;
    if (x > 88.0f) x = 88.0f;
    if (x < -87.0f) x = -87.0f;
    n = x * 1.44269504088896341f;
    n = (float)(int32_t)(n >= 0.0f ? n + 0.5f : n - 0.5f);
    x = x - n * 0.693359375f;
    x = x - n * -2.12194440e-4f;
    z = x * x;
    z = ((((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x
           + 4.1665795894e-2f) * x + 1.6666665459e-1f) * x + 5.0000001201e-1f) * z) + x + 1.0f;
    two_n.i = ((int32_t)n + 127) << 23;
    return z * two_n.f;
}
"""

_ACT_EXACT = r"""
static float P_sigmoid(float x) { return 1.0f / (1.0f + P_expf(-x)); }

/* tanh as Cephes' tanhf: an odd polynomial near zero, where 1 - 2 / (exp(2x) + 1) would
 * cancel (the cell state's error then builds up over the steps), the exponential form
 * elsewhere. */
static float P_tanh(float x)
{
    float a = x < 0.0f ? -x : x, y;
    if (a < 0.625f) {
        float z = x * x;
        return ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                 + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    }
    y = 1.0f - 2.0f / (P_expf(2.0f * a) + 1.0f);
    return x < 0.0f ? -y : y;
}
"""

#: int8 build: sigmoid from a 257-entry table on [-8, 8] with linear interpolation (error
#: < 1e-4, and 3.4e-4 from the clamp), tanh(x) = 2 sigmoid(2x) - 1: a fifth of the
#: instructions of the exact pair, well inside what int8 weights already cost.
_ACT_TABLE = r"""
static float P_sigmoid(float x)
{
    float t;
    int i;
    if (x <= -8.0f) return P_SIGMOID_TABLE[0];
    if (x >= 8.0f) return P_SIGMOID_TABLE[256];
    t = (x + 8.0f) * 16.0f;
    i = (int)t;
    t = t - (float)i;
    return P_SIGMOID_TABLE[i] + t * (P_SIGMOID_TABLE[i + 1] - P_SIGMOID_TABLE[i]);
}
static float P_tanh(float x) { return 2.0f * P_sigmoid(2.0f * x) - 1.0f; }
"""

_Q8 = r"""
/* Quantise v (n values) to int8 with one symmetric scale, zero-padded to n_padded;
 * returns the scale. */
static float P_quantise(const float *v, int n, int n_padded, int8_t *q)
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
 * SMLAD instead of eight loads and four multiply-adds; elsewhere, the plain loop. */
static int32_t P_dot_q8(const int8_t *a, const int8_t *b, int n)
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

/* out[j] += scale_row[j] * scale_v * sum_i w[j, i] * q[i]: int8 x int8 in int32. */
static void P_matvec_q8(const int8_t *w, const float *scale_row, int rows, int cols,
                        const int8_t *q, float scale_v, float *out)
{
    int j;
    for (j = 0; j < rows; j++)
        out[j] += scale_row[j] * scale_v * (float)P_dot_q8(w + j * cols, q, cols);
}
"""

_F32 = r"""
/* out[j] += sum_i w[j, i] * v[i] */
static void P_matvec(const float *w, int rows, int cols, const float *v, float *out)
{
    int j, i;
    for (j = 0; j < rows; j++) {
        const float *row = w + j * cols;
        float acc = 0.0f;
        for (i = 0; i < cols; i++) acc += row[i] * v[i];
        out[j] += acc;
    }
}
"""


def generate(spec: CModelSpec, out_dir: str | Path, prefix: str = "bse", precision: str = "float32",
             source: str = "") -> tuple[Path, Path]:
    """Write ``<prefix>_<precision>.c`` and ``.h`` into ``out_dir``; returns their paths."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    P = prefix.upper()
    stem = f"{prefix}_{precision}"
    units = spec.units
    n_in = [spec.n_channels] + units[:-1]
    n_feat = units[-1] + spec.n_side
    d_units, k = spec.dense[0].shape[1], len(spec.classes)
    q8 = precision == "int8"
    max_gate = 4 * max(units)
    max_vec = max(max(n_in), max(units), n_feat, d_units)
    n_state = sum(units)
    n_sec = 0 if spec.sos is None else len(spec.sos)

    h = [f"/* Generated by biosig-edge (firmware_export/c_model.py){' from ' + source if source else ''}.",
         f" * {precision} LSTM classifier: {' -> '.join(f'LSTM({u})' for u in units)} -> "
         f"Dense({d_units}, relu) -> Dense({k}, softmax); classes {', '.join(spec.classes)}.",
         " * C99, no malloc, no libm: every buffer is in the state structs the caller owns. */",
         f"#ifndef {P}_{precision.upper()}_H_", f"#define {P}_{precision.upper()}_H_", "",
         "#include <stdint.h>", "",
         f"#define {P}_N_CHANNELS {spec.n_channels}   /* model input channels per sample */",
         f"#define {P}_N_STEPS {spec.n_steps}   /* samples per window in training */",
         f"#define {P}_N_SIDE {spec.n_side}   /* side features given to {prefix}_decision */",
         f"#define {P}_N_CLASSES {k}", f"#define {P}_N_STATE {n_state}   /* LSTM units, all layers */",
         f"#define {P}_FILTER_SECTIONS {n_sec}", f"#define {P}_DECIMATE {spec.decimate}", "",
         f"extern const char *const {prefix}_class_names[{P}_N_CLASSES];", "",
         "/* The LSTM state of one window plus scratch: declare it static; no heap. */",
         "typedef struct {",
         f"    float h[{P}_N_STATE];              /* hidden state, layer after layer */",
         f"    float c[{P}_N_STATE];              /* cell state */",
         f"    float z[{max_gate}];               /* gate pre-activations (scratch) */",
         f"    float v[{max_vec}];                /* layer input / head features (scratch) */"]
    if q8:
        h += [f"    int8_t q[{padded(max_vec)}];               /* quantised vector (scratch) */"]
    h += [f"}} {prefix}_state_t;", "",
          "/* Zero the LSTM state: at the start of every window. */",
          f"void {prefix}_init({prefix}_state_t *s);",
          f"/* Advance over x: n_steps samples of {P}_N_CHANNELS floats, row-major, preprocessed as",
          " * in training (filtered, decimated, normalised). Chunks of any length: pushing a window",
          " * whole or in pieces gives the same state. */",
          f"void {prefix}_push({prefix}_state_t *s, const float *x, int n_steps);",
          f"/* Class probabilities from the current state and {P}_N_SIDE side features (ignored if",
          " * 0); writes probs[N_CLASSES] and returns the index of the largest. */",
          f"int {prefix}_decision({prefix}_state_t *s, const float *side, float *probs);", ""]
    if n_sec:
        h += ["/* Causal filter (second-order sections, transposed direct form II, as", 
              " * scipy.signal.sosfilt) and decimation, per input channel. */",
              "typedef struct {",
              f"    float zi[{P}_FILTER_SECTIONS][2];",
              "    int32_t phase;                    /* input samples since the last kept one */",
              "    int32_t started;",
              f"}} {prefix}_filter_t;", "",
              "/* x0: the first input sample (the state starts at its steady state: no transient). */",
              f"void {prefix}_filter_init({prefix}_filter_t *f, float x0);",
              "/* Filter n input samples x; write the kept (decimated) outputs to y; return their number. */",
              f"int {prefix}_filter_push({prefix}_filter_t *f, const float *x, int n, float *y);", ""]
    h += [f"#endif /* {P}_{precision.upper()}_H_ */", ""]

    c = [f'/* Generated by biosig-edge (firmware_export/c_model.py); do not edit. See {stem}.h. */',
         f'#include "{stem}.h"', *(["#include <string.h>   /* memcpy: word loads of int8 */"] if q8 else []),
         "", "#define P_UNUSED(x) ((void)(x))", "",
         f"const char *const {prefix}_class_names[{P}_N_CLASSES] = {{"
         + ", ".join(f'"{name}"' for name in spec.classes) + "};", ""]
    for i, (kernel, recurrent, bias) in enumerate(spec.lstm):
        c.append(f"/* LSTM layer {i}: {n_in[i]} inputs, {units[i]} units; rows are gates i, f, c, o. */")
        c.append(_matrix(f"lstm{i}_wx", kernel.T, precision))
        c.append(_matrix(f"lstm{i}_wh", recurrent.T, precision))
        c.append(f"static const float lstm{i}_b[{4 * units[i]}] = {{\n    {_floats(bias)}\n}};\n")
    c.append(f"/* Dense head: {n_feat} features ({units[-1]} LSTM + {spec.n_side} side) -> {d_units}, relu. */")
    c.append(_matrix("dense_w", spec.dense[0].T, precision))
    c.append(f"static const float dense_b[{d_units}] = {{\n    {_floats(spec.dense[1])}\n}};\n")
    c.append(f"/* Output: {d_units} -> {k}, softmax. */")
    c.append(_matrix("probs_w", spec.head[0].T, precision))
    c.append(f"static const float probs_b[{k}] = {{\n    {_floats(spec.head[1])}\n}};\n")
    c.append(_COMMON.replace("P_", f"{P}_"))
    if q8:
        table = 1.0 / (1.0 + np.exp(-np.linspace(-8.0, 8.0, 257)))
        c.append(f"static const float P_SIGMOID_TABLE[257] = {{\n    {_floats(table)}\n}};".replace("P_", f"{P}_"))
    c.append((_ACT_TABLE if q8 else _ACT_EXACT).replace("P_", f"{P}_"))
    c.append((_Q8 if q8 else _F32).replace("P_", f"{P}_"))

    def matvec(w: str, rows: int, cols: int, vec: str, out: str) -> list[str]:
        if q8:
            return [f"    sv = {P}_quantise({vec}, {cols}, {padded(cols)}, s->q);",
                    f"    {P}_matvec_q8({w}, {w}_scale, {rows}, {padded(cols)}, s->q, sv, {out});"]
        return [f"    {P}_matvec({w}, {rows}, {cols}, {vec}, {out});"]

    c += [f"void {prefix}_init({prefix}_state_t *s)", "{", "    int i;",
          f"    for (i = 0; i < {P}_N_STATE; i++) {{ s->h[i] = 0.0f; s->c[i] = 0.0f; }}", "}", ""]
    for i, u in enumerate(units):
        off = sum(units[:i])
        c += [f"/* One time step of LSTM layer {i}: input x ({n_in[i]}), state at offset {off}. */",
              f"static void lstm{i}_step({prefix}_state_t *s, const float *x)", "{",
              "    int j;", f"    float *h = s->h + {off}, *cs = s->c + {off};"]
        if q8:
            c += ["    float sv;"]
        c += [f"    for (j = 0; j < {4 * u}; j++) s->z[j] = lstm{i}_b[j];"]
        c += matvec(f"lstm{i}_wx", 4 * u, n_in[i], "x", "s->z")
        c += matvec(f"lstm{i}_wh", 4 * u, u, "h", "s->z")
        c += [f"    for (j = 0; j < {u}; j++) {{",
              f"        float ig = {P}_sigmoid(s->z[j]);",
              f"        float fg = {P}_sigmoid(s->z[{u} + j]);",
              f"        float gg = {P}_tanh(s->z[{2 * u} + j]);",
              f"        float og = {P}_sigmoid(s->z[{3 * u} + j]);",
              "        cs[j] = fg * cs[j] + ig * gg;",
              f"        h[j] = og * {P}_tanh(cs[j]);", "    }", "}", ""]
    c += [f"void {prefix}_push({prefix}_state_t *s, const float *x, int n_steps)", "{", "    int t;",
          "    for (t = 0; t < n_steps; t++) {", f"        lstm0_step(s, x + t * {P}_N_CHANNELS);"]
    for i in range(1, len(units)):
        off = sum(units[:i - 1])
        c += [f"        {{ int j; for (j = 0; j < {units[i - 1]}; j++) s->v[j] = s->h[{off} + j]; }}",
              f"        lstm{i}_step(s, s->v);"]
    c += ["    }", "}", ""]
    last = sum(units[:-1])
    c += [f"int {prefix}_decision({prefix}_state_t *s, const float *side, float *probs)", "{",
          f"    float hidden[{d_units}], peak, total;", "    int j, best = 0;"]
    if q8:
        c += ["    float sv;"]
    c += [f"    for (j = 0; j < {units[-1]}; j++) s->v[j] = s->h[{last} + j];"]
    c += ([f"    for (j = 0; j < {spec.n_side}; j++) s->v[{units[-1]} + j] = side[j];"] if spec.n_side
          else ["    P_UNUSED(side);"])
    c += [f"    for (j = 0; j < {d_units}; j++) hidden[j] = dense_b[j];"]
    c += matvec("dense_w", d_units, n_feat, "s->v", "hidden")
    c += [f"    for (j = 0; j < {d_units}; j++) if (hidden[j] < 0.0f) hidden[j] = 0.0f;",
          f"    for (j = 0; j < {k}; j++) probs[j] = probs_b[j];"]
    c += matvec("probs_w", k, d_units, "hidden", "probs")
    c += ["    peak = probs[0];",
          f"    for (j = 1; j < {k}; j++) if (probs[j] > peak) {{ peak = probs[j]; best = j; }}",
          "    total = 0.0f;",
          f"    for (j = 0; j < {k}; j++) {{ probs[j] = {P}_expf(probs[j] - peak); total += probs[j]; }}",
          f"    for (j = 0; j < {k}; j++) probs[j] = probs[j] / total;",
          "    return best;", "}", ""]
    if n_sec:
        c += ["/* Second-order sections at the input rate (b0 b1 b2 a0 a1 a2, a0 = 1) and their",
              " * steady-state response to a unit step (scipy.signal.sosfilt_zi: each section's state scaled",
              " * by the DC gain of the sections before it). */",
              f"static const float filter_sos[{n_sec}][6] = {{"]
        c += [f"    {{{_floats(row)}}}," for row in spec.sos]
        c += ["};", f"static const float filter_zi[{n_sec}][2] = {{"]
        c += [f"    {{{_floats(row)}}}," for row in spec.sos_zi]
        c += ["};", "",
              f"void {prefix}_filter_init({prefix}_filter_t *f, float x0)", "{", "    int k;",
              f"    for (k = 0; k < {P}_FILTER_SECTIONS; k++) {{",
              "        f->zi[k][0] = filter_zi[k][0] * x0;", "        f->zi[k][1] = filter_zi[k][1] * x0;",
              "    }", "    f->phase = 0;", "    f->started = 1;", "}", "",
              f"int {prefix}_filter_push({prefix}_filter_t *f, const float *x, int n, float *y)", "{",
              "    int i, k, n_out = 0;",
              "    for (i = 0; i < n; i++) {", "        float v = x[i];",
              f"        for (k = 0; k < {P}_FILTER_SECTIONS; k++) {{",
              "            const float *s = filter_sos[k];",
              "            float out = s[0] * v + f->zi[k][0];",
              "            f->zi[k][0] = s[1] * v - s[4] * out + f->zi[k][1];",
              "            f->zi[k][1] = s[2] * v - s[5] * out;", "            v = out;", "        }",
              f"        if (f->phase == 0) y[n_out++] = v * {float(spec.gain)!r}f;",
              f"        f->phase = (f->phase + 1) % {P}_DECIMATE;", "    }", "    return n_out;", "}", ""]
    header, src = out_dir / f"{stem}.h", out_dir / f"{stem}.c"
    header.write_text("\n".join(h))
    src.write_text("\n".join(c))
    return src, header
