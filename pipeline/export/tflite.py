"""TFLite conversion of the whole-window model, and running it in LiteRT."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

#: Variants in the order they are made: name -> (precision label, description).
VARIANTS = {
    "tflite_float32": ("float32", "float32 weights and activations"),
    "tflite_float16": ("float16", "float16 weights, float32 compute"),
    "tflite_dynamic_int8": ("dynamic-int8", "int8 weights, float activations (dynamic range)"),
    "tflite_int8": ("int8", "int8 weights and activations, int8 input/output"),
    "tflite_int16x8": ("int16x8", "int8 weights, int16 activations"),
}

FORBIDDEN_OPS = ("WHILE", "FLEX", "CUSTOM")


#: The op versions our exports emit that tflite-runtime 2.14.0 (its last release; the
#: interpreter the design card names) was seen to load and run (tests/test_tflite_runtime.py
#: checks this table against the real runtime in CI). Newer versions it refuses, e.g.
#: "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'" (the dynamic-range
#: chunk graph's per-channel hybrid FULLY_CONNECTED).
TFLITE_RUNTIME_2_14_OPS = {
    "ADD": 2,
    "CONCATENATION": 2,
    "DEQUANTIZE": 3,
    "FULLY_CONNECTED": 4,
    "LOGISTIC": 2,
    "MUL": 2,
    "QUANTIZE": 2,
    "RESHAPE": 1,
    "SOFTMAX": 2,
    "SPLIT": 2,
    "STRIDED_SLICE": 2,
    "TANH": 2,
    "UNPACK": 1,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": 2,
}


def op_versions(model_bytes: bytes) -> dict[str, int]:
    """{builtin op name: highest version used} of a .tflite model."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python.util import _convert_model_from_bytearray_to_object

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out: dict[str, int] = {}
    for code in _convert_model_from_bytearray_to_object(bytearray(model_bytes)).operatorCodes:
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"builtin {code.builtinCode}")
        out[name] = max(out.get(name, 0), int(code.version))
    return out


def tflite_runtime_support(model_bytes: bytes) -> dict:
    """Whether tflite-runtime 2.14 runs the model: every (op, version) within
    :data:`TFLITE_RUNTIME_2_14_OPS`. Returns {"runtime", "supported", "needs"} where
    ``needs`` lists the ops beyond it ("FULLY_CONNECTED v12 (2.14 runs <= v4 here)")."""
    needs = [
        f"{op} v{v} ({'not seen in 2.14' if op not in TFLITE_RUNTIME_2_14_OPS else f'2.14 checked up to v{TFLITE_RUNTIME_2_14_OPS[op]}'})"
        for op, v in sorted(op_versions(model_bytes).items())
        if v > TFLITE_RUNTIME_2_14_OPS.get(op, 0)
    ]
    return {"runtime": "tflite-runtime 2.14.0", "supported": not needs, "needs": needs}


def slim(model_bytes: bytes) -> bytes:
    """The same model without what no runtime reads: the names of inner tensors (inputs
    and outputs keep theirs; signatures name tensors by index) and the calibration
    min/max kept beside every quantised tensor's scale and zero point.

    An unrolled 21-step chunk graph has ~400 tensors: their names (~14 KB) and min/max
    (~5 KB) were a third of the int8 file. Kernels use scale and zero point only, so the
    outputs are bit-identical (tests/test_int8.py checks it in LiteRT and TFLM).
    """
    from tensorflow.lite.python.util import (
        _convert_model_from_bytearray_to_object,
        _convert_model_from_object_to_bytearray,
    )

    model = _convert_model_from_bytearray_to_object(bytearray(model_bytes))
    for graph in model.subgraphs:
        keep = set(graph.inputs.tolist()) | set(graph.outputs.tolist())
        for index, tensor in enumerate(graph.tensors):
            if index not in keep:
                tensor.name = None
            q = tensor.quantization
            if q is not None and q.scale is not None and len(q.scale):
                q.min = q.max = None
    return bytes(_convert_model_from_object_to_bytearray(model))


def convert(
    model, variant: str, representative: Callable[[], Iterator[dict]] | None, slim_output: bool = True
) -> bytes:
    """Convert a fixed-batch Keras model to one TFLite variant (builtin ops only).

    ``variant`` is a key of ``VARIANTS`` (``tflite_int8``) or the bare precision (``int8``);
    ``representative`` yields {input name: array of batch 1} from the training split.
    The flatbuffer is :func:`slim` unless ``slim_output`` is False.
    """
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    variant = variant if variant.startswith("tflite_") else f"tflite_{variant}"
    if variant == "tflite_float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "tflite_dynamic_int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "tflite_int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        # The representative set yields {input name: array}: a list would be matched to
        # the converter's (alphabetical) input order and silently calibrate the wrong input.
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        # The MLIR quantizer (the default) warns "Statistics for quantized inputs were
        # expected" and leaves the fused LSTM's intermediates uncalibrated: on MIT-BIH DS2
        # its int8 model agreed with float on 89 % of beats, the older quantizer on 98.7 %.
        conv.experimental_new_quantizer = False
    elif variant == "tflite_int16x8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.experimental_new_quantizer = False
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    elif variant != "tflite_float32":
        raise ValueError(f"unknown TFLite variant {variant}")
    with warnings.catch_warnings():
        # Known and handled: the old quantizer calibrates through tf.lite.Interpreter (its
        # deprecation notice), and the quantizers note the LSTM statistics they infer.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        blob = conv.convert()
    return slim(blob) if slim_output else blob
