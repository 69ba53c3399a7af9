"""The interpreter the design card names: a device install with tflite-runtime 2.14 (its
last release) instead of ai-edge-litert streams real records, and its decisions equal
LiteRT's; export's record of which artifacts it can run matches what it does run.

.ci/run builds that environment and names its python in BIOSIG_EDGE_TFLITE_RUNTIME_PYTHON.
Without it the tests skip; under CI=true its absence is a failure.
"""

import json
import os
import subprocess

import numpy as np
import pytest
from chunking import decide_whole, stream_stdin

from pipeline.read.mitdb import read_mitdb
from pipeline.runtime.session import ECGSession, EEGSession

TFLITE_RUNTIME_PYTHON = os.environ.get("BIOSIG_EDGE_TFLITE_RUNTIME_PYTHON")


@pytest.fixture(scope="module")
def tflite_runtime_python():
    if not TFLITE_RUNTIME_PYTHON:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but BIOSIG_EDGE_TFLITE_RUNTIME_PYTHON is not set: .ci/run must build .venv-tflite-runtime"
            )
        pytest.skip("no tflite-runtime environment (set BIOSIG_EDGE_TFLITE_RUNTIME_PYTHON; .ci/run does)")
    return TFLITE_RUNTIME_PYTHON


def _stream(python, folder, artifact, text, fs_hz, units):
    result = stream_stdin(python, folder, text, fs_hz, units, "--artifact", artifact)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_the_environment_has_tflite_runtime_and_no_litert(tflite_runtime_python):
    code = (
        "import importlib.util as u; from pipeline.runtime.backends import litert_interpreter_class as c; "
        "print(c()[1], [m for m in ('ai_edge_litert', 'tensorflow', 'onnxruntime') if u.find_spec(m)])"
    )
    out = subprocess.run([tflite_runtime_python, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split(None, 1) == ["tflite_runtime", "[]\n"]


@pytest.mark.parametrize("artifact", ["tflite_int8", "tflite_float32"])
def test_tflite_runtime_streams_an_ecg_record_with_litert_s_decisions(tflite_runtime_python, exported, artifact):
    _, out, _ = exported
    signal = read_mitdb("213", channels=["MLII", "V1|V2|V4|V5"]).signal[: 360 * 60].astype(np.float64)
    text = "\n".join(f"{a:.4f} {b:.4f}" for a, b in signal) + "\n"
    beats = [e for e in _stream(tflite_runtime_python, out, artifact, text, 360, "mV") if e["type"] == "beat"]
    assert len(beats) > 60
    here = decide_whole(ECGSession(out, artifact), np.loadtxt(text.splitlines()))  # ai-edge-litert
    assert [b["sample"] for b in beats] == [b["sample"] for b in here]
    # float32: the same kernels' arithmetic. int8: the two releases' int8 LSTM kernels round
    # differently, so probabilities (int8 outputs, steps of 1/256) differ by up to 2 steps
    # (measured), and a near-tie can go the other way (1 of ~70 beats of this 2-epoch model)
    atol = 1e-6 if artifact == "tflite_float32" else 3 / 256
    _same_decisions_up_to_ties(beats, here, atol)


def _same_decisions_up_to_ties(theirs, ours, atol):
    """Probabilities within atol, and the same class wherever LiteRT's top two are more
    than 2 * atol apart (a closer call may go either way within the rounding)."""
    p_theirs = np.array([e["probs"] for e in theirs])
    p_ours = np.array([e["probs"] for e in ours])
    assert np.allclose(p_theirs, p_ours, atol=atol), np.abs(p_theirs - p_ours).max()
    top2 = np.sort(p_ours, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * atol  # (the 2-epoch fixtures are unsure: 30-60 % clear)
    assert clear.any()
    assert [e["class"] for e, c in zip(theirs, clear) if c] == [e["class"] for e, c in zip(ours, clear) if c]


def test_tflite_runtime_streams_an_eeg_segment_through_the_integer_chunk_graph(tflite_runtime_python, exported_bonn):
    from pipeline.read.bonn import bonn_segment_paths, read_bonn_segment

    _, out, manifest = exported_bonn
    paths = {f"{name}/{p.stem}": p for name, ps in bonn_segment_paths().items() for p in ps}
    held_out = sorted(manifest["split"]["test"], key=lambda g: not g.startswith("E_S"))[0]  # a seizure one if any
    path = paths[held_out]
    signal = read_bonn_segment(path).signal[:, 0].astype(np.float64)
    text = "\n".join(f"{v:.3f}" for v in signal) + "\n"
    for artifact in ("stream_tflite_int16x8", "stream_tflite_int8"):
        windows = [
            e for e in _stream(tflite_runtime_python, out, artifact, text, 173.61, "uV") if e["type"] == "window"
        ]
        assert len(windows) >= 20
        here = decide_whole(EEGSession(out, artifact), np.loadtxt(text.splitlines())[:, None])
        assert [w["start_sample"] for w in windows] == [w["start_sample"] for w in here]
        _same_decisions_up_to_ties(windows, here, 3 / 256)


def test_export_s_tflite_runtime_record_matches_what_tflite_runtime_runs(tflite_runtime_python, exported):
    _, out, manifest = exported
    tflite = [a for a in manifest["artifacts"] if a["format"] == "tflite" and a["status"] == "ok"]
    code = (
        "import sys, json, numpy as np\n"
        "from tflite_runtime.interpreter import Interpreter\n"
        "res = {}\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        it = Interpreter(model_path=path, num_threads=1); it.allocate_tensors()\n"
        "        for d in it.get_input_details(): it.set_tensor(d['index'], np.zeros(d['shape'], d['dtype']))\n"
        "        it.invoke(); res[path] = True\n"
        "    except Exception:\n"
        "        res[path] = False\n"
        "print(json.dumps(res))\n"
    )
    paths = [str(out / a["file"]) for a in tflite]
    result = subprocess.run([tflite_runtime_python, "-c", code, *paths], capture_output=True, text=True, check=True)
    runs = json.loads(result.stdout.splitlines()[-1])
    assert {a["name"]: runs[str(out / a["file"])] for a in tflite} == {
        a["name"]: a["tflite_runtime"]["supported"] for a in tflite
    }
