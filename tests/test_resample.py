"""The streaming resampler: any chunking gives bit-identical output, the pass band is
kept, and a real ECG survives a round trip to another rate."""

import numpy as np
import pytest
from chunking import push_in_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.preprocess.resample import Resampler, rate_ratio, resample
from pipeline.read.mitdb import read_wfdb


@pytest.fixture(scope="module")
def ecg_20s(data_dir):
    """Twenty seconds of record 100, both leads, mV."""
    return read_wfdb(data_dir / "mitdb" / "100", annotator=None).signal[: 360 * 20].astype(np.float64)


def test_rates_become_exact_ratios():
    assert rate_ratio(360, 128) == (16, 45)
    assert rate_ratio(128, 360) == (45, 16)
    assert rate_ratio(173.61, 250) == (25000, 17361)  # Bonn's rate, exactly


@settings(max_examples=12, deadline=None)
@given(
    fs_out=st.sampled_from([128.0, 250.0, 360.0 * 2, 173.61]),
    sizes=st.lists(st.one_of(st.just(1), st.integers(1, 50), st.integers(51, 3000)), min_size=1, max_size=8),
)
def test_any_chunking_gives_bit_identical_output(ecg_20s, fs_out, sizes):
    whole = Resampler(360.0, fs_out, 2).process(ecg_20s)
    r = Resampler(360.0, fs_out, 2)
    chunked = np.concatenate(push_in_chunks(lambda c: [r.process(c)], ecg_20s, sizes))
    assert chunked.shape == whole.shape and np.array_equal(chunked, whole)


@pytest.mark.parametrize("fs_in, fs_out", [(360.0, 128.0), (128.0, 360.0), (250.0, 360.0), (500.0, 256.0)])
def test_the_pass_band_is_kept_and_time_is_not_shifted(fs_in, fs_out):
    # Sines at 1, 10 and 40 Hz (an ECG model's band): the resampled signal is the same
    # sines at the new rate, at the same times (no group delay: only latency).
    t_in = np.arange(0, 10, 1 / fs_in)
    freqs = (1.0, 10.0, 40.0)
    y = resample(np.stack([np.sin(2 * np.pi * f * t_in) for f in freqs], axis=1), fs_in, fs_out)
    t_out = np.arange(len(y)) / fs_out
    expected = np.stack([np.sin(2 * np.pi * f * t_out) for f in freqs], axis=1)
    inner = slice(int(fs_out), -int(fs_out))  # away from the held edges
    # Kaiser-windowed sinc, 16 zero crossings: pass-band error below 1e-3 of full scale.
    assert np.abs(y[inner] - expected[inner]).max() < 1e-3


def test_content_above_the_new_nyquist_rate_is_removed_not_folded():
    # 100 Hz at 360 Hz taken to 128 Hz would alias to 28 Hz, inside an ECG band.
    t = np.arange(0, 10, 1 / 360.0)
    y = resample(np.sin(2 * np.pi * 100 * t)[:, None], 360.0, 128.0)
    assert np.abs(y[128:-128]).max() < 1e-3  # > 60 dB down


def test_a_real_ecg_round_trip_keeps_its_shape(ecg_20s):
    there = resample(ecg_20s, 360.0, 250.0)
    back = resample(there, 250.0, 360.0)[: len(ecg_20s)]
    inner = slice(360, -360)
    # What is lost is above 106 Hz (the 250 Hz leg's cut-off): a small share of an ECG.
    rms = np.sqrt(np.mean((back[inner] - ecg_20s[inner]) ** 2))
    assert rms < 0.01 * np.ptp(ecg_20s[inner]), rms


def test_outputs_come_as_soon_as_their_inputs_exist():
    r = Resampler(128.0, 360.0, 1)
    # An output at input position p needs inputs up to floor(p) + half_width: none before
    # half_width + 1 inputs, then the 3 outputs at positions 0, 16/45 and 32/45.
    assert len(r.process(np.zeros((r.half_width, 1)))) == 0
    assert len(r.process(np.zeros((1, 1)))) == 3
    assert r.latency_s == r.half_width / 128.0


def test_a_record_at_another_rate_is_brought_to_the_model_rate_for_training(data_dir):
    from pipeline.preprocess import Preprocessor, PreprocessSpec
    from pipeline.preprocess.resample import resample_record
    from pipeline.read.mitdb import read_mitdb

    native = read_mitdb("100")
    at250 = resample_record(native, 250.0)
    assert at250.fs_hz == 250.0 and abs(at250.n_samples - native.n_samples * 250 / 360) <= 1
    back = resample_record(at250, 360.0)
    assert np.abs(back.beats.sample - native.beats.sample).max() <= 1  # moved, not lost
    spec = PreprocessSpec(360.0, decimate=2, highpass_hz=0.5, lowpass_hz=40.0, notch_hz=60.0)
    a = Preprocessor(spec, 2).run(native.signal, 360.0)
    b = Preprocessor(spec, 2).run(back.signal[: len(native.signal)], 360.0)
    inner = slice(360, -360)
    # What the 250 Hz leg loses lies above its 106 Hz cut-off, far above the 40 Hz band.
    assert np.sqrt(np.mean((a[inner] - b[inner]) ** 2)) < 0.005 * np.ptp(a[inner])
