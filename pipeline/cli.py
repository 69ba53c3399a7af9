"""``biosig-edge``: the command line.

Every user error (missing data, altered file, bad config) ends with a one-line message
naming the file and the problem, and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING

from pipeline.errors import BiosigError
from pipeline.read.cards import DATASETS

if TYPE_CHECKING:
    from pipeline.runtime.sinks import Sink
    from pipeline.runtime.sources import Source


def _progress(desc: str):
    """A tqdm progress bar on stderr when it is a terminal; silent otherwise."""

    def wrap(items):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="file", leave=False, disable=not sys.stderr.isatty())

    return wrap


def cmd_data_check(args) -> int:
    from pipeline.read.summary import check_dataset

    bad = 0
    for name in args.datasets or DATASETS:
        result = check_dataset(name, args.data_dir, progress=_progress(f"checking {name}"))
        status = "OK" if not result["problems"] else f"{len(result['problems'])} problem(s)"
        print(f"{name}: {status}  ({result['folder']}, against {result['checksum_list']})")
        for problem in result["problems"]:
            print(f"  {problem}")
        bad += len(result["problems"])
    return 1 if bad else 0


def cmd_data_summary(args) -> int:
    from pipeline.read.summary import SUMMARIES, format_summary

    out = {}
    for name in args.datasets or DATASETS:
        out[name] = SUMMARIES[name](args.data_dir, progress=_progress(f"reading {name}"))
        if not args.json:
            print(format_summary(out[name]), end="\n\n")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def cmd_data_fetch(args) -> int:
    from pipeline.read.cards import load_card
    from pipeline.read.locate import cache_root, fetch

    for name in args.datasets or DATASETS:
        target = cache_root() / name
        if target.is_dir() and any(target.iterdir()):
            print(f"{name}: already in {target}")
            continue
        print(f"{name}: downloading into {target} ...")
        fetch(load_card(name), target)
        print(f"{name}: done")
    return 0


def _run_dir(cfg, out: str | None):
    """The run folder: --out, or runs/<task>-<profile>-<time>."""
    import time
    from pathlib import Path

    return Path(out) if out else Path("runs") / f"{cfg.task}-{cfg.profile}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train(args) -> int:
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task

    cfg = load_config(args.config or args.task, args.profile)
    run_dir = train_task(cfg, _run_dir(cfg, args.out), args.data_dir)
    print((run_dir / "metrics.md").read_text())
    print(f"run folder: {run_dir}")
    return 0


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


def cmd_export(args) -> int:
    from pipeline.export.export import export_run
    from pipeline.export.report import format_export

    out = export_run(
        args.run_dir,
        args.out,
        args.data_dir,
        eval_limit=args.eval_limit,
        representative_size=args.representative,
        force=args.force,
        stream_eval=args.stream_eval,
    )
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    print(format_export(manifest))
    print(f"artifact folder: {out}")
    missed = [k for k, v in manifest["targets"].items() if not v["met"]]
    if missed:
        print(f"WARNING: targets missed: {', '.join(missed)} (see the table above)", file=sys.stderr)
    return 0


def _channels_option(text: str | None) -> tuple[list[str] | None, dict[str, str]]:
    """``--channels``: input labels (``ECG1,ECG2``) or a mapping (``MLII=ECG1,V1=ECG2``),
    whose values, in order, also label a bare input's columns."""
    from pipeline.errors import ChannelError
    from pipeline.read.channels import parse_mapping

    if not text:
        return None, {}
    items = [t.strip() for t in text.split(",") if t.strip()]
    with_eq = [t for t in items if "=" in t]
    if with_eq and len(with_eq) != len(items):
        raise ChannelError(f"--channels '{text}': either labels (ECG1,ECG2) or a mapping (MLII=ECG1,V1=ECG2), not both")
    if with_eq:
        mapping = parse_mapping(text)
        return list(mapping.values()), mapping
    return items, {}


