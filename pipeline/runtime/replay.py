"""Recordings to replay through a session (the CLI and the benchmark)."""

from __future__ import annotations

import numpy as np


def read_for(manifest: dict, record: str, data_dir=None):
    """The recording to replay for an artifact folder's task, with the manifest's channels.

    ``record``: an MIT-BIH id or a WFDB path (``dir/rec``) for ECG; a Bonn ``SET/SEGMENT``
    (that segment number of all five sets, one after another: 118 s); an EEGMAT
    ``SubjectNN`` (rest, then task). Needs the training-side readers (wfdb, pyedflib).
    """
    from dataclasses import replace

    if manifest["kind"] == "ecg-beats":
        from pipeline.read.mitdb import read_mitdb, read_wfdb

        if "/" in record:
            return read_wfdb(record.removesuffix(".hea"), channels=manifest["channels"], annotator=None)
        return read_mitdb(record, data_dir, channels=manifest["channels"])
    if manifest["task"] == "eeg-bonn":
        from pipeline.read.bonn import read_bonn

        number = record.split("/")[-1][1:]
        parts = [read_bonn(s, f"{s[-1]}{number}", data_dir) for s in ("A_Z", "B_O", "C_N", "D_F", "E_S")]
        return replace(parts[0], signal=np.concatenate([p.signal for p in parts]))
    from pipeline.read.eegmat import read_eegmat

    parts = [read_eegmat(record, label, data_dir, channels=manifest["channels"]) for label in ("rest", "task")]
    return replace(parts[0], signal=np.concatenate([p.signal for p in parts]))
