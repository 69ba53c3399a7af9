"""MIT-BIH Arrhythmia Database (and any WFDB record) through ``wfdb``.

Signals come back in physical units (mV) as float32; beat annotations are mapped to the
AAMI EC57 classes of the dataset card, non-beat marks are dropped and unknown symbols are
reported rather than silently lost.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.errors import RecordError
from pipeline.read.cards import load_card
from pipeline.read.checksums import verify_file
from pipeline.read.locate import dataset_dir
from pipeline.read.record import BeatAnnotations, Record, checked

#: Annotation symbols that mark something other than a beat (rhythm changes, noise,
#: flutter waves, non-conducted P waves, ...): dropped without a word.
NON_BEAT_SYMBOLS = frozenset("[ ! ] x ( ) p t u ` ' ^ | ~ + s T * D = \" @".split())

#: Bytes per sample of the WFDB storage formats, to tell a truncated .dat before wfdb does.
_BYTES_PER_SAMPLE = {
    "8": 1,
    "16": 2,
    "24": 3,
    "32": 4,
    "61": 2,
    "80": 1,
    "160": 2,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}


def aami_map(card_name: str = "mitdb") -> dict[str, str]:
    """{annotation symbol: AAMI class} from the dataset card."""
    labels = load_card(card_name).labels
    return {symbol: cls for cls, symbols in labels.items() for symbol in symbols}


def map_beats(sample: np.ndarray, symbol: list[str], mapping: dict[str, str]) -> BeatAnnotations:
    """Keep the beats of an annotation list and give each its class."""
    kept: list[int] = []
    unknown: Counter = Counter()
    for i, s in enumerate(symbol):
        if s in mapping:
            kept.append(i)
        elif s not in NON_BEAT_SYMBOLS:
            unknown[s] += 1
    keep = np.asarray(kept, dtype=np.int64)
    symbols = np.asarray(symbol, dtype=object)[keep].astype(str) if len(keep) else np.array([], str)
    return BeatAnnotations(
        sample=np.asarray(sample, dtype=np.int64)[keep],
        symbol=symbols,
        aami=np.array([mapping[s] for s in symbols], dtype="<U1"),
        unknown_symbols=dict(unknown),
    )


def _check_dat_size(header, record_path: Path) -> None:
    """Compare each .dat file's size with what the header promises."""
    per_file: dict[str, list[str]] = {}
    for fname, fmt in zip(header.file_name, header.fmt):
        per_file.setdefault(fname, []).append(fmt)
    for fname, fmts in per_file.items():
        dat = record_path.parent / fname
        if not dat.is_file():
            raise RecordError(f"{dat}: missing (named in {record_path}.hea)")
        if any(f not in _BYTES_PER_SAMPLE for f in fmts):
            continue
        expected = math.ceil(header.sig_len * sum(_BYTES_PER_SAMPLE[f] for f in fmts))
        actual = dat.stat().st_size
        if actual < expected:
            raise RecordError(
                f"{dat}: truncated: {actual} bytes, but {record_path}.hea promises "
                f"{header.sig_len} samples x {len(fmts)} signals = {expected} bytes"
            )
        if actual > expected + 4:  # format 212/310 may pad the last frame
            raise RecordError(
                f"{dat}: header/data mismatch: {actual} bytes, but {record_path}.hea "
                f"describes {expected} bytes ({header.sig_len} samples x {len(fmts)} signals)"
            )


