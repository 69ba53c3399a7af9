"""Streaming variants: a chunk of samples plus the LSTM state in, probabilities plus the
new state out.

Running the chunks of a window one after another, carrying (h, c), reproduces the
whole-window model: the device processes each sample once per window that contains it
instead of re-running whole windows at every hop. The graph is small and fixed (one chunk
of ``chunk_len`` steps), needs no variable tensors, and is the same in TFLite and ONNX.

Inputs (in this order): ``chunk`` (1, chunk_len, n_channels), then ``h_i``, ``c_i``
(1, units_i) for each LSTM layer i, then ``side`` (1, n_side) if the model has side
features. Outputs: ``probs`` (1, n_classes), then ``h_i_out``, ``c_i_out``. ``probs`` is
meaningful after a window's last chunk (side features are used only there).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

import pipeline.train  # noqa: F401  (Keras 2 before TensorFlow loads)
from pipeline.runtime.backends import run_chunks


def chunk_length(n_steps: int, max_len: int = 32) -> int:
    """The largest divisor of n_steps not above max_len, so windows split into whole chunks."""
    return max(d for d in range(1, min(n_steps, max_len) + 1) if n_steps % d == 0)


def build_streaming(model, chunk_len: int, unroll: bool):
    """A chunk-plus-state Keras model with the trained model's weights (batch 1).

    ``unroll=True`` gives plain FULLY_CONNECTED/LOGISTIC/TANH ops in TFLite (every
    quantisation mode converts); ``unroll=False`` keeps one LSTM op (a native ONNX LSTM
    with initial_h/initial_c).
    """
    import tf_keras as k

    signal = model.get_layer("signal")
    n_channels = signal.output_shape[0][-1] if isinstance(signal.output_shape, list) else signal.output_shape[-1]
    lstm_layers = [layer for layer in model.layers if isinstance(layer, k.layers.LSTM)]
    chunk = k.Input((chunk_len, n_channels), batch_size=1, name="chunk")
    inputs, states_out = [chunk], []
    h = chunk
    for i, layer in enumerate(lstm_layers):
        units = layer.units
        h0 = k.Input((units,), batch_size=1, name=f"h_{i}")
        c0 = k.Input((units,), batch_size=1, name=f"c_{i}")
        inputs += [h0, c0]
        last = i == len(lstm_layers) - 1
        twin = k.layers.LSTM(units, return_sequences=not last, return_state=True, unroll=unroll, name=f"lstm_{i}")
        out = twin(h, initial_state=[h0, c0])
        h, h_new, c_new = out
        twin.set_weights(layer.get_weights())
        states_out += [
            k.layers.Activation("linear", name=f"h_{i}_out")(h_new),
            k.layers.Activation("linear", name=f"c_{i}_out")(c_new),
        ]
    feats = h
    names = [layer.name for layer in model.layers]
    if "side" in names:
        side = k.Input(
            model.get_layer("side").output_shape[0][1:]
            if isinstance(model.get_layer("side").output_shape, list)
            else model.get_layer("side").output_shape[1:],
            batch_size=1,
            name="side",
        )
        inputs.append(side)
        feats = k.layers.Concatenate(name="join")([feats, side])
    dense = model.get_layer("dense")
    d = k.layers.Dense(dense.units, activation=dense.activation, name="dense")
    x = d(feats)
    d.set_weights(dense.get_weights())
    head = model.get_layer("probs")
    p = k.layers.Dense(head.units, activation="softmax", name="probs")
    probs = p(x)
    p.set_weights(head.get_weights())
    return k.Model(inputs, [probs, *states_out], name="lstm_stream")


def state_sizes(stream_model) -> list[int]:
    return [int(t.shape[-1]) for t in stream_model.inputs if t.name.startswith("h_")]


#: Calibration must see at least this fraction of the range the float state takes over
#: the training split (per layer, for h and for c), or export warns: state tensors
#: calibrated on less saturate on the windows that reach further.
MIN_STATE_COVERAGE = 0.9


class StateRangeWarning(UserWarning):
    """A representative set whose float LSTM state does not reach the training split's range."""


