"""``biosig-edge validate``: hold every artifact of a folder against its float reference.

One run, one pinned core: every artifact streams the whole held-out split through the
device-side session (its own child process, one thread: see
:mod:`pipeline.runtime.measure`), and its decisions are scored against the annotations
and against the float reference's decisions in the same run. The float reference is the
numpy LSTM (``reference_float32``), which computes exactly what the Keras model computes.

With ``--ray`` / ``--address`` each recording is instead its own Ray task, streamed
through every artifact on a worker (:mod:`pipeline.validate.distributed`): the same
decisions and scores, the workers' timing.

Nothing is written until everything has run: the report folder is built under a
temporary name and renamed at the end.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BiosigError
from pipeline.manifest import ArtifactEntry, Manifest, read_manifest
from pipeline.runtime.measure import latency_summary, measure_in_child
from pipeline.validate import score
from pipeline.validate.budgets import check_budget, load_budget, machine_load, target_scale
from pipeline.validate.heldout import heldout_ids

REFERENCE = "reference_float32"
#: What a device stores for an artifact of each format (the report's size column).
STORED_AS = {"tflite": "flatbuffer", "onnx": "ONNX file", "npz": "npz weights", "c": "shared library"}
#: Throughputs within this fraction of the fastest are a tie when recommending.
SPEED_TIE = 0.05


#: The quick profile streams the first this many seconds of every held-out recording:
#: every held-out patient, a part of each (ECG: 22 DS2 records x 2 min, about 3,300
#: beats, instead of 11 h), so that the main job fits in minutes on 2 cores. The report
#: marks the split as a subset; the full profile streams it whole.
QUICK_SECONDS = 120.0


def quick_artifacts(manifest: Manifest) -> list[str]:
    """What the quick profile streams: the float and int8 model of each interpreter one
    would ship (:func:`pipeline.manifest.shipping_artifacts`) and the generated C
    (``c_float32``, ``c_int8``) where export built a library for this machine, so that
    both targets, a CPU and a microcontroller, get a recommendation."""
    from pipeline.manifest import shipping_artifacts
    from pipeline.runtime.c_backend import C_ARTIFACTS

    runnable = runnable_artifacts(manifest)
    wanted = set(shipping_artifacts(manifest)) | set(C_ARTIFACTS)
    return [a for a in runnable if a in wanted]


class ValidateError(BiosigError):
    """Validation cannot start (bad folder, output exists, unknown artifact)."""


def runnable_artifacts(manifest: Manifest) -> list[str]:
    """Artifacts the task's streaming session can run, the float reference first.

    ECG sessions classify whole beat windows; EEG sessions carry windows chunk by chunk,
    so they take the chunk-plus-state graphs. The generated C (``c_float32``, ``c_int8``)
    does both, where export built its shared library for this machine.
    """
    from pipeline.runtime.c_backend import C_ARTIFACTS, has_library

    graphs = {"weights", "whole-window"} if manifest.kind == "ecg-beats" else {"weights", "stream"}
    names = [
        a.name
        for a in manifest.artifacts
        if a.ok
        and (
            (a.format in ("tflite", "onnx", "npz") and a.graph in graphs)
            or (a.name in C_ARTIFACTS and has_library(manifest, a.name))
        )
    ]
    return sorted(names, key=lambda n: (n != REFERENCE, names.index(n)))


def _device_bytes(manifest: Manifest, entry: ArtifactEntry) -> int | None:
    """What a device stores to run the artifact: its file, or for the generated C the
    shared library built for this machine."""
    from pipeline.runtime.c_backend import C_ARTIFACTS, pick_library

    if entry.name in C_ARTIFACTS:
        library = pick_library(manifest, entry.name)
        assert library is not None  # a C artifact is validated only where a library runs (runnable_artifacts)
        return library.bytes
    return entry.bytes


def default_out(folder: Path) -> Path:
    """``RUN/artifacts`` -> ``RUN/validation``; any other folder F -> ``F-validation``."""
    folder = Path(folder).resolve()
    return folder.parent / "validation" if folder.name == "artifacts" else folder.with_name(folder.name + "-validation")


def machine(core: int | None) -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "pinned_core": core,
        "cores_used": 1,
        "threads": 1,
        "python": platform.python_version(),
    }


def _training_metrics(manifest: Manifest) -> dict | None:
    """The source run's held-out metrics, if its folder is still there and holds the model
    this folder was exported from (``source_run``: shape checked with the manifest).

    Called before anything streams, so that a bad run folder is refused at once; the
    answer is remembered for the report. The run folder may lie anywhere: its files are
    read bounded (a model larger than any artifact, or a FIFO, is refused, not read)."""
    run = manifest.source_run
    if run is None:
        return None
    return _run_metrics(run.folder, run.model_sha256)


@functools.lru_cache(maxsize=8)
def _run_metrics(folder: str, model_sha256: str) -> dict | None:
    import hashlib
    import stat

    from pipeline.manifest import MAX_ARTIFACT_BYTES, MAX_MANIFEST_BYTES, parse_json, read_bounded

    run = Path(folder)
    model, metrics = run / "model.keras", run / "metrics.json"
    try:
        if not (metrics.is_file() and model.exists()):
            return None  # the run moved or was deleted: the report goes without it
        info = model.stat()
    except OSError as err:
        raise ValidateError(f"{run}: the manifest's source_run cannot be read: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValidateError(f"{model}: not a regular file (the manifest's source_run.folder); refusing to read it")
    if info.st_size > MAX_ARTIFACT_BYTES:
        raise ValidateError(
            f"{model}: {info.st_size} bytes, larger than any model ({MAX_ARTIFACT_BYTES}); is the manifest's "
            f"source_run.folder the run this folder was exported from?"
        )
    digest = hashlib.sha256()
    try:
        with open(model, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise ValidateError(f"{model}: cannot be read: {err.strerror or err}") from None
    if digest.hexdigest() != model_sha256:
        return None  # another model since: its metrics are not this folder's
    values = parse_json(
        read_bounded(metrics, MAX_MANIFEST_BYTES, "run's metrics", ValidateError), str(metrics), ValidateError
    )
    if not isinstance(values, dict):
        raise ValidateError(f"{metrics}: not a JSON object")
    return {"folder": str(run), **values}


#: A common Cortex-M4 clock, to turn instruction counts into a time per decision.
MCU_CLOCK_HZ = 64e6


def firmware_check(folder: Path, manifest: Manifest | dict, log=print) -> dict:
    """The generated C (float32 and int8) built for a Cortex-M4 and run under QEMU on the
    held-out windows export kept: sizes, instructions per decision, and whether its
    decisions equal the host build's. {} if the folder has no generated C; a "skipped"
    reason if a tool is missing.

    ``manifest`` as a dict: ``{"artifacts": [export's entries], "classes": [...]}``, what
    the sweep's test hands in before any manifest exists (tests/test_sweep.py)."""
    from firmware_export import build

    if isinstance(manifest, dict):
        artifacts = tuple(
            ArtifactEntry.from_dict(a, "export's entries", i) for i, a in enumerate(manifest["artifacts"])
        )
        n_classes = len(manifest["classes"])
    else:
        artifacts, n_classes = manifest.artifacts, len(manifest.classes)
    entries = {a.name: a for a in artifacts if a.ok}
    if "c_int8" not in entries or "firmware_check_windows" not in entries:
        return {}
    with np.load(folder / entries["firmware_check_windows"].file, allow_pickle=False) as data:
        signal = data["signal"]
        side = data["side"] if "side" in data.files else None
    out = {
        "windows": int(len(signal)),
        "clock_hz": MCU_CLOCK_HZ,
        "board": "QEMU mps2-an386, a Cortex-M4F",
        "tflite_int8_bytes": entries["tflite_int8"].bytes if "tflite_int8" in entries else None,
    }
    for precision in ("float32", "int8"):
        name = f"c_{precision}"
        if name not in entries:
            continue
        try:
            r = build.cortex_m4_check(folder / entries[name].file, signal, side, n_classes)
        except build.ToolMissing as e:
            return {"skipped": str(e)}
        except build.BuildError as e:  # e.g. C generated before the runtime: re-export
            log(f"  {name}: the firmware check did not build: {str(e)[:200]}")
            return {
                "skipped": f"{entries[name].file} does not build with this runtime (re-export the "
                f"folder): {str(e)[:200]}"
            }
        r.pop("m4"), r.pop("host")
        r["export_agreement"] = (entries[name].vs_float or {}).get("agreement")
        r["ms_at_clock"] = 1000 * r["instructions_mean"] / MCU_CLOCK_HZ
        out[name] = r
        log(
            f"  {name} on Cortex-M4: {r['flash_bytes']:,} B flash, {r['ram_with_stack_bytes']:,} B RAM, "
            f"{r['instructions_mean']:,.0f} instructions per decision"
        )
    return out


#: The targets a recommendation is made for, in the order they are shown.
TARGET_LABELS = {"raspberry_pi_cpu": "Raspberry-Pi-class CPU", "microcontroller": "microcontroller"}
#: Artifacts a microcontroller runs: the generated C, then TFLite Micro's integer models.
MCU_C = (("c_int8", "int8 weights"), ("c_float32", "float32 weights (needs an FPU: Cortex-M4F)"))
MCU_TFLM = ("tflite_int8", "stream_tflite_int8", "stream_tflite_int16x8")


def _not_recommended(rows: list[dict], budget_results: list[dict]) -> dict[str, list[str]]:
    """{artifact: why it cannot be recommended}: each counted budget miss, a failure to
    run, or export's agreement target missed. The float reference is the yardstick, never
    a candidate (on a loaded machine it would "pass every budget" as the only one exempt)."""
    from pipeline.validate.budgets import describe_miss

    why: dict[str, list[str]] = {}
    for r in rows:
        if r["artifact"] == REFERENCE:
            continue
        reasons = why.setdefault(r["artifact"], [])
        if r["status"] != "ok":
            reasons.append(f"did not run ({str(r.get('error', ''))[:120]})")
        elif r.get("meets_agreement_target") is False:
            check = r.get("export_check") or {}
            reasons.append(
                "missed the agreement target at export"
                + (f" ({100 * check['agreement']:.2f} % of decisions equal float)" if "agreement" in check else "")
            )
    for b in budget_results:
        if not b["passed"] and b.get("counted", True) and b["artifact"] in why:
            why[b["artifact"]].append(f"{describe_miss(b)} ({b['key']})")
    return {a: reasons for a, reasons in why.items() if reasons}


def recommend(
    rows: list[dict],
    budget_results: list[dict],
    arena_bytes: int | None,
    firmware_c: dict | None = None,
    min_agreement_pct: float = 99.5,
    cpu_label: str = TARGET_LABELS["raspberry_pi_cpu"],
    rank_speed: bool = True,
) -> dict:
    """One artifact per target, with the reason; ``None`` with the reason when no
    artifact can be recommended there.

    Only an artifact that meets every counted budget can be recommended (a budget is a
    shipping filter); each one that cannot is listed under ``not_recommended`` with its
    misses. CPU: of those, the ones within ``SPEED_TIE`` of the fastest count as equally
    fast (a few percent is this machine's noise); of those, the one whose decisions follow
    float most closely, then the smallest peak memory, then the smallest file.
    Microcontroller: the generated C (int8 weights, else float32, which needs an FPU),
    from the Cortex-M4 build when QEMU ran it, else from its host build streamed here
    (the same C source); else TFLite Micro's integer model. ``judged`` is False for a
    target none of whose artifacts was validated: nothing to recommend, nothing failed.
    ``rank_speed`` False (a run on Ray workers, whose timing is noise): every artifact
    within budget counts as equally fast.
    """
    blocked = _not_recommended(rows, budget_results)
    ok = {r["artifact"]: r for r in rows if r["status"] == "ok" and r["artifact"] != REFERENCE}
    passing = [r for name, r in ok.items() if name not in blocked]

    def misses(names) -> str:
        named = [f"{n}: {'; '.join(blocked[n])}" for n in names if n in blocked]
        return f" ({' | '.join(named)})" if named else ""

    out: dict = {}
    if passing:
        fastest = max(r["x_real_time"] for r in passing)
        tied = [r for r in passing if r["x_real_time"] >= (1 - SPEED_TIE) * fastest or not rank_speed]
        best = min(tied, key=lambda r: (-round(r["agreement_pct"], 2), round(r["peak_rss_mb"]), r["size_bytes"]))
        speed = (
            f"within {100 * SPEED_TIE:.0f} % of the fastest ({best['x_real_time']:.0f}x real time, p99 "
            f"{best['p99_latency_ms']:.2f} ms per decision on this machine)"
            if rank_speed
            else "speed not ranked (measured on Ray workers, unpinned, beside other tasks)"
        )
        cpu = {
            "artifact": best["artifact"],
            "reason": f"within every budget and {speed}; of those, decisions closest to float "
            f"({best['agreement_pct']:.2f} %), then least memory ({best['peak_rss_mb']:.0f} MB peak RSS) and "
            f"size ({best['size_bytes']:,} B)",
        }
    else:
        cpu = {
            "artifact": None,
            "reason": ("no artifact meets every budget" + misses(blocked)) if blocked else "no artifact was validated",
        }
    judged = any(r["artifact"] != REFERENCE for r in rows)
    out["raspberry_pi_cpu"] = {**cpu, "label": cpu_label, "judged": judged}
    validated = {r["artifact"] for r in rows}
    out["microcontroller"] = {
        **_recommend_mcu(ok, validated, blocked, arena_bytes, firmware_c, min_agreement_pct),
        "label": TARGET_LABELS["microcontroller"],
    }
    out["not_recommended"] = blocked
    return out


def _recommend_mcu(
    ok: dict, validated: set, blocked: dict, arena_bytes: int | None, firmware_c: dict | None, min_agreement_pct: float
) -> dict:
    """The microcontroller's pick (see :func:`recommend`): {artifact, reason, judged}.
    ``ok``: the rows that ran, by artifact; ``validated``: every artifact streamed."""
    firmware_c = firmware_c or {}
    arena = arena_bytes  # TFLite Micro's, from the manifest's firmware section

    def m4_reason(r: dict, precision: str) -> str:
        return (
            f"generated C with {precision}: {r['flash_bytes']:,} B flash, {r['ram_with_stack_bytes']:,} B RAM "
            f"with stack"
            + (
                f" ({arena / r['ram_with_stack_bytes']:.0f}x less than TFLite Micro's {arena:,} B arena alone)"
                if arena
                else ""
            )
            + f"; {r['instructions_mean'] / 1e6:.2f} M instructions per decision "
            f"(~{r['ms_at_clock']:.0f} ms at {MCU_CLOCK_HZ / 1e6:.0f} MHz); decisions equal float on "
            f"{100 * r['export_agreement']:.2f} % of held-out windows"
        )

    tried = []
    for name, precision in MCU_C:
        m4 = firmware_c.get(name)
        row = ok.get(name)
        if not m4 and name not in validated:
            continue
        tried.append(name)
        if name in blocked or (not m4 and row is None):
            continue
        if m4:
            if not m4["decisions_equal_host"] or (m4["export_agreement"] or 0) * 100 < min_agreement_pct:
                continue
            reason = m4_reason(m4, precision)
        else:  # streamed on this machine from the same C source; no Cortex-M4 build here
            assert row is not None  # without a row or a Cortex-M4 build it was skipped above
            reason = (
                f"generated C with {precision}: its host build streamed here, {row['agreement_pct']:.2f} % of "
                f"decisions equal to float, within every budget (the same C source the Cortex-M4 build compiles; "
                f"flash, RAM and instructions not measured: "
                f"{firmware_c.get('skipped') or 'no Cortex-M4 build in this run'})"
            )
        if name == "c_float32" and "c_int8" in tried:
            int8 = firmware_c.get("c_int8") or {}
            why = (
                "; ".join(blocked["c_int8"])
                if "c_int8" in blocked
                else f"keeps only {100 * int8.get('export_agreement', 0):.2f} % (< {min_agreement_pct:g} %)"
            )
            reason += f"; not the int8 build: {why}"
        return {"artifact": name, "reason": reason, "judged": True}
    for name in MCU_TFLM:
        if name not in validated:
            continue
        tried.append(name)
        row = ok.get(name)
        if name in blocked or row is None:
            continue
        reason = (
            f"full-integer model for TFLite Micro ({row['size_bytes']:,} B flatbuffer"
            + (f", {arena:,} B tensor arena" if arena else "")
            + f"); {row['agreement_pct']:.2f} % of streamed decisions equal to float, macro-F1 "
            f"{row['macro_f1_drop_pt']:+.2f} pt vs float"
        )
        return {"artifact": name, "reason": reason, "judged": True}
    named = [f"{n}: {'; '.join(blocked[n])}" for n in tried if n in blocked]
    if named:
        reason = "no microcontroller artifact meets every budget (" + " | ".join(named) + ")"
    elif tried:
        reason = (
            f"the generated C's Cortex-M4 build does not give the host build's decisions, or keeps fewer "
            f"than {min_agreement_pct:g} % of float's"
        )
    else:
        reason = "no microcontroller artifact (generated C, full-integer TFLite) was validated"
    return {"artifact": None, "reason": reason, "judged": bool(tried)}


def verdict(report: dict) -> list[str]:
    """Why the run fails, one line per target judged and left without a recommendation
    (empty: it passes). The rule is in :mod:`pipeline.validate.budgets`."""
    rec = report["recommendation"]
    return [
        f"no artifact can be recommended on a {rec[t]['label']}: {rec[t]['reason']}"
        for t in TARGET_LABELS
        if rec[t]["artifact"] is None and rec[t].get("judged", True)
    ]


def load_summary(samples: list[dict]) -> dict:
    """Whether the machine was busy while measuring: load average at or above its CPU
    count, or the calibration loop varying by more than 1.5x."""
    loads = [s["load1"] for s in samples if np.isfinite(s["load1"])]
    cal = [s["calibration_ms"] for s in samples]
    spread = max(cal) / min(cal) if cal else 1.0
    cpus = samples[0]["cpus"] if samples else 1
    loaded = bool((loads and max(loads) >= cpus) or spread > 1.5)
    return {
        "load1_max": max(loads) if loads else None,
        "cpus": cpus,
        "calibration_ms": cal,
        "calibration_spread": spread,
        "loaded": loaded,
    }


def validate(
    folder: str | Path,
    data_dir=None,
    budget: str | Path | None = None,
    out: str | Path | None = None,
    subset: int | None = None,
    seconds: float | None = None,
    chunk_s: float = 0.05,
    core: int | None = None,
    artifacts: list[str] | None = None,
    force: bool = False,
    progress=None,
    log=print,
    records: str | Path | None = None,
    record_options: dict | None = None,
    withhold: bool = False,
    target: str | None = None,
    budget_overrides: dict | None = None,
    ray: bool = False,
    address: str | None = None,
    workers: int | None = None,
) -> tuple[Path, dict]:
    """Validate the artifact folder; returns (report folder, report dict).

    ``subset``: only the first N recordings; ``seconds``: only the first S seconds of each
    (both for quick checks; the report says so). ``core``: the CPU core every child is
    pinned to (default: the lowest this process may use). ``records``: a folder of the
    user's own labelled recordings instead of the task's held-out split (see
    :mod:`pipeline.validate.heldout`); ``record_options``: ``fs_hz``, ``units``, ``gain``
    for its bare-number files. ``withhold``: score with unusable decisions withheld.
    ``target``: a declared target (:data:`pipeline.validate.budgets.TARGETS`) absolute
    latency limits are judged on; ``budget_overrides``: {limit key: value} set by the user
    on top of the budget file.

    ``ray``: stream on local Ray (``workers`` CPUs, default all this process may use), one
    task per recording (:mod:`pipeline.validate.distributed`); ``address``: on the Ray
    cluster there (implies ``ray``; a dead address is refused in seconds). The report is
    the sequential run's, with the timing caveat of a distributed run; a folder with
    nothing to score is refused after streaming, not before (the workers read the records).

    Every input error (folder, budget, output folder, artifact names) is found before
    anything streams; the report folder is written whole or not at all, by one run at a
    time.
    """
    from pipeline.folders import atomic_folder, work_dir
    from pipeline.validate.budgets import check_budget_artifacts
    from pipeline.validate.heldout import Heldout, check_scorable, read_recording, user_record_ids

    distributed = bool(ray or address)
    _check_ray_options(distributed, address, workers, core)
    folder = Path(folder)
    manifest = read_manifest(folder)  # every file's sha256 and size checked
    _training_metrics(manifest)  # the source run's files, refused now if they must be
    budget_spec = load_budget(budget, manifest.task, budget_overrides)
    target_scale(target, [])  # an unknown target is refused before anything streams
    out_dir = Path(out) if out else default_out(folder)
    available = runnable_artifacts(manifest)
    if REFERENCE not in available:
        raise ValidateError(f"{folder}: no '{REFERENCE}' artifact to hold the others against")
    chosen = artifacts or available
    unknown = [a for a in chosen if a not in available]
    if unknown:
        raise ValidateError(f"{folder}: cannot stream {unknown} (runnable: {available})")
    chosen = [REFERENCE, *[a for a in chosen if a != REFERENCE]]
    check_budget_artifacts(budget_spec, chosen)
    if core is None and hasattr(os, "sched_getaffinity") and not distributed:
        core = min(os.sched_getaffinity(0))
    classes = list(manifest.classes)
    ids = user_record_ids(manifest, records) if records else heldout_ids(manifest)
    split_total = len(ids)
    ids = ids[:subset] if subset else ids
    t0 = time.perf_counter()

    with atomic_folder(out_dir, force, "report") as tmp_out, work_dir("biosig-validate") as tmp:
        heldouts: list[Heldout] = []
        recordings: list[dict] = []
        notes: list[dict] = []  # per user recording: how it was read
        duration_s = 0.0
        measured: dict[str, dict] = {}
        decisions: dict = {}
        load_samples: list[dict] = []
        where = None
        if distributed:
            from pipeline.validate.distributed import merge_measured, run_on_ray

            log(
                f"validating {len(chosen)} artifacts on {len(ids)} "
                f"{'recordings of ' + str(records) if records else 'held-out recordings'} on Ray"
            )
            parts, where = run_on_ray(
                {
                    "folder": str(folder.resolve()),
                    "artifacts": chosen,
                    "records": str(Path(records).resolve()) if records else None,
                    "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
                    "seconds": seconds,
                    "record_options": record_options,
                    "chunk_s": chunk_s,
                    "withhold": withhold,
                    "n_classes": len(classes),
                },
                ids,
                address,
                workers,
                progress,
                log,
            )
            for part in parts:
                heldouts.append(part["heldout"])
                if records:
                    notes.append(part["note"])
                duration_s += part["duration_s"]
                load_samples += part["load"]
            check_scorable(manifest, heldouts, str(records) if records else "the held-out split")
            for name in chosen:
                measured[name] = merge_measured([(p["id"], p["measured"][name]) for p in parts])
                if "error" in measured[name]:
                    log(f"  {name}: FAILED: {measured[name]['error']}")
                else:
                    decisions[name] = {p["id"]: p["decisions"][name] for p in parts}
        else:
            for rid in (progress or (lambda x: x))(ids):
                h, note = read_recording(manifest, rid, records, data_dir, seconds, record_options)
                if note is not None:
                    notes.append(note)
                raw = Path(tmp) / f"{len(recordings)}.f32"
                h.signal.astype(np.float32).tofile(raw)  # the children memory-map it
                duration_s += h.duration_s
                heldouts.append(h)
                recordings.append(h.measure_entry(str(raw)))
                h.signal = h.signal[: int(60 * h.fs_hz)]  # keep a minute for the strip plot
            check_scorable(manifest, heldouts, str(records) if records else "the held-out split")
            log(
                f"validating {len(chosen)} artifacts on {len(ids)} {'recordings of ' + str(records) if records else 'held-out recordings'} "
                f"({duration_s / 60:.1f} min of signal), pinned to core {core}"
            )
            measured, decisions, load_samples = _stream_sequentially(
                folder, chosen, recordings, ids, len(classes), chunk_s, core, withhold, tmp, log
            )
        if "error" in measured[REFERENCE]:
            raise ValidateError(f"the float reference failed to run: {measured[REFERENCE]['error']}")
        report = _report(
            ReportInputs(
                manifest=manifest,
                folder=folder,
                chosen=chosen,
                measured=measured,
                decisions=decisions,
                heldouts=heldouts,
                ids=ids,
                classes=classes,
                budget_spec=budget_spec,
                load=load_summary(load_samples),
                duration_s=duration_s,
                split_total=split_total,
                seconds=seconds,
                chunk_s=chunk_s,
                core=core,
                records=records,
                notes=notes,
                withhold=withhold,
                log=log,
                t0=t0,
                target=target,
                distributed=where,
            )
        )
        from pipeline.validate.report import write_report

        latency_s = {n: m.get("latency_s", []) for n, m in measured.items()}
        write_report(report, heldouts, decisions, latency_s, tmp_out)
    return out_dir, report


def _stream_sequentially(
    folder: Path,
    chosen: list[str],
    recordings: list[dict],
    ids: list[str],
    n_classes: int,
    chunk_s: float,
    core: int | None,
    withhold: bool,
    tmp: str,
    log: Callable[..., Any],
) -> tuple[dict[str, dict], dict, list[dict]]:
    """Every artifact of ``chosen`` over every recording (job entries), one measuring
    child each, pinned to ``core``; returns (measured, decisions, machine load samples)."""
    from pipeline.validate.distributed import measure_job

    measured: dict[str, dict] = {}
    decisions: dict = {}
    load_samples = []
    for k, name in enumerate(chosen, 1):
        t = time.perf_counter()
        load_samples.append(machine_load())
        log(f"  [{k}/{len(chosen)}] streaming {name} ...")
        events_path = str(Path(tmp) / f"{name}.events.jsonl")
        try:
            measured[name] = measure_in_child(
                measure_job(str(folder.resolve()), name, chunk_s, core, recordings, events_path, withhold)
            )
            decisions[name] = score.decisions_from_events(events_path, ids, n_classes)
            log(
                f"  [{k}/{len(chosen)}] {name}: {measured[name]['signal_seconds'] / measured[name]['push_seconds']:.0f}x "
                f"real time ({time.perf_counter() - t:.0f} s)"
            )
        except RuntimeError as e:
            measured[name] = {"error": str(e)}
            log(f"  {name}: FAILED: {e}")
    load_samples.append(machine_load())
    return measured, decisions, load_samples


def _check_ray_options(distributed: bool, address: str | None, workers: int | None, core: int | None) -> None:
    """Refuse, before anything is read, Ray options that do not go together, a missing
    Ray, and an address nothing answers at (in seconds)."""
    if workers is not None and not distributed:
        raise ValidateError("--workers sets local Ray's CPUs: give --ray with it")
    if workers is not None and address:
        raise ValidateError("--workers sets local Ray's CPUs; a cluster at --address has its own")
    if core is not None and distributed:
        raise ValidateError("--core pins the sequential run to one core; a Ray run spreads over its workers")
    if not distributed:
        return
    from pipeline.cluster import check_address, import_ray

    import_ray("--address" if address else "--ray")
    if address:
        check_address(address, error=ValidateError, without="give --ray alone to validate on this machine")


@dataclass
class ReportInputs:
    """What one validation run measured and was asked, for :func:`_report`.

    ``chosen``: artifact names streamed, the reference first; ``measured``: name -> the
    child's measurement (``latency_s``, ``signal_seconds``, ``push_seconds``, ... or
    ``error``); ``decisions``: name -> the decisions scored; ``heldouts``: the recordings
    read; ``ids``: their ids (of ``split_total`` in the split); ``load``: the machine load
    summary; ``duration_s``: seconds of signal streamed; ``seconds``: the per-recording
    limit (None: whole); ``t0``: ``time.perf_counter()`` when validation started;
    ``distributed``: where a Ray run ran (:func:`pipeline.validate.distributed.run_on_ray`),
    None for the sequential run."""

    manifest: Manifest
    folder: Path
    chosen: list[str]
    measured: dict[str, dict]
    decisions: dict
    heldouts: list
    ids: list[str]
    classes: list[str]
    budget_spec: dict
    load: dict
    duration_s: float
    split_total: int
    seconds: float | None
    chunk_s: float
    core: int | None
    records: str | Path | None
    notes: list
    withhold: bool
    log: Callable[..., Any]
    t0: float
    target: str | None = None
    distributed: dict | None = None


def _report(inputs: ReportInputs) -> dict:
    """The report dict from what one validation run measured (``inputs``)."""
    manifest = inputs.manifest
    entries = {a.name: a for a in manifest.artifacts}
    rows = []
    ref_metrics = None
    for name in inputs.chosen:
        entry, m = entries[name], inputs.measured[name]
        row = {
            "artifact": name,
            "format": entry.format,
            "precision": entry.precision,
            "graph": entry.graph,
            "size_bytes": _device_bytes(manifest, entry),
            "stored_as": STORED_AS.get(entry.format, entry.format),
            "export_check": entry.vs_float,
            "meets_agreement_target": entry.meets_agreement_target,
        }
        if "error" in m:
            rows.append({**row, "status": "error", "error": m["error"]})
            continue
        if manifest.kind == "ecg-beats":
            cm = score.ecg_confusion(inputs.heldouts, inputs.decisions[name], inputs.classes)
        else:
            cm = score.eeg_confusion(inputs.heldouts, inputs.decisions[name], len(inputs.classes))
        metrics = score.summarise(cm, inputs.classes, manifest.kind, manifest.positive_class)
        ref_metrics = ref_metrics or metrics
        agree = score.agreement(inputs.decisions[REFERENCE], inputs.decisions[name])
        lat = latency_summary(m["latency_s"])
        rows.append(
            {
                **row,
                "status": "ok",
                "metrics": metrics,
                "decisions": agree["n"] + agree["unpaired"] // 2,
                "agreement_pct": 100 * agree["agreement"],
                "unpaired": agree["unpaired"],
                "max_abs_diff": agree["max_abs_diff"],
                "mean_abs_diff": agree["mean_abs_diff"],
                "macro_f1": metrics["macro_f1"],
                "kappa": metrics["kappa"],
                "macro_f1_drop_pt": 100 * (ref_metrics["macro_f1"] - metrics["macro_f1"]),
                "latency_ms": lat,
                "p99_latency_ms": lat["p99"],
                "x_real_time": m["signal_seconds"] / m["push_seconds"],
                "push_seconds": m["push_seconds"],
                "peak_rss_mb": m["peak_rss_mb"],
                "tensorflow_imported": bool(m["heavy_modules"]),
                "versions": m["versions"],
            }
        )
    ref_row = rows[0]
    for row in rows:
        if row["status"] == "ok":
            row["p99_latency_ratio"] = row["p99_latency_ms"] / ref_row["p99_latency_ms"]
            row["throughput_ratio"] = row["x_real_time"] / ref_row["x_real_time"]
    target_info = target_scale(inputs.target, inputs.load["calibration_ms"])
    budget_results = check_budget(
        inputs.budget_spec,
        rows,
        REFERENCE,
        loaded=inputs.load["loaded"],
        target=target_info,
        distributed=inputs.distributed is not None,
    )
    firmware_c = firmware_check(inputs.folder, manifest, inputs.log)
    versions = {}
    for m in inputs.measured.values():
        versions.update(m.get("versions", {}))
    if inputs.records:
        split = {
            "name": "user records",
            "folder": str(Path(inputs.records).resolve()),
            "by": "recording",
            "recordings": inputs.ids,
            "complete": len(inputs.ids) == inputs.split_total and not inputs.seconds,
            "of_total": inputs.split_total,
            "seconds_per_recording": inputs.seconds,
            "signal_s": inputs.duration_s,
            "notes": inputs.notes,
            "train": len(manifest.split.train),
            "val": len(manifest.split.val),
        }
    else:
        split = {
            "name": "test",
            "by": manifest.split.by,
            "recordings": inputs.ids,
            "complete": len(inputs.ids) == inputs.split_total and not inputs.seconds,
            "of_total": inputs.split_total,
            "seconds_per_recording": inputs.seconds,
            "signal_s": inputs.duration_s,
            "train": len(manifest.split.train),
            "val": len(manifest.split.val),
        }
    report = {
        "schema": "biosig-edge-validation/1",
        "task": manifest.task,
        "dataset": manifest.dataset,
        "kind": manifest.kind,
        "classes": inputs.classes,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "artifact_folder": str(inputs.folder.resolve()),
        "reference": REFERENCE,
        "split": split,
        "method": {
            "chunk_s": inputs.chunk_s,
            "match_tolerance_s": score.MATCH_TOLERANCE_S,
            "withhold_unusable": inputs.withhold,
            "latency": "wall time of a push that emitted decisions, divided by their number",
            "throughput": "seconds of signal per second spent inside push",
        },
        "machine": {
            **machine(inputs.core),
            # A Ray run: the driver's machine above; the children ran on the workers.
            **({"cores_used": inputs.distributed["workers"]} if inputs.distributed else {}),
            "versions": versions,
            "load": inputs.load,
        },
        "distributed": inputs.distributed,
        "rows": rows,
        "budget": inputs.budget_spec,
        "budget_results": budget_results,
        "budget_passed": all(r["passed"] or not r["counted"] for r in budget_results),
        "target": target_info,
        "recommendation": recommend(
            rows,
            budget_results,
            manifest.arena_bytes,
            firmware_c,
            inputs.budget_spec.get("min_agreement_pct", 99.5),
            cpu_label=target_info["label"] if target_info else TARGET_LABELS["raspberry_pi_cpu"],
            rank_speed=inputs.distributed is None,
        ),
        "firmware_c": firmware_c,
        "export": {
            "targets": manifest.targets,
            "firmware": manifest.firmware,
            "evaluation": manifest.evaluation,
            "generated_c": {
                a.name: a.vs_float for a in manifest.artifacts if a.graph == "generated-c" and a.name.startswith("c_")
            },
        },
        "training": _training_metrics(manifest),
        "wall_s": time.perf_counter() - inputs.t0,
    }
    report["failures"] = verdict(report)
    report["passed"] = not report["failures"]
    return report
