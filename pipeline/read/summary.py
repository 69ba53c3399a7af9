"""What is in each database: counts per class, per record or subject, per split."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.read.cards import load_card
from pipeline.read.checksums import verify_tree
from pipeline.read.locate import dataset_dir
from pipeline.read.splits import bonn_split, eegmat_split, mitdb_split

AAMI = ("N", "S", "V", "F", "Q")


def check_dataset(name: str, data_dir=None, progress=None) -> dict:
    """Verify every file of a dataset against its checksum list."""
    folder = dataset_dir(name, data_dir)
    card = load_card(name)
    problems = verify_tree(folder, card.checksums_path, progress=progress)
    return {"dataset": name, "folder": str(folder), "checksum_list": str(card.checksums_path), "problems": problems}


def mitdb_summary(data_dir=None, progress=None) -> dict:
    """Beat counts per AAMI class per record and per split (DS1 train / DS1 val / DS2)."""
    from pipeline.read.mitdb import read_mitdb_beats

    card = load_card("mitdb")
    per_record: dict[str, Counter] = {}
    unknown: Counter = Counter()
    records = card.raw["records"]
    for rec in progress(records) if progress else records:
        beats = read_mitdb_beats(rec, data_dir)
        per_record[rec] = Counter({c: 0 for c in AAMI}) + Counter(beats.aami.tolist())
        unknown.update(beats.unknown_symbols)
    split = mitdb_split(class_counts=per_record)
    sides = {
        "train (DS1)": split.train,
        "val (DS1)": split.val,
        "test (DS2)": split.test,
        "excluded (paced)": tuple(card.splits["excluded"]),
    }
    per_split = {side: _total(per_record, ids) for side, ids in sides.items()}
    per_split["DS1"] = _total(per_record, card.splits["DS1"])
    per_split["DS2"] = _total(per_record, card.splits["DS2"])
    return {
        "dataset": "mitdb",
        "folder": str(dataset_dir("mitdb", data_dir)),
        "classes": list(AAMI),
        "split": split.to_dict(),
        "per_record": {r: {**{c: per_record[r][c] for c in AAMI}, "side": _side(sides, r)} for r in records},
        "per_split": per_split,
        "unknown_symbols": dict(unknown),
    }


def _total(per_record, ids) -> dict:
    total: Counter = Counter()
    for r in ids:
        total.update(per_record[r])
    return {c: total[c] for c in AAMI} | {"records": len(ids)}


def _side(sides: dict, item: str) -> str:
    return next((side for side, ids in sides.items() if item in ids), "-")


def bonn_summary(data_dir=None, progress=None) -> dict:
    """Segments per set and per split; every segment is read (format check)."""
    from pipeline.read.bonn import bonn_segment_paths, read_bonn_segment

    card = load_card("bonn")
    folder = dataset_dir("bonn", data_dir)
    paths = bonn_segment_paths(data_dir)
    ids = {s: [f"{s}/{p.stem}" for p in ps] for s, ps in paths.items()}
    all_paths = [p for ps in paths.values() for p in ps]
    n_samples: Counter = Counter()
    for p in progress(all_paths) if progress else all_paths:
        n_samples[read_bonn_segment(p, checksum_root=folder, checksum_list=card.checksums_path).n_samples] += 1
    split = bonn_split(ids)
    per_set = {}
    for s, seg_ids in ids.items():
        per_set[s] = {"segments": len(seg_ids), "description": card.labels[s]}
        for side in ("train", "val", "test"):
            per_set[s][side] = sum(1 for i in seg_ids if i in getattr(split, side))
    return {
        "dataset": "bonn",
        "folder": str(folder),
        "fs_hz": card.fs_hz,
        "samples_per_segment": dict(n_samples),
        "per_set": per_set,
        "split": {
            "by": split.by,
            "seed": card.splits["seed"],
            "sizes": {k: len(getattr(split, k)) for k in ("train", "val", "test")},
        },
    }


def eegmat_summary(data_dir=None, progress=None) -> dict:
    """Durations per subject (rest, task) from the EDF headers, and the subject split."""
    import csv

    import pyedflib

    from pipeline.read.checksums import verify_file
    from pipeline.read.eegmat import eegmat_subjects

    card = load_card("eegmat")
    folder = dataset_dir("eegmat", data_dir)
    subjects = eegmat_subjects(data_dir)
    info = {}
    info_path = folder / "subject-info.csv"
    if info_path.is_file():
        with info_path.open() as fh:
            info = {row["Subject"]: row for row in csv.DictReader(fh)}
    split = eegmat_split(subjects)
    per_subject = {}
    for subj in progress(subjects) if progress else subjects:
        row: dict[str, Any] = {"side": split.side(subj)}
        for label, suffix in card.labels.items():
            path = folder / f"{subj}{suffix}.edf"
            verify_file(path, folder, card.checksums_path)
            with pyedflib.EdfReader(str(path)) as reader:
                row[f"{label}_s"] = float(reader.file_duration)
        if subj in info:
            row["count_quality"] = int(info[subj]["Count quality"])
        per_subject[subj] = row
    per_split = {}
    for side in ("train", "val", "test"):
        ids = getattr(split, side)
        per_split[side] = {
            "subjects": len(ids),
            **{f"{lbl}_s": sum(per_subject[s][f"{lbl}_s"] for s in ids) for lbl in card.labels},
        }
    return {
        "dataset": "eegmat",
        "folder": str(folder),
        "fs_hz": card.fs_hz,
        "per_subject": per_subject,
        "per_split": per_split,
        "split": split.to_dict(),
    }


SUMMARIES = {"mitdb": mitdb_summary, "bonn": bonn_summary, "eegmat": eegmat_summary}


def format_summary(summary: dict) -> str:
    """Plain-text tables of a summary dict."""
    name = summary["dataset"]
    lines = [f"== {name}: {load_card(name).title}  ({summary['folder']})"]
    if name == "mitdb":
        lines.append(
            _table(
                ["record", *AAMI, "side"],
                [[r, *(v[c] for c in AAMI), v["side"]] for r, v in summary["per_record"].items()],
            )
        )
        lines.append("")
        lines.append(
            _table(
                ["split", "records", *AAMI],
                [[s, v["records"], *(v[c] for c in AAMI)] for s, v in summary["per_split"].items()],
            )
        )
        if summary["unknown_symbols"]:
            lines.append(f"unknown annotation symbols (dropped): {summary['unknown_symbols']}")
    elif name == "bonn":
        lines.append(
            _table(
                ["set", "segments", "train", "val", "test", "description"],
                [
                    [s, v["segments"], v["train"], v["val"], v["test"], v["description"]]
                    for s, v in summary["per_set"].items()
                ],
            )
        )
        lines.append(
            f"samples per segment: {summary['samples_per_segment']} at {summary['fs_hz']} Hz; "
            f"split by segment, stratified by set, seed {summary['split']['seed']}"
        )
    elif name == "eegmat":
        lines.append(
            _table(
                ["subject", "rest_s", "task_s", "count_quality", "side"],
                [
                    [s, v["rest_s"], v["task_s"], v.get("count_quality", "-"), v["side"]]
                    for s, v in summary["per_subject"].items()
                ],
            )
        )
        lines.append("")
        lines.append(
            _table(
                ["split", "subjects", "rest_s", "task_s"],
                [[s, v["subjects"], v["rest_s"], v["task_s"]] for s, v in summary["per_split"].items()],
            )
        )
    return "\n".join(lines)


def _table(header: list, rows: list[list]) -> str:
    cells = [[str(h) for h in header]] + [[f"{c:g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def fmt(row):
        return "  ".join(
            c.rjust(w) if c.replace(".", "").isdigit() else c.ljust(w) for c, w in zip(row, widths)
        ).rstrip()

    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])
