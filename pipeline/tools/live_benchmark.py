"""End-to-end latency over LSL, sample -> decision, with the consumer on one pinned core.

    python -m pipeline.tools.live_benchmark ART [--record mitdb:100] [--seconds 300]
        [--speed 1] [--core 0] [--publisher-core 1] [--artifact tflite_float32] [--block-s 0.02]

Runs two processes, as a device would: ``biosig-edge replay ART RECORD --speed S`` (the
amplifier: an LSL outlet stamping each sample on the LSL clock when it is due, pushed in
blocks of ``--block-s``: 20 ms by default, as many amplifiers send; a sample waits in its
block until the block's last sample is due, on average half a block) pinned to ``--publisher-core``, and ``biosig-edge stream ART lsl:NAME`` (the
device) pinned with ``taskset -c CORE`` (one thread: LiteRT/ONNX Runtime take
``num_threads=1``). Every decision the stream prints carries ``latency_s``: LSL
``local_clock()`` at the decision minus the LSL timestamp of the decision's last input
sample (for a beat, the sample that completed its quality window; see
:mod:`pipeline.runtime.live`). The script prints p50/p90/p99/max over all decisions,
the 1-minute load average before and after (the machine is shared: say so with the
number), and writes the events to ``--out`` if given.

Loopback only when ``LSLAPICFG`` points to a machine-scope configuration (the tests'
``tests/lsl_loopback.cfg``); the script sets it to that file unless it is already set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np


def _pinned(core: int | None) -> list[str]:
    if core is None:
        return []
    if shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    raise SystemExit("taskset not found (util-linux); run without --core")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artifact_dir")
    p.add_argument("--record", default="mitdb:100")
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--publisher-core", type=int, default=1)
    p.add_argument("--artifact", default=None)
    p.add_argument("--block-s", type=float, default=0.02, help="seconds of signal per LSL push (0: one sample)")
    p.add_argument("--out", help="write the stream's events here (JSON lines)")
    p.add_argument(
        "--write",
        action="store_true",
        help="write the result into its block, live-latency (docs/deploying.md today; found by name)",
    )
    args = p.parse_args(argv)

    cfg = Path(__file__).resolve().parents[2] / "tests" / "lsl_loopback.cfg"
    if "LSLAPICFG" not in os.environ and cfg.exists():
        os.environ["LSLAPICFG"] = str(cfg)
    name = f"biosig-latency-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    cli = [sys.executable, "-m", "pipeline.cli"]
    stream_cmd = (
        _pinned(args.core)
        + cli
        + ["stream", args.artifact_dir, f"lsl:{name}", "--wait-s", "60"]
        + (["--artifact", args.artifact] if args.artifact else [])
    )
    replay_cmd = (
        _pinned(args.publisher_core)
        + cli
        + [
            "replay",
            args.artifact_dir,
            args.record,
            "--name",
            name,
            "--speed",
            str(args.speed),
            "--seconds",
            str(args.seconds),
            "--wait-s",
            "60",
            "--chunk-s",
            str(args.block_s),
        ]
    )
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    stream = subprocess.Popen(stream_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    replay = subprocess.Popen(replay_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Read the stream's output while it runs: a full pipe would block its writes (and it).
    out, err = stream.communicate(timeout=args.seconds / args.speed + 120)
    replay_err = replay.communicate(timeout=30)[1]
    load_after = os.getloadavg()[0]
    if replay.returncode or stream.returncode:
        print(replay_err[-2000:], err[-2000:], file=sys.stderr)
        return 1
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    if args.out:
        Path(args.out).write_text(out)
    lat = np.array([e["latency_s"] for e in events if e["type"] in ("beat", "window") and e["latency_s"] is not None])
    p50, p90, p99 = np.percentile(lat, [50, 90, 99]) * 1e3
    result = {
        "command": " ".join(["python -m pipeline.tools.live_benchmark", *(argv or sys.argv[1:])]),
        "record": args.record,
        "seconds": args.seconds,
        "speed": args.speed,
        "consumer_core": args.core,
        "publisher_core": args.publisher_core,
        "block_s": args.block_s,
        "decisions": int(len(lat)),
        "latency_ms": {
            "p50": round(p50, 2),
            "p90": round(p90, 2),
            "p99": round(p99, 2),
            "max": round(float(lat.max()) * 1e3, 2),
        },
        "load_1min": [round(load_before, 1), round(load_after, 1)],
        "cpus": os.cpu_count(),
        "wall_s": round(time.perf_counter() - t0, 1),
        "stream_summary": [line for line in err.splitlines() if line.startswith(("streamed", "latency"))],
        "replay_summary": [line for line in replay_err.splitlines() if line.startswith("published")],
    }
    print(json.dumps(result, indent=1))
    print(
        f"\nLSL sample -> decision over {result['decisions']} decisions ({args.record}, {args.seconds:g} s at "
        f"{args.speed:g}x, {args.block_s * 1e3:g} ms blocks, consumer on core {args.core}, publisher on core "
        f"{args.publisher_core}): "
        f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {lat.max() * 1e3:.1f} ms; "
        f"1-min load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} CPUs"
    )
    if args.write:
        from pipeline.readme import write_block

        write_block(
            "live-latency",
            "\n".join(
                [
                    f"LSL, sample to decision: {args.record} replayed for {args.seconds:g} s at {args.speed:g}x in "
                    f"{args.block_s * 1e3:g} ms blocks (publisher on core {args.publisher_core}), streamed by `biosig-edge "
                    f"stream` on core {args.core}; latency from the LSL time of a decision's last input sample to its "
                    f"emission, {result['decisions']} decisions:",
                    "",
                    "| p50 ms | p90 ms | p99 ms | max ms | 1-min load average |",
                    "|---|---|---|---|---|",
                    f"| {p50:.1f} | {p90:.1f} | {p99:.1f} | {lat.max() * 1e3:.1f} | {load_before:.1f} -> {load_after:.1f} on "
                    f"{os.cpu_count()} CPUs |",
                ]
            ),
            "python -m pipeline.tools.live_benchmark ARTIFACTS --write",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
