"""A serial port as a source: ``serial:DEVICE --fs HZ --units U --channels A,B [--format F]``.

For analog front ends on a microcontroller (ADS1292/ADS1299-class chips) that write their
samples to a UART or a USB CDC port. A serial line says nothing about itself: the rate,
units and channel labels are declared on the command line (as for stdin), and
``--gain`` turns converter counts into units. DEVICE is a port (``/dev/ttyACM0``,
``/dev/ttyUSB0``, ``COM3``) or any pyserial URL; ``--baud`` sets the line speed
(default 115200).

Formats (``--format``):

``text`` (default)
    One sample per line, the channels' values separated by blanks, commas, semicolons or
    tabs, as on stdin. A line that is not as many numbers as channels is a garbled sample:
    a ``garbled`` quality event and a NaN row in its place (the session reports a gap and
    restarts). Text has no sequence number, so a line lost whole cannot be detected.

``i16le`` or ``f32le``: binary frames, one per sample::

    offset  size  field
    0       1     sync byte 0xA5
    1       1     sequence number: uint8, +1 every frame, 255 wraps to 0
    2       P     the sample: one value per channel in --channels order, little-endian
                  int16 (i16le: converter counts, --gain counts per unit) or
                  float32 (f32le: in --units); P = 2 or 4 bytes x channels
    2+P     1     CRC-8 over bytes 1 .. 1+P (sequence and sample): polynomial 0x07,
                  initial value 0x00, no reflection, no final XOR (CRC-8/SMBUS;
                  the CRC of b"123456789" is 0xF4)

    A two-channel i16le frame is 7 bytes; at 500 Hz that is 3,500 bytes/s, within
    115200 baud (11,520 bytes/s). Firmware: ``frame = [0xA5, seq] + payload;
    frame.append(crc8(frame[1:])); seq = (seq + 1) & 0xFF``. :func:`encode_frame` is the
    reference.

The reader finds frames by their sync byte and checks each CRC. Bytes that are not a
frame (noise on the line, a frame with a bad CRC) are skipped; after skipped bytes a
frame is accepted only when the next frame confirms it (its sync byte, CRC and the next
sequence number), so that a stray 0xA5 with a lucky CRC is not taken for a sample. The
sequence number tells how many frames were lost (up to 255 in a row; longer silences
are the stall timeout's). Each disturbance is one ``signal_quality`` event, ``garbled``
(``skipped_bytes``, ``lost_frames``) or ``dropped_frames`` (``lost_frames``), placed
where it happened, and every lost frame becomes a NaN row, so that sample indices stay
true and the session restarts across the hole. A bad CRC is never an exception.

A line that never yields a valid frame (another ``--format``, another number of
``--channels`` than the device sends, which changes the frame size, or another baud rate)
gives a ``garbled`` event with ``skipped_bytes`` and a ``hint`` naming those options once
``NO_FRAME_HINT_BYTES`` have arrived without one, and again each time four times as many
have (text: a line longer than ``MAX_LINE_BYTES``, as at a wrong baud rate, is dropped the
same way).

Bytes that arrived before the port was opened are stale: pyserial empties the input queue
on opening, and sample 0 is the first frame read after it. Timestamps are arrival times
on this machine's Unix clock: the last sample of a read gets
the time of the read and earlier ones are dated back by 1/fs each (LSL's convention for a
chunk). A port that fails while open (unplugged) is lost; ``--reconnect`` reopens it.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import numpy as np

from pipeline.read.record import SignalSpec
from pipeline.runtime.sources.base import FORMATS, SourceError
from pipeline.runtime.sources.live import Chunk, LiveSource, SourceLost

if TYPE_CHECKING:
    import serial

SYNC = 0xA5
#: Bytes without a single valid frame after which the user is told what to check.
NO_FRAME_HINT_BYTES = 1024
#: The longest text line taken; longer, it is garbage (a wrong baud rate) and is dropped.
MAX_LINE_BYTES = 4096


def _no_frame_event(skipped: int, what: str) -> dict:
    return {
        "type": "signal_quality",
        "kind": "garbled",
        "lost_frames": 0,
        "skipped_bytes": skipped,
        "action": "no sample yet: waiting for a valid frame",
        "hint": f"{skipped} bytes arrived without {what}: check --format, --channels (their number "
        f"sets the frame size) and --baud against what the device sends",
    }


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC8 = _crc8_table()


def crc8(data: bytes | bytearray) -> int:
    """CRC-8/SMBUS (polynomial 0x07, init 0, no reflection, no final XOR) of ``data``."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def encode_frame(seq: int, values, fmt: str = "i16le") -> bytes:
    """One binary frame (the format above) carrying one sample.

    Parameters
    ----------
    seq : sequence number (taken modulo 256)
    values : array-like of shape (n_channels,): converter counts (i16le) or units (f32le)
    fmt : ``i16le`` or ``f32le``
    """
    body = bytes([seq & 0xFF]) + np.asarray(values, dtype=FORMATS[fmt]).tobytes()
    return bytes([SYNC]) + body + bytes([crc8(body)])


