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
from typing import Any

import numpy as np

from pipeline.errors import BiosigError
from pipeline.metrics import binary_view, classification_metrics, confusion_matrix, ecg_indices
from pipeline.read.splits import Split, subject_folds
from pipeline.train.config import TaskConfig
from pipeline.train.data import WindowTable, load_windows, task_split
from pipeline.train.model import batches, predict
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


#: Threads TensorFlow trains with: fixed, so that the same command gives the same numbers
#: on any machine (matrix products may sum in another order on another thread count).
TRAIN_THREADS = 2


def make_deterministic(seed: int, deterministic: bool = True) -> None:
    """Seed Python, numpy and TensorFlow; with ``deterministic``, deterministic TF ops and a
    fixed thread count, so that the same command gives the same weights. Process-wide."""
    from pipeline.train import tensorflow

    tf = tensorflow()

    from pipeline.train.model import keras

    keras().utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        try:
            tf.config.threading.set_inter_op_parallelism_threads(1)
            tf.config.threading.set_intra_op_parallelism_threads(TRAIN_THREADS)
        except RuntimeError:
            pass  # TensorFlow already started in this process: its thread pools stay as set


class _WeightAverage:
    """Exponential moving average of a model's weights over its training steps (Polyak
    averaging), debiased as Adam debiases its moments: a Keras callback, updated after
    every batch; ``weights()`` is the average in ``model.get_weights()`` order."""

    def __init__(self, model, momentum: float):
        import tensorflow as tf

        from pipeline.train.model import keras

        self.momentum = float(momentum)
        self.steps = 0
        self.average = [tf.Variable(tf.zeros_like(v), trainable=False) for v in model.weights]
        pairs = list(zip(self.average, model.weights))
        rate = 1.0 - self.momentum

        @tf.function
        def update():
            for avg, w in pairs:
                avg.assign_add(rate * (w - avg))

        outer = self

        class _Callback(keras().callbacks.Callback):  # type: ignore[misc]  # tf_keras is untyped
            def on_train_batch_end(self, batch, logs=None):
                update()
                outer.steps += 1

        self.callback = _Callback()

    def weights(self) -> list:
        debias = 1.0 - self.momentum**self.steps
        return [v.numpy() / debias for v in self.average]


