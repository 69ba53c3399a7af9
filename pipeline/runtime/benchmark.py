"""Streaming benchmark: throughput, decision latency and peak memory per artifact.

    taskset -c 0 python -m pipeline.runtime.benchmark ARTIFACT_DIR [--record 100] [--artifacts ...]

Each artifact runs in its own child process that imports only the device side (numpy,
scipy, one interpreter), so its peak RSS is what a Raspberry Pi process would hold. The
record is read once by the parent and handed over as raw float32 samples. Figures are
printed, never asserted: this machine is shared.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from pipeline.runtime.measure import latency_summary, measure_in_child
from pipeline.runtime.replay import read_for

def run(folder: Path, artifacts: list[str], record: str, chunk_s: float, data_dir=None,
        throughput_chunk_s: float = 1.0, core: int | None = None) -> list[dict]:
    from pipeline.manifest import load_manifest

    manifest = load_manifest(folder)
    rec = read_for(manifest, record, data_dir)
    rows = []
    with tempfile.NamedTemporaryFile(suffix=".f32") as raw:
        rec.signal.astype(np.float32).tofile(raw.name)
        recordings = [{"id": record, "raw": raw.name, "n_channels": int(rec.signal.shape[1])}]
        for artifact in artifacts:
            try:                                      # throughput pass, then latency pass
                big, r = (measure_in_child({"folder": str(folder), "artifact": artifact, "chunk_s": size,
                                            "core": core, "recordings": recordings})
                          for size in (throughput_chunk_s, chunk_s))
            except RuntimeError as e:
                rows.append({"artifact": artifact, "error": str(e)})
                continue
            rows.append({"artifact": artifact, "record": record, "duration_s": rec.duration_s,
                         "beats": big["recordings"][0]["decisions"],
                         "seconds": big["push_seconds"],
                         "x_real_time": rec.duration_s / big["push_seconds"],
                         "latency_ms": latency_summary(r["latency_s"]),
                         "peak_rss_mb": max(big["peak_rss_mb"], r["peak_rss_mb"]),
                         "tensorflow_imported": bool(big["heavy_modules"] or r["heavy_modules"])})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="artifact folder from 'biosig-edge export'")
    parser.add_argument("--record", default=None,
                        help="MIT-BIH record (default 100, 30 min), Bonn SET/SEGMENT (default E_S/S001: "
                             "segment 001 of all five sets) or EEGMAT subject (default Subject00, rest)")
    parser.add_argument("--artifacts", nargs="+", default=None,
                        help="default: every float and int8 TFLite/ONNX model the session can run")
    parser.add_argument("--chunk-s", type=float, default=0.05,
                        help="seconds of signal per push (default 0.05: latency is per push)")
    parser.add_argument("--throughput-chunk-s", type=float, default=1.0,
                        help="seconds per push in the throughput pass (default 1.0)")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    from pipeline.manifest import load_manifest, shipping_artifacts

    manifest = load_manifest(args.folder)
    args.record = args.record or {"ecg-mitdb": "100", "eeg-bonn": "E_S/S001"}.get(manifest["task"], "Subject00")
    args.artifacts = args.artifacts or shipping_artifacts(manifest) + ["reference_float32"]
    rows = run(args.folder, args.artifacts, args.record, args.chunk_s, args.data_dir, args.throughput_chunk_s)
    print(f"record {args.record}; throughput with {args.throughput_chunk_s} s pushes; latency = wall "
          f"time of a {args.chunk_s} s push that emitted decisions, per decision; one thread")
    print("| artifact | x real time | s per 30 min | latency p50 / p95 / p99 / max ms | peak RSS MB | TF imported |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['artifact']} | error: {r['error']} |||||")
            continue
        lat = r["latency_ms"]
        print(f"| {r['artifact']} | {r['x_real_time']:.0f} | {r['seconds'] * 1800 / r['duration_s']:.2f} | "
              f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['p99']:.2f} / {lat['max']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {'yes' if r['tensorflow_imported'] else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
