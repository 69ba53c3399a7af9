"""Levers judged by CV: runs of one task that differ in one setting, side by side.

    python -m pipeline.tools.levers BASE_RUN LEVER_RUN [LEVER_RUN ...] [--plot FILE] [--write]

For each run folder (``biosig-edge train`` output): the setting it changes against the
first (read from its ``run.json`` config), the CV score at the epoch CV chose and averaged
with its neighbours (what chooses the epoch), how far the CV score moved from epoch to
epoch once past epoch 10 (the noise a selection has to see through), what CV made of the
offsets, and the held-out numbers. Whether a lever is kept is the CV's call; the held-out
columns are its consequence, never its reason. ``--plot`` draws the CV score per epoch
of every run; ``--write`` replaces the docs block ``levers-<task>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: Epochs before this one are left out of the epoch-to-epoch spread (the model still learns).
SETTLED_EPOCH = 10


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_run(path: str | Path) -> dict:
    """What a lever table needs from a run folder (run.json, metrics.json, history.json)."""
    path = Path(path)
    run = json.loads((path / "run.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    history = json.loads((path / "history.json").read_text())
    monitor = metrics["cv"]["monitor"]
    plain = np.array([row[f"cv_{monitor}_plain"] for row in history])
    chosen = metrics["cv"]["epochs"] - 1
    settled = plain[SETTLED_EPOCH - 1 :] if len(plain) >= SETTLED_EPOCH else plain
    return {
        "task": run["task"],
        "seed": run["seed"],
        "config": _flat(run["config"]),
        "monitor": monitor,
        "curve": plain.tolist(),
        "chosen_epoch": chosen + 1,
        "cv_at_chosen": float(plain[chosen]),
        "cv_around_chosen": float(plain[max(0, chosen - 1) : chosen + 2].mean()),
        "cv_settled_range": float(settled.max() - settled.min()),
        "offsets": metrics["cv"]["offsets"],
        "unseen": metrics["cv"].get("offsets_on_unseen_records"),
        "test": metrics["test"],
        "n_params": metrics["n_params"],
    }


def changed(base: dict, other: dict) -> str:
    """The config keys ``other`` sets differently from ``base`` (``key = value``), or the
    code that differs when no key does (a run made before a rule existed)."""
    skip = {"seed", "profile"}
    keys = sorted(k for k in set(base["config"]) | set(other["config"]) if k not in skip)
    diff = [
        f"{k} = {json.dumps(other['config'].get(k))}" for k in keys if base["config"].get(k) != other["config"].get(k)
    ]
    return ", ".join(diff) if diff else "same config"


def table(runs: list[dict], labels: list[str]) -> str:
    """One Markdown row per run; the first is the base."""
    monitor = runs[0]["monitor"]
    lines = [
        f"| run | changes | CV {monitor} at chosen epoch (epoch) | with its neighbours | "
        f"CV range from epoch {SETTLED_EPOCH} | offsets used | held-out kappa | S Se / +P | V Se / +P |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in zip(labels, runs):
        pc = run["test"]["per_class"]
        offsets = "[" + ", ".join(f"{o:+.2f}" for o in run["offsets"]) + "]"
        if run["unseen"] and not run["unseen"].get("kept", True):  # (runs before the rule used them)
            offsets += (
                f" (found [{', '.join(f'{o:+.2f}' for o in run['unseen']['found'])}]: "
                f"{run['unseen']['score']:.3f} on unseen folds against {run['unseen']['plain_score']:.3f} without)"
            )
        lines.append(
            f"| {label} (seed {run['seed']}) | {changed(runs[0], run) if run is not runs[0] else 'base'} | "
            f"{run['cv_at_chosen']:.3f} ({run['chosen_epoch']}) | {run['cv_around_chosen']:.3f} | "
            f"{run['cv_settled_range']:.3f} | {offsets} | {run['test']['kappa']:.3f} | "
            f"{100 * pc['S']['se']:.1f} / {100 * pc['S']['ppv']:.1f} | {100 * pc['V']['se']:.1f} / {100 * pc['V']['ppv']:.1f} |"
        )
    return "\n".join(lines)


def plot(runs: list[dict], labels: list[str], path: str | Path) -> None:
    """CV score per epoch of each run, its chosen epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in zip(labels, runs):
        epochs = np.arange(1, len(run["curve"]) + 1)
        (line,) = ax.plot(epochs, run["curve"], marker=".", label=label)
        ax.plot(run["chosen_epoch"], run["cv_at_chosen"], "o", ms=10, mfc="none", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"out-of-fold CV {runs[0]['monitor']} (no offsets)")
    ax.set_title(f"{runs[0]['task']}: CV per epoch (circle: the epoch CV chose)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.levers", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders of one task; the first is the base")
    parser.add_argument("--labels", nargs="+", help="a short name per run (default: the folder names)")
    parser.add_argument("--plot", help="PNG of the CV score per epoch")
    parser.add_argument("--write", action="store_true", help="replace the docs block levers-<task>")
    args = parser.parse_args(argv)
    runs = [read_run(path) for path in args.runs]
    labels = args.labels or [Path(path).name for path in args.runs]
    if len(labels) != len(runs):
        parser.error(f"--labels: {len(labels)} names for {len(runs)} runs")
    if len({run["task"] for run in runs}) != 1:
        parser.error("runs of one task only: " + ", ".join(sorted({run["task"] for run in runs})))
    text = table(runs, labels)
    if args.plot:
        plot(runs, labels, args.plot)
        text += f"\n\n![CV per epoch]({Path(args.plot).name})"
    print(text)
    if args.write:
        from pipeline.readme import write_block

        command = "python -m pipeline.tools.levers BASE_RUN LEVER_RUN ... --labels ... --plot FILE --write"
        write_block(f"levers-{runs[0]['task']}", text, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
