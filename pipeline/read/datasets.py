"""One adapter per built-in dataset: what its record ids look like, how to read one
recording by id, and which recordings a model's held-out split holds.

Adding a dataset is one adapter here and one card in ``datasets/``. Every reader checks
each file against the card's checksum list; nothing here is used for a user's own files
(:mod:`pipeline.read.files` reads those, against no card).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from pipeline.errors import RecordError
from pipeline.read.record import Record


@dataclass(frozen=True)
class DatasetAdapter:
    """Record ids, reading and held-out recordings of one dataset.

    ``example`` shows an id; ``pattern`` matches every id.
    """

    name: str
    example: str
    pattern: str

    def is_id(self, rid: str) -> bool:
        return re.fullmatch(self.pattern, rid) is not None

    def record(self, rid: str, data_dir=None) -> Record:
        """One recording by id, every channel, with its annotations or label."""
        raise NotImplementedError

    def heldout_ids(self, split_test: list[str]) -> list[str]:
        """Recording ids of a held-out split (``split.test`` of a manifest)."""
        return list(split_test)


class _Mitdb(DatasetAdapter):
    def record(self, rid: str, data_dir=None) -> Record:
        from pipeline.read.mitdb import read_mitdb

        return read_mitdb(rid, data_dir)


#: Bonn segment-name letter -> set folder.
_BONN_SETS = {"Z": "A_Z", "O": "B_O", "N": "C_N", "F": "D_F", "S": "E_S"}


class _Bonn(DatasetAdapter):
    def record(self, rid: str, data_dir=None) -> Record:
        from pipeline.read.bonn import read_bonn

        segment = rid.split("/")[-1]
        set_name = rid.split("/")[0] if "/" in rid else _BONN_SETS[segment[0].upper()]
        if _BONN_SETS.get(segment[0].upper()) != set_name:
            raise RecordError(f"bonn:{rid}: segment {segment} is not in set {set_name}")
        return read_bonn(set_name, segment, data_dir)


class _Eegmat(DatasetAdapter):
    def record(self, rid: str, data_dir=None) -> Record:
        """``Subject00/rest`` or ``Subject00/task``; ``Subject00`` is rest, then task."""
        from pipeline.read.eegmat import read_eegmat

        subject, _, label = rid.partition("/")
        if label:
            return read_eegmat(subject, label, data_dir)
        parts = [read_eegmat(subject, lbl, data_dir) for lbl in ("rest", "task")]
        return replace(parts[0], record_id=subject, label=None, signal=np.concatenate([p.signal for p in parts]))

    def heldout_ids(self, split_test: list[str]) -> list[str]:
        return [f"{subject}/{label}" for subject in split_test for label in ("rest", "task")]


ADAPTERS = {
    "mitdb": _Mitdb("mitdb", "100", r"\d{3}"),
    "bonn": _Bonn("bonn", "E_S/S001", r"((A_Z|B_O|C_N|D_F|E_S)/)?[ZONFS]\d{3}"),
    "eegmat": _Eegmat("eegmat", "Subject00", r"Subject\d{2}(/(rest|task))?"),
}


def adapter(name: str) -> DatasetAdapter:
    if name not in ADAPTERS:
        raise RecordError(f"no dataset '{name}' (datasets: {', '.join(ADAPTERS)})")
    return ADAPTERS[name]


def dataset_record(spec: str, default_dataset: str | None = None, data_dir=None) -> Record:
    """``mitdb:100``, ``bonn:E_S/S001``, ``eegmat:Subject00``; a bare id for ``default_dataset``."""
    name, sep, rid = spec.partition(":")
    if not sep:
        if default_dataset is None:
            raise RecordError(f"'{spec}': which dataset? give it as DATASET:ID (datasets: {', '.join(ADAPTERS)})")
        name, rid = default_dataset, spec
    a = adapter(name)
    if not a.is_id(rid):
        raise RecordError(f"'{rid}' is not a {a.name} record id (e.g. {a.name}:{a.example})")
    return a.record(rid, data_dir)
