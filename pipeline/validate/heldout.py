"""The recordings a validation streams, whole, as a device would see them.

Two sources:

- the task's held-out split: ids from the manifest (``split.test``), so validation always
  uses the split the model was trained against (MIT-BIH DS2 records, Bonn test segments,
  EEGMAT test subjects' rest and task recordings), each file checked against its card;
- a folder of the user's own labelled recordings (``validate --records DIR``): annotated
  WFDB records for ECG (beat symbols mapped to the AAMI classes as for MIT-BIH; unknown
  symbols reported), or for EEG any files listed in ``DIR/labels.csv`` (``file,label``).
  They stream at their own rates, units and channel names, converted by the session.

Training-side readers (wfdb, pyedflib).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import BiosigError
from pipeline.manifest import Manifest
from pipeline.read.record import Record, SignalSpec


class HeldoutError(BiosigError):
    """The data folder cannot give the held-out split (a file missing or altered), or a
    records folder holds nothing a model can be scored on."""


@dataclass
class Heldout:
    """One recording to stream and score.

    ``signal``: (n_samples, n_channels) float32 as ``spec`` declares it (the input's own
    rate, labels and units). ECG: ``beat_sample`` / ``beat_class`` (n_beats,) annotated
    beats (at ``spec.fs_hz``) and their AAMI class. EEG: ``label``, the class index of
    every window of the recording.
    """

    id: str
    signal: np.ndarray
    spec: SignalSpec
    beat_sample: np.ndarray | None = None
    beat_class: np.ndarray | None = None
    label: int | None = None

    @property
    def fs_hz(self) -> float:
        return self.spec.fs_hz

    @property
    def duration_s(self) -> float:
        return len(self.signal) / self.fs_hz

    def measure_entry(self, raw_path: str) -> dict:
        """This recording as a job entry of :mod:`pipeline.runtime.measure`."""
        return {
            "id": self.id,
            "raw": raw_path,
            "n_channels": int(self.signal.shape[1]),
            "fs_hz": self.spec.fs_hz,
            "channels": list(self.spec.channels),
            "units": list(self.spec.units),
            "full_scale": [list(r) for r in self.spec.full_scale] if self.spec.full_scale else None,
        }


#: The class of an annotated beat that is not scored (a symbol the dataset card does not
#: map): a detection matched to it is neither right, wrong nor false, as EC57 treats Q.
UNSCORED = "?"


def _from_record(
    rid: str, record: Record, seconds: float | None, label: int | None = None, unscored: np.ndarray | None = None
) -> Heldout:
    """``unscored``: (n,) samples of annotated beats that are not scored, kept among the
    beats (class :data:`UNSCORED`) so that detections at them are matched, not counted as
    false detections."""
    out = Heldout(rid, record.signal.astype(np.float32), record.spec, label=label)
    if record.beats is not None:
        out.beat_sample, out.beat_class = np.asarray(record.beats.sample), np.asarray(record.beats.aami)
        if unscored is not None and len(unscored):
            sample = np.concatenate([out.beat_sample, np.asarray(unscored, dtype=np.int64)])
            order = np.argsort(sample, kind="stable")
            cls = np.concatenate([out.beat_class.astype(object), np.full(len(unscored), UNSCORED, dtype=object)])
            out.beat_sample, out.beat_class = sample[order], cls[order].astype(str)
    if seconds:
        n = int(round(seconds * out.fs_hz))
        out.signal = out.signal[:n]
        if out.beat_sample is not None and out.beat_class is not None:  # set together
            keep = out.beat_sample < n
            out.beat_sample, out.beat_class = out.beat_sample[keep], out.beat_class[keep]
    return out


def heldout_ids(manifest: Manifest) -> list[str]:
    """Recording ids of the held-out split, in the manifest's order."""
    from pipeline.read.datasets import adapter

    return adapter(_dataset(manifest)).heldout_ids(list(manifest.split.test))