class FrameDecoder:
    """Binary frames -> samples, NaN rows for lost frames, and quality events.

    ``feed(data)`` takes bytes as they arrive (any split) and returns ``(rows, events)``:
    ``rows`` of shape (n, n_channels) float64 (values as sent, NaN where frames were lost)
    and ``events`` as (row index, event dict) pairs.
    """

    def __init__(self, n_channels: int, fmt: str = "i16le"):
        if fmt not in FORMATS:
            raise SourceError(f"serial frames are {' or '.join(FORMATS)}, not '{fmt}'")
        self.dtype = np.dtype(FORMATS[fmt])
        self.fmt = fmt
        self.n_channels = n_channels
        self.payload_len = self.dtype.itemsize * n_channels
        self.frame_len = 3 + self.payload_len
        self.buffer = bytearray()
        self.expected_seq: int | None = None  # the next frame's sequence number
        self.skipped = 0  # bytes skipped since the last accepted frame
        self.frames = self.lost = self.skipped_total = 0
        self.hint_at = NO_FRAME_HINT_BYTES  # skipped bytes (before any frame) that give the next hint

    def _valid(self, at: int) -> bool:
        frame = self.buffer[at : at + self.frame_len]
        return frame[0] == SYNC and crc8(frame[1:-1]) == frame[-1]

    def feed(self, data: bytes) -> tuple[np.ndarray, list[tuple[int, dict]]]:
        self.buffer += data
        buf, n = self.buffer, self.frame_len
        rows: list[np.ndarray] = []
        events: list[tuple[int, dict]] = []
        i = 0
        while True:
            j = buf.find(SYNC, i)
            if j < 0:
                self.skipped += len(buf) - i
                i = len(buf)
                break
            self.skipped += j - i
            i = j
            if len(buf) - i < n:
                break  # wait for the rest of the frame
            if not self._valid(i):
                self.skipped += 1
                i += 1
                continue
            seq = buf[i + 1]
            if self.skipped or self.expected_seq is None:
                # After noise (or at the start): the next frame must confirm this one.
                if len(buf) - i < 2 * n:
                    break
                if not (self._valid(i + n) and buf[i + n + 1] == (seq + 1) & 0xFF):
                    self.skipped += 1
                    i += 1
                    continue
            lost = 0 if self.expected_seq is None else (seq - self.expected_seq) & 0xFF
            if (self.skipped and self.expected_seq is not None) or lost:
                kind = "garbled" if self.skipped else "dropped_frames"
                event = {"type": "signal_quality", "kind": kind, "lost_frames": lost}
                if self.skipped:
                    event["skipped_bytes"] = self.skipped
                event["action"] = "lost samples as a gap (state reset)" if lost else "skipped (no sample lost)"
                events.append((len(rows), event))
                rows += [np.full(self.n_channels, np.nan)] * lost
            self.skipped_total += self.skipped
            self.skipped = 0
            self.lost += lost
            self.frames += 1
            rows.append(
                np.frombuffer(bytes(buf[i + 2 : i + 2 + self.payload_len]), dtype=self.dtype).astype(np.float64)
            )
            self.expected_seq = (seq + 1) & 0xFF
            i += n
        del buf[:i]
        if self.expected_seq is None and self.skipped >= self.hint_at:
            # Not one valid frame yet: the stream would only say "waiting" for ever.
            what = f"a valid {self.fmt} frame of {self.n_channels} channel(s) ({self.frame_len} bytes)"
            events.append((len(rows), _no_frame_event(self.skipped, what)))
            while self.hint_at <= self.skipped:
                self.hint_at *= 4
        x = np.array(rows, dtype=np.float64).reshape(len(rows), self.n_channels)
        return x, events


_SPLIT = re.compile(r"[,;\t ]+")


