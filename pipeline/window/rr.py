"""RR-interval features of a beat, computed causally from beat times.

Shared by offline windowing and the streaming runtime: both push beat times one by one
into :class:`RRFeatures`, so the device computes exactly what the model was trained on.

For beat *i* at time t_i the features are (seconds, and ratios to the running average):

=============  ===============================================================
pre_rr_s       t_i - t_(i-1)
post_rr_s      t_(i+1) - t_i: known only when beat i+1 arrives, so a model that
               uses it decides one RR interval after the beat
local_rr_s     mean of the last ``local_beats`` RR intervals ending at or before t_i
avg_rr_s       mean of the RR intervals ending within ``average_s`` before t_i:
               the patient's own running rhythm, a causal stand-in for the
               whole-record average of the literature
*_norm         pre, post and local divided by avg_rr_s
=============  ===============================================================
"""

from __future__ import annotations

from collections import deque

import numpy as np

RR_FEATURE_NAMES = ("pre_rr_s", "post_rr_s", "local_rr_s", "avg_rr_s", "pre_rr_norm", "post_rr_norm", "local_rr_norm")


class RRFeatures:
    """Streaming RR features.

    Parameters
    ----------
    local_beats : int
        Number of RR intervals in the local average.
    average_s : float
        Length of the running-average window, in seconds.
    """

    def __init__(self, local_beats: int = 10, average_s: float = 300.0):
        self.local_beats = int(local_beats)
        self.average_s = float(average_s)
        self.reset()

    def reset(self) -> None:
        self.last_t_s_: float | None = None  # time of the newest beat
        self.prev_t_s_: float | None = None  # time of the beat before it
        self.local_: deque[float] = deque(maxlen=self.local_beats)
        self.window_: deque[tuple[float, float]] = deque()  # (end time, rr) of intervals in average_s
        self.window_sum_ = 0.0

    def push(self, t_s: float) -> np.ndarray | None:
        """Register a beat at ``t_s`` seconds.

        Returns
        -------
        ndarray of shape (7,), float64, or None
            Features of the *previous* beat (now that its post-RR is known), in the
            order of ``RR_FEATURE_NAMES``; None until two earlier beats have been seen.
        """
        features = None
        last = self.last_t_s_
        if last is not None and t_s <= last:
            raise ValueError(f"beat times must increase: {t_s} after {last}")
        if last is not None and self.prev_t_s_ is not None:
            pre = last - self.prev_t_s_
            post = t_s - last
            local = sum(self.local_) / len(self.local_)
            avg = self.window_sum_ / len(self.window_)
            features = np.array([pre, post, local, avg, pre / avg, post / avg, local / avg])
        if last is not None:
            rr = t_s - last
            self.local_.append(rr)
            self.window_.append((t_s, rr))
            self.window_sum_ += rr
            while self.window_[0][0] < t_s - self.average_s:
                self.window_sum_ -= self.window_.popleft()[1]
        self.prev_t_s_, self.last_t_s_ = last, t_s
        return features


def rr_features(beat_times_s: np.ndarray, local_beats: int = 10, average_s: float = 300.0) -> np.ndarray:
    """Offline: features of every beat of a record.

    Parameters
    ----------
    beat_times_s : ndarray of shape (n_beats,)
        Increasing beat times in seconds.

    Returns
    -------
    ndarray of shape (n_beats, 7), float64
        NaN rows for the first and last beat, which lack a pre- or post-RR.
    """
    out = np.full((len(beat_times_s), len(RR_FEATURE_NAMES)), np.nan)
    tracker = RRFeatures(local_beats, average_s)
    for i, t in enumerate(np.asarray(beat_times_s, dtype=np.float64)):
        features = tracker.push(float(t))
        if features is not None:
            out[i - 1] = features
    return out
