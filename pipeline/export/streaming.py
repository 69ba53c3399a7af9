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



def to_onnx(stream_model) -> bytes:
    """The non-unrolled chunk model as ONNX: a native LSTM with initial_h and initial_c."""
    import tensorflow as tf
    import tf2onnx

    from pipeline.export.onnx_export import OPSET

    signature = [tf.TensorSpec(t.shape, tf.float32, name=t.name.split(":")[0]) for t in stream_model.inputs]
    proto, _ = tf2onnx.convert.from_keras(stream_model, input_signature=signature, opset=OPSET)
    return proto.SerializeToString()


