"""Live sources: samples that arrive while the program runs (LSL, BrainFlow, serial).

A live source states its :class:`~pipeline.read.record.SignalSpec` when it is opened (from
the stream's own description where it has one, from the command line where it has not) and
then hands over whatever has arrived, with a timestamp per sample on its own clock:

``read(timeout_s) -> Chunk | None``
    samples that arrived within ``timeout_s`` (None: nothing came). A chunk may carry
    source-side quality events (a garbled or dropped serial frame) with the row they
    belong before; rows the source knows were lost are NaN, so that the session reports a
    gap and restarts instead of gluing signal across it.
``SourceLost``
    raised by ``read`` when the device or stream has gone; ``reopen()`` tries once to get
    it back (the caller retries with backoff, or ends cleanly).

Clocks: ``"lsl"`` (LSL's ``local_clock``, seconds; LSL timestamps are corrected into it)
or ``"unix"`` (``time.time()``, seconds). ``now()`` reads the source's clock, so that a
decision's latency is measured on the same clock as the sample it came from.

Device side: numpy only here; each source module imports its own library (pylsl,
brainflow, pyserial) inside its functions, so the core never needs them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.runtime.sources.base import Source, SourceError

#: INPUT prefixes that name a live source (``lsl:NAME``, ``brainflow:BOARD``, ``serial:DEVICE``).
SCHEMES = ("lsl", "brainflow", "serial")

#: Which extra brings each source's library (``pip install 'biosig-edge[device-lsl]'``).
EXTRAS = {"lsl": "device-lsl", "brainflow": "device-brainflow", "serial": "device-serial"}


class SourceLost(SourceError):
    """The device or stream went away (unplugged, outlet closed, board error)."""


@dataclass
class Chunk:
    """What a live source handed over in one read.

    Attributes
    ----------
    samples : ndarray of shape (n, n_channels), float64
        In the source's declared units; NaN rows stand for samples known to be lost.
    timestamps : ndarray of shape (n,), float64
        Seconds on the source's clock, one per row.
    events : list of (row, dict)
        Source-side ``signal_quality`` events, each placed before row ``row`` of this chunk
        (``sample`` is filled in by the runner, which knows the running count).
    """

    samples: np.ndarray
    timestamps: np.ndarray
    events: list = field(default_factory=list)


class LiveSource(Source):
    """A source whose samples arrive in time; see the module docstring."""

    clock = "unix"
    live = True

    def now(self) -> float:
        """The current time on this source's clock, seconds."""
        return time.time()

    def read(self, timeout_s: float) -> Chunk | None:
        raise NotImplementedError

    def reopen(self) -> None:
        """Try once to get a lost source back; raise :class:`SourceError` if it is not there."""
        raise SourceError(f"{self.name}: cannot be reopened")

    def chunks(self, n_samples: int) -> Iterator[np.ndarray]:
        """Samples as they arrive, until the source is lost (for callers that need no
        timestamps; the command line uses ``read``)."""
        while True:
            try:
                chunk = self.read(0.5)
            except SourceLost:
                return
            if chunk is not None and len(chunk.samples):
                yield chunk.samples


def is_live(text: str) -> bool:
    """True if an INPUT names a live source (``lsl:...``, ``brainflow:...``, ``serial:...``)."""
    scheme, sep, rest = str(text).partition(":")
    return bool(sep) and scheme.lower() in SCHEMES and bool(rest)


def open_live(
    text: str,
    *,
    fs_hz: float | None = None,
    units: str | None = None,
    labels: list[str] | None = None,
    labels_map: bool = False,
    fmt: str = "text",
    gain: float | None = None,
    baud: int = 115200,
    wait_s: float = 10.0,
    group: str | None = None,
) -> LiveSource:
    """Open the live source ``text`` names.

    Parameters
    ----------
    text : ``lsl:NAME_OR_QUERY``, ``brainflow:BOARD[,key=value...]`` or ``serial:DEVICE``
    fs_hz, units, labels, fmt, gain : what the command line declares (serial needs rate,
        units and labels; LSL and BrainFlow describe themselves, and the options only fill
        what their description lacks)
    labels_map : ``labels`` are the inputs of a ``--channels MODEL=INPUT`` mapping
    baud : serial line speed
    wait_s : how long to wait for an LSL stream to appear
    group : BrainFlow channel group to read (``eeg``, ``ecg``, ``emg``, ``exg``)
    """
    scheme, _, rest = str(text).partition(":")
    scheme = scheme.lower()
    try:
        if scheme == "lsl":
            from pipeline.runtime.sources.lsl import LSLSource

            return LSLSource(rest, wait_s=wait_s, labels=labels, units=units, gain=gain, labels_map=labels_map)
        if scheme == "brainflow":
            from pipeline.runtime.sources.brainflow import BrainFlowSource

            return BrainFlowSource(rest, group=group)
        if scheme == "serial":
            from pipeline.runtime.sources.serial import SerialSource

            return SerialSource(rest, fs_hz=fs_hz, units=units, labels=labels, fmt=fmt, gain=gain, baud=baud)
    except ImportError as err:
        raise SourceError(
            f"{text}: needs a library that is not installed ({err}); pip install 'biosig-edge[{EXTRAS[scheme]}]'"
        ) from None
    raise SourceError(f"{text}: not a live source (lsl:NAME, brainflow:BOARD or serial:DEVICE)")


def declared_units(
    described: list | None, n_channels: int, option: str | None, gain: float | None, where: str
) -> tuple[tuple[str, ...], float]:
    """Units per channel from a stream's description, or from ``--units``/``--gain``.

    Returns (units tuple, divide_by): samples are divided by ``divide_by`` (the gain of a
    stream in converter counts, else 1.0). A stream that names its units is taken at its
    word; ``--units`` that contradicts it is refused rather than silently preferred.
    """
    from pipeline.read.units import UNCALIBRATED, canonical_unit

    named = [u for u in (described or []) if u]
    if described and len(named) == len(described):
        counts = {str(u).strip().lower() in UNCALIBRATED for u in described}
        if counts == {True}:
            if gain is None or option is None:
                raise SourceError(
                    f"{where}: the stream's units are converter counts ({described[0]!r}); "
                    f"give --gain (counts per unit) and --units"
                )
            return (option,) * len(described), float(gain)
        canon = [canonical_unit(u, f"{where} channel {i + 1}") for i, u in enumerate(described)]
        if option is not None and {canonical_unit(option, "--units")} != set(canon):
            raise SourceError(
                f"{where}: the stream says its units are {sorted(set(canon))}, "
                f"--units says {option}; drop --units or fix the stream"
            )
        return tuple(canon), 1.0
    if option is None:
        raise SourceError(f"{where}: the stream's description names no units; give --units (mV, uV, ...)")
    return (option,) * n_channels, float(gain) if gain is not None else 1.0
