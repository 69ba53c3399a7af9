"""``biosig-edge validate --ray`` / ``--address HOST:PORT``: one Ray task per recording.

For an archive that outgrows one machine. Each task runs on a Ray worker and does for its
one recording what the sequential run does for all of them: reads it from its path (a
cluster shares the archive, and the artifact folder, by path), checks the artifact folder
(every file's sha256, as a device session does), and streams it through each chosen
artifact in a measuring child (:func:`pipeline.runtime.measure.measure_in_child`, one
thread), scoring nothing. It returns the recording (its annotations and first minute),
the decisions of each artifact and each child's measurement; the driver merges them in
the recordings' order and writes the same report as the sequential run: the same
decisions, so the same confusion matrices, scores and per-recording table.

What is not the same: timing. A worker's child is not pinned to a core and shares its
machine with the other tasks, so the latency percentiles, throughput and peak RSS are the
workers' (pooled over every recording), not a quiet pinned core's. The report says so
(``distributed``), and its timing decides nothing: every latency limit, the ratio to the
reference too (the two streamed a recording at different moments of the cluster's load),
is reported, not counted, and the CPU pick does not rank by speed. What decides is what
both runs share: decisions, scores, agreement, size, and peak RSS (one recording's child
against all of them: the same session, one at a time).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pipeline.errors import BiosigError

#: What the report says about a distributed run's timing.
TIMING_NOTE = (
    "distributed over Ray, one task per recording: latency percentiles, throughput and peak RSS come from "
    "the workers' measuring processes (unpinned, sharing their machines with other tasks), pooled over "
    "every recording, and are not comparable to a pinned sequential run: latency limits (the ratio to "
    "the reference too) are reported, not counted, and the CPU pick does not rank by speed"
)


#: Said when a cluster does not take the driver: since Ray 2.5x a cluster started with
#: ``ray start`` wants a token, and a driver given an explicit address sends it only when
#: told to (``ray.init`` does not read ``~/.ray/auth_token`` for an explicit address).
AUTH_HINT = (
    " (a cluster with token authentication, ray start's default, needs RAY_AUTH_MODE=token here and its token "
    "in ~/.ray/auth_token or RAY_AUTH_TOKEN)"
)


class RayValidateError(BiosigError):
    """A recording's Ray task was refused (a file unreadable or altered on the worker) or
    failed."""


def measure_job(
    folder: str,
    artifact: str,
    chunk_s: float,
    core: int | None,
    recordings: list[dict],
    events_path: str,
    withhold: bool,
) -> dict:
    """The job of one measuring child (:mod:`pipeline.runtime.measure`): ``artifact`` of
    ``folder`` over ``recordings`` (their job entries), events to ``events_path``."""
    return {
        "folder": folder,
        "artifact": artifact,
        "chunk_s": chunk_s,
        "core": core,
        "recordings": recordings,
        "events_path": events_path,
        "withhold": withhold,
    }


def stream_record(job: dict) -> dict:
    """One Ray task: read recording ``job["id"]`` and stream it through every artifact of
    ``job["artifacts"]`` (in order, the reference first), each in its own measuring child.

    ``job``: folder, artifacts, id, records (a folder, or None: the held-out split of
    ``data_dir``), data_dir, seconds, record_options, chunk_s, withhold, n_classes.
    Returns {id, heldout (its first minute of signal), note, duration_s, measured: {artifact:
    the child's OUT, or {"error"}}, decisions: {artifact: (keys, probs)}, load: [a
    :func:`~pipeline.validate.budgets.machine_load` before each artifact], node}; or {id,
    refused: the one-line error} when the recording or the artifact folder is refused here.
    """
    from pipeline.folders import work_dir
    from pipeline.manifest import load_manifest
    from pipeline.runtime.measure import measure_in_child
    from pipeline.validate import score
    from pipeline.validate.budgets import machine_load
    from pipeline.validate.heldout import read_recording

    rid = job["id"]
    try:
        manifest = load_manifest(job["folder"])  # every file's sha256 and size, on this worker
        h, note = read_recording(manifest, rid, job["records"], job["data_dir"], job["seconds"], job["record_options"])
    except BiosigError as err:
        return {"id": rid, "refused": str(err)}
    measured: dict[str, dict] = {}
    decisions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    load = []
    with work_dir("biosig-validate-task") as tmp:
        raw = Path(tmp) / "recording.f32"
        h.signal.astype(np.float32).tofile(raw)  # the children memory-map it
        entry = h.measure_entry(str(raw))
        for name in job["artifacts"]:
            load.append(machine_load())
            events_path = str(Path(tmp) / f"{name}.events.jsonl")
            try:
                measured[name] = measure_in_child(
                    measure_job(job["folder"], name, job["chunk_s"], None, [entry], events_path, job["withhold"])
                )
                decisions[name] = score.decisions_from_events(events_path, [rid], job["n_classes"])[rid]
            except RuntimeError as err:
                measured[name] = {"error": str(err)}
    duration_s = h.duration_s
    h.signal = h.signal[: int(60 * h.fs_hz)]  # a minute for the strip plot, as the sequential run keeps
    return {
        "id": rid,
        "heldout": h,
        "note": note,
        "duration_s": duration_s,
        "measured": measured,
        "decisions": decisions,
        "load": load,
        "node": platform.node(),
    }


def merge_measured(parts: list[tuple[str, dict]]) -> dict:
    """One artifact's measurements of each recording (``(id, OUT)`` in the recordings'
    order) as the one measurement of a sequential child: latencies pooled in that order,
    push and signal seconds summed, the highest peak RSS, every module and version seen.
    ``{"error"}`` naming the first recording whose child failed."""
    for rid, m in parts:
        if "error" in m:
            return {"error": f"recording {rid}: {m['error']}"}
    first = parts[0][1]
    versions: dict[str, str] = {}
    for _, m in parts:
        versions.update(m["versions"])
    return {
        "artifact": first["artifact"],
        "recordings": [r for _, m in parts for r in m["recordings"]],
        "push_seconds": sum(m["push_seconds"] for _, m in parts),
        "signal_seconds": sum(m["signal_seconds"] for _, m in parts),
        "latency_s": [x for _, m in parts for x in m["latency_s"]],
        "chunk_s": first["chunk_s"],
        "peak_rss_mb": max(m["peak_rss_mb"] for _, m in parts),
        "heavy_modules": sorted({x for _, m in parts for x in m["heavy_modules"]}),
        "core": None,
        "threads": 1,
        "versions": versions,
    }


def default_workers() -> int:
    """Local Ray's CPUs: those this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Completed:
    """The tasks' results as they finish (a progress bar over them knows their number)."""

    def __init__(self, ray, refs: dict):
        self.ray, self.refs = ray, refs

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self) -> Iterator[dict]:
        pending = list(self.refs)
        try:
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                try:
                    out = self.ray.get(done[0])
                except self.ray.exceptions.RayError as err:
                    lines = [line for line in str(err).strip().splitlines() if line.strip()]
                    raise RayValidateError(
                        f"recording {self.refs[done[0]]}: its Ray task failed: {lines[-1] if lines else type(err).__name__}"
                    ) from None
                if "refused" in out:
                    raise RayValidateError(f"recording {out['id']} (on a Ray worker): {out['refused']}")
                yield out
        finally:
            for ref in pending:  # a refusal or an interrupt: the rest need not run
                self.ray.cancel(ref)


