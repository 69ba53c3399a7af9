"""The generated C as a CPU backend (pipeline/runtime/c_backend.py): export's shared
libraries, loaded with ctypes by the session, give the Cortex-M4 firmware's probabilities
bit for bit on real held-out windows; sessions with them are chunk-invariant like the
others; a library that is for another machine, altered, incomplete or disagrees with its
manifest is refused with one line, exit 2.

Needs gcc, arm-none-eabi-gcc and qemu-system-arm (the M4 build); export builds the other
architecture's library (aarch64 on x86-64) only with its cross compiler, and the tests
that need that library skip without it, naming the package. ``.ci/run`` installs them all
(and under CI=true a missing tool fails).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
from chunking import decide_whole, push_in_chunks
from hypothesis import given, settings
from hypothesis import strategies as st
from tools import has, missing_message, needs

from firmware_export import build
from pipeline.manifest import Manifest
from pipeline.runtime.c_backend import CBackendError, library_entries, pick_library
from pipeline.runtime.session import ECGSession, EEGSession, open_model

C_ARTIFACTS = ("c_float32", "c_int8")


@pytest.fixture(scope="module")
def m4_bits(exported):
    """The Cortex-M4 firmware's probability bits on every window export kept, per precision."""
    needs("gcc", "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
    _, artifacts, manifest = exported
    with np.load(artifacts / "firmware_check_windows.npz") as data:
        signal, side = data["signal"], data["side"]
    out = {}
    for precision in ("float32", "int8"):
        r = build.cortex_m4_check(artifacts / f"bse_{precision}.c", signal, side, len(manifest["classes"]))
        assert r["bits_equal_host"]
        out[f"c_{precision}"] = r["m4"]["bits"]
    return signal, side, out


def _buildable_targets() -> set[str]:
    """The CPU library targets whose compiler is on this machine (every one under CI)."""
    here = platform.machine()
    return {
        target
        for target, (arch, _, _) in build.CPU_LIBRARIES.items()
        if has("gcc" if arch == here else build.CPU_COMPILERS[arch])
    }


def test_export_lists_a_library_per_cpu_target_with_its_compiler_and_flags(exported):
    _, artifacts, manifest = exported
    typed = Manifest.from_dict(manifest)
    buildable = _buildable_targets()
    for name in C_ARTIFACTS:
        libs = {a.target: a.to_dict() for a in library_entries(typed, name)}
        assert sorted(libs) == sorted(buildable), name
        # A target whose cross compiler is missing is listed as failed, naming the tool.
        for target in set(build.CPU_LIBRARIES) - buildable:
            entry = next(a for a in manifest["artifacts"] if a["name"] == f"{name}.{target}")
            compiler = build.CPU_COMPILERS[build.CPU_LIBRARIES[target][0]]
            assert entry["status"] == "failed" and f"{compiler} not found" in entry["reason"]
        for entry in libs.values():
            assert (artifacts / entry["file"]).is_file() and len(entry["sha256"]) == 64
            assert "-ffp-contract=off" in entry["flags"] and not any("fast-math" in f for f in entry["flags"])
            assert ("aarch64" in entry["compiler"]) == (entry["architecture"] == "aarch64")
        picked = pick_library(typed, name)
        assert picked is not None
        assert picked.architecture == platform.machine() and picked.extra["bits_equal_host_build"]
        assert libs[platform.machine()]["bits_equal_host_build"]  # the baseline, run here too
    from pipeline.export.report import format_export

    table = format_export(typed)  # what 'biosig-edge export' prints
    assert f"| c_int8.{platform.machine()} |" in table and "= c_int8, bit for bit" in table


@pytest.mark.parametrize("artifact", C_ARTIFACTS)
def test_c_backend_gives_the_cortex_m4_builds_bits_on_held_out_windows(exported, m4_bits, artifact):
    _, artifacts, manifest = exported
    signal, side, bits = m4_bits
    lib = open_model(artifacts, Manifest.from_dict(manifest), artifact)
    probs = lib.predict({"signal": signal, "side": side})
    assert len(probs) == 48
    assert np.array_equal(probs.view(np.uint32), bits[artifact])
    # one window per call, as the ECG session calls it: the same bits
    one = np.concatenate([lib.predict({"signal": signal[i : i + 1], "side": side[i : i + 1]}) for i in range(8)])
    assert np.array_equal(one.view(np.uint32), bits[artifact][:8])


@pytest.fixture(scope="module")
def ecg_60s():
    from pipeline.read.mitdb import read_mitdb

    return read_mitdb("213", channels=["MLII", "V1|V2|V4|V5"]).signal[: 360 * 60].astype(np.float64)


@settings(max_examples=4, deadline=None)
@given(sizes=st.lists(st.one_of(st.just(1), st.integers(1, 64), st.integers(65, 8000)), min_size=1, max_size=12))
def test_ecg_session_with_the_c_backend_is_chunk_invariant(exported, ecg_60s, sizes):
    _, out, _ = exported
    whole = decide_whole(ECGSession(out, "c_float32"), ecg_60s)
    assert len(whole) > 60
    # Pushes shorter than the session's block are gathered: what the last ones hold is decided
    # at the flush, as `biosig-edge stream` flushes at the end of its input.
    chunked = ECGSession(out, "c_float32")
    assert push_in_chunks(chunked.push, ecg_60s, sizes) + chunked.flush() == whole


def test_ecg_session_with_the_c_backend_follows_the_float_reference(exported, ecg_60s):
    _, out, _ = exported
    ref = [e for e in ECGSession(out, "reference_float32").push(ecg_60s) if e["type"] == "beat"]
    c32 = [e for e in ECGSession(out, "c_float32").push(ecg_60s) if e["type"] == "beat"]
    c8 = [e for e in ECGSession(out, "c_int8").push(ecg_60s) if e["type"] == "beat"]
    assert [b["sample"] for b in c32] == [b["sample"] for b in c8] == [b["sample"] for b in ref]
    # float32 C against the float64 reference (tests/test_firmware_c.py: 1e-5 on real beats)
    np.testing.assert_allclose([b["probs"] for b in c32], [b["probs"] for b in ref], atol=1e-5)
    assert [b["class"] for b in c32] == [b["class"] for b in ref]


def test_eeg_session_with_the_c_backend_streams_windows_like_the_float_model(exported_bonn):
    from pipeline.read.bonn import read_bonn

    _, out, _ = exported_bonn
    x = read_bonn("E_S", "S001").signal
    ref = EEGSession(out, "reference_float32").push(x)
    for artifact in C_ARTIFACTS:
        whole = EEGSession(out, artifact).push(x)
        assert [e["start_sample"] for e in whole] == [e["start_sample"] for e in ref] and len(whole) == 22
        assert push_in_chunks(EEGSession(out, artifact).push, x, [1, 77, 500]) == whole
        if artifact == "c_float32":
            np.testing.assert_allclose([e["probs"] for e in whole], [e["probs"] for e in ref], atol=1e-5)


# ------------------------------------------------------------------ bad input


@pytest.fixture
def folder_copy(exported, tmp_path):
    _, artifacts, _ = exported
    dst = tmp_path / "artifacts"
    shutil.copytree(artifacts, dst)
    return dst


def _rewrite(folder, edit):
    """Edit manifest.json and re-seal its digest: a consistent manifest that lies about the
    libraries, which the library checks (not the digest) must catch."""
    from pipeline.manifest import seal

    path = folder / "manifest.json"
    manifest = seal(_edited(json.loads(path.read_text()), edit))
    path.write_text(json.dumps(manifest))
    return manifest


def _picked_file(manifest: dict, artifact: str) -> str:
    """The file of the library this machine loads for ``artifact``."""
    picked = pick_library(Manifest.from_dict(manifest), artifact)
    assert picked is not None
    return picked.file


def _edited(manifest, edit):
    edit(manifest)
    return manifest


def _stream_cli(folder):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "stream",
            str(folder),
            "-",
            "--fs",
            "360",
            "--units",
            "mV",
            "--artifact",
            "c_float32",
        ],
        input="0.1,0.2\n" * 10,
        capture_output=True,
        text=True,
    )


