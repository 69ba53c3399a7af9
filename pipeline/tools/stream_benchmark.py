"""Streaming benchmark: time per decision of every backend against this machine's compute
bound and Keras, throughput, decision latency and peak memory per artifact.

    taskset -c 0 python -m pipeline.tools.stream_benchmark ARTIFACT_DIR [--record 100] [--artifacts ...]

Each artifact runs in its own child process that imports only the device side (numpy,
scipy, one interpreter or the C library), so its peak RSS is what a Raspberry Pi process
would hold; Keras ``predict``, what users would do instead, runs in a child of its own (the
only one that imports TensorFlow). Per decision: the backend alone, one call per decision
as the session makes it, on the held-out windows export kept. The compute bound: the
generated C's own microbenchmark (``firmware_export/harness/bench_main.c``, built with the
shared library's flags): a whole window with no Python, no copies, no library call. The
record is read once by the parent and handed over as raw float32 samples. Figures are
printed, never asserted: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pipeline.runtime.measure import latency_summary, measure_in_child

#: Per-decision passes over the 48 kept windows (after one warm-up pass).
DECISION_REPEATS = 20
#: Keras predict calls timed (each tens of milliseconds).
KERAS_CALLS = 24


def run(
    folder: Path,
    artifacts: list[str],
    record: str,
    chunk_s: float,
    data_dir=None,
    throughput_chunk_s: float = 1.0,
    core: int | None = None,
) -> list[dict]:
    from pipeline.manifest import read_manifest
    from pipeline.read.datasets import dataset_record
    from pipeline.validate.heldout import Heldout

    manifest = read_manifest(folder)
    rec = dataset_record(record, manifest.dataset, data_dir)
    rows: list[dict] = []
    with tempfile.NamedTemporaryFile(suffix=".f32") as raw:
        rec.signal.astype(np.float32).tofile(raw.name)
        recordings = [Heldout(record, rec.signal, rec.spec).measure_entry(raw.name)]
        for artifact in artifacts:
            try:  # per decision, throughput pass, then latency pass
                decisions = measure_in_child(
                    {
                        "mode": "decisions",
                        "folder": str(folder),
                        "artifact": artifact,
                        "core": core,
                        "repeats": DECISION_REPEATS,
                    }
                )
                big, r = (
                    measure_in_child(
                        {
                            "folder": str(folder),
                            "artifact": artifact,
                            "chunk_s": size,
                            "core": core,
                            "recordings": recordings,
                        }
                    )
                    for size in (throughput_chunk_s, chunk_s)
                )
            except RuntimeError as e:
                rows.append({"artifact": artifact, "error": str(e)})
                continue
            row: dict = {
                "artifact": artifact,
                "record": record,
                "duration_s": rec.duration_s,
                "beats": big["recordings"][0]["decisions"],
                "seconds": big["push_seconds"],
                "x_real_time": rec.duration_s / big["push_seconds"],
                "x_real_time_small": rec.duration_s / r["push_seconds"],
                "decision_us": float(np.median(decisions["decision_s"])) * 1e6,
                "latency_ms": latency_summary(r["latency_s"]),
                "peak_rss_mb": max(big["peak_rss_mb"], r["peak_rss_mb"]),
                "tensorflow_imported": bool(big["heavy_modules"] or r["heavy_modules"] or decisions["heavy_modules"]),
            }
            rows.append(row)
    return rows


def keras_decision_us(folder: Path, core: int | None = None, calls: int = KERAS_CALLS) -> float | None:
    """Median wall time of Keras ``model.predict`` on one held-out window, in a child process
    (one thread); None when the source run's model is not on this machine."""
    with tempfile.TemporaryDirectory(prefix="biosig-keras-") as tmp:
        out = Path(tmp) / "out.json"
        job = {"folder": str(folder), "core": core, "calls": calls}
        env = dict(
            os.environ,
            OMP_NUM_THREADS="1",
            TF_NUM_INTRAOP_THREADS="1",
            TF_NUM_INTEROP_THREADS="1",
            TF_CPP_MIN_LOG_LEVEL="3",
        )
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.tools.stream_benchmark", "--keras-child", json.dumps(job), str(out)],
            capture_output=True,
            text=True,
            env=env,
        )
        if done.returncode != 0 or not out.is_file():
            return None
        seconds = json.loads(out.read_text())["decision_s"]
    return float(np.median(seconds)) * 1e6 if seconds else None


