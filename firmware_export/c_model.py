"""Generate a trained classifier as C99 data for the hand-written runtime
``runtime/bse_lstm.{h,c}``: its weights, its sizes, and the runtime's structs filled in
with them, under a prefix. The generated files hold no arithmetic; the runtime computes
the LSTM layer(s), the dense head, softmax and the causal preprocessing filter, with
static buffers only (no malloc, no libm).

Two precisions:

- ``float32``: float weights and arithmetic; equals the numpy float reference to ~1e-6.
- ``int8``: the LSTM's weights in int8 with one float scale per output row; each of its
  matrix-vector products quantises its input vector to int8 (one scale per vector, per
  step) and accumulates in int32, so the multiply-accumulate loops, which are nearly all
  the work, are integer. Gates, cell state and softmax stay in float: the Cortex-M4 has a
  single-precision FPU, and a fixed-point cell state would cost accuracy for little speed.
  The dense head stays in float too: it runs once per decision (under 1 % of the work),
  and its int8 weights were where the int8 build lost float's decisions (the Bonn model:
  98.64 % of held-out windows with an int8 head, 99.73 % with a float one;
  ``python -m pipeline.tools.int8_error``).

API, for a prefix ``p`` (the generated header documents shapes)::

    p_check()                            once: 0, or what is wrong (a bse_lstm_status_t)
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
from string import Template

import numpy as np

from pipeline.errors import BiosigError

PRECISIONS = ("float32", "int8")
#: The runtime's BSE_LSTM_MAX_LAYERS: deeper stacks are refused.
MAX_LSTM_LAYERS = 4
#: Every model shape the generator accepts, axis by axis. tests/test_c_runtime.py holds a
#: passing case for each combination (and fails when this grows without one).
ACCEPTED = {
    "lstm_layers": tuple(range(1, MAX_LSTM_LAYERS + 1)),
    "side_features": (False, True),
    "filter": (False, True),
    "precision": PRECISIONS,
}


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
    sos: np.ndarray | None = None  # (n_sections, 6) at the input rate
    sos_zi: np.ndarray | None = None  # (n_sections, 2) steady state per unit step
    decimate: int = 1
    gain: float = 1.0
    norm_alpha: float = 0.0  # running RMS normalisation; 0: none
    norm_floor: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def units(self) -> list[int]:
        return [r.shape[0] for _, r, _ in self.lstm]


def _refuse(layer, why: str):
    raise UnsupportedModelError(f"cannot generate C for layer '{layer.name}' ({type(layer).__name__}): {why}")


def spec_from_keras(model, n_steps: int, classes: list[str]) -> CModelSpec:
    """Read a trained Keras 2 classifier into a :class:`CModelSpec`, refusing anything the
    generated C would not compute exactly as Keras does."""
    lstm: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    dense: list[tuple[np.ndarray, np.ndarray]] = []
    order: list[str] = []
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
            if len(lstm) == MAX_LSTM_LAYERS:
                _refuse(layer, f"LSTM layer {len(lstm) + 1}; the runtime stacks at most {MAX_LSTM_LAYERS}")
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
                _refuse(
                    layer,
                    f"activation '{act}' (bias {cfg['use_bias']}); the head must be "
                    "Dense(relu) then Dense(softmax), with biases",
                )
            kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
            dense.append((kernel, bias))
            order.append("dense")
        elif kind == "Dropout":
            continue  # identity at inference
        else:
            _refuse(layer, "not a layer the generator knows")
    if not lstm or len(dense) != 2:
        raise UnsupportedModelError(
            f"model '{model.name}': expected LSTM layer(s), then Dense(relu) and Dense(softmax); found {order}"
        )
    if lstm[-1][1].shape[0] + n_side != dense[0][0].shape[0]:
        raise UnsupportedModelError(
            f"model '{model.name}': the dense layer takes {dense[0][0].shape[0]} "
            f"features, not LSTM units + side features"
        )
    if dense[1][0].shape[1] != len(classes):
        raise UnsupportedModelError(f"model '{model.name}': {dense[1][0].shape[1]} outputs for {len(classes)} classes")
    return CModelSpec(lstm, dense[0], dense[1], int(lstm[0][0].shape[0]), n_side, list(classes), int(n_steps))


def spec_from_weights(weights: dict[str, np.ndarray], n_steps: int, classes: list[str]) -> CModelSpec:
    """From ``reference_float32.npz`` arrays (an export's layout; the layer checks were made
    when that file was written from the Keras model)."""
    lstm: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    i = 0
    while f"lstm_{i}_kernel" in weights:
        kernel, recurrent, bias = (
            np.asarray(weights[f"lstm_{i}_{k}"], np.float32) for k in ("kernel", "recurrent", "bias")
        )
        lstm.append((kernel, recurrent, bias))
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
            "which the generated C does not implement yet"
        )

    sos = np.asarray(preprocess["sos"], np.float64).reshape(-1, 6)  # [] in JSON: no filter
    sos = sos / sos[:, 3:4]  # a0 = 1, as the generated loop assumes
    spec.sos, spec.sos_zi = sos, sosfilt_zi(sos)
    spec.decimate, spec.gain = int(preprocess["decimate"]), float(preprocess["gain"])
    if preprocess.get("running_norm_s"):
        # the same coefficient as RunningNormaliser, at the model rate (after decimation)
        from pipeline.preprocess.filters import RunningNormaliser

        fs_out_hz = float(preprocess["fs_in_hz"]) / spec.decimate
        norm = RunningNormaliser(float(preprocess["running_norm_s"]), fs_out_hz, 1)
        spec.norm_alpha, spec.norm_floor = norm.alpha, norm.floor
    return spec


# ----------------------------------------------------------------------------- C data

#: The hand-written runtime every generated model is compiled with.
RUNTIME_DIR = Path(__file__).parent / "runtime"
RUNTIME_SOURCES = ("bse_lstm.c", "bse_lstm.h")
#: The text of the generated files (``string.Template``; package data).
TEMPLATE_DIR = Path(__file__).parent / "templates"

#: int8 builds take sigmoid (and tanh(x) = 2 sigmoid(2x) - 1) from a table of
#: SIGMOID_TABLE_N values on [-SIGMOID_TABLE_RANGE, SIGMOID_TABLE_RANGE], interpolated
#: linearly: sigmoid within SIGMOID_TABLE_ERROR inside (h^2/8 max|sigmoid''| = 4.7e-5 with
#: h = 1/16, plus float32 rounding), within SIGMOID_CLAMP_ERROR = sigmoid(-8) outside.
SIGMOID_TABLE_RANGE = 8.0
SIGMOID_TABLE_N = 257
SIGMOID_TABLE_ERROR = 5e-5
SIGMOID_CLAMP_ERROR = 3.36e-4


def _floats(values) -> str:
    vals = np.asarray(values, np.float32).ravel()
    if not np.isfinite(vals).all():
        raise UnsupportedModelError("a weight or coefficient is not finite; refusing to write it as C")
    items = [f"{float(v)!r}f" for v in vals]
    return ",\n    ".join(", ".join(items[i : i + 6]) for i in range(0, len(items), 6))


def _ints(values) -> str:
    vals = np.asarray(values).ravel()
    return ",\n    ".join(", ".join(str(int(v)) for v in vals[i : i + 16]) for i in range(0, len(vals), 16))


def quantise_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) float -> int8 (rows, cols) and one scale per row (symmetric, [-127, 127])."""
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def padded(n: int) -> int:
    """int8 rows and vectors are padded with zeros to whole 32-bit words (4 values)."""
    return -(-n // 4) * 4


def sigmoid_table() -> np.ndarray:
    """The int8 build's sigmoid table, float32 (SIGMOID_TABLE_N,)."""
    x = np.linspace(-SIGMOID_TABLE_RANGE, SIGMOID_TABLE_RANGE, SIGMOID_TABLE_N)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _matrix(name: str, kernel: np.ndarray, precision: str) -> tuple[str, str]:
    """A Keras kernel (n_in, n_out) as const data and its ``bse_lstm_matrix_t`` initialiser.

    float32 keeps Keras' layout (export is a copy); int8 stores one row per output,
    quantised with the row's scale and padded with zeros to whole words."""
    n_in, n_out = kernel.shape
    if precision == "float32":
        data = f"static const float {name}[{n_in} * {n_out}] = {{\n    {_floats(kernel)}\n}};\n"
        return data, f"{{.n_in = {n_in}, .n_out = {n_out}, .w = {name}}}"
    q, scale = quantise_rows(kernel.T)
    q = np.pad(q, ((0, 0), (0, padded(n_in) - n_in)))
    data = (
        f"/* int8, {n_out} rows of {n_in} weights padded to {padded(n_in)}; one scale per row */\n"
        f"static const int8_t {name}[{n_out} * {padded(n_in)}] = {{\n    {_ints(q)}\n}};\n"
        f"static const float {name}_scale[{n_out}] = {{\n    {_floats(scale)}\n}};\n"
    )
    return data, (
        f"{{.n_in = {n_in}, .n_out = {n_out}, .w_q = {name}, .w_scale = {name}_scale, .n_in_padded = {padded(n_in)}}}"
    )


def sizes(spec: CModelSpec, precision: str) -> dict[str, int]:
    """The lengths the state struct's buffers are declared with (the header's macros)."""
    units = spec.units
    n_in = [spec.n_channels] + units[:-1]
    d_units, k = spec.dense[0].shape[1], len(spec.classes)
    n_feat = units[-1] + spec.n_side
    return {
        "N_STATE": sum(units),
        "N_SCRATCH": max(4 * max(units), d_units, k),
        "N_FEATURES": n_feat,
        "N_QUANTISED": padded(max(*n_in, *units)) if precision == "int8" else 0,
    }


def _template(name: str) -> Template:
    return Template((TEMPLATE_DIR / name).read_text())


def _weights(spec: CModelSpec, precision: str) -> dict[str, str]:
    """The model's const arrays (LSTM layers, dense head, int8's sigmoid table) and the
    initialisers of ``bse_lstm_model_t`` that name them, for ``templates/model.c.in``."""
    units = spec.units
    n_in = [spec.n_channels] + units[:-1]
    d_units, k = spec.dense[0].shape[1], len(spec.classes)
    data, layers = [], []
    for i, (kernel, recurrent, bias) in enumerate(spec.lstm):
        data.append(f"/* LSTM layer {i}: {n_in[i]} inputs, {units[i]} units; outputs are gates i, f, c, o. */")
        wx, wx_init = _matrix(f"lstm{i}_wx", kernel, precision)
        wh, wh_init = _matrix(f"lstm{i}_wh", recurrent, precision)
        data += [wx, wh, f"static const float lstm{i}_b[{4 * units[i]}] = {{\n    {_floats(bias)}\n}};\n"]
        layers.append(
            f"        {{.n_in = {n_in[i]}, .n_units = {units[i]},\n"
            f"         .wx = {wx_init},\n         .wh = {wh_init},\n         .bias = lstm{i}_b}},"
        )
    # The head in float in both precisions: once per decision, and the int8 build's
    # decisions depend on it (see the module docstring).
    n_feat = units[-1] + spec.n_side
    data.append(
        f"/* Dense head, float: {n_feat} features ({units[-1]} LSTM + {spec.n_side} side) -> {d_units}, relu. */"
    )
    dense, dense_init = _matrix("dense_w", spec.dense[0], "float32")
    data += [dense, f"static const float dense_b[{d_units}] = {{\n    {_floats(spec.dense[1])}\n}};\n"]
    data.append(f"/* Output, float: {d_units} -> {k}, softmax. */")
    probs, probs_init = _matrix("probs_w", spec.head[0], "float32")
    data += [probs, f"static const float probs_b[{k}] = {{\n    {_floats(spec.head[1])}\n}};\n"]
    sigmoid = ""
    if precision == "int8":
        data += [
            f"/* sigmoid on [-{SIGMOID_TABLE_RANGE:g}, {SIGMOID_TABLE_RANGE:g}], {SIGMOID_TABLE_N} values */",
            f"static const float sigmoid_table[{SIGMOID_TABLE_N}] = {{\n    {_floats(sigmoid_table())}\n}};\n",
        ]
        per_unit = (SIGMOID_TABLE_N - 1) / (2 * SIGMOID_TABLE_RANGE)
        sigmoid = (
            f"    .sigmoid = {{.values = sigmoid_table, .n = {SIGMOID_TABLE_N}, "
            f".x_min = {-SIGMOID_TABLE_RANGE!r}f, .x_max = {SIGMOID_TABLE_RANGE!r}f, .per_unit = {per_unit!r}f}},\n"
        )
    return {
        "weights": "\n".join(data) + "\n",
        "layers": "\n".join(layers),
        "dense_init": dense_init,
        "probs_init": probs_init,
        "sigmoid": sigmoid,
    }


def _filter(spec: CModelSpec) -> dict[str, str]:
    """The causal filter's sections and steady state as const arrays (none without a
    filter) and the scalars of ``bse_lstm_filter_t``, for ``templates/model.c.in``."""
    sos = np.zeros((0, 6)) if spec.sos is None else spec.sos
    sos_zi = np.zeros((0, 2)) if spec.sos_zi is None else spec.sos_zi  # set with sos (with_preprocessing)
    n_sec = len(sos)
    data = ""
    if n_sec:
        data = "\n".join(
            [
                "/* Second-order sections at the input rate (b0 b1 b2 a0 a1 a2, a0 = 1) and their",
                " * steady-state response to a unit step (scipy.signal.sosfilt_zi). */",
                f"static const float filter_sos[{n_sec}][6] = {{",
                *[f"    {{{_floats(row)}}}," for row in sos],
                "};",
                f"static const float filter_zi[{n_sec}][2] = {{",
                *[f"    {{{_floats(row)}}}," for row in sos_zi],
                "};",
                "",
            ]
        )
    return {
        "n_sections": str(n_sec),
        "zi_rows": str(max(n_sec, 1)),
        "filter_data": data,
        "sos_name": "filter_sos" if n_sec else "0",
        "zi_name": "filter_zi" if n_sec else "0",
        "gain": f"{float(spec.gain)!r}f",
        "norm_alpha": f"{float(np.float32(spec.norm_alpha))!r}f",
        "norm_floor": f"{float(np.float32(spec.norm_floor))!r}f",
    }


def generate(
    spec: CModelSpec, out_dir: str | Path, prefix: str = "bse", precision: str = "float32", source: str = ""
) -> tuple[Path, Path]:
    """Write ``<prefix>_<precision>.c`` and ``.h`` (data, sizes, the API under ``prefix``)
    into ``out_dir``; returns their paths. Compile them with ``runtime/bse_lstm.c``.

    The text is ``templates/model.{h,c}.in`` (``string.Template``); this fills in the
    model's sizes, names and data."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not prefix.isidentifier() or not prefix.islower():
        raise ValueError(f"prefix must be a lower-case C identifier, got {prefix!r}")
    if not 1 <= len(spec.lstm) <= MAX_LSTM_LAYERS:
        raise UnsupportedModelError(f"{len(spec.lstm)} LSTM layers; the runtime takes 1 to {MAX_LSTM_LAYERS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p, P, stem, q8 = prefix, prefix.upper(), f"{prefix}_{precision}", precision == "int8"
    size = sizes(spec, precision)
    fields = {
        "p": p,
        "P": P,
        "stem": stem,
        "precision": precision,
        "PRECISION": precision.upper(),
        "from_source": f" from {source}" if source else "",
        "shape": " -> ".join(f"LSTM({u})" for u in spec.units),
        "d_units": str(spec.dense[0].shape[1]),
        "n_classes": str(len(spec.classes)),
        "class_list": ", ".join(spec.classes),
        "class_names": ", ".join(f'"{name}"' for name in spec.classes),
        "n_channels": str(spec.n_channels),
        "n_steps": str(spec.n_steps),
        "n_side": str(spec.n_side),
        "n_layers": str(len(spec.units)),
        "decimate": str(spec.decimate),
        **{key: str(value) for key, value in size.items()},
        "quantised_define": (
            f"#define {P}_N_QUANTISED {size['N_QUANTISED']}   /* widest LSTM matrix input, padded to words */\n"
            if q8
            else ""
        ),
        "quantised_member": f"    int8_t q[{P}_N_QUANTISED];   /* quantised vector (scratch) */\n" if q8 else "",
        "n_quantised": f"{P}_N_QUANTISED" if q8 else "0",
        "q_buffer": "(s)->q" if q8 else "0",
        **_weights(spec, precision),
        **_filter(spec),
    }
    header, src = out_dir / f"{stem}.h", out_dir / f"{stem}.c"
    header.write_text(_template("model.h.in").substitute(fields))
    src.write_text(_template("model.c.in").substitute(fields))
    return src, header


def copy_runtime(out_dir: str | Path) -> list[Path]:
    """Copy the runtime sources next to generated models (a firmware compiles both)."""
    import shutil

    out = []
    for name in RUNTIME_SOURCES:
        out.append(Path(shutil.copy(RUNTIME_DIR / name, Path(out_dir) / name)))
    return out
