"""Causal IIR filtering as second-order sections, and decimation, with explicit state."""

from __future__ import annotations

import numpy as np

from pipeline.preprocess.iir import butter_bandpass_order1, sosfilt, sosfilt_zi


def design_sos(
    fs_hz: float,
    highpass_hz: float | None = None,
    lowpass_hz: float | None = None,
    notch_hz: float | None = None,
    order: int = 2,
    notch_q: float = 30.0,
) -> np.ndarray:
    """Design a Butterworth band-pass (or high/low-pass) plus an optional notch.

    Parameters
    ----------
    fs_hz : float
        Sampling rate of the signal the filter runs on.
    highpass_hz, lowpass_hz : float or None
        Band edges (-3 dB). None leaves that side open.
    notch_hz : float or None
        Mains notch (50 or 60 Hz); ignored when at or above Nyquist.
    order : int
        Butterworth order per band edge.

    Returns
    -------
    sos : ndarray of shape (n_sections, 6), float64
        Second-order sections in scipy's layout ``[b0, b1, b2, a0, a1, a2]``; an empty
        (0, 6) array means "no filtering".
    """
    from scipy import signal as sps  # design only (training/export): the device gets SOS

    nyquist = fs_hz / 2
    sections = []
    for edge in (highpass_hz, lowpass_hz):
        if edge is not None and not 0 < edge < nyquist:
            raise ValueError(f"band edge {edge} Hz must lie in (0, {nyquist}) Hz at fs {fs_hz} Hz")
    if highpass_hz and lowpass_hz:
        sections.append(sps.butter(order, [highpass_hz, lowpass_hz], "bandpass", fs=fs_hz, output="sos"))
    elif highpass_hz:
        sections.append(sps.butter(order, highpass_hz, "highpass", fs=fs_hz, output="sos"))
    elif lowpass_hz:
        sections.append(sps.butter(order, lowpass_hz, "lowpass", fs=fs_hz, output="sos"))
    if notch_hz and notch_hz < nyquist:
        b, a = sps.iirnotch(notch_hz, notch_q, fs=fs_hz)
        sections.append(sps.tf2sos(b, a))
    return np.concatenate(sections) if sections else np.zeros((0, 6))


class CausalFilter:
    """Run SOS sections over a stream, keeping the filter state between chunks.

    The state starts at the steady state for the first sample seen (as if the signal had
    held that value forever), which avoids a start-up transient and still uses no future
    samples. Latency: the IIR filter's group delay (a few samples in the pass band).

    Parameters
    ----------
    sos : ndarray of shape (n_sections, 6)
    n_channels : int
    """

    def __init__(self, sos: np.ndarray, n_channels: int):
        self.sos = np.asarray(sos, dtype=np.float64).reshape(-1, 6)
        self.n_channels = int(n_channels)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample starts the filter afresh."""
        self.zi_: np.ndarray | None = None

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter a chunk.

        Parameters
        ----------
        chunk : ndarray of shape (n_samples, n_channels)

        Returns
        -------
        ndarray of shape (n_samples, n_channels), float64
        """
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"chunk must have shape (n, {self.n_channels}), got {x.shape}")
        if len(self.sos) == 0 or len(x) == 0:
            return x.copy()
        if self.zi_ is None:
            # (n_sections, 2) steady state per unit input, scaled per channel by x[0].
            self.zi_ = sosfilt_zi(self.sos)[:, :, None] * x[0][None, None, :]
        y, self.zi_ = sosfilt(self.sos, x, self.zi_)
        return y


class Decimator:
    """Keep every ``factor``-th sample of a stream, counting across chunks.

    Output sample k is input sample ``k * factor``. The signal must already be low-passed
    below the new Nyquist rate (the chain's filter does that). Latency: none.
    """

    def __init__(self, factor: int):
        if int(factor) != factor or factor < 1:
            raise ValueError(f"decimation factor must be a positive integer, got {factor}")
        self.factor = int(factor)
        self.reset()

    def reset(self) -> None:
        self.offset_ = 0  # index, within the next chunk, of the next sample to keep

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """(n_samples, ...) -> (n_kept, ...)."""
        if self.factor == 1:
            return chunk
        kept = chunk[self.offset_ :: self.factor]
        self.offset_ = (self.offset_ - len(chunk)) % self.factor
        return kept