def _keras_child(job: dict, out: str) -> int:
    """In the Keras child: load the source run's model (its sha256 as the manifest says) and
    time ``predict`` on one kept window per call."""
    import hashlib
    import time

    from pipeline.manifest import read_manifest
    from pipeline.runtime.measure import pin_to_core

    pin_to_core(job.get("core"))
    manifest = read_manifest(job["folder"])
    run = manifest.source_run
    model_path = Path(run.folder if run else "") / "model.keras"
    if (
        run is None
        or not model_path.is_file()
        or hashlib.sha256(model_path.read_bytes()).hexdigest() != run.model_sha256
    ):
        Path(out).write_text(json.dumps({"decision_s": []}))
        return 0
    import tensorflow as tf

    from pipeline.train.model import load_model

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = load_model(model_path)
    entry = next(a for a in manifest.artifacts if a.name == "firmware_check_windows")
    with np.load(Path(job["folder"]) / entry.file, allow_pickle=False) as data:
        inputs = {k: data[k].astype(np.float32) for k in ("signal", "side") if k in data.files}
    names = [t.name.split(":")[0] for t in model.inputs]
    n = len(inputs["signal"])
    seconds = []
    for i in range(job["calls"] + 2):
        x = [inputs[name][i % n : i % n + 1] for name in names]
        t = time.perf_counter()
        model.predict(x, verbose=0)
        if i >= 2:  # two warm-up calls (graph tracing)
            seconds.append(time.perf_counter() - t)
    Path(out).write_text(json.dumps({"decision_s": seconds}))
    return 0


