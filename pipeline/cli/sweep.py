"""``biosig-edge sweep``: hyper-parameters on Ray Tune (the search: pipeline/train/sweep.py)."""

from __future__ import annotations

from pipeline.cli.common import data_dir, number, one_of, task, tasks_setting


def cmd_sweep(args) -> int:
    from pipeline.train.sweep import load_space, sweep

    result = sweep(
        args.task,
        args.trials,
        address=args.address,
        profile=args.profile,
        space=load_space(args.space),
        out=args.out,
        data_dir=args.data_dir,
    )
    print(f"best config: {result['config']} (train it: biosig-edge train {args.task} --config {result['config']})")
    return 0


def add_parser(sub) -> None:
    """``sweep``."""
    p = sub.add_parser(
        "sweep",
        parents=[task(f"; a sweep needs data.cv_folds set: {one_of(tasks_setting('data', 'cv_folds'))}"), data_dir()],
        help="search hyper-parameters on Ray Tune, each trial scored by record-level CV",
        description="Run TRIALS trials of a task's config on Ray Tune (local Ray on this "
        "machine, or the cluster at --address), each scored by k-fold CV by "
        "record inside the training split (the held-out split is never read); "
        "write the best config as a TOML file that 'train --config' takes.",
    )
    p.add_argument("--trials", type=number(0, 10_000, integer=True), default=8, help="number of trials (default 8)")
    p.add_argument("--address", help="a running Ray cluster, HOST:PORT or ray://HOST:PORT (default: local Ray, 2 CPUs)")
    p.add_argument(
        "--space",
        help='TOML search space: {"section.key": {choice|uniform|loguniform|randint: args}} '
        "over train.* and model.* keys (default: pipeline.train.sweep.DEFAULT_SPACE)",
    )
    p.add_argument("--profile", default="full", choices=["quick", "full"], help="the config trials start from")
    p.add_argument("--out", help="best config TOML (default: runs/sweep-<task>-<time>.toml)")
    p.set_defaults(func=cmd_sweep)
