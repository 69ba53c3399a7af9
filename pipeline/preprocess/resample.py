"""Streaming sample-rate conversion: any rate in, the model's rate out, in chunks.

A polyphase windowed-sinc resampler (Kaiser window). For a rate ratio
``fs_out / fs_in = L / M`` (exact, from the rates' decimal digits), output sample ``m`` is
the signal interpolated at input position ``m * M / L``: its integer part picks the input
samples, its remainder (one of ``L`` phases) picks the filter taps. The low-pass that
prevents aliasing (taking a rate down) and images (taking it up) is the same filter, cut
at ``ROLLOFF`` of the lower Nyquist rate, designed once: a table of every phase when
there are at most ``MAX_TABLE_PHASES``, else each phase computed from the same formula
when it is needed (the same numbers either way).

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

#: Cut-off as a fraction of the lower of the two Nyquist rates; the pass band stays flat
#: to about 0.7 of it (45 Hz for a 128 Hz ECG, above every model's 40 Hz band).
ROLLOFF = 0.85
#: Zero crossings of the sinc on each side: the filter's length, hence its sharpness and
#: latency (16: stop band below -80 dB from about the Nyquist rate on).
ZERO_CROSSINGS = 16
KAISER_BETA = 8.0
MAX_TABLE_PHASES = 4096


def rate_ratio(fs_in_hz: float, fs_out_hz: float) -> tuple[int, int]:
    """(L, M) with fs_out / fs_in = L / M in lowest terms, from the rates' decimal digits
    (173.61 Hz is 17361/100 Hz, exactly)."""
    if not (fs_in_hz > 0 and fs_out_hz > 0):
        raise ValueError(f"sampling rates must be positive, got {fs_in_hz} and {fs_out_hz}")
    ratio = Fraction(repr(float(fs_out_hz))) / Fraction(repr(float(fs_in_hz)))
    return ratio.numerator, ratio.denominator


class Resampler:
    """Convert a stream from ``fs_in_hz`` to ``fs_out_hz``; ``process`` takes chunks of
    any size.

    Parameters
    ----------
    fs_in_hz, fs_out_hz : float
    n_channels : int

    Attributes
    ----------
    half_width : int
        Input samples the filter reaches on each side of an output's position.
    latency_s : float
        How long after the input passes an output's time that output can be computed.
    """

    def __init__(self, fs_in_hz: float, fs_out_hz: float, n_channels: int):
        self.fs_in_hz, self.fs_out_hz = float(fs_in_hz), float(fs_out_hz)
        self.n_channels = int(n_channels)
        self.up, self.down = rate_ratio(fs_in_hz, fs_out_hz)
        # Cut-off in cycles per input sample.
        self.cutoff = ROLLOFF * 0.5 * min(1.0, self.up / self.down)
        self.half_width = int(np.ceil(ZERO_CROSSINGS / (2 * self.cutoff)))
        self.offsets = np.arange(-self.half_width + 1, self.half_width + 1)  # taps, in input samples
        self.latency_s = self.half_width / self.fs_in_hz
        self.table = self._taps(np.arange(self.up)) if self.up <= MAX_TABLE_PHASES else None
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
        # floor(m * down / up) <= last can be computed now.
        last = self.n_in_ - 1 - self.half_width
        m_end = ((last + 1) * self.up - 1) // self.down + 1 if last >= 0 else 0
        m = np.arange(self.m_next_, max(m_end, self.m_next_), dtype=np.int64)
        out = np.zeros((len(m), self.n_channels))
        if len(m):
            base, phase = np.divmod(m * self.down, self.up)
            taps = self.table[phase] if self.table is not None else self._taps(phase)
            rows = (base - self.buffer_start_)[:, None] + self.offsets[None, :]
            for a in range(0, len(m), 2048):  # bounded memory for long pushes
                window = self.buffer_[rows[a : a + 2048]]  # (n, taps, channels)
                # A running sum over the taps (cumsum is a sequential scan, never pairwise):
                # each output is the same sequence of additions whatever the chunking.
                out[a : a + 2048] = np.cumsum(taps[a : a + 2048, :, None] * window, axis=1)[:, -1]
            self.m_next_ = int(m[-1]) + 1
        # Keep what the next outputs can still reach.
        next_base = (self.m_next_ * self.down) // self.up
        keep_from = next_base - self.half_width + 1
        drop = max(0, keep_from - self.buffer_start_)
        if drop:
            self.buffer_ = self.buffer_[drop:]
            self.buffer_start_ += drop
        return out

    def input_position(self, m: np.ndarray | int) -> np.ndarray | float:
        """Input-sample position (fractional) of output sample(s) ``m``."""
        return np.asarray(m) * self.down / self.up


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
