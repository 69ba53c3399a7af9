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
