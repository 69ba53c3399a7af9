"""Stream recordings through one artifact and measure it: decisions, latency, throughput, RSS.

Device side (numpy, scipy, one interpreter): run as its own process, so that its peak
resident memory is what a Raspberry Pi process would hold and nothing the parent
imported (TensorFlow) is counted::

    python -m pipeline.runtime.measure JOB.json OUT.json

``JOB.json``::

    {"folder": artifact folder, "artifact": "tflite_int8", "chunk_s": 0.05,
     "core": 0 or null, "events_path": "/tmp/events.jsonl" or null,
     "recordings": [{"id": "100", "raw": "/tmp/100.f32", "n_channels": 2}]}

With ``"mode": "decisions"`` it times the backend alone instead (:func:`measure_decisions`).

``raw`` holds the recording's samples as float32, (n_samples, n_channels) row-major; they
are memory-mapped and pushed ``chunk_s`` seconds at a time, one fresh session per
recording. Events (``beat`` / ``window`` / ``signal_quality`` dicts, each with its
``recording``) are written as JSON lines to ``events_path`` as they come, so that holding
them does not count in the process's memory. ``OUT.json``: per recording its number of
decisions, then ``push_seconds`` (wall time inside ``push``),
``signal_seconds``, ``latency_s`` (for each push that emitted decisions: its wall time
divided by their number), ``peak_rss_mb`` (VmHWM), the modules it loaded, the core it
was pinned to and the interpreter versions.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from importlib import metadata

import numpy as np

#: Distributions whose versions describe a device process, if it loaded them.
_DISTRIBUTIONS = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "onnxruntime": "onnxruntime",
    "tensorflow": "tensorflow",
}


def pin_to_core(core: int | None) -> int | None:
    """Pin this process to one CPU core (Linux); returns the core or None where unsupported."""
    if core is None or not hasattr(os, "sched_setaffinity"):
        return None
    os.sched_setaffinity(0, {core})
    return core


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM); ru_maxrss can carry a parent's peak
    across fork+exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def versions() -> dict[str, str]:
    """Python, numpy, scipy and every interpreter this process has imported."""
    import scipy

    out = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
    for module, dist in _DISTRIBUTIONS.items():
        if module in sys.modules:
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                out[dist] = "unknown"
    return out


def latency_summary(latency_s: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max of per-decision latencies, in milliseconds (NaN if none)."""
    ms = np.asarray(latency_s, dtype=np.float64) * 1000
    if not len(ms):
        return {q: float("nan") for q in ("p50", "p95", "p99", "max")}
    return {q: float(np.percentile(ms, p)) for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}


def measure(job: dict) -> dict:
    """Run ``job`` (see the module docstring) in this process; return the OUT dict."""
    from pipeline.manifest import read_manifest
    from pipeline.read.record import SignalSpec
    from pipeline.runtime.session import open_session

    core = pin_to_core(job.get("core"))
    manifest = read_manifest(job["folder"])  # read and hashed once
    # The session of the last distinct input only: recordings that differ in their spec
    # (an EDF's converter range differs per file) each need their own, and keeping every
    # one (its model, interpreter and buffers) grew the peak memory with the number of
    # recordings (12 EEGMAT subjects: a session per file).
    sessions: dict = {}
    recordings, latency_s = [], []
    push_seconds = signal_seconds = 0.0
    sink = open(job["events_path"], "w") if job.get("events_path") else None
    for rec in job["recordings"]:
        x = np.memmap(rec["raw"], dtype=np.float32, mode="r").reshape(-1, rec["n_channels"])
        # A recording states its rate, channels and units (the model's own by default);
        # one session per distinct input, reset for each recording.
        spec = None
        if rec.get("fs_hz") is not None:
            spec = SignalSpec(
                float(rec["fs_hz"]),
                tuple(rec["channels"]),
                tuple(rec["units"]),
                tuple(map(tuple, rec["full_scale"])) if rec.get("full_scale") else None,
            )
        key = repr(spec)
        if key not in sessions:
            sessions.clear()  # the previous input's session goes before the next is built
            session = None
            sessions[key] = open_session(
                job["folder"],
                job["artifact"],
                num_threads=1,
                source=spec,
                manifest=manifest,
                withhold_unusable=bool(job.get("withhold")),
            )
        session = sessions[key]
        fs_hz = session.fs_src
        chunk = max(1, int(round(job["chunk_s"] * fs_hz)))
        session.reset()
        decisions = 0
        for i in range(0, len(x), chunk):
            piece = np.asarray(x[i : i + chunk])
            t = time.perf_counter()
            new = session.push(piece)
            dt = time.perf_counter() - t
            push_seconds += dt
            n = sum(e["type"] in ("beat", "window") for e in new)
            if n:
                latency_s.append(dt / n)
                decisions += n
            if sink is not None:
                for event in new:
                    sink.write(json.dumps({"recording": rec["id"], **event}) + "\n")
        # The recording has ended: what the session can still decide (not timed).
        last = session.flush()
        decisions += sum(e["type"] in ("beat", "window") for e in last)
        if sink is not None:
            for event in last:
                sink.write(json.dumps({"recording": rec["id"], **event}) + "\n")
        signal_seconds += len(x) / fs_hz
        recordings.append({"id": rec["id"], "decisions": decisions})
    if sink is not None:
        sink.close()
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
    return {
        "artifact": job["artifact"],
        "recordings": recordings,
        "push_seconds": push_seconds,
        "signal_seconds": signal_seconds,
        "latency_s": latency_s,
        "chunk_s": job["chunk_s"],
        "peak_rss_mb": peak_rss_mb(),
        "heavy_modules": heavy,
        "core": core,
        "threads": 1,
        "versions": versions(),
    }


