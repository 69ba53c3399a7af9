"""The one object every reader returns, and the signal-quality checks run on it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import ChannelError, SignalQualityError


@dataclass(frozen=True)
class SignalSpec:
    """What a stream of samples is: its rate, its channels' labels and their units.

    Every input path (a file's header, command-line options for stdin, a live source's
    description) states one; a session converts it to what its model takes or refuses.

    Attributes
    ----------
    fs_hz : float
        Sampling rate.
    channels : tuple of str
        One label per column, in column order.
    units : tuple of str
        One physical unit per column (``mV``, ``uV``, ...).
    full_scale : tuple of (low, high) per column, or None
        The converter's range in those units where known (WFDB and EDF headers): samples
        at it are clipped (saturated).
    """

    fs_hz: float
    channels: tuple[str, ...]
    units: tuple[str, ...]
    full_scale: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self):
        import math

        if not (isinstance(self.fs_hz, (int, float)) and math.isfinite(self.fs_hz) and self.fs_hz > 0):
            raise ValueError(f"sampling rate must be a positive number of Hz, got {self.fs_hz!r}")
        if not self.channels or len(self.units) != len(self.channels):
            raise ValueError(f"one unit per channel: {len(self.channels)} channels, {len(self.units)} units")
        if self.full_scale is not None and len(self.full_scale) != len(self.channels):
            raise ValueError("one full-scale range per channel")


@dataclass(frozen=True)
class QualityIssue:
    """A stretch of a recording a model must not see: ``kind`` is ``nonfinite`` or ``flat``.

    ``start`` and ``stop`` are sample indices (stop exclusive) at the record's ``fs_hz``.
    """

    kind: str
    channel: str
    start: int
    stop: int

    def describe(self, fs_hz: float) -> str:
        return (
            f"{self.kind} samples in channel {self.channel} at "
            f"{self.start / fs_hz:.3f}-{self.stop / fs_hz:.3f} s "
            f"({self.stop - self.start} samples)"
        )


@dataclass(frozen=True)
class BeatAnnotations:
    """Beat annotations of an ECG record.

    Attributes
    ----------
    sample : ndarray of shape (n_beats,), int64
        Sample index of each beat (R peak) at the record's ``fs_hz``.
    symbol : ndarray of shape (n_beats,), str
        Original annotation symbol.
    aami : ndarray of shape (n_beats,), str
        AAMI EC57 class (``N``, ``S``, ``V``, ``F``, ``Q``).
    unknown_symbols : dict
        Symbols that are neither beats nor known non-beat marks, with their counts.
        They are dropped, and reported so that nobody loses them silently.
    """

    sample: np.ndarray
    symbol: np.ndarray
    aami: np.ndarray
    unknown_symbols: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """A recording in physical units, with what explains it.

    Attributes
    ----------
    record_id : str
        Name of the recording (``"100"``, ``"Z001"``, ``"Subject00_1"``).
    subject_id : str
        Who was recorded; splits never put one subject on both sides. For Bonn, which
        publishes no subject ids, this is the segment id.
    signal : ndarray of shape (n_samples, n_channels), float32
        Samples in ``units``.
    fs_hz : float
        Sampling rate.
    channel_names, units : tuple of str, one per channel
    source : Path
        The file read (the header for WFDB).
    label : str or None
        A recording-level label (Bonn set, EEGMAT ``rest``/``task``).
    beats : BeatAnnotations or None
        ECG beat annotations.
    issues : tuple of QualityIssue
        Non-finite and flat-line stretches found when the record was read.
    """

    record_id: str
    subject_id: str
    signal: np.ndarray
    fs_hz: float
    channel_names: tuple[str, ...]
    units: tuple[str, ...]
    source: Path
    label: str | None = None
    beats: BeatAnnotations | None = None
    issues: tuple[QualityIssue, ...] = ()

    #: The converter's range per channel in ``units`` (WFDB, EDF headers), or None.
    full_scale: tuple[tuple[float, float], ...] | None = None

    @property
    def spec(self) -> SignalSpec:
        """Rate, channels, units (and full scale) of this recording."""
        return SignalSpec(self.fs_hz, tuple(self.channel_names), tuple(self.units), self.full_scale)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs_hz

    def channel_index(self, name: str) -> int:
        """Index of a channel by name; ``"V1|V2"`` takes the first alternative present."""
        for alternative in name.split("|"):
            if alternative in self.channel_names:
                return self.channel_names.index(alternative)
        raise ChannelError(f"{self.source}: no channel '{name}' (channels: {list(self.channel_names)})")

    def bad_mask(self) -> np.ndarray:
        """Boolean mask of shape (n_samples,): True where any channel has an issue."""
        mask = np.zeros(self.n_samples, dtype=bool)
        for issue in self.issues:
            mask[issue.start : issue.stop] = True
        return mask


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def find_quality_issues(signal: np.ndarray, fs_hz: float, channel_names, flat_min_s: float = 1.0):
    """Find non-finite samples and flat lines.

    Parameters
    ----------
    signal : ndarray of shape (n_samples, n_channels)
    fs_hz : float
    channel_names : sequence of str, one per channel
    flat_min_s : float
        A run of identical consecutive samples at least this long is a flat line
        (lead-off or a dead channel). 1 s: MIT-BIH's longest real plateau is 0.73 s
        (record 116, a clipped MLII stretch).

    Returns
    -------
    list of QualityIssue
    """
    issues = []
    min_run = max(2, int(round(flat_min_s * fs_hz)))
    for c, name in enumerate(channel_names):
        x = signal[:, c]
        finite = np.isfinite(x)
        issues += [QualityIssue("nonfinite", name, a, b) for a, b in _runs(~finite)]
        # A flat run of n samples has n-1 zero differences.
        same = np.zeros(len(x), dtype=bool)
        same[1:] = (np.diff(x) == 0) & finite[1:] & finite[:-1]
        for a, b in _runs(same):
            if b - a + 1 >= min_run:
                issues.append(QualityIssue("flat", name, a - 1, b))
    return sorted(issues, key=lambda i: (i.start, i.channel))


def checked(record: Record, strict: bool = False, flat_min_s: float = 1.0) -> Record:
    """Attach quality issues to ``record``; warn (or raise if ``strict``) naming the file."""
    from dataclasses import replace

    issues = find_quality_issues(record.signal, record.fs_hz, record.channel_names, flat_min_s)
    if issues:
        # One line per stretch, naming every channel it spans (EEGMAT pads all 21 at once).
        spans: dict[tuple[str, int, int], list[str]] = {}
        for i in issues:
            spans.setdefault((i.kind, i.start, i.stop), []).append(i.channel)
        parts = [
            f"{kind} samples in channel{'s' if len(chs) > 1 else ''} {', '.join(chs)} at "
            f"{a / record.fs_hz:.3f}-{b / record.fs_hz:.3f} s ({b - a} samples)"
            for (kind, a, b), chs in list(spans.items())[:3]
        ]
        more = f" and {len(spans) - 3} more" if len(spans) > 3 else ""
        message = f"{record.source}: {'; '.join(parts)}{more}"
        if strict:
            raise SignalQualityError(message)
        warnings.warn(message + " (windows that touch them are dropped)", stacklevel=3)
    return replace(record, issues=tuple(issues))
