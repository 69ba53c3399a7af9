"""ONNX export of the whole-window model (native LSTM node) and its dynamic int8 twin."""

from __future__ import annotations

OPSET = 17


def to_onnx(model, input_shapes: dict[str, tuple]) -> bytes:
    """Convert a fixed-batch Keras 2 model with tf2onnx; inputs keep their Keras names."""
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec(input_shapes[name], tf.float32, name=name) for name in input_shapes]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    return proto.SerializeToString()


def check(model_bytes: bytes) -> list[str]:
    """Run ``onnx.checker``; return the op types of the graph."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    onnx.checker.check_model(proto)
    return sorted({node.op_type for node in proto.graph.node})


def quantise_dynamic(model_bytes: bytes) -> bytes:
    """ONNX Runtime dynamic int8 quantisation (LSTM -> DynamicQuantizeLSTM)."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        src.write_bytes(model_bytes)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        return dst.read_bytes()
