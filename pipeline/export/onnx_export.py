"""ONNX export of the whole-window model (native LSTM node) and its dynamic int8 twin."""

from __future__ import annotations

import numpy as np

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


class OnnxModel:
    """An ONNX model in ONNX Runtime, one thread, batch 1 per call."""

    def __init__(self, model_bytes: bytes, num_threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def tensor_details(self) -> tuple[list[dict], list[dict]]:
        def describe(t):
            return {"name": t.name, "tensor": t.name, "dtype": "float32", "shape": list(t.shape),
                    "scale": 0.0, "zero_point": 0}
        return [describe(t) for t in self.session.get_inputs()], [describe(t) for t in self.session.get_outputs()]

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(inputs.values())))
        out = []
        for i in range(n):
            feed = {name: inputs[name][i:i + 1].astype(np.float32) for name in self.input_names}
            out.append(self.session.run(None, feed)[0][0])
        return np.asarray(out, dtype=np.float32)
