"""``biosig-edge sweep``: architecture and training settings on Ray Tune, under the device's
budget (the search: pipeline/train/sweep.py)."""

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
    print(result["summary"])
    print(
        f"Pareto table: {result['table']}; trials: {result['json']}"
        + (f"; plot: {result['plot']}" if "plot" in result else "")
    )
    print(f"best config: {result['config']} (train it: biosig-edge train {args.task} --config {result['config']})")
    return 0


def add_parser(sub) -> None:
    """``sweep``."""
    p = sub.add_parser(
        "sweep",
        parents=[task(f"; a sweep needs data.cv_folds set: {one_of(tasks_setting('data', 'cv_folds'))}"), data_dir()],
        help="search architecture and training settings on Ray Tune under the device's budget, "
        "each trial scored by record-level CV",
        description="Sample TRIALS trials of a task's config (local Ray on this machine, or the "
        "cluster at --address). Before any training, each distinct architecture (LSTM and dense "
        "widths, window length and rate, side features) is built untrained, generated as int8 and "
        "float32 C as export does, and costed as the validation report costs an export: Cortex-M4 "
        "flash, RAM with stack and instructions per decision under QEMU (ms at 64 MHz), and the C "
        "backend's microseconds per decision on this CPU. A trial over the budget (int8 C: flash "
        "<= 64 KB, RAM <= 16 KB, <= 20 ms per decision at 64 MHz) is reported and never trained "
        "nor chosen; without QEMU or arm-none-eabi-gcc the sweep says so and costs what it can. "
        "The others are scored by k-fold CV by record inside the training split (the held-out "
        "split is never read), with Ray Tune's ASHA stopping trials whose per-epoch CV score "
        "trails. The windows are read once per window/preprocess setting. Writes the best config "
        "as a TOML file that 'train --config' takes and, beside it, <stem>-pareto.md (per trial: "
        "params, CV score, epochs run, int8 flash KB, RAM KB, M4 ms, C us per decision, within "
        "budget, on the Pareto front of CV score vs M4 ms vs flash), <stem>-pareto.png (CV score "
        "vs M4 ms, marker area by flash, over budget in grey, the front joined) and "
        "<stem>-trials.json. A causal convolution front end is not searched: the C runtime has "
        "no convolution layer.",
    )
    p.add_argument("--trials", type=number(0, 10_000, integer=True), default=8, help="number of trials (default 8)")
    p.add_argument("--address", help="a running Ray cluster, HOST:PORT or ray://HOST:PORT (default: local Ray, 2 CPUs)")
    p.add_argument(
        "--space",
        help='TOML search space: {"section.key": {choice|uniform|loguniform|randint: args}} '
        "over train.*, model.*, window.* and preprocess.* keys (window and preprocess keys such as "
        "window.before_s, window.after_s, preprocess.decimate change the windows; "
        "default: pipeline.train.sweep.DEFAULT_SPACE)",
    )
    p.add_argument("--profile", default="full", choices=["quick", "full"], help="the config trials start from")
    p.add_argument(
        "--out",
        help="best config TOML; the Pareto table, plot and trials JSON are written beside it "
        "(default: runs/sweep-<task>-<time>.toml)",
    )
    p.set_defaults(func=cmd_sweep)
