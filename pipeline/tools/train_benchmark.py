"""Benchmark: train tasks' ``full`` profile over several seeds and report each number as
mean and spread beside its target; ``--write`` puts the tables in their docs blocks.

    python -m pipeline.tools.train_benchmark --tasks ecg-mitdb [--seeds 3] [--out runs/bench] [--write]

Seeds are the config's seed, +1, +2, ...; training is deterministic (same command, same
numbers). Every window is read once per task and shared by its seeds. Numbers are
printed, never asserted: this machine is shared and training is long. ``--write``
replaces the block ``results-<task>`` wherever it lives (``pipeline.readme``), so no number in the
docs is pasted by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

_ECG = [
    ("kappa", ("test", "kappa"), 0.70, "Mondejar-Guerra 2019: 0.773 (issue target 0.70 on the way to 0.78)"),
    ("S Se", ("test", "per_class", "S", "se"), 0.80, "Mar 2011: 83.2; Zhang 2014: 79.1"),
    ("S +P", ("test", "per_class", "S", "ppv"), 0.45, "Mar 2011: 33.5; Zhang 2014: 36.0"),
    ("V Se", ("test", "per_class", "V", "se"), 0.90, "Mar 2011: 86.8; Zhang 2014: 85.5"),
    ("V +P", ("test", "per_class", "V", "ppv"), 0.90, "Mar 2011: 75.9; Zhang 2014: 92.7"),
    ("F Se", ("test", "per_class", "F", "se"), None, ""),
    ("accuracy", ("test", "accuracy"), None, "Mondejar-Guerra 2019: 94.5"),
    ("macro-F1", ("test", "macro_f1"), None, ""),
    ("CV kappa (out-of-fold, DS1)", ("cv", "out_of_fold", "kappa"), None, "selection score, never DS2"),
]

#: (label, path into metrics.json, target, anchor) per task; fractions (kappa as is).
TARGETS = {
    "ecg-mitdb": _ECG,
    "ecg-mitdb-1lead": _ECG,
    "eeg-bonn": [
        ("E vs rest Se (windows)", ("test", "binary", "sensitivity"), 0.99, ""),
        ("E vs rest Sp (windows)", ("test", "binary", "specificity"), 0.99, ""),
        ("5-class accuracy (windows)", ("test", "accuracy"), None, ""),
        ("5-class accuracy (segments)", ("test", "per_recording", "accuracy"), None, ""),
        ("E vs rest Se (segments)", ("test", "per_recording", "binary", "sensitivity"), None, ""),
        ("E vs rest Sp (segments)", ("test", "per_recording", "binary", "specificity"), None, ""),
        ("5-class macro-F1", ("test", "macro_f1"), None, ""),
    ],
    "eeg-eegmat": [
        (
            "k-fold accuracy (windows)",
            ("subject_kfold", "pooled", "accuracy"),
            0.80,
            "shallow CNN (arXiv 2209.11767): 90.7",
        ),
        ("k-fold macro-F1", ("subject_kfold", "pooled", "macro_f1"), None, ""),
        (
            "k-fold accuracy (recordings: mean of windows)",
            ("subject_kfold", "pooled_per_recording", "accuracy"),
            None,
            "",
        ),
        ("held-out accuracy (windows)", ("test", "accuracy"), None, ""),
        ("held-out accuracy (recordings)", ("test", "per_recording", "accuracy"), None, ""),
    ],
}

DESCRIPTION = {
    "ecg-mitdb": "ECG, MIT-BIH inter-patient, two leads (MLII + precordial): trained on DS1 (22 records), "
    "epoch count and per-class offsets chosen by record-level CV inside DS1, tested on all 22 DS2 records",
    "ecg-mitdb-1lead": "ECG, MIT-BIH inter-patient, MLII only: trained on DS1 (22 records), epoch count and "
    "per-class offsets chosen by record-level CV inside DS1, tested on all 22 DS2 records",
    "eeg-bonn": "EEG, Bonn: seizure (E) vs rest and five sets, split by segment (350 train, 50 validation, 100 test)",
    "eeg-eegmat": "EEG, mental arithmetic, rest vs task, subject-independent (4-fold by subject; and a held-out split)",
}


def _get(d, path):
    for key in path:
        d = d[key]
    return d


def _fmt(label: str, v: float) -> str:
    return f"{v:.3f}" if "kappa" in label else f"{100 * v:.1f}"


def summarise(task: str, runs: list[dict], seeds: list[int]) -> str:
    """A Markdown table: per metric the mean, spread (sample std and max |seed - mean|),
    each seed's value, the target and whether the mean meets it."""
    lines = [
        f"| metric | mean | std | max abs dev from mean | per seed ({', '.join(map(str, seeds))}) | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, path, target, anchor in TARGETS[task]:
        try:
            values = np.array([_get(m, path) for m in runs], dtype=float)
        except KeyError:
            continue
        mean, std, dev = (
            values.mean(),
            values.std(ddof=1) if len(values) > 1 else 0.0,
            np.abs(values - values.mean()).max(),
        )
        verdict = "" if target is None else ("met" if mean >= target else "**missed**")
        tgt = "" if target is None else (f">= {target}" if "kappa" in label else f">= {100 * target:.0f}")
        spread = f"{_fmt(label, std)} | {_fmt(label, dev)}" if len(values) > 1 else "- | -"
        lines.append(
            f"| {label} | {_fmt(label, mean)} | {spread} | "
            f"{' / '.join(_fmt(label, v) for v in values)} | {tgt} | {verdict}"
            f"{' (' + anchor + ')' if anchor else ''} |"
        )
    minutes = [m["train_seconds"] / 60 for m in runs]
    lines.append(
        f"| train wall time per seed (min) | {np.mean(minutes):.1f} | | | "
        f"{' / '.join(f'{v:.1f}' for v in minutes)} | | |"
    )
    if "cv" in runs[0]:
        lines.append(f"| CV-chosen epochs | | | | {' / '.join(str(m['cv']['epochs']) for m in runs)} | | |")
        lines.append(
            f"| CV-chosen offsets (folded into the output bias) | | | | "
            f"{' / '.join('[' + ', '.join(f'{o:+.2f}' for o in m['cv']['offsets']) + ']' for m in runs)} | | |"
        )
        unseen = [m["cv"].get("offsets_on_unseen_records") for m in runs]
        if all(unseen):
            lines.append(
                "| offsets the folds found: CV score with / without them on the records that did not "
                "choose them (used only if higher) | | | | "
                + " / ".join(
                    f"[{', '.join(f'{o:+.2f}' for o in u['found'])}]: {u['score']:.3f} / {u['plain_score']:.3f}"
                    for u in unseen
                )
                + " | | |"
            )
    return "\n".join(lines)


_COST_CHILD = """
import json, sys
from pipeline.read.splits import Split
from pipeline.train.config import load_config
from pipeline.train.data import load_windows
from pipeline.train.fit import fit_one
cfg = load_config("ecg-mitdb", "quick", overrides={"data": {"cv_folds": 0}, "train": {
    "epochs": 4, "patience": 9, "tune_offsets": False, "deterministic": sys.argv[1] == "1"}})
table = load_windows(cfg, ["208", "223", "201", "119", "100", "209"])
_, _, h = fit_one(cfg, table, Split("record", ("208", "223", "119", "209"), ("201",), ("100",)), log=lambda *_: None)
print(json.dumps([r["seconds"] for r in h[1:]]))
"""


def determinism_cost(pairs: int = 3) -> str:
    """Seconds per epoch with and without deterministic TF ops, in fresh processes run in
    alternation (a small ECG fit: 4 DS1 records, epochs 2-4; the first epoch, which builds
    the graph, left out). A ratio measured within one run; this machine is shared."""
    import subprocess
    import sys

    times: dict[str, list[float]] = {"1": [], "0": []}
    for _ in range(pairs):
        for flag in ("1", "0"):
            out = subprocess.run([sys.executable, "-c", _COST_CHILD, flag], capture_output=True, text=True, check=True)
            times[flag] += json.loads(out.stdout.strip().splitlines()[-1])
    on, off = np.median(times["1"]), np.median(times["0"])
    return (
        f"deterministic ops: median {on:.2f} s per epoch, without: {off:.2f} s "
        f"(x{on / off:.2f}; {len(times['1'])} epochs each, {pairs} alternating process pairs)"
    )


def main(argv=None) -> int:
    from pipeline.train.config import load_config
    from pipeline.train.data import load_windows, task_split
    from pipeline.train.fit import train_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per task: the config's seed, +1, ... (default 3)")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--data-dir")
    parser.add_argument("--reuse", action="store_true", help="summarise run folders already in --out")
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="with --reuse: train nothing, summarise the seeds that have finished",
    )
    parser.add_argument(
        "--write", action="store_true", help="replace the block results-<task> (found by name in README.md or docs/)"
    )
    parser.add_argument(
        "--determinism-cost",
        action="store_true",
        help="only measure the time cost of deterministic training, and print it",
    )
    args = parser.parse_args(argv)
    if args.determinism_cost:
        print(determinism_cost())
        return 0
    for task in args.tasks:
        base = load_config(task, "full")
        seeds = [base.seed + i for i in range(args.seeds)]
        runs, table, done = [], None, []
        for seed in seeds:
            run = Path(args.out) / task / f"seed-{seed}"
            if args.summarise_only and not (run / "metrics.json").is_file():
                print(f"{task}: seed {seed} has no finished run in {run}; left out")
                continue
            if not (args.reuse and (run / "metrics.json").is_file()):
                cfg = load_config(task, "full", overrides={"seed": seed})
                split = task_split(cfg, data_dir=args.data_dir)
                if table is None:  # the same windows for every seed (splits do not depend on it)
                    groups = sorted(set(split.train) | set(split.val) | set(split.test))
                    table = load_windows(cfg, groups, args.data_dir)
                train_task(cfg, run, args.data_dir, split=split, table=table)
            runs.append(json.loads((run / "metrics.json").read_text()))
            done.append(seed)
        if not runs:
            continue
        seeds = done
        wall = sum(m["train_seconds"] for m in runs) / 60
        command = f"python -m pipeline.tools.train_benchmark --tasks {task} --seeds {args.seeds} --write"
        if len(done) < args.seeds:
            command += f" (summarised with --reuse --summarise-only: {len(done)} of {args.seeds} seeds had finished)"
        split = runs[0]["split"]
        text = (
            f"**{DESCRIPTION[task]}.** {runs[0]['n_params']:,} parameters; {len(seeds)} seed(s); "
            f"test split by {split['by']}: {len(split['test'])} never seen in training or selection. "
            f"{wall:.0f} min of training for the {len(seeds)} seed(s) on this shared 2-core machine "
            f"(the data read once before).\n\n" + summarise(task, runs, seeds) + "\n"
        )
        print(f"\n## {task}\n\n{text}")
        if args.write:
            from pipeline.readme import write_block

            write_block(f"results-{task}", text, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
