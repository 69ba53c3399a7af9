"""Integer models that keep float's decisions: the state inside the integer chunk graph,
step by step on real held-out windows; streaming against whole-window int8; calibration
that covers the state's range (and a warning when it does not); the agreement mark that
keeps validate from recommending an artifact; slim flatbuffers."""

import numpy as np
import pytest

from pipeline.export import streaming as st
from pipeline.runtime.backends import LiteRTModel, LiteRTStream, run_chunks
from pipeline.runtime.reference import NumpyLSTM


def _held_out(out):
    """The 48 held-out windows export keeps for the firmware check (signal, side or None)."""
    with np.load(out / "firmware_check_windows.npz", allow_pickle=False) as data:
        return data["signal"], (data["side"] if "side" in data.files else None)


def _float_steps(ref: NumpyLSTM, window, side):
    """The float reference's (h, c) after every step, one step per call."""
    states = [np.zeros((1, ref.units[0]), np.float32)] * 2
    hs, cs = [], []
    for t in range(len(window)):
        feed = {"chunk": window[None, t : t + 1], "h_0": states[0], "c_0": states[1]}
        if side is not None:
            feed["side"] = side[None]
        _, states = ref.step(feed)
        hs.append(states[0][0])
        cs.append(states[1][0])
    return np.asarray(hs), np.asarray(cs)


#: Bounds on |integer - float| of the state after any step of a whole window, int16x8 chunk
#: graph (16-bit activations and state, per-channel 8-bit weights, calibrated on the
#: windows holding each unit's extremes). Why bounded: a step adds the weights' rounding
#: (<= 1/254 of each gate row's largest weight, times |input| and |h| <= 1) and the 16-bit
#: rounding (calibrated range / 65536); the forget gate (< 1) shrinks what earlier steps
#: left, so the error settles instead of growing with the window, and h = o * tanh(c) moves
#: by at most the c error. Measured on the fixtures' windows: ECG (126 steps) h 0.0009,
#: c 0.0020. Bonn's input is divided by its running RMS (scale-free EEG): a window's
#: samples reach 5-10 RMS in a spike where the mV-scaled input stayed under 2, and the
#: error grows with |input| (max 5.6 against ECG's 3.0) and with the state's calibrated
#: range: h 0.0102, c 0.041 (174 steps; 0.0012 and 0.0025 before the normalisation).
#: The bounds leave about 2x.
STATE_BOUND = {"ecg-mitdb": (0.005, 0.01), "eeg-bonn": (0.025, 0.08)}


@pytest.mark.parametrize("fixture", ["exported", "exported_bonn"])
def test_the_16bit_chunk_graph_keeps_the_state_near_float_at_every_step_of_a_window(fixture, request):
    _, out, manifest = request.getfixturevalue(fixture)
    stream = manifest["streaming"]
    ref = NumpyLSTM.from_file(out / "reference_float32.npz")
    blob = (out / "stream_tflite_int16x8.tflite").read_bytes()
    signal, side = _held_out(out)
    err_h, err_c = [], []
    for i in range(0, len(signal), 4):  # 12 windows: every step read back
        h, c = st.per_step_states(
            blob, signal[i], stream["state_sizes"], stream["chunk_len"], None if side is None else side[i]
        )
        fh, fc = _float_steps(ref, signal[i], None if side is None else side[i])
        err_h.append(np.abs(h - fh).max(axis=1))
        err_c.append(np.abs(c - fc).max(axis=1))
    err_h, err_c = np.max(err_h, axis=0), np.max(err_c, axis=0)
    assert len(err_c) == manifest["window"]["n_steps"]
    bound_h, bound_c = STATE_BOUND[manifest["task"]]
    print(f"{manifest['task']}: max |x| {np.abs(signal).max():.2f}, h {err_h.max():.4f}, c {err_c.max():.4f}")
    assert err_h.max() <= bound_h, err_h
    assert err_c.max() <= bound_c, err_c
    # Bounded, not growing: the last third of the window is no worse than twice the worst
    # of the first two thirds.
    third = len(err_c) // 3
    assert err_c[-third:].max() <= 2 * err_c[:-third].max() + 1e-3


