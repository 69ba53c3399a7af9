"""Fit a model on a task's training split, select it on the validation split, test it
on the held-out split, and write a run folder.

Run folder::

    model.keras      the float model (Keras zip format, loads in safe mode: no code)
    run.json         config, split (ids on each side), preprocessing with SOS
                     coefficients, side-feature normalisation, classes, shapes
    metrics.json     held-out metrics (and the subject k-fold estimate for EEGMAT)
    metrics.md       the same as a short table
    history.json, curves.png, confusion.png
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.errors import BiosigError
from pipeline.metrics import binary_view, classification_metrics, confusion_matrix, ecg_indices
from pipeline.splits import Split, subject_folds
from pipeline.train.config import TaskConfig
from pipeline.train.data import WindowTable, load_windows, task_split
from pipeline.window.side import Standardiser


class TrainingError(BiosigError):
    """Training cannot go on (NaN loss, no data for a class).

    ``model`` holds the last good weights when there were any, so the caller can keep them.
    """

    def __init__(self, message: str, model=None):
        super().__init__(message)
        self.model = model


def class_weights(y: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Per-class weights of shape (n_classes,), mean weight over the samples = 1."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if mode == "none":
        w = np.ones(n_classes)
    else:
        w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
        if mode == "sqrt":
            w = np.sqrt(w)
        elif mode != "balanced":
            raise TrainingError(f"train.class_weight must be none, balanced or sqrt, not '{mode}'")
    return w / (w[y].mean() if len(y) else 1.0)


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Amplitude scaling (0.8-1.2 per window and channel), a slow baseline drift and
    Gaussian noise (2 % of the window's spread): what differs between patients and
    electrodes, not what differs between classes. x: (n, n_steps, n_channels)."""
    n, t, c = x.shape
    scale = rng.uniform(0.8, 1.2, (n, 1, c))
    spread = x.std(axis=1, keepdims=True) + 1e-6
    ramp = np.linspace(-1, 1, t)[None, :, None] * rng.normal(0, 0.05, (n, 1, c)) * spread
    noise = rng.normal(0, 0.02, x.shape) * spread
    return (x * scale + ramp + noise).astype(np.float32)


def _inputs(x, side):
    return [x, side] if side.shape[1] else [x]


