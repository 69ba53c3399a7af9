"""Figures of a validation report, each returned as PNG bytes (matplotlib, Agg)."""

from __future__ import annotations

import io

import numpy as np

from pipeline.validate import score

CLASS_COLOURS = ["#4c72b0", "#dd8452", "#c44e52", "#8172b3", "#55a868", "#937860"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def confusion_grid(rows: list[dict]) -> bytes:
    """One row-normalised confusion matrix per artifact, counts written in the cells."""
    plt = _plt()
    ok = [r for r in rows if r["status"] == "ok"]
    n = len(ok)
    cols = min(n, 4)
    fig, axes = plt.subplots(
        (n + cols - 1) // cols, cols, figsize=(3.3 * cols, 3.1 * ((n + cols - 1) // cols)), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, row in zip(axes.flat, ok):
        m = row["metrics"]
        cm = np.asarray(m["confusion"], dtype=float)
        frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if frac[i, j] > 0.6 else "black",
                )
        rows_l, cols_l = m.get("confusion_rows", m["classes"]), m.get("confusion_cols", m["classes"])
        ax.set_xticks(range(len(cols_l)), cols_l, fontsize=7, rotation=45)
        ax.set_yticks(range(len(rows_l)), rows_l, fontsize=7)
        ax.set_title(f"{row['artifact']}\nmacro-F1 {100 * m['macro_f1']:.1f} %", fontsize=8)
        ax.set_xlabel("decided", fontsize=7)
        ax.set_ylabel("annotated", fontsize=7)
    fig.tight_layout()
    return _png(fig)


def latency_histograms(rows: list[dict], latency_s: dict[str, list[float]]) -> bytes:
    """Wall time per decision, one histogram per artifact on a shared log axis."""
    plt = _plt()
    ok = [r for r in rows if r["status"] == "ok" and latency_s.get(r["artifact"])]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    all_ms = np.concatenate([np.asarray(latency_s[r["artifact"]]) * 1000 for r in ok])
    bins = np.geomspace(max(all_ms.min(), 1e-3), all_ms.max() * 1.01, 60)
    for i, r in enumerate(ok):
        ms = np.asarray(latency_s[r["artifact"]]) * 1000
        ax.hist(
            ms,
            bins=bins,
            histtype="step",
            lw=1.4,
            color=CLASS_COLOURS[i % len(CLASS_COLOURS)] if i < 6 else None,
            label=f"{r['artifact']} (p99 {r['p99_latency_ms']:.2f} ms)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("wall time per decision (ms), one core, one thread")
    ax.set_ylabel("decisions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def probability_scatter(rows: list[dict], decisions: dict, reference: str, classes: list[str]) -> bytes:
    """Each artifact's class probabilities against the float reference's, decision by decision."""
    plt = _plt()
    others = [r for r in rows if r["status"] == "ok" and r["artifact"] != reference]
    n = max(len(others), 1)
    cols = min(n, 3)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat[len(others) :]:
        ax.axis("off")
    for ax, row in zip(axes.flat, others):
        a, b = score.probability_pairs(decisions[reference], decisions[row["artifact"]])
        for k, name in enumerate(classes):
            ax.scatter(a[:, k], b[:, k], s=3, alpha=0.4, color=CLASS_COLOURS[k % len(CLASS_COLOURS)], label=name)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(
            f"{row['artifact']}\nagreement {row['agreement_pct']:.2f} %, max |dp| {row['max_abs_diff']:.2g}", fontsize=8
        )
        ax.set_xlabel(f"{reference} probability", fontsize=7)
        ax.set_ylabel("artifact probability", fontsize=7)
        ax.tick_params(labelsize=7)
    if others:
        axes.flat[0].legend(fontsize=6, markerscale=3)
    fig.tight_layout()
    return _png(fig)


def ecg_strip(
    heldouts, decisions: dict, reference: str, other: str | None, classes: list[str], seconds: float = 10.0
) -> bytes:
    """Ten seconds of ECG (first channel) with the annotated beats above and the beats
    each model detected and classified below; the stretch holding the most non-N beats
    among the recordings' first minutes."""
    plt = _plt()
    best, best_count, best_start = heldouts[0], -1, 0.0
    for h in heldouts:
        n_seen = len(h.signal)
        for start in np.arange(0, max(n_seen / h.fs_hz - seconds, 0) + 1e-9, seconds / 2):
            a, b = int(start * h.fs_hz), int((start + seconds) * h.fs_hz)
            sel = (h.beat_sample >= a) & (h.beat_sample < b)
            count = int(np.isin(h.beat_class[sel], [c for c in classes if c != "N"]).sum())
            if count > best_count:
                best, best_count, best_start = h, count, start
    h = best
    a, b = int(best_start * h.fs_hz), int((best_start + seconds) * h.fs_hz)
    t = np.arange(a, b) / h.fs_hz
    fig, ax = plt.subplots(figsize=(11, 3.4))
    ax.plot(t, h.signal[a:b, 0], color="black", lw=0.7)
    lo, hi = float(np.min(h.signal[a:b, 0])), float(np.max(h.signal[a:b, 0]))
    span = max(hi - lo, 1e-6)
    sel = (h.beat_sample >= a) & (h.beat_sample < b)
    for s, c in zip(h.beat_sample[sel], h.beat_class[sel]):
        ax.text(
            s / h.fs_hz,
            hi + 0.12 * span,
            c,
            ha="center",
            fontsize=8,
            color=CLASS_COLOURS[classes.index(c)] if c in classes else "grey",
        )
    lanes = [(reference, lo - 0.15 * span)] + ([(other, lo - 0.32 * span)] if other else [])
    for name, y in lanes:
        keys, probs = decisions[name][h.id]
        inside = (keys >= a) & (keys < b)
        for s, p in zip(keys[inside], probs[inside]):
            k = int(np.argmax(p))
            ax.text(s / h.fs_hz, y, classes[k], ha="center", fontsize=8, color=CLASS_COLOURS[k], weight="bold")
        ax.text(t[0] - 0.02 * seconds, y, name, ha="right", fontsize=7)
    ax.text(t[0] - 0.02 * seconds, hi + 0.12 * span, "annotated", ha="right", fontsize=7)
    ax.set_ylim(lo - 0.42 * span, hi + 0.25 * span)
    ax.set_xlabel(f"time (s), record {h.id}")
    ax.set_yticks([])
    ax.set_title(
        "ECG with annotated beats (top) and the beats each model detected and classified while streaming", fontsize=9
    )
    fig.tight_layout()
    return _png(fig)


def eeg_strip(heldouts, decisions: dict, reference: str, other: str | None, classes: list[str]) -> bytes:
    """One held-out recording per class (first channel, first 20 s), each window's
    decision drawn as a coloured bar under the trace."""
    plt = _plt()
    picks = []
    for k in range(len(classes)):
        h = next((h for h in heldouts if h.label == k), None)
        if h is not None:
            picks.append(h)
    fig, axes = plt.subplots(len(picks), 1, figsize=(11, 1.5 * len(picks) + 0.6), squeeze=False)
    for ax, h in zip(axes[:, 0], picks):
        n = min(len(h.signal), int(20 * h.fs_hz))
        t = np.arange(n) / h.fs_hz
        x = h.signal[:n, 0]
        lo, hi = float(x.min()), float(x.max())
        span = max(hi - lo, 1e-6)
        ax.plot(t, x, color="black", lw=0.5)
        for lane, name in enumerate([reference] + ([other] if other else [])):
            keys, probs = decisions[name][h.id]
            for s, p in zip(keys, probs):
                if s / h.fs_hz > t[-1]:
                    break
                k = int(np.argmax(p))
                y = lo - (0.12 + 0.14 * lane) * span
                ax.plot([s / h.fs_hz + 0.05, s / h.fs_hz + 0.95], [y, y], color=CLASS_COLOURS[k], lw=4)
        ax.set_yticks([])
        ax.set_ylabel(f"{h.id}\n({classes[h.label]})", fontsize=7, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel(
        f"time (s); bars: each window's decision (1 s hop), top {reference}" + (f", below {other}" if other else "")
    )
    handles = [plt.Line2D([], [], color=CLASS_COLOURS[k], lw=4, label=c) for k, c in enumerate(classes)]
    axes[0, 0].legend(handles=handles, fontsize=7, ncol=len(classes), loc="upper right")
    fig.tight_layout()
    return _png(fig)
