"""The signal chain in C beside the model (issue 22, first layer), in layers and without
TensorFlow: the QRS detector (firmware_export/runtime/bse_qrs.c) against the Python one
(pipeline/runtime/qrs.py) on real MIT-BIH DS2 records, its chunk invariance, then the RR
features (bse_rr.c) against pipeline/window/rr.py on annotated beats. Compiled by the host
gcc with the CPU library's flags (warnings as errors, no contraction) and called through
ctypes; the Cortex-M4 build where arm-none-eabi-gcc is.

The detector's input is what the session gives it: the record's MLII through the ECG task's
preprocessing (0.5-40 Hz band-pass, 60 Hz notch, every 2nd sample: 180 Hz, float32); both
detectors get the same float32 array. The C computes in float32 where Python computes in
float64, yet the beats are the same, sample for sample, on all 22 DS2 records: 49,675 of
49,675 at 180 Hz, and 49,690 of 49,690 on the raw MLII at 360 Hz (measured once over the
whole records for issue 22's report). So the tests below hold them equal, no tolerance.
The one comparison where float32 could not stand in for float64 (the R search's
|x - median| on ADC steps) the C makes exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from chunking import decide_whole, push_in_chunks
from tools import has, needs

from firmware_export import build, c_model
from firmware_export.c_chain import ChainLibrary, ECGChain, beat_config
from pipeline.manifest import read_manifest
from pipeline.preprocess import PreprocessSpec
from pipeline.preprocess.chain import Preprocessor
from pipeline.read.mitdb import read_mitdb
from pipeline.read.record import SignalSpec
from pipeline.read.splits import mitdb_split
from pipeline.runtime.qrs import PanTompkins
from pipeline.runtime.quality import LengthTransformQRS
from pipeline.runtime.session import ECGSession
from pipeline.window.ecg import normalise_windows
from pipeline.window.rr import RR_FEATURE_NAMES, RRFeatures
from pipeline.window.side import Standardiser
from pipeline.window.template import BeatTemplate

pytestmark = pytest.mark.fast

#: The ECG task's preprocessing (pipeline/train/configs/ecg-mitdb*.toml): 360 Hz in, 180 Hz out.
ECG_SPEC = PreprocessSpec(360.0, 2, 0.5, 40.0, 60.0)
MODEL_FS_HZ = 180.0
#: The ECG task's beat window at 180 Hz (0.25 s before the R, 0.45 s from it), template
#: normalisation, and six side features standardised with a training split's mean and std
#: (those of an exported ecg-mitdb artifact).
SIDE_NAMES = ("pre_rr_norm", "post_rr_norm", "local_rr_norm", "pre_rr_s", "post_rr_s", "avg_rr_s")
SIDE_MEAN = (0.99874, 0.99968, 0.99874, 0.77844, 0.77848, 0.78085)
SIDE_STD = (0.35296, 0.48797, 0.12833, 0.49549, 0.49560, 0.16915)
BEAT_CONFIG = beat_config(2, 45, 81, "template", 1 / 16, 0.05, SIDE_NAMES, SIDE_MEAN, SIDE_STD, 5.0)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The QRS detector and RR features as one shared library, with the detector's
    configuration generated at 180 Hz (the model's rate), 360 Hz (MIT-BIH's) and 400 Hz
    (beyond the 360 Hz the state is compiled for)."""
    needs("gcc")
    out = tmp_path_factory.mktemp("c_chain")
    configs = {"qrs_180": 180.0, "qrs_360": 360.0, "qrs_400": 400.0}
    beats = {
        "beat_template": BEAT_CONFIG,
        "beat_zscore": {**BEAT_CONFIG, "normalise": 1},
        "beat_wide": {**BEAT_CONFIG, "n_before_samples": 200, "n_after_samples": 100},
    }
    wqrs = {"wqrs_180": 180.0}
    return ChainLibrary(build.build_chain_library(out, configs, beat_configs=beats, wqrs_configs=wqrs))


def session_input(record: str) -> np.ndarray:
    """What the session feeds its detector: MLII through the ECG chain, (n,) float32 at 180 Hz."""
    rec = read_mitdb(record, channels=["MLII"])
    return Preprocessor(ECG_SPEC, 1).process(rec.signal[:, :1])[:, 0]


@pytest.fixture(scope="module")
def record_105(data_dir):
    """DS2 record 105: the noisiest (search-back and two peaks of one wide complex)."""
    return session_input("105")


def test_the_records_are_ds2():
    assert {"105", "232"} <= set(mitdb_split().test)