def measure_decisions(job: dict) -> dict:
    """Time the backend alone, one decision per call as the session makes it, on the
    held-out windows export keeps (``firmware_check_windows.npz``): ``predict`` of one beat
    window for ECG, every chunk of one window through ``step`` for EEG. Job keys: folder,
    artifact, core, repeats. Returns per-decision seconds (all calls after a warm-up pass)."""
    from pipeline.manifest import ManifestError, read_manifest
    from pipeline.runtime.backends import run_chunks
    from pipeline.runtime.session import open_model

    core = pin_to_core(job.get("core"))
    folder = job["folder"]
    manifest = read_manifest(folder)
    model = open_model(folder, manifest, job["artifact"], num_threads=1)
    entry = manifest.artifact("firmware_check_windows")
    if entry is None:
        raise ManifestError(f"{folder}: no firmware_check_windows in manifest.json (export it again)")
    with np.load(os.path.join(folder, entry.file), allow_pickle=False) as data:
        signal = data["signal"].astype(np.float32)
        side = data["side"].astype(np.float32) if "side" in data.files else None
    # One call per decision, its inputs bound beforehand (a beat window's feed for ECG,
    # a window's chunks through step for EEG), so that only the backend is timed.
    decisions: list[Callable[[], object]]
    if manifest.kind == "ecg-beats":
        feeds = [
            {"signal": signal[i : i + 1]} if side is None else {"signal": signal[i : i + 1], "side": side[i : i + 1]}
            for i in range(len(signal))
        ]
        decisions = [partial(model.predict, feed) for feed in feeds]
    else:
        stream = manifest.streaming
        if stream is None:
            raise ManifestError(f"{folder}: an EEG model without a streaming section in manifest.json")
        decisions = [
            partial(
                run_chunks,
                model.step,
                signal[i],
                list(stream.state_sizes),
                stream.chunk_len,
                None if side is None else side[i],
            )
            for i in range(len(signal))
        ]

    for decide in decisions:  # warm-up: caches, lazy initialisation
        decide()
    seconds = []
    for _ in range(int(job.get("repeats", 20))):
        for decide in decisions:
            t = time.perf_counter()
            decide()
            seconds.append(time.perf_counter() - t)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "keras"))
    return {
        "artifact": job["artifact"],
        "decision_s": seconds,
        "windows": len(feeds),
        "core": core,
        "heavy_modules": heavy,
        "versions": versions(),
    }


def measure_in_child(job: dict, python: str | None = None) -> dict:
    """Run ``job`` in a fresh process (``python``, default this interpreter); return OUT.

    Raises RuntimeError with the child's last line of stderr if it fails.
    """
    import subprocess

    from pipeline.folders import work_dir

    with work_dir("biosig-measure") as tmp:
        job_path, out_path = os.path.join(tmp, "job.json"), os.path.join(tmp, "out.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        env = dict(os.environ, OMP_NUM_THREADS="1", BIOSIG_EDGE_PARENT_PID=str(os.getpid()))
        done = subprocess.run(
            [python or sys.executable, "-m", "pipeline.runtime.measure", job_path, out_path],
            capture_output=True,
            text=True,
            env=env,
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            raise RuntimeError(f"{job['artifact']}: {lines[-1]}")
        with open(out_path) as f:
            return json.load(f)


def die_with_parent() -> None:
    """Linux: be killed when the parent dies (even by SIGKILL), so that no measuring child
    runs on as an orphan after its ``validate`` was killed."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = os.environ.get("BIOSIG_EDGE_PARENT_PID")
    if parent and os.getppid() != int(parent):  # the parent died before prctl took hold
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    job_path, out_path = argv if argv is not None else sys.argv[1:]
    with open(job_path) as f:
        job = json.load(f)
    result = measure_decisions(job) if job.get("mode") == "decisions" else measure(job)
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
