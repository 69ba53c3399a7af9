"""``biosig-edge validate``: every artifact streamed over the held-out split, report and budgets."""

from __future__ import annotations

import sys

from pipeline.cli.common import (
    budget_exit,
    budget_options,
    budget_overrides,
    data_dir,
    number,
    progress_bar,
    seconds,
    signal_options,
)
from pipeline.cli.inputs import channels_option


def _record_options(args) -> dict:
    """What ``validate --records`` needs to read the user's files: a bare-number file's
    rate, units and gain, and ``--channels`` as ``stream`` takes it (labels for the
    columns, or MODEL=INPUT mappings)."""
    labels, mapping = channels_option(args.channels)
    return {"fs_hz": args.fs, "units": args.units, "gain": args.gain, "labels": labels, "channel_map": mapping}


def cmd_validate(args) -> int:
    from pipeline.validate.validate import validate

    out, report = validate(
        args.artifact_dir,
        args.data_dir,
        args.budget,
        args.out,
        subset=args.subset,
        seconds=args.seconds,
        chunk_s=args.chunk_s,
        core=args.core,
        artifacts=args.artifacts,
        force=args.force,
        progress=progress_bar("recordings streamed on Ray" if args.ray or args.address else "reading recordings"),
        log=lambda m: print(m, file=sys.stderr),
        records=args.records,
        record_options=_record_options(args),
        withhold=args.withhold,
        target=args.target,
        budget_overrides=budget_overrides(args),
        ray=args.ray,
        address=args.address,
        workers=args.workers,
    )
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.html'}  (also report.md, report.json)")
    return budget_exit(report)


def add_parser(sub) -> None:
    """``validate``."""
    p = sub.add_parser(
        "validate",
        parents=[budget_options(), signal_options("with --records: ", mat_var=False), data_dir()],
        help="stream every artifact over the held-out split; report and budgets",
        description="Streams every artifact of an export folder over the task's held-out "
        "split through the device-side session (one pinned core, one thread), "
        "scores it against the annotations and the float reference, and writes "
        "report.html (self-contained, with figures), report.md and report.json. "
        "An artifact that misses a budget is not recommended (each miss is named); exit code 1 "
        "only if a target (CPU, microcontroller) is left with no artifact to recommend, 2 on bad input. "
        "With --ray or --address, each recording is its own Ray task (a large archive, a cluster).",
    )
    p.add_argument("artifact_dir", help="artifact folder from 'biosig-edge export' (every file's sha256 is checked)")
    p.add_argument("--out", help="report folder (default: RUN/validation beside RUN/artifacts)")
    p.add_argument("--artifacts", nargs="+", help="only these artifacts (the float reference always runs)")
    p.add_argument(
        "--subset",
        type=number(0, 1e6, integer=True),
        help="only the first N held-out recordings (a quick look; the report marks it as a subset)",
    )
    p.add_argument("--seconds", type=seconds(), help="only the first S seconds of each recording")
    p.add_argument("--chunk-s", type=seconds(60.0), default=0.05, help="seconds of signal per push (default 0.05)")
    p.add_argument(
        "--core",
        type=number(0, 4096, above=False, integer=True),
        help="CPU core to pin every measurement to (default: the lowest allowed)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing report folder")
    p.add_argument(
        "--records",
        help="a folder of your own labelled recordings instead of the held-out split: "
        "annotated WFDB records (.hea, .dat, .atr) for ECG; for EEG any files "
        "listed with their class in DIR/labels.csv ('file,label')",
    )
    p.add_argument(
        "--withhold",
        action="store_true",
        help="score with decisions judged unusable withheld (default: flagged and scored)",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="stream on local Ray, one task per recording: the same decisions and scores as the sequential run; "
        "latency then comes from the unpinned workers (its limits reported, not counted; the CPU pick not ranked "
        "by speed); needs pip install '.[sweep]'",
    )
    p.add_argument(
        "--address",
        help="stream on the running Ray cluster at HOST:PORT or ray://HOST:PORT (implies --ray): every worker "
        "reads the recordings (--records, --data-dir) and the artifact folder at the same paths as here, so "
        "the cluster must share them by path, and have this package installed (a cluster with token "
        "authentication also wants RAY_AUTH_MODE=token)",
    )
    p.add_argument(
        "--workers",
        type=number(0, 4096, integer=True),
        help="with --ray: local Ray's CPUs, one recording each at a time (default: every CPU this process may use)",
    )
    p.set_defaults(func=cmd_validate)
