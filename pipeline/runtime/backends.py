"""Backends: one interface over LiteRT, ONNX Runtime and a plain-numpy float LSTM.

Device side: imports numpy at module level and each interpreter only when asked for, so a
Raspberry Pi with one interpreter installed never needs the other (and never TensorFlow).
Every backend runs with one thread unless told otherwise.

Two graph kinds, both from ``biosig-edge export``:
- whole-window: ``predict({input name: (n, ...) float array}) -> (n, n_classes)``;
- stream (chunk plus state): ``step(feed) -> (probs (1, n_classes), [h_0, c_0, ...])``.
"""

from __future__ import annotations

import numpy as np


def litert_interpreter_class():
    """LiteRT's Interpreter: ``ai_edge_litert``, else ``tflite_runtime``, else TensorFlow's.

    Returns (class, module name) so callers can say which one they use.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        from tensorflow.lite import Interpreter

        return Interpreter, "tensorflow.lite"
    except ImportError:
        raise ImportError(
            "no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime, or tensorflow)"
        ) from None


def quantise(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float -> the tensor's dtype, with its scale and zero point when it has them."""
    scale, zero = detail["quantization"]
    dtype = detail["dtype"]
    if not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


class LiteRTModel:
    """A whole-window .tflite model in the LiteRT interpreter, one thread.

    ``predict`` takes float inputs, quantises them with the model's own scales when its
    inputs are integer, and returns float probabilities of shape (n, n_classes).
    """

    def __init__(self, model_bytes: bytes, num_threads: int = 1):
        interpreter, self.module = litert_interpreter_class()
        self.interpreter = interpreter(model_content=model_bytes, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
        self.output = self.interpreter.get_output_details()[0]
        self.ops = sorted({op["op_name"] for op in self.interpreter._get_ops_details()})

    def input_for(self, name: str) -> dict:
        """The input tensor whose name contains the Keras input name (``serving_default_side:0``)."""
        matches = [d for n, d in self.inputs.items() if f"_{name}:" in n or n == name]
        if len(matches) != 1:
            raise KeyError(f"no single input named like '{name}' in {list(self.inputs)}")
        return matches[0]

    def tensor_details(self) -> tuple[list[dict], list[dict]]:
        def describe(d, role):
            scale, zero = d["quantization"]
            return {
                "name": role,
                "tensor": d["name"],
                "dtype": np.dtype(d["dtype"]).name,
                "shape": d["shape"].tolist(),
                "scale": float(scale),
                "zero_point": int(zero),
            }

        return (
            [describe(d, n.split("serving_default_")[-1].split(":")[0]) for n, d in self.inputs.items()],
            [describe(self.output, "probs")],
        )

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(inputs.values())))
        out = np.empty((n, self.output["shape"][-1]), np.float32)
        targets = {name: self.input_for(name) for name in inputs}
        o_scale, o_zero = self.output["quantization"]
        for i in range(n):
            # The fused LSTM keeps its state in variable tensors across invoke():
            # independent windows must start from zero state.
            self.interpreter.reset_all_variables()
            for name, d in targets.items():
                self.interpreter.set_tensor(d["index"], quantise(inputs[name][i : i + 1], d))
            self.interpreter.invoke()
            y = self.interpreter.get_tensor(self.output["index"])[0]
            out[i] = (y.astype(np.float32) - o_zero) * o_scale if o_scale else y
        return out


class LiteRTStream:
    """A streaming .tflite in LiteRT through its signature: named inputs and outputs,
    integer tensors (de)quantised with their own scales, states fed back as floats.
    ``preserve_all_tensors`` keeps every inner tensor readable after a step (export's
    per-step state study; slower)."""

    def __init__(self, model_bytes: bytes, num_threads: int = 1, preserve_all_tensors: bool = False):
        interpreter, self.module = litert_interpreter_class()
        extra = {"experimental_preserve_all_tensors": True} if preserve_all_tensors else {}
        self.interpreter = interpreter(model_content=model_bytes, num_threads=num_threads, **extra)
        self.runner = self.interpreter.get_signature_runner()
        self.in_details = self.runner.get_input_details()
        self.out_details = self.runner.get_output_details()
        self.ops = sorted({op["op_name"] for op in self.interpreter._get_ops_details()})

    def tensor_details(self) -> tuple[list[dict], list[dict]]:
        def describe(name, d):
            scale, zero = d["quantization"]
            return {
                "name": name,
                "tensor": name,
                "dtype": np.dtype(d["dtype"]).name,
                "shape": d["shape"].tolist(),
                "scale": float(scale),
                "zero_point": int(zero),
            }

        return (
            [describe(n, d) for n, d in self.in_details.items()],
            [describe(n, d) for n, d in self.out_details.items()],
        )

    def step(self, feed: dict) -> tuple[np.ndarray, list[np.ndarray]]:
        args = {n: quantise(feed[n], d) for n, d in self.in_details.items()}
        out = self.runner(**args)
        deq = {}
        for n, v in out.items():
            scale, zero = self.out_details[n]["quantization"]
            deq[n] = (v.astype(np.float32) - zero) * scale if scale else v.astype(np.float32)
        n_layers = sum(1 for n in deq if n.startswith("h_"))
        states = [deq[f"{kind}_{i}_out"] for i in range(n_layers) for kind in ("h", "c")]
        return deq["probs"], states


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
            return {
                "name": t.name,
                "tensor": t.name,
                "dtype": "float32",
                "shape": list(t.shape),
                "scale": 0.0,
                "zero_point": 0,
            }

        return [describe(t) for t in self.session.get_inputs()], [describe(t) for t in self.session.get_outputs()]

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(inputs.values())))
        out = []
        for i in range(n):
            feed = {name: inputs[name][i : i + 1].astype(np.float32) for name in self.input_names}
            out.append(self.session.run(None, feed)[0][0])
        return np.asarray(out, dtype=np.float32)


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


def run_chunks(step, window: np.ndarray, units: list[int], chunk_len: int, side: np.ndarray | None):
    """Feed one window chunk by chunk through ``step(feed) -> (probs, states)``.

    window : (n_steps, n_channels); side : (n_side,) or None. Returns probs (n_classes,).
    """
    states = [np.zeros((1, u), np.float32) for u in units for _ in (0, 1)]
    probs = None
    zeros_side = np.zeros((1, 0 if side is None else len(side)), np.float32)  # side before the last chunk
    n_chunks = len(window) // chunk_len
    for j in range(n_chunks):
        feed = {"chunk": window[None, j * chunk_len : (j + 1) * chunk_len].astype(np.float32)}
        for i in range(len(units)):
            feed[f"h_{i}"], feed[f"c_{i}"] = states[2 * i], states[2 * i + 1]
        if side is not None:
            feed["side"] = side[None].astype(np.float32) if j == n_chunks - 1 else zeros_side
        probs, states = step(feed)
    if probs is None:
        raise ValueError(f"a window of {len(window)} steps holds no chunk of {chunk_len}")
    return probs[0]
