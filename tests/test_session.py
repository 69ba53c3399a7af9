"""The streaming ECG session on real MIT-BIH signal: chunking, equality with an offline
float computation on the same beats, gaps, and bad input."""

import json

import numpy as np
import pytest
from chunking import decide_whole, push_in_chunks, stream_stdin
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.read.mitdb import read_mitdb
from pipeline.runtime.session import ECGSession, SessionError


@pytest.fixture(scope="module")
def ecg_60s():
    """One minute of record 213 (V and F beats), both leads, in mV."""
    return read_mitdb("213", channels=["MLII", "V1|V2|V4|V5"]).signal[: 360 * 60].astype(np.float64)


def _stream(session, x, sizes):
    return push_in_chunks(session.push, x, sizes)


def _stream_flushed(session, x, sizes):
    """Every event of x pushed in chunks, then the flush (as `biosig-edge stream` ends)."""
    return _stream(session, x, sizes) + session.flush()


@settings(max_examples=6, deadline=None)
@given(sizes=st.lists(st.one_of(st.just(1), st.integers(1, 64), st.integers(65, 8000)), min_size=1, max_size=12))
def test_any_chunking_gives_the_same_events(exported, ecg_60s, sizes):
    _, out, _ = exported
    whole = decide_whole(ECGSession(out, "reference_float32"), ecg_60s)
    assert len(whole) > 60
    # Pushes shorter than the session's block are gathered: what the last ones hold is decided
    # at the flush, as `biosig-edge stream` flushes at the end of its input.
    assert _stream_flushed(ECGSession(out, "reference_float32"), ecg_60s, sizes) == whole


def test_streamed_beats_equal_the_numpy_reference_on_the_same_inputs(exported, ecg_60s):
    from pipeline.runtime.reference import NumpyLSTM

    _, out, manifest = exported
    beats = [e for e in ECGSession(out, "tflite_float32").push(ecg_60s) if e["type"] == "beat"]
    inputs = _session_inputs(out, ecg_60s)
    assert inputs["signal"].shape == (len(beats), 126, 2 * 2)  # beat and template difference
    probs = NumpyLSTM.from_file(out / "reference_float32.npz").predict(inputs)
    np.testing.assert_allclose(np.array([b["probs"] for b in beats]), probs, atol=1e-5)
    assert [b["class"] for b in beats] == [manifest["classes"][i] for i in probs.argmax(1)]


def test_session_inputs_equal_offline_windows_built_from_the_same_beats(exported, ecg_60s):
    """The session's window, template and RR inputs equal the offline training code's."""
    from pipeline.preprocess import Preprocessor, PreprocessSpec
    from pipeline.window.rr import RR_FEATURE_NAMES, rr_features
    from pipeline.window.side import Standardiser
    from pipeline.window.template import template_inputs

    _, out, manifest = exported
    detected = []
    session = ECGSession(out, "reference_float32")
    original = session.qrs.push
    session.qrs.push = lambda chunk: detected.extend(found := original(chunk)) or found
    session.push(ecg_60s)
    r = np.array(detected)
    spec = PreprocessSpec.from_dict(manifest["preprocess"])
    y = Preprocessor(spec, 2).run(ecg_60s, 360.0)
    inside = (r - 45 >= 0) & (r + 81 <= len(y))
    windows = template_inputs(np.stack([y[k - 45 : k + 81] for k in r[inside]]))
    feats = rr_features(r / spec.fs_out_hz)[inside]
    keep = ~np.isnan(feats).any(axis=1)
    side = manifest["side_features"]
    cols = [RR_FEATURE_NAMES.index(n) for n in side["names"]]
    std = Standardiser(np.asarray(side["mean"]), np.asarray(side["std"]))
    expected = {"signal": windows[keep], "side": std(feats[keep][:, cols])}
    got = _session_inputs(out, ecg_60s)
    n = len(got["signal"])  # the last beat awaits its successor
    np.testing.assert_allclose(got["signal"], expected["signal"][:n], atol=1e-6)
    np.testing.assert_allclose(got["side"], expected["side"][:n], atol=1e-6)


def _session_inputs(out, x):
    """The (window, side) inputs an ECG session builds, captured from a numpy-backed session."""
    session = ECGSession(out, "reference_float32")
    captured = {"signal": [], "side": []}
    original = session.model.predict

    def spy(inputs):
        captured["signal"].append(inputs["signal"][0])
        captured["side"].append(inputs["side"][0])
        return original(inputs)

    session.model.predict = spy
    session.push(x)
    return {k: np.stack(v) for k, v in captured.items()}


