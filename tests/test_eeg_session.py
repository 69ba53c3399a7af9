"""The streaming EEG session on real Bonn segments: chunk-plus-state windows equal the
whole-window float model; any chunking gives the same events."""

import numpy as np
import pytest
from chunking import push_in_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.preprocess import PreprocessSpec
from pipeline.read.bonn import read_bonn
from pipeline.runtime.reference import NumpyLSTM
from pipeline.runtime.session import EEGSession, SessionError
from pipeline.window.eeg import fixed_windows


@pytest.fixture(scope="module")
def seizure():
    return read_bonn("E_S", "S001")


def _offline(manifest, out, record):
    spec = PreprocessSpec.from_dict(manifest["preprocess"])
    w = fixed_windows(
        record, spec, manifest["window"]["n_steps"] / spec.fs_out_hz, manifest["window"]["hop_samples"] / spec.fs_out_hz
    )
    return w, NumpyLSTM.from_file(out / "reference_float32.npz").predict({"signal": w.x})


@pytest.mark.parametrize("artifact", ["stream_tflite_float32", "stream_onnx_float32", "reference_float32"])
def test_streamed_windows_equal_the_whole_window_float_model(exported_bonn, seizure, artifact):
    _, out, manifest = exported_bonn
    windows, reference = _offline(manifest, out, seizure)
    events = EEGSession(out, artifact).push(seizure.signal)
    assert len(events) == len(windows) == 22  # 23.6 s, 2 s windows every 1 s
    assert [e["start_sample"] for e in events] == (windows.start * 2).tolist()
    np.testing.assert_allclose(np.array([e["probs"] for e in events]), reference, atol=1e-5)


@settings(max_examples=8, deadline=None)
@given(sizes=st.lists(st.one_of(st.just(1), st.integers(1, 100), st.integers(101, 3000)), min_size=1, max_size=10))
def test_any_chunking_gives_the_same_windows(exported_bonn, seizure, sizes):
    _, out, _ = exported_bonn
    whole = EEGSession(out, "reference_float32").push(seizure.signal)
    assert push_in_chunks(EEGSession(out, "reference_float32").push, seizure.signal, sizes) == whole


def test_the_decision_comes_as_the_window_closes(exported_bonn, seizure):
    _, out, manifest = exported_bonn
    session = EEGSession(out, "stream_onnx_float32", block_s=0)  # every push processed at once
    window_in = int(manifest["window"]["n_steps"] * manifest["preprocess"]["decimate"])
    assert session.push(seizure.signal[: window_in - 2]) == []
    (event,) = session.push(seizure.signal[window_in - 2 : window_in])
    assert event["end_sample"] == window_in


def test_whole_window_artifacts_and_ecg_models_are_refused(exported_bonn, exported):
    _, out, _ = exported_bonn
    with pytest.raises(SessionError, match="whole-window graph; choose a stream_"):
        EEGSession(out, "tflite_float32")
    with pytest.raises(SessionError, match="not an EEG window classifier"):
        EEGSession(exported[1], "stream_tflite_float32")