def run_on_ray(
    job: dict,
    ids: list[str],
    address: str | None,
    workers: int | None,
    progress: Callable | None = None,
    log: Callable = print,
) -> tuple[list[dict], dict]:
    """Stream every recording of ``ids`` as its own Ray task (:func:`stream_record`, with
    ``job`` and the recording's id); returns (the tasks' results in the order of ``ids``,
    what ran where: {address, workers, nodes, records_per_task, timing}).

    ``address``: a running cluster (checked beforehand); None: local Ray with ``workers``
    CPUs (default: :func:`default_workers`). A Ray already started in this process is used
    as it is, and left running. ``progress`` wraps the results as they come (a tqdm bar)."""
    from pipeline.cluster import import_ray

    ray = import_ray("--address" if address else "--ray")
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(
                    address="local",  # a new instance, not one `ray start` left (it refuses num_cpus)
                    num_cpus=workers or default_workers(),
                    include_dashboard=False,
                    log_to_driver=False,
                )
        except Exception as err:  # the cluster's answer (refused, authentication, versions): one line
            lines = [line for line in str(err).strip().splitlines() if line.strip()]
            raise RayValidateError(
                f"Ray {'at ' + address + ': cannot connect' if address else 'on this machine: did not start'}: "
                f"{lines[-1] if lines else type(err).__name__}"
                + (AUTH_HINT if address and "RAY_AUTH_MODE" not in os.environ else "")
            ) from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        log(
            f"  Ray {'at ' + address if address else 'on this machine'}: {cpus} CPUs, "
            f"one task per recording ({len(ids)})"
        )
        task = ray.remote(num_cpus=1)(stream_record)
        refs = {task.remote({**job, "id": rid}): rid for rid in ids}
        results = {out["id"]: out for out in (progress or (lambda x: x))(_Completed(ray, refs))}
    finally:
        if started:
            ray.shutdown()
    where = {
        "address": address or "local",
        "workers": cpus,
        "nodes": sorted({r["node"] for r in results.values()}),
        "records_per_task": 1,
        "timing": TIMING_NOTE,
    }
    return [results[rid] for rid in ids], where
