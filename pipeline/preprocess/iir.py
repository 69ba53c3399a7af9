"""The IIR kernel of the device side: scipy's compiled second-order-section filter,
loaded without ``scipy.signal``.

``import scipy.signal`` costs about 75 MB of resident memory (it imports most of SciPy),
three quarters of a streaming process on a Raspberry Pi. The kernel itself is one small
compiled module, ``scipy/signal/_sosfilt``, that needs only numpy: it is loaded directly
from its file, so the numbers are scipy.signal.sosfilt's exactly. If that ever fails
(another SciPy layout), the ordinary import is used instead.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import numpy as np


def _load_kernel():
    try:
        spec = importlib.util.find_spec("scipy")
        folder = Path(spec.origin).parent / "signal"
        path = next(folder.glob("_sosfilt*.so"), None) or next(folder.glob("_sosfilt*.pyd"))
        loader = importlib.machinery.ExtensionFileLoader("scipy.signal._sosfilt", str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        loader.exec_module(module)
        return module._sosfilt, "scipy.signal._sosfilt (direct)"
    except Exception:  # a layout we do not know: fall back to the public package
        from scipy.signal._sosfilt import _sosfilt

        return _sosfilt, "scipy.signal._sosfilt"


_SOSFILT, KERNEL = _load_kernel()


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Filter along axis 0 from state zi; the same as ``scipy.signal.sosfilt(sos, x, axis=0, zi=zi)``.

    Parameters
    ----------
    sos : (n_sections, 6) float64
    x : (n_samples, n_channels) float64
    zi : (n_sections, 2, n_channels) float64

    Returns
    -------
    y : (n_samples, n_channels) float64, and the final state zf like zi
    """
    work = np.array(x.T, dtype=np.float64, order="C")  # (channels, samples), in place
    state = np.ascontiguousarray(np.transpose(zi, (2, 0, 1)), dtype=np.float64)
    _SOSFILT(np.ascontiguousarray(sos, dtype=np.float64), work, state)
    return work.T, np.transpose(state, (1, 2, 0))


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """Steady-state initial conditions per unit step input, (n_sections, 2), as
    ``scipy.signal.sosfilt_zi`` computes them (each section's lfilter_zi, scaled by the
    DC gain of the sections before it)."""
    sos = np.asarray(sos, dtype=np.float64)
    zi = np.empty((len(sos), 2))
    scale = 1.0
    for k, section in enumerate(sos):
        b, a = section[:3] / section[3], section[3:] / section[3]
        # lfilter_zi: solve (I - A^T) zi = b[1:] - a[1:] b[0], A the companion matrix of a.
        companion = np.array([[-a[1], -a[2]], [1.0, 0.0]])
        zi[k] = scale * np.linalg.solve(np.eye(2) - companion.T, b[1:] - a[1:] * b[0])
        scale *= b.sum() / a.sum()
    return zi


def butter_bandpass_order1(fs_hz: float, low_hz: float, high_hz: float) -> np.ndarray:
    """First-order Butterworth band-pass as one section, (1, 6), designed in numpy.

    The bilinear transform of (wb s) / (s^2 + wb s + w0^2) with prewarped edges: what
    ``scipy.signal.butter(1, [low, high], "bandpass", fs=fs, output="sos")`` returns (to
    rounding), for the device side that does not import scipy.signal.
    """
    k = 2.0 * fs_hz
    w1 = k * np.tan(np.pi * low_hz / fs_hz)
    w2 = k * np.tan(np.pi * high_hz / fs_hz)
    wb, w0sq = w2 - w1, w1 * w2
    a0 = k * k + wb * k + w0sq
    b = np.array([wb * k, 0.0, -wb * k]) / a0
    a = np.array([a0, 2.0 * (w0sq - k * k), k * k - wb * k + w0sq]) / a0
    return np.concatenate([b, a])[None, :]