class LineDecoder:
    """Text lines -> samples; a line that is not ``n_channels`` numbers is a NaN row and a
    ``garbled`` event. The first line after opening may be cut: it is dropped quietly."""

    def __init__(self, n_channels: int):
        self.n_channels = n_channels
        self.pending = b""
        self.first = True
        self.garbled = 0
        self.samples = 0  # rows given so far

    def feed(self, data: bytes) -> tuple[np.ndarray, list[tuple[int, dict]]]:
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        rows: list = []
        events: list[tuple[int, dict]] = []
        for raw in lines:
            first, self.first = self.first, False
            line = raw.decode("utf-8", errors="replace").strip()
            if not line or line.startswith("#"):
                continue
            try:
                values = [float(t) for t in _SPLIT.split(line)]
                if len(values) != self.n_channels:
                    raise ValueError
            except ValueError:
                if first:
                    continue
                self.garbled += 1
                events.append(
                    (
                        len(rows),
                        {
                            "type": "signal_quality",
                            "kind": "garbled",
                            "line": line[:40],
                            "lost_frames": 1,
                            "action": "lost sample as a gap (state reset)",
                        },
                    )
                )
                values = [np.nan] * self.n_channels
            rows.append(values)
        self.samples += len(rows)
        if len(self.pending) > MAX_LINE_BYTES:
            # No end of line in sight: garbage, not a sample (a wrong baud rate); dropped.
            # Within a stream it took the place of samples: one NaN row, so that the session
            # restarts instead of gluing the signal across it.
            self.garbled += 1
            what = f"an end of line (text lines of {self.n_channels} number(s))"
            event = _no_frame_event(len(self.pending), what)
            if self.samples:
                event.update(lost_frames=1, action="lost samples as a gap (state reset)")
                events.append((len(rows), event))
                rows.append([np.nan] * self.n_channels)
                self.samples += 1
            else:
                events.append((len(rows), event))
            self.pending, self.first = b"", False
        return np.array(rows, dtype=np.float64).reshape(len(rows), self.n_channels), events


class SerialSource(LiveSource):
    """Samples from a serial port (see the module docstring for the formats).

    Parameters
    ----------
    device : port name or pyserial URL
    fs_hz, units, labels : what the samples are (required: a serial line does not say)
    fmt : ``text``, ``i16le`` or ``f32le`` (binary frames)
    gain : converter counts per unit (required for i16le)
    baud : line speed
    """

    clock = "unix"

    def __init__(
        self,
        device: str,
        fs_hz: float | None,
        units: str | None,
        labels: list[str] | None,
        fmt: str = "text",
        gain: float | None = None,
        baud: int = 115200,
    ):
        import serial  # noqa: F401  (pyserial: fails here, with the extra to install, if missing)

        self.device = device
        self.name = f"serial:{device}"
        if fs_hz is None:
            raise SourceError(f"{self.name}: a serial line does not say its sampling rate: give --fs HZ")
        if units is None:
            raise SourceError(
                f"{self.name}: a serial line does not say its units: give --units (mV, uV; "
                f"with --gain for converter counts)"
            )
        if not labels:
            raise SourceError(f"{self.name}: a serial line does not name its channels: give --channels A,B,...")
        if fmt not in ("text", *FORMATS):
            raise SourceError(f"{self.name}: --format must be text, {' or '.join(FORMATS)}")
        if fmt == "i16le" and gain is None:
            raise SourceError(f"{self.name}: i16le frames carry converter counts: give --gain (counts per unit)")
        if gain is not None and (not np.isfinite(gain) or gain == 0):
            raise SourceError(f"{self.name}: --gain must be a finite, non-zero number of counts per unit")
        try:
            self.spec = SignalSpec(float(fs_hz), tuple(labels), (units,) * len(labels))
        except ValueError as err:
            raise SourceError(f"{self.name}: {err}") from None
        self.fmt, self.gain, self.baud = fmt, gain, int(baud)
        self.description = f"{self.name} ({fmt}{' frames' if fmt != 'text' else ' lines'}, {self.baud} baud)"
        self.port: serial.Serial | None = None  # None once closed
        self._open()

    def _open(self) -> None:
        import serial

        try:
            self.port = serial.serial_for_url(self.device, baudrate=self.baud, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as err:
            raise SourceLost(f"{self.name}: cannot open the port: {err}") from None
        n = len(self.spec.channels)
        self.decoder = LineDecoder(n) if self.fmt == "text" else FrameDecoder(n, self.fmt)

    def read(self, timeout_s: float) -> Chunk | None:
        import serial

        port = self.port
        if port is None:  # closed, or a reopen whose open failed
            raise SourceLost(f"{self.name}: the port is closed")
        try:
            port.timeout = max(0.0, timeout_s)
            data = port.read(max(1, port.in_waiting))
            if data:
                data += port.read(port.in_waiting)
        except (serial.SerialException, OSError) as err:
            raise SourceLost(f"{self.name}: the port failed: {err}") from None
        arrived = time.time()
        if not data:
            return None
        x, events = self.decoder.feed(data)
        if not len(x) and not events:
            return None
        if self.gain is not None:
            x = x / self.gain
        stamps = arrived - np.arange(len(x))[::-1] / self.spec.fs_hz
        return Chunk(x, stamps, events)

    def reopen(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            except Exception:  # an unplugged port may fail to close; it is gone either way
                pass
            self.port = None
