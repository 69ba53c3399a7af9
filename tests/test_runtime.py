"""The device side: backends agree with the numpy reference, and no TensorFlow import."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.manifest import load_manifest
from pipeline.runtime.backends import LiteRTModel, LiteRTStream, OnnxModel, OnnxStream, run_chunks
from pipeline.runtime.reference import NumpyLSTM


@pytest.fixture(scope="module")
def real_inputs(exported):
    """Standardised inputs of 200 real DS2 beats, as the exported models take them."""
    from pipeline.train.config import config_from_dict
    from pipeline.train.data import load_windows
    from pipeline.window.side import Standardiser

    run, _, _ = exported
    info = json.loads((run / "run.json").read_text())
    cfg = config_from_dict(info["config"])
    table = load_windows(cfg, ["232"])
    x, s, _ = table.take(["232"], cfg.classes)
    std = Standardiser(np.asarray(info["side_mean"]), np.asarray(info["side_std"]))
    idx = np.linspace(0, len(x) - 1, 200).astype(int)
    return {"signal": x[idx], "side": std(s[idx])}


def test_numpy_reference_equals_litert_float_equals_onnx_float(exported, real_inputs):
    _, out, _ = exported
    reference = NumpyLSTM.from_file(out / "reference_float32.npz").predict(real_inputs)
    litert = LiteRTModel((out / "tflite_float32.tflite").read_bytes()).predict(real_inputs)
    onnx = OnnxModel((out / "onnx_float32.onnx").read_bytes()).predict(real_inputs)
    # float32 interpreters against the float64 reference: rounding only (the fused TFLite
    # LSTM clips its cell state at 10, which these small-model beats never reach).
    np.testing.assert_allclose(litert, reference, atol=1e-5)
    np.testing.assert_allclose(onnx, reference, atol=1e-5)


def test_streaming_backends_equal_the_reference_chunk_by_chunk(exported, real_inputs):
    _, out, manifest = exported
    stream = manifest["streaming"]
    reference = NumpyLSTM.from_file(out / "reference_float32.npz")
    whole = reference.predict(real_inputs)
    for stepper in (
        reference,
        LiteRTStream((out / "stream_tflite_float32.tflite").read_bytes()),
        OnnxStream((out / "stream_onnx_float32.onnx").read_bytes()),
    ):
        got = np.stack(
            [
                run_chunks(
                    stepper.step,
                    real_inputs["signal"][i],
                    stream["state_sizes"],
                    stream["chunk_len"],
                    real_inputs["side"][i],
                )
                for i in range(50)
            ]
        )
        np.testing.assert_allclose(got, whole[:50], atol=1e-5)


def test_the_runtime_imports_and_runs_without_tensorflow(exported):
    # Nor scipy.signal: importing it costs ~75 MB of RSS; the IIR kernel is loaded alone.
    _, out, _ = exported
    code = f"""
import sys
import numpy as np
from pipeline.manifest import load_manifest
from pipeline.preprocess import Preprocessor, PreprocessSpec
from pipeline.runtime.backends import LiteRTModel, OnnxModel
from pipeline.runtime.reference import NumpyLSTM
from pipeline.window.rr import RRFeatures
from pipeline.window.template import BeatTemplate
from pipeline.runtime.session import ECGSession
folder = {str(out)!r}
ECGSession(folder, "tflite_float32").push(np.random.default_rng(0).normal(0, 0.1, (3600, 2)))
ECGSession(folder, "c_int8").push(np.random.default_rng(0).normal(0, 0.1, (3600, 2)))
manifest = load_manifest(folder)
shape = [manifest.window.n_steps, manifest.window.n_channels]
x = {{"signal": np.zeros([2, *shape], np.float32), "side": np.zeros((2, 6), np.float32)}}
for name, cls in (("tflite_int8.tflite", LiteRTModel), ("onnx_float32.onnx", OnnxModel)):
    cls(open(folder + "/" + name, "rb").read()).predict(x)
NumpyLSTM.from_file(folder + "/reference_float32.npz").predict(x)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras", "wfdb", "pyedflib")
               or m == "scipy.signal")
print(heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_manifest_lists_the_reference_weights(exported):
    _, out, manifest = exported
    ref = next(a for a in manifest["artifacts"] if a["name"] == "reference_float32")
    assert ref["status"] == "ok" and ref["vs_float"]["max_abs_diff"] < 1e-5
    load_manifest(out)  # its sha256 is checked like every other file