@pytest.mark.parametrize("record", ["105", "232"])
def test_c_detector_finds_pythons_beats_on_whole_ds2_records(chain, data_dir, record):
    """Record 105 (noise: search-back, a wide complex with two integrated peaks) and 232
    (pauses of up to 6 s: search-back after 1.66 RR and learning the levels again): every
    beat at the same sample."""
    y = session_input(record)
    python = PanTompkins(MODEL_FS_HZ).push(y)
    c = chain.qrs("qrs_180").push(y)
    assert len(python) > 1500
    assert c == python


def test_c_detector_at_360_hz_on_adc_steps_places_r_as_python(chain, data_dir):
    """The raw MLII of record 117 at 360 Hz (the configuration generated at 360 Hz): its
    samples are whole ADC steps (5 uV), so an R candidate can lie exactly as far above the
    median as another below it (-0.03 and -1.75 mV about -0.89 mV, 381 s in). Python
    subtracts in float64, exactly; a float32 |x - median| rounded both to one value and
    took the first (9 samples off). The C decides that comparison exactly."""
    rec = read_mitdb("117", channels=["MLII"])
    x = rec.signal[: 400 * 360, 0].astype(np.float32)
    python = PanTompkins(360.0).push(x)
    assert 137359 in python
    assert chain.qrs("qrs_360").push(x) == python


@pytest.mark.parametrize("size", [1, 7, 360, 5000])
def test_c_detector_beats_do_not_depend_on_the_push_size(chain, record_105, size):
    """The first 3 minutes of record 105 pushed whole and `size` samples at a time (and in
    uneven pieces): the same beats, and those are Python's."""
    y = record_105[: int(180 * MODEL_FS_HZ)]
    whole = chain.qrs("qrs_180").push(y)
    assert len(whole) > 150
    assert push_in_chunks(chain.qrs("qrs_180").push, y, [size]) == whole
    assert push_in_chunks(chain.qrs("qrs_180").push, y, [size, 1, 3 * size + 2]) == whole
    if size == 5000:
        assert whole == PanTompkins(MODEL_FS_HZ).push(y)


def test_a_detector_beyond_its_compiled_rate_is_refused(chain):
    """The state is sized for 360 Hz: a 400 Hz configuration (2 s of learning = 800 samples)
    is refused at init, not run over the end of a buffer."""
    with pytest.raises(ValueError, match="status 2"):
        chain.qrs("qrs_400")


# ------------------------------------------------------------------ the second detector


@pytest.mark.parametrize("record", ["105", "232"])
def test_c_curve_length_detector_finds_pythons_beats_on_whole_ds2_records(chain, data_dir, record):
    """The session's second detector (LengthTransformQRS, whose beats the bSQI compares with
    Pan-Tompkins') in float32 C: every beat at the same sample on all of record 105 and 232
    (measured equal on all 22 DS2 records, 50,012 beats, for issue 22)."""
    y = session_input(record)
    python = push_in_chunks(LengthTransformQRS(MODEL_FS_HZ).push, y, [180])
    c = chain.wqrs("wqrs_180").push(y)
    assert len(python) > 1500
    assert c == python


@pytest.mark.parametrize("size", [1, 7, 5000])
def test_c_curve_length_detector_does_not_depend_on_the_push_size(chain, record_105, size):
    y = record_105[: int(180 * MODEL_FS_HZ)]
    whole = chain.wqrs("wqrs_180").push(y)
    assert len(whole) > 150
    assert push_in_chunks(chain.wqrs("wqrs_180").push, y, [size, 1, 3 * size + 2]) == whole


# ------------------------------------------------------------------ RR features


def python_rr(beats: np.ndarray, fs_hz: float, average_s: float = 300.0) -> list:
    tracker = RRFeatures(10, average_s)
    return [tracker.push(b / fs_hz) for b in beats]


def c_rr(chain, beats: np.ndarray, fs_hz: float, average_s: float = 300.0) -> list:
    tracker = chain.rr(fs_hz, 10, average_s)
    return [tracker.push(int(b)) for b in beats]


