"""``biosig-edge export RUN_DIR``: every deployable format, each checked against float."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BiosigError
from pipeline.folders import FolderWriter
from pipeline.manifest import (
    SCHEMA,
    ArtifactEntry,
    InputSpec,
    Manifest,
    QualitySpec,
    RRSpec,
    SideFeatures,
    SourceRun,
    SplitSpec,
    StreamingSpec,
    TemplateSpec,
    WindowSpec,
    sha256_bytes,
    write_manifest,
)
from pipeline.metrics import classification_metrics, confusion_matrix

#: Agreement targets for the full-int8 model (issue: Liu & Richardson 2021 anchor).
INT8_MAX_SIZE_RATIO = 0.30
MIN_AGREEMENT = 0.995
MAX_MACRO_F1_DROP = 0.005


class ExportError(BiosigError):
    """A run folder that cannot be exported (missing model, too little calibration data)."""


def _tools() -> dict:
    out: dict[str, str | None] = {}
    for dist in (
        "biosig-edge",
        "tensorflow",
        "tf-keras",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
        "tflite-micro",
        "numpy",
        "scipy",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _stratified(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of about n windows with every class represented (at least min(count, n/k/2))."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    floor = max(1, n // (2 * len(classes)))
    picked = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        picked.append(rng.choice(idx, min(len(idx), floor), replace=False))
    rest = np.setdiff1d(np.arange(len(y)), np.concatenate(picked))
    extra = rng.choice(rest, max(0, min(len(rest), n - sum(map(len, picked)))), replace=False)
    return np.sort(np.concatenate(picked + [extra]))


def compare(probs: np.ndarray, ref: np.ndarray, y: np.ndarray, classes: list[str]) -> dict:
    """Agreement of an artifact's decisions with the float reference, and its own metrics."""
    m = classification_metrics(confusion_matrix(y, probs.argmax(1), len(classes)), classes)
    diff = np.abs(probs - ref)
    return {
        "n": int(len(y)),
        "agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "macro_f1": m["macro_f1"],
        "accuracy": m["accuracy"],
        "kappa": m["kappa"],
    }


@dataclass
class ExportInputs:
    """What every export step reads: the run, its Keras model (and the batch-1 rebuild
    the converters take), the float reference's probabilities on the test windows, and
    the calibration windows.

    ``test_inputs``/``rep_inputs``/``train_inputs``: input name -> array (n_windows, ...)
    as the model takes it (``signal`` (n, n_steps, n_channels) float32, ``side`` (n,
    n_side) standardised when the model has one). ``ref``: (n_test, n_classes) Keras
    probabilities; ``y_te``: (n_test,) class indices."""

    run_dir: Path
    run: dict
    cfg: Any
    classes: list[str]
    model: Any
    fixed: Any
    names: list[str]
    test_inputs: dict[str, np.ndarray]
    y_te: np.ndarray
    ref: np.ndarray
    ref_metrics: dict
    rep_inputs: dict[str, np.ndarray]
    train_inputs: dict[str, np.ndarray]

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    def representative(self):
        """The int8 converters' calibration: one representative window at a time."""
        for i in range(len(self.rep_inputs["signal"])):
            yield {k: v[i : i + 1] for k, v in self.rep_inputs.items()}


@dataclass
class Made:
    """What an export step made: its manifest entries (in the manifest's order) and the
    bytes of the files it has not written yet, by entry name (written and hashed by
    :func:`_write_blobs`)."""

    artifacts: list[dict] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, step: Made) -> None:
        """Append a later step's entries and bytes."""
        self.artifacts += step.artifacts
        self.blobs.update(step.blobs)


def export_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    data_dir=None,
    eval_limit: int = 0,
    representative_size: int = 500,
    force: bool = False,
    stream_eval: int = 500,
    log=print,
) -> Path:
    """Export a run folder; return the artifact folder.

    The folder is written under a temporary name and renamed at the end, so a failure
    leaves nothing half-written behind.
    """
    from pipeline.train.config import config_from_dict

    run_dir = Path(run_dir)
    for name in ("model.keras", "run.json"):
        if not (run_dir / name).is_file():
            raise ExportError(f"{run_dir}: no {name} (is it a run folder from 'biosig-edge train'?)")
    run = json.loads((run_dir / "run.json").read_text())
    cfg = config_from_dict(run["config"])
    out_dir = Path(out_dir) if out_dir else run_dir / "artifacts"
    if out_dir.exists() and not force:
        raise ExportError(f"{out_dir}: already exists (use --force to replace it)")
    ctx = read_inputs(run_dir, run, cfg, data_dir, eval_limit, representative_size, log)

    writer = FolderWriter(out_dir, force, "artifact folder")  # one writer at a time; a temporary name
    tmp = writer.tmp
    try:
        made = Made()
        made.add(export_tflite(ctx, log))
        made.add(export_onnx(ctx, log))
        made.add(export_reference(ctx, log))
        streaming, step = export_streaming(ctx, stream_eval, log)
        made.add(step)
        firmware, step = export_tflm_check(ctx, made, tmp, log)  # takes tflite_int8 from made
        made.add(step)
        firmware["generated_c"], step = export_generated_c(ctx, tmp, log)
        made.add(step)
        _write_blobs(made, tmp, log)
        _mark_agreement(made.artifacts, log)
        write_manifest(tmp, _manifest(ctx, streaming, made.artifacts, firmware))  # sealed, checked
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return out_dir


