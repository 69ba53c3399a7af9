"""Run-folder reports: a Markdown table, training curves and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pct(v: float) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def metrics_markdown(cfg, metrics: dict) -> str:
    t = metrics["test"]
    split = metrics["split"]
    if "cv" in metrics:
        cv = metrics["cv"]
        selected = (
            f"epoch count ({cv['epochs']}) and per-class offsets ({', '.join(f'{o:+.2f}' for o in cv['offsets'])}) "
            f"chosen by {len(cv['folds'])}-fold {split['by']}-level CV inside the training {split['by']}s "
            f"(out-of-fold kappa {cv['out_of_fold']['kappa']:.3f})"
        )
        unseen = cv.get("offsets_on_unseen_records")
        if unseen and not unseen["kept"]:
            selected += (
                f"; the offsets the folds found ({', '.join(f'{o:+.2f}' for o in unseen['found'])}) were not used: "
                f"chosen on the other folds, they lowered each fold's {cv['monitor']} "
                f"({unseen['score']:.3f} against {unseen['plain_score']:.3f} without)"
            )
    else:
        selected = f"selected on {len(split['val'])} validation {split['by']}s"
    lines = [
        f"# {cfg.task} ({cfg.profile} profile, seed {cfg.seed})",
        "",
        f"Held-out test split by {split['by']}: {len(split['test'])} ({', '.join(split['test'][:12])}"
        f"{', ...' if len(split['test']) > 12 else ''}); trained on {len(split['train'])}, "
        f"{selected}. "
        f"Windows: {t['counts']['train']} train, {t['counts']['val']} val, {t['counts']['test']} test. "
        f"Model: {metrics['n_params']} parameters.",
        "",
        "| class | Se % | +P % | F1 % | support |",
        "|---|---|---|---|---|",
    ]
    for name, pc in t["per_class"].items():
        lines.append(f"| {name} | {_pct(pc['se'])} | {_pct(pc['ppv'])} | {_pct(pc['f1'])} | {pc['support']} |")
    lines += ["", f"Accuracy {_pct(t['accuracy'])} %, macro-F1 {_pct(t['macro_f1'])} %, kappa {t['kappa']:.3f}"]
    if "j_index" in t:
        lines.append(f"j-index {t['j_index']:.3f}, jk-index {t['jk_index']:.3f} (Mondejar-Guerra 2019)")
    if "not_learned" in t:
        lines.append(
            f"Beats of classes not learned: {t['not_learned']['labels']}, predicted as "
            f"{t['not_learned']['predicted_as']}"
        )
    if "binary" in t:
        b = t["binary"]
        lines.append(
            f"{b['positive']} vs rest: sensitivity {_pct(b['sensitivity'])} %, specificity {_pct(b['specificity'])} %"
        )
    if "per_recording" in t:
        r = t["per_recording"]
        extra = (
            (
                f"; {r['binary']['positive']} vs rest: sensitivity {_pct(r['binary']['sensitivity'])} %, "
                f"specificity {_pct(r['binary']['specificity'])} %"
            )
            if "binary" in r
            else ""
        )
        lines.append(
            f"Per recording (mean of its windows' probabilities, n = {r['n']}): accuracy "
            f"{_pct(r['accuracy'])} %, macro-F1 {_pct(r['macro_f1'])} %{extra}"
        )
    if "subject_kfold" in metrics:
        k = metrics["subject_kfold"]
        lines.append(
            f"Subject {k['k']}-fold (every subject tested once, never trained on): "
            f"pooled accuracy {_pct(k['pooled']['accuracy'])} %, macro-F1 "
            f"{_pct(k['pooled']['macro_f1'])} %; per fold accuracy "
            f"{', '.join(_pct(f['accuracy']) for f in k['folds'])}"
        )
    lines.append(f"Training wall time: {metrics['train_seconds'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def write_run_reports(out_dir: Path, cfg, metrics: dict, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out_dir / "metrics.md").write_text(metrics_markdown(cfg, metrics))

    epochs = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    a1.plot(epochs, [h["loss"] for h in history], label="train (weighted, augmented)")
    a1.plot(epochs, [h["val_loss"] for h in history], label="validation")
    a1.set_xlabel("epoch"), a1.set_ylabel("cross-entropy"), a1.legend()
    a2.plot(epochs, [h["val_macro_f1"] for h in history], label="val macro-F1")
    a2.plot(epochs, [h["val_accuracy"] for h in history], label="val accuracy")
    a2.set_xlabel("epoch"), a2.set_ylim(0, 1), a2.legend()
    kept = [h["epoch"] for h in history if h.get("kept")]
    for ax in (a1, a2):
        for e in kept:
            ax.axvline(e, color="grey", linestyle="--", linewidth=1)
    if kept:
        a2.text(kept[0], 0.02, f" kept: epoch {kept[0]}", color="grey", fontsize=8)
    fig.suptitle(f"{cfg.task} ({cfg.profile}): training curves")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=100)
    plt.close(fig)

    cm = np.asarray(metrics["test"]["confusion"])
    fig, ax = plt.subplots(figsize=(1.2 * len(cfg.classes) + 2.5, 1.1 * len(cfg.classes) + 1.5))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{100 * norm[i, j]:.1f}%",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(cm)), cfg.classes), ax.set_yticks(range(len(cm)), cfg.classes)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(f"{cfg.task}: held-out test ({metrics['split']['by']}s never trained on)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "confusion.png", dpi=100)
    plt.close(fig)