def fit_one(cfg: TaskConfig, table: WindowTable, split: Split, log=print, fold: str = ""):
    """Train on ``split.train``, select on ``split.val``; return (model, standardiser, history)."""
    from pipeline.train.model import build_model, keras

    k = keras()
    classes = cfg.classes
    x_tr, s_tr, y_tr = table.take(split.train, classes)
    x_va, s_va, y_va = table.take(split.val, classes)
    for name, arr in (("training", x_tr), ("training side", s_tr), ("validation", x_va), ("validation side", s_va)):
        if not np.isfinite(arr).all():
            # Keras would train on NaN windows without a word (the loss stays finite).
            raise TrainingError(f"{cfg.task}{fold}: {name} inputs hold NaN/inf values")
    missing = [c for i, c in enumerate(classes) if not (y_tr == i).any()]
    if missing:
        raise TrainingError(f"{cfg.task}: no training windows of class(es) {missing}")
    if cfg.train.class_weight_scale and len(cfg.train.class_weight_scale) != len(classes):
        raise TrainingError(f"train.class_weight_scale: {len(cfg.train.class_weight_scale)} values "
                            f"for {len(classes)} classes {classes}")
    std = Standardiser.fit(s_tr)
    s_tr, s_va = std(s_tr), std(s_va)
    model = build_model(cfg.model, x_tr.shape[1], x_tr.shape[2], s_tr.shape[1], len(classes), seed=cfg.seed)
    model.compile(optimizer=k.optimizers.Adam(cfg.train.learning_rate, clipnorm=1.0),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(cfg.seed)
    history = []
    best = (-math.inf, None, -1)
    majority = int(np.bincount(y_tr).argmax())
    from tqdm import tqdm

    bar = tqdm(range(cfg.train.epochs), desc=f"training {cfg.task}{fold}", unit="epoch",
               disable=not sys.stderr.isatty())
    for epoch in bar:
        t0 = time.perf_counter()
        idx = np.arange(len(y_tr))
        cap = cfg.train.max_majority_per_epoch
        if cap and (y_tr == majority).sum() > cap:
            maj = np.flatnonzero(y_tr == majority)
            idx = np.concatenate([np.flatnonzero(y_tr != majority), rng.choice(maj, cap, replace=False)])
        idx = rng.permutation(idx)
        xb = augment(x_tr[idx], rng) if cfg.train.augment else x_tr[idx]
        weights = class_weights(y_tr[idx], len(classes), cfg.train.class_weight)
        if cfg.train.class_weight_scale:
            weights = weights * np.asarray(cfg.train.class_weight_scale)
        h = model.fit(_inputs(xb, s_tr[idx]), y_tr[idx], sample_weight=weights[y_tr[idx]],
                      batch_size=cfg.train.batch_size, epochs=1, verbose=0, shuffle=False)
        loss = float(h.history["loss"][0])
        if not math.isfinite(loss):
            hint = "(lower train.learning_rate or check the inputs for NaN/inf)"
            if best[1] is None:
                raise TrainingError(f"{cfg.task}{fold}: loss became {loss} at epoch {epoch + 1}; "
                                    f"stopped before any good epoch {hint}")
            model.set_weights(best[1])
            raise TrainingError(f"{cfg.task}{fold}: loss became {loss} at epoch {epoch + 1}; stopped, "
                                f"keeping the weights of epoch {best[2] + 1} {hint}", model=model)
        probs = model.predict(_inputs(x_va, s_va), batch_size=1024, verbose=0)
        val_loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_va)), y_va], 1e-7, 1))))
        m = classification_metrics(confusion_matrix(y_va, probs.argmax(1), len(classes)), classes)
        row = {"epoch": epoch + 1, "loss": loss, "val_loss": val_loss, "val_macro_f1": m["macro_f1"],
               "val_accuracy": m["accuracy"], "seconds": time.perf_counter() - t0}
        history.append(row)
        score = -val_loss if cfg.train.monitor == "loss" else m[cfg.train.monitor]
        if score > best[0]:
            best = (score, model.get_weights(), epoch)
        bar.set_postfix(loss=f"{loss:.3f}", val_f1=f"{m['macro_f1']:.3f}")
        log(f"  epoch {epoch + 1:2d}: loss {loss:.4f}  val_loss {val_loss:.4f}  "
            f"val_macro_f1 {m['macro_f1']:.4f}  ({row['seconds']:.0f} s)")
        if epoch - best[2] >= cfg.train.patience:
            log(f"  early stop: no better val {cfg.train.monitor} for {cfg.train.patience} epochs")
            break
    model.set_weights(best[1])
    for row in history:
        row["kept"] = row["epoch"] == best[2] + 1
    log(f"  kept epoch {best[2] + 1} (best val {cfg.train.monitor})")
    return model, std, history


def evaluate(cfg: TaskConfig, model, std: Standardiser, table: WindowTable, groups) -> dict:
    """Held-out metrics on ``groups``; extras per task (ECG indices, binary view, Q beats)."""
    x, s, y = table.take(groups, cfg.classes)
    probs = model.predict(_inputs(x, std(s)), batch_size=1024, verbose=0)
    cm = confusion_matrix(y, probs.argmax(1), len(cfg.classes))
    out = classification_metrics(cm, cfg.classes)
    if cfg.kind == "ecg-beats":
        out.update(ecg_indices(out))
        other = np.isin(table.group, list(groups)) & ~np.isin(table.label, cfg.classes)
        if other.any():
            p = model.predict(_inputs(table.x[other], std(table.side[other])), verbose=0).argmax(1)
            out["not_learned"] = {"labels": dict(zip(*[v.tolist() for v in np.unique(table.label[other], return_counts=True)])),
                                  "predicted_as": {cfg.classes[i]: int((p == i).sum()) for i in range(len(cfg.classes))}}
    if cfg.positive_class:
        out["binary"] = binary_view(cm, cfg.classes, cfg.positive_class)
    if cfg.kind == "eeg-windows":
        out["per_recording"] = _per_recording(cfg, table, groups, probs, y)
    return out


def _per_recording(cfg: TaskConfig, table: WindowTable, groups, probs: np.ndarray, y: np.ndarray) -> dict:
    """One decision per recording (Bonn segment; EEGMAT subject x condition): the mean of
    its windows' probabilities. What most of the Bonn literature reports."""
    mask = np.isin(table.group, list(groups)) & np.isin(table.label, cfg.classes)
    keys = np.char.add(np.char.add(table.group[mask].astype(str), "|"), table.label[mask].astype(str))
    uniq, inverse = np.unique(keys, return_inverse=True)
    mean_probs = np.zeros((len(uniq), probs.shape[1]))
    np.add.at(mean_probs, inverse, probs)
    truth = np.zeros(len(uniq), dtype=np.int64)
    truth[inverse] = y
    cm = confusion_matrix(truth, mean_probs.argmax(1), len(cfg.classes))
    out = classification_metrics(cm, cfg.classes)
    if cfg.positive_class:
        out["binary"] = binary_view(cm, cfg.classes, cfg.positive_class)
    return out


