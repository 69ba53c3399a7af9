"""The device side on aarch64 (a Raspberry Pi's instruction set) under qemu-aarch64: the
same recording through the same artifacts gives the same decisions as on this machine.

The first run assembles an aarch64 Python (Debian arm64 packages and aarch64 wheels, about
100 MB) into the cache; CI starts from an empty one."""

from __future__ import annotations

import numpy as np
import pytest
from tools import needs

from pipeline.manifest import Manifest


@pytest.fixture(scope="module")
def aarch64_root():
    needs("qemu-aarch64", "apt-get", "dpkg")
    from pipeline.targets.aarch64 import PROJECT_ROOT, prepare

    return prepare(constraints=PROJECT_ROOT / ".ci" / "constraints.txt", log=lambda *_: None)


@pytest.mark.slow
def test_ecg_decisions_on_aarch64_equal_x86(aarch64_root, exported, tmp_path):
    from pipeline.targets.aarch64 import compare, recordings_for

    _, artifacts, manifest = exported
    recs = recordings_for(
        Manifest.from_dict(manifest), "232", 90.0, tmp_path
    )  # DS2 record 232: many S beats, long pauses
    rows = compare(
        artifacts, ["tflite_float32", "tflite_int8", "onnx_float32"], recs, aarch64_root, log=lambda *_: None
    )
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
    recs = recordings_for(Manifest.from_dict(manifest), seizure, None, tmp_path)
    rows = compare(
        artifacts,
        ["stream_tflite_float32", "stream_onnx_float32", "stream_tflite_int8"],
        recs,
        aarch64_root,
        log=lambda *_: None,
    )
    for row in rows:
        assert row["paired"] and row["decisions_aarch64"] == 22, row  # 23.6 s: 22 windows of 2 s every 1 s
        assert row["passed"], row


@pytest.mark.slow
def test_c_backend_on_aarch64_gives_the_cortex_m4_bits(aarch64_root, exported, tmp_path):
    """The aarch64 shared library export cross-compiled, loaded by the aarch64 Python under
    qemu-aarch64: the Cortex-M4 firmware's probability bits on the windows export kept, and
    the x86 session's events, probability for probability."""
    import subprocess

    from firmware_export import build
    from pipeline.targets.aarch64 import compare, python_command, recordings_for

    needs("arm-none-eabi-gcc", "qemu-system-arm")
    _, artifacts, manifest = exported
    with np.load(artifacts / "firmware_check_windows.npz") as data:
        signal, side = data["signal"], data["side"]
    np.savez(tmp_path / "windows.npz", signal=signal, side=side)
    for precision in ("float32", "int8"):
        m4 = build.cortex_m4_check(artifacts / f"bse_{precision}.c", signal, side, len(manifest["classes"]))["m4"]
        out = tmp_path / f"{precision}.npy"
        subprocess.run(
            [
                *python_command(aarch64_root),
                "-m",
                "pipeline.runtime.c_backend",
                str(artifacts),
                f"c_{precision}",
                str(tmp_path / "windows.npz"),
                str(out),
            ],
            check=True,
            timeout=600,
        )
        assert np.array_equal(np.load(out).view(np.uint32), m4["bits"]), precision
    recs = recordings_for(Manifest.from_dict(manifest), "232", 90.0, tmp_path)
    rows = compare(artifacts, ["c_float32", "c_int8"], recs, aarch64_root, log=lambda *_: None)
    for row in rows:
        assert row["paired"] and row["decisions_aarch64"] > 60, row
        assert row["agreement"] == 1.0 and row["max_abs_diff"] == 0.0, row  # bit for bit