def compute_bound(folder: Path, core: int | None = None, reps: int = 300) -> dict[str, dict]:
    """{c_float32|c_int8: microbenchmark JSON} of the generated C on the kept windows,
    built for this machine with the shared library's flags and pinned like the children."""
    from firmware_export import build
    from pipeline.manifest import read_manifest
    from pipeline.runtime.measure import pin_to_core

    manifest = read_manifest(folder)
    entries = {a.name: a for a in manifest.artifacts if a.ok}
    with np.load(Path(folder) / entries["firmware_check_windows"].file, allow_pickle=False) as data:
        signal = data["signal"]
        side = data["side"] if "side" in data.files else None
    from pipeline.runtime.c_backend import pick_library

    out: dict[str, dict] = {}
    if core is not None:
        pin_to_core(core)
    with tempfile.TemporaryDirectory(prefix="biosig-bench-") as tmp:
        for name in ("c_float32", "c_int8"):
            library = pick_library(manifest, name)
            if name not in entries or library is None:
                continue
            target = library.target or library.architecture  # the build the session loads
            exe = build.build_benchmark(Path(folder) / entries[name].file, Path(tmp), target)
            out[name] = {**build.run_benchmark(exe, signal, side, reps), "target": target}
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--keras-child"]:
        return _keras_child(json.loads(argv[1]), argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="artifact folder from 'biosig-edge export'")
    parser.add_argument(
        "--record",
        default=None,
        help="a record of the model's dataset (default mitdb:100, 30 min; bonn:E_S/S001; "
        "eegmat:Subject00, rest then task)",
    )
    parser.add_argument(
        "--artifacts",
        nargs="+",
        default=None,
        help="default: every float and int8 TFLite/ONNX model the session can run, the "
        "generated C (c_float32, c_int8) and the numpy reference",
    )
    parser.add_argument(
        "--chunk-s", type=float, default=0.05, help="seconds of signal per push (default 0.05: latency is per push)"
    )
    parser.add_argument(
        "--throughput-chunk-s", type=float, default=1.0, help="seconds per push in the throughput pass (default 1.0)"
    )
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras predict column (needs TensorFlow)")
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the tables into the block benchmark-<dataset> (found by name in README.md or docs/)",
    )
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    from pipeline.manifest import read_manifest, shipping_artifacts
    from pipeline.runtime.c_backend import C_ARTIFACTS, has_library

    manifest = read_manifest(args.folder)
    args.record = args.record or {"mitdb": "mitdb:100", "bonn": "bonn:E_S/S001"}.get(
        manifest.dataset or "", "eegmat:Subject00"
    )
    args.artifacts = args.artifacts or (
        shipping_artifacts(manifest) + [a for a in C_ARTIFACTS if has_library(manifest, a)] + ["reference_float32"]
    )
    bound = compute_bound(args.folder)
    keras_us = None if args.no_keras else keras_decision_us(args.folder)
    rows = run(args.folder, args.artifacts, args.record, args.chunk_s, args.data_dir, args.throughput_chunk_s)
    bound_us = min(b["window_ns"] for b in bound.values()) / 1000 if bound else None

    def ratio(us: float) -> str:
        return f"{us / bound_us:.1f}" if bound_us else "n/a"

    def vs_keras(us: float) -> str:
        return f"{keras_us / us:,.0f}x" if keras_us else "n/a"

    lines = [
        f"per decision: the backend alone, one call per decision as the session makes it (median over "
        f"{DECISION_REPEATS} passes of the {manifest.task} model's 48 kept held-out windows); compute bound = "
        f"the generated C's microbenchmark, fastest build (one whole window, no Python); one thread, one run",
        "",
        "| backend | us per decision | x compute bound | faster than Keras predict |",
        "|---|---|---|---|",
    ]
    if keras_us:
        lines.append(f"| Keras predict (tf-keras, float32) | {keras_us:,.0f} | {ratio(keras_us)} | 1x |")
    for r in rows:
        if "error" not in r:
            lines.append(
                f"| {r['artifact']} | {r['decision_us']:.1f} | {ratio(r['decision_us'])} | "
                f"{vs_keras(r['decision_us'])} |"
            )
    for name, b in bound.items():
        lines.append(
            f"| compute bound: {name} microbenchmark, {b['target']} build ({b['step_ns']:.0f} ns per step) | "
            f"{b['window_ns'] / 1000:.1f} | {ratio(b['window_ns'] / 1000)} | {vs_keras(b['window_ns'] / 1000)} |"
        )
    small_ms = 1000 * args.chunk_s
    lines += [
        "",
        f"Streaming {args.record} through the whole session (filter, detection, quality, model): throughput "
        f"with {args.throughput_chunk_s:g} s and {small_ms:.0f} ms pushes; latency = wall time of a "
        f"{small_ms:.0f} ms push that emitted decisions, per decision; one thread, one run",
        "",
        f"| artifact | x real time, {args.throughput_chunk_s:g} s pushes | x real time, {small_ms:.0f} ms pushes | "
        f"{small_ms:.0f} ms / {args.throughput_chunk_s:g} s | latency p50 / p95 / p99 / max ms | peak RSS MB | "
        "TF imported |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['artifact']} | error: {r['error']} ||||||")
            continue
        lat = r["latency_ms"]
        lines.append(
            f"| {r['artifact']} | {r['x_real_time']:.0f} | {r['x_real_time_small']:.0f} | "
            f"{r['x_real_time_small'] / r['x_real_time']:.2f} | "
            f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['p99']:.2f} / {lat['max']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {'yes' if r['tensorflow_imported'] else 'no'} |"
        )
    print("\n".join(lines))
    if args.write:
        from pipeline.readme import write_block

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        lines += [
            "",
            f"Measured on {platform.processor() or platform.machine()}, 1-minute load average {load:.1f} "
            f"on {os.cpu_count()} CPUs at the end of the run.",
        ]
        write_block(
            f"benchmark-{manifest.dataset}",
            "\n".join(lines),
            "taskset -c 0 python -m pipeline.tools.stream_benchmark ARTIFACTS --write",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
