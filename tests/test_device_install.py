"""A device-only install (the core and the `device` extra: numpy, scipy, tqdm, ai-edge-litert)
streams a real record from stdin, without TensorFlow, wfdb or ONNX Runtime present.

.ci/run builds that environment and names its python in BIOSIG_EDGE_DEVICE_PYTHON. On a
developer machine without it the test is skipped; under CI=true its absence is a failure.
"""

import json
import os
import subprocess

import numpy as np
import pytest
from chunking import decide_whole, stream_stdin

from pipeline.read.mitdb import read_mitdb
from pipeline.runtime.session import ECGSession

DEVICE_PYTHON = os.environ.get("BIOSIG_EDGE_DEVICE_PYTHON")


@pytest.fixture(scope="module")
def device_python():
    if not DEVICE_PYTHON:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but BIOSIG_EDGE_DEVICE_PYTHON is not set: .ci/run must build .venv-device")
        pytest.skip("no device-only environment (set BIOSIG_EDGE_DEVICE_PYTHON; .ci/run does)")
    return DEVICE_PYTHON


def test_the_device_environment_has_no_training_stack(device_python):
    code = (
        "import importlib.util as u; "
        "print([m for m in ('tensorflow', 'tf_keras', 'wfdb', 'pyedflib', 'onnxruntime') if u.find_spec(m)])"
    )
    out = subprocess.run([device_python, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_device_only_install_streams_a_record_from_stdin(device_python, exported):
    _, out, _ = exported
    signal = read_mitdb("213", channels=["MLII", "V1|V2|V4|V5"]).signal[: 360 * 60].astype(np.float64)
    text = "\n".join(f"{a:.4f} {b:.4f}" for a, b in signal) + "\n"
    result = stream_stdin(device_python, out, text, 360, "mV", "--artifact", "tflite_int8")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    beats = [e for e in events if e["type"] == "beat"]
    assert len(beats) > 60
    # The same decisions as this (training-side) environment makes on the same text.
    # (the stream flushes the beats still waiting for their signal-quality lag at the end)
    here = decide_whole(ECGSession(out, "tflite_int8"), np.loadtxt(text.splitlines()))
    assert [(b["sample"], b["class"]) for b in beats] == [(b["sample"], b["class"]) for b in here]