def read_inputs(
    run_dir: Path, run: dict, cfg, data_dir, eval_limit: int, representative_size: int, log
) -> ExportInputs:
    """Load the run's model and windows; compute the float reference on the test split
    (``eval_limit`` stratified windows, 0: all) and pick ``representative_size``
    stratified training windows for calibration."""
    from pipeline.export.graph import input_names, rebuild_fixed_batch
    from pipeline.train.data import load_windows
    from pipeline.train.model import load_model, predict
    from pipeline.window.side import Standardiser

    classes = run["classes"]
    split = run["split"]

    model = load_model(run_dir / "model.keras")
    fixed = rebuild_fixed_batch(model, 1)
    names = input_names(fixed)
    std = Standardiser(np.asarray(run["side_mean"]), np.asarray(run["side_std"]))

    log(f"reading the training split (calibration) and the test split (evaluation) of {cfg.task}")
    table = load_windows(cfg, sorted(split["train"]) + sorted(split["test"]), data_dir)
    x_tr, s_tr, y_tr = table.take(split["train"], classes)
    if len(y_tr) < 100:
        raise ExportError(
            f"{run_dir}: representative set too small: {len(y_tr)} training windows "
            f"(need at least 100 to calibrate int8)"
        )
    rep_idx = _stratified(y_tr, representative_size, cfg.seed)
    x_te, s_te, y_te = table.take(split["test"], classes)
    if eval_limit:
        keep = _stratified(y_te, eval_limit, cfg.seed)
        x_te, s_te, y_te = x_te[keep], s_te[keep], y_te[keep]

    def feed(x, s):
        return {"signal": x, "side": std(s)} if "side" in names else {"signal": x}

    test_inputs = feed(x_te, s_te)
    ref = predict(model, [test_inputs[n] for n in names])
    ref_metrics = compare(ref, ref, y_te, classes)
    log(f"float reference (Keras) on {len(y_te)} test windows: macro-F1 {ref_metrics['macro_f1']:.4f}")
    return ExportInputs(
        run_dir=run_dir,
        run=run,
        cfg=cfg,
        classes=classes,
        model=model,
        fixed=fixed,
        names=names,
        test_inputs=test_inputs,
        y_te=y_te,
        ref=ref,
        ref_metrics=ref_metrics,
        rep_inputs=feed(x_tr[rep_idx], s_tr[rep_idx]),
        train_inputs=feed(x_tr, s_tr),
    )