def test_the_8bit_chunk_graph_cannot_carry_the_cell_state(exported):
    """Why stream_tflite_int8 misses the target: its cell state is an 8-bit tensor at every
    step, so its error is many 16-bit graphs' worth (measured on the fixture: c 0.044 against
    0.002, ~20x; recorded, and marked in the manifest)."""
    _, out, manifest = exported
    stream = manifest["streaming"]
    ref = NumpyLSTM.from_file(out / "reference_float32.npz")
    signal, side = _held_out(out)
    worst = {}
    for name in ("stream_tflite_int8", "stream_tflite_int16x8"):
        blob = (out / f"{name}.tflite").read_bytes()
        worst[name] = max(
            np.abs(
                st.per_step_states(blob, signal[i], stream["state_sizes"], stream["chunk_len"], side[i])[1]
                - _float_steps(ref, signal[i], side[i])[1]
            ).max()
            for i in range(0, len(signal), 8)
        )
    assert worst["stream_tflite_int8"] > 5 * worst["stream_tflite_int16x8"], worst


#: Decisions of the integer chunk graph streamed chunk by chunk, against the whole-window
#: int8 model, on the 48 held-out ECG windows: both are held to float at export, so they
#: may differ only where either differs from float; on the 2-epoch fixture each keeps
#: float's decision on >= 95 % of windows, so >= 90 % equal is the stated agreement. (The
#: 2-epoch Bonn fixture is no test of decisions: its float top-two margins on held-out
#: windows are ~0, every window a tie; its per-step state is tested above.)
STREAM_VS_WHOLE = {"ecg-mitdb": 0.90}


@pytest.mark.parametrize("fixture", ["exported"])
def test_streamed_integer_decisions_equal_whole_window_int8_within_the_stated_agreement(fixture, request):
    _, out, manifest = request.getfixturevalue(fixture)
    stream = manifest["streaming"]
    signal, side = _held_out(out)
    whole = LiteRTModel((out / "tflite_int8.tflite").read_bytes())
    inputs = {"signal": signal, **({"side": side} if side is not None else {})}
    p_whole = whole.predict(inputs)
    runner = LiteRTStream((out / "stream_tflite_int16x8.tflite").read_bytes())
    p_stream = np.stack(
        [
            run_chunks(
                runner.step, signal[i], stream["state_sizes"], stream["chunk_len"], None if side is None else side[i]
            )
            for i in range(len(signal))
        ]
    )
    agreement = float((p_whole.argmax(1) == p_stream.argmax(1)).mean())
    assert agreement >= STREAM_VS_WHOLE[manifest["task"]], agreement


def test_a_representative_set_short_of_the_state_range_is_warned_with_the_ranges(exported):
    _, out, _ = exported
    signal, _ = _held_out(out)
    with np.load(out / "reference_float32.npz") as data:
        weights = {k: data[k] for k in data.files}
    training = st.state_ranges(weights, signal)
    c_lo, c_hi = training["layers"][0]["c"]
    assert c_lo < 0 < c_hi
    # Every unit's extreme is held by one of the windows state_ranges names: together
    # they cover the range by construction.
    extreme = st.state_ranges(weights, signal[training["extreme_windows"]])
    assert extreme["layers"][0]["c"] == pytest.approx(training["layers"][0]["c"])
    quiet = np.argsort(
        [np.abs(st.state_ranges(weights, signal[i : i + 1])["layers"][0]["c"]).max() for i in range(len(signal))]
    )[:2]
    with pytest.warns(
        st.StateRangeWarning,
        match=r"c_0 seen in \[-?\d+\.\d\d, -?\d+\.\d\d\], training split "
        rf"\[{c_lo:.2f}, {c_hi:.2f}\]",
    ):
        cover = st.state_coverage(st.state_ranges(weights, signal[quiet]), training)
    assert not cover["covered"] and cover["c_0"]["coverage"] < st.MIN_STATE_COVERAGE
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st.state_coverage(extreme, training)["covered"]


