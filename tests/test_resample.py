"""The streaming resampler: any chunking gives bit-identical output, the pass band is
kept, and a real ECG survives a round trip to another rate."""

from fractions import Fraction

import numpy as np
import pytest
from chunking import push_in_chunks
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.errors import SamplingRateError
from pipeline.preprocess.resample import MAX_PHASES, MAX_RATE_FACTOR, Resampler, rate_ratio, resample
from pipeline.read.mitdb import read_wfdb


@pytest.fixture(scope="module")
def ecg_20s(data_dir):
    """Twenty seconds of record 100, both leads, mV."""
    return read_wfdb(data_dir / "mitdb" / "100", annotator=None).signal[: 360 * 20].astype(np.float64)


def test_rates_become_exact_ratios():
    assert rate_ratio(360, 128) == (16, 45)
    assert rate_ratio(128, 360) == (45, 16)
    assert rate_ratio(173.61, 250) == (25000, 17361)  # Bonn's rate, exactly


def test_a_rate_with_17_digits_becomes_the_nearest_small_ratio_and_says_how_far_off():
    # Reliability probe N1: 249.99999999999997 Hz (what 1/dt gives) was taken digit for
    # digit, 36000000000000000/24999999999999997, and the index arithmetic wrapped.
    r = Resampler(249.99999999999997, 360.0, 2)
    assert (r.up, r.down, r.fs_in_as()) == (36, 25, "250") and 0 < r.rate_error < 1e-15
    r = Resampler(256.6666666666667, 360.0, 2)  # an EDF of 0.3 s records holding 77 samples
    assert (r.up, r.down, r.fs_in_as()) == (108, 77, "770/3") and r.rate_error < 1e-15
    assert Resampler(173.61, 250.0, 1).rate_error == 0.0  # exact where the digits fit


#: The rates models take (ECG, Bonn, EEGMAT after decimation, others).
MODEL_RATES_HZ = [128.0, 173.61, 250.0, 360.0]


def _input_rate(fs_out_hz, factor, ulps):
    """fs_out_hz times ``factor`` (a float or a Fraction), moved by ``ulps`` units in the last place."""
    fs = float(fs_out_hz * factor)
    for _ in range(abs(ulps)):
        fs = float(np.nextafter(fs, np.inf if ulps > 0 else 0.0))
    return fs


@settings(max_examples=40, deadline=None)
@given(
    fs_out=st.sampled_from(MODEL_RATES_HZ),
    factor=st.one_of(
        st.floats(1 / (MAX_RATE_FACTOR - 1), MAX_RATE_FACTOR - 1),
        st.fractions(Fraction(1, MAX_RATE_FACTOR - 1), MAX_RATE_FACTOR - 1, max_denominator=10**7),
    ),
    ulps=st.integers(-3, 3),
    sizes=st.lists(st.one_of(st.just(1), st.integers(1, 50), st.integers(51, 5000)), min_size=1, max_size=6),
)
@example(fs_out=360.0, factor=Fraction(25, 36), ulps=-1, sizes=[1, 700])  # 249.99999999999997 Hz
@example(fs_out=173.61, factor=Fraction(77000, 52083), ulps=0, sizes=[3000])  # 256.666... Hz EDF, Bonn model
def test_any_input_rate_in_the_accepted_range_streams_chunk_invariant(fs_out, factor, ulps, sizes):
    """Floats anywhere in the range, rationals with large terms, and rates a few ulps off a
    round one: each streams without error, in any chunking, bit for bit, with its ratio
    within 1e-6 of the declared rates."""
    fs_in = _input_rate(fs_out, factor, ulps)
    whole_r = Resampler(fs_in, fs_out, 2)
    assert whole_r.up <= MAX_PHASES and whole_r.rate_error <= 2 / MAX_PHASES
    # Enough input for ~40 outputs past the filter's reach.
    n_in = 2 * whole_r.half_width + int(np.ceil(40 * whole_r.down / whole_r.up)) + 2
    x = np.random.default_rng(0).standard_normal((n_in, 2))
    whole = whole_r.process(x)
    r = Resampler(fs_in, fs_out, 2)
    chunked = np.concatenate(push_in_chunks(lambda c: [r.process(c)], x, sizes))
    assert len(whole) >= 40 and np.isfinite(whole).all()
    assert chunked.shape == whole.shape and np.array_equal(chunked, whole)


@pytest.mark.parametrize("fs_in", [249.99999999999997, 250.000000000001, 256.6666666666667, 173.6100000000001])
def test_rates_that_overflowed_the_index_arithmetic_stream_far_into_a_stream(fs_in):
    # 250.000000000001 Hz ran 102 s before the old int64 arithmetic wrapped. Here a stream
    # is moved by whole periods of its ratio (the same outputs follow) to an hour in, then
    # to 10**12 hours in: its indices are far past int64, the outputs the same.
    x = np.random.default_rng(1).standard_normal((4000, 1))
    fresh = Resampler(fs_in, 360.0, 1)
    expected = [fresh.process(x[:1500]), fresh.process(x[1500:])]
    for hours in (1, 10**12):
        r = Resampler(fs_in, 360.0, 1)
        first = r.process(x[:1500])
        periods = int(hours * 3600 * fs_in) // r.down
        r.m_next_ += periods * r.up  # as after that many outputs ...
        r.n_in_ += periods * r.down  # ... from that many inputs
        r.buffer_start_ += periods * r.down
        assert np.array_equal(first, expected[0]) and np.array_equal(r.process(x[1500:]), expected[1])


@pytest.mark.parametrize(
    "fs_in, fs_out, message",
    [
        (1e9, 360.0, "more than 200 times the 360 Hz it would be resampled to: the most this chain takes is 72000 Hz"),
        (0.1, 360.0, "less than 1/200 of the 360 Hz"),
        (float("nan"), 360.0, "must be a positive number of Hz, got nan"),
    ],
)
def test_rates_the_chain_cannot_take_are_refused_before_anything_is_allocated(fs_in, fs_out, message):
    # Reliability probe N5: 1e9 Hz built a 7 GiB tap table, then MemoryError.
    with pytest.raises(SamplingRateError, match=message):
        Resampler(fs_in, fs_out, 2)


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