def read_wfdb(
    record_path: str | Path,
    channels: list[str] | None = None,
    annotator: str | None = "atr",
    checksum_list: Path | None = None,
    strict: bool = False,
) -> Record:
    """Read a WFDB record (``.hea`` + ``.dat`` [+ annotations]).

    Parameters
    ----------
    record_path : path without extension, e.g. ``.../mitdb/100``
    channels : list of str, optional
        Channel names to keep, in this order; ``"V1|V5"`` picks the first present.
        All channels when None.
    annotator : str or None
        Annotation file extension (``atr``); None reads no annotations.
    checksum_list : Path, optional
        If given, every file read is verified against it first.
    strict : bool
        Raise on NaN/inf or flat lines instead of warning.

    Returns
    -------
    Record
        ``signal`` of shape (n_samples, n_channels), float32, in the header's units.
    """
    import wfdb

    record_path = Path(record_path)
    hea = record_path.with_suffix(".hea")
    if not hea.is_file():
        raise RecordError(f"{hea}: missing")
    try:
        header = wfdb.rdheader(str(record_path))
    except Exception as err:
        raise RecordError(f"{hea}: not a readable WFDB header: {err}") from None
    _check_dat_size(header, record_path)
    if checksum_list is not None:
        files = [hea, *(record_path.parent / f for f in set(header.file_name))]
        if annotator:
            files.append(record_path.with_suffix("." + annotator))
        for f in files:
            verify_file(f, record_path.parent, checksum_list)
    try:
        rec = wfdb.rdrecord(str(record_path), physical=True)
    except Exception as err:
        raise RecordError(f"{record_path}.dat: cannot be read with {hea.name}: {err}") from None
    draft = Record(
        record_id=record_path.name,
        subject_id=record_path.name,
        signal=rec.p_signal.astype(np.float32),
        fs_hz=float(rec.fs),
        channel_names=tuple(rec.sig_name),
        units=tuple(rec.units),
        source=hea,
    )
    if channels is not None:
        idx = [draft.channel_index(c) for c in channels]
        draft = Record(
            record_id=draft.record_id,
            subject_id=draft.subject_id,
            signal=np.ascontiguousarray(draft.signal[:, idx]),
            fs_hz=draft.fs_hz,
            channel_names=tuple(draft.channel_names[i] for i in idx),
            units=tuple(draft.units[i] for i in idx),
            source=hea,
        )
    beats = None
    if annotator:
        ann_path = record_path.with_suffix("." + annotator)
        try:
            ann = wfdb.rdann(str(record_path), annotator)
        except Exception as err:
            raise RecordError(f"{ann_path}: cannot be read: {err}") from None
        beats = map_beats(ann.sample, ann.symbol, aami_map())
        if len(beats.sample) and (beats.sample.max() >= draft.n_samples or beats.sample.min() < 0):
            raise RecordError(
                f"{ann_path}: header/data mismatch: a beat at sample {beats.sample.max()} "
                f"lies outside the {draft.n_samples} samples of the record"
            )
    from dataclasses import replace

    return checked(replace(draft, beats=beats), strict=strict)


def read_mitdb(
    record_id: str,
    data_dir: str | Path | None = None,
    channels: list[str] | None = None,
    verify: bool = True,
    strict: bool = False,
) -> Record:
    """Read MIT-BIH record ``record_id`` (e.g. ``"100"``) from the dataset folder."""
    card = load_card("mitdb")
    if str(record_id) not in card.raw["records"]:
        raise RecordError(f"'{record_id}' is not an MIT-BIH record (see datasets/mitdb.toml)")
    folder = dataset_dir("mitdb", data_dir)
    return read_wfdb(
        folder / str(record_id), channels=channels, checksum_list=card.checksums_path if verify else None, strict=strict
    )


def read_mitdb_beats(record_id: str, data_dir: str | Path | None = None, verify: bool = True) -> BeatAnnotations:
    """Only the beat annotations of an MIT-BIH record (fast: no signal is read)."""
    import wfdb

    card = load_card("mitdb")
    folder = dataset_dir("mitdb", data_dir)
    ann_path = folder / f"{record_id}.atr"
    if verify:
        verify_file(ann_path, folder, card.checksums_path)
    try:
        ann = wfdb.rdann(str(folder / str(record_id)), "atr")
    except Exception as err:
        raise RecordError(f"{ann_path}: cannot be read: {err}") from None
    return map_beats(ann.sample, ann.symbol, aami_map())
