"""Causal LSTM classifiers: LSTM layer(s) over the window, side features joined before
the dense head, softmax over the classes. Nothing looks at future samples, so the same
weights can run chunk by chunk with (h, c) carried between chunks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pipeline.train  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from pipeline.errors import BiosigError
from pipeline.train.config import ModelConfig

if TYPE_CHECKING:
    import numpy as np


def keras():
    from pipeline.train import tensorflow

    tensorflow()  # first, so that its start-up lines on a machine without a GPU are dropped
    import tf_keras

    return tf_keras


def build_model(
    cfg: ModelConfig,
    n_steps: int,
    n_channels: int,
    n_side: int,
    n_classes: int,
    batch_size: int | None = None,
    seed: int = 0,
):
    """Build the classifier.

    Parameters
    ----------
    n_steps, n_channels : window shape; inputs ``signal`` of shape (batch, n_steps, n_channels)
    n_side : number of side features; input ``side`` of shape (batch, n_side) if > 0
    batch_size : None to train; 1 to rebuild for conversion (TOOLCHAIN.md: a free batch
        dimension blocks the fused TFLite LSTM)

    Returns
    -------
    tf_keras.Model with output ``probs`` of shape (batch, n_classes)
    """
    k = keras()
    k.utils.set_random_seed(seed)
    signal = k.Input((n_steps, n_channels), batch_size=batch_size, name="signal")
    inputs = [signal]
    h = signal
    for i, units in enumerate(cfg.lstm_units):
        last = i == len(cfg.lstm_units) - 1
        h = k.layers.LSTM(units, return_sequences=not last, dropout=cfg.lstm_input_dropout, name=f"lstm_{i}")(h)
    if n_side:
        side = k.Input((n_side,), batch_size=batch_size, name="side")
        inputs.append(side)
        h = k.layers.Concatenate(name="join")([h, side])
    h = k.layers.Dense(cfg.dense_units, activation="relu", name="dense")(h)
    h = k.layers.Dropout(cfg.dropout, name="dropout")(h)
    probs = k.layers.Dense(n_classes, activation="softmax", name="probs")(h)
    return k.Model(inputs, probs, name="lstm_classifier")


def batches(inputs: list, batch_size: int, y=None, weights=None):
    """A tf.data pipeline of ``inputs`` (and labels, sample weights), in order, in batches.

    Why not hand Keras the arrays: under op determinism, Keras' own pipeline for arrays whose
    length is not a multiple of the batch gets rewritten by tf.data into an op with an
    attribute it does not define, and TensorFlow logs an error line per fit and predict
    call (harmless). The weights and predictions are the same bits either way.
    """
    from pipeline.train import tensorflow

    tf = tensorflow()
    x = inputs[0] if len(inputs) == 1 else tuple(inputs)
    parts = (x,) if y is None else (x, y) if weights is None else (x, y, weights)
    return tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)


def predict(model, inputs: list, batch_size: int = 1024) -> "np.ndarray":
    """``model.predict`` over ``inputs`` (a list of arrays, one per model input) through
    :func:`batches`: (n, n_classes)."""
    return model.predict(batches(inputs, batch_size), verbose=0)


def load_model(path):
    """Load a saved ``.keras`` model with Keras' safe mode (no code is executed).

    A model Keras refuses to load safely (a Lambda layer carries Python code) or cannot
    read raises :class:`ModelFileError`, naming the file.
    """
    try:
        return keras().models.load_model(str(path), compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{path}: refused: {first}") from None


class ModelFileError(BiosigError):
    """A model file that cannot be loaded as data (code inside it, or damaged)."""
