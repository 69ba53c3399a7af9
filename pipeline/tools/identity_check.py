"""Proof that two generators of C compute the same bits on real held-out data.

    python -m pipeline.tools.identity_check ARTIFACT_DIR [ARTIFACT_DIR ...] --old-commit COMMIT

For each artifact folder (from ``biosig-edge export``; its source run folder and the
recordings still on disk), the float weights (``reference_float32.npz``) and the filter
(the manifest's SOS) are written as C by the generator of ``COMMIT`` (``git show``: its
``c_model.py`` and its host driver) and by this tree's, in float32 and int8; both are
compiled for the host with the same optimisation and contraction flags, and run on
every held-out test window of the run's split and on the first minute of every channel of
the first held-out recording (the filter). It prints the number of windows and whether
the probability and filter output bits are equal; exit 1 if any differ.

Run it on any change to ``firmware_export/c_model.py`` or the C runtime that should change
no bit, with the commit before the change as ``--old-commit``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from firmware_export import build, c_model
from pipeline.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]


def heldout_windows(folder: Path, data_dir=None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, Manifest]:
    """Every held-out test window of the run an artifact folder was exported from, as the
    model sees it: signal (n, n_steps, C) float32, standardised side (n, S) float32 or None,
    labels (n,) int64, and the manifest."""
    from pipeline.manifest import ManifestError, read_manifest
    from pipeline.train.config import config_from_dict
    from pipeline.train.data import load_windows
    from pipeline.window.side import Standardiser

    manifest = read_manifest(folder)
    if manifest.source_run is None:
        raise ManifestError(f"{folder}: manifest.json names no source_run, so its held-out windows cannot be cut")
    run = json.loads((Path(manifest.source_run.folder) / "run.json").read_text())
    cfg = config_from_dict(run["config"])
    table = load_windows(cfg, sorted(run["split"]["test"]), data_dir)
    x, s, y = table.take(run["split"]["test"], run["classes"])
    side = None
    if s.shape[1]:
        side = Standardiser(np.asarray(run["side_mean"]), np.asarray(run["side_std"]))(s).astype(np.float32)
    return x.astype(np.float32), side, y, manifest


def _old_generator(commit: str, tmp: Path):
    """The ``c_model`` module and host driver source of ``commit``."""
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:firmware_export/c_model.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    driver = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:firmware_export/harness/host_driver.c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp / "old_c_model.py").write_text(text)
    (tmp / "old_host_driver.c").write_text(driver)
    spec = importlib.util.spec_from_file_location("old_c_model", tmp / "old_c_model.py")
    assert spec is not None and spec.loader is not None  # a .py file path always has both
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_c_model"] = module
    spec.loader.exec_module(module)
    return module, tmp / "old_host_driver.c"


def _spec(module, weights: dict, manifest: Manifest):
    spec = module.spec_from_weights(weights, manifest.window.n_steps, list(manifest.classes))
    return module.with_preprocessing(spec, manifest.preprocess)


def compare(folder: Path, commit: str, data_dir=None, log=print) -> list[dict]:
    """Old and new generated C on the held-out windows of ``folder``: one row per precision."""
    from pipeline.validate.heldout import heldout_ids, read_heldout

    x, side, _, manifest = heldout_windows(folder, data_dir)
    with np.load(folder / "reference_float32.npz", allow_pickle=False) as data:
        weights = {k: data[k] for k in data.files}
    signal = read_heldout(manifest, heldout_ids(manifest)[0], data_dir, seconds=60.0).signal
    k = len(manifest.classes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="biosig-identity-") as tmp_name:
        tmp = Path(tmp_name)
        old, old_driver = _old_generator(commit, tmp)
        for precision in c_model.PRECISIONS:
            (tmp / "old").mkdir(exist_ok=True)
            (tmp / "new").mkdir(exist_ok=True)
            old_src, _ = old.generate(_spec(old, weights, manifest), tmp / "old", "bse", precision)
            new_src, _ = c_model.generate(_spec(c_model, weights, manifest), tmp / "new", "bse", precision)
            old_exe = tmp / "old" / f"host_{precision}"
            build._run(
                [
                    build.require("gcc"),
                    "-std=c99",
                    "-O2",
                    "-ffp-contract=off",
                    f'-DMODEL_HEADER="{old_src.with_suffix(".h").name}"',
                    f"-I{old_src.parent}",
                    str(old_driver),
                    str(old_src),
                    "-o",
                    str(old_exe),
                ]
            )
            new_exe = build.build_host_driver(new_src, tmp / "new")
            p_old = build.host_classify(old_exe, x, side, k)
            p_new = build.host_classify(new_exe, x, side, k)
            filters_equal = all(
                np.array_equal(
                    build.host_filter(old_exe, signal[:, ch]).view(np.uint32),
                    build.host_filter(new_exe, signal[:, ch]).view(np.uint32),
                )
                for ch in range(signal.shape[1])
            )
            row = {
                "folder": str(folder),
                "task": manifest.task,
                "precision": precision,
                "windows": len(x),
                "bits_equal": bool(np.array_equal(p_old.view(np.uint32), p_new.view(np.uint32))),
                "decisions_equal": bool((p_old.argmax(1) == p_new.argmax(1)).all()),
                "filter_samples": int(len(signal)),
                "filter_bits_equal": bool(filters_equal),
            }
            log(
                f"  {manifest.task} {precision}: {row['windows']} held-out windows, probability bits "
                f"{'equal' if row['bits_equal'] else 'DIFFER'}; filter on {row['filter_samples']} samples x "
                f"{signal.shape[1]} channels: {'equal' if filters_equal else 'DIFFER'}"
            )
            rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="artifact folders from 'biosig-edge export'")
    parser.add_argument("--old-commit", required=True, help="the commit whose generator to compare with")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    rows = [r for folder in args.folders for r in compare(folder, args.old_commit, args.data_dir)]
    print("| task | precision | held-out windows | probability bits | filter bits |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['precision']} | {r['windows']:,} | {'equal' if r['bits_equal'] else 'DIFFER'} | "
            f"{'equal' if r['filter_bits_equal'] else 'DIFFER'} |"
        )
    return 0 if all(r["bits_equal"] and r["filter_bits_equal"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
