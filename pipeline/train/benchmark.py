"""Benchmark: train every task's ``full`` profile and print its numbers beside the targets.

    python -m pipeline.train.benchmark [--tasks ecg-mitdb eeg-bonn eeg-eegmat] [--out runs/bench]

Numbers are printed, never asserted: this machine is shared and training is long.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

#: (label, path into metrics.json, target, anchor) per task; fractions.
TARGETS = {
    "ecg-mitdb": [
        ("S Se", ("test", "per_class", "S", "se"), 0.80, "Mar 2011: 83.2; Zhang 2014: 79.1"),
        ("S +P", ("test", "per_class", "S", "ppv"), 0.45, "Mar 2011: 33.5; Zhang 2014: 36.0"),
        ("V Se", ("test", "per_class", "V", "se"), 0.90, "Mar 2011: 86.8; Zhang 2014: 85.5"),
        ("V +P", ("test", "per_class", "V", "ppv"), 0.90, "Mar 2011: 75.9; Zhang 2014: 92.7"),
        ("kappa", ("test", "kappa"), 0.78, "Mondejar-Guerra 2019: 0.773"),
        ("accuracy", ("test", "accuracy"), None, "Mondejar-Guerra 2019: 94.5"),
        ("macro-F1", ("test", "macro_f1"), None, ""),
    ],
    "eeg-bonn": [
        ("E vs rest Se", ("test", "binary", "sensitivity"), 0.99, ""),
        ("E vs rest Sp", ("test", "binary", "specificity"), 0.99, ""),
        ("5-class accuracy (windows)", ("test", "accuracy"), None, ""),
        ("5-class accuracy (segments)", ("test", "per_recording", "accuracy"), None, ""),
        ("E vs rest Se (segments)", ("test", "per_recording", "binary", "sensitivity"), None, ""),
        ("E vs rest Sp (segments)", ("test", "per_recording", "binary", "specificity"), None, ""),
        ("5-class macro-F1", ("test", "macro_f1"), None, ""),
    ],
    "eeg-eegmat": [
        ("k-fold accuracy", ("subject_kfold", "pooled", "accuracy"), 0.80, ""),
        ("k-fold macro-F1", ("subject_kfold", "pooled", "macro_f1"), None, ""),
        ("held-out accuracy", ("test", "accuracy"), None, ""),
    ],
}


def _get(d, path):
    for key in path:
        d = d[key]
    return d


def summarise(task: str, metrics: dict) -> list[str]:
    rows = []
    for label, path, target, anchor in TARGETS[task]:
        value = _get(metrics, path)
        verdict = "" if target is None else ("met" if value >= target else "MISSED")
        tgt = "" if target is None else f">= {100 * target:.0f}" if label != "kappa" else f">= {target}"
        shown = f"{value:.3f}" if label == "kappa" else f"{100 * value:.1f}"
        rows.append(f"| {task} | {label} | {shown} | {tgt} | {verdict} | {anchor} |")
    rows.append(f"| {task} | train wall time | {metrics['train_seconds'] / 60:.1f} min | "
                f"{'<= 20 min' if task == 'ecg-mitdb' else ''} | "
                f"{('met' if metrics['train_seconds'] <= 1200 else 'MISSED') if task == 'ecg-mitdb' else ''} | |")
    return rows


def main(argv=None) -> int:
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--out", default=f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--data-dir")
    parser.add_argument("--reuse", action="store_true", help="summarise existing run folders in --out")
    args = parser.parse_args(argv)
    rows = ["| task | metric | value | target | | anchor |", "|---|---|---|---|---|---|"]
    for task in args.tasks:
        run = Path(args.out) / task
        if not (args.reuse and (run / "metrics.json").is_file()):
            train_task(load_config(task, "full"), run, args.data_dir)
        rows += summarise(task, json.loads((run / "metrics.json").read_text()))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
