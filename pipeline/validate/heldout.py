"""The held-out recordings of an artifact folder's task, whole, as a device would see them.

The test ids come from the manifest (``split.test``), so validation always uses the split
the model was trained against: MIT-BIH DS2 records, Bonn test segments, EEGMAT test
subjects (rest and task recordings). Training-side readers (wfdb, pyedflib).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import BiosigError


class HeldoutError(BiosigError):
    """The data folder cannot give the held-out split (a file missing or altered)."""


@dataclass
class Heldout:
    """One held-out recording.

    ``signal``: (n_samples, n_channels) float32 at ``fs_hz`` in the manifest's channel
    order. ECG: ``beat_sample`` / ``beat_class`` (n_beats,) annotated beats and their AAMI
    class. EEG: ``label``, the class index of every window of the recording.
    """

    id: str
    signal: np.ndarray
    fs_hz: float
    beat_sample: np.ndarray | None = None
    beat_class: np.ndarray | None = None
    label: int | None = None

    @property
    def duration_s(self) -> float:
        return len(self.signal) / self.fs_hz


def heldout_ids(manifest: dict) -> list[str]:
    """Recording ids of the held-out split, in the manifest's order."""
    test = list(manifest["split"]["test"])
    if manifest["task"] == "eeg-eegmat":
        return [f"{subject}/{label}" for subject in test for label in ("rest", "task")]
    return test


def read_heldout(manifest: dict, rid: str, data_dir=None, seconds: float | None = None) -> Heldout:
    """Read one held-out recording ``rid`` (an id from :func:`heldout_ids`), optionally
    only its first ``seconds``."""
    try:
        if manifest["kind"] == "ecg-beats":
            from pipeline.read.mitdb import read_mitdb

            rec = read_mitdb(rid, data_dir, channels=manifest["channels"])
            out = Heldout(rid, rec.signal.astype(np.float32), rec.fs_hz,
                          beat_sample=np.asarray(rec.beats.sample), beat_class=np.asarray(rec.beats.aami))
        elif manifest["task"] == "eeg-bonn":
            from pipeline.read.bonn import read_bonn

            set_name, segment = rid.split("/")
            rec = read_bonn(set_name, segment, data_dir)
            out = Heldout(rid, rec.signal.astype(np.float32), rec.fs_hz, label=manifest["classes"].index(set_name))
        else:
            from pipeline.read.eegmat import read_eegmat

            subject, label = rid.split("/")
            rec = read_eegmat(subject, label, data_dir, channels=manifest["channels"])
            out = Heldout(rid, rec.signal.astype(np.float32), rec.fs_hz, label=manifest["classes"].index(label))
    except BiosigError as e:
        raise HeldoutError(f"cannot read held-out recording {rid} of {manifest['task']}: {e}") from None
    if abs(out.fs_hz - manifest["fs_in_hz"]) > 1e-6:
        raise HeldoutError(f"held-out recording {rid} is at {out.fs_hz} Hz; the model expects {manifest['fs_in_hz']} Hz")
    if seconds:
        n = int(round(seconds * out.fs_hz))
        out.signal = out.signal[:n]
        if out.beat_sample is not None:
            keep = out.beat_sample < n
            out.beat_sample, out.beat_class = out.beat_sample[keep], out.beat_class[keep]
    return out