def _dataset(manifest: Manifest) -> str:
    """The dataset the model was trained on (its held-out split is read from it)."""
    if manifest.dataset is None:
        raise HeldoutError(f"{manifest.task}: manifest.json names no dataset, so it has no held-out recordings")
    return manifest.dataset


def read_heldout(manifest: Manifest, rid: str, data_dir=None, seconds: float | None = None) -> Heldout:
    """Read one held-out recording ``rid`` (an id from :func:`heldout_ids`), optionally
    only its first ``seconds``."""
    from pipeline.read.datasets import adapter

    try:
        record = adapter(_dataset(manifest)).record(rid, data_dir)
    except BiosigError as e:
        raise HeldoutError(f"cannot read held-out recording {rid} of {manifest.task}: {e}") from None
    label = None
    if manifest.kind == "eeg-windows":
        name = record.label
        if name not in manifest.classes:
            raise HeldoutError(f"held-out recording {rid}: label '{name}' is not a class of the model")
        label = manifest.classes.index(name)
    return _from_record(rid, record, seconds, label)


LABELS_FILE = "labels.csv"


def user_record_ids(manifest: Manifest, folder: str | Path) -> list[str]:
    """The recordings of a user's folder: ECG, every WFDB record with a ``.atr`` annotation
    file; EEG, the files listed in ``labels.csv``. Refuses a folder with none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HeldoutError(f"{folder}: not a folder")
    if manifest.kind == "ecg-beats":
        ids = sorted(p.stem for p in folder.glob("*.hea") if p.with_suffix(".atr").is_file())
        if not ids:
            raise HeldoutError(f"{folder}: no annotated WFDB record (a .hea with its .atr beside it)")
        return ids
    return list(_labels(manifest, folder))


def _labels(manifest: Manifest, folder: Path) -> dict[str, str]:
    path = folder / LABELS_FILE
    if not path.is_file():
        raise HeldoutError(
            f"{path}: missing: list each recording and its class as 'file,label' "
            f"(classes: {', '.join(manifest.classes)})"
        )
    out = {}
    with path.open(newline="", encoding="utf-8-sig") as f:  # a spreadsheet's byte-order mark
        for number, row in enumerate(csv.reader(f), 1):
            if not row or row[0].strip().startswith("#") or (number == 1 and row[:2] == ["file", "label"]):
                continue
            if len(row) != 2:
                raise HeldoutError(f"{path}: line {number}: expected 'file,label', got {row}")
            name, label = row[0].strip(), row[1].strip()
            if label not in manifest.classes:
                raise HeldoutError(
                    f"{path}: line {number}: '{label}' is not a class of the model ({', '.join(manifest.classes)})"
                )
            if not (folder / name).is_file():
                raise HeldoutError(f"{path}: line {number}: {folder / name}: no such file")
            out[name] = label
    if not out:
        raise HeldoutError(f"{path}: lists no recording")
    return out


def read_user_record(
    manifest: Manifest, folder: str | Path, rid: str, seconds: float | None = None, options: dict | None = None
) -> tuple[Heldout, dict]:
    """One recording of a user's folder, and a note of what was mapped or dropped.

    ``options``: ``fs_hz``, ``units``, ``gain`` for bare-number files (CSV, NPY, MAT);
    ``labels`` (names for a bare file's columns) and ``channel_map`` ({model channel: input
    label}) as ``--channels`` gives them. Only the model's channels are kept, named as the
    model names them (the note's ``channel_map`` says which input channel feeds which).
    """
    from pipeline.read.files import input_notes

    folder = Path(folder)
    options = options or {}
    with input_notes() as notes:
        if manifest.kind == "ecg-beats":
            record, used = _read_model_channels(manifest, folder / f"{rid}.hea", options, annotator="atr")
            label = None
        else:
            labels = _labels(manifest, folder)
            record, used = _read_model_channels(manifest, folder / rid, options, annotator=None)
            label = manifest.classes.index(labels[rid])
    unscored = None
    if record.beats is not None and record.beats.unknown_symbols:
        unscored = _unscored_beats(folder / rid)
    note = {
        "id": rid,
        "fs_hz": record.fs_hz,
        "channels": [u.split("->")[0] for u in used],  # the input's labels, of the channels used
        "channel_map": used,
        "units": list(record.units),
        "warnings": notes,
    }
    if record.beats is not None:
        note["unknown_symbols"] = dict(record.beats.unknown_symbols)
        note["beats"] = int(len(record.beats.sample))
    return _from_record(rid, record, seconds, label, unscored), note


def read_recording(
    manifest: Manifest,
    rid: str,
    records: str | Path | None = None,
    data_dir=None,
    seconds: float | None = None,
    options: dict | None = None,
) -> tuple[Heldout, dict | None]:
    """One recording a validation streams: ``rid`` of the user's folder ``records`` (with
    its note, see :func:`read_user_record`), or of the held-out split (note None). The one
    reader of both the sequential run and a Ray worker's task."""
    if records:
        return read_user_record(manifest, records, rid, seconds, options)
    return read_heldout(manifest, rid, data_dir, seconds), None