def export_tflite(ctx: ExportInputs, log) -> Made:
    """The whole-window TFLite variants (``VARIANTS``), each run by LiteRT on the test
    windows and compared with float; a variant that fails is listed as failed."""
    from pipeline.export.tflite import FORBIDDEN_OPS, VARIANTS, convert
    from pipeline.runtime.backends import LiteRTModel

    made = Made()
    for variant, (precision, description) in VARIANTS.items():
        entry: dict[str, Any] = {
            "name": variant,
            "file": f"{variant}.tflite",
            "format": "tflite",
            "precision": precision,
            "description": description,
            "graph": "whole-window",
        }
        t0 = time.perf_counter()
        try:
            blob = convert(ctx.fixed, variant, ctx.representative)
            runner = LiteRTModel(blob)
            bad_ops = [op for op in runner.ops if any(f in op for f in FORBIDDEN_OPS)]
            if bad_ops:
                raise ExportError(f"non-builtin or loop ops {bad_ops}")
            probs = runner.predict(ctx.test_inputs)
        except Exception as err:  # the converter's and interpreter's errors vary widely
            entry.update(status="failed", reason=f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
            log(f"  {variant}: FAILED: {entry['reason']}")
            made.artifacts.append(entry)
            continue
        inputs, outputs = runner.tensor_details()
        entry.update(
            status="ok",
            ops=runner.ops,
            inputs=inputs,
            outputs=outputs,
            vs_float=compare(probs, ctx.ref, ctx.y_te, ctx.classes),
            seconds=time.perf_counter() - t0,
        )
        made.blobs[variant] = blob
        made.artifacts.append(entry)
        log(f"  {variant}: {len(blob)} bytes, agreement {entry['vs_float']['agreement']:.4f}")
    return made


def export_onnx(ctx: ExportInputs, log) -> Made:
    """The whole-window ONNX model in float32 and its dynamic-int8 quantisation, each run
    by ONNX Runtime on the test windows; one failed entry if either fails."""
    from pipeline.export.onnx_export import OPSET, check, quantise_dynamic, to_onnx
    from pipeline.runtime.backends import OnnxModel

    made = Made()

    def run(name: str, blob: bytes, precision: str) -> dict:
        ops = check(blob)
        probs = OnnxModel(blob).predict(ctx.test_inputs)
        entry: dict[str, Any] = {
            "name": name,
            "file": f"{name}.onnx",
            "format": "onnx",
            "precision": precision,
            "opset": OPSET,
            "status": "ok",
            "ops": ops,
            "graph": "whole-window",
            "vs_float": compare(probs, ctx.ref, ctx.y_te, ctx.classes),
        }
        entry["inputs"], entry["outputs"] = OnnxModel(blob).tensor_details()
        made.blobs[name] = blob
        made.artifacts.append(entry)
        return entry

    shapes = {n: tuple(ctx.test_inputs[n].shape[1:]) for n in ctx.names}
    try:
        blob = to_onnx(ctx.fixed, {n: (1, *shapes[n]) for n in ctx.names})
        entry = run("onnx_float32", blob, "float32")
        log(
            f"  onnx_float32: {len(blob)} bytes, ops {entry['ops']}, max |diff| {entry['vs_float']['max_abs_diff']:.2e}"
        )
        qblob = quantise_dynamic(blob)
        qentry = run("onnx_dynamic_int8", qblob, "dynamic-int8")
        log(f"  onnx_dynamic_int8: {len(qblob)} bytes, agreement {qentry['vs_float']['agreement']:.4f}")
    except Exception as err:
        made.artifacts.append(
            {
                "name": "onnx_float32",
                "file": "onnx_float32.onnx",
                "format": "onnx",
                "precision": "float32",
                "status": "failed",
                "reason": f"{type(err).__name__}: {str(err)[:300]}",
            }
        )
        log(f"  onnx: FAILED: {err}")
    return made


def export_tflm_check(ctx: ExportInputs, made: Made, tmp: Path, log) -> tuple[dict, Made]:
    """The full-int8 TFLite model under TFLite Micro (the Cortex-M interpreter): its arena
    and its decisions against LiteRT's and float's on up to 500 test windows; the model as
    a C array (``model_int8.{c,h}``, written here). Returns the manifest's ``firmware``
    section ({} without a ``tflite_int8`` model) and the C array's entries."""
    from firmware_export.c_array import write_c_array
    from firmware_export.tflm import TFLMModel
    from pipeline.runtime.backends import LiteRTModel

    if "tflite_int8" not in made.blobs:
        return {}, Made()
    out = Made()
    int8_blob = made.blobs["tflite_int8"]
    int8_entry = next(a for a in made.artifacts if a["name"] == "tflite_int8")
    order = [i["name"] for i in int8_entry["inputs"]]
    tflm = TFLMModel(int8_blob, order)
    n_check = min(len(ctx.y_te), 500)
    sub = _stratified(ctx.y_te, n_check, ctx.seed)
    tflm_probs = tflm.predict({k: v[sub] for k, v in ctx.test_inputs.items()})
    litert_probs = LiteRTModel(int8_blob).predict({k: v[sub] for k, v in ctx.test_inputs.items()})
    firmware: dict[str, Any] = {
        "arena_bytes": tflm.arena_bytes(),
        "checked_windows": int(len(sub)),
        "tflm_vs_litert_int8_agreement": float((tflm_probs.argmax(1) == litert_probs.argmax(1)).mean()),
        "tflm_vs_litert_int8_max_abs_diff": float(np.abs(tflm_probs - litert_probs).max()),
        "tflm_vs_float": compare(tflm_probs, ctx.ref[sub], ctx.y_te[sub], ctx.classes),
    }
    sha = sha256_bytes(int8_blob)
    src, hdr = write_c_array(
        int8_blob, tmp, "model_int8", int8_entry["inputs"], int8_entry["outputs"], ctx.classes, sha
    )
    for path in (src, hdr):
        data = path.read_bytes()
        out.artifacts.append(
            {
                "name": path.name,
                "file": path.name,
                "format": "c",
                "precision": "int8",
                "status": "ok",
                "sha256": sha256_bytes(data),
                "bytes": len(data),
                "inputs": int8_entry["inputs"],
                "outputs": int8_entry["outputs"],
            }
        )
    log(
        f"  TFLM: arena {firmware['arena_bytes']} bytes; decisions equal LiteRT int8 on "
        f"{100 * firmware['tflm_vs_litert_int8_agreement']:.1f} % of {len(sub)} windows"
    )
    return firmware, out


def _write_blobs(made: Made, tmp: Path, log) -> None:
    """Write each step's bytes into the folder and complete its entry: ``sha256``,
    ``bytes``, and for TFLite whether tflite-runtime 2.14 can run it."""
    from pipeline.export.tflite import tflite_runtime_support

    for name, blob in made.blobs.items():
        entry = next(a for a in made.artifacts if a["name"] == name)
        (tmp / entry["file"]).write_bytes(blob)
        entry["sha256"], entry["bytes"] = sha256_bytes(blob), len(blob)
        if entry["format"] == "tflite":
            entry["stored_as"] = "flatbuffer"
            entry["tflite_runtime"] = tflite_runtime_support(blob)
            if not entry["tflite_runtime"]["supported"]:
                log(f"  {name}: tflite-runtime 2.14 cannot run it: needs {', '.join(entry['tflite_runtime']['needs'])}")


def _manifest(ctx: ExportInputs, streaming: StreamingSpec, artifacts: list[dict], firmware: dict) -> Manifest:
    """The manifest (unsealed) from the run, the steps' entries (each checked as a device
    reads it) and sections."""
    cfg, run = ctx.cfg, ctx.run
    rr, template = beat_contract(cfg)
    return Manifest(
        schema=SCHEMA,
        task=cfg.task,
        dataset=cfg.dataset,
        kind=cfg.kind,
        classes=tuple(ctx.classes),
        positive_class=cfg.positive_class or None,
        input=input_contract(cfg, run["preprocess"]),
        preprocess={k: v for k, v in run["preprocess"].items() if k != "fs_out_hz"},
        window=window_contract(cfg, run),
        side_features=SideFeatures(
            names=tuple(run["side_features"]),
            mean=tuple(run["side_mean"]),
            std=tuple(run["side_std"]),
            clip=run.get("side_clip"),
            extra={"formula": "clip((x - mean) / std, -clip, clip)"},
        ),
        rr=rr,
        template=template,
        split=SplitSpec.of(**run["split"]),
        evaluation={"split": "test", "windows": int(len(ctx.y_te)), "float_reference": ctx.ref_metrics},
        # What training windows looked like, for the device's amplitude check (a window
        # far beyond it is not what the model learnt from).
        quality=QualitySpec(amplitude_p999=float(np.percentile(np.abs(ctx.train_inputs["signal"]), 99.9))),
        representative={"split": "train", "windows": int(len(ctx.rep_inputs["signal"]))},
        streaming=streaming,
        artifacts=tuple(ArtifactEntry.from_dict(a, "export's entries", i) for i, a in enumerate(artifacts)),
        firmware=firmware,
        targets=_targets(artifacts, ctx.ref_metrics),
        source_run=SourceRun(
            folder=str(ctx.run_dir), model_sha256=sha256_bytes((ctx.run_dir / "model.keras").read_bytes())
        ),
        tools=_tools(),
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def input_contract(cfg, preprocess: dict) -> InputSpec:
    """What the model takes in, for the manifest's ``input``: the dataset's units, the
    config's channels with the names accepted for each (the card's aliases), the lowest
    rate that still carries the model's band (2.5x its low-pass edge: a 40 Hz band needs
    100 Hz), and the plausible range of a sample."""
    from pipeline.read.cards import load_card

    card = load_card(cfg.dataset)
    aliases = card.raw.get("channel_aliases", {})
    band_hz = preprocess.get("lowpass_hz") or preprocess["fs_in_hz"] / preprocess["decimate"] / 2
    low, high = card.raw.get("valid_range", [-1e9, 1e9])
    return InputSpec(
        units=card.raw["units"],
        channels=tuple(cfg.channels),
        channel_aliases={
            c: list(aliases.get(c, []))
            for c in dict.fromkeys(a for ch in cfg.channels for a in ch.split("|"))
            if aliases.get(c)
        },
        min_fs_hz=2.5 * band_hz,
        valid_range=(low, high),
    )


def window_contract(cfg, run: dict) -> WindowSpec:
    """The window in samples at the model rate, as training cut it."""
    from pipeline.window.ecg import window_bounds

    fs_out = run["preprocess"]["fs_in_hz"] / run["preprocess"]["decimate"]
    n_steps, n_channels = run["input_shape"][0], run["input_shape"][1]
    if cfg.kind == "ecg-beats":
        n_before, n_after = window_bounds(cfg.window.before_s, cfg.window.after_s, fs_out)
        return WindowSpec(n_steps, n_channels, cfg.window.normalise, n_before_samples=n_before, n_after_samples=n_after)
    return WindowSpec(n_steps, n_channels, cfg.window.normalise, hop_samples=int(round(cfg.window.hop_s * fs_out)))


def beat_contract(cfg) -> tuple[RRSpec | None, TemplateSpec | None]:
    """ECG: the RR tracker's and the beat template's settings, as training used them."""
    if cfg.kind != "ecg-beats":
        return None, None
    from pipeline.window.rr import RRFeatures
    from pipeline.window.template import BeatTemplate

    rr, template = RRFeatures(), BeatTemplate()
    return (
        RRSpec(local_beats=rr.local_beats, average_s=rr.average_s),
        TemplateSpec(alpha=template.alpha, min_scale=template.min_scale),
    )


def export_reference(ctx: ExportInputs, log) -> Made:
    """The float weights as ``reference_float32.npz`` for the device's numpy reference."""
    import io

    from pipeline.runtime.reference import NumpyLSTM, keras_weights

    model, test_inputs, ref, y_te, classes, seed = ctx.model, ctx.test_inputs, ctx.ref, ctx.y_te, ctx.classes, ctx.seed
    weights = keras_weights(model)
    buf = io.BytesIO()
    np.savez(buf, **weights)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle flag
    blob = buf.getvalue()
    sub = _stratified(y_te, min(300, len(y_te)), seed)
    probs = NumpyLSTM(weights).predict({k: v[sub] for k, v in test_inputs.items()})
    entry: dict[str, Any] = {
        "name": "reference_float32",
        "file": "reference_float32.npz",
        "format": "npz",
        "precision": "float32",
        "graph": "weights",
        "status": "ok",
        "arrays": {k: list(v.shape) for k, v in weights.items()},
        "inputs": [{"name": n} for n in test_inputs],
        "outputs": [{"name": "probs"}],
        "vs_float": compare(probs, ref[sub], y_te[sub], classes),
    }
    log(f"  reference_float32 (numpy LSTM): max |diff| vs Keras {entry['vs_float']['max_abs_diff']:.2e}")
    return Made([entry], {"reference_float32": blob})


def export_streaming(ctx: ExportInputs, stream_eval: int, log) -> tuple[StreamingSpec, Made]:
    """Chunk-plus-state variants, each run chunk by chunk over test windows and compared
    with the whole-window float model (``stream_eval`` windows: every chunk is one invoke).
    Returns the manifest's ``streaming`` section and the variants' entries.

    Calibration: the first 200 representative windows (typical states), and for the 16-bit
    variant also the training windows that hold each state unit's extremes, so its state
    tensors cover the range the float state reaches over the whole training split
    (``train_inputs``); an 8-bit cell state cannot hold that range (NOTES-int8.md), so the
    int8 variant keeps the typical one.
    """
    from pipeline.export import streaming as st
    from pipeline.export.onnx_export import OPSET, check, quantise_dynamic
    from pipeline.runtime.backends import LiteRTStream, OnnxStream, run_chunks
    from pipeline.runtime.reference import keras_weights

    model, cfg, rep_inputs, train_inputs = ctx.model, ctx.cfg, ctx.rep_inputs, ctx.train_inputs
    test_inputs, ref, y_te, classes = ctx.test_inputs, ctx.ref, ctx.y_te, ctx.classes
    made = Made()
    artifacts, blobs = made.artifacts, made.blobs
    n_steps = test_inputs["signal"].shape[1]
    chunk_len = st.chunk_length(n_steps)
    unrolled = st.build_streaming(model, chunk_len, unroll=True)
    units = st.state_sizes(unrolled)
    n_rep = min(200, len(rep_inputs["signal"]))
    rep_sides = rep_inputs["side"][:n_rep] if "side" in rep_inputs else None
    feeds = st.representative_feeds(unrolled, rep_inputs["signal"][:n_rep], rep_sides, chunk_len)
    weights = keras_weights(model)
    train_ranges = st.state_ranges(weights, train_inputs["signal"])
    extreme = train_ranges["extreme_windows"]
    ext_sides = train_inputs["side"][extreme] if "side" in train_inputs else None
    feeds_full = feeds + st.representative_feeds(unrolled, train_inputs["signal"][extreme], ext_sides, chunk_len)
    cal_windows = np.concatenate([rep_inputs["signal"][:n_rep], train_inputs["signal"][extreme]])
    calibration: dict[str, Any] = {
        "typical_windows": n_rep,
        "state_extreme_windows": len(extreme),
        "training_windows": int(len(train_inputs["signal"])),
        "state_coverage_typical": st.state_coverage(
            st.state_ranges(weights, rep_inputs["signal"][:n_rep]), train_ranges, warn=False
        ),
        "state_coverage": st.state_coverage(st.state_ranges(weights, cal_windows), train_ranges, log=log),
        "int8": "typical windows",
        "int16x8": "typical and state-extreme windows",
    }
    feeds_for = {"int8": feeds, "int16x8": feeds_full}
    sub = _stratified(y_te, min(stream_eval, len(y_te)), cfg.seed)
    sides = test_inputs.get("side")

    def evaluate(stepper) -> dict:
        probs = np.stack(
            [
                run_chunks(
                    stepper.step, test_inputs["signal"][i], units, chunk_len, None if sides is None else sides[i]
                )
                for i in sub
            ]
        )
        return compare(probs, ref[sub], y_te[sub], classes)

    variants = [
        (f"stream_tflite_{v}", "tflite", v.replace("_", "-")) for v in ("float32", "dynamic_int8", "int8", "int16x8")
    ]
    for name, fmt, precision in variants:
        entry: dict[str, Any] = {
            "name": name,
            "file": f"{name}.tflite",
            "format": fmt,
            "precision": precision,
            "graph": "stream",
        }
        try:
            blob = st.to_tflite(
                unrolled, name.removeprefix("stream_tflite_"), feeds_for.get(name.removeprefix("stream_tflite_"))
            )
            runner = LiteRTStream(blob)
            entry.update(status="ok", ops=runner.ops, vs_float=evaluate(runner))
            entry["inputs"], entry["outputs"] = runner.tensor_details()
            blobs[name] = blob
            log(
                f"  {name}: {len(blob)} bytes, max |diff| vs whole-window float {entry['vs_float']['max_abs_diff']:.2e}"
            )
        except Exception as err:
            entry.update(status="failed", reason=f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
            log(f"  {name}: FAILED: {entry['reason']}")
        artifacts.append(entry)
    try:
        blob = st.to_onnx(st.build_streaming(model, chunk_len, unroll=False))
        for name, b, precision in (
            ("stream_onnx_float32", blob, "float32"),
            ("stream_onnx_dynamic_int8", quantise_dynamic(blob), "dynamic-int8"),
        ):
            onnx_runner = OnnxStream(b)
            entry = {
                "name": name,
                "file": f"{name}.onnx",
                "format": "onnx",
                "precision": precision,
                "graph": "stream",
                "opset": OPSET,
                "status": "ok",
                "ops": check(b),
                "vs_float": evaluate(onnx_runner),
            }
            entry["inputs"], entry["outputs"] = onnx_runner.tensor_details()
            blobs[name] = b
            artifacts.append(entry)
            log(f"  {name}: {len(b)} bytes, max |diff| vs whole-window float {entry['vs_float']['max_abs_diff']:.2e}")
    except Exception as err:
        artifacts.append(
            {
                "name": "stream_onnx_float32",
                "file": "stream_onnx_float32.onnx",
                "format": "onnx",
                "precision": "float32",
                "graph": "stream",
                "status": "failed",
                "reason": f"{type(err).__name__}: {str(err)[:300]}",
            }
        )
    return StreamingSpec.of(
        chunk_len=chunk_len,
        chunks_per_window=n_steps // chunk_len,
        state_sizes=units,
        inputs=["chunk"]
        + [f"{k}_{i}" for i in range(len(units)) for k in ("h", "c")]
        + (["side"] if sides is not None else []),
        outputs=["probs"] + [f"{k}_{i}_out" for i in range(len(units)) for k in ("h", "c")],
        state_init="zeros at the start of every window",
        side_input="the window's side features at its last chunk, zeros before",
        evaluated_windows=int(len(sub)),
        calibration=calibration,
    ), made


#: Real held-out windows embedded in the Cortex-M4 test firmware (flash: 2 KB per ECG beat).
FIRMWARE_CHECK_WINDOWS = 48
#: The generated C's prefix: bse_init, bse_push, ... in bse_float32.c / bse_int8.c.
C_PREFIX = "bse"


def export_generated_c(ctx: ExportInputs, tmp: Path, log) -> tuple[dict, Made]:
    """Generate the C99 model (float32 and int8) and check each, compiled on the host, on
    the test windows against Keras; keep a few windows for the firmware check. Writes its
    files into ``tmp``; returns the manifest's ``firmware.generated_c`` and the entries."""
    from firmware_export import build
    from firmware_export.c_model import (
        UnsupportedModelError,
        copy_runtime,
        generate,
        spec_from_keras,
        with_preprocessing,
    )

    model, run, classes, test_inputs, ref, y_te, seed = (
        ctx.model,
        ctx.run,
        ctx.classes,
        ctx.test_inputs,
        ctx.ref,
        ctx.y_te,
        ctx.seed,
    )
    made = Made()
    artifacts = made.artifacts
    check_windows = _write_check_windows(test_inputs, ref, y_te, tmp, artifacts, seed)
    try:
        spec = with_preprocessing(spec_from_keras(model, run["input_shape"][0], classes), run["preprocess"])
    except UnsupportedModelError as err:
        log(f"  generated C: refused: {err}")
        return {"status": "refused", "reason": str(err), "check_windows": check_windows}, made
    p = C_PREFIX
    out: dict[str, Any] = {
        "prefix": p,
        "runtime": "bse_lstm.c, bse_lstm.h (compile with the model file)",
        "api": f"{p}_check, {p}_init, {p}_push, {p}_decision; {p}_filter_init, {p}_filter_push",
    }
    for path in copy_runtime(tmp):
        data = path.read_bytes()
        artifacts.append(
            {
                "name": path.name,
                "file": path.name,
                "format": "c",
                "precision": "any",
                "graph": "generated-c",
                "status": "ok",
                "sha256": sha256_bytes(data),
                "bytes": len(data),
                "inputs": [],
                "outputs": [],
                "description": "the runtime every generated model compiles with",
            }
        )
    side = test_inputs.get("side")
    n_side = 0 if side is None else side.shape[1]
    tensors: dict[str, Any] = {
        "inputs": [{"name": "signal", "dtype": "float32", "shape": [1, *test_inputs["signal"].shape[1:]]}]
        + ([{"name": "side", "dtype": "float32", "shape": [1, n_side]}] if n_side else []),
        "outputs": [{"name": "probs", "dtype": "float32", "shape": [1, len(classes)]}],
    }
    for precision in ("float32", "int8"):
        src, hdr = generate(spec, tmp, p, precision, source=f"run {run.get('config', {}).get('task', '')}")
        entry: dict[str, Any] = {
            "name": f"c_{precision}",
            "file": src.name,
            "format": "c",
            "precision": precision,
            "graph": "generated-c",
            "status": "ok",
            "header": hdr.name,
            **tensors,
        }
        try:
            with tempfile.TemporaryDirectory(prefix="biosig-c-") as work:
                exe = build.build_host_driver(src, Path(work))
                probs = build.host_classify(exe, test_inputs["signal"], side, len(classes))
            entry["vs_float"] = compare(probs, ref, y_te, classes)
            log(
                f"  c_{precision} (host gcc): agreement {entry['vs_float']['agreement']:.4f}, "
                f"max |diff| {entry['vs_float']['max_abs_diff']:.1e}"
            )
        except build.ToolMissing as err:
            entry["unchecked"] = str(err)
            log(f"  c_{precision}: not checked: {err}")
        except build.BuildError as err:
            entry.update(status="failed", reason=str(err)[:300])
            log(f"  c_{precision}: FAILED: {entry['reason']}")
        artifacts.append({**entry, "sha256": sha256_bytes(src.read_bytes()), "bytes": src.stat().st_size})
        artifacts.append(
            {
                "name": hdr.name,
                "file": hdr.name,
                "format": "c",
                "precision": precision,
                "graph": "generated-c",
                "status": "ok",
                **tensors,
                "sha256": sha256_bytes(hdr.read_bytes()),
                "bytes": hdr.stat().st_size,
            }
        )
        if entry["status"] == "ok" and "vs_float" in entry:
            _export_c_libraries(src, precision, probs, test_inputs, tensors, artifacts, log)
    out["check_windows"] = check_windows
    return out, made


def _write_check_windows(
    test_inputs: dict, ref: np.ndarray, y_te: np.ndarray, tmp: Path, artifacts: list, seed: int
) -> int:
    """A few stratified held-out windows with the float reference's probabilities, for
    the firmware and per-step checks (written whether or not C could be generated)."""
    side = test_inputs.get("side")
    keep = _stratified(y_te, min(FIRMWARE_CHECK_WINDOWS, len(y_te)), seed)
    arrays: dict[str, Any] = {
        "signal": test_inputs["signal"][keep].astype(np.float32),
        "y": y_te[keep].astype(np.int64),
        "reference_probs": ref[keep].astype(np.float32),
    }
    if side is not None and side.shape[1]:
        arrays["side"] = side[keep].astype(np.float32)
    path = tmp / "firmware_check_windows.npz"
    np.savez(path, **arrays)
    data = path.read_bytes()
    artifacts.append(
        {
            "name": "firmware_check_windows",
            "file": path.name,
            "format": "npz",
            "precision": "float32",
            "graph": "data",
            "status": "ok",
            "sha256": sha256_bytes(data),
            "bytes": len(data),
            "inputs": [],
            "outputs": [],
            "description": "held-out test windows for the firmware check",
        }
    )
    return int(len(keep))


def _mark_agreement(artifacts: list[dict], log) -> None:
    """Every quantised artifact checked against float gets ``agreement_target`` and
    ``meets_agreement_target``; one that misses is said loudly (validate will not
    recommend it)."""
    missed = []
    for a in artifacts:
        if a["status"] != "ok" or "vs_float" not in a or a["precision"] == "float32":
            continue
        a["agreement_target"] = MIN_AGREEMENT
        a["meets_agreement_target"] = a["vs_float"]["agreement"] >= MIN_AGREEMENT
        if not a["meets_agreement_target"]:
            missed.append(f"{a['name']} {100 * a['vs_float']['agreement']:.2f} %")
    if missed:
        log(
            f"  !! MISSES THE AGREEMENT TARGET (decisions equal float >= {100 * MIN_AGREEMENT:g} %): "
            f"{', '.join(missed)}; marked meets_agreement_target=false, validate will not recommend them"
        )


def _export_c_libraries(
    src: Path, precision: str, host_probs: np.ndarray, test_inputs: dict, tensors: dict, artifacts: list, log
) -> None:
    """The generated model as a shared library per CPU target (the device's ``c_float32`` /
    ``c_int8`` backends), each listed with its compiler, flags and the CPU features it
    needs; those this machine can run are loaded and must give the host build's
    probabilities bit for bit."""
    import platform

    from firmware_export import build
    from pipeline.runtime.c_backend import LIBRARY_FORMAT, CLibrary, cpu_features

    for target, (arch, _, features) in build.CPU_LIBRARIES.items():
        name = f"c_{precision}.{target}"
        entry: dict[str, Any] = {
            "name": name,
            "file": f"{src.stem}.{target}.so",
            "format": LIBRARY_FORMAT,
            "precision": precision,
            "graph": LIBRARY_FORMAT,
            "source": f"c_{precision}",
            "architecture": arch,
            "target": target,
            "cpu_features": list(features),
            "prefix": C_PREFIX,
            **tensors,
        }
        try:
            lib = build.build_shared_library(src, src.parent, target)
        except (build.ToolMissing, build.BuildError) as err:
            artifacts.append({**entry, "status": "failed", "reason": str(err)[:300]})
            log(f"  {name}: FAILED: {str(err)[:300]}")
            continue
        data = lib["path"].read_bytes()
        entry.update(
            status="ok", compiler=lib["compiler"], flags=lib["flags"], sha256=sha256_bytes(data), bytes=len(data)
        )
        if arch == platform.machine() and set(features) <= cpu_features():
            probs = CLibrary(lib["path"], C_PREFIX).predict(test_inputs)
            entry["bits_equal_host_build"] = bool(np.array_equal(probs.view(np.uint32), host_probs.view(np.uint32)))
            if not entry["bits_equal_host_build"]:
                entry.update(status="failed", reason="its probabilities differ from the host build's")
        artifacts.append(entry)
        log(
            f"  {name}: {len(data)} bytes ({lib['compiler']})"
            + (
                f", bits equal the host build's on {len(host_probs)} windows: {entry['bits_equal_host_build']}"
                if "bits_equal_host_build" in entry
                else ""
            )
        )


def _targets(artifacts: list[dict], ref_metrics: dict) -> dict:
    """The export's numbers to reach, each with its value and whether it was met."""
    by = {a["name"]: a for a in artifacts if a["status"] == "ok"}
    out = {}
    if "tflite_int8" in by and "tflite_float32" in by:
        i8, f32 = by["tflite_int8"], by["tflite_float32"]
        ratio = i8["bytes"] / f32["bytes"]
        out["int8_size_ratio"] = {
            "value": ratio,
            "target": f"<= {INT8_MAX_SIZE_RATIO}",
            "met": ratio <= INT8_MAX_SIZE_RATIO,
        }
        out["int8_agreement"] = {
            "value": i8["vs_float"]["agreement"],
            "target": f">= {MIN_AGREEMENT}",
            "met": i8["vs_float"]["agreement"] >= MIN_AGREEMENT,
        }
        drop = ref_metrics["macro_f1"] - i8["vs_float"]["macro_f1"]
        out["int8_macro_f1_drop"] = {
            "value": drop,
            "target": f"<= {MAX_MACRO_F1_DROP}",
            "met": drop <= MAX_MACRO_F1_DROP,
        }
    for name in ("onnx_float32", "stream_tflite_float32", "stream_onnx_float32"):
        if name in by:
            d = by[name]["vs_float"]["max_abs_diff"]
            out[f"{name}_max_abs_diff"] = {"value": d, "target": "<= 1e-5", "met": d <= 1e-5}
    if "vs_float" in by.get("c_float32", {}):
        d = by["c_float32"]["vs_float"]["max_abs_diff"]
        out["c_float32_max_abs_diff"] = {"value": d, "target": "<= 1e-5", "met": d <= 1e-5}
    if "vs_float" in by.get("c_int8", {}):
        a = by["c_int8"]["vs_float"]["agreement"]
        out["c_int8_agreement"] = {"value": a, "target": f">= {MIN_AGREEMENT}", "met": a >= MIN_AGREEMENT}
    return out
