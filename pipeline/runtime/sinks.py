"""Where a stream's events go: JSON lines (stdout or a rotating file) and an LSL outlet.

Every sink takes the same event dicts (decisions and ``signal_quality`` events, with their
timestamps: see :mod:`pipeline.runtime.live`), in order:

``JsonLinesSink``
    one JSON object per line on a text stream (stdout by default).
``RotatingJsonlSink``
    ``--jsonl FILE``: lines appended to FILE, each flushed as it is written, so that an
    unattended run that loses power loses at most the line being written. When FILE would
    pass ``max_bytes`` it becomes FILE.1 (FILE.1 becomes FILE.2 ..., the oldest beyond
    ``keep`` is deleted) and a new FILE begins.
``LSLOutletSink``
    ``--lsl-outlet NAME``: an LSL marker stream (one string channel, irregular rate) whose
    samples are the events as JSON (a decision's ``class``, ``probs``, ``quality``,
    ``quality_flags``, ``sample``...), each timestamped with the LSL clock time of the
    decision's last input sample: a recorder (LabRecorder, an experiment script) lines the
    decisions up with the signal they came from. For a source on the Unix clock, that time
    is moved onto the LSL clock by the offset between the two clocks read at start.

A sink that cannot write (a full disk, an I/O error) raises :class:`SinkError` naming it,
once: the stream stops there with one line and exit code 2, and the sink writes nothing
more (what it still buffers is dropped, so that closing it, or Python's own flush of
stdout at exit, does not fail a second time). A reader that went away (``| head``) is a
``BrokenPipeError``, which the command line ends quietly.

Device side: standard library (and pylsl for the outlet, imported only there).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Protocol

from pipeline.errors import BiosigError


class SinkError(BiosigError):
    """A sink that cannot be opened (a file that cannot be written, no liblsl)."""


class Sink(Protocol):
    """What every sink offers the stream: events in order, then a flush, then close."""

    def write(self, event: dict) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _failed(where: str, err: OSError) -> SinkError:
    return SinkError(f"{where}: cannot write events: {err.strerror or err}")


class JsonLinesSink:
    """Events as JSON lines on a text stream (default stdout)."""

    def __init__(self, stream=None):
        if stream is None and sys.stdout is None:
            raise SinkError("stdout is closed: the events have nowhere to go (give --jsonl FILE with --to none)")
        self.stream = stream if stream is not None else sys.stdout
        self.where = "stdout" if self.stream is sys.stdout else str(getattr(self.stream, "name", "the events stream"))
        self.failed = False

    def _do(self, op) -> None:
        if self.failed:
            return
        try:
            op()
        except BrokenPipeError:
            raise
        except OSError as err:
            self.failed = True
            if self.stream is sys.stdout:
                # Drop what stdout still buffers: its flush at exit would fail again.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise _failed(self.where, err) from None

    def write(self, event: dict) -> None:
        line = json.dumps(event) + "\n"
        self._do(lambda: self.stream.write(line))

    def flush(self) -> None:
        self._do(self.stream.flush)

    def close(self) -> None:
        self.flush()


class RotatingJsonlSink:
    """Events appended to ``path`` as JSON lines, rotated by size.

    Parameters
    ----------
    path : the file (its folder must exist)
    max_bytes : size at which the file is rotated (a single longer line still goes whole)
    keep : rotated files kept (FILE.1 newest ... FILE.keep oldest)
    """

    def __init__(self, path: str | Path, max_bytes: int = 50_000_000, keep: int = 5):
        self.path = Path(path)
        self.max_bytes, self.keep = int(max_bytes), max(1, int(keep))
        if self.max_bytes <= 0:
            raise SinkError(f"--jsonl-max-mb must be positive, got {max_bytes / 1e6:g}")
        self.failed = False
        self.file = self._open()

    def _open(self):
        try:
            f = open(self.path, "a", encoding="utf-8")
        except OSError as err:
            raise SinkError(f"{self.path}: cannot write events there: {err.strerror or err}") from None
        self.size = f.tell()
        return f

    def _rotate(self) -> None:
        self.file.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
        for k in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{k}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{k + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        self.file = self._open()

    def _do(self, op) -> None:
        if self.failed:
            return
        try:
            op()
        except OSError as err:
            self.failed = True
            try:
                self.file.close()
            except OSError:
                pass  # its buffer cannot be written either: dropped
            raise _failed(str(self.path), err) from None

    def write(self, event: dict) -> None:
        line = json.dumps(event) + "\n"
        size = len(line.encode("utf-8"))

        def write() -> None:
            if self.size and self.size + size > self.max_bytes:
                self._rotate()
            self.file.write(line)
            self.file.flush()

        self._do(write)
        self.size += size

    def flush(self) -> None:
        self._do(self.file.flush)

    def close(self) -> None:
        def close() -> None:
            self.file.flush()
            try:
                os.fsync(self.file.fileno())
            except OSError as err:
                if err.errno != errno.EINVAL:  # a device or pipe that cannot be synced: nothing to sync
                    raise
            self.file.close()

        self._do(close)


class LSLOutletSink:
    """Events as an LSL marker stream (see the module docstring).

    Parameters
    ----------
    name : the outlet's stream name
    clock : the source's clock (``lsl`` or ``unix``): how ``source_ts`` is moved to LSL time
    about : a few facts for the stream's description (model, artifact, classes)
    linger_s : on close, how long to keep the outlet while inlets are connected, so that
        they receive the last events before it goes (liblsl drops what an inlet has not
        pulled when its outlet disappears)
    """

    def __init__(self, name: str, clock: str = "lsl", about: dict | None = None, linger_s: float = 0.5):
        try:
            import pylsl
        except ImportError as err:
            raise SinkError(f"--lsl-outlet needs pylsl ({err}); pip install 'biosig-edge[device-lsl]'") from None
        info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, f"biosig-edge:{name}")
        desc = info.desc()
        desc.append_child_value("producer", "biosig-edge")
        desc.append_child_value("content", "decisions and signal_quality events as JSON")
        for key, value in (about or {}).items():
            if isinstance(value, (list, tuple)):
                node = desc.append_child(key)
                for item in value:
                    node.append_child_value("item", str(item))
            else:
                desc.append_child_value(key, str(value))
        self.outlet = pylsl.StreamOutlet(info)
        self.offset_s = pylsl.local_clock() - time.time() if clock == "unix" else 0.0
        self.linger_s = linger_s

    def write(self, event: dict) -> None:
        ts = event.get("source_ts")
        self.outlet.push_sample([json.dumps(event)], 0.0 if ts is None else ts + self.offset_s)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.outlet is not None:
            if self.linger_s and self.outlet.have_consumers():
                time.sleep(self.linger_s)
            self.outlet = None
