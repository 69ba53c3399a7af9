"""Windows: beat windows with causal RR features, EEG windows, origins kept."""

import numpy as np
import pytest

from pipeline.preprocess import Preprocessor, PreprocessSpec
from pipeline.read.eegmat import read_eegmat
from pipeline.read.mitdb import read_mitdb
from pipeline.window.ecg import beat_windows, window_bounds
from pipeline.window.eeg import fixed_windows, window_starts
from pipeline.window.rr import RR_FEATURE_NAMES, rr_features

ECG_SPEC = PreprocessSpec(360.0, decimate=2, highpass_hz=0.5, lowpass_hz=40.0)


def test_rr_features_on_hand_made_beat_times():
    t = np.array([0.0, 1.0, 2.0, 2.5, 4.0, 5.0])
    f = rr_features(t, local_beats=2, average_s=10.0)
    assert np.isnan(f[0]).all() and np.isnan(f[-1]).all()
    names = dict(zip(RR_FEATURE_NAMES, f[3]))  # the premature beat at 2.5 s
    assert names["pre_rr_s"] == 0.5 and names["post_rr_s"] == 1.5
    assert names["local_rr_s"] == pytest.approx((1.0 + 0.5) / 2)
    assert names["avg_rr_s"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    assert names["pre_rr_norm"] == pytest.approx(0.5 / (2.5 / 3))


def test_rr_average_forgets_beats_older_than_its_window():
    t = np.concatenate([np.arange(0, 100, 2.0), 100 + np.arange(0, 50, 0.5)])
    f = rr_features(t, average_s=10.0)
    assert f[-2, RR_FEATURE_NAMES.index("avg_rr_s")] == pytest.approx(0.5)


def test_rr_features_use_no_future_beat_but_the_next():
    t = np.cumsum(np.random.default_rng(0).uniform(0.5, 1.2, 200))
    full = rr_features(t)
    for i in (5, 50, 150):
        # Features of beat i computed from beats 0..i+1 only equal those from all beats.
        np.testing.assert_array_equal(rr_features(t[: i + 2])[i], full[i])


def test_beat_windows_on_record_208():
    record = read_mitdb("208")
    w = beat_windows(record, ECG_SPEC, before_s=0.25, after_s=0.45)
    n_before, n_after = window_bounds(0.25, 0.45, 180.0)
    assert (n_before, n_after) == (45, 81)
    assert w.x.shape == (len(w), 126, 2) and w.x.dtype == np.float32
    assert w.rr.shape == (len(w), 7)
    assert len(w) + sum(w.dropped.values()) == len(record.beats.sample)
    assert set(w.record_id) == {"208"}
    # 208 holds 992 V and 373 F beats; only the first/last beats may be dropped.
    counts = dict(zip(*np.unique(w.label, return_counts=True)))
    assert counts["V"] >= 990 and counts["F"] >= 372
    # The window is the preprocessed signal itself, centred on the R peak.
    y = Preprocessor(ECG_SPEC, 2).run(record.signal, 360.0)
    k = 100
    r_out = (w.r_sample[k] + 1) // 2
    np.testing.assert_array_equal(w.x[k], y[r_out - 45 : r_out + 81])
    assert np.isfinite(w.x).all() and np.isfinite(w.rr).all()


def test_eeg_window_starts():
    assert window_starts(10, 4, 2).tolist() == [0, 2, 4, 6]
    assert window_starts(3, 4, 2).tolist() == []


def test_eegmat_windows_drop_the_flat_tail_and_keep_their_origin():
    spec = PreprocessSpec(500.0, decimate=4, highpass_hz=0.5, lowpass_hz=45.0, notch_hz=50.0, gain=0.01)
    with pytest.warns(UserWarning):
        record = read_eegmat("Subject00", "task", channels=["Fz", "Cz", "Pz"])
    w = fixed_windows(record, spec, window_s=4.0, hop_s=2.0)
    # 62 s at 125 Hz -> starts 0, 2, ..., 58 s (30 windows); the last second is flat.
    assert w.x.shape[1:] == (500, 3)
    touching = int(w.dropped["touches a bad stretch"])
    assert touching >= 1 and len(w) + touching == 30
    assert set(w.subject_id) == {"Subject00"} and set(w.label) == {"task"}
    assert w.start[0] == 0 and np.all(np.diff(w.start) % 250 == 0)


def test_beat_template_is_causal_and_relative_to_the_patient():
    from pipeline.window.template import BeatTemplate, template_inputs

    record = read_mitdb("119")  # bigeminy: 444 V beats among 1543 N
    w = beat_windows(record, ECG_SPEC)
    inputs = template_inputs(w.x[:300])
    assert inputs.shape == (300, 126, 4)
    np.testing.assert_array_equal(inputs[0][:, 2:], 0)  # the first beat is its own template
    # Beat i's input depends on beats 0..i only.
    np.testing.assert_array_equal(template_inputs(w.x[:101])[100], inputs[100])
    # The difference from the patient's template is larger for V beats than for N beats.
    diff = np.abs(inputs[:, :, 2]).mean(axis=1)
    label = w.label[:300]
    assert diff[label == "V"].mean() > 1.5 * diff[label == "N"].mean()
    # Streaming push == offline function.
    tracker = BeatTemplate()
    np.testing.assert_array_equal(np.stack([tracker.push(x) for x in w.x[:50]]), inputs[:50])


def test_template_normalisation_in_beat_windows_keeps_every_beat():
    record = read_mitdb("100")
    plain = beat_windows(record, ECG_SPEC)
    tmpl = beat_windows(record, ECG_SPEC, normalise="template")
    assert tmpl.x.shape == (len(plain), 126, 4)
    np.testing.assert_array_equal(tmpl.r_sample, plain.r_sample)
    with pytest.raises(ValueError, match="must be one of"):
        beat_windows(record, ECG_SPEC, normalise="minmax")


def test_windows_of_two_records_concatenate_field_by_field_and_sum_what_was_dropped():
    from pipeline.window.ecg import BeatWindows

    parts = [beat_windows(read_mitdb(r), ECG_SPEC, before_s=0.25, after_s=0.45) for r in ("100", "208")]
    both = BeatWindows.concat(parts)
    assert len(both) == len(parts[0]) + len(parts[1])
    for name in ("x", "rr", "label", "record_id", "r_sample"):
        np.testing.assert_array_equal(getattr(both, name), np.concatenate([getattr(p, name) for p in parts]))
    assert both.dropped == parts[0].dropped + parts[1].dropped
    assert sum(both.dropped.values()) > 0  # 208 drops beats, so the sum is tested
