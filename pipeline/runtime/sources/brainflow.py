"""A BrainFlow board as a source: ``brainflow:BOARD[,key=value...]``.

``BOARD`` is a BrainFlow board name (``SYNTHETIC_BOARD``, ``synthetic``, ``CYTON_BOARD``,
``cyton_daisy`` ...: case and the ``_BOARD`` suffix do not matter) or its numeric id
(``-1`` is the synthetic board). The options are BrainFlow's ``BrainFlowInputParams``
(``serial_port=/dev/ttyUSB0``, ``ip_address=...``, ``mac_address=...``, ``timeout=...``,
``other_info=...``, ``file=...``) and one of ours, ``channels=eeg|ecg|emg|eog|exg``: which
channel group of the board to read (default: ``eeg`` for an EEG model, ``ecg`` for an
ECG model).

What the board is comes from BrainFlow's board descriptor: the sampling rate, the rows of
the chosen channel group, their names (``eeg_names`` where the board has them, else
``ECG1``, ``ECG2`` ... after the group) and the timestamp row. BrainFlow gives EXG
channels in microvolts. Timestamps are the board's (BrainFlow's) Unix time of each
sample, seconds: the ``unix`` clock. A board id that BrainFlow does not know is refused in
one line; so is a board that cannot be opened (no port, no device).

The synthetic board (no hardware) streams 16 EEG rows at 250 Hz named
``Fz,C3,Cz,C4,Pz,PO7,Oz,PO8,F5,F7,F3,F1,F2,F4,F6,F8``: sine waves of rising amplitude
with noise, in uV. A one-channel EEG model reads one of them by ``--channels EEG=Fz``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pipeline.read.record import SignalSpec
from pipeline.runtime.sources.base import SourceError
from pipeline.runtime.sources.live import Chunk, LiveSource, SourceLost

#: Channel groups of a BrainFlow descriptor this source reads (all in uV).
GROUPS = ("eeg", "ecg", "emg", "eog", "exg")


def board_id(text: str) -> int:
    """BrainFlow board id from a name (``synthetic``, ``CYTON_BOARD``) or a number."""
    from brainflow.board_shim import BoardIds

    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    names = {b.name: b.value for b in BoardIds}
    key = t.upper().replace("-", "_").replace(" ", "_")
    for candidate in (key, f"{key}_BOARD"):
        if candidate in names:
            return names[candidate]
    close = [n for n in names if key.split("_")[0] in n][:5]
    raise SourceError(
        f"brainflow:{text}: no such BrainFlow board (a name such as SYNTHETIC_BOARD or "
        f"CYTON_BOARD, or a numeric id{'; did you mean ' + ', '.join(close) + '?' if close else ''})"
    )


def parse_board(text: str) -> tuple[int, str, dict[str, str]]:
    """``'synthetic,channels=eeg'`` -> (board id, board text, {option: value})."""
    board, *parts = [p.strip() for p in text.split(",")]
    options = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise SourceError(f"brainflow:{text}: option '{part}' is not key=value (e.g. serial_port=/dev/ttyUSB0)")
        options[key.strip()] = value.strip()
    return board_id(board), board, options


class BrainFlowSource(LiveSource):
    """One channel group of a BrainFlow board, streaming.

    Parameters
    ----------
    text : ``BOARD[,key=value...]`` (see the module docstring)
    group : channel group if the options do not say (``eeg``, ``ecg`` ...)
    """

    clock = "unix"

    def __init__(self, text: str, group: str | None = None):
        from brainflow.board_shim import BoardShim, BrainFlowError, BrainFlowInputParams

        BoardShim.disable_board_logger()
        self.name = f"brainflow:{text}"
        self.board_id, board_text, options = parse_board(text)
        try:
            descr = BoardShim.get_board_descr(self.board_id)
        except BrainFlowError:
            raise SourceError(
                f"brainflow:{board_text}: BrainFlow {BoardShim.get_version()} has no board with id {self.board_id}"
            ) from None
        self.group = (options.pop("channels", None) or group or "eeg").lower()
        if self.group not in GROUPS:
            raise SourceError(f"{self.name}: channels={self.group}: choose one of {', '.join(GROUPS)}")
        self.params = BrainFlowInputParams()
        known = vars(self.params)
        for key, value in options.items():
            if key not in known:
                raise SourceError(
                    f"{self.name}: unknown option '{key}' (BrainFlow input parameters: "
                    f"{', '.join(known)}; ours: channels)"
                )
            try:
                setattr(self.params, key, type(known[key])(value))
            except ValueError:
                raise SourceError(
                    f"{self.name}: option {key}={value!r} must be a {type(known[key]).__name__}"
                ) from None
        rows = descr.get(f"{self.group}_channels")
        if not rows:
            have = [g for g in GROUPS if descr.get(f"{g}_channels")]
            raise SourceError(
                f"{self.name}: board '{descr.get('name')}' has no {self.group} channels "
                f"(it has: {', '.join(have) or 'none'}); choose with channels=GROUP"
            )
        names = str(descr.get(f"{self.group}_names") or "").split(",")
        if len(names) != len(rows) or not all(n.strip() for n in names):
            names = [f"{self.group.upper()}{k + 1}" for k in range(len(rows))]
        self.rows = list(rows)
        self.timestamp_row = int(descr["timestamp_channel"])
        self.spec = SignalSpec(float(descr["sampling_rate"]), tuple(n.strip() for n in names), ("uV",) * len(rows))
        self.description = (
            f"{self.name} (BrainFlow board '{descr.get('name')}', id {self.board_id}, {self.group} rows {self.rows})"
        )
        self.max_samples = 4096
        self.board: Any = None  # a BrainFlow BoardShim once open (the library is imported lazily)
        self._open()

    def _open(self) -> None:
        from brainflow.board_shim import BoardShim, BrainFlowError

        board = BoardShim(self.board_id, self.params)
        try:
            board.prepare_session()
            board.start_stream(45000)
        except BrainFlowError as err:
            try:
                board.release_session()
            except BrainFlowError:
                pass
            raise SourceLost(f"{self.name}: cannot open the board: {err}") from None
        self.board = board

    def read(self, timeout_s: float) -> Chunk | None:
        from brainflow.board_shim import BrainFlowError

        deadline = time.monotonic() + timeout_s
        try:
            while True:
                n = self.board.get_board_data_count()
                if n:
                    data = self.board.get_board_data(min(n, self.max_samples))
                    break
                if time.monotonic() >= deadline:
                    return None
                time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
        except BrainFlowError as err:
            raise SourceLost(f"{self.name}: the board stopped: {err}") from None
        return Chunk(
            np.ascontiguousarray(data[self.rows].T, dtype=np.float64),
            np.asarray(data[self.timestamp_row], dtype=np.float64),
        )

    def reopen(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        from brainflow.board_shim import BrainFlowError

        if self.board is not None:
            for step in (self.board.stop_stream, self.board.release_session):
                try:
                    step()
                except BrainFlowError:
                    pass
            self.board = None
