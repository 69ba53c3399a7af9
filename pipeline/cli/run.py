"""``biosig-edge run``: the main job, train, export and validate a task."""

from __future__ import annotations

import sys

from pipeline.cli.common import (
    budget_exit,
    budget_options,
    budget_overrides,
    data_dir,
    number,
    profile,
    progress_bar,
    run_folder,
    run_out,
    task,
)


def _recommendation_lines(report: dict) -> str:
    """The recommendation per target in words (no internal names, no None)."""
    rec = report["recommendation"]
    lines = []
    for key in ("raspberry_pi_cpu", "microcontroller"):
        r = rec[key]
        what = r["artifact"] or ("nothing can be recommended" if r.get("judged", True) else "nothing validated")
        lines.append(f"recommended for the {r['label']}: {what} ({r['reason']})")
    return "\n".join(lines)


def cmd_run(args) -> int:
    """The main job: train, export, validate; exit 1 if a target is left without a
    recommendation (see pipeline/validate/budgets.py)."""
    import time

    from pipeline.export.export import export_run
    from pipeline.export.report import format_export
    from pipeline.manifest import read_manifest
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task
    from pipeline.validate.validate import QUICK_SECONDS, quick_artifacts, validate

    t0 = time.perf_counter()
    cfg = load_config(args.task, args.profile)
    run_dir = train_task(cfg, run_folder(cfg, args.out), args.data_dir)
    print((run_dir / "metrics.md").read_text())
    t_train = time.perf_counter()
    artifacts = export_run(
        run_dir, run_dir / "artifacts", args.data_dir, eval_limit=args.eval_limit if args.profile == "quick" else 0
    )
    manifest = read_manifest(artifacts)
    print(format_export(manifest))
    t_export = time.perf_counter()
    # The quick job streams what one would ship (float and int8 of each interpreter, and
    # the generated C for both targets) over the first QUICK_SECONDS of every held-out
    # recording (every patient, a part of each; the report marks it as a subset); the full
    # job streams every artifact over the whole split.
    quick = args.profile == "quick"
    report_dir, report = validate(
        artifacts,
        args.data_dir,
        args.budget,
        run_dir / "validation",
        artifacts=quick_artifacts(manifest) if quick else None,
        seconds=QUICK_SECONDS if quick else None,
        log=lambda m: print(m, file=sys.stderr),
        progress=progress_bar("reading held-out recordings"),
        target=args.target,
        budget_overrides=budget_overrides(args),
    )
    t_validate = time.perf_counter()
    split = report["split"]
    if quick:
        print(
            f"\nquick profile: {len(report['rows'])} artifacts streamed over the first {QUICK_SECONDS:.0f} s of each of "
            f"{len(split['recordings'])} held-out recordings ({split['signal_s'] / 3600:.2f} h of signal); "
            f"'biosig-edge validate {artifacts}' streams every artifact over the whole split"
        )
    print("\n" + _recommendation_lines(report))
    load = report["machine"]["load"]
    print(
        f"\nmachine load while measuring: 1-min load average up to {load['load1_max']:.1f} on {load['cpus']} CPUs, "
        f"calibration loop spread {load['calibration_spread']:.2f}x: "
        + ("BUSY (absolute latency limits reported, not counted)" if load["loaded"] else "quiet")
    )
    example = {"mitdb": "mitdb:100", "bonn": "bonn:E_S/S001"}.get(cfg.dataset, "eegmat:Subject00")
    print(
        f"\nrun folder: {run_dir}\nartifacts:  {artifacts}\nreport:     {report_dir / 'report.html'} "
        f"(and report.md, report.json)\n"
        f"stream it:  biosig-edge stream {artifacts} {example}\n"
        f"done in {(t_validate - t0) / 60:.1f} min (train {(t_train - t0) / 60:.1f}, export "
        f"{(t_export - t_train) / 60:.1f}, validate {(t_validate - t_export) / 60:.1f})"
    )
    return budget_exit(report)


def add_parser(sub) -> None:
    """``run``."""
    p = sub.add_parser(
        "run",
        parents=[task(), profile("quick"), run_out(), budget_options(), data_dir()],
        help="the main job: train a task, export it, validate the artifacts",
        description="Train TASK with a profile, export it (TFLite, ONNX, generated C, "
        "streaming graphs, each checked against the float model), then "
        "validate: stream the artifacts over the held-out split (quick: the "
        "float and int8 model of each interpreter and the generated C, over the "
        "first minutes of every held-out recording; full: every artifact over "
        "the whole split) and write the report (RUN/validation/report.html). "
        "Exit code 1 if a target (CPU, microcontroller) is left with no artifact "
        "that meets the task's budget.",
    )
    p.add_argument(
        "--eval-limit",
        type=number(0, 1e9, above=False, integer=True),
        default=5000,
        help="quick profile: export checks on a stratified subset of this many test windows",
    )
    p.set_defaults(func=cmd_run)
