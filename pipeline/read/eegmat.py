"""EEG During Mental Arithmetic Tasks (PhysioNet ``eegmat``), read with pyedflib.

Why pyedflib: it is maintained, reads EDF/BDF in C with numpy as its only dependency
(a Raspberry Pi or CI installs it in seconds, unlike MNE), and reads channel by channel,
so a model that uses 4 of 21 channels never loads the other 17.

``SubjectNN_1.edf`` is rest (~180 s), ``SubjectNN_2.edf`` the serial-subtraction task
(60 s). Every file ends with about 2 s of padding (the last value held for ~1 s, then
near-zero), which the flat-line check reports so that windows touching it are dropped.
Channel names are given without the EDF's ``EEG ``/``ECG `` prefixes (``Fp1``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline.errors import ChannelError, RecordError, SamplingRateError
from pipeline.read.cards import load_card
from pipeline.read.checksums import verify_file
from pipeline.read.locate import dataset_dir
from pipeline.read.record import Record, checked

_FILE_RE = re.compile(r"^(Subject\d+)_([12])$")


def _short_name(label: str) -> str:
    """``'EEG Fp1'`` -> ``'Fp1'``; ``'ECG ECG'`` -> ``'ECG'``."""
    kind, _, rest = label.strip().partition(" ")
    return rest if kind in ("EEG", "ECG") and rest else label.strip()


def read_edf(
    path: str | Path,
    channels: list[str] | None = None,
    strict: bool = False,
    label: str | None = None,
    subject_id: str | None = None,
    full_labels: bool = False,
) -> Record:
    """Read channels of an EDF/BDF file by name.

    ``full_labels``: name channels as the file labels them (``'EEG Fp1'``); by default
    without the EDF's ``EEG ``/``ECG `` prefix (``'Fp1'``), as the EEGMAT card names them.

    Returns
    -------
    Record
        ``signal`` of shape (n_samples, n_channels), float32, in each channel's physical
        units (the header's); ``full_scale`` from the header's physical minimum/maximum.
    """
    import pyedflib

    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: missing")
    try:
        reader = pyedflib.EdfReader(str(path))
    except PermissionError as err:
        raise RecordError(f"{path}: cannot be read: {err.strerror}") from None
    except OSError as err:
        raise RecordError(f"{path}: not a readable EDF file: {err}") from None
    try:
        names = [lbl.strip() if full_labels else _short_name(lbl) for lbl in reader.getSignalLabels()]
        wanted = channels if channels is not None else names
        idx = []
        for ch in wanted:
            if ch not in names:
                raise ChannelError(f"{path}: no channel '{ch}' (channels: {names})")
            idx.append(names.index(ch))
        rates = {float(reader.getSampleFrequency(i)) for i in idx}
        if len(rates) != 1:
            raise SamplingRateError(f"{path}: channels {wanted} have different rates {sorted(rates)}")
        n = {int(reader.getNSamples()[i]) for i in idx}
        if len(n) != 1:
            raise RecordError(f"{path}: channels {wanted} have different lengths {sorted(n)}")
        signal = np.stack([reader.readSignal(i) for i in idx], axis=1).astype(np.float32)
        units = tuple(reader.getPhysicalDimension(i).strip() for i in idx)
        full_scale = tuple((float(reader.getPhysicalMinimum(i)), float(reader.getPhysicalMaximum(i))) for i in idx)
    finally:
        reader.close()
    record = Record(
        record_id=path.stem,
        subject_id=subject_id or path.stem,
        signal=signal,
        fs_hz=rates.pop(),
        channel_names=tuple(wanted),
        units=units,
        source=path,
        label=label,
        full_scale=full_scale,
    )
    return checked(record, strict=strict)


def eegmat_label(stem: str) -> tuple[str, str]:
    """``'Subject07_2'`` -> (``'Subject07'``, ``'task'``)."""
    match = _FILE_RE.match(stem)
    if not match:
        raise RecordError(f"'{stem}' is not an EEGMAT file name (SubjectNN_1 or SubjectNN_2)")
    suffix = "_" + match.group(2)
    labels = {v: k for k, v in load_card("eegmat").labels.items()}
    return match.group(1), labels[suffix]


def read_eegmat(
    subject: str,
    label: str,
    data_dir: str | Path | None = None,
    channels: list[str] | None = None,
    verify: bool = True,
    strict: bool = False,
) -> Record:
    """Read ``subject`` (``"Subject00"``) at ``label`` (``"rest"`` or ``"task"``)."""
    card = load_card("eegmat")
    if label not in card.labels:
        raise RecordError(f"EEGMAT label must be one of {list(card.labels)}, not '{label}'")
    folder = dataset_dir("eegmat", data_dir)
    path = folder / f"{subject}{card.labels[label]}.edf"
    if verify:
        verify_file(path, folder, card.checksums_path)
    return read_edf(path, channels=channels, strict=strict, label=label, subject_id=subject)


def eegmat_subjects(data_dir: str | Path | None = None) -> list[str]:
    """Subjects with both files present, sorted."""
    folder = dataset_dir("eegmat", data_dir)
    stems = {p.stem for p in folder.glob("Subject*_*.edf")}
    return sorted(
        {s.split("_")[0] for s in stems if f"{s.split('_')[0]}_1" in stems and f"{s.split('_')[0]}_2" in stems}
    )