def test_c_rr_features_equal_pythons_on_annotated_beats(chain, data_dir):
    """Record 219's 2,154 annotated beats at 360 Hz: the 7 features within 1e-6 relative
    (float32 from exact sample counts: at most two roundings, 1.2e-7 each), except where an
    interval ends exactly 300 s before the beat. There Python compares two float64 times,
    each rounded, and keeps or drops the interval as the roundings fall; C counts samples
    and keeps it (bse_rr.h). Only the average and the ratios to it may differ there."""
    rec = read_mitdb("219", channels=["MLII"])
    beats = rec.beats.sample
    python, c = python_rr(beats, 360.0), c_rr(chain, beats, 360.0)
    ties = set((beats[np.isin(beats - 108000, beats)]).tolist())
    assert [p is None for p in python] == [v is None for v in c]
    rows = [(i, p, v) for i, (p, v) in enumerate(zip(python, c)) if p is not None]
    assert len(rows) > 2000
    differ = []
    for i, p, v in rows:
        np.testing.assert_allclose(v[:3], p[:3], rtol=1e-6)  # pre, post, local: no average
        if not np.allclose(v, p, rtol=1e-6, atol=0):
            differ.append(int(beats[i - 1]))  # the features' beat (one behind the push)
    assert set(differ) <= ties
    assert 0 < len(differ) <= 5  # 4 here: the rule is exercised


def test_rr_ring_holds_300_s_at_300_bpm(chain):
    """A 5,000-sample interval, then 36-sample ones (0.2 s at 180 Hz: 300 bpm) for 330 s: the
    average holds 1,501 intervals when the long one is about to leave (a ring one shorter
    would drop it early, and the average would fall 5x too soon)."""
    beats = np.concatenate([[0], 5000 + 36 * np.arange(int(330 * 180 / 36))])
    python, c = python_rr(beats, 180.0), c_rr(chain, beats, 180.0)
    for p, v in zip(python[2:], c[2:]):
        np.testing.assert_allclose(v, p, rtol=1e-6)


def test_rr_interval_longer_than_16_bits_of_samples(chain):
    """An interval of 70,000 samples (389 s at 180 Hz, longer than the 300 s average): stored
    apart from the uint16 ring, and the features equal Python's before, at and after it."""
    rng = np.random.default_rng(0)
    steps = np.concatenate([rng.integers(100, 200, 400), [70000], rng.integers(100, 200, 400)])
    beats = np.cumsum(steps)
    python, c = python_rr(beats, 180.0), c_rr(chain, beats, 180.0)
    for p, v in zip(python[2:], c[2:]):
        np.testing.assert_allclose(v, p, rtol=1e-6)


def test_rr_refuses_what_it_cannot_hold(chain):
    with pytest.raises(ValueError, match="status 2"):
        chain.rr(180.0, 17, 300.0)  # local_beats above BSE_RR_LOCAL_CAP
    with pytest.raises(ValueError, match="status 2"):
        chain.rr(180.0, 10, 301.0)  # average_s above BSE_RR_MAX_AVERAGE_S
    with pytest.raises(ValueError, match="status 1"):
        chain.rr(0.0, 10, 300.0)
    tracker = chain.rr(180.0)
    tracker.push(100)
    with pytest.raises(ValueError, match="must increase"):
        tracker.push(100)


# ------------------------------------------------------------------ beat windows


def two_leads(record: str) -> np.ndarray:
    """MLII and the record's other lead (V1, V2, V4 or V5: the model's two channels) through
    the ECG task's preprocessing: (n, 2) float32 at 180 Hz, what the session's ring holds."""
    rec = read_mitdb(record)
    order = [rec.channel_names.index("MLII"), 1 - rec.channel_names.index("MLII")]
    return Preprocessor(ECG_SPEC, 2).process(rec.signal[:, order])


def python_beat_inputs(y: np.ndarray, beats: list[int]) -> tuple[dict, dict]:
    """What ECGSession gives its model per beat, from the ring y (n, 2) and the detected
    beats: {beat: template-normalised window (126, 4)} for every beat whose window lies in
    the signal (each feeds the template, in order), {beat: standardised side features (6,)}
    for those with RR features (all but the first and last)."""
    template, rr = BeatTemplate(1 / 16, 0.05), RRFeatures(10, 300.0)
    standardise = Standardiser(np.array(SIDE_MEAN), np.array(SIDE_STD))
    cols = [RR_FEATURE_NAMES.index(n) for n in SIDE_NAMES]
    windows, side = {}, {}
    for prev, r in zip([None, *beats], beats):
        features = rr.push(r / MODEL_FS_HZ)
        if features is not None:
            side[prev] = standardise(features[None, cols])[0]
        if r >= 45 and r + 81 <= len(y):
            windows[r] = template.push(y[r - 45 : r + 81])
    return windows, side