def test_export_marks_each_quantised_artifact_against_the_agreement_target(exported):
    from pipeline.export.export import MIN_AGREEMENT

    _, _, manifest = exported
    marked = [a for a in manifest["artifacts"] if "meets_agreement_target" in a]
    assert {"tflite_int8", "stream_tflite_int8", "stream_tflite_int16x8", "c_int8"} <= {a["name"] for a in marked}
    for a in marked:
        assert (
            a["meets_agreement_target"] == (a["vs_float"]["agreement"] >= MIN_AGREEMENT) and a["precision"] != "float32"
        )
    assert "meets_agreement_target" not in next(a for a in manifest["artifacts"] if a["name"] == "tflite_float32")
    cal = manifest["streaming"]["calibration"]
    assert cal["state_coverage"]["covered"] and cal["state_extreme_windows"] >= 2


def test_validate_never_recommends_an_artifact_that_missed_the_agreement_target():
    from pipeline.validate.validate import recommend

    def row(name, x_real_time, agreement_pct, meets):
        return {
            "artifact": name,
            "status": "ok",
            "x_real_time": x_real_time,
            "agreement_pct": agreement_pct,
            "peak_rss_mb": 50.0,
            "size_bytes": 50_000,
            "p99_latency_ms": 0.3,
            "macro_f1_drop_pt": 0.1,
            "meets_agreement_target": meets,
        }

    rows = [
        row("reference_float32", 200.0, 100.0, None),
        row("stream_tflite_int8", 900.0, 99.6, False),
        row("stream_tflite_int16x8", 850.0, 99.7, True),
    ]
    pick = recommend(rows, [], None)
    assert pick["raspberry_pi_cpu"]["artifact"] == "stream_tflite_int16x8"
    assert pick["microcontroller"]["artifact"] == "stream_tflite_int16x8"
    rows[2]["meets_agreement_target"] = False
    pick = recommend(rows, [], None)
    assert pick["raspberry_pi_cpu"]["artifact"] is None  # nor is the numpy reference a pick
    assert pick["microcontroller"]["artifact"] is None and "agreement target" in pick["microcontroller"]["reason"]


def test_slim_flatbuffers_compute_bit_identical_outputs_in_fewer_bytes(exported):
    from tensorflow.lite.python.util import _convert_model_from_bytearray_to_object

    from pipeline.export.graph import rebuild_fixed_batch
    from pipeline.export.tflite import convert, slim
    from pipeline.train.model import load_model

    run, out, manifest = exported
    signal, side = _held_out(out)
    inputs = {"signal": signal, "side": side}
    fixed = rebuild_fixed_batch(load_model(run / "model.keras"), 1)
    raw = convert(fixed, "float32", None, slim_output=False)
    thin = slim(raw)
    assert len(thin) < len(raw)
    assert np.array_equal(LiteRTModel(raw).predict(inputs), LiteRTModel(thin).predict(inputs))
    # What export shipped: no inner tensor names, no calibration min/max; inputs keep names.
    shipped = (out / "tflite_int8.tflite").read_bytes()
    graph = _convert_model_from_bytearray_to_object(bytearray(shipped)).subgraphs[0]
    io = set(graph.inputs.tolist()) | set(graph.outputs.tolist())
    assert all(t.name is None for i, t in enumerate(graph.tensors) if i not in io)
    assert all(t.quantization is None or t.quantization.min is None for t in graph.tensors)
    assert {t["name"] for t in next(a for a in manifest["artifacts"] if a["name"] == "tflite_int8")["inputs"]} == {
        "signal",
        "side",
    }


def test_export_records_which_tflite_artifacts_tflite_runtime_2_14_runs(exported):
    _, _, manifest = exported
    tflite = [a for a in manifest["artifacts"] if a["format"] == "tflite" and a["status"] == "ok"]
    for a in tflite:
        assert a["stored_as"] == "flatbuffer" and a["tflite_runtime"]["runtime"] == "tflite-runtime 2.14.0"
    by = {a["name"]: a["tflite_runtime"] for a in tflite}
    for name in (
        "tflite_float32",
        "tflite_int8",
        "stream_tflite_float32",
        "stream_tflite_int8",
        "stream_tflite_int16x8",
    ):
        assert by[name]["supported"], (name, by[name])
    # The dynamic-range chunk graph uses FULLY_CONNECTED v12 (per-channel hybrid), newer than 2.14.
    assert not by["stream_tflite_dynamic_int8"]["supported"]
    assert any(n.startswith("FULLY_CONNECTED v12") for n in by["stream_tflite_dynamic_int8"]["needs"])