def open_input(args, manifest) -> "Source":
    """The source ``args.record`` names (see ``stream --help`` for the rule), with its
    rate, units and channels declared."""
    from pipeline.errors import SamplingRateError
    from pipeline.read.record import SignalSpec
    from pipeline.read.units import UnitError
    from pipeline.runtime.sources import RecordSource, StdinSource, is_live

    labels, _ = _channels_option(args.channels)
    arg = args.record
    if is_live(arg):
        return open_live_input(args, manifest)
    if arg == "-":
        if args.fs is None:
            raise SamplingRateError(
                "stdin does not say its sampling rate: give --fs HZ (the rate the "
                "samples were taken at; they are resampled to the model's if it differs)"
            )
        if args.units is None:
            raise UnitError(
                f"stdin does not say its units: give --units (the model takes {manifest.input.units}; "
                f"mV, uV, V ...; with --gain for converter counts)"
            )
        labels = labels or list(manifest.channels)
        try:
            spec = SignalSpec(float(args.fs), tuple(labels), (args.units,) * len(labels))
        except ValueError as err:
            raise SamplingRateError(f"stdin: {err}") from None
        return StdinSource(spec, args.format, args.gain, args.bad_lines)
    from pipeline.read.files import is_recording_path, read_recording

    try:
        if ":" in arg and arg.split(":")[0] in DATASETS:
            from pipeline.read.datasets import dataset_record

            return RecordSource(dataset_record(arg, data_dir=args.data_dir))
        path = is_recording_path(arg)
        if path is not None:
            wanted = labels
            if path.suffix.lower() in (".edf", ".bdf"):
                # Read only the channels the model takes (others may run at other rates).
                from pipeline.read.channels import resolve_channels
                from pipeline.read.files import recording_channels

                have = recording_channels(path)
                _, mapping = _channels_option(args.channels)
                idx = resolve_channels(
                    list(manifest.channels), have, manifest.input.channel_aliases, mapping, str(path)
                )
                wanted = [have[i] for i in idx]
            return RecordSource(
                read_recording(
                    path,
                    fs_hz=args.fs,
                    units=args.units,
                    gain=args.gain,
                    channels=wanted,
                    mat_var=args.mat_var,
                    annotator=None,
                )
            )
        from pipeline.read.datasets import ADAPTERS, dataset_record

        own = manifest.raw.get("dataset")
        if own in ADAPTERS and ADAPTERS[own].is_id(arg):
            return RecordSource(dataset_record(arg, own, args.data_dir))
    except ImportError as err:
        raise BiosigError(
            f"{arg}: reading it needs the readers of the 'data' extra (pip install 'biosig-edge[data]'): {err}"
        ) from None
    from pathlib import Path

    hint = f" or a record of {own} ({own}:{ADAPTERS[own].example})" if own in ADAPTERS else ""
    raise BiosigError(f"{arg}: no such file (nor {Path(arg).name}.hea){hint}")


def open_live_input(args, manifest) -> "Source":
    """A live source (``lsl:``, ``brainflow:``, ``serial:``): what it is comes from its own
    description where it has one, from --fs/--units/--channels/--format/--gain where not."""
    from pipeline.runtime.sources import open_live

    labels, mapping = _channels_option(args.channels)
    return open_live(
        args.record,
        fs_hz=args.fs,
        units=args.units,
        labels=labels,
        labels_map=bool(mapping),
        fmt=args.format,
        gain=args.gain,
        baud=args.baud,
        wait_s=args.wait_s,
        group="ecg" if manifest.kind == "ecg-beats" else "eeg",
    )


def open_sinks(args, manifest, clock: str) -> list[Sink]:
    """Where ``stream`` sends its events: stdout (``--to jsonl``), ``--jsonl FILE`` (rotated)
    and ``--lsl-outlet NAME``."""
    from pipeline.runtime.sinks import JsonLinesSink, LSLOutletSink, RotatingJsonlSink

    if args.to == "none" and not (args.jsonl or args.lsl_outlet):
        raise BiosigError("--to none: the events would go nowhere; add --jsonl FILE or --lsl-outlet NAME")
    sinks: list[Sink] = [JsonLinesSink()] if args.to == "jsonl" else []
    if args.jsonl:
        sinks.append(RotatingJsonlSink(args.jsonl, int(args.jsonl_max_mb * 1e6), args.jsonl_keep))
    if args.lsl_outlet:
        sinks.append(
            LSLOutletSink(
                args.lsl_outlet,
                clock,
                {"kind": manifest.kind, "artifact": args.artifact or "", "classes": list(manifest.classes)},
            )
        )
    return sinks