def state_ranges(weights: dict, windows: np.ndarray, batch: int = 1024) -> dict:
    """The float model's LSTM state over every step of every window, from zero state.

    weights : :func:`pipeline.runtime.reference.keras_weights` of the model
    windows : (n, n_steps, n_channels) float
    Returns {"layers": [{"h": [min, max], "c": [min, max]}, ...] (one per LSTM layer),
    "extreme_windows": sorted indices of the windows holding some unit's lowest or
    highest h or c} -- the windows a representative set needs to cover the range.
    """
    from pipeline.runtime.reference import lstm_sequence

    n_layers = sum(1 for k in weights if k.endswith("_recurrent"))
    lo = [{"h": np.inf, "c": np.inf} for _ in range(n_layers)]
    hi = [{"h": -np.inf, "c": -np.inf} for _ in range(n_layers)]
    # per layer, state, unit: (best value, window index) for the lowest and highest
    best: dict[tuple, tuple[Any, int]] = {}
    for start in range(0, len(windows), batch):
        seq = np.asarray(windows[start : start + batch], np.float64)
        for i in range(n_layers):
            kernel, recurrent, bias = (
                np.asarray(weights[f"lstm_{i}_{k}"], np.float64) for k in ("kernel", "recurrent", "bias")
            )
            zero = np.zeros((len(seq), recurrent.shape[0]))
            seq, _, _, cells = lstm_sequence(seq, kernel, recurrent, bias, zero, zero, return_cells=True)
            for name, values in (("h", seq), ("c", cells)):
                per_window_lo, per_window_hi = values.min(axis=1), values.max(axis=1)  # (b, units)
                lo[i][name] = min(lo[i][name], float(per_window_lo.min()))
                hi[i][name] = max(hi[i][name], float(per_window_hi.max()))
                for sign, v in ((-1, per_window_lo), (1, per_window_hi)):
                    arg = (sign * v).argmax(axis=0)  # per unit
                    for unit, w in enumerate(arg):
                        key = (i, name, sign, unit)
                        value = sign * v[w, unit]
                        if key not in best or value > best[key][0]:
                            best[key] = (value, start + int(w))
    return {
        "layers": [{name: [lo[i][name], hi[i][name]] for name in ("h", "c")} for i in range(n_layers)],
        "extreme_windows": sorted({w for _, w in best.values()}),
    }


def state_coverage(
    representative: dict, training: dict, min_coverage: float = MIN_STATE_COVERAGE, log=None, warn: bool = True
) -> dict:
    """How much of the training split's state range (:func:`state_ranges`) the
    representative windows reach, per layer and state; warns (:class:`StateRangeWarning`,
    and ``log``) naming the ranges when some state is below ``min_coverage`` (unless
    ``warn`` is False: a deliberate choice, recorded instead).

    Returns {"h_0": {"representative": [min, max], "training": [min, max], "coverage": f}, ...,
    "covered": bool}.
    """
    out: dict[str, Any] = {}
    short: list[str] = []
    for i, (rep, train) in enumerate(zip(representative["layers"], training["layers"])):
        for name in ("h", "c"):
            width = train[name][1] - train[name][0]
            seen = min(rep[name][1], train[name][1]) - max(rep[name][0], train[name][0])
            coverage = float(seen / width) if width > 0 else 1.0
            out[f"{name}_{i}"] = {"representative": rep[name], "training": train[name], "coverage": coverage}
            if coverage < min_coverage:
                short.append(
                    f"{name}_{i} seen in [{rep[name][0]:.2f}, {rep[name][1]:.2f}], training split "
                    f"[{train[name][0]:.2f}, {train[name][1]:.2f}] ({100 * coverage:.0f} %)"
                )
    out["covered"] = not short
    if short and warn:
        message = (
            "representative set does not cover the LSTM state's range: "
            + "; ".join(short)
            + ": state tensors calibrated on it saturate on windows that reach further"
        )
        warnings.warn(message, StateRangeWarning, stacklevel=2)
        if log:
            log(f"  WARNING: {message}")
    return out


