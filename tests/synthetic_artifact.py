"""A sealed artifact folder made by a test in milliseconds: a manifest that passes every
check (the real tasks' preprocessing, windows and channels) and one model, the numpy
reference (``reference_float32.npz``) with random weights. No training, no TensorFlow.

What it decides is meaningless; what it is for is everything around the model: the
manifest's checks, the model held against its manifest at load, the session's detector,
quality and events (which do not depend on the weights).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from pipeline.manifest import SCHEMA, seal
from pipeline.preprocess import PreprocessSpec
from pipeline.window.rr import RRFeatures
from pipeline.window.template import BeatTemplate

ECG_CLASSES = ["N", "S", "V", "F"]
EEG_CLASSES = ["A_Z", "B_O", "C_N", "D_F", "E_S"]
RR_NAMES = ["pre_rr_norm", "post_rr_norm", "local_rr_norm", "pre_rr_s", "post_rr_s", "avg_rr_s"]


def reference_weights(n_in: int, units: list[int], n_side: int, n_classes: int, seed: int = 0) -> dict:
    """:class:`~pipeline.runtime.reference.NumpyLSTM` weights (Keras layout), float32."""
    rng = np.random.default_rng(seed)
    w = {}
    for i, u in enumerate(units):
        w[f"lstm_{i}_kernel"] = rng.normal(0, 0.3, (n_in, 4 * u))
        w[f"lstm_{i}_recurrent"] = rng.normal(0, 0.3, (u, 4 * u))
        w[f"lstm_{i}_bias"] = np.zeros(4 * u)
        n_in = u
    w["dense_kernel"] = rng.normal(0, 0.3, (units[-1] + n_side, 16))
    w["dense_bias"] = np.zeros(16)
    w["probs_kernel"] = rng.normal(0, 0.3, (16, n_classes))
    w["probs_bias"] = np.zeros(n_classes)
    return {k: v.astype(np.float32) for k, v in w.items()}


EEGMAT_CHANNELS = ["Fp1", "Fp2", "F3", "F4", "F7", "F8", "T3", "T4", "C3", "C4", "T5", "T6"]
EEGMAT_CHANNELS += ["P3", "P4", "O1", "O2", "Fz", "Cz", "Pz"]


def manifest_dict(kind: str = "ecg-beats", units: tuple[int, ...] = (8,), task: str | None = None) -> dict:
    """An unsealed manifest without artifacts: ECG as ``ecg-mitdb`` (360 Hz, every 2nd
    sample, 126-sample beat windows of 2 leads, template-normalised, 6 RR features); EEG
    as ``eeg-bonn`` (173.61 Hz, every 2nd sample, 174-sample windows every 87), or with
    ``task="eeg-eegmat"`` as that (19 electrodes at 500 Hz, 4 band powers each, 50 Hz)."""
    if kind == "ecg-beats":
        pre = PreprocessSpec(360.0, 2, 0.5, 40.0, 60.0, 2, 1.0).to_dict()
        rr, template = RRFeatures(), BeatTemplate()
        m = {
            "task": "ecg-mitdb",
            "dataset": "mitdb",
            "classes": list(ECG_CLASSES),
            "input": {
                "units": "mV",
                "channels": ["MLII", "V1|V2|V4|V5"],
                "channel_aliases": {"MLII": ["II", "ML2", "ECG", "ECG1"]},
                "min_fs_hz": 100.0,
                "valid_range": [-10.0, 10.0],
            },
            "window": {
                "n_steps": 126,
                "n_channels": 4,
                "normalise": "template",
                "n_before_samples": 45,
                "n_after_samples": 81,
            },
            "side_features": {"names": list(RR_NAMES), "mean": [0.0] * 6, "std": [1.0] * 6, "clip": 5.0},
            "rr": {"local_beats": rr.local_beats, "average_s": rr.average_s},
            "template": {"alpha": template.alpha, "min_scale": template.min_scale},
            "streaming": {"chunk_len": 18, "state_sizes": list(units)},
            "split": {"by": "record", "train": ["101"], "val": ["106"], "test": ["100", "232"]},
        }
    elif task == "eeg-eegmat":  # 19 electrodes at 500 Hz, 4 band powers each, at 50 Hz
        bands = [[1.0, 4.0], [4.0, 8.0], [8.0, 13.0], [13.0, 20.0]]
        pre = PreprocessSpec(500.0, 10, 1.0, 20.0, 50.0, 2, 0.02, bands_hz=bands, band_power_s=1.0).to_dict()
        m = {
            "task": "eeg-eegmat",
            "dataset": "eegmat",
            "classes": ["rest", "task"],
            "input": {
                "units": "uV",
                "channels": list(EEGMAT_CHANNELS),
                "channel_aliases": {"T3": ["T7"], "T4": ["T8"], "T5": ["P7"], "T6": ["P8"]},
                "min_fs_hz": 50.0,
                "valid_range": [-2000.0, 2000.0],
            },
            "window": {"n_steps": 100, "n_channels": 4 * len(EEGMAT_CHANNELS), "normalise": "none", "hop_samples": 50},
            "side_features": {"names": [], "mean": [], "std": [], "clip": None},
            "streaming": {"chunk_len": 25, "state_sizes": list(units)},
            "split": {"by": "subject", "train": ["Subject00"], "val": ["Subject01"], "test": ["Subject02"]},
        }
    else:
        pre = PreprocessSpec(173.61, 2, 0.5, 40.0, None, 2, 0.005, running_norm_s=10.0).to_dict()
        m = {
            "task": "eeg-bonn",
            "dataset": "bonn",
            "classes": list(EEG_CLASSES),
            "positive_class": "E_S",
            "input": {
                "units": "uV",
                "channels": ["EEG"],
                "channel_aliases": {},
                "min_fs_hz": 100.0,
                "valid_range": [-2000.0, 2000.0],
            },
            "window": {"n_steps": 174, "n_channels": 1, "normalise": "none", "hop_samples": 87},
            "side_features": {"names": [], "mean": [], "std": [], "clip": None},
            "streaming": {"chunk_len": 29, "state_sizes": list(units)},
            "split": {"by": "segment", "train": ["A_Z/Z002"], "val": ["A_Z/Z003"], "test": ["A_Z/Z001", "E_S/S001"]},
        }
    pre.pop("fs_out_hz")
    return {
        "schema": SCHEMA,
        "kind": kind,
        "preprocess": pre,
        **m,
        "artifacts": [],
        "tools": {},
        "created_utc": "2026-01-01T00:00:00Z",
    }


def make_folder(
    folder: Path, kind: str = "ecg-beats", units: tuple[int, ...] = (8,), edit=None, task: str | None = None
) -> Path:
    """Write ``folder`` (manifest.json, sealed, and reference_float32.npz). ``edit(m)``
    changes the manifest before it is sealed (the model stays as it was made)."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    m = manifest_dict(kind, units, task)
    n_side = len(m["side_features"]["names"])
    weights = reference_weights(m["window"]["n_channels"], list(units), n_side, len(m["classes"]))
    buf = io.BytesIO()
    np.savez(buf, **weights)
    blob = buf.getvalue()
    (folder / "reference_float32.npz").write_bytes(blob)
    m["artifacts"] = [
        {
            "name": "reference_float32",
            "file": "reference_float32.npz",
            "format": "npz",
            "precision": "float32",
            "status": "ok",
            "graph": "weights",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "bytes": len(blob),
            "inputs": [],
            "outputs": [],
        }
    ]
    if edit is not None:
        edit(m)
    (folder / "manifest.json").write_text(json.dumps(seal(m), indent=2))
    return folder