def cmd_stream(args) -> int:
    from tqdm import tqdm

    from pipeline.manifest import read_manifest
    from pipeline.runtime.live import StreamRunner, format_summary
    from pipeline.runtime.session import open_session
    from pipeline.runtime.shipped import resolve_artifact_dir

    # A shipped model by name verifies against the key it ships with, unless the user names one.
    args.artifact_dir, shipped_key = resolve_artifact_dir(args.artifact_dir)
    manifest = read_manifest(args.artifact_dir, trusted_key=args.trusted_key or shipped_key)
    # Sinks first: an LSL outlet of decisions is announced before the source is waited for.
    sinks = open_sinks(args, manifest, "lsl" if args.record.lower().startswith("lsl:") else "unix")
    source = None
    try:
        from pipeline.read.files import input_notes

        with input_notes() as notes:
            source = open_input(args, manifest)
        for note in notes:
            print(f"biosig-edge: note: {note}", file=sys.stderr)
        _, mapping = _channels_option(args.channels)
        from pipeline.runtime.sources import LiveSource

        # A live source arrives at its own pace: every chunk is processed as it comes (no
        # gathering of short pushes, which would only add latency there).
        live = isinstance(source, LiveSource) or args.realtime
        session = open_session(
            args.artifact_dir,
            args.artifact,
            source=source.spec,
            channel_map=mapping,
            withhold_unusable=args.withhold,
            manifest=manifest,
            **({"block_s": 0} if live else {}),
        )
        print(
            f"biosig-edge: {getattr(source, 'description', source.name)}: {session.describe_input()}; "
            f"model {session.artifact}",
            file=sys.stderr,
            flush=True,
        )
        bar = tqdm(unit="s", disable=not sys.stderr.isatty(), desc="streaming")

        def progress(seconds, counts):
            bar.update(seconds)
            bar.set_postfix(dict(counts))

        runner = StreamRunner(
            source,
            session,
            sinks,
            chunk_s=args.chunk_s,
            realtime=args.realtime,
            stall_s=args.stall_s,
            reconnect=args.reconnect,
            duration_s=args.duration_s,
            on_push=progress,
        )
        try:
            runner.run()
        finally:
            bar.close()
            for line in format_summary(runner.summary(), session.artifact):
                print(line, file=sys.stderr)
    finally:
        for sink in sinks:
            sink.close()
        if source is not None:
            source.close()
    return 0


def cmd_replay(args) -> int:
    import signal

    from pipeline.manifest import read_manifest
    from pipeline.runtime.live import replay_to_lsl
    from pipeline.runtime.sources import RecordSource, is_live

    manifest = read_manifest(args.artifact_dir)
    source = None if args.record == "-" or is_live(args.record) else open_input(args, manifest)
    if not isinstance(source, RecordSource):
        raise BiosigError(
            f"{args.record}: replay publishes a recording (a file or a dataset record), not a live source or stdin"
        )
    record = source.record
    kind = "ECG" if manifest.kind == "ecg-beats" else "EEG"
    stop = {"reason": None}

    def on_signal(signum, frame):
        stop["reason"] = signal.Signals(signum).name

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done = replay_to_lsl(
            record,
            args.name or f"biosig-edge-{record.record_id}".replace("/", "-"),
            kind,
            speed=args.speed,
            chunk_s=args.chunk_s,
            wait_s=args.wait_s,
            seconds=args.seconds,
            linger_s=args.linger_s,
            stop=lambda: stop["reason"] is not None,
        )
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    print(
        f"published {done['seconds']:.1f} s of {record.record_id} in {done['elapsed_s']:.1f} s"
        + (f" (stopped by {stop['reason']})" if stop["reason"] else ""),
        file=sys.stderr,
    )
    return 0


def _record_options(args) -> dict:
    """What ``validate --records`` needs to read the user's files: a bare-number file's
    rate, units and gain, and ``--channels`` as ``stream`` takes it (labels for the
    columns, or MODEL=INPUT mappings)."""
    labels, mapping = _channels_option(args.channels)
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
        progress=_progress("recordings streamed on Ray" if args.ray or args.address else "reading recordings"),
        log=lambda m: print(m, file=sys.stderr),
        records=args.records,
        record_options=_record_options(args),
        withhold=args.withhold,
        target=args.target,
        budget_overrides=_budget_overrides(args),
        ray=args.ray,
        address=args.address,
        workers=args.workers,
    )
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.html'}  (also report.md, report.json)")
    return _budget_exit(report)


def _budget_overrides(args) -> dict:
    """Budget limits set on the command line (they count like the user's own budget file)."""
    return {} if args.max_p99_latency_ms is None else {"max_p99_latency_ms": args.max_p99_latency_ms}