def representative_feeds(stream_model, windows: np.ndarray, sides: np.ndarray | None, chunk_len: int) -> list[dict]:
    """Every chunk feed of the given training windows, each window run from zero state and
    its chunks fed the float model's own states: the state inputs (and the unrolled steps'
    state tensors) see the ranges whole windows reach, late chunks included."""
    names = [t.name.split(":")[0] for t in stream_model.inputs]
    units = state_sizes(stream_model)
    feeds = []

    def step(feed):
        feeds.append({k: np.asarray(v, np.float32) for k, v in feed.items()})
        out = stream_model([feed[n] for n in names])
        return out[0].numpy(), [o.numpy() for o in out[1:]]

    for i in range(len(windows)):
        run_chunks(step, windows[i], units, chunk_len, None if sides is None else sides[i])
    return feeds


def to_tflite(stream_model, variant: str, feeds: list[dict] | None) -> bytes:
    """Convert the unrolled chunk model; ``feeds`` (from :func:`representative_feeds`)
    calibrate the integer variants."""
    from pipeline.export.tflite import convert

    def representative():
        yield from feeds

    return convert(stream_model, variant, representative)


def to_onnx(stream_model) -> bytes:
    """The non-unrolled chunk model as ONNX: a native LSTM with initial_h and initial_c."""
    import tensorflow as tf
    import tf2onnx

    from pipeline.export.onnx_export import OPSET

    signature = [tf.TensorSpec(t.shape, tf.float32, name=t.name.split(":")[0]) for t in stream_model.inputs]
    proto, _ = tf2onnx.convert.from_keras(stream_model, input_signature=signature, opset=OPSET)
    return proto.SerializeToString()


def per_step_states(
    model_bytes: bytes, window: np.ndarray, units: list[int], chunk_len: int, side: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The state (h, c) after every step of one window inside an unrolled chunk graph,
    read from the interpreter's own tensors (one LSTM layer), carried chunk to chunk as a
    device does.

    window : (n_steps, n_channels). Returns h, c of shape (n_steps, units), float (integer
    tensors dequantised with their own scales). Inside the graph, a step's c is the ADD of
    two MULs (f*c + i*g) and its h the MUL of a LOGISTIC and the TANH of that c.
    """
    from pipeline.runtime.backends import LiteRTStream

    if len(units) != 1:
        raise ValueError("per_step_states reads one LSTM layer")
    runner = LiteRTStream(model_bytes, preserve_all_tensors=True)
    interp = runner.interpreter
    ops = interp._get_ops_details()
    producer = {t: op for op in ops for t in op["outputs"]}
    kind = {t: op["op_name"] for t, op in producer.items()}
    c_tensors = [
        op["outputs"][0] for op in ops if op["op_name"] == "ADD" and all(kind.get(t) == "MUL" for t in op["inputs"])
    ]
    h_tensors = []
    for c in c_tensors:
        tanh = next(op["outputs"][0] for op in ops if op["op_name"] == "TANH" and op["inputs"][0] == c)
        h_tensors.append(next(op["outputs"][0] for op in ops if op["op_name"] == "MUL" and tanh in op["inputs"]))
    if len(c_tensors) != chunk_len:
        raise ValueError(f"found {len(c_tensors)} cell updates in a {chunk_len}-step chunk graph")

    def read(index):
        d = interp._get_tensor_details(index, 0)
        scale, zero = d["quantization"]
        v = interp.get_tensor(index)[0].astype(np.float64)
        return (v - zero) * scale if scale else v

    hs, cs = [], []
    states = [np.zeros((1, units[0]), np.float32), np.zeros((1, units[0]), np.float32)]
    n_chunks = len(window) // chunk_len
    for j in range(n_chunks):
        feed = {
            "chunk": window[None, j * chunk_len : (j + 1) * chunk_len].astype(np.float32),
            "h_0": states[0],
            "c_0": states[1],
        }
        if side is not None:
            feed["side"] = (side if j == n_chunks - 1 else np.zeros_like(side))[None].astype(np.float32)
        _, states = runner.step(feed)
        hs += [read(t) for t in h_tensors]
        cs += [read(t) for t in c_tensors]
    return np.asarray(hs), np.asarray(cs)
