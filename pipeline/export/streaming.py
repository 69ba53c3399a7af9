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

import numpy as np

import pipeline.train  # noqa: F401  (Keras 2 before TensorFlow loads)
from pipeline.export.onnx_export import OnnxModel


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
        twin = k.layers.LSTM(units, return_sequences=not last, return_state=True, unroll=unroll,
                             name=f"lstm_{i}")
        out = twin(h, initial_state=[h0, c0])
        h, h_new, c_new = out
        twin.set_weights(layer.get_weights())
        states_out += [k.layers.Activation("linear", name=f"h_{i}_out")(h_new),
                       k.layers.Activation("linear", name=f"c_{i}_out")(c_new)]
    feats = h
    names = [layer.name for layer in model.layers]
    if "side" in names:
        side = k.Input(model.get_layer("side").output_shape[0][1:] if isinstance(model.get_layer("side").output_shape, list)
                       else model.get_layer("side").output_shape[1:], batch_size=1, name="side")
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


def run_chunks(step, window: np.ndarray, units: list[int], chunk_len: int, side: np.ndarray | None):
    """Feed one window chunk by chunk through ``step(feed) -> (probs, states)``.

    window : (n_steps, n_channels); side : (n_side,) or None. Returns probs (n_classes,).
    """
    states = [np.zeros((1, u), np.float32) for u in units for _ in (0, 1)]
    probs = None
    zeros_side = None if side is None else np.zeros((1, len(side)), np.float32)
    n_chunks = len(window) // chunk_len
    for j in range(n_chunks):
        feed = {"chunk": window[None, j * chunk_len:(j + 1) * chunk_len].astype(np.float32)}
        for i in range(len(units)):
            feed[f"h_{i}"], feed[f"c_{i}"] = states[2 * i], states[2 * i + 1]
        if side is not None:
            feed["side"] = side[None].astype(np.float32) if j == n_chunks - 1 else zeros_side
        probs, states = step(feed)
    return probs[0]


def representative_feeds(stream_model, windows: np.ndarray, sides: np.ndarray | None, chunk_len: int) -> list[dict]:
    """Every chunk feed (with the float model's own states) of the given training windows."""
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


class LiteRTStream:
    """A streaming .tflite in LiteRT through its signature: named inputs and outputs,
    integer tensors (de)quantised with their own scales, states fed back as floats."""

    def __init__(self, model_bytes: bytes, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        self.in_details = self.runner.get_input_details()
        self.out_details = self.runner.get_output_details()
        self.ops = sorted({op["op_name"] for op in self.interpreter._get_ops_details()})

    def tensor_details(self) -> tuple[list[dict], list[dict]]:
        def describe(name, d):
            scale, zero = d["quantization"]
            return {"name": name, "tensor": name, "dtype": np.dtype(d["dtype"]).name,
                    "shape": d["shape"].tolist(), "scale": float(scale), "zero_point": int(zero)}
        return ([describe(n, d) for n, d in self.in_details.items()],
                [describe(n, d) for n, d in self.out_details.items()])

    def step(self, feed: dict) -> tuple[np.ndarray, list[np.ndarray]]:
        from pipeline.export.tflite import quantise

        args = {n: quantise(feed[n], d) for n, d in self.in_details.items()}
        out = self.runner(**args)
        deq = {}
        for n, v in out.items():
            scale, zero = self.out_details[n]["quantization"]
            deq[n] = (v.astype(np.float32) - zero) * scale if scale else v.astype(np.float32)
        n_layers = sum(1 for n in deq if n.startswith("h_"))
        states = [deq[f"{kind}_{i}_out"] for i in range(n_layers) for kind in ("h", "c")]
        return deq["probs"], states


def to_onnx(stream_model) -> bytes:
    """The non-unrolled chunk model as ONNX: a native LSTM with initial_h and initial_c."""
    import tensorflow as tf
    import tf2onnx

    from pipeline.export.onnx_export import OPSET

    signature = [tf.TensorSpec(t.shape, tf.float32, name=t.name.split(":")[0]) for t in stream_model.inputs]
    proto, _ = tf2onnx.convert.from_keras(stream_model, input_signature=signature, opset=OPSET)
    return proto.SerializeToString()


class OnnxStream(OnnxModel):
    """A streaming .onnx in ONNX Runtime: one chunk per ``step``."""

    def __init__(self, model_bytes: bytes, num_threads: int = 1):
        super().__init__(model_bytes, num_threads)
        self.inputs = self.input_names
        self.outputs = [o.name for o in self.session.get_outputs()]

    def step(self, feed: dict):
        out = dict(zip(self.outputs, self.session.run(None, {n: feed[n] for n in self.inputs})))
        n_layers = sum(1 for n in self.inputs if n.startswith("h_"))
        states = [out[f"{kind}_{i}_out"] for i in range(n_layers) for kind in ("h", "c")]
        return out["probs"], states
