"""Beat-detection quality against reference annotations (ANSI/AAMI EC57 style)."""

from __future__ import annotations

import numpy as np


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
    return {"tp": tp, "fn": fn, "fp": fp,
            "se": tp / (tp + fn) if tp + fn else float("nan"),
            "ppv": tp / (tp + fp) if tp + fp else float("nan"),
            "median_offset": float(np.median(offsets)) if tp else float("nan")}
