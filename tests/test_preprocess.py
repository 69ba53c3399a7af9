"""Causal preprocessing: chunk invariance on real signals, and the filter does its job."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.preprocess import CausalFilter, Decimator, Preprocessor, PreprocessSpec
from pipeline.read.mitdb import read_mitdb

ECG_SPEC = PreprocessSpec(360.0, decimate=2, highpass_hz=0.5, lowpass_hz=40.0, notch_hz=60.0)


@pytest.fixture(scope="module")
def ecg_20s():
    """Twenty seconds of both leads of MIT-BIH record 208 (V and F beats), in mV."""
    return read_mitdb("208").signal[:7200].astype(np.float64)


def _cuts(n: int, sizes: list[int]) -> list[int]:
    """Chunk boundaries from a list of chunk sizes, covering [0, n)."""
    cuts, pos = [0], 0
    for size in sizes:
        pos += size
        if pos >= n:
            break
        cuts.append(pos)
    return cuts + [n]


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.one_of(st.just(1), st.integers(1, 50), st.integers(51, 3000)), min_size=1, max_size=300))
def test_chunked_preprocessing_is_bit_identical_to_whole(ecg_20s, sizes):
    whole = Preprocessor(ECG_SPEC, 2).run(ecg_20s, 360.0)
    pre = Preprocessor(ECG_SPEC, 2)
    cuts = _cuts(len(ecg_20s), sizes)
    chunked = np.concatenate([pre.process(ecg_20s[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    assert chunked.shape == whole.shape == (3600, 2)
    np.testing.assert_array_equal(chunked, whole)


@settings(max_examples=30, deadline=None)
@given(factor=st.integers(1, 7), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=60))
def test_decimator_keeps_every_kth_sample_across_chunks(factor, sizes):
    x = np.arange(500)
    dec = Decimator(factor)
    cuts = _cuts(len(x), sizes)
    kept = np.concatenate([dec.process(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    np.testing.assert_array_equal(kept, x[::factor])


def test_reset_forgets_the_past(ecg_20s):
    pre = Preprocessor(ECG_SPEC, 2)
    first = pre.process(ecg_20s[:1000])
    pre.process(ecg_20s[1000:3000])
    pre.reset()
    np.testing.assert_array_equal(pre.process(ecg_20s[:1000]), first)


def _gain_at(spec: PreprocessSpec, f_hz: float) -> float:
    """Steady-state amplitude gain of the chain for a sinusoid at f_hz."""
    t = np.arange(int(30 * spec.fs_in_hz)) / spec.fs_in_hz
    x = np.sin(2 * np.pi * f_hz * t)[:, None]
    y = Preprocessor(spec, 1).run(x, spec.fs_in_hz)[:, 0]
    return float(np.sqrt(2) * np.std(y[len(y) // 2 :]))  # skip the start-up


@pytest.mark.parametrize(
    "f_hz, low, high",
    [
        (0.05, 0.0, 0.05),  # baseline wander: removed
        (10.0, 0.95, 1.01),  # QRS band: passed
        (60.0, 0.0, 0.02),  # mains: notched
        (150.0, 0.0, 0.02),  # above the low-pass
    ],
)
def test_ecg_chain_frequency_response(f_hz, low, high):
    spec = PreprocessSpec(360.0, highpass_hz=0.5, lowpass_hz=40.0, notch_hz=60.0)
    assert low <= _gain_at(spec, f_hz) <= high


def test_filter_starts_without_a_transient_on_a_dc_offset():
    # A constant signal must come out as the filter's steady state from the first sample.
    f = CausalFilter(PreprocessSpec(360.0, lowpass_hz=40.0).sos(), 1)
    y = f.process(np.full((100, 1), 3.0))
    np.testing.assert_allclose(y, 3.0, rtol=1e-12)


def test_decimating_without_an_antialias_lowpass_is_refused():
    with pytest.raises(ValueError, match="needs a low-pass below 90.0 Hz"):
        PreprocessSpec(360.0, decimate=2, highpass_hz=0.5)


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"chunk must have shape \(n, 2\), got \(10, 3\)"):
        Preprocessor(ECG_SPEC, 2).process(np.zeros((10, 3)))


def test_spec_carries_its_coefficients_for_the_device():
    d = ECG_SPEC.to_dict()
    assert d["fs_out_hz"] == 180.0
    assert np.asarray(d["sos"]).shape == ECG_SPEC.sos().shape == (3, 6)


def test_the_device_kernel_is_scipy_sosfilt_exactly(ecg_20s):
    from scipy import signal as sps

    from pipeline.preprocess import iir

    sos = ECG_SPEC.sos()
    zi = sps.sosfilt_zi(sos)[:, :, None] * ecg_20s[0][None, None, :]
    expected, expected_zf = sps.sosfilt(sos, ecg_20s, axis=0, zi=zi)
    got, zf = iir.sosfilt(sos, ecg_20s, zi)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(zf, expected_zf)
    np.testing.assert_allclose(iir.sosfilt_zi(sos), sps.sosfilt_zi(sos), rtol=1e-12, atol=1e-15)
    assert iir.KERNEL == "scipy.signal._sosfilt (direct)"


@pytest.mark.parametrize("fs_hz", [180.0, 360.0, 500.0])
def test_numpy_bandpass_design_equals_scipy_butter(fs_hz):
    from scipy import signal as sps

    from pipeline.preprocess.iir import butter_bandpass_order1

    expected = sps.butter(1, [5.0, 15.0], "bandpass", fs=fs_hz, output="sos")
    np.testing.assert_allclose(butter_bandpass_order1(fs_hz, 5.0, 15.0), expected, rtol=1e-10, atol=1e-13)