class _EpochTrainer:
    """One model and its training windows; ``epoch()`` trains one pass.

    Each epoch keeps at most ``max_majority_per_epoch`` windows of the majority class
    (drawn afresh), shuffles with the trainer's own seeded generator, augments, and
    weights the classes: the data order is a function of the seed alone.
    """

    def __init__(self, cfg: TaskConfig, x, s, y, std: Standardiser, seed: int, name: str):
        from pipeline.train.model import build_model, keras

        k = keras()
        self.cfg, self.x, self.s, self.y, self.std, self.name = cfg, x, std(s), y, std, name
        self.model = build_model(cfg.model, x.shape[1], x.shape[2], s.shape[1], len(cfg.classes), seed=seed)
        self.model.compile(
            optimizer=k.optimizers.Adam(cfg.train.learning_rate, clipnorm=1.0), loss="sparse_categorical_crossentropy"
        )
        self.rng = np.random.default_rng(seed)
        self.majority = int(np.bincount(y).argmax())
        self.good: tuple[list, int] | None = None  # (weights, epoch index) of the last finite epoch
        self.average = _WeightAverage(self.model, cfg.train.weight_average) if cfg.train.weight_average else None

    def weights(self) -> list:
        """The weights this trainer's model stands for now: the running average with
        ``train.weight_average``, else the last step's."""
        return self.average.weights() if self.average else self.model.get_weights()

    def use_weights(self) -> None:
        """Put :meth:`weights` into the model (for saving or export)."""
        if self.average:
            self.model.set_weights(self.average.weights())

    def epoch(self, epoch: int) -> float:
        cfg, y = self.cfg, self.y
        idx = np.arange(len(y))
        cap = cfg.train.max_majority_per_epoch
        if cap and (y == self.majority).sum() > cap:
            maj = np.flatnonzero(y == self.majority)
            idx = np.concatenate([np.flatnonzero(y != self.majority), self.rng.choice(maj, cap, replace=False)])
        idx = self.rng.permutation(idx)
        xb = augment(self.x[idx], self.rng) if cfg.train.augment else self.x[idx]
        weights = class_weights(y[idx], len(cfg.classes), cfg.train.class_weight)
        if cfg.train.class_weight_scale:
            weights = weights * np.asarray(cfg.train.class_weight_scale)
        h = self.model.fit(
            batches(_inputs(xb, self.s[idx]), cfg.train.batch_size, y[idx], weights[y[idx]]),
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[self.average.callback] if self.average else None,
        )
        loss = float(h.history["loss"][0])
        if not math.isfinite(loss):
            hint = "(lower train.learning_rate or check the inputs for NaN/inf)"
            if self.good is None:
                raise TrainingError(
                    f"{cfg.task}{self.name}: loss became {loss} at epoch {epoch + 1}; "
                    f"stopped before any good epoch {hint}"
                )
            self.model.set_weights(self.good[0])
            raise TrainingError(
                f"{cfg.task}{self.name}: loss became {loss} at epoch {epoch + 1}; stopped, "
                f"keeping the weights of epoch {self.good[1] + 1} {hint}",
                model=self.model,
            )
        return loss

    def predict(self, x, s) -> np.ndarray:
        """Class probabilities (n, n_classes) of the weights this trainer stands for."""
        if not self.average:
            return predict(self.model, _inputs(x, self.std(s)))
        last = self.model.get_weights()
        self.model.set_weights(self.average.weights())
        try:
            return predict(self.model, _inputs(x, self.std(s)))
        finally:
            self.model.set_weights(last)


def _check_inputs(cfg: TaskConfig, fold: str, arrays) -> None:
    for name, arr in arrays:
        if not np.isfinite(arr).all():
            # Keras would train on NaN windows without a word (the loss stays finite).
            raise TrainingError(f"{cfg.task}{fold}: {name} inputs hold NaN/inf values")


def _check_classes(cfg: TaskConfig, y: np.ndarray, where: str = "training") -> None:
    missing = [c for i, c in enumerate(cfg.classes) if not (y == i).any()]
    if missing:
        raise TrainingError(f"{cfg.task}: no {where} windows of class(es) {missing}")


