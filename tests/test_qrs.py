"""Streaming Pan-Tompkins on MIT-BIH: chunking never changes the beats; quality at 150 ms."""

import numpy as np
import pytest
from chunking import push_in_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.metrics import match_beats
from pipeline.read.mitdb import read_mitdb
from pipeline.runtime.qrs import PanTompkins


@pytest.fixture(scope="module")
def record_208():
    """Record 208 (992 V and 373 F beats among N): MLII in mV and its annotations."""
    return read_mitdb("208", channels=["MLII"])


def _detect(x: np.ndarray, sizes: list[int]) -> list[int]:
    return push_in_chunks(PanTompkins(360.0).push, x, sizes)


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.one_of(st.just(1), st.integers(1, 40), st.integers(41, 5000)), min_size=1, max_size=20))
def test_any_chunking_finds_the_same_beats(record_208, sizes):
    x = record_208.signal[: 360 * 40, 0]  # 40 s
    whole = _detect(x, [len(x)])
    assert len(whole) > 40
    assert _detect(x, sizes) == whole


@pytest.mark.parametrize("record", ["100", "119", "208", "232"])
def test_detection_quality_with_the_standard_150_ms_window(record):
    rec = read_mitdb(record, channels=["MLII"])
    beats = _detect(rec.signal[:, 0], [3600])
    m = match_beats(rec.beats.sample, np.array(beats), tolerance=int(0.150 * 360))
    # Pan & Tompkins (1985) report Se 99.3 %, +P 99.5 % over the whole database.
    assert m["se"] >= 0.99 and m["ppv"] >= 0.99, m
    assert abs(m["median_offset"]) <= 2  # R located within 2 samples (5.6 ms)


def test_match_beats_by_hand():
    m = match_beats(np.array([100, 200, 300]), np.array([102, 260, 301, 500]), tolerance=10)
    assert (m["tp"], m["fn"], m["fp"]) == (2, 1, 2)
    assert m["median_offset"] == 1.5


def test_beats_strictly_increase_on_noisy_record_105():
    """Record 105's noise made two integrated peaks search back to (almost) the same R,
    17 samples apart here and 3 samples in reverse order at the model rate, which the
    session's RR tracker refused mid-record. R peaks must be a refractory period apart."""
    rec = read_mitdb("105", channels=["MLII"])
    beats = np.array(_detect(rec.signal[:, 0], [3600]))
    assert len(beats) > 2500
    assert np.diff(beats).min() >= PanTompkins(360.0).refractory


def _em_stressed(record: str, snr_db: float, seconds: float = 660.0):
    """Record ``record`` (both leads, mV) with the real electrode-motion noise added as nst
    adds it at ``snr_db`` (minutes 5-7 and 9-11 noisy), cut to ``seconds``; its beats."""
    from pipeline.read.datasets import dataset_record
    from pipeline.validate import noise_stress as ns

    rec = dataset_record(f"mitdb:{record}")
    x = rec.signal.astype(np.float64)
    noise = ns.em_noise(len(x), rec.fs_hz)
    y = ns.stress_record(x, rec.beats.sample, rec.beats.symbol, rec.fs_hz, snr_db, noise, ns.full_em_noise(rec.fs_hz))
    n = int(seconds * rec.fs_hz)
    return y[:n], rec.beats.sample[rec.beats.sample < n], n


@pytest.mark.parametrize(("record", "snr_db", "min_se"), [("100", -6, 0.84), ("232", 0, 0.97)])
def test_detection_holds_in_real_electrode_motion_noise(record, snr_db, min_se):
    """Issue 21: under the NSTDB's electrode-motion noise the squared slope took the noise's
    swings for QRS complexes and the R search put beats on the largest raw swing, 150-300 ms
    off: Se over the noisy segments was 74.8 % (100, -6 dB) and 95.0 % (232, 0 dB); wfdb's
    XQRS finds 92.6 / 98.3 %. The QRS-shaped matched filter and the R search around the
    steepest slope reach 86.5 / 97.9 %."""
    from pipeline.validate.noise_stress import score_xqrs

    y, truth, n = _em_stressed(record, snr_db)
    beats = np.array(_detect(y[:, 0], [360]))
    c = score_xqrs(beats, truth, n, 360.0)
    assert c["x_tp"] / (c["x_tp"] + c["x_fn"]) >= min_se, c
    # Any chunking still finds the same beats in the noise.
    assert _detect(y[:, 0], [1, 977, 50]) == beats.tolist()
