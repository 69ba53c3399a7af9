"""Windows of a task, read once and indexed by split.

Each window carries its group (MIT-BIH record, Bonn segment, EEGMAT subject); splits are
made over groups, so no record or subject is ever on two sides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.errors import ConfigError
from pipeline.read.cards import load_card
from pipeline.read.splits import Split, bonn_split, eegmat_split, mitdb_split
from pipeline.train.config import TaskConfig
from pipeline.window.rr import RR_FEATURE_NAMES


@dataclass
class WindowTable:
    """All windows of a task.

    Attributes
    ----------
    x : ndarray of shape (n, n_steps, n_channels), float32
    side : ndarray of shape (n, n_side), float32 (n_side may be 0)
    label : ndarray of shape (n,), str
    group : ndarray of shape (n,), str
        Record, segment or subject id: what splits are made of.
    """

    x: np.ndarray
    side: np.ndarray
    label: np.ndarray
    group: np.ndarray
    fs_in_hz: float
    dropped: dict

    def take(self, groups, classes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, side, y) of the windows whose group is in ``groups`` and label in ``classes``."""
        mask = np.isin(self.group, list(groups)) & np.isin(self.label, classes)
        code = {name: i for i, name in enumerate(classes)}
        y = np.array([code[s] for s in self.label[mask]], dtype=np.int64)
        return self.x[mask], self.side[mask], y


def _progress(items, desc):
    import sys

    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="rec", leave=False, disable=not sys.stderr.isatty())


def load_windows(cfg: TaskConfig, groups: list[str] | None = None, data_dir=None) -> WindowTable:
    """Read the recordings of ``groups`` (all of the dataset when None) and cut windows."""
    if cfg.kind == "ecg-beats":
        return _ecg_windows(cfg, groups, data_dir)
    if cfg.dataset == "bonn":
        return _bonn_windows(cfg, groups, data_dir)
    if cfg.dataset == "eegmat":
        return _eegmat_windows(cfg, groups, data_dir)
    raise ConfigError(f"{cfg.task}: no window loader for kind '{cfg.kind}' on '{cfg.dataset}'")


def _ecg_windows(cfg, groups, data_dir) -> WindowTable:
    from pipeline.read.mitdb import read_mitdb
    from pipeline.window.ecg import BeatWindows, beat_windows

    cols = [RR_FEATURE_NAMES.index(f) for f in cfg.window.rr_features]
    card = load_card("mitdb")
    groups = groups or card.splits["DS1"] + card.splits["DS2"]
    parts = []
    for rec in _progress(groups, "reading mitdb"):
        record = read_mitdb(rec, data_dir, channels=cfg.channels)
        parts.append(
            beat_windows(
                record,
                cfg.preprocess_spec(record.fs_hz),
                cfg.window.before_s,
                cfg.window.after_s,
                normalise=cfg.window.normalise,
            )
        )
    w = BeatWindows.concat(parts)
    return WindowTable(w.x, w.rr[:, cols], w.label, w.record_id, card.fs_hz, dict(w.dropped))


def _bonn_windows(cfg, groups, data_dir) -> WindowTable:
    from pipeline.read.bonn import bonn_segment_paths, read_bonn_segment
    from pipeline.read.locate import dataset_dir
    from pipeline.window.eeg import EEGWindows, fixed_windows

    card = load_card("bonn")
    folder = dataset_dir("bonn", data_dir)
    paths = {f"{s}/{p.stem}": p for s, ps in bonn_segment_paths(data_dir).items() for p in ps}
    groups = groups or sorted(paths)
    parts = []
    for gid in _progress(groups, "reading bonn"):
        record = read_bonn_segment(paths[gid], checksum_root=folder, checksum_list=card.checksums_path)
        w = fixed_windows(record, cfg.preprocess_spec(record.fs_hz), cfg.window.window_s, cfg.window.hop_s)
        parts.append(replace(w, subject_id=np.full(len(w), gid)))  # the segment is the group
    w = EEGWindows.concat(parts)
    return WindowTable(w.x, np.zeros((len(w), 0), np.float32), w.label, w.subject_id, card.fs_hz, dict(w.dropped))


def _eegmat_windows(cfg, groups, data_dir) -> WindowTable:
    import warnings

    from pipeline.read.eegmat import eegmat_subjects, read_eegmat
    from pipeline.window.eeg import EEGWindows, fixed_windows

    groups = groups or eegmat_subjects(data_dir)
    parts = []
    for subject in _progress(groups, "reading eegmat"):
        for label in cfg.classes:
            with warnings.catch_warnings():
                # The padded file ends are reported by `data summary`; windows drop them.
                warnings.filterwarnings("ignore", message=".*flat samples")
                record = read_eegmat(subject, label, data_dir, channels=cfg.channels)
            parts.append(
                fixed_windows(record, cfg.preprocess_spec(record.fs_hz), cfg.window.window_s, cfg.window.hop_s)
            )
    w = EEGWindows.concat(parts)
    return WindowTable(
        w.x, np.zeros((len(w), 0), np.float32), w.label, w.subject_id, load_card("eegmat").fs_hz, dict(w.dropped)
    )


def task_split(cfg: TaskConfig, table: WindowTable | None = None, data_dir=None) -> Split:
    """The task's train/val/test split over groups, limited by ``cfg.data.limit_*``."""
    if cfg.dataset == "mitdb":
        from collections import Counter

        from pipeline.read.mitdb import read_mitdb_beats

        card = load_card("mitdb")
        if cfg.data.cv_folds:
            # Selection by CV folds inside DS1 (pipeline.train.fit.cross_validate): no
            # validation records are set aside, the final model trains on all of DS1.
            split = Split("record", tuple(card.splits["DS1"]), (), tuple(card.splits["DS2"]))
        else:
            counts = {r: Counter(read_mitdb_beats(r, data_dir).aami.tolist()) for r in card.splits["DS1"]}
            split = mitdb_split(counts, n_val_records=cfg.data.val_records, seed=cfg.seed)
    elif cfg.dataset == "bonn":
        from pipeline.read.bonn import bonn_segment_paths

        ids = {s: [f"{s}/{p.stem}" for p in ps] for s, ps in bonn_segment_paths(data_dir).items()}
        split = bonn_split(ids)
    elif cfg.dataset == "eegmat":
        from pipeline.read.eegmat import eegmat_subjects

        split = eegmat_split(eegmat_subjects(data_dir))
    else:
        raise ConfigError(f"{cfg.task}: no split for dataset '{cfg.dataset}'")
    d = cfg.data

    def cut(ids, n):
        return tuple(ids[:n]) if n else tuple(ids)

    if d.limit_train or d.limit_val or d.limit_test:
        # Keep limited subsets representative: interleave classes for Bonn ids.
        def spread(ids):
            if cfg.dataset != "bonn":
                return list(ids)
            by_set = {}
            for i in ids:
                by_set.setdefault(i.split("/")[0], []).append(i)
            return [i for row in zip(*by_set.values()) for i in row]

        split = Split(
            split.by,
            cut(spread(split.train), d.limit_train),
            cut(spread(split.val), d.limit_val),
            cut(spread(split.test), d.limit_test),
        )
    return split
