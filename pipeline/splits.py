"""Train / validation / test splits by record, subject or segment: never by window.

Every split is a pure function of ids, counts and a seed (no file reading), so the
training, the summary and the tests compute the same split from the same card.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from pipeline.read.cards import load_card


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


def mitdb_split(class_counts: dict[str, Counter] | None = None, n_val_records: int = 5,
                seed: int = 0, min_val_share: float = 0.05,
                max_val_share: float = 0.4) -> Split:
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


def stratified_split(items_by_label: dict[str, list[str]], test_fraction: float,
                     val_fraction: float, seed: int, by: str = "segment") -> Split:
    """Per label, a seeded shuffle cut into test, validation and train parts."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for label in sorted(items_by_label):
        items = sorted(items_by_label[label])
        order = rng.permutation(len(items))
        n_test = int(round(test_fraction * len(items)))
        n_val = int(round(val_fraction * len(items)))
        test += [items[i] for i in order[:n_test]]
        val += [items[i] for i in order[n_test:n_test + n_val]]
        train += [items[i] for i in order[n_test + n_val:]]
    return Split(by, tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(test)))


def bonn_split(segments_by_set: dict[str, list[str]], seed: int | None = None) -> Split:
    """Bonn: by segment (no subject ids are published), stratified by set.

    ``segments_by_set`` maps set name to segment ids (``"A_Z/Z001"``).
    """
    s = load_card("bonn").splits
    return stratified_split(segments_by_set, s["test_fraction"], s["val_fraction"],
                            s["seed"] if seed is None else seed)


def subject_split(subjects: list[str], n_test: int, n_val: int, seed: int) -> Split:
    """Disjoint subject sets: a seeded shuffle cut into test, validation and train."""
    subjects = sorted(subjects)
    order = np.random.default_rng(seed).permutation(len(subjects))
    test = sorted(subjects[i] for i in order[:n_test])
    val = sorted(subjects[i] for i in order[n_test:n_test + n_val])
    train = sorted(subjects[i] for i in order[n_test + n_val:])
    return Split("subject", tuple(train), tuple(val), tuple(test))


def eegmat_split(subjects: list[str], seed: int | None = None) -> Split:
    """EEGMAT: by subject, sizes and seed from the dataset card."""
    s = load_card("eegmat").splits
    return subject_split(subjects, s["test_subjects"], s["val_subjects"],
                         s["seed"] if seed is None else seed)


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
