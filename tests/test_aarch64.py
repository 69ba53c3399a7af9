"""The device side on aarch64 (a Raspberry Pi's instruction set) under qemu-aarch64: the
same recording through the same artifacts gives the same decisions as on this machine.

The first run assembles an aarch64 Python (Debian arm64 packages and aarch64 wheels, about
100 MB) into the cache; CI starts from an empty one."""

from __future__ import annotations

import numpy as np
import pytest

from tools import needs


@pytest.fixture(scope="module")
def aarch64_root():
    needs("qemu-aarch64", "apt-get", "dpkg")
    from pipeline.targets.aarch64 import PROJECT_ROOT, prepare

    return prepare(constraints=PROJECT_ROOT / ".ci" / "constraints.txt", log=lambda *_: None)


@pytest.mark.slow
def test_ecg_decisions_on_aarch64_equal_x86(aarch64_root, exported, tmp_path):
    from pipeline.targets.aarch64 import compare, recordings_for

    _, artifacts, manifest = exported
    recs = recordings_for(manifest, "232", 90.0, tmp_path)      # DS2 record 232: many S beats, long pauses
    rows = compare(artifacts, ["tflite_float32", "tflite_int8", "onnx_float32"], recs, aarch64_root,
                   log=lambda *_: None)
    by = {r["artifact"]: r for r in rows}
    for row in rows:
        assert row["paired"] and row["decisions_aarch64"] > 60, row
        assert row["passed"], row
        assert row["versions_aarch64"]["numpy"] == np.__version__
    assert by["tflite_float32"]["max_abs_diff"] <= 1e-5
    assert "ai-edge-litert" in by["tflite_int8"]["versions_aarch64"]
    assert "onnxruntime" in by["onnx_float32"]["versions_aarch64"]


@pytest.mark.slow
def test_eeg_decisions_on_aarch64_equal_x86(aarch64_root, exported_bonn, tmp_path):
    from pipeline.targets.aarch64 import compare, recordings_for

    _, artifacts, manifest = exported_bonn
    seizure = next(rid for rid in manifest["split"]["test"] if rid.startswith("E_S"))
    recs = recordings_for(manifest, seizure, None, tmp_path)
    rows = compare(artifacts, ["stream_tflite_float32", "stream_onnx_float32", "stream_tflite_int8"], recs,
                   aarch64_root, log=lambda *_: None)
    for row in rows:
        assert row["paired"] and row["decisions_aarch64"] == 22, row   # 23.6 s: 22 windows of 2 s every 1 s
        assert row["passed"], row