def fit_one(cfg: TaskConfig, table: WindowTable, split: Split, log=print, fold: str = ""):
    """Train on ``split.train``, select on ``split.val``; return (model, standardiser, history)."""
    classes = cfg.classes
    make_deterministic(cfg.seed, cfg.train.deterministic)
    x_tr, s_tr, y_tr = table.take(split.train, classes)
    x_va, s_va, y_va = table.take(split.val, classes)
    _check_inputs(
        cfg, fold, (("training", x_tr), ("training side", s_tr), ("validation", x_va), ("validation side", s_va))
    )
    _check_classes(cfg, y_tr)
    std = Standardiser.fit(s_tr)
    trainer = _EpochTrainer(cfg, x_tr, s_tr, y_tr, std, cfg.seed, fold)
    model = trainer.model
    history = []
    best: tuple[float, list | None, int] = (-math.inf, None, -1)
    from tqdm import tqdm

    bar = tqdm(
        range(cfg.train.epochs), desc=f"training {cfg.task}{fold}", unit="epoch", disable=not sys.stderr.isatty()
    )
    for epoch in bar:
        t0 = time.perf_counter()
        loss = trainer.epoch(epoch)
        probs = trainer.predict(x_va, s_va)
        val_loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_va)), y_va], 1e-7, 1))))
        m = classification_metrics(confusion_matrix(y_va, probs.argmax(1), len(classes)), classes)
        row = {
            "epoch": epoch + 1,
            "loss": loss,
            "val_loss": val_loss,
            "val_macro_f1": m["macro_f1"],
            "val_accuracy": m["accuracy"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        score = _monitor(cfg, y_va, probs)
        trainer.good = (model.get_weights(), epoch)
        if score > best[0]:
            best = (score, trainer.weights(), epoch)
        bar.set_postfix(loss=f"{loss:.3f}", val_f1=f"{m['macro_f1']:.3f}")
        log(
            f"  epoch {epoch + 1:2d}: loss {loss:.4f}  val_loss {val_loss:.4f}  "
            f"val_macro_f1 {m['macro_f1']:.4f}  ({row['seconds']:.0f} s)"
        )
        if epoch - best[2] >= cfg.train.patience:
            log(f"  early stop: no better val {cfg.train.monitor} for {cfg.train.patience} epochs")
            break
    model.set_weights(best[1])
    for row in history:
        row["kept"] = row["epoch"] == best[2] + 1
    log(f"  kept epoch {best[2] + 1} (best val {cfg.train.monitor})")
    return model, std, history


# --- selection by record-level cross-validation -------------------------------------


def _score(cfg: TaskConfig, y: np.ndarray, probs: np.ndarray, offsets: np.ndarray | None = None) -> dict:
    """Metrics of decisions argmax(log p + offsets)."""
    logp = np.log(np.clip(probs, 1e-12, 1))
    pred = (logp if offsets is None else logp + offsets).argmax(1)
    return classification_metrics(confusion_matrix(y, pred, len(cfg.classes)), cfg.classes)


def _monitor(cfg: TaskConfig, y: np.ndarray, probs: np.ndarray, offsets=None) -> float:
    """The selection score (higher is better): -loss, macro-F1, kappa, or the jk-index
    (kappa / 2 + (Se_S + +P_S + Se_V + +P_V) / 8, Mondejar-Guerra 2019), which keeps a
    rare class's sensitivity in the score where kappa alone would give it up."""
    if cfg.train.monitor == "loss":
        return float(np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1))))
    return _monitor_of(cfg, _score(cfg, y, probs, offsets))


def _monitor_of(cfg: TaskConfig, m: dict) -> float:
    """The monitored score of metrics ``m`` (classification_metrics' dict)."""
    if cfg.train.monitor == "jk_index":
        pc = m["per_class"]
        j = sum(np.nan_to_num(pc[c][k]) for c in ("S", "V") for k in ("se", "ppv"))
        return float(m["kappa"] / 2 + j / 8)
    return float(m[cfg.train.monitor])


#: Per-class logit offsets searched (natural log units; e^2 = 7.4x prior odds).
OFFSET_GRID = np.round(np.arange(-2.0, 2.01, 0.25), 2)


def choose_offsets(cfg: TaskConfig, y: np.ndarray, probs: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Per-class offsets added to the log-probabilities (the first class fixed at 0), by
    coordinate ascent over ``OFFSET_GRID`` on the monitored score. A prior correction:
    argmax(log p + o) re-weights each class's odds by e^o. Chosen on out-of-fold
    predictions only; ties keep the offset nearest 0."""
    offsets = np.zeros(len(cfg.classes))
    best = _monitor(cfg, y, probs, offsets)
    grid = OFFSET_GRID[np.abs(OFFSET_GRID) <= cfg.train.max_offset + 1e-9]
    for _ in range(rounds):
        for c in range(1, len(cfg.classes)):
            for v in sorted(grid, key=abs):
                trial = offsets.copy()
                trial[c] = v
                score = _monitor(cfg, y, probs, trial)
                if score > best + 1e-12:
                    best, offsets = score, trial
    return offsets


def offsets_on_unseen_records(cfg: TaskConfig, y: np.ndarray, probs: np.ndarray, fold_of: np.ndarray) -> dict:
    """The offsets rule judged on records it did not see: for each CV fold, offsets chosen
    on the other folds' out-of-fold predictions and applied to this fold's; the pooled
    decisions scored. ``y`` (n,), ``probs`` (n, n_classes), ``fold_of`` (n,) fold index.

    Scored on the same predictions that chose them, offsets always look better than none;
    this is whether they carry to new patients, as the final model's must.
    """
    logp = np.log(np.clip(probs, 1e-12, 1))
    pred = logp.argmax(1)
    chosen = []
    for k in np.unique(fold_of):
        held = fold_of == k
        offsets = choose_offsets(cfg, y[~held], probs[~held])
        pred[held] = (logp[held] + offsets).argmax(1)
        chosen.append(offsets.tolist())
    m = classification_metrics(confusion_matrix(y, pred, len(cfg.classes)), cfg.classes)
    plain = _score(cfg, y, probs)
    return {
        "score": _monitor_of(cfg, m),
        "kappa": m["kappa"],
        "plain_score": _monitor_of(cfg, plain),
        "plain_kappa": plain["kappa"],
        "offsets_per_fold": chosen,
    }


def fold_offsets_into_bias(model, offsets: np.ndarray) -> None:
    """softmax(W h + b + o) decides as argmax(log p + o): add the offsets to the output
    layer's bias, so every exported format (TFLite, ONNX, generated C) carries them."""
    layer = model.get_layer("probs")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, (bias + offsets).astype(bias.dtype)])


