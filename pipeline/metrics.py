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
        per_class[name] = {"se": se, "ppv": ppv, "f1": f1, "support": int(support),
                           "predicted": int(predicted)}
        if support:
            f1s.append(f1 if np.isfinite(f1) else 0.0)
    accuracy = _ratio(np.trace(cm), total)
    expected = _ratio((cm.sum(0) * cm.sum(1)).sum(), total ** 2)
    kappa = _ratio(accuracy - expected, 1 - expected)
    return {"classes": list(classes), "confusion": cm.astype(int).tolist(), "n": int(total),
            "accuracy": accuracy, "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
            "kappa": kappa, "per_class": per_class}


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
    return {"positive": positive, "sensitivity": _ratio(tp, tp + fn),
            "specificity": _ratio(tn, tn + fp), "ppv": _ratio(tp, tp + fp),
            "accuracy": _ratio(tp + tn, cm.sum()), "tp": int(tp), "fn": int(fn), "fp": int(fp), "tn": int(tn)}
