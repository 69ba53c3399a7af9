"""Where samples come from: every source states what it delivers (a
:class:`~pipeline.read.record.SignalSpec`: rate, channel labels, units) and yields chunks
of shape (n, n_channels) in those units; a session converts them or refuses.

``base``       a recording already in memory (files and dataset records), stdin (text or
               binary frames, with their declared rate, units and channels).
``live``       the base types of a live source (``LiveSource``, ``Chunk``, ``SourceLost``,
               ``declared_units``).
``lsl``, ``brainflow``, ``serial``
               the live sources; each imports its own optional library inside its
               functions, and :func:`open_live` imports each module only when asked for it.

The graph is a tree: this package imports ``base`` and ``live``; the source modules import
``base`` and ``live``; nothing below imports this package back.
"""

from __future__ import annotations

from pipeline.runtime.sources.base import RecordSource, Source, SourceError, StdinSource
from pipeline.runtime.sources.live import Chunk, LiveSource, SourceLost

__all__ = [
    "Chunk",
    "EXTRAS",
    "LiveSource",
    "RecordSource",
    "SCHEMES",
    "Source",
    "SourceError",
    "SourceLost",
    "StdinSource",
    "is_live",
    "open_live",
]

#: INPUT prefixes that name a live source (``lsl:NAME``, ``brainflow:BOARD``, ``serial:DEVICE``).
SCHEMES = ("lsl", "brainflow", "serial")

#: Which extra brings each source's library (``pip install 'biosig-edge[device-lsl]'``).
EXTRAS = {"lsl": "device-lsl", "brainflow": "device-brainflow", "serial": "device-serial"}


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