def test_an_altered_library_is_refused_naming_it_exit_2(folder_copy):
    manifest = json.loads((folder_copy / "manifest.json").read_text())
    lib = folder_copy / _picked_file(manifest, "c_float32")
    data = bytearray(lib.read_bytes())
    data[len(data) // 2] ^= 0x01
    lib.write_bytes(bytes(data))
    done = _stream_cli(folder_copy)
    assert done.returncode == 2 and lib.name in done.stderr and "altered" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_library_for_another_architecture_is_refused(folder_copy):
    here = platform.machine()
    other = "aarch64" if here == "x86_64" else "x86_64"
    # Export builds the other architecture's library only with its cross compiler.
    if not has(build.CPU_COMPILERS[other]):
        pytest.skip(f"{missing_message([build.CPU_COMPILERS[other]])}: export built no {other} library")

    def swap(manifest):  # this machine's files hold the other's library
        libs = [a for a in manifest["artifacts"] if a.get("source") == "c_float32"]
        theirs = next(a for a in libs if a["architecture"] == other)
        for entry in (a for a in libs if a["architecture"] == here):
            shutil.copyfile(folder_copy / theirs["file"], folder_copy / entry["file"])
            entry["sha256"], entry["bytes"] = theirs["sha256"], theirs["bytes"]

    manifest = _rewrite(folder_copy, swap)
    with pytest.raises(CBackendError, match=f"built for {other}, listed for {here}; refusing"):
        open_model(folder_copy, Manifest.from_dict(manifest), "c_float32")
    done = _stream_cli(folder_copy)
    assert done.returncode == 2 and f"built for {other}" in done.stderr

    def drop(manifest):
        manifest["artifacts"] = [
            a for a in manifest["artifacts"] if not (a.get("source") == "c_float32" and a["architecture"] == here)
        ]

    manifest = _rewrite(folder_copy, drop)
    with pytest.raises(
        CBackendError, match=rf"no c_float32 library for this machine \({here}\); the folder has \['{other}'\]"
    ):
        open_model(folder_copy, Manifest.from_dict(manifest), "c_float32")


def test_a_library_missing_a_symbol_is_refused(folder_copy, tmp_path):
    needs("gcc")
    from pipeline.manifest import sha256_bytes

    src = tmp_path / "partial.c"
    src.write_text("int bse_info(int *out, int n) { (void)out; (void)n; return 0; }\n")
    manifest = json.loads((folder_copy / "manifest.json").read_text())
    lib = folder_copy / _picked_file(manifest, "c_float32")  # the one this machine loads
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)

    def relist(manifest):
        entry = next(a for a in manifest["artifacts"] if a.get("format") == "shared-library" and a["file"] == lib.name)
        entry["sha256"], entry["bytes"] = sha256_bytes(lib.read_bytes()), lib.stat().st_size

    manifest = _rewrite(folder_copy, relist)
    with pytest.raises(CBackendError, match=f"{lib.name}: missing symbol bse_check"):
        open_model(folder_copy, Manifest.from_dict(manifest), "c_float32")


def test_a_manifest_whose_sizes_disagree_with_the_library_is_refused(folder_copy):
    def drop_side_feature(manifest):  # a consistent manifest, one feature short
        side = manifest["side_features"]
        n = len(side["names"])
        for key, value in side.items():
            if isinstance(value, list) and len(value) == n:
                side[key] = value[:-1]

    manifest = _rewrite(folder_copy, drop_side_feature)
    n = len(manifest["side_features"]["names"])
    with pytest.raises(CBackendError, match=f"computes with n_side={n + 1}, manifest.json says {n}"):
        open_model(folder_copy, Manifest.from_dict(manifest), "c_int8")
    done = _stream_cli(folder_copy)
    assert done.returncode == 2 and "manifest.json says" in done.stderr and "Traceback" not in done.stderr
