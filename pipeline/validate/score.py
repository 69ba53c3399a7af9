"""Score streamed decisions against the annotations and against the float reference.

Decisions of one artifact: ``{recording id: (keys (n,) int64, probs (n, n_classes) float)}``
where a key is the beat's sample (ECG) or the window's first sample (EEG), at the
recording's own rate.

ECG beats are the device's own detections, so scoring is end to end (ANSI/AAMI EC57
style): each detection is matched one to one to an annotated beat within 150 ms. The
confusion matrix has one more row and column than there are classes: row ``none`` counts
detections with no annotated beat (false detections), column ``missed`` counts annotated
beats nothing was detected at. Sensitivity therefore includes missed beats and +P
includes false detections; accuracy and kappa are over matched beats. Detections
matched to Q (unclassifiable) beats are left out, as Q is not a class of the model, and so
are those matched to beats whose symbol the card does not map (``heldout.UNSCORED``): they
are neither scored nor false detections.
"""

from __future__ import annotations

import numpy as np

from pipeline.metrics import classification_metrics, confusion_matrix, ecg_indices, match_pairs
from pipeline.validate.heldout import Heldout

#: Beat-matching window, as in ANSI/AAMI EC57 and the QRS benchmark.
MATCH_TOLERANCE_S = 0.15

#: One artifact's decisions: {recording id: (keys (n,) int64, probs (n, n_classes) float64)}.
Decisions = dict[str, tuple[np.ndarray, np.ndarray]]


def decisions_from_events(path: str, ids: list[str], n_classes: int) -> Decisions:
    """The measuring child's events file (JSON lines) -> {recording id: (keys, probs)}."""
    import json

    keys: dict[str, list[int]] = {rid: [] for rid in ids}
    probs: dict[str, list[list[float]]] = {rid: [] for rid in ids}
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            # A withheld decision (unusable signal) keeps its place but has no class: it is
            # not a decision to score.
            if e["type"] in ("beat", "window") and e.get("probs") is not None:
                keys[e["recording"]].append(e.get("sample", e.get("start_sample")))
                probs[e["recording"]].append(e["probs"])
    return {
        rid: (np.asarray(keys[rid], dtype=np.int64), np.asarray(probs[rid], dtype=np.float64).reshape(-1, n_classes))
        for rid in ids
    }


def ecg_confusion(heldouts: list[Heldout], decisions: Decisions, classes: list[str]) -> np.ndarray:
    """(K+1, K+1) counts: rows true class + ``none``, columns predicted class + ``missed``."""
    k = len(classes)
    cm = np.zeros((k + 1, k + 1), dtype=np.int64)
    for h in heldouts:
        keys, probs = decisions[h.id]
        # An ECG held-out recording is read with its annotated beats (heldout._from_record).
        assert h.beat_sample is not None and h.beat_class is not None, h.id
        tolerance = int(round(MATCH_TOLERANCE_S * h.fs_hz))
        ref_idx, det_idx = match_pairs(h.beat_sample, keys, tolerance)
        true = np.array([classes.index(c) if c in classes else -1 for c in h.beat_class], dtype=np.int64)
        pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
        matched_true = true[ref_idx]
        scored = matched_true >= 0  # drop detections matched to Q and unscored beats
        np.add.at(cm, (matched_true[scored], pred[det_idx][scored]), 1)
        unmatched_det = np.setdiff1d(np.arange(len(keys)), det_idx)
        np.add.at(cm, (np.full(len(unmatched_det), k), pred[unmatched_det]), 1)
        missed = np.setdiff1d(np.arange(len(true)), ref_idx)
        missed = missed[true[missed] >= 0]
        np.add.at(cm, (true[missed], np.full(len(missed), k)), 1)
    return cm