class RunningNormaliser:
    """Divide each channel by its running RMS: ``y / sqrt(mean_w(y^2) + floor)``, causal.

    ``mean_w`` is a one-pole (exponential) average of y^2 with time constant
    ``time_constant_s``, run through the same SOS kernel as the filter (one section
    ``[a, 0, 0, 1, a - 1, 0]``, a = 1 - exp(-1 / (time_constant_s * fs_hz))), and
    bias-corrected by ``1 - (1 - a)^(n + 1)`` after n + 1 samples, so that it is the
    weighted mean of the samples seen so far from the first sample on (no start-up ramp,
    no initial guess of the power). Scaling the input by k scales y and the RMS alike:
    the output does not depend on the amplifier's gain (up to ``floor``, in squared
    output units). Latency: none. Chunk-invariant: the state is the section's and the
    sample count.

    Parameters
    ----------
    time_constant_s : float
        Memory of the running power, in seconds.
    fs_hz : float
        Rate of the samples it sees (the model rate: it runs after decimation).
    n_channels : int
    floor : float
        Added to the mean square before the square root (silence stays silent).
    """

    def __init__(self, time_constant_s: float, fs_hz: float, n_channels: int, floor: float = 1e-12):
        if not time_constant_s > 0:
            raise ValueError(f"running normalisation time constant must be > 0 s, got {time_constant_s}")
        self.alpha = 1.0 - float(np.exp(-1.0 / (time_constant_s * fs_hz)))
        self.sos = np.array([[self.alpha, 0.0, 0.0, 1.0, self.alpha - 1.0, 0.0]])
        self.n_channels = int(n_channels)
        self.floor = float(floor)
        self.reset()

    def reset(self) -> None:
        self.zi_ = np.zeros((1, 2, self.n_channels))
        self.n_seen_ = 0  # samples since the start (for the bias correction)

    def mean_square(self, chunk: np.ndarray) -> np.ndarray:
        """(n_samples, n_channels) -> the bias-corrected running mean of its squares, float64."""
        y = np.asarray(chunk, dtype=np.float64)
        if len(y) == 0:
            return y.copy()
        power, self.zi_ = sosfilt(self.sos, y * y, self.zi_)
        count = self.n_seen_ + np.arange(1, len(y) + 1, dtype=np.float64)
        self.n_seen_ += len(y)
        return power / (1.0 - (1.0 - self.alpha) ** count)[:, None]

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """(n_samples, n_channels) -> (n_samples, n_channels) float64."""
        y = np.asarray(chunk, dtype=np.float64)
        return y / np.sqrt(self.mean_square(y) + self.floor)


class BandPower:
    """Relative band powers, per channel and band: ``log(P_band / P_all)``, causal.

    Each band is two cascaded first-order Butterworth band-pass sections (designed in
    numpy, :func:`~pipeline.preprocess.iir.butter_bandpass_order1`, so the device designs
    the same coefficients without ``scipy.signal``); P is the bias-corrected one-pole
    running mean square (:class:`RunningNormaliser`) of the band and of the whole signal
    over ``power_s``. A ratio of powers: scaling the input changes nothing. A filter bank
    plus log power: what a spectral EEG classifier looks at, as a stream a microcontroller
    can compute (2 biquads, one one-pole and one log per band, channel and sample).

    Output channels are band-major: [band 0 of every channel, band 1 of every channel, ...].
    """

    def __init__(self, bands_hz, power_s: float, fs_hz: float, n_channels: int, floor: float = 1e-12):
        self.bands_hz = [tuple(map(float, b)) for b in bands_hz]
        self.n_channels = int(n_channels)
        self.floor = float(floor)
        self.filters = [CausalFilter(band_sos(fs_hz, lo, hi), n_channels) for lo, hi in self.bands_hz]
        self.power = RunningNormaliser(power_s, fs_hz, n_channels * (len(self.bands_hz) + 1))
        self.reset()

    def reset(self) -> None:
        for f in self.filters:
            f.reset()
        self.power.reset()

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """(n_samples, n_channels) -> (n_samples, n_bands * n_channels) float64."""
        y = np.asarray(chunk, dtype=np.float64)
        parts = [y] + [f.process(y) for f in self.filters]
        ms = self.power.mean_square(np.concatenate(parts, axis=1))
        log_ms = np.log(ms + self.floor)
        c = self.n_channels
        return log_ms[:, c:] - np.tile(log_ms[:, :c], len(self.filters))


def band_sos(fs_hz: float, low_hz: float, high_hz: float) -> np.ndarray:
    """A band of :class:`BandPower`: two cascaded first-order band-pass sections, (2, 6)."""
    if not 0 < low_hz < high_hz < fs_hz / 2:
        raise ValueError(f"band [{low_hz}, {high_hz}] Hz must lie in (0, {fs_hz / 2}) Hz at fs {fs_hz} Hz")
    section = butter_bandpass_order1(fs_hz, low_hz, high_hz)
    return np.concatenate([section, section])


class MovingSum:
    """Sum of the last ``window`` samples of a stream, kept as a running total.

    Each output is the previous one plus the newest sample less the one that left the
    window, added in sample order from a total carried between chunks: any chunking gives
    the same numbers, bit for bit, at a few vector operations per chunk (a sliding-window
    sum per chunk costs tens of microseconds in fixed overhead alone). Samples before the
    first are zeros.

    Parameters
    ----------
    window : int
        Number of samples summed.
    """

    def __init__(self, window: int):
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        self.tail_ = np.zeros(self.window)  # the last `window` samples
        self.total_ = 0.0

    def process(self, x: np.ndarray) -> np.ndarray:
        """(n,) -> (n,) float64 running sums."""
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        if n == 0:
            return np.zeros(0)
        ext = np.concatenate([self.tail_, x])
        steps = np.empty(n + 1)
        steps[0] = self.total_
        np.subtract(ext[self.window :], ext[:n], out=steps[1:])
        out = np.cumsum(steps)[1:]
        self.total_ = float(out[-1])
        self.tail_ = ext[-self.window :]
        return out