def c_beat_inputs(chain, y: np.ndarray, beats: list[int], sizes: list[int]) -> tuple[dict, dict]:
    """The same from bse_beat (the ring pushed ``sizes`` samples at a time, each window taken
    as soon as it closes, as the C chain does) and bse_rr."""
    beat, rr = chain.beat("beat_template"), chain.rr(MODEL_FS_HZ)
    windows, side, pos, k, pending = {}, {}, 0, 0, list(beats)
    for prev, r in zip([None, *beats], beats):
        features = rr.push(r)
        if features is not None:
            side[prev] = beat.side(features, len(SIDE_NAMES))
    while pos < len(y):
        size = sizes[k % len(sizes)]
        beat.push(y[pos : pos + size])
        pos, k = pos + size, k + 1
        while pending:
            w = beat.window(pending[0], 126, 2)
            if isinstance(w, int) and w == beat.OPEN:
                break
            if not isinstance(w, int):
                windows[pending[0]] = beat.normalise(w)
            pending.pop(0)
    return windows, side


@pytest.mark.parametrize("record", ["105", "232"])
def test_c_beat_windows_equal_the_sessions_on_whole_ds2_records(chain, data_dir, record):
    """Every detected beat of record 105 (noise) and 232 (long pauses) through the ring, the
    window and the running template: the model's input (126 x 4: the two leads over the
    template's amplitude, then their differences from it) equals Python's within 4e-6
    absolute (measured at most 9.5e-7 over 105, 100 and 232: the template is float32 here,
    float64 there; values of order 1). The side features equal within 1e-5, except at the
    beats whose RR average keeps an interval ending exactly 300 s before them (bse_rr.h: 4
    in 105, 1 in 232; Python's float64 times may drop it there)."""
    y = two_leads(record)
    beats = PanTompkins(MODEL_FS_HZ).push(y[:, 0])
    python_w, python_s = python_beat_inputs(y, beats)
    c_w, c_s = c_beat_inputs(chain, y, beats, [180])
    assert list(c_w) == list(python_w) and len(c_w) > 1500
    worst = max(float(np.abs(c_w[r] - python_w[r]).max()) for r in c_w)
    assert 0 < worst <= 4e-6  # float32 template: not bit-equal, within the stated bound
    assert list(c_s) == list(python_s)
    beat_set = set(beats)
    ties = {r for r in beats if r - int(300 * MODEL_FS_HZ) in beat_set}
    differ = {r for r in c_s if not np.allclose(c_s[r], python_s[r], rtol=0, atol=1e-5)}
    assert differ <= ties, differ - ties


def test_c_beat_windows_do_not_depend_on_the_push_size(chain, data_dir):
    """The first 2 minutes of record 105 pushed 1, 7 and 361 samples at a time: the windows
    of 1 s pushes, bit for bit."""
    y = two_leads("105")[: int(120 * MODEL_FS_HZ)]
    beats = PanTompkins(MODEL_FS_HZ).push(y[:, 0])
    whole, _ = c_beat_inputs(chain, y, beats, [180])
    assert len(whole) > 100
    for sizes in ([1], [7], [361, 2]):
        got, _ = c_beat_inputs(chain, y, beats, sizes)
        assert list(got) == list(whole)
        for r in whole:
            np.testing.assert_array_equal(got[r], whole[r])


def test_c_beat_window_is_open_until_its_last_sample_and_off_before_the_start(chain):
    """A window closes with its 81st sample from the R; one starting before the first sample,
    or no longer in the 12 s ring, is off (the session skips it)."""
    beat = chain.beat("beat_template")
    y = np.arange(2 * 2200, dtype=np.float32).reshape(-1, 2)
    beat.push(y[:130])
    assert beat.window(44, 126, 2) == beat.OFF
    assert beat.window(50, 126, 2) == beat.OPEN  # needs samples up to 130
    beat.push(y[130:131])
    np.testing.assert_array_equal(beat.window(50, 126, 2), y[5:131])
    beat.push(y[131:])
    assert beat.window(50, 126, 2) == beat.OFF  # 2,200 samples on: overwritten
    np.testing.assert_array_equal(beat.window(2100, 126, 2), y[2055:2181])


def test_c_zscore_windows_equal_pythons(chain, data_dir):
    """normalise = "zscore": each window's channels to zero mean and unit spread, within
    1e-5 of Python's float32 numpy (which sums in another order)."""
    y = two_leads("232")[: int(60 * MODEL_FS_HZ)]
    beat = chain.beat("beat_zscore")
    beat.push(y)
    beats = [r for r in PanTompkins(MODEL_FS_HZ).push(y[:, 0]) if 45 <= r < len(y) - 81]
    windows = np.stack([y[r - 45 : r + 81] for r in beats])
    python = normalise_windows(windows, "zscore")
    c = np.stack([beat.normalise(w) for w in windows])
    np.testing.assert_allclose(c, python, rtol=0, atol=1e-5)