def _read_model_channels(
    manifest: Manifest, path: Path, options: dict, annotator: str | None
) -> tuple[Record, list[str]]:
    """Read ``path`` keeping only the model's channels, in its order and under its names,
    and say what feeds what (``["ECG1->MLII", ...]``).

    The channels are resolved as ``biosig-edge stream`` resolves them (the manifest's
    aliases, then ``channel_map``), here, before anything streams: a recording without
    them is refused naming the file, and an EDF is read for those channels only, not for
    all of them (an EEGMAT file holds 21) as float64.
    """
    from dataclasses import replace

    from pipeline.read.channels import resolve_channels
    from pipeline.read.files import read_recording, recording_channels

    model = list(manifest.input.channels)
    aliases = manifest.input.channel_aliases
    mapping = options.get("channel_map") or {}
    wanted = options.get("labels")
    if path.suffix.lower() in (".edf", ".bdf"):
        have = recording_channels(path)
        wanted = [have[i] for i in resolve_channels(model, have, aliases, mapping, str(path))]
    # A WFDB record's header says its rate, units and gain; bare-number files need them.
    bare = {} if annotator else {k: options.get(k) for k in ("fs_hz", "units", "gain")}
    record = read_recording(path, channels=wanted, annotator=annotator, **bare)
    idx = resolve_channels(model, list(record.channel_names), aliases, mapping, str(path))
    used = [f"{record.channel_names[i]}->{name}" for i, name in zip(idx, model)]
    record = replace(
        record,
        signal=np.ascontiguousarray(record.signal[:, idx]),
        channel_names=tuple(model),
        units=tuple(record.units[i] for i in idx),
        full_scale=tuple(record.full_scale[i] for i in idx) if record.full_scale else None,
    )
    return record, used


def _unscored_beats(record_path: Path) -> np.ndarray:
    """Samples of the annotations of ``record_path.atr`` that are beats of a symbol the
    card does not map (neither a mapped beat nor a known non-beat mark): reported as not
    scored, and so not scored either way (a detection there is not a false one)."""
    import wfdb

    from pipeline.read.mitdb import NON_BEAT_SYMBOLS, aami_map

    mapping = aami_map()
    ann = wfdb.rdann(str(record_path), "atr")
    keep = [i for i, s in enumerate(ann.symbol) if s not in mapping and s not in NON_BEAT_SYMBOLS]
    return np.asarray(ann.sample, dtype=np.int64)[keep]


def check_scorable(manifest: Manifest, heldouts: list[Heldout], where: str) -> None:
    """Refuse recordings that hold nothing to score: ECG records without one annotated
    beat of the model's classes (a report of NaN scores would blame the artifact)."""
    if manifest.kind != "ecg-beats":
        return
    classes = set(manifest.classes)
    if not any(h.beat_class is not None and np.isin(h.beat_class, list(classes)).any() for h in heldouts):
        raise HeldoutError(
            f"{where}: no record holds an annotated beat of the model's classes ({', '.join(manifest.classes)}): "
            f"nothing to score (only non-beat or unmapped annotation symbols)"
        )
