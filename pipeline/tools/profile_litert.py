"""Why LiteRT's full-int8 LSTM is slower than float32 on this CPU.

``python -m pipeline.tools.profile_litert ARTIFACTS [--invokes N] [--perf]``

For ``tflite_float32`` and ``tflite_int8`` of an artifact folder: the median time of one
``invoke()`` (one thread, whatever core this process is pinned to) under each op
resolver LiteRT offers -- the default (XNNPACK delegate applied), without the default
delegate, and the reference kernels -- and the ops each runs. With ``--perf`` (Linux
``perf`` installed), also the functions the interpreter spends its time in, sampled
over the same invokes: the per-kernel profile that says which code path runs.
Numbers are ratios within one run; nothing here is asserted in a test.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ("tflite_float32", "tflite_int8")


def _interpreter(path: Path, resolver_name: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        model_path=str(path), num_threads=1, experimental_op_resolver_type=getattr(OpResolverType, resolver_name)
    )
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        info = np.iinfo(d["dtype"]) if np.issubdtype(d["dtype"], np.integer) else None
        it.set_tensor(
            d["index"],
            rng.integers(info.min // 4, info.max // 4, d["shape"]).astype(d["dtype"])
            if info
            else rng.normal(size=d["shape"]).astype(d["dtype"]),
        )
    return it


def time_invoke(path: Path, resolver_name: str, invokes: int) -> dict:
    """Median and p10 wall time of one invoke, in microseconds, and the ops run."""
    it = _interpreter(path, resolver_name)
    for _ in range(50):
        it.invoke()
    t = np.empty(invokes)
    for i in range(invokes):
        t0 = time.perf_counter()
        it.invoke()
        t[i] = time.perf_counter() - t0
    return {
        "p50_us": float(np.median(t) * 1e6),
        "p10_us": float(np.percentile(t, 10) * 1e6),
        "ops": [o["op_name"] for o in it._get_ops_details()],
    }


def perf_profile(path: Path, invokes: int, top: int = 8) -> list[tuple[float, str]]:
    """(percent of samples, function) of the functions sampled most while invoking."""
    with_perf = shutil.which("perf")
    if not with_perf:
        return []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        loop = (
            f"import sys; sys.argv = ['', {str(path)!r}]; from pipeline.tools.profile_litert import _interpreter; "
            f"it = _interpreter(__import__('pathlib').Path({str(path)!r}), 'BUILTIN')\n"
            f"for _ in range({invokes}): it.invoke()"
        )
        subprocess.run(
            [with_perf, "record", "-q", "-F", "2000", "-o", str(data), "--", sys.executable, "-c", loop],
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [with_perf, "report", "-i", str(data), "--no-children", "--sort", "symbol", "--stdio"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].endswith("%") and parts[1] == "[.]":
            rows.append((float(parts[0][:-1]), parts[2].strip()[:120]))
    return rows[:top]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artifacts")
    p.add_argument("--invokes", type=int, default=2000)
    p.add_argument("--perf", action="store_true", help="sample the kernels with Linux perf")
    args = p.parse_args(argv)
    folder = Path(args.artifacts)
    result = {}
    for name in MODELS:
        for resolver in ("BUILTIN", "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "BUILTIN_REF"):
            r = time_invoke(folder / f"{name}.tflite", resolver, args.invokes)
            result[f"{name} {resolver}"] = r
            print(f"{name:15s} {resolver:34s} p50 {r['p50_us']:8.1f} us  ops {' '.join(r['ops'])}")
    ratio = result["tflite_int8 BUILTIN"]["p50_us"] / result["tflite_float32 BUILTIN"]["p50_us"]
    print(f"int8 / float32 per invoke (default resolver): {ratio:.1f}x")
    if args.perf:
        for name in MODELS:
            print(f"\n{name}: where the samples fall (perf, {args.invokes} invokes)")
            for pct, fn in perf_profile(folder / f"{name}.tflite", args.invokes):
                print(f"  {pct:5.1f} %  {fn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