def test_beat_windows_beyond_the_state_are_refused(chain):
    """A 300-step window is more than BSE_BEAT_MAX_STEPS (256): refused at init."""
    with pytest.raises(ValueError, match="status 2"):
        chain.beat("beat_wide")


# ------------------------------------------------------------------ the whole ECG chain


def _c_float32_artifact(folder):
    """The synthetic ECG artifact's model as generated C and as this machine's shared library,
    listed as export lists them (``c_float32`` and its library): the Python session runs it
    as its c_float32 backend, the C chain compiles the same model source."""
    import hashlib
    import platform

    from synthetic_artifact import make_folder

    def edit(m):
        with np.load(folder / "reference_float32.npz") as w:
            weights = {k: w[k] for k in w.files}
        spec = c_model.with_preprocessing(
            c_model.spec_from_weights(weights, m["window"]["n_steps"], m["classes"]), m["preprocess"]
        )
        src, header = c_model.generate(spec, folder, "bse", "float32")
        c_model.copy_runtime(folder)
        lib = build.build_shared_library(src, folder)
        tensors = {"inputs": [], "outputs": []}
        for path, entry in [
            (src, {"name": "c_float32", "format": "c", "graph": "generated-c", "header": header.name}),
            (
                lib["path"],
                {
                    "name": f"c_float32.{lib['target']}",
                    "format": "shared-library",
                    "graph": "shared-library",
                    "source": "c_float32",
                    "architecture": platform.machine(),
                    "target": lib["target"],
                    "cpu_features": [],
                    "prefix": "bse",
                },
            ),
        ]:
            data = path.read_bytes()
            m["artifacts"].append(
                {
                    **entry,
                    "file": path.name,
                    "precision": "float32",
                    "status": "ok",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data),
                    **tensors,
                }
            )

    return make_folder(folder, units=(16,), edit=edit)


@pytest.fixture(scope="module")
def ecg_artifact(tmp_path_factory):
    """A synthetic ECG artifact (the ecg-mitdb task's manifest, a random LSTM(16)) with its
    c_float32 model, and the whole C chain built around the same generated model."""
    needs("gcc")
    folder = _c_float32_artifact(tmp_path_factory.mktemp("ecg_chain") / "artifact")
    manifest = read_manifest(folder)
    lib = build.build_ecg_library(folder.parent, folder / "bse_float32.c", manifest)
    return folder, lib, list(manifest.classes)


def record_input(record: str) -> np.ndarray:
    """The record's MLII and other lead at 360 Hz in mV, as the session takes them: (n, 2)."""
    rec = read_mitdb(record)
    order = [rec.channel_names.index("MLII"), 1 - rec.channel_names.index("MLII")]
    return rec.signal[:, order].astype(np.float64)


def c_chain_events(lib, x: np.ndarray, sizes: list[int]) -> list[dict]:
    chain = ECGChain(lib)
    return push_in_chunks(chain.push, x, sizes) + chain.flush()


@pytest.mark.parametrize("record", ["105", "232"])
def test_c_chain_decides_the_sessions_beats_on_whole_ds2_records(ecg_artifact, data_dir, record):
    """The whole chain in C (filter, detector, RR, template, window, model) on all of record
    105 (noise) and 232 (pauses), 1 s pushes, against ECGSession with the c_float32 backend
    (the same generated model) pushed whole and flushed, as ``biosig-edge stream`` decides:
    every beat at the same sample, the same class. Not bit-equal: the causal filter runs in
    float32 here and float64 in the session (outputs differ by up to ~3e-4 mV), and the
    template in float32; the probabilities differ by at most 1e-2 (measured 4.5e-3 on 105
    with a trained model)."""
    folder, lib, classes = ecg_artifact
    x = record_input(record)
    python = [e for e in decide_whole(ECGSession(folder, "c_float32"), x) if e["type"] == "beat"]
    c = [e for e in c_chain_events(lib, x, [360]) if e["kind"] == "beat"]
    assert len(python) > 1500
    assert [e["sample"] for e in c] == [e["sample"] for e in python]
    assert [classes[e["class_index"]] for e in c] == [e["class"] for e in python]
    worst = max(float(np.abs(e["probs"] - np.array(p["probs"])).max()) for e, p in zip(c, python))
    assert worst < 1e-2
    assert all(e["flags"] == ["noise_unassessed"] for e in c)


