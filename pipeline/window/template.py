"""The patient's own running average beat: morphology relative to what is normal for
this patient, the morphological counterpart of RR intervals normalised by the running
average RR.

Shared by offline windowing and the streaming runtime: both push each beat window in
order into :class:`BeatTemplate`, which answers with the model's input for that beat
*before* learning from it (causal: a beat never sees itself in its template).
"""

from __future__ import annotations

import numpy as np


class BeatTemplate:
    """Exponential running average of beat windows, and inputs relative to it.

    Parameters
    ----------
    alpha : float
        Weight of each new beat in the template (1/16: about the last 16 beats).
    min_scale : float
        Floor of the template's per-channel peak-to-peak amplitude, in signal units.

    The input for a beat window w of shape (n_steps, n_channels) is, per channel c::

        [w[:, c] / s_c,  (w[:, c] - template[:, c]) / s_c]

    with s_c the template's peak-to-peak amplitude: shape (n_steps, 2 * n_channels).
    """

    def __init__(self, alpha: float = 1 / 16, min_scale: float = 0.05):
        self.alpha = float(alpha)
        self.min_scale = float(min_scale)
        self.reset()

    def reset(self) -> None:
        self.template_: np.ndarray | None = None

    def push(self, window: np.ndarray) -> np.ndarray:
        """(n_steps, n_channels) -> (n_steps, 2 * n_channels) float32; then learn the beat."""
        w = np.asarray(window, dtype=np.float64)
        if self.template_ is None:
            self.template_ = w.copy()
        t = self.template_
        scale = np.maximum(t.max(axis=0) - t.min(axis=0), self.min_scale)
        out = np.concatenate([w / scale, (w - t) / scale], axis=1).astype(np.float32)
        self.template_ = t + self.alpha * (w - t)
        return out


def template_inputs(windows: np.ndarray, alpha: float = 1 / 16) -> np.ndarray:
    """Offline: the inputs of every beat of *one record*, in beat order.

    windows : (n_beats, n_steps, n_channels) -> (n_beats, n_steps, 2 * n_channels)
    """
    tracker = BeatTemplate(alpha)
    out = np.empty((windows.shape[0], windows.shape[1], 2 * windows.shape[2]), np.float32)
    for i, w in enumerate(windows):
        out[i] = tracker.push(w)
    return out
