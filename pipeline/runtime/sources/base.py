"""Sources of samples for a streaming session: a recording in memory, and stdin.

Device side: numpy only. A source never guesses what its numbers are: stdin needs its
rate and units declared (``--fs``, ``--units``; converter counts also ``--gain``), and its
column labels default to the model's channels in order only because the command line
says so in its help.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import numpy as np

from pipeline.errors import BiosigError
from pipeline.read.record import Record, SignalSpec

#: Binary frame formats on stdin: numpy dtype of one value.
FORMATS = {"f32le": "<f4", "i16le": "<i2"}


class SourceError(BiosigError):
    """A source that cannot deliver what it declared (a bad line, a frame cut short)."""


class Source:
    """Samples with a declared :class:`SignalSpec`; ``chunks(n)`` yields (n, channels)."""

    spec: SignalSpec
    name: str = "input"

    def chunks(self, n_samples: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RecordSource(Source):
    """A recording read whole (a file or a dataset record)."""

    def __init__(self, record: Record):
        self.record = record
        self.spec = record.spec
        self.name = str(record.source)

    def chunks(self, n_samples: int) -> Iterator[np.ndarray]:
        x = self.record.signal
        for i in range(0, len(x), max(1, n_samples)):
            yield x[i : i + n_samples]


_SPLIT = re.compile(r"[,;\t ]+")


class StdinSource(Source):
    """Raw samples on stdin.

    Parameters
    ----------
    spec : rate, column labels and units the user declared
    fmt : ``text`` (one sample per line, columns separated by blanks, commas, semicolons
        or tabs), ``f32le`` (little-endian float32 frames, channels interleaved) or
        ``i16le`` (little-endian int16 frames, divided by ``gain``)
    gain : converter counts per unit (``i16le``, or text in counts); None: values are
        already in the declared units
    on_bad_line : ``error`` (stop with a message naming the line, after everything before
        it was pushed) or ``gap`` (the line becomes a NaN sample: the session reports a
        gap and restarts)
    stream : a binary file object (default ``sys.stdin.buffer``)
    """

    name = "stdin"

    def __init__(
        self, spec: SignalSpec, fmt: str = "text", gain: float | None = None, on_bad_line: str = "error", stream=None
    ):
        if fmt not in ("text", *FORMATS):
            raise SourceError(f"--format must be text, {' or '.join(FORMATS)}; got '{fmt}'")
        if fmt == "i16le" and gain is None:
            raise SourceError("--format i16le carries converter counts: give --gain (counts per unit)")
        if gain is not None and (not np.isfinite(gain) or gain == 0):
            raise SourceError(f"--gain must be a finite, non-zero number of counts per unit, got {gain}")
        if on_bad_line not in ("error", "gap"):
            raise SourceError(f"on_bad_line must be 'error' or 'gap', got '{on_bad_line}'")
        self.spec, self.fmt, self.gain, self.on_bad_line = spec, fmt, gain, on_bad_line
        if stream is None and sys.stdin is None:
            raise SourceError("stdin is closed: give the samples on stdin ('< FILE' or a pipe), or a file as INPUT")
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.bad_lines = 0

    def chunks(self, n_samples: int) -> Iterator[np.ndarray]:
        n_samples = max(1, n_samples)
        gen = self._text(n_samples) if self.fmt == "text" else self._binary(n_samples)
        for rows in gen:
            yield rows if self.gain is None else rows / self.gain

    def _text(self, n_samples: int) -> Iterator[np.ndarray]:
        width = len(self.spec.channels)
        rows: list[list[float]] = []
        for number, raw in enumerate(self.stream, 1):
            line = raw.decode("utf-8-sig", errors="replace").strip()  # utf-8-sig: a leading byte-order mark
            if not line or line.startswith("#"):
                continue
            tokens = _SPLIT.split(line)
            try:
                values = [float(t) for t in tokens]
                if len(values) != width:
                    raise ValueError(
                        f"{len(values)} values, expected {width} (channels {', '.join(self.spec.channels)})"
                    )
            except ValueError as err:
                why = str(err) if "expected" in str(err) else f"not numbers: {line[:40]!r}"
                if self.on_bad_line == "error":
                    if rows:
                        yield np.asarray(rows, dtype=np.float64)
                    raise SourceError(f"stdin line {number}: {why}") from None
                self.bad_lines += 1
                print(f"biosig-edge: stdin line {number}: {why}; taken as a gap", file=sys.stderr)
                values = [float("nan")] * width
            rows.append(values)
            if len(rows) == n_samples:
                yield np.asarray(rows, dtype=np.float64)
                rows = []
        if rows:
            yield np.asarray(rows, dtype=np.float64)

    def _binary(self, n_samples: int) -> Iterator[np.ndarray]:
        dtype = np.dtype(FORMATS[self.fmt])
        width = len(self.spec.channels)
        frame = dtype.itemsize * width
        pending = b""
        while True:
            block = self.stream.read(frame * n_samples - len(pending))
            if not block:
                break
            pending += block
            n = len(pending) // frame
            if n == 0:
                continue
            yield np.frombuffer(pending[: n * frame], dtype=dtype).reshape(n, width).astype(np.float64)
            pending = pending[n * frame :]
        if pending:
            raise SourceError(
                f"stdin ended in the middle of a frame ({len(pending)} of {frame} bytes: "
                f"{width} channel(s) of {self.fmt})"
            )