def test_a_chain_whose_parts_disagree_is_refused_at_init(tmp_path, ecg_artifact):
    """The chain's configuration says 5 side features, the model takes 6: bse_ecg_init
    refuses (status 2, ERR_CONFIG) before any sample, rather than read past the side vector."""
    from dataclasses import replace

    folder, _, _ = ecg_artifact
    m = read_manifest(folder)
    sf = m.side_features
    fewer = replace(m, side_features=replace(sf, names=sf.names[:5], mean=sf.mean[:5], std=sf.std[:5]))
    lib = build.build_ecg_library(tmp_path, folder / "bse_float32.c", fewer)
    with pytest.raises(ValueError, match="status 2"):
        ECGChain(lib)


def test_c_chain_events_do_not_depend_on_the_push_size(ecg_artifact, data_dir):
    """The first 2 minutes of record 105 pushed whole, 1 sample and 7 / 1000 samples at a
    time: the same events, probabilities bit for bit."""
    _, lib, _ = ecg_artifact
    x = record_input("105")[: 120 * 360]
    whole = c_chain_events(lib, x, [len(x)])
    assert len(whole) > 100
    for sizes in ([1], [7, 1000]):
        got = c_chain_events(lib, x, sizes)
        assert [(e["kind"], e["sample"], e.get("class_index")) for e in got] == [
            (e["kind"], e["sample"], e.get("class_index")) for e in whole
        ]
        for a, b in zip(got, whole):
            if a["kind"] == "beat":
                np.testing.assert_array_equal(a["probs"], b["probs"])


# ------------------------------------------------------------------ input checks

#: A 10-bit converter's range in mV (as a WFDB header gives it), inside the valid +-10 mV.
FULL_SCALE = ((-5.12, 5.115), (-5.12, 5.115))
INPUT_KINDS = ("nonfinite", "flat", "out_of_range", "recovered", "spike", "saturated")


def spoilt_105() -> np.ndarray:
    """100 s of record 105 with each input problem the session checks for, (n, 2) mV at 360 Hz:
    a 10-sample spike at 50 mV (held), 3 s of NaN on one lead, 2 s flat on both (lead-off),
    0.5 s at 20 mV (a spike that lasts: then a gap), 0.3 s at the converter's full scale
    (clipped), and a second spike 4 s later."""
    x = record_input("105")[: 100 * 360].copy()
    at = lambda t_s: int(t_s * 360)  # noqa: E731
    x[at(20) : at(20) + 10, 0] = 50.0
    x[at(30) : at(33), 1] = np.nan
    x[at(45) : at(47), :] = x[at(45)]
    x[at(60) : at(60.5), 0] = 20.0
    x[at(70) : at(70.3), 0] = 5.115
    x[at(74) : at(74) + 3, 1] = -40.0
    return x


def test_c_chain_checks_its_input_as_the_session_does(tmp_path, ecg_artifact, data_dir):
    """Every input problem of :func:`spoilt_105` gives the session's events at the same
    samples (a bad stretch: its kind and channels, where good samples return and the gap's
    length; a held spike; clipping), every state restarts after each gap as the session's,
    and the decisions whose window holds a held spike or a clipped sample carry the same
    flags; the beats and classes are the session's (c_float32 backend, pushed whole and
    flushed). The session's noise levels are not compared: the C takes no noise index."""
    folder, _, classes = ecg_artifact
    manifest = read_manifest(folder)
    lib = build.build_ecg_library(tmp_path, folder / "bse_float32.c", manifest, full_scale=list(FULL_SCALE))
    x = spoilt_105()
    source = SignalSpec(360.0, ("MLII", "V1"), ("mV", "mV"), full_scale=FULL_SCALE)
    python = decide_whole(ECGSession(folder, "c_float32", source=source), x)
    c = c_chain_events(lib, x, [360])
    names = list(manifest.channels)

    def quality(e):
        if "type" in e:  # the session's
            return (e["kind"], e["sample"], e.get("gap_samples"), tuple(e.get("channels", ())))
        chans = tuple(names[i] for i in range(2) if e.get("channels", 0) >> i & 1)
        return (e["kind"], e["sample"], e.get("gap_samples"), chans)

    python_q = [quality(e) for e in python if e["type"] == "signal_quality" and e["kind"] in INPUT_KINDS]
    c_q = [quality(e) for e in c if e["kind"] != "beat"]
    assert c_q == python_q
    assert {k for k, *_ in c_q} == set(INPUT_KINDS)
    python_b = [
        (e["sample"], e["class"], sorted(set(e["quality_flags"]) & {"spike", "saturated"}))
        for e in python
        if e["type"] == "beat"
    ]
    c_b = [
        (e["sample"], classes[e["class_index"]], sorted(set(e["flags"]) - {"noise_unassessed"}))
        for e in c
        if e["kind"] == "beat"
    ]
    assert c_b == python_b
    assert sum(1 for *_, f in c_b if "spike" in f) >= 2 and sum(1 for *_, f in c_b if "saturated" in f) >= 1


