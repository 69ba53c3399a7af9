"""Classification metrics from a confusion matrix (numpy only: shared by training,
export and validation reports).

Conventions: ``cm[i, j]`` counts windows of true class i predicted as class j.
Sensitivity (Se) = recall; positive predictivity (+P) = precision, as in ECG literature.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts from integer labels of shape (n,)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def classification_metrics(cm: np.ndarray, classes: list[str]) -> dict:
    """Per-class Se/+P/F1, accuracy, macro-F1 and Cohen's kappa from a confusion matrix.

    Macro-F1 averages over classes that occur in the truth (a class absent from a test
    set has no defined sensitivity and would otherwise count as zero).
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    per_class = {}
    f1s = []
    for k, name in enumerate(classes):
        tp, support, predicted = cm[k, k], cm[k].sum(), cm[:, k].sum()
        se, ppv = _ratio(tp, support), _ratio(tp, predicted)
        f1 = _ratio(2 * tp, support + predicted)
        per_class[name] = {"se": se, "ppv": ppv, "f1": f1, "support": int(support), "predicted": int(predicted)}
        if support:
            f1s.append(f1 if np.isfinite(f1) else 0.0)
    accuracy = _ratio(np.trace(cm), total)
    expected = _ratio((cm.sum(0) * cm.sum(1)).sum(), total**2)
    kappa = _ratio(accuracy - expected, 1 - expected)
    return {
        "classes": list(classes),
        "confusion": cm.astype(int).tolist(),
        "n": int(total),
        "accuracy": accuracy,
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "kappa": kappa,
        "per_class": per_class,
    }


def ecg_indices(metrics: dict) -> dict:
    """de Chazal-style summary for the AAMI S and V classes.

    j = Se(S) + +P(S) + Se(V) + +P(V)  and  jk = kappa / 2 + j / 8
    (Mondejar-Guerra et al. 2019), fractions not percentages.
    """
    pc = metrics["per_class"]
    j = sum(pc[c][m] for c in ("S", "V") for m in ("se", "ppv"))
    return {"j_index": j, "jk_index": metrics["kappa"] / 2 + j / 8}


def binary_view(cm: np.ndarray, classes: list[str], positive: str) -> dict:
    """Collapse a multi-class confusion matrix to ``positive`` vs the rest."""
    k = classes.index(positive)
    cm = np.asarray(cm)
    tp = cm[k, k]
    fn = cm[k].sum() - tp
    fp = cm[:, k].sum() - tp
    tn = cm.sum() - tp - fn - fp
    return {
        "positive": positive,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "accuracy": _ratio(tp + tn, cm.sum()),
        "tp": int(tp),
        "fn": int(fn),
        "fp": int(fp),
        "tn": int(tn),
    }


# Beat detection against reference annotations (ANSI/AAMI EC57 style): used by validation
# and, for the quality index, by the device itself.


def match_pairs(reference: np.ndarray, detected: np.ndarray, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches of detected beats to reference beats within +-``tolerance``
    samples, each reference beat taking the nearest unused detection.

    Both inputs are sample indices, sorted ascending. Returns (reference index, detected
    index) integer arrays of equal length.
    """
    used = np.zeros(len(detected), dtype=bool)
    ref_idx, det_idx = [], []
    j = 0
    for i, r in enumerate(reference):
        while j < len(detected) and detected[j] < r - tolerance:
            j += 1
        best, best_d = -1, tolerance + 1
        k = j
        while k < len(detected) and detected[k] <= r + tolerance:
            if not used[k] and abs(detected[k] - r) < best_d:
                best, best_d = k, abs(detected[k] - r)
            k += 1
        if best >= 0:
            used[best] = True
            ref_idx.append(i)
            det_idx.append(best)
    return np.asarray(ref_idx, dtype=np.int64), np.asarray(det_idx, dtype=np.int64)


def match_beats(reference: np.ndarray, detected: np.ndarray, tolerance: int) -> dict:
    """Match detected beats to reference beats within +-``tolerance`` samples, one to one.

    Returns tp, fn, fp, sensitivity (Se), positive predictivity (+P) and the median offset
    (detected - reference, samples) of the matches.
    """
    reference = np.sort(np.asarray(reference))
    detected = np.sort(np.asarray(detected))
    ref_idx, det_idx = match_pairs(reference, detected, tolerance)
    offsets = detected[det_idx] - reference[ref_idx]
    tp = len(ref_idx)
    fn, fp = len(reference) - tp, len(detected) - tp
    return {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "se": tp / (tp + fn) if tp + fn else float("nan"),
        "ppv": tp / (tp + fp) if tp + fp else float("nan"),
        "median_offset": float(np.median(offsets)) if tp else float("nan"),
    }