def cross_validate(cfg: TaskConfig, table: WindowTable, train_groups, log=print, on_epoch=None) -> dict:
    """Record-level k-fold CV inside ``train_groups``: k models trained in lockstep, each
    epoch scored on the pooled out-of-fold predictions; early stopping on that score.
    ``on_epoch(row)`` is called with each epoch's history row (a sweep reports it to its
    scheduler, which may end the trial there).

    Returns the folds, the chosen epoch count, the per-class offsets chosen on the pooled
    out-of-fold predictions at that epoch, the out-of-fold metrics and a per-epoch history.
    The held-out split is never read here.
    """
    from collections import Counter

    from pipeline.read.splits import record_folds

    classes = cfg.classes
    groups = sorted(set(train_groups))
    in_train = np.isin(table.group, groups)
    counts: dict[str, Counter] = {str(g): Counter() for g in groups}
    for g, lab in zip(table.group[in_train], table.label[in_train]):
        counts[str(g)][str(lab)] += 1
    folds = record_folds(counts, cfg.data.cv_folds, cfg.data.cv_fold_classes, cfg.data.cv_seed)
    trainers, held = [], []
    for i, fold in enumerate(folds):
        rest = [g for g in groups if g not in fold]
        x_tr, s_tr, y_tr = table.take(rest, classes)
        x_va, s_va, y_va = table.take(fold, classes)
        _check_inputs(
            cfg,
            f" fold {i + 1}",
            (("training", x_tr), ("training side", s_tr), ("validation", x_va), ("validation side", s_va)),
        )
        _check_classes(cfg, y_tr)
        trainers.append(
            _EpochTrainer(cfg, x_tr, s_tr, y_tr, Standardiser.fit(s_tr), cfg.seed + 1000 * (i + 1), f" fold {i + 1}")
        )
        held.append((x_va, s_va, y_va))
        log(
            f"  CV fold {i + 1}/{len(folds)}: {len(fold)} records ({', '.join(fold)}), "
            f"{len(y_va)} beats, {len(y_tr)} to train on"
        )
    y_oof = np.concatenate([h[2] for h in held])
    history, all_probs, best_plain = [], [], (-math.inf, -1)
    from tqdm import tqdm

    bar = tqdm(range(cfg.train.epochs), desc=f"CV {cfg.task}", unit="epoch", disable=not sys.stderr.isatty())
    for epoch in bar:
        t0 = time.perf_counter()
        losses = [t.epoch(epoch) for t in trainers]
        probs = np.concatenate([t.predict(x, s) for t, (x, s, _) in zip(trainers, held)])
        for t in trainers:
            t.good = (t.model.get_weights(), epoch)
        plain = _monitor(cfg, y_oof, probs)
        offsets = choose_offsets(cfg, y_oof, probs) if cfg.train.tune_offsets else np.zeros(len(classes))
        score = _monitor(cfg, y_oof, probs, offsets)
        m = _score(cfg, y_oof, probs, offsets)
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "val_loss": float(-np.mean(np.log(np.clip(probs[np.arange(len(y_oof)), y_oof], 1e-7, 1)))),
            "val_macro_f1": m["macro_f1"],
            "val_accuracy": m["accuracy"],
            "val_kappa": m["kappa"],
            f"cv_{cfg.train.monitor}_plain": plain,
            f"cv_{cfg.train.monitor}": score,
            "offsets": offsets.tolist(),
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        all_probs.append(probs)
        if on_epoch is not None:
            on_epoch(row)
        if plain > best_plain[0]:
            best_plain = (plain, epoch)
        bar.set_postfix(cv=f"{plain:.3f}")
        log(
            f"  epoch {epoch + 1:2d}: loss {row['loss']:.4f}  CV {cfg.train.monitor} {plain:.4f} "
            f"(with offsets {score:.4f})  kappa {m['kappa']:.3f}  ({row['seconds']:.0f} s)"
        )
        if epoch - best_plain[1] >= cfg.train.patience:
            log(f"  early stop: no better CV {cfg.train.monitor} for {cfg.train.patience} epochs")
            break
    # The epoch: best plain (no offsets) score averaged with its neighbours, so that neither
    # a lucky epoch nor offsets that make up for an untrained model choose it (scored with
    # offsets, CV once chose epoch 1 with S given up: S Se 0 on DS2).
    plains = np.array([r[f"cv_{cfg.train.monitor}_plain"] for r in history])
    smooth = np.array([plains[max(0, e - 1) : e + 2].mean() for e in range(len(plains))])
    chosen = int(np.argmax(smooth))
    fold_of = np.concatenate([np.full(len(h[2]), i) for i, h in enumerate(held)])
    offsets = np.zeros(len(classes))
    unseen = None
    if cfg.train.tune_offsets:
        offsets = choose_offsets(cfg, y_oof, all_probs[chosen])
        # Offsets are kept only if they carry to records that did not choose them: chosen
        # on three folds and judged on the fourth, in turn. On MIT-BIH DS1 they often do
        # not (S +1 helped the pooled folds that chose it and cost the held-out ones), and
        # the final model is always judged on patients it never saw.
        unseen = offsets_on_unseen_records(cfg, y_oof, all_probs[chosen], fold_of)
        unseen["kept"] = bool(unseen["score"] > unseen["plain_score"])
        unseen["found"] = offsets.tolist()
        log(
            f"  offsets {np.round(offsets, 2).tolist()} chosen on the other folds, on each fold's records: "
            f"{cfg.train.monitor} {unseen['score']:.4f} against {unseen['plain_score']:.4f} without "
            f"(kappa {unseen['kappa']:.3f} against {unseen['plain_kappa']:.3f}): "
            + ("kept" if unseen["kept"] else "they do not carry to unseen records, none used")
        )
        if not unseen["kept"]:
            offsets = np.zeros(len(classes))
    best: dict[str, Any] = {
        # With offsets: their score on the records that did not choose them (scored on the
        # folds that chose them, they always look better than none; a sweep compares this).
        "score": (
            max(unseen["score"], unseen["plain_score"]) if unseen else _monitor(cfg, y_oof, all_probs[chosen], offsets)
        ),
        "epoch": chosen,
        "offsets": offsets,
        "probs": all_probs[chosen],
    }
    for row in history:
        row["kept"] = row["epoch"] == best["epoch"] + 1
    oof = _score(cfg, y_oof, best["probs"], best["offsets"])
    log(
        f"  CV chose {best['epoch'] + 1} epochs, offsets {np.round(best['offsets'], 2).tolist()}: "
        f"out-of-fold kappa {oof['kappa']:.3f}"
    )
    return {
        "folds": [list(f) for f in folds],
        "epochs": best["epoch"] + 1,
        "offsets": best["offsets"].tolist(),
        "monitor": cfg.train.monitor,
        "score": best["score"],
        "out_of_fold": oof,
        "offsets_on_unseen_records": unseen,
        "history": history,
        # For re-analysis without retraining (cv_oof.npz in the run folder).
        "oof": {"y": y_oof, "probs": best["probs"].astype(np.float32), "fold": fold_of},
    }


