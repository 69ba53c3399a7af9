"""Train / validation / test splits by record, subject or segment: never by window.

Every split is a pure function of the dataset's card (its fixed held-out lists, read with
:func:`~pipeline.read.cards.load_card`), ids, counts and a seed, so the training, the
summary and the tests compute the same split from the same card. It sits in ``read`` because
it reads the cards and ``read.summary`` reports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.errors import BiosigError
from pipeline.read.cards import load_card


class SplitError(BiosigError):
    """No split of the given ids meets the rules (a CV fold without a required class)."""


@dataclass(frozen=True)
class Split:
    """Ids on each side; ``by`` says what an id is (``record``, ``subject``, ``segment``)."""

    by: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self):
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = set(getattr(self, a)) & set(getattr(self, b))
            if shared:
                raise ValueError(f"{self.by}s on both {a} and {b} sides: {sorted(shared)}")

    def side(self, item: str) -> str | None:
        """``'train'``, ``'val'``, ``'test'`` or None for an id in no split."""
        for name in ("train", "val", "test"):
            if item in getattr(self, name):
                return name
        return None

    def to_dict(self) -> dict:
        return {"by": self.by, "train": list(self.train), "val": list(self.val), "test": list(self.test)}


def mitdb_split(
    class_counts: dict[str, Counter] | None = None,
    n_val_records: int = 5,
    seed: int = 0,
    min_val_share: float = 0.05,
    max_val_share: float = 0.4,
) -> Split:
    """DS1 (train + validation records) / DS2 (test) of de Chazal et al. (2004).

    Validation records are drawn from DS1 by a seeded shuffle; with ``class_counts``
    ({record: Counter of AAMI classes}) the draw is repeated (seed, seed+1, ...) until the
    validation records hold between ``min_val_share`` and ``max_val_share`` of DS1's beats
    of each of N, S, V and F: early stopping must see every class, and training must keep
    most of each (record 208 alone holds 373 of DS1's 415 F beats). Paced records are in
    no split.
    """
    splits = load_card("mitdb").splits
    ds1, ds2 = list(splits["DS1"]), list(splits["DS2"])
    for attempt in range(1000):
        rng = np.random.default_rng(seed + attempt)
        val = sorted(rng.choice(ds1, size=n_val_records, replace=False).tolist())
        if class_counts is None:
            break
        total = sum((class_counts[r] for r in ds1), Counter())
        held = sum((class_counts[r] for r in val), Counter())
        if all(min_val_share * total[c] <= held[c] <= max_val_share * total[c] for c in "NSVF"):
            break
    else:
        raise ValueError("no validation draw covers every class; widen min/max_val_share")
    train = tuple(r for r in ds1 if r not in val)
    return Split("record", train, tuple(val), tuple(ds2))


def stratified_split(
    items_by_label: dict[str, list[str]], test_fraction: float, val_fraction: float, seed: int, by: str = "segment"
) -> Split:
    """Per label, a seeded shuffle cut into test, validation and train parts."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for label in sorted(items_by_label):
        items = sorted(items_by_label[label])
        order = rng.permutation(len(items))
        n_test = int(round(test_fraction * len(items)))
        n_val = int(round(val_fraction * len(items)))
        test += [items[i] for i in order[:n_test]]
        val += [items[i] for i in order[n_test : n_test + n_val]]
        train += [items[i] for i in order[n_test + n_val :]]
    return Split(by, tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)))


def bonn_split(segments_by_set: dict[str, list[str]], seed: int | None = None) -> Split:
    """Bonn: by segment (no subject ids are published), stratified by set.

    ``segments_by_set`` maps set name to segment ids (``"A_Z/Z001"``).
    """
    s = load_card("bonn").splits
    return stratified_split(segments_by_set, s["test_fraction"], s["val_fraction"], s["seed"] if seed is None else seed)


