"""Streaming sample-rate conversion: any rate in, the model's rate out, in chunks.

A polyphase windowed-sinc resampler (Kaiser window). For a rate ratio
``fs_out / fs_in = L / M``, output sample ``m`` is the signal interpolated at input
position ``m * M / L``: its integer part picks the input samples, its remainder (one of
``L`` phases) picks the filter taps. The low-pass that prevents aliasing (taking a rate
down) and images (taking it up) is the same filter, cut at ``ROLLOFF`` of the lower
Nyquist rate, designed once: a table of every phase when it is small (at most
``MAX_TABLE_PHASES`` phases and ``MAX_TABLE_TAPS`` numbers), else each phase computed from
the same formula when it is needed (the same numbers either way).

``L / M`` is exact when the rates' decimal digits give one with at most ``MAX_PHASES``
phases (173.61 Hz to 250 Hz is 25000/17361). A rate with many significant digits
(249.99999999999997 Hz, what ``1 / dt`` gives; an EDF with 0.3 s records, 256.666... Hz)
would need ~10**16 phases: its ratio is the closest one with at most ``MAX_PHASES``
(``rate_error`` tells how far off that is: below 1e-6 of the rate, under a crystal's
tolerance). Positions are exact integers (Python ints where they grow with time), so no
stream is too long. The input rate may be at most ``MAX_RATE_FACTOR`` times the output
rate (and the output at most that many times the input): beyond that the filter spans
more input samples than a device should hold, and :class:`~pipeline.errors.SamplingRateError`
says so before anything is allocated.

Causal and chunk-invariant: the input samples each output needs, and the order in which
its taps are summed, depend only on the output's index, never on how the signal was cut
into pushes, so any chunking gives bit-identical output. Output ``m`` lies at time
``m / fs_out`` of the input's own time axis (no shift); it can be computed once the input
has reached ``half_width`` samples past that time: ``latency_s`` is that wait. Before the
first sample the input is taken to have held its first value (as the IIR filters do), so
there is no start-up transient.

Device side: numpy only.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from pipeline.errors import SamplingRateError

#: Cut-off as a fraction of the lower of the two Nyquist rates; the pass band stays flat
#: to about 0.7 of it (45 Hz for a 128 Hz ECG, above every model's 40 Hz band).
ROLLOFF = 0.85
#: Zero crossings of the sinc on each side: the filter's length, hence its sharpness and
#: latency (16: stop band below -80 dB from about the Nyquist rate on).
ZERO_CROSSINGS = 16
KAISER_BETA = 8.0
#: The tap table holds every phase when there are at most this many phases and this many
#: numbers (8 MB); else each output's taps are computed when it is made.
MAX_TABLE_PHASES = 4096
MAX_TABLE_TAPS = 1 << 20
#: Most phases (L of L / M) a ratio may have; a ratio with more is approximated by the
#: closest one with at most this many (relative rate error below 1 / MAX_PHASES).
MAX_PHASES = 1 << 20
#: The largest factor between the two rates, either way: taking 200x down, the filter
#: spans 2 x 3,765 input samples per output.
MAX_RATE_FACTOR = 200
#: Numbers held at once while the taps are applied (32 MB of float64), whatever the push.
BLOCK_VALUES = 1 << 22


def check_rates(fs_in_hz: float, fs_out_hz: float) -> None:
    """Refuse (:class:`SamplingRateError`) rates the resampler cannot take: not finite and
    positive, or more than ``MAX_RATE_FACTOR`` apart."""
    import math

    for what, fs in (("input", fs_in_hz), ("output", fs_out_hz)):
        try:
            ok = math.isfinite(float(fs)) and float(fs) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise SamplingRateError(f"the {what} sampling rate must be a positive number of Hz, got {fs!r}")
    if fs_in_hz > MAX_RATE_FACTOR * fs_out_hz:
        raise SamplingRateError(
            f"the input is sampled at {fs_in_hz:g} Hz, more than {MAX_RATE_FACTOR} times the {fs_out_hz:g} Hz "
            f"it would be resampled to: the most this chain takes is {MAX_RATE_FACTOR * fs_out_hz:g} Hz "
            f"(decimate the input first)"
        )
    if fs_out_hz > MAX_RATE_FACTOR * fs_in_hz:
        raise SamplingRateError(
            f"the input is sampled at {fs_in_hz:g} Hz, less than 1/{MAX_RATE_FACTOR} of the {fs_out_hz:g} Hz "
            f"it would be resampled to: the least this chain takes is {fs_out_hz / MAX_RATE_FACTOR:g} Hz"
        )


def rate_ratio(fs_in_hz: float, fs_out_hz: float) -> tuple[int, int]:
    """(L, M) with fs_out / fs_in = L / M in lowest terms and L <= ``MAX_PHASES``: exact
    from the rates' decimal digits where that fits (173.61 Hz is 17361/100 Hz, exactly),
    else the closest such ratio (see :func:`ratio_error`)."""
    check_rates(fs_in_hz, fs_out_hz)
    exact = Fraction(repr(float(fs_in_hz))) / Fraction(repr(float(fs_out_hz)))  # M / L
    ratio = exact.limit_denominator(MAX_PHASES)
    return ratio.denominator, ratio.numerator


def ratio_error(fs_in_hz: float, fs_out_hz: float) -> float:
    """Relative error of :func:`rate_ratio` (0.0 when exact): the input is resampled as if
    its rate were ``fs_in_hz * (1 + error)`` or ``* (1 - error)``."""
    up, down = rate_ratio(fs_in_hz, fs_out_hz)
    exact = Fraction(repr(float(fs_in_hz))) / Fraction(repr(float(fs_out_hz)))
    return float(abs(Fraction(down, up) / exact - 1))


class Resampler:
    """Convert a stream from ``fs_in_hz`` to ``fs_out_hz``; ``process`` takes chunks of
    any size.

    Parameters
    ----------
    fs_in_hz, fs_out_hz : float
    n_channels : int

    Attributes
    ----------
    up, down : int
        L and M of the ratio fs_out / fs_in = L / M (see :func:`rate_ratio`).
    rate_error : float
        Relative error of that ratio (0.0 when exact; below ``1 / MAX_PHASES``).
    half_width : int
        Input samples the filter reaches on each side of an output's position.
    latency_s : float
        How long after the input passes an output's time that output can be computed.

    Raises
    ------
    SamplingRateError
        Rates that are not positive, or more than ``MAX_RATE_FACTOR`` apart.
    """

    def __init__(self, fs_in_hz: float, fs_out_hz: float, n_channels: int):
        self.fs_in_hz, self.fs_out_hz = float(fs_in_hz), float(fs_out_hz)
        self.n_channels = int(n_channels)
        self.up, self.down = rate_ratio(self.fs_in_hz, self.fs_out_hz)
        self.rate_error = ratio_error(self.fs_in_hz, self.fs_out_hz)
        # Cut-off in cycles per input sample.
        self.cutoff = ROLLOFF * 0.5 * min(1.0, self.up / self.down)
        self.half_width = int(np.ceil(ZERO_CROSSINGS / (2 * self.cutoff)))
        self.offsets = np.arange(-self.half_width + 1, self.half_width + 1)  # taps, in input samples
        self.latency_s = self.half_width / self.fs_in_hz
        small = self.up <= MAX_TABLE_PHASES and self.up * len(self.offsets) <= MAX_TABLE_TAPS
        self.table = self._taps(np.arange(self.up)) if small else None
        # Outputs per block of tap products: (block, taps, channels) values at most BLOCK_VALUES.
        self.block = int(np.clip(BLOCK_VALUES // (len(self.offsets) * self.n_channels), 1, 2048))
        self.reset()

    def _taps(self, phases: np.ndarray) -> np.ndarray:
        """(n, 2 * half_width) taps for outputs at phases ``phases`` (in 1/up of an input
        sample past the tap at offset 0), each phase scaled to a DC gain of exactly 1."""
        frac = np.asarray(phases, dtype=np.float64)[:, None] / self.up
        u = frac - self.offsets[None, :]  # distance of each tap, input samples
        window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (u / self.half_width) ** 2, 0.0, None)))
        taps = 2 * self.cutoff * np.sinc(2 * self.cutoff * u) * window
        return taps / taps.sum(axis=1, keepdims=True)

    def reset(self) -> None:
        """Forget the stream: the next sample starts it afresh."""
        self.buffer_: np.ndarray | None = None  # input samples from index buffer_start_ on
        self.buffer_start_ = 0
        self.n_in_ = 0  # input samples received since the reset
        self.m_next_ = 0  # index of the next output sample

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """(n_samples, n_channels) at fs_in -> (n_out, n_channels) float64 at fs_out."""
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"chunk must have shape (n, {self.n_channels}), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, self.n_channels))
        if self.buffer_ is None:
            # The past is the first sample held: as many copies as the first taps reach back.
            self.buffer_ = np.repeat(x[:1], self.half_width, axis=0)
            self.buffer_start_ = -self.half_width
        self.buffer_ = np.concatenate([self.buffer_, x])
        self.n_in_ += len(x)
        # Output m needs input up to floor(m * down / up) + half_width: every m with
        # floor(m * down / up) <= last can be computed now. Indices that grow with time
        # (m_next_, n_in_, buffer_start_) are Python ints: exact, never wrapping.
        last = self.n_in_ - 1 - self.half_width
        m_end = ((last + 1) * self.up - 1) // self.down + 1 if last >= 0 else 0
        n_out = max(0, m_end - self.m_next_)
        out = np.zeros((n_out, self.n_channels))
        for a in range(0, n_out, self.block):  # bounded memory for long pushes
            # Position of output m_next_ + a + k, k < block: (b0 + k * down // up ...) with
            # b0, p0 exact and k * down below block * MAX_RATE_FACTOR * MAX_PHASES (int64-safe).
            b0, p0 = divmod((self.m_next_ + a) * self.down, self.up)
            k = np.arange(min(self.block, n_out - a), dtype=np.int64)
            carry, phase = np.divmod(p0 + k * self.down, self.up)
            rows = (b0 - self.buffer_start_ + carry)[:, None] + self.offsets[None, :]
            taps = self.table[phase] if self.table is not None else self._taps(phase)
            window = self.buffer_[rows]  # (n, taps, channels)
            # A running sum over the taps (cumsum is a sequential scan, never pairwise):
            # each output is the same sequence of additions whatever the chunking.
            out[a : a + len(k)] = np.cumsum(taps[:, :, None] * window, axis=1)[:, -1]
        self.m_next_ += n_out
        # Keep what the next outputs can still reach.
        next_base = (self.m_next_ * self.down) // self.up
        keep_from = next_base - self.half_width + 1
        drop = max(0, keep_from - self.buffer_start_)
        if drop:
            self.buffer_ = self.buffer_[drop:]
            self.buffer_start_ += drop
        return out

    def fs_in_as(self) -> str:
        """The input rate the ratio stands for, exactly (``fs_out * M / L``): ``"250"`` for
        249.99999999999997 Hz, ``"770/3"`` for 256.6666666666667 Hz."""
        return str(Fraction(repr(self.fs_out_hz)) * self.down / self.up)

    def input_position(self, m: np.ndarray | int) -> np.ndarray | float:
        """Input-sample position (fractional) of output sample(s) ``m``."""
        return np.asarray(m, dtype=np.float64) * (self.down / self.up)


def resample(signal: np.ndarray, fs_in_hz: float, fs_out_hz: float) -> np.ndarray:
    """Offline use: the whole of ``signal`` (n_samples, n_channels) at ``fs_out_hz``.

    The same causal filter as streaming; the last ``latency_s`` of input, whose outputs
    would need samples past the end, are completed by holding the last sample.

    Returns
    -------
    ndarray of shape (ceil(n_samples * fs_out / fs_in), n_channels), float64
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) == 0:
        return np.zeros((0, x.shape[1]))
    r = Resampler(fs_in_hz, fs_out_hz, x.shape[1])
    n_out = -(-len(x) * r.up // r.down)
    y = np.concatenate([r.process(x), r.process(np.repeat(x[-1:], r.half_width + 1, axis=0))])
    return y[:n_out]


def resample_record(record, fs_hz: float):
    """A :class:`~pipeline.read.record.Record` at another rate (offline, same filter as the
    device): the signal resampled, beat annotations moved to the nearest new sample, the
    quality checks run again. Training uses it when a dataset's recording is not at the
    rate its model is made for."""
    from dataclasses import replace

    from pipeline.read.record import checked

    if abs(record.fs_hz - fs_hz) <= 1e-9 * fs_hz:
        return record
    signal = resample(record.signal, record.fs_hz, fs_hz).astype(np.float32)
    beats = record.beats
    if beats is not None:
        sample = np.round(beats.sample * fs_hz / record.fs_hz).astype(np.int64)
        beats = replace(beats, sample=np.minimum(sample, len(signal) - 1))
    return checked(replace(record, signal=signal, fs_hz=float(fs_hz), beats=beats, issues=()))
