"""Beat-detection quality against reference annotations (ANSI/AAMI EC57 style)."""

from __future__ import annotations

import numpy as np


def match_beats(reference: np.ndarray, detected: np.ndarray, tolerance: int) -> dict:
    """Match detected beats to reference beats within +-``tolerance`` samples, one to one.

    Returns tp, fn, fp, sensitivity (Se), positive predictivity (+P) and the median offset
    (detected - reference, samples) of the matches.
    """
    reference = np.sort(np.asarray(reference))
    detected = np.sort(np.asarray(detected))
    used = np.zeros(len(detected), dtype=bool)
    offsets = []
    tp = 0
    j = 0
    for r in reference:
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
            tp += 1
            offsets.append(int(detected[best] - r))
    fn, fp = len(reference) - tp, int((~used).sum())
    return {"tp": tp, "fn": fn, "fp": fp,
            "se": tp / (tp + fn) if tp + fn else float("nan"),
            "ppv": tp / (tp + fp) if tp + fp else float("nan"),
            "median_offset": float(np.median(offsets)) if offsets else float("nan")}