def fit_cv(cfg: TaskConfig, table: WindowTable, split: Split, log=print):
    """Choose the epoch count and offsets by CV inside ``split.train``, then train the final
    model on all of ``split.train`` for that many epochs and fold the offsets into its
    output bias. Returns (model, standardiser, history, cv)."""
    make_deterministic(cfg.seed, cfg.train.deterministic)
    cv = cross_validate(cfg, table, split.train, log)
    x_tr, s_tr, y_tr = table.take(split.train, cfg.classes)
    _check_inputs(cfg, "", (("training", x_tr), ("training side", s_tr)))
    std = Standardiser.fit(s_tr)
    trainer = _EpochTrainer(cfg, x_tr, s_tr, y_tr, std, cfg.seed, " final")
    history = cv.pop("history")
    for epoch in range(cv["epochs"]):
        t0 = time.perf_counter()
        loss = trainer.epoch(epoch)
        trainer.good = (trainer.model.get_weights(), epoch)
        history[epoch]["final_loss"] = loss
        log(f"  final model, epoch {epoch + 1}/{cv['epochs']}: loss {loss:.4f} ({time.perf_counter() - t0:.0f} s)")
    trainer.use_weights()
    fold_offsets_into_bias(trainer.model, np.asarray(cv["offsets"]))
    return trainer.model, std, history, cv


