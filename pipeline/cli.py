"""``biosig-edge``: the command line.

Every user error (missing data, altered file, bad config) ends with a one-line message
naming the file and the problem, and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.errors import BiosigError
from pipeline.read.cards import DATASETS


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

    result = sweep(args.task, args.trials, address=args.address, profile=args.profile,
                   space=load_space(args.space), out=args.out, data_dir=args.data_dir)
    print(f"best config: {result['config']} (train it: biosig-edge train {args.task} --config {result['config']})")
    return 0


def cmd_export(args) -> int:
    from pipeline.export.export import export_run
    from pipeline.export.report import format_export

    out = export_run(args.run_dir, args.out, args.data_dir, eval_limit=args.eval_limit,
                     representative_size=args.representative, force=args.force,
                     stream_eval=args.stream_eval)
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    print(format_export(manifest))
    print(f"artifact folder: {out}")
    missed = [k for k, v in manifest["targets"].items() if not v["met"]]
    if missed:
        print(f"WARNING: targets missed: {', '.join(missed)} (see the table above)", file=sys.stderr)
    return 0


def cmd_stream(args) -> int:
    import time

    import numpy as np

    from pipeline.manifest import load_manifest
    from pipeline.runtime.session import ECGSession, EEGSession

    manifest = load_manifest(args.artifact_dir)
    ecg = manifest["kind"] == "ecg-beats"
    artifact = args.artifact or ("tflite_float32" if ecg else "stream_tflite_float32")
    session = (ECGSession if ecg else EEGSession)(args.artifact_dir, artifact)
    fs_hz = manifest["fs_in_hz"]
    chunk = max(1, int(round(args.chunk_s * fs_hz)))

    def chunks():
        if args.record == "-":
            # Raw samples on stdin: one sample per line, channels separated by blanks or commas.
            rows = []
            for line in sys.stdin:
                if line.strip():
                    rows.append([float(v) for v in line.replace(",", " ").split()])
                if len(rows) == chunk:
                    yield np.asarray(rows)
                    rows = []
            if rows:
                yield np.asarray(rows)
            return
        from pipeline.runtime.replay import read_for

        record = read_for(manifest, args.record, args.data_dir)
        session.pre.check_fs(record.fs_hz, record.source)
        for i in range(0, record.n_samples, chunk):
            yield record.signal[i:i + chunk]

    from collections import Counter

    from tqdm import tqdm

    counts = Counter()
    bar = tqdm(unit="s", disable=not sys.stderr.isatty(), desc="streaming")
    t0 = time.perf_counter()
    seen = 0
    for block in chunks():
        if args.realtime:
            time.sleep(max(0.0, t0 + (seen + len(block)) / fs_hz - time.perf_counter()))
        for event in session.push(block):
            counts[event.get("class", event["type"])] += 1
            print(json.dumps(event), flush=args.realtime)
        seen += len(block)
        bar.update(len(block) / fs_hz)
        bar.set_postfix(dict(counts))
    bar.close()
    elapsed = time.perf_counter() - t0
    print(f"streamed {seen / fs_hz:.0f} s of signal in {elapsed:.2f} s ({seen / fs_hz / max(elapsed, 1e-9):.0f}x "
          f"real time) with {artifact}: {dict(counts)}", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    from pipeline.validate.validate import validate

    out, report = validate(args.artifact_dir, args.data_dir, args.budget, args.out, subset=args.subset,
                           seconds=args.seconds, chunk_s=args.chunk_s, core=args.core,
                           artifacts=args.artifacts, force=args.force,
                           progress=_progress("reading held-out recordings"),
                           log=lambda m: print(m, file=sys.stderr))
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.html'}  (also report.md, report.json)")
    failed = [b for b in report["budget_results"] if not b["passed"]]
    for b in failed:
        print(f"BUDGET FAILED: {b['artifact']}: {b['what']} {b['value']} {b['unit']} "
              f"(limit {b['key']} = {b['limit']})", file=sys.stderr)
    return 1 if failed else 0


def cmd_run(args) -> int:
    """The main job: train, export, validate; exit 1 if an artifact misses its budget."""
    import time

    from pipeline.export.export import export_run
    from pipeline.export.report import format_export
    from pipeline.train.config import load_config
    from pipeline.train.fit import train_task
    from pipeline.validate.validate import validate

    t0 = time.perf_counter()
    cfg = load_config(args.task, args.profile)
    run_dir = train_task(cfg, _run_dir(cfg, args.out), args.data_dir)
    print((run_dir / "metrics.md").read_text())
    artifacts = export_run(run_dir, run_dir / "artifacts", args.data_dir,
                           eval_limit=args.eval_limit if args.profile == "quick" else 0)
    print(format_export(json.loads((artifacts / "manifest.json").read_text())))
    # The quick job streams the artifacts one would ship (float and int8 of each interpreter)
    # to stay within minutes; the full job streams every artifact.
    from pipeline.manifest import shipping_artifacts

    quick = shipping_artifacts(json.loads((artifacts / "manifest.json").read_text())) \
        if args.profile == "quick" else None
    report_dir, report = validate(artifacts, args.data_dir, args.budget, run_dir / "validation", artifacts=quick,
                                  log=lambda m: print(m, file=sys.stderr),
                                  progress=_progress("reading held-out recordings"))
    rec = report["recommendation"]
    print(f"\nrecommended: {rec['raspberry_pi_cpu']['artifact']} on a Raspberry-Pi-class CPU "
          f"({rec['raspberry_pi_cpu']['reason']});\n             {rec['microcontroller']['artifact']} on a "
          f"microcontroller ({rec['microcontroller']['reason']})")
    failed = [b for b in report["budget_results"] if not b["passed"]]
    for b in failed:
        print(f"BUDGET FAILED: {b['artifact']}: {b['what']} {b['value']:.4g} {b['unit']} "
              f"(limit {b['key']} = {b['limit']})", file=sys.stderr)
    print(f"\nrun folder: {run_dir}\nartifacts:  {artifacts}\nreport:     {report_dir / 'report.html'} "
          f"(and report.md, report.json)\n"
          f"stream it:  biosig-edge stream {artifacts} {'100' if cfg.kind == 'ecg-beats' else '-'}\n"
          f"done in {(time.perf_counter() - t0) / 60:.1f} min")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biosig-edge",
        description="LSTM models of ECG and EEG recordings, from the recordings to small devices.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="check, summarise or fetch the recordings",
                          description="Work with the three databases: mitdb, bonn, eegmat.")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("datasets", nargs="*", choices=[[], *DATASETS], metavar="DATASET",
                        help=f"one or more of {', '.join(DATASETS)} (default: all)")
    common.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/ "
                        "(default: $BIOSIG_EDGE_DATA, then ../shared/data, then the cache)")

    p = data_sub.add_parser("check", parents=[common], help="verify every file against its sha256",
                            description="Verify every file of each dataset against the checksum "
                                        "list named in its card (datasets/*.toml). Exit 1 if any "
                                        "file is missing or altered.")
    p.set_defaults(func=cmd_data_check)
    p = data_sub.add_parser("summary", parents=[common],
                            help="counts per class, per record or subject, per split",
                            description="Counts per class, per record or subject, and per "
                                        "train/val/test split, read from the recordings.")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_data_summary)
    p = data_sub.add_parser("fetch", parents=[common], help="download from the publishers into the cache",
                            description="Download datasets from their publishers into the cache "
                                        "folder ($BIOSIG_EDGE_CACHE or ~/.cache/biosig-edge). "
                                        "Needs internet access.")
    p.set_defaults(func=cmd_data_fetch)
    p = sub.add_parser("train", help="train an LSTM on a task and test it on held-out data",
                       description="Train a causal LSTM classifier on a task's training split, "
                                   "select the epoch on its validation split, test on the held-out "
                                   "split, and write a run folder (model.keras, run.json, "
                                   "metrics.json/.md, curves.png, confusion.png).")
    p.add_argument("task", help="ecg-mitdb, eeg-bonn or eeg-eegmat (configs in pipeline/train/configs/)")
    p.add_argument("--profile", default="full", choices=["quick", "full"],
                   help="quick: minutes on 2 cores; full: the benchmark run (default)")
    p.add_argument("--config", help="a TOML file to use instead of the task's own")
    p.add_argument("--out", help="run folder (default: runs/<task>-<profile>-<time>)")
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="search hyper-parameters on Ray Tune, each trial scored by record-level CV",
                       description="Run TRIALS trials of a task's config on Ray Tune (local Ray on this "
                                   "machine, or the cluster at --address), each scored by k-fold CV by "
                                   "record inside the training split (the held-out split is never read); "
                                   "write the best config as a TOML file that 'train --config' takes.")
    p.add_argument("task", help="a task with data.cv_folds set (ecg-mitdb, ecg-mitdb-1lead)")
    p.add_argument("--trials", type=int, default=8, help="number of trials (default 8)")
    p.add_argument("--address", help="a running Ray cluster, HOST:PORT or ray://HOST:PORT (default: local Ray, 2 CPUs)")
    p.add_argument("--space", help="TOML search space: {\"section.key\": {choice|uniform|loguniform|randint: args}} "
                                   "over train.* and model.* keys (default: pipeline.train.sweep.DEFAULT_SPACE)")
    p.add_argument("--profile", default="full", choices=["quick", "full"], help="the config trials start from")
    p.add_argument("--out", help="best config TOML (default: runs/sweep-<task>-<time>.toml)")
    p.add_argument("--data-dir", help="folder holding mitdb/")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("export", help="quantise and export a run to TFLite, ONNX and C",
                       description="Convert a run folder's model to TFLite (float32, float16, "
                                   "dynamic-range int8, full int8 calibrated on the training split, "
                                   "16x8 where supported), ONNX (float32, dynamic int8), a C array "
                                   "of the int8 model for TFLM and generated C99 (float32, int8); run "
                                   "each in its runtime (the C compiled with gcc) on the test "
                                   "split against the float model; write manifest.json with sha256s.")
    p.add_argument("run_dir", help="a run folder from 'biosig-edge train'")
    p.add_argument("--out", help="artifact folder (default: RUN_DIR/artifacts)")
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/")
    p.add_argument("--eval-limit", type=int, default=0,
                   help="evaluate on a stratified subset of this many test windows (default: all)")
    p.add_argument("--representative", type=int, default=500,
                   help="training windows used to calibrate full int8 (default: 500)")
    p.add_argument("--stream-eval", type=int, default=500,
                   help="test windows run chunk by chunk through each streaming variant (default: 500)")
    p.add_argument("--force", action="store_true", help="replace an existing artifact folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("stream", help="replay a recording through the streaming runtime",
                       description="Stream a recording through a device-side session (causal filter; "
                                   "for ECG Pan-Tompkins beat detection, RR features and the beat "
                                   "template; the exported model) and print one JSON line per event.")
    p.add_argument("artifact_dir", help="artifact folder from 'biosig-edge export'")
    p.add_argument("record", help="ECG: an MIT-BIH record id (100) or a WFDB path (dir/rec); Bonn: "
                                  "SET/SEGMENT (E_S/S001); EEGMAT: SubjectNN; or '-' for raw samples "
                                  "on stdin (one line per sample, channels separated by blanks or commas)")
    p.add_argument("--artifact", default=None,
                   help="model to run (default tflite_float32 for ECG, stream_tflite_float32 for EEG): "
                        "any whole-window model for ECG, any stream_* model for EEG, or reference_float32")
    p.add_argument("--chunk-s", type=float, default=1.0, help="seconds per push (default 1.0)")
    p.add_argument("--realtime", action="store_true", help="pace the replay at the sampling rate")
    p.add_argument("--data-dir", help="folder holding mitdb/")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("validate", help="stream every artifact over the held-out split; report and budgets",
                       description="Streams every artifact of an export folder over the task's held-out "
                                   "split through the device-side session (one pinned core, one thread), "
                                   "scores it against the annotations and the float reference, and writes "
                                   "report.html (self-contained, with figures), report.md and report.json. "
                                   "Exit code 1 if an artifact misses a budget (each is named), 2 on bad input.")
    p.add_argument("artifact_dir", help="artifact folder from 'biosig-edge export' (every file's sha256 is checked)")
    p.add_argument("--budget", help="TOML file of limits (default: pipeline/validate/budgets/<task>.toml)")
    p.add_argument("--out", help="report folder (default: RUN/validation beside RUN/artifacts)")
    p.add_argument("--artifacts", nargs="+", help="only these artifacts (the float reference always runs)")
    p.add_argument("--subset", type=int, help="only the first N held-out recordings (a quick look; the "
                                              "report marks it as a subset)")
    p.add_argument("--seconds", type=float, help="only the first S seconds of each recording")
    p.add_argument("--chunk-s", type=float, default=0.05, help="seconds of signal per push (default 0.05)")
    p.add_argument("--core", type=int, help="CPU core to pin every measurement to (default: the lowest allowed)")
    p.add_argument("--force", action="store_true", help="replace an existing report folder")
    p.add_argument("--data-dir", help="folder holding mitdb/, bonn/, eegmat/")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="the main job: train a task, export it, validate the artifacts",
                       description="Train TASK with a profile, export it (TFLite, ONNX, generated C, "
                                   "streaming graphs, each checked against the float model), then "
                                   "validate: stream the artifacts over the held-out split (quick: the "
                                   "float and int8 model of each interpreter; full: every artifact) and "
                                   "write the report (RUN/validation/report.html). Exit code 1 if an "
                                   "artifact misses the task's budget.")
    p.add_argument("task", help="ecg-mitdb, eeg-bonn or eeg-eegmat")
    p.add_argument("--profile", default="quick", choices=["quick", "full"], help="default: quick")
    p.add_argument("--out", help="run folder (default: runs/<task>-<profile>-<time>)")
    p.add_argument("--eval-limit", type=int, default=5000,
                   help="quick profile: export checks on a stratified subset of this many test windows")
    p.add_argument("--budget", help="TOML file of limits (default: pipeline/validate/budgets/<task>.toml)")
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
