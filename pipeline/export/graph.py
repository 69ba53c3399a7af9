"""The trained Keras graph, rebuilt for conversion."""

from __future__ import annotations

import pipeline.train  # noqa: F401  (Keras 2 before TensorFlow loads)


def rebuild_fixed_batch(model, batch_size: int = 1):
    """Same layers and weights with a fixed batch dimension.

    A Keras 2 LSTM with a free batch dimension converts only with Select TF ops
    ("Lowering tensor list ops is failed"); with batch 1 it becomes the fused builtin
    UNIDIRECTIONAL_SEQUENCE_LSTM (../shared/docs/TOOLCHAIN.md).
    """
    import tf_keras

    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            shape = layer["config"]["batch_input_shape"]
            layer["config"]["batch_input_shape"] = [batch_size, *shape[1:]]
    fixed = tf_keras.Model.from_config(config)
    fixed.set_weights(model.get_weights())
    return fixed


def input_names(model) -> list[str]:
    """Model input names in the model's own order (``signal`` [, ``side``])."""
    return [t.name.split(":")[0] for t in model.inputs]