def train_task(cfg: TaskConfig, out_dir: Path, data_dir=None, log=print, split: Split | None = None) -> Path:
    """Train, test and write a run folder; return its path.

    ``split`` replaces the task's own split (tests use a few records).
    """
    t_start = time.perf_counter()
    from pipeline.train.model import keras
    from pipeline.train.report import write_run_reports

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = split or task_split(cfg, data_dir=data_dir)
    groups = sorted(set(split.train) | set(split.val) | set(split.test))
    log(f"{cfg.task} [{cfg.profile}]: split by {split.by}: {len(split.train)} train, "
        f"{len(split.val)} val, {len(split.test)} test")
    table = load_windows(cfg, groups, data_dir)
    log(f"  {len(table.label)} windows of shape {table.x.shape[1:]}; dropped: {table.dropped or 'none'}")
    try:
        model, std, history = fit_one(cfg, table, split, log)
    except TrainingError as err:
        if err.model is not None:
            err.model.save(out_dir / "checkpoint.keras")
            raise TrainingError(f"{err} -> last good model saved as {out_dir / 'checkpoint.keras'}") from None
        raise
    metrics = {"task": cfg.task, "profile": cfg.profile, "split": split.to_dict(),
               "test": evaluate(cfg, model, std, table, split.test),
               "val": evaluate(cfg, model, std, table, split.val)}
    metrics["test"]["counts"] = {"train": int(np.isin(table.group, split.train).sum()),
                                 "val": int(np.isin(table.group, split.val).sum()),
                                 "test": int(np.isin(table.group, split.test).sum())}
    if cfg.data.subject_folds:
        metrics["subject_kfold"] = subject_kfold(cfg, table, log)
    model.save(out_dir / "model.keras")
    spec = cfg.preprocess_spec(table.fs_in_hz)
    run = {"format": "biosig-edge-run/1", "task": cfg.task, "profile": cfg.profile, "config": cfg.to_dict(),
           "classes": cfg.classes, "channels": cfg.channels, "kind": cfg.kind,
           "input_shape": list(table.x.shape[1:]), "side_features": list(cfg.window.rr_features),
           "side_mean": std.mean.tolist(), "side_std": std.std.tolist(), "side_clip": Standardiser.CLIP,
           "preprocess": spec.to_dict(), "split": split.to_dict(),
           "n_params": int(model.count_params()), "keras": keras().__version__,
           "train_seconds": time.perf_counter() - t_start}
    (out_dir / "run.json").write_text(json.dumps(run, indent=2))
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    metrics["n_params"] = run["n_params"]
    metrics["train_seconds"] = run["train_seconds"]
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_run_reports(out_dir, cfg, metrics, history)
    return out_dir


def subject_kfold(cfg: TaskConfig, table: WindowTable, log=print) -> dict:
    """k-fold by subject: every subject tested once by a model that never saw it."""
    subjects = sorted({str(g) for g in table.group})
    total = np.zeros((len(cfg.classes),) * 2, dtype=np.int64)
    folds = []
    for i, (train_subjects, test_subjects) in enumerate(subject_folds(subjects, cfg.data.subject_folds, cfg.seed)):
        rng = np.random.default_rng(cfg.seed + i)
        val = sorted(rng.choice(train_subjects, size=max(2, len(train_subjects) // 6), replace=False).tolist())
        split = Split("subject", tuple(s for s in train_subjects if s not in val), tuple(val), tuple(test_subjects))
        log(f"  fold {i + 1}/{cfg.data.subject_folds}: test subjects {list(test_subjects)}")
        model, std, _ = fit_one(cfg, table, split, log=lambda *_: None, fold=f" fold {i + 1}")
        m = evaluate(cfg, model, std, table, test_subjects)
        total += np.asarray(m["confusion"])
        folds.append({"test_subjects": list(test_subjects), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
        log(f"    accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}")
    pooled = classification_metrics(total, cfg.classes)
    return {"k": cfg.data.subject_folds, "folds": folds, "pooled": pooled,
            "mean_accuracy": float(np.mean([f["accuracy"] for f in folds])),
            "mean_macro_f1": float(np.mean([f["macro_f1"] for f in folds]))}