def _budget_exit(report: dict) -> int:
    """Name every budget miss on stderr (each makes its artifact not recommended, or is
    only reported); exit code 1 if a target is left without a recommendation."""
    from pipeline.validate.budgets import describe_miss

    for b in report["budget_results"]:
        if b["passed"]:
            continue
        if b.get("counted", True):
            print(f"BUDGET MISSED (not recommended): {b['artifact']}: {describe_miss(b)} ({b['key']})", file=sys.stderr)
        else:
            print(f"reported, not judged: {b['artifact']}: {describe_miss(b)} ({b.get('note', '')})", file=sys.stderr)
    for failure in report.get("failures", []):
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if report.get("failures") else 0


def _recommendation_lines(report: dict) -> str:
    """The recommendation per target in words (no internal names, no None)."""
    rec = report["recommendation"]
    lines = []
    for key in ("raspberry_pi_cpu", "microcontroller"):
        r = rec[key]
        what = r["artifact"] or ("nothing can be recommended" if r.get("judged", True) else "nothing validated")
        lines.append(f"recommended for the {r['label']}: {what} ({r['reason']})")
    return "\n".join(lines)


def cmd_keys(args) -> int:
    from pipeline.manifest import new_keypair

    private, public = new_keypair(args.folder, args.name)
    print(
        f"private key: {private} (keep it off devices; mode 0600)\npublic key:  {public} (give it to devices: "
        f"--trusted-key {public}, or BIOSIG_EDGE_TRUSTED_KEY)"
    )
    return 0


def cmd_sign(args) -> int:
    from pipeline.manifest import sign_folder

    print(f"signed: {sign_folder(args.artifact_dir, args.key)}")
    return 0


def cmd_run(args) -> int:
    """The main job: train, export, validate; exit 1 if a target is left without a
    recommendation (see pipeline/validate/budgets.py)."""
    import time

    from pipeline.export.export import export_run
    from pipeline.export.report import format_export
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task
    from pipeline.validate.validate import QUICK_SECONDS, quick_artifacts, validate

    t0 = time.perf_counter()
    cfg = load_config(args.task, args.profile)
    run_dir = train_task(cfg, _run_dir(cfg, args.out), args.data_dir)
    print((run_dir / "metrics.md").read_text())
    t_train = time.perf_counter()
    artifacts = export_run(
        run_dir, run_dir / "artifacts", args.data_dir, eval_limit=args.eval_limit if args.profile == "quick" else 0
    )
    print(format_export(json.loads((artifacts / "manifest.json").read_text())))
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
        artifacts=quick_artifacts(json.loads((artifacts / "manifest.json").read_text())) if quick else None,
        seconds=QUICK_SECONDS if quick else None,
        log=lambda m: print(m, file=sys.stderr),
        progress=_progress("reading held-out recordings"),
        target=args.target,
        budget_overrides=_budget_overrides(args),
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
    return _budget_exit(report)


def _add_budget_options(p: argparse.ArgumentParser) -> None:
    """--budget, --target and --max-p99-latency-ms, shared by validate and run."""
    from pipeline.validate.budgets import TARGETS

    p.add_argument("--budget", help="TOML file of limits (default: pipeline/validate/budgets/<task>.toml)")
    p.add_argument(
        "--target",
        choices=list(TARGETS),
        help="judge absolute latency on this target: this run's latencies scaled by the calibration loop "
        "measured alongside them (the assumption is written in the report); without it, absolute latency "
        "is reported, not judged, unless you set it",
    )
    p.add_argument(
        "--max-p99-latency-ms",
        type=number(0.0, 1e6),
        help="hold every artifact to this p99 latency per decision (ms, on this machine or the --target)",
    )


#: The longest push ``--chunk-s`` may ask for: a push is held in memory whole (60 s of 21
#: channels at the highest rate the resampler takes is ~1 GB), and longer ones gain nothing.
MAX_CHUNK_S = 60.0