def evaluate(cfg: TaskConfig, model, std: Standardiser, table: WindowTable, groups) -> dict:
    """Held-out metrics on ``groups``; extras per task (ECG indices, binary view, Q beats)."""
    x, s, y = table.take(groups, cfg.classes)
    probs = predict(model, _inputs(x, std(s)))
    cm = confusion_matrix(y, probs.argmax(1), len(cfg.classes))
    out = classification_metrics(cm, cfg.classes)
    if cfg.kind == "ecg-beats":
        out.update(ecg_indices(out))
        other = np.isin(table.group, list(groups)) & ~np.isin(table.label, cfg.classes)
        if other.any():
            p = predict(model, _inputs(table.x[other], std(table.side[other]))).argmax(1)
            out["not_learned"] = {
                "labels": dict(zip(*[v.tolist() for v in np.unique(table.label[other], return_counts=True)])),
                "predicted_as": {cfg.classes[i]: int((p == i).sum()) for i in range(len(cfg.classes))},
            }
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


def train_task(
    cfg: TaskConfig,
    out_dir: Path,
    data_dir=None,
    log=print,
    split: Split | None = None,
    table: WindowTable | None = None,
) -> Path:
    """Train, test and write a run folder; return its path.

    ``split`` replaces the task's own split (tests use a few records); ``table`` gives
    windows already read with this config's data settings (the benchmark reads them once
    for several seeds).
    """
    t_start = time.perf_counter()
    from pipeline.train.model import keras
    from pipeline.train.report import write_run_reports

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split = split or task_split(cfg, data_dir=data_dir)
    groups = sorted(set(split.train) | set(split.val) | set(split.test))
    log(
        f"{cfg.task} [{cfg.profile}]: split by {split.by}: {len(split.train)} train, "
        f"{len(split.val)} val, {len(split.test)} test"
    )
    if table is None:
        table = load_windows(cfg, groups, data_dir)
    log(f"  {len(table.label)} windows of shape {table.x.shape[1:]}; dropped: {table.dropped or 'none'}")
    cv = None
    try:
        if cfg.data.cv_folds:
            model, std, history, cv = fit_cv(cfg, table, split, log)
        else:
            model, std, history = fit_one(cfg, table, split, log)
    except TrainingError as err:
        if err.model is not None:
            err.model.save(out_dir / "checkpoint.keras")
            raise TrainingError(f"{err} -> last good model saved as {out_dir / 'checkpoint.keras'}") from None
        raise
    metrics: dict[str, Any] = {
        "task": cfg.task,
        "profile": cfg.profile,
        "split": split.to_dict(),
        "test": evaluate(cfg, model, std, table, split.test),
    }
    if cv is not None:
        oof = cv.pop("oof")
        np.savez_compressed(out_dir / "cv_oof.npz", **oof)
        metrics["cv"] = cv
    else:
        metrics["val"] = evaluate(cfg, model, std, table, split.val)
    metrics["test"]["counts"] = {
        "train": int(np.isin(table.group, split.train).sum()),
        "val": int(np.isin(table.group, split.val).sum()),
        "test": int(np.isin(table.group, split.test).sum()),
    }
    if cfg.data.subject_folds:
        metrics["subject_kfold"] = subject_kfold(cfg, table, log)
    model.save(out_dir / "model.keras")
    spec = cfg.preprocess_spec(table.fs_in_hz)
    run = {
        "format": "biosig-edge-run/1",
        "task": cfg.task,
        "profile": cfg.profile,
        "config": cfg.to_dict(),
        "classes": cfg.classes,
        "channels": cfg.channels,
        "kind": cfg.kind,
        "input_shape": list(table.x.shape[1:]),
        "side_features": list(cfg.window.rr_features),
        "side_mean": std.mean.tolist(),
        "side_std": std.std.tolist(),
        "side_clip": Standardiser.CLIP,
        "preprocess": spec.to_dict(),
        "split": split.to_dict(),
        "n_params": int(model.count_params()),
        "keras": keras().__version__,
        "selection": (
            {
                "by": f"record {cfg.data.cv_folds}-fold CV inside the training split",
                "folds": cv["folds"],
                "epochs": cv["epochs"],
                "output_bias_offsets": cv["offsets"],
            }
            if cv
            else {"by": f"best validation {cfg.train.monitor}"}
        ),
        "deterministic": cfg.train.deterministic,
        "seed": cfg.seed,
        "train_seconds": time.perf_counter() - t_start,
    }
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
    total_rec = np.zeros((len(cfg.classes),) * 2, dtype=np.int64)
    folds = []
    for i, (train_subjects, test_subjects) in enumerate(subject_folds(subjects, cfg.data.subject_folds, cfg.seed)):
        rng = np.random.default_rng(cfg.seed + i)
        val = sorted(rng.choice(train_subjects, size=max(2, len(train_subjects) // 6), replace=False).tolist())
        split = Split("subject", tuple(s for s in train_subjects if s not in val), tuple(val), tuple(test_subjects))
        log(f"  fold {i + 1}/{cfg.data.subject_folds}: test subjects {list(test_subjects)}")
        model, std, _ = fit_one(cfg, table, split, log=lambda *_: None, fold=f" fold {i + 1}")
        m = evaluate(cfg, model, std, table, test_subjects)
        total += np.asarray(m["confusion"])
        total_rec += np.asarray(m["per_recording"]["confusion"])
        folds.append(
            {
                "test_subjects": list(test_subjects),
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
                "recording_accuracy": m["per_recording"]["accuracy"],
            }
        )
        log(
            f"    accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
            f"recordings {m['per_recording']['accuracy']:.3f}"
        )
    pooled = classification_metrics(total, cfg.classes)
    return {
        "k": cfg.data.subject_folds,
        "folds": folds,
        "pooled": pooled,
        # One decision per recording (subject x condition): the mean of its windows'
        # probabilities, what a device's running average holds at the recording's end.
        "pooled_per_recording": classification_metrics(total_rec, cfg.classes),
        "mean_accuracy": float(np.mean([f["accuracy"] for f in folds])),
        "mean_macro_f1": float(np.mean([f["macro_f1"] for f in folds])),
    }