def test_c_chain_reports_every_event_of_alternating_bad_and_good_samples(ecg_artifact):
    """A lead that is NaN every other sample, then 50 mV spikes between good samples: a gap
    and its recovery at every sample, then a spike at every other one, none dropped (a push
    has room for 2 events a sample), the session's events."""
    folder, lib, _ = ecg_artifact
    x = np.zeros((400, 2))
    x[:200:2, 1] = np.nan
    x[200::2, 0] = 50.0
    x[:, 0] += np.arange(400) * 1e-3  # not flat
    python = decide_whole(ECGSession(folder, "c_float32"), x)
    c = c_chain_events(lib, x, [400])
    assert [(e["kind"], e["sample"]) for e in c] == [(e["kind"], e["sample"]) for e in python]
    assert len(c) == 300


def test_c_chain_input_checks_do_not_depend_on_the_push_size(tmp_path, ecg_artifact, data_dir):
    """The spoilt record pushed 1, 13 and 5000 samples at a time: the same events."""
    folder, _, _ = ecg_artifact
    lib = build.build_ecg_library(
        tmp_path, folder / "bse_float32.c", read_manifest(folder), full_scale=list(FULL_SCALE)
    )
    x = spoilt_105()

    def key(events):
        return [(e["kind"], e["sample"], e.get("class_index"), e.get("flags"), e.get("channels")) for e in events]

    whole = key(c_chain_events(lib, x, [len(x)]))
    assert len(whole) > 100
    for sizes in ([1], [13, 5000]):
        assert key(c_chain_events(lib, x, sizes)) == whole


# ------------------------------------------------------------------ Cortex-M4


def test_chain_builds_for_the_cortex_m4_without_warnings(tmp_path):
    """-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard -Os with -Wall -Wextra
    -Wdouble-promotion -Wfloat-conversion -Werror, and no software double arithmetic linked
    in; the detector's state sized for 180 Hz: both states in half the issue's 16 KB of RAM
    (measured 4,864 + 3,128 bytes: 3 x 2 s of history, the 1,501-interval average)."""
    if not has("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed")
    needs("arm-none-eabi-nm")
    sizes = build.chain_m4_sizes(tmp_path, MODEL_FS_HZ, 180)
    assert sizes["text"] > 0
    assert sizes["double_helpers"] == []
    assert sizes["qrs_state_bytes"] + sizes["rr_state_bytes"] <= 8 * 1024, sizes


def test_chain_on_the_cortex_m4_finds_pythons_beats_with_the_hosts_bits(tmp_path, data_dir):
    """The first 5 minutes of record 232 (pauses of seconds: search-back, relearning), embedded
    in the test firmware and pushed 1 s at a time through bse_qrs and bse_rr on the
    Cortex-M4 under QEMU: Python's beats, and the RR features' float bits equal the host
    build's. Instructions counted by QEMU (-icount, deterministic, not a clock): measured
    ~185,000 per second of signal on whole DS2 records (0.3 % of a 64 MHz core); held under
    1 % of it."""
    needs("arm-none-eabi-gcc", "qemu-system-arm")
    y = session_input("232")[: int(300 * MODEL_FS_HZ)]
    push = int(MODEL_FS_HZ)
    host = build.parse_chain_output(
        build.run_firmware(build.build_chain_firmware(tmp_path, y, MODEL_FS_HZ, push, "host", 180), "host")
    )
    m4 = build.parse_chain_output(
        build.run_firmware(build.build_chain_firmware(tmp_path, y, MODEL_FS_HZ, push, "cortex-m4", 180))
    )
    assert m4["beats"] == PanTompkins(MODEL_FS_HZ).push(y)
    assert m4["beats"] == host["beats"] and m4["dropped"] == 0
    assert len(m4["features"]) == len(m4["beats"]) - 2 > 250
    for beat, bits in host["features"].items():
        np.testing.assert_array_equal(m4["features"][beat], bits)
    instructions_per_s = m4["instructions"] / (len(y) / MODEL_FS_HZ)
    assert 1e4 < instructions_per_s < 0.01 * 64e6


