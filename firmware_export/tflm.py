"""Run a .tflite model in the TensorFlow Lite Micro interpreter (``tflite-micro`` wheel).

This is the microcontroller runtime's own kernels, compiled for the host: it shows the
int8 model runs under TFLM and measures the tensor arena it needs.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile

import numpy as np


def _capture_output(fn):
    """Run fn() and return (result, text it printed at the C level on stdout or stderr)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        for fd in saved:
            os.dup2(tmp.fileno(), fd)
        try:
            result = fn()
        finally:
            # C stdio buffers what TFLM prints: flush it into the file before restoring.
            ctypes.CDLL(None).fflush(None)
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
        tmp.seek(0)
        return result, tmp.read().decode(errors="replace")


class TFLMModel:
    """A whole-window int8 model in TFLM.

    Parameters
    ----------
    model_bytes : the .tflite flatbuffer
    input_names : Keras input names in the flatbuffer's input order (TFLM's details
        carry no names; LiteRT's ``get_input_details`` order is the same).
    """

    def __init__(self, model_bytes: bytes, input_names: list[str]):
        from tflite_micro.python.tflite_micro import runtime

        self.interpreter = runtime.Interpreter.from_bytes(model_bytes)
        self.input_names = list(input_names)
        self.input_details = [self.interpreter.get_input_details(i) for i in range(len(input_names))]
        self.output_details = self.interpreter.get_output_details(0)

    def arena_bytes(self) -> int:
        """Tensor arena TFLM allocated for this model (its RecordingMicroAllocator total)."""
        _, text = _capture_output(self.interpreter.print_allocations)
        match = re.search(r"Arena allocation total (\d+) bytes", text)
        if not match:
            raise RuntimeError(f"TFLM did not report its arena: {text[:200]}")
        return int(match.group(1))

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Float inputs by Keras name -> dequantised float probabilities (n, n_classes)."""
        n = len(next(iter(inputs.values())))
        out = []
        o = self.output_details
        o_scale, o_zero = o["quantization_parameters"]["scales"][0], o["quantization_parameters"]["zero_points"][0]
        for i in range(n):
            self.interpreter.reset()
            for k, (name, d) in enumerate(zip(self.input_names, self.input_details)):
                scale = d["quantization_parameters"]["scales"][0]
                zero = d["quantization_parameters"]["zero_points"][0]
                q = np.clip(np.round(inputs[name][i : i + 1] / scale + zero), -128, 127).astype(np.int8)
                self.interpreter.set_input(q, k)
            self.interpreter.invoke()
            out.append((self.interpreter.get_output(0)[0].astype(np.float32) - o_zero) * o_scale)
        return np.asarray(out, dtype=np.float32)
