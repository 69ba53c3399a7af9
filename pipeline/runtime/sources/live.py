"""The live-source base types: samples that arrive while the program runs (LSL,
BrainFlow, serial). Each source module (``lsl``, ``brainflow``, ``serial``) builds on these;
the factory that picks one from an INPUT, :func:`pipeline.runtime.sources.open_live`, lives
in the package, so the import graph runs one way (package -> source module -> this module).

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
    #: The most samples one read hands over (each source sets its own; the runner sets its chunk).
    max_samples: int

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