def adc_counts(data_dir, record: str, start_s: float, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The record's MLII and other lead as the converter gave them: counts (n, 2) int16,
    baseline and gain (counts per mV) per lead; (counts - baseline) / gain in float32 is the
    reader's float32 mV, bit for bit."""
    import wfdb

    rec = wfdb.rdrecord(str(data_dir / "mitdb" / record), physical=False)
    order = [rec.sig_name.index("MLII"), 1 - rec.sig_name.index("MLII")]
    a, n = int(start_s * 360), int(seconds * 360)
    return (
        rec.d_signal[a : a + n, order].astype(np.int16),
        np.array(rec.baseline)[order],
        np.array(rec.adc_gain, np.float64)[order],
    )


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, ecg_artifact):
    """The synthetic artifact's model generated as int8 C (weights per row, sigmoid table)."""
    folder, _, classes = ecg_artifact
    out = tmp_path_factory.mktemp("int8")
    m = read_manifest(folder)
    with np.load(folder / "reference_float32.npz") as w:
        weights = {k: w[k] for k in w.files}
    spec = c_model.with_preprocessing(c_model.spec_from_weights(weights, m.window.n_steps, classes), m.preprocess)
    src, _ = c_model.generate(spec, out, "bse", "int8")
    c_model.copy_runtime(out)
    return src, m


def test_whole_chain_with_an_int8_model_fits_the_cortex_m4_budget(tmp_path, int8_model):
    """The ECG chain with an int8 LSTM(16) at -Os under the M4 capacities
    (build.M4_ECG_DEFINES): within the issue's 64 KB of flash and 16 KB of RAM with the
    stack (every linked function's frame summed, an upper bound), no software double
    arithmetic. Measured 17.9 KB flash, 14,964 + 1,384 bytes with the trained quick
    artifact's LSTM(16) -> Dense(32)."""
    if not has("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed")
    needs("arm-none-eabi-nm")
    src, m = int8_model
    sizes = build.ecg_m4_sizes(tmp_path, src, m)
    assert sizes["double_helpers"] == []
    assert 0 < sizes["flash_bytes"] <= 64 * 1024, sizes
    assert sizes["ram_with_stack_bytes"] <= 16 * 1024, sizes


def test_whole_chain_on_the_cortex_m4_decides_as_the_host(tmp_path, data_dir, int8_model):
    """5 minutes of record 232 (from 1,000 s: its longest pauses) as raw converter counts, embedded in the test firmware and
    pushed 1 s at a time through the whole chain with the int8 model on the Cortex-M4 under
    QEMU (the M4 capacities): every event and probability bit equals the host build's, and
    the beats and classes equal the CPU library's (default capacities: the session's 12 s
    ring; 232's pauses of up to 6 s make the M4's 3.1 s ring park the window of a beat whose
    next beat is late); the stack the pushes reach is measured by painting it. Instructions counted by
    QEMU (-icount): measured ~2.1 million per second of signal on record 105 (3.3 % of a
    64 MHz core); held under the issue's 10 %."""
    needs("arm-none-eabi-gcc", "qemu-system-arm")
    src, m = int8_model
    counts, baseline, gain = adc_counts(data_dir, "232", 1000, 300)
    host = build.parse_ecg_output(
        build.run_firmware(build.build_ecg_firmware(tmp_path, src, m, counts, baseline, gain, 360, "host"), "host")
    )
    m4 = build.parse_ecg_output(
        build.run_firmware(build.build_ecg_firmware(tmp_path, src, m, counts, baseline, gain, 360), timeout_s=600)
    )
    assert m4["events"] == host["events"] and m4["dropped"] == 0
    x = (counts.astype(np.float32) - baseline.astype(np.float32)) / gain.astype(np.float32)
    np.testing.assert_array_equal(x, record_input("232")[1000 * 360 : 1000 * 360 + len(x)].astype(np.float32))
    library = c_chain_events(build.build_ecg_library(tmp_path, src, m), x, [360])
    assert [(k, s, c) for k, s, c, *_ in m4["events"]] == [
        (0, e["sample"], e["class_index"]) for e in library if e["kind"] == "beat"
    ]
    assert len(library) > 250
    beats = [e["sample"] for e in library if e["kind"] == "beat"]
    assert max(np.diff(beats)) > 2 * 560  # a pause longer than the M4 ring: parked
    assert 0 < m4["stack_bytes"] <= 2048
    instructions_per_s = m4["instructions"] / (len(x) / 360.0)
    assert 1e5 < instructions_per_s < 0.10 * 64e6