def number(low: float = -math.inf, high: float = math.inf, *, above: bool = True, integer: bool = False, nonzero=False):
    """An argparse ``type=`` for a numeric option: a finite number (an integer with
    ``integer``) above ``low`` (at least ``low`` with ``above=False``), at most ``high``,
    not 0 with ``nonzero``. NaN, infinity, a wrong sign or a size that would exhaust memory
    is refused by argparse in one line, exit 2, before any work; every subcommand's numeric
    options take one of these."""

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if integer else 'a number'}: {text!r}") from None
        if (
            math.isfinite(value)
            and (value > low if above else value >= low)
            and value <= high
            and not (nonzero and value == 0)
        ):
            return value
        bounds = []
        if low > -math.inf:
            bounds.append(f"{'above' if above else 'at least'} {low:g}")
        if high < math.inf:
            bounds.append(f"at most {high:g}")
        if nonzero:
            bounds.append("not 0")
        kind = "integer" if integer else "number"
        raise argparse.ArgumentTypeError(
            f"must be a finite {kind}{' ' if bounds else ''}{' and '.join(bounds)}, got {text!r}"
        )

    parse.__name__ = "integer" if integer else "number"
    return parse


def seconds(high: float = math.inf, *, zero: bool = False):
    """A duration option in seconds: finite, above 0 (or at least 0 with ``zero``), at most ``high``."""
    return number(0.0, high, above=not zero)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biosig-edge", description="LSTM models of ECG and EEG recordings, from the recordings to small devices."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser(
        "data",
        help="check, summarise or fetch the recordings",
        description="Work with the three databases: mitdb, bonn, eegmat.",
    )
    data_sub = data.add_subparsers(dest="data_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "datasets",
        nargs="*",
        choices=[[], *DATASETS],
        metavar="DATASET",
        help=f"one or more of {', '.join(DATASETS)} (default: all)",
    )
    common.add_argument(
        "--data-dir",
        help="folder holding mitdb/, bonn/, eegmat/ (default: $BIOSIG_EDGE_DATA, then ../shared/data, then the cache)",
    )

    p = data_sub.add_parser(
        "check",
        parents=[common],
        help="verify every file against its sha256",
        description="Verify every file of each dataset against the checksum "
        "list named in its card (datasets/*.toml). Exit 1 if any "
        "file is missing or altered.",
    )
    p.set_defaults(func=cmd_data_check)
    p = data_sub.add_parser(
        "summary",
        parents=[common],
        help="counts per class, per record or subject, per split",
        description="Counts per class, per record or subject, and per train/val/test split, read from the recordings.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_data_summary)
    p = data_sub.add_parser(
        "fetch",
        parents=[common],
        help="download from the publishers into the cache",
        description="Download datasets from their publishers into the cache "
        "folder ($BIOSIG_EDGE_CACHE or ~/.cache/biosig-edge). "
        "Needs internet access.",
    )
    p.set_defaults(func=cmd_data_fetch)
    p = sub.add_parser(
        "train",
        help="train an LSTM on a task and test it on held-out data",
        description="Train a causal LSTM classifier on a task's training split, "
        "select the epoch on its validation split, test on the held-out "
        "split, and write a run folder (model.keras, run.json, "
        "metrics.json/.md, curves.png, confusion.png).",
    )
    p.add_argument("task", help="ecg-mitdb, eeg-bonn or eeg-eegmat (configs in pipeline/train/configs/)")
    p.add_argument(
        "--profile",
        default="full",
        choices=["quick", "full"],
        help="quick: minutes on 2 cores; full: the benchmark run (default)",
    )
    p.add_argument("--config", help="a TOML file to use instead of the task's own")
    p.add_argument("--out", help="run folder (default: runs/<task>-<profile>-<time>)")
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "sweep",
        help="search hyper-parameters on Ray Tune, each trial scored by record-level CV",
        description="Run TRIALS trials of a task's config on Ray Tune (local Ray on this "
        "machine, or the cluster at --address), each scored by k-fold CV by "
        "record inside the training split (the held-out split is never read); "
        "write the best config as a TOML file that 'train --config' takes.",
    )
    p.add_argument("task", help="a task with data.cv_folds set (ecg-mitdb, ecg-mitdb-1lead)")
    p.add_argument("--trials", type=number(0, 10_000, integer=True), default=8, help="number of trials (default 8)")
    p.add_argument("--address", help="a running Ray cluster, HOST:PORT or ray://HOST:PORT (default: local Ray, 2 CPUs)")
    p.add_argument(
        "--space",
        help='TOML search space: {"section.key": {choice|uniform|loguniform|randint: args}} '
        "over train.* and model.* keys (default: pipeline.train.sweep.DEFAULT_SPACE)",
    )
    p.add_argument("--profile", default="full", choices=["quick", "full"], help="the config trials start from")
    p.add_argument("--out", help="best config TOML (default: runs/sweep-<task>-<time>.toml)")
    p.add_argument("--data-dir", help="folder holding mitdb/")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "export",
        help="quantise and export a run to TFLite, ONNX and C",
        description="Convert a run folder's model to TFLite (float32, float16, "
        "dynamic-range int8, full int8 calibrated on the training split, "
        "16x8 where supported), ONNX (float32, dynamic int8), a C array "
        "of the int8 model for TFLM and generated C99 (float32, int8); run "
        "each in its runtime (the C compiled with gcc) on the test "
        "split against the float model; write manifest.json with sha256s.",
    )
    p.add_argument("run_dir", help="a run folder from 'biosig-edge train'")
    p.add_argument("--out", help="artifact folder (default: RUN_DIR/artifacts)")
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/")
    p.add_argument(
        "--eval-limit",
        type=number(0, 1e9, above=False, integer=True),
        default=0,
        help="evaluate on a stratified subset of this many test windows (default: all)",
    )
    p.add_argument(
        "--representative",
        type=number(0, 1e7, integer=True),
        default=500,
        help="training windows used to calibrate full int8 (default: 500)",
    )
    p.add_argument(
        "--stream-eval",
        type=number(0, 1e7, above=False, integer=True),
        default=500,
        help="test windows run chunk by chunk through each streaming variant (default: 500)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing artifact folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "stream",
        help="stream a recording (any file, a dataset record or stdin) through a model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stream samples through a device-side session (the model's causal filter; for ECG "
        "Pan-Tompkins beat detection, RR features and the beat template; the exported model) "
        "and print one JSON line per event: decisions, each with its quality, and "
        "signal-quality events.",
        epilog="""INPUT is, in this order:
  -              raw samples on stdin: needs --fs and --units (and --gain for converter counts);
                 columns are the model's channels in order unless --channels labels them
  DATASET:ID     a record of a built-in dataset: mitdb:100, bonn:E_S/S001, eegmat:Subject00
  a path         any file on disk: WFDB (dir/rec or dir/rec.hea, any database), EDF/BDF,
                 CSV/TXT (--fs, --units; a header row names the columns), NPY (--fs, --units),
                 MATLAB .mat v7 or older (--fs, --units; --mat-var if it holds several arrays)
  ID             a record of the model's own dataset (100 for an MIT-BIH model), if no file
                 of that name exists
  lsl:NAME       a Lab Streaming Layer stream by name, or lsl:QUERY (an XPath predicate such
                 as lsl:type='EEG'): rate, labels and units from its description
                 (irregular-rate streams are refused); LSL timestamps kept
  brainflow:BOARD[,key=value...]
                 a BrainFlow board (synthetic, CYTON_BOARD, ... or its id) with BrainFlow's
                 input parameters (serial_port=..., ip_address=...) and channels=eeg|ecg|...:
                 rate, rows and names from BrainFlow's board descriptor
  serial:DEVICE  a serial port (/dev/ttyACM0): needs --fs, --units, --channels; --format
                 text (lines) or i16le/f32le (frames: sync 0xA5, sequence byte, sample,
                 CRC-8; see pipeline/runtime/sources/serial.py); --baud

Rate, units and channels are always known before a sample reaches the model: from the
file's header or from the options. Another rate is resampled to the model's (refused
below the lowest rate the model's band needs), units are converted, channels are taken
by name (the model's aliases, e.g. ECG1 for MLII) or by --channels.

Every event carries source_ts (the source's timestamp of its last input sample),
decided_at (local Unix time) and latency_s; the latency distribution is printed on exit.
SIGTERM/SIGINT flush the events, print the summary and exit 0. A live source that sends
nothing for --stall-s gives a "gap" event (the state restarts when samples return); one
that disappears ends the stream, or with --reconnect is reopened with backoff.

examples:
  biosig-edge stream ART 100
  biosig-edge stream ART lsl:OpenBCI --channels MLII=ExG1 --lsl-outlet decisions
  biosig-edge stream ART brainflow:synthetic --channels EEG=Fz --duration-s 60
  biosig-edge stream ART serial:/dev/ttyACM0 --fs 500 --units mV --channels ECG1,ECG2
      --format i16le --gain 200 --jsonl /var/log/biosig/events.jsonl --to none --reconnect
  biosig-edge stream ART holter/rec01 --channels MLII=ECG1,V1=ECG2
  biosig-edge stream ART - --fs 250 --units mV < samples.txt
  biosig-edge stream ART - --fs 500 --units uV --format i16le --gain 10 < frames.bin""",
    )
    p.add_argument(
        "artifact_dir",
        metavar="ART",
        help="artifact folder from 'biosig-edge export', or the name of a model shipped with the package "
        "(signed; e.g. ecg-mitdb-1lead: stream with no training)",
    )
    p.add_argument(
        "record",
        metavar="INPUT",
        help="'-', DATASET:ID, a file, an id of the model's dataset, lsl:NAME, "
        "brainflow:BOARD or serial:DEVICE (below)",
    )
    p.add_argument(
        "--artifact", default=None, help="model to run (default tflite_float32 for ECG, stream_tflite_float32 for EEG)"
    )
    p.add_argument("--fs", type=number(0.0), help="sampling rate of stdin/CSV/NPY/MAT input, Hz")
    p.add_argument("--units", help="units of stdin/CSV/NPY/MAT input (mV, uV, V; counts: with --gain)")
    p.add_argument("--channels", help="input labels (ECG1,ECG2) or a mapping MODEL=INPUT (MLII=ECG1,V1=ECG2)")
    p.add_argument(
        "--format",
        default="text",
        choices=["text", "f32le", "i16le"],
        help="stdin: text lines, or binary little-endian float32/int16 frames (default text)",
    )
    p.add_argument(
        "--gain", type=number(nonzero=True), help="converter counts per unit (i16le, or counts in text/CSV/NPY/MAT)"
    )
    p.add_argument("--mat-var", help="the variable of a .mat file holding the signal")
    p.add_argument(
        "--bad-lines",
        default="error",
        choices=["error", "gap"],
        help="stdin text: a line that is not numbers stops the stream (error, exit 2, after "
        "everything before it) or becomes a gap (default error)",
    )
    p.add_argument(
        "--withhold",
        action="store_true",
        help="emit decisions judged unusable without class or probabilities (default: flag them)",
    )
    p.add_argument(
        "--trusted-key",
        help="Ed25519 public key (PEM) the artifact folder must be signed with (default $BIOSIG_EDGE_TRUSTED_KEY)",
    )
    p.add_argument(
        "--chunk-s",
        type=seconds(MAX_CHUNK_S),
        default=1.0,
        help=f"seconds per push (default 1.0, at most {MAX_CHUNK_S:g})",
    )
    p.add_argument("--realtime", action="store_true", help="pace the replay at the sampling rate")
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/ (dataset records)")
    live = p.add_argument_group("live sources and sinks")
    live.add_argument(
        "--to",
        default="jsonl",
        choices=["jsonl", "none"],
        help="events as JSON lines on stdout (jsonl, default) or not at all (none: with --jsonl or --lsl-outlet)",
    )
    live.add_argument(
        "--jsonl",
        metavar="FILE",
        help="also append events to FILE, each line flushed; rotated by size (FILE.1, FILE.2 ...)",
    )
    live.add_argument(
        "--jsonl-max-mb", type=number(0.0, 1e6), default=50.0, help="rotate --jsonl FILE at this size (default 50)"
    )
    live.add_argument(
        "--jsonl-keep",
        type=number(1, 1000, above=False, integer=True),
        default=5,
        help="rotated files kept (default 5)",
    )
    live.add_argument(
        "--lsl-outlet",
        metavar="NAME",
        help="publish events as an LSL marker stream NAME (JSON strings: class, probs, quality ...), "
        "each timestamped with the LSL time of the decision's last input sample",
    )
    live.add_argument(
        "--stall-s",
        type=seconds(),
        default=5.0,
        help="a live source silent this long gives a 'gap' event and the state restarts (default 5)",
    )
    live.add_argument(
        "--reconnect",
        action="store_true",
        help="reopen a live source that disappears, with backoff (0.5 s doubling to 30 s); default: end cleanly",
    )
    live.add_argument(
        "--wait-s",
        type=seconds(zero=True),
        default=10.0,
        help="wait this long for an LSL stream to appear (default 10)",
    )
    live.add_argument("--baud", type=number(0, integer=True), default=115200, help="serial line speed (default 115200)")
    live.add_argument("--duration-s", type=seconds(), help="stop after this many seconds of signal")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser(
        "replay",
        help="publish a recording as an LSL stream at its real pace (or N times it)",
        description="Publish a recording (any INPUT 'stream' reads except stdin and live sources) "
        "as an LSL outlet: its channels, labels, units and rate in the stream's "
        "description, each sample timestamped on the LSL clock when it is pushed, at "
        "the recording's pace times --speed. For demos and tests: "
        "'biosig-edge stream ART lsl:NAME' reads it back.",
        epilog="example: biosig-edge replay ART mitdb:100 --speed 20 --name ecg-demo",
    )
    p.add_argument(
        "artifact_dir",
        help="artifact folder (its dataset resolves bare record ids; its kind sets the stream type ECG/EEG)",
    )
    p.add_argument("record", metavar="RECORD", help="DATASET:ID, a file, or an id of the model's dataset")
    p.add_argument("--to", default="lsl", choices=["lsl"], help="where to publish (lsl)")
    p.add_argument("--name", help="LSL stream name (default biosig-edge-RECORD)")
    p.add_argument("--speed", type=number(0.0, 1e6), default=1.0, help="times real time (default 1)")
    p.add_argument(
        "--chunk-s", type=seconds(MAX_CHUNK_S), default=0.02, help="seconds of signal per push (default 0.02)"
    )
    p.add_argument("--seconds", type=seconds(), help="only the first SECONDS of the recording")
    p.add_argument(
        "--wait-s",
        type=seconds(zero=True),
        default=0.0,
        help="wait up to this long for a consumer before the first sample (default: start at once)",
    )
    p.add_argument(
        "--linger-s",
        type=seconds(zero=True),
        default=2.0,
        help="keep the outlet this long after the last sample, so that inlets drain it (default 2)",
    )
    p.add_argument("--fs", type=number(0.0), help="sampling rate of CSV/NPY/MAT input, Hz")
    p.add_argument("--units", help="units of CSV/NPY/MAT input")
    p.add_argument("--channels", help="channels to read (labels), as for stream")
    p.add_argument("--gain", type=number(nonzero=True), help="converter counts per unit")
    p.add_argument("--mat-var", help="the variable of a .mat file holding the signal")
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/ (dataset records)")
    p.set_defaults(func=cmd_replay, format="text", bad_lines="error", baud=115200)

    p = sub.add_parser(
        "validate",
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
    _add_budget_options(p)
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
    p.add_argument("--fs", type=number(0.0), help="with --records: sampling rate of bare-number files (CSV/NPY/MAT)")
    p.add_argument("--units", help="with --records: units of bare-number files")
    p.add_argument("--gain", type=number(nonzero=True), help="with --records: counts per unit of bare-number files")
    p.add_argument(
        "--channels",
        help="with --records: input labels (ECG1,ECG2) or a mapping MODEL=INPUT (EEG=Fz, EEG=ch1 for a "
        "bare file's first column), as for stream",
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
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "keys",
        help="make an Ed25519 key pair for signing artifact folders",
        description="Write NAME.key (private, mode 0600) and NAME.pub (public) into FOLDER. "
        "Sign folders with the private key ('biosig-edge sign'); give devices the "
        "public one (--trusted-key or $BIOSIG_EDGE_TRUSTED_KEY): they then refuse "
        "folders that are unsigned or signed by another key.",
    )
    p.add_argument("folder", help="where to write the keys")
    p.add_argument("--name", default="biosig-edge", help="file name stem (default biosig-edge)")
    p.set_defaults(func=cmd_keys)
    p = sub.add_parser(
        "sign",
        help="sign an artifact folder (Ed25519)",
        description="Check an artifact folder (manifest, digest, every file's sha256) and sign "
        "its manifest into manifest.sig with an Ed25519 private key.",
    )
    p.add_argument("artifact_dir", help="artifact folder from 'biosig-edge export'")
    p.add_argument("--key", required=True, help="private key (PEM) from 'biosig-edge keys'")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser(
        "run",
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
    p.add_argument("task", help="ecg-mitdb, eeg-bonn or eeg-eegmat")
    p.add_argument("--profile", default="quick", choices=["quick", "full"], help="default: quick")
    p.add_argument("--out", help="run folder (default: runs/<task>-<profile>-<time>)")
    p.add_argument(
        "--eval-limit",
        type=number(0, 1e9, above=False, integer=True),
        default=5000,
        help="quick profile: export checks on a stratified subset of this many test windows",
    )
    _add_budget_options(p)
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BiosigError as err:
        print(f"biosig-edge: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("biosig-edge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
