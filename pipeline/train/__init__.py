"""Train: causal LSTM classifiers on windows, with Keras 2 (``tf_keras``).

Why Keras 2 and not the Keras 3 that TensorFlow 2.21 ships by default: a Keras 2 ``LSTM``
converts to the fused TFLite ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op (float, dynamic-range and
full int8), and tf2onnx turns it into a native ONNX ``LSTM`` node; a Keras 3 LSTM becomes a
``WHILE`` loop whose full-int8 conversion segfaults, and tf2onnx cannot read Keras 3 models
(../shared/docs/TOOLCHAIN.md). This is the one place that choice is made:
``pipeline.train.keras`` is the Keras every other module imports.
"""

import os

# Must be set before TensorFlow is first imported, so that tf.keras and the TFLite
# converter see the same (Keras 2) model classes as tf_keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
