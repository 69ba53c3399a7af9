"""EEG that does not depend on the amplifier's scale: the running RMS normalisation of the
preprocessing chain is causal, chunk-invariant, carried in the manifest, and applied by the
device session, so a recording scaled by 0.5 or 2 gets the same decisions."""

import numpy as np
import pytest
from chunking import push_in_chunks
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.preprocess import Preprocessor, PreprocessSpec, RunningNormaliser
from pipeline.read.bonn import read_bonn
from pipeline.train.config import load_config

BONN_SPEC = PreprocessSpec(173.61, decimate=2, highpass_hz=0.5, lowpass_hz=40.0, gain=0.005, running_norm_s=10.0)
BANDS_SPEC = PreprocessSpec(
    173.61,
    decimate=2,
    highpass_hz=0.5,
    lowpass_hz=40.0,
    gain=0.005,
    running_norm_s=10.0,
    bands_hz=[[1.0, 4.0], [4.0, 8.0], [8.0, 13.0], [30.0, 40.0]],
    band_power_s=0.5,
)


@pytest.fixture(scope="module")
def seizure():
    return read_bonn("E_S", "S001")


@settings(max_examples=30, deadline=None)
@given(
    spec=st.sampled_from([BONN_SPEC, BANDS_SPEC]),
    sizes=st.lists(st.one_of(st.just(1), st.integers(1, 50), st.integers(51, 3000)), min_size=1, max_size=200),
)
def test_any_chunking_of_the_normalised_chain_is_bit_identical(seizure, spec, sizes):
    x = seizure.signal.astype(np.float64)
    whole = Preprocessor(spec, 1).run(x, 173.61)
    pre = Preprocessor(spec, 1)
    chunked = np.concatenate(push_in_chunks(lambda c: [pre.process(c)], x, sizes))
    assert whole.shape[1] == spec.n_out_channels(1) == pre.n_out_channels
    np.testing.assert_array_equal(chunked, whole)


def test_band_powers_are_relative_log_powers_of_their_bands():
    # A 10 Hz sinusoid: nearly all its power in the 8-13 Hz band, little in 30-40 Hz.
    t = np.arange(int(20 * 173.61)) / 173.61
    x = np.sin(2 * np.pi * 10 * t)[:, None] * 50.0
    y = Preprocessor(BANDS_SPEC, 1).run(x, 173.61)[-200:]  # [signal, 1-4, 4-8, 8-13, 30-40]
    assert y.shape[1] == 5
    assert -0.7 < y[:, 3].mean() < 0.0  # 8-13 Hz: most of the power
    assert y[:, 4].mean() < -3.0 and y[:, 1].mean() < -2.0  # far bands: < 5 % and < 14 %


@pytest.mark.parametrize("spec", [BONN_SPEC, BANDS_SPEC], ids=["rms", "rms+bands"])
@pytest.mark.parametrize("scale", [0.5, 2.0, 1000.0])
def test_the_normalised_chain_does_not_see_the_amplifier_scale(seizure, scale, spec):
    x = seizure.signal.astype(np.float64)
    ref = Preprocessor(spec, 1).run(x, 173.61)
    got = Preprocessor(spec, 1).run(x * scale, 173.61)
    # From the second sample on: the first is the filter's steady state (~1e-8 of the signal,
    # rounding), where the floor of the mean square decides.
    np.testing.assert_allclose(got[1:], ref[1:], rtol=1e-4, atol=1e-5)
    assert 0.5 < np.sqrt(np.mean(ref[len(ref) // 2 :, 0] ** 2)) < 2.0  # unit RMS, roughly
    plain = Preprocessor(PreprocessSpec(173.61, 2, 0.5, 40.0, gain=0.005), 1).run(x * scale, 173.61)
    assert not np.allclose(plain, Preprocessor(PreprocessSpec(173.61, 2, 0.5, 40.0, gain=0.005), 1).run(x, 173.61))


def test_the_running_mean_square_is_the_weighted_mean_from_the_first_sample():
    # A constant channel: the bias-corrected average is that constant from sample 1 on.
    norm = RunningNormaliser(2.0, 100.0, 2)
    y = norm.process(np.tile([[3.0, -0.5]], (500, 1)))
    np.testing.assert_allclose(y, np.tile([[1.0, -1.0]], (500, 1)), rtol=1e-9)


def test_the_spec_round_trips_through_the_manifest_dict():
    d = BANDS_SPEC.to_dict()
    assert d["running_norm_s"] == 10.0 and np.asarray(d["band_sos"]).shape == (4, 2, 6)
    assert PreprocessSpec.from_dict(d) == BANDS_SPEC
    old = {k: v for k, v in d.items() if k not in ("running_norm_s", "bands_hz", "band_power_s", "band_sos")}
    assert PreprocessSpec.from_dict(old).running_norm_s is None  # a manifest made before them
    assert PreprocessSpec.from_dict(old).bands_hz is None


def test_a_band_above_the_model_nyquist_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"preprocess: band \[40.0, 50.0\] Hz must lie in \(0, 43.40"):
        load_config("eeg-bonn", overrides={"preprocess": {"bands_hz": [[40.0, 50.0]]}})


def test_the_generated_c_refuses_the_band_powers_it_lacks():
    # the running RMS is in the C (tests/test_c_runtime.py); the band powers are not yet
    from firmware_export.c_model import UnsupportedModelError, with_preprocessing

    with pytest.raises(UnsupportedModelError, match=r"relative log band powers"):
        with_preprocessing(None, BANDS_SPEC.to_dict())


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_streamed_decisions_are_unchanged_when_the_input_is_scaled(exported_bonn, scale):
    from pipeline.runtime.session import EEGSession

    _, out, manifest = exported_bonn
    assert manifest["preprocess"]["running_norm_s"] == 10.0  # the model under test normalises
    assert manifest["window"]["n_channels"] == 1  # (the Bonn config: RMS only)
    for set_name, segment in (("E_S", "S001"), ("A_Z", "Z001"), ("D_F", "F001")):
        signal = read_bonn(set_name, segment).signal
        ref = EEGSession(out, "stream_tflite_float32").push(signal)
        got = EEGSession(out, "stream_tflite_float32").push(signal * scale)
        assert len(got) == len(ref) == 22
        equal = np.mean([a["class"] == b["class"] for a, b in zip(ref, got)])
        assert equal >= 0.95, (set_name, scale, equal)
        np.testing.assert_allclose([e["probs"] for e in got], [e["probs"] for e in ref], atol=1e-3)
