"""Fixed-length, overlapping EEG windows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np

from pipeline.preprocess import Preprocessor, PreprocessSpec
from pipeline.read.record import Record


@dataclass
class EEGWindows:
    """Windows of EEG, each knowing its recording, subject and position.

    Attributes
    ----------
    x : ndarray of shape (n_windows, n_steps, n_channels), float32
    label : ndarray of shape (n_windows,), str
    record_id, subject_id : ndarray of shape (n_windows,), str
    start : ndarray of shape (n_windows,), int64
        First sample of the window at the model rate.
    dropped : Counter
    """

    x: np.ndarray
    label: np.ndarray
    record_id: np.ndarray
    subject_id: np.ndarray
    start: np.ndarray
    dropped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.label)

    @staticmethod
    def concat(parts: list["EEGWindows"]) -> "EEGWindows":
        dropped: Counter = Counter()
        for p in parts:
            dropped.update(p.dropped)
        arrays = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(EEGWindows)
            if f.name != "dropped"
        }
        return EEGWindows(**arrays, dropped=dropped)


def window_starts(n_samples: int, window_len: int, hop_len: int) -> np.ndarray:
    """Starts of every full window: 0, hop, 2*hop, ... while start + window_len <= n."""
    if n_samples < window_len:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - window_len + 1, hop_len, dtype=np.int64)


def fixed_windows(record: Record, spec: PreprocessSpec, window_s: float, hop_s: float) -> EEGWindows:
    """Cut a recording into windows of ``window_s`` every ``hop_s`` (at the model rate).

    The decision for a window is due when its last sample has arrived: windows start at
    multiples of the hop from the start of the recording, as the streaming runtime does.

    Returns
    -------
    EEGWindows with ``x`` of shape (n_windows, round(window_s * fs_out_hz), n_channels)
    """
    if record.label is None:
        raise ValueError(f"{record.source}: no label")
    y = Preprocessor(spec, record.signal.shape[1]).run(record.signal, record.fs_hz, record.source)
    n_win = int(round(window_s * spec.fs_out_hz))
    n_hop = int(round(hop_s * spec.fs_out_hz))
    if n_win < 1 or n_hop < 1:
        raise ValueError(f"window_s={window_s} and hop_s={hop_s} must each be >= 1 sample")
    starts = window_starts(len(y), n_win, n_hop)
    dropped: Counter = Counter()
    if record.issues:
        bad = np.concatenate([[0], np.cumsum(record.bad_mask())])
        f = spec.decimate
        lo = np.clip(starts * f, 0, record.n_samples)
        hi = np.clip((starts + n_win) * f, 0, record.n_samples)
        touches = bad[hi] - bad[lo] > 0
        dropped["touches a bad stretch"] += int(touches.sum())
        starts = starts[~touches]
    x = y[starts[:, None] + np.arange(n_win)[None, :]] if len(starts) else np.zeros((0, n_win, y.shape[1]), np.float32)
    n = len(starts)
    return EEGWindows(
        x=x.astype(np.float32),
        label=np.full(n, record.label),
        record_id=np.full(n, record.record_id),
        subject_id=np.full(n, record.subject_id),
        start=starts,
        dropped=dropped,
    )