def test_a_gap_of_nan_is_reported_and_the_session_recovers(exported, ecg_60s):
    _, out, _ = exported
    x = ecg_60s.copy()
    x[360 * 20 : 360 * 22] = np.nan  # two seconds of lead-off
    events = _stream(ECGSession(out, "tflite_float32"), x, [500])
    quality = [e for e in events if e["type"] == "signal_quality"]
    assert [(q["kind"], q["sample"]) for q in quality] == [("nonfinite", 7200), ("recovered", 7920)]
    assert quality[1]["gap_samples"] == 720
    beats = [e for e in events if e["type"] == "beat"]
    assert any(b["sample"] < 7200 for b in beats) and sum(b["sample"] > 7920 for b in beats) > 30
    assert all(np.isfinite(b["probs"]).all() for b in beats)


def test_wrong_channels_and_dtype_are_clear_errors(exported):
    _, out, _ = exported
    session = ECGSession(out, "tflite_float32")
    with pytest.raises(SessionError, match=r"shape \(n, 2\) for channels \['MLII', 'V1\|V2\|V4\|V5'\], got \(10, 3\)"):
        session.push(np.zeros((10, 3)))
    with pytest.raises(SessionError, match="must be numbers"):
        session.push(np.array([["a", "b"]]))
    with pytest.raises(SessionError, match="no usable artifact 'tflite_int4'"):
        ECGSession(out, "tflite_int4")


def test_beats_are_found_where_the_cardiologists_put_them(exported, ecg_60s):
    from pipeline.metrics import match_beats

    _, out, _ = exported
    record = read_mitdb("213", channels=["MLII"])
    truth = record.beats.sample[record.beats.sample < 360 * 60]
    beats = [e["sample"] for e in ECGSession(out, "onnx_float32").push(ecg_60s) if e["type"] == "beat"]
    m = match_beats(truth[2:-2], np.array(beats), tolerance=54)
    assert m["se"] >= 0.97 and m["ppv"] >= 0.97, m
    assert json.dumps(beats)  # events are JSON-ready


def test_stream_command_reads_stdin_and_prints_json_lines(exported, ecg_60s, tmp_path):
    import subprocess
    import sys

    _, out, _ = exported
    text = "\n".join(f"{a:.5f},{b:.5f}" for a, b in ecg_60s[: 360 * 20]) + "\n"
    result = stream_stdin(sys.executable, out, text, 360, "mV", "--artifact", "onnx_float32")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    direct = decide_whole(ECGSession(out, "onnx_float32"), ecg_60s[: 360 * 20].round(5))
    assert [e["sample"] for e in events] == [e["sample"] for e in direct] and len(events) > 15
    assert "real time" in result.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "stream", str(out), "-", "--fs", "360", "--units", "mV"],
        input="1 2 3\n",
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "stdin line 1: 3 values, expected 2" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_nan_and_flat_stretches_stream_to_the_end_with_quality_events(exported, ecg_60s):
    _, out, _ = exported
    x = ecg_60s.copy()
    x[360 * 10 : 360 * 11] = np.nan  # 1 s of NaN
    x[360 * 30 : 360 * 33, 1] = x[360 * 30, 1]  # 3 s of lead-off on the second lead
    events = _stream_flushed(ECGSession(out, "tflite_float32"), x, [777])
    quality = [(e["kind"], e["sample"]) for e in events if e["type"] == "signal_quality"]
    # The flat line is known once it has lasted 1 s (360 samples) and ends with the stretch.
    assert quality == [("nonfinite", 3600), ("recovered", 3960), ("flat", 360 * 30 + 359), ("recovered", 360 * 33)]
    beats = [e["sample"] for e in events if e["type"] == "beat"]
    assert beats[-1] > 360 * 55  # it went on to the end
    assert not [b for b in beats if 3600 <= b < 3960]
    assert _stream_flushed(ECGSession(out, "tflite_float32"), x, [1, 5000, 13]) == events


def test_quantised_streaming_agrees_with_float_as_recorded_at_export(exported, ecg_60s):
    _, out, manifest = exported
    recorded = next(a for a in manifest["artifacts"] if a["name"] == "tflite_int8")["vs_float"]["agreement"]
    float_beats = [e for e in ECGSession(out, "tflite_float32").push(ecg_60s) if e["type"] == "beat"]
    int8_beats = [e for e in ECGSession(out, "tflite_int8").push(ecg_60s) if e["type"] == "beat"]
    assert [b["sample"] for b in int8_beats] == [b["sample"] for b in float_beats]  # same detector
    agreement = np.mean([a["class"] == b["class"] for a, b in zip(int8_beats, float_beats)])
    # About 70 beats here against 300 at export: allow the spread of the smaller sample.
    assert agreement >= recorded - 0.05, (agreement, recorded)
