"""``biosig-edge train``: train an LSTM on a task and test it on held-out data."""

from __future__ import annotations

from pipeline.cli.common import data_dir, profile, run_folder, run_out, task


def cmd_train(args) -> int:
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task

    cfg = load_config(args.config or args.task, args.profile)
    run_dir = train_task(cfg, run_folder(cfg, args.out), args.data_dir)
    print((run_dir / "metrics.md").read_text())
    print(f"run folder: {run_dir}")
    return 0


def add_parser(sub) -> None:
    """``train``."""
    p = sub.add_parser(
        "train",
        parents=[task(), profile("full"), run_out(), data_dir()],
        help="train an LSTM on a task and test it on held-out data",
        description="Train a causal LSTM classifier on a task's training split, "
        "select the epoch on its validation split, test on the held-out "
        "split, and write a run folder (model.keras, run.json, "
        "metrics.json/.md, curves.png, confusion.png).",
    )
    p.add_argument("--config", help="a TOML file to use instead of the task's own")
    p.set_defaults(func=cmd_train)
