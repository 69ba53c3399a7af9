"""Beat-centred ECG windows with RR features.

Each annotated beat gives one window of the preprocessed signal from ``before_s`` before
to ``after_s`` after its R peak (at the model rate), plus its RR features. Beats whose
window runs off the record, touches a bad stretch (NaN/inf, flat line) or lacks RR
features (the first and last beat) are dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np

from pipeline.preprocess import Preprocessor, PreprocessSpec
from pipeline.read.record import Record
from pipeline.window.rr import rr_features
from pipeline.window.template import template_inputs


@dataclass
class BeatWindows:
    """Windows of many beats, each knowing its record and position.

    Attributes
    ----------
    x : ndarray of shape (n_beats, n_steps, n_channels), float32
        Preprocessed signal around each R peak, at the model rate.
    rr : ndarray of shape (n_beats, n_rr_features), float32
        RR features in the order of ``pipeline.window.rr.RR_FEATURE_NAMES``.
    label : ndarray of shape (n_beats,), str
        AAMI class.
    record_id : ndarray of shape (n_beats,), str
    r_sample : ndarray of shape (n_beats,), int64
        R peak at the record's own rate.
    dropped : Counter
        Beats left out, by reason.
    """

    x: np.ndarray
    rr: np.ndarray
    label: np.ndarray
    record_id: np.ndarray
    r_sample: np.ndarray
    dropped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.label)

    @staticmethod
    def concat(parts: list["BeatWindows"]) -> "BeatWindows":
        dropped: Counter = Counter()
        for p in parts:
            dropped.update(p.dropped)
        arrays = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(BeatWindows)
            if f.name != "dropped"
        }
        return BeatWindows(**arrays, dropped=dropped)


NORMALISATIONS = ("none", "zscore", "template")


def normalise_windows(x: np.ndarray, mode: str) -> np.ndarray:
    """Scale the beat windows of *one record*, in beat order, as the device will.

    x : (n_beats, n_steps, n_channels)
    ``"none"``: as filtered (mV). ``"zscore"``: each window and channel to zero mean and
    unit spread. ``"template"``: each beat and its difference from the patient's running
    average beat, both over the template's amplitude (:mod:`pipeline.window.template`),
    doubling the channels.
    """
    if mode == "none":
        return x
    if mode == "zscore":
        mean = x.mean(axis=-2, keepdims=True)
        std = x.std(axis=-2, keepdims=True)
        return ((x - mean) / (std + 0.01)).astype(np.float32)
    if mode == "template":
        return template_inputs(x)
    raise ValueError(f"window normalisation must be one of {NORMALISATIONS}, not '{mode}'")


def window_bounds(before_s: float, after_s: float, fs_hz: float) -> tuple[int, int]:
    """Samples before and after (excluding) the R peak: window = [r - before, r + after)."""
    return int(round(before_s * fs_hz)), int(round(after_s * fs_hz))


def beat_windows(
    record: Record,
    spec: PreprocessSpec,
    before_s: float = 0.25,
    after_s: float = 0.45,
    rr_local_beats: int = 10,
    rr_average_s: float = 300.0,
    normalise: str = "none",
) -> BeatWindows:
    """Cut beat windows from one annotated record.

    Parameters
    ----------
    record : Record with ``beats``
    spec : PreprocessSpec, made for ``record.fs_hz`` (refused otherwise)
    before_s, after_s : float
        Window extent around the R peak. The window's last sample is ``after_s`` after
        the R peak: that, plus the filter's group delay, is the earliest a device can decide.
    normalise : str
        One of ``NORMALISATIONS`` (see :func:`normalise_windows`); applied over every
        clean in-bounds beat in order, so the running template sees what a device sees.

    Returns
    -------
    BeatWindows
    """
    if record.beats is None:
        raise ValueError(f"{record.source}: no beat annotations")
    pre = Preprocessor(spec, record.signal.shape[1])
    y = pre.run(record.signal, record.fs_hz, record.source)  # (n_out, n_channels)
    factor = spec.decimate
    n_before, n_after = window_bounds(before_s, after_s, spec.fs_out_hz)
    r = record.beats.sample
    feats = rr_features(r / record.fs_hz, rr_local_beats, rr_average_s)
    r_out = (r + factor // 2) // factor  # nearest model-rate sample
    start, stop = r_out - n_before, r_out + n_after
    dropped: Counter = Counter()
    ok = np.ones(len(r), dtype=bool)
    edge = (start < 0) | (stop > len(y))
    dropped["window off the record"] += int(edge.sum())
    ok &= ~edge
    if record.issues:
        bad = np.concatenate([[0], np.cumsum(record.bad_mask())])
        lo = np.clip(start * factor, 0, record.n_samples)
        hi = np.clip(stop * factor, 0, record.n_samples)
        touches = (bad[hi] - bad[lo] > 0) & ok
        dropped["touches a bad stretch"] += int(touches.sum())
        ok &= ~touches
    clean = np.flatnonzero(ok)  # every beat a device would window
    steps = np.arange(-n_before, n_after)
    x = y[r_out[clean, None] + steps[None, :]] if len(clean) else np.zeros((0, len(steps), y.shape[1]), np.float32)
    x = normalise_windows(x.astype(np.float32), normalise)
    has_rr = ~np.isnan(feats[clean]).any(axis=1)
    dropped["no RR features (first/last beat)"] += int((~has_rr).sum())
    idx = clean[has_rr]
    return BeatWindows(
        x=x[has_rr],
        rr=feats[idx].astype(np.float32),
        label=record.beats.aami[idx],
        record_id=np.full(len(idx), record.record_id),
        r_sample=r[idx],
        dropped=dropped,
    )
