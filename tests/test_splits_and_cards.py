"""Splits by record/subject/segment, and dataset cards."""

from collections import Counter

import pytest

from pipeline.errors import ConfigError
from pipeline.read.cards import load_card, parse_card
from pipeline.read.mitdb import read_mitdb_beats
from pipeline.read.splits import Split, SplitError, bonn_split, eegmat_split, mitdb_split, record_folds, subject_folds


@pytest.fixture(scope="module")
def mitdb_counts():
    card = load_card("mitdb")
    return {r: Counter(read_mitdb_beats(r).aami.tolist()) for r in card.splits["DS1"]}


def test_mitdb_split_is_inter_patient(mitdb_counts):
    card = load_card("mitdb")
    split = mitdb_split(class_counts=mitdb_counts)
    assert set(split.train) | set(split.val) == set(card.splits["DS1"])
    assert split.test == tuple(card.splits["DS2"])
    assert not set(split.test) & (set(split.train) | set(split.val))
    assert not {"102", "104", "107", "217"} & (set(split.train) | set(split.val) | set(split.test))
    held = sum((mitdb_counts[r] for r in split.val), Counter())
    total = sum(mitdb_counts.values(), Counter())
    for c in "NSVF":
        assert 0.05 * total[c] <= held[c] <= 0.4 * total[c]
    assert split == mitdb_split(class_counts=mitdb_counts)  # seeded: the same every time


def test_bonn_split_is_stratified_by_set():
    ids = {s: [f"{s}/{s[-1]}{i:03d}" for i in range(1, 101)] for s in ("A_Z", "B_O", "C_N", "D_F", "E_S")}
    split = bonn_split(ids)
    for s in ids:
        assert [sum(i.startswith(s) for i in getattr(split, side)) for side in ("train", "val", "test")] == [70, 10, 20]
    assert split != bonn_split(ids, seed=1)


def test_eegmat_split_never_shares_a_subject():
    subjects = [f"Subject{i:02d}" for i in range(24)]
    split = eegmat_split(subjects)
    assert (len(split.train), len(split.val), len(split.test)) == (15, 3, 6)
    with pytest.raises(ValueError, match="subjects on both train and test sides"):
        Split("subject", ("Subject01",), (), ("Subject01",))


def test_subject_folds_test_each_subject_once():
    subjects = [f"S{i}" for i in range(24)]
    folds = subject_folds(subjects, k=6, seed=3)
    tested = [s for _, test in folds for s in test]
    assert sorted(tested) == sorted(subjects)
    assert all(not set(train) & set(test) for train, test in folds)


def test_card_with_unknown_key_or_wrong_type_is_refused(tmp_path):
    raw = dict(load_card("bonn").raw)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
        parse_card({**raw, "colour": "red"}, tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="key 'fs_hz' should be float, got str"):
        parse_card({**raw, "fs_hz": "173.61"}, tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="missing key 'labels'"):
        parse_card({k: v for k, v in raw.items() if k != "labels"}, tmp_path / "x.toml")


def test_record_folds_with_no_shuffle_to_try_is_refused():
    counts = {record: Counter({"N": 10, "S": 2}) for record in ("a", "b", "c", "d")}
    assert len(record_folds(counts, 2, ["S"], attempts=1)) == 2
    with pytest.raises(SplitError, match="attempts=0"):
        record_folds(counts, 2, ["S"], attempts=0)
