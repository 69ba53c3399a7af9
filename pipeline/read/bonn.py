"""Bonn epilepsy EEG segments: one integer per line, 4097 lines, 173.61 Hz.

Set folders ``A_Z`` ... ``E_S``; the set is the label. Set ``C_N`` files end in ``.TXT``,
the others in ``.txt``, as the publisher distributes them: both are read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import RecordError
from pipeline.read.cards import load_card
from pipeline.read.checksums import verify_file
from pipeline.read.locate import dataset_dir
from pipeline.read.record import Record, checked


def read_bonn_segment(
    path: str | Path,
    fs_hz: float | None = None,
    n_samples: int | None = None,
    checksum_root: Path | None = None,
    checksum_list: Path | None = None,
    strict: bool = False,
) -> Record:
    """Read one Bonn segment file.

    Returns
    -------
    Record
        ``signal`` of shape (4097, 1), float32, in the publisher's (uncalibrated) units;
        ``label`` is the set folder name, ``record_id`` and ``subject_id`` the file stem.
    """
    card = load_card("bonn")
    fs_hz = fs_hz or card.fs_hz
    n_samples = n_samples or card.raw["samples_per_segment"]
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: missing")
    # A segment is ~25 KB of text (at most ~12 bytes per sample): refuse a huge file
    # before reading it rather than after.
    if path.stat().st_size > 16 * n_samples:
        raise RecordError(f"{path}: {path.stat().st_size} bytes, too large for a {n_samples}-sample segment")
    if checksum_list is not None:
        # The list names files SET/FILE under the dataset folder: without a root, that
        # folder is the segment's grandparent.
        root = checksum_root if checksum_root is not None else path.parent.parent
        verify_file(path, root, checksum_list)
    try:
        tokens = path.read_text(errors="replace").split()
    except PermissionError as err:
        raise RecordError(f"{path}: cannot be read: {err.strerror}") from None
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(i for i, t in enumerate(tokens) if not _is_number(t))
        raise RecordError(f"{path}: value {bad + 1} is '{tokens[bad][:20]}', not a number") from None
    if len(values) != n_samples:
        raise RecordError(f"{path}: {len(values)} samples, expected {n_samples}")
    record = Record(
        record_id=path.stem,
        subject_id=path.stem,
        signal=values.astype(np.float32)[:, None],
        fs_hz=fs_hz,
        channel_names=("EEG",),
        units=(card.raw["units"],),
        source=path,
        label=path.parent.name,
        full_scale=((-2048.0, 2047.0),),
    )  # the 12-bit converter
    return checked(record, strict=strict)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def bonn_segment_paths(data_dir: str | Path | None = None) -> dict[str, list[Path]]:
    """{set name: sorted segment paths} for the five sets, ``.txt`` and ``.TXT`` alike."""
    folder = dataset_dir("bonn", data_dir)
    card = load_card("bonn")
    out = {}
    for set_name in card.labels:
        sub = folder / set_name
        if not sub.is_dir():
            raise RecordError(f"{sub}: missing set folder")
        try:
            out[set_name] = sorted(p for p in sub.iterdir() if p.suffix.lower() == ".txt")
        except PermissionError as err:
            raise RecordError(f"{sub}: cannot be listed: {err.strerror}") from None
    return out


def read_bonn(
    set_name: str, segment: str, data_dir: str | Path | None = None, verify: bool = True, strict: bool = False
) -> Record:
    """Read segment ``segment`` (e.g. ``"Z001"``) of set ``set_name`` (e.g. ``"A_Z"``)."""
    card = load_card("bonn")
    folder = dataset_dir("bonn", data_dir)
    if set_name not in card.labels:
        raise RecordError(f"'{set_name}' is not a Bonn set (sets: {list(card.labels)})")
    candidates = [folder / set_name / f"{segment}{ext}" for ext in (".txt", ".TXT")]
    path = next((p for p in candidates if p.is_file()), candidates[0])
    return read_bonn_segment(
        path, checksum_root=folder, checksum_list=card.checksums_path if verify else None, strict=strict
    )