def eeg_confusion(heldouts: list[Heldout], decisions: Decisions, n_classes: int) -> np.ndarray:
    """(K, K) counts over every streamed window; each window's truth is its recording's label."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for h in heldouts:
        _, probs = decisions[h.id]
        if len(probs):
            cm += confusion_matrix(np.full(len(probs), h.label), probs.argmax(axis=1), n_classes)
    return cm


def summarise(cm: np.ndarray, classes: list[str], kind: str, positive_class: str | None = None) -> dict:
    """Per-class Se/+P/F1, macro-F1, accuracy and kappa from a confusion matrix of
    :func:`ecg_confusion` (``kind`` ecg-beats, K+1 square) or :func:`eeg_confusion` (EEG);
    with ``positive_class`` (Bonn: the seizure set), its Se and Sp against the rest."""
    k = len(classes)
    if kind != "ecg-beats":
        out = classification_metrics(cm, classes)
        if positive_class:
            pos = classes.index(positive_class)
            tp = cm[pos, pos]
            rest = np.delete(np.arange(k), pos)
            tn = cm[np.ix_(rest, rest)].sum()
            out["positive_vs_rest"] = {
                "class": positive_class,
                "se": float(tp / cm[pos].sum()),
                "sp": float(tn / cm[rest].sum()),
            }
        return out
    matched = classification_metrics(cm[:k, :k], classes)  # accuracy, kappa over matched beats
    per_class, f1s = {}, []
    for i, name in enumerate(classes):
        tp, support, predicted = cm[i, i], cm[i].sum(), cm[:, i].sum()
        se = float(tp / support) if support else float("nan")
        ppv = float(tp / predicted) if predicted else float("nan")
        f1 = float(2 * tp / (support + predicted)) if support + predicted else float("nan")
        per_class[name] = {
            "se": se,
            "ppv": ppv,
            "f1": f1,
            "support": int(support),
            "predicted": int(predicted),
            "missed": int(cm[i, k]),
        }
        if support:
            f1s.append(f1 if np.isfinite(f1) else 0.0)
    out = {
        "classes": list(classes),
        "confusion": cm.tolist(),
        "confusion_rows": [*classes, "none"],
        "confusion_cols": [*classes, "missed"],
        "n": int(cm[:k].sum()),
        "accuracy": matched["accuracy"],
        "kappa": matched["kappa"],
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "per_class": per_class,
        "beats_missed": int(cm[:k, k].sum()),
        "false_detections": int(cm[k, :k].sum()),
    }
    out.update(ecg_indices(out))
    return out


def agreement(reference: Decisions, other: Decisions) -> dict:
    """How ``other``'s decisions follow the reference's, decision by decision.

    Decisions are paired by recording and key (the same detector runs before every
    model, so the keys coincide). Returns n paired, n unpaired, agreement of the argmax,
    and max / mean absolute difference of class probabilities.
    """
    n = unpaired = same = 0
    max_diff, sum_diff, n_values = 0.0, 0.0, 0
    for rid, (keys, probs) in reference.items():
        okeys, oprobs = other[rid]
        common, ia, ib = np.intersect1d(keys, okeys, return_indices=True)
        unpaired += len(keys) + len(okeys) - 2 * len(common)
        if not len(common):
            continue
        a, b = probs[ia], oprobs[ib]
        n += len(common)
        same += int((a.argmax(1) == b.argmax(1)).sum())
        diff = np.abs(a - b)
        max_diff = max(max_diff, float(diff.max()))
        sum_diff += float(diff.sum())
        n_values += diff.size
    return {
        "n": n,
        "unpaired": unpaired,
        "agreement": same / n if n else float("nan"),
        "max_abs_diff": max_diff,
        "mean_abs_diff": sum_diff / n_values if n_values else float("nan"),
    }


def probability_pairs(
    reference: Decisions, other: Decisions, limit: int = 20000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``limit`` paired (reference, other) probability vectors, for a scatter plot."""
    a_all, b_all = [], []
    for rid, (keys, probs) in reference.items():
        okeys, oprobs = other[rid]
        _, ia, ib = np.intersect1d(keys, okeys, return_indices=True)
        a_all.append(probs[ia])
        b_all.append(oprobs[ib])
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    if len(a) > limit:
        pick = np.random.default_rng(seed).choice(len(a), limit, replace=False)
        a, b = a[pick], b[pick]
    return a, b