def subject_split(subjects: list[str], n_test: int, n_val: int, seed: int) -> Split:
    """Disjoint subject sets: a seeded shuffle cut into test, validation and train."""
    subjects = sorted(subjects)
    order = np.random.default_rng(seed).permutation(len(subjects))
    test = sorted(subjects[i] for i in order[:n_test])
    val = sorted(subjects[i] for i in order[n_test : n_test + n_val])
    train = sorted(subjects[i] for i in order[n_test + n_val :])
    return Split("subject", tuple(train), tuple(val), tuple(test))


def eegmat_split(subjects: list[str], seed: int | None = None) -> Split:
    """EEGMAT: by subject, sizes and seed from the dataset card."""
    s = load_card("eegmat").splits
    return subject_split(subjects, s["test_subjects"], s["val_subjects"], s["seed"] if seed is None else seed)


def subject_folds(subjects: list[str], k: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """k-fold by subject: k (train subjects, test subjects) pairs; each subject tested once."""
    subjects = sorted(subjects)
    if not 2 <= k <= len(subjects):
        raise ValueError(f"k={k} folds need 2 <= k <= {len(subjects)} subjects")
    order = np.random.default_rng(seed).permutation(len(subjects))
    folds = np.array_split(order, k)
    out = []
    for fold in folds:
        test = sorted(subjects[i] for i in fold)
        out.append(([s for s in subjects if s not in test], test))
    return out


def check_folds(folds: list[tuple[str, ...]], counts: dict[str, Counter], required: list[str]) -> None:
    """Refuse folds that share a record, or a fold holding no beat of a required class,
    naming the fold's records (a fold without S beats cannot score S, nor choose its offset)."""
    seen: dict[str, int] = {}
    for i, fold in enumerate(folds):
        for rec in fold:
            if rec in seen:
                raise SplitError(f"record {rec} is in CV folds {seen[rec] + 1} and {i + 1}")
            seen[rec] = i
    for i, fold in enumerate(folds):
        missing = [c for c in required if not sum(counts[r][c] for r in fold)]
        if missing:
            raise SplitError(
                f"CV fold {i + 1} of {len(folds)} (records {', '.join(fold)}) holds no "
                f"{'/'.join(missing)} beats; use fewer folds or other records"
            )


def record_folds(
    counts: dict[str, Counter], k: int, required: Sequence[str] = (), seed: int = 0, attempts: int = 2000
) -> list[tuple[str, ...]]:
    """k folds of records for cross-validation inside a training split.

    ``counts`` maps every record to a Counter of its beat classes. Records are dealt to
    folds by a seeded shuffle; of ``attempts`` shuffles the first whose every fold holds
    at least a ``1 / (2k)`` share of each ``required`` class is kept (a fold with 3 S beats
    would score S by chance), else the one whose poorest fold is richest, provided every
    fold holds some of each required class (:func:`check_folds` refuses it otherwise).
    Deterministic: a pure function of the records, counts, k and seed.
    """
    records = sorted(counts)
    if not 2 <= k <= len(records):
        raise SplitError(f"{k} CV folds need 2 <= k <= {len(records)} records ({', '.join(records)})")
    if attempts < 1:
        raise SplitError(f"record_folds needs at least one shuffle to try, got attempts={attempts}")
    total = {c: sum(counts[r][c] for r in records) for c in required}
    best: list[tuple[str, ...]] = []
    best_share = -1.0
    for attempt in range(attempts):
        order = np.random.default_rng(seed + attempt).permutation(len(records))
        folds = [tuple(sorted(records[i] for i in part)) for part in np.array_split(order, k)]
        share = (
            min((sum(counts[r][c] for r in fold) / total[c] if total[c] else 0.0) for fold in folds for c in required)
            if required
            else 1.0
        )
        if share > best_share:
            best, best_share = folds, share
        if share >= 1 / (2 * k):
            break
    check_folds(best, counts, list(required))
    return best
