"""Train: causal LSTM classifiers on windows, with Keras 2 (``tf_keras``).

Why Keras 2 and not the Keras 3 that TensorFlow 2.21 ships by default: a Keras 2 ``LSTM``
converts to the fused TFLite ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op (float, dynamic-range and
full int8), and tf2onnx turns it into a native ONNX ``LSTM`` node; a Keras 3 LSTM becomes a
``WHILE`` loop whose full-int8 conversion segfaults, and tf2onnx cannot read Keras 3 models
(../shared/docs/TOOLCHAIN.md). This is the one place that choice is made:
``pipeline.train.keras`` is the Keras every other module imports.
"""

import os
import platform

# Must be set before TensorFlow is first imported, so that tf.keras and the TFLite
# converter see the same (Keras 2) model classes as tf_keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# TensorFlow's C++ INFO lines (the CPU-feature note at start-up, the TFLite converter's
# progress) are noise in training's stderr; level 1 hides them and keeps warnings and errors.
# Not 3, though it would also hide the start-up "failed call to cuInit" line of the CUDA-built
# wheel and tf.data's "NodeDef mentions attribute use_unbounded_threadpool" line (a TensorFlow
# bug in its op-determinism rewrite, harmless): level 3 hides every C++ error with them. The
# "Could not find cuda drivers" lines come before TensorFlow reads this variable: no level
# hides them. A user who wants the INFO lines back sets TF_CPP_MIN_LOG_LEVEL=0.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# The same weights on every x86 CPU. TensorFlow's matrix products (Eigen's contractions
# included) run on oneDNN kernels chosen at run time for the CPU's widest instruction set, and
# each set sums in another order: one epoch of the ECG model on the same windows gives other
# weights under ONEDNN_MAX_CPU_ISA=AVX than under AVX2 (tests/test_models.py): the likely reason
# the same command landed 11 points apart in S Se on two machines of one kind (AVX2 here,
# AVX-512 on many Intel servers). Capping the set at AVX2, which every x86 machine of this kind has,
# makes the kernels and so the weights the same; the cost is AVX-512's speed, none on 2k-weight
# LSTMs. A user who wants the widest kernels sets ONEDNN_MAX_CPU_ISA=ALL.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

#: Lines the CUDA-built TensorFlow wheel (the one tf-keras depends on) writes at start-up on
#: a machine without a GPU, before it reads TF_CPP_MIN_LOG_LEVEL: it trains on the CPU as
#: meant, and nothing else the library says is dropped.
NO_GPU_LINES = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
)


def tensorflow():
    """TensorFlow, imported (and its devices listed, where CUDA is probed) with the
    ``NO_GPU_LINES`` dropped from file descriptor 2; every other line passes through."""
    import sys

    if "tensorflow" in sys.modules and _quiet_import_done:
        return sys.modules["tensorflow"]
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [
                line
                for line in caught.read().decode("utf-8", errors="replace").splitlines()
                if not any(noise in line for noise in NO_GPU_LINES)
            ]
            if kept:
                print("\n".join(kept), file=sys.stderr)
    _mark_quiet()
    return tf


_quiet_import_done = False


def _mark_quiet() -> None:
    global _quiet_import_done
    _quiet_import_done = True
