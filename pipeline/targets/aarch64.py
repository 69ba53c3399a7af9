"""The device side on a Raspberry Pi's instruction set (aarch64), emulated by qemu-aarch64,
compared decision by decision with the same run on this machine.

An aarch64 Python is assembled from Debian bookworm's arm64 packages (``apt-get download``
into a private package list, then ``dpkg -x``: no root filesystem, no binfmt, no chroot)
and the aarch64 wheels of the ``device`` extras (``pip download --platform``), unpacked
into one folder. ``qemu-aarch64 -L ROOT ROOT/usr/bin/python3.11`` then runs
:mod:`pipeline.runtime.measure` on a held-out recording, exactly as a Pi would.

Needs Debian's ``qemu-user`` from bookworm-backports (QEMU 10): bookworm's 7.2 crashes
inside LiteRT and ONNX Runtime while they probe CPU features. Timing under emulation is
meaningless and is not reported as speed.

    python -m pipeline.targets.aarch64 ARTIFACT_DIR [--record 100] [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from pipeline.errors import BiosigError
from pipeline.manifest import Manifest

#: Debian bookworm arm64 packages an interpreter with its stdlib needs (ssl for hashlib,
#: ffi for ctypes, libstdc++/libgomp for the interpreters' wheels).
DEBIAN_PACKAGES = [
    "libc6",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "libexpat1",
    "zlib1g",
    "libssl3",
    "libffi8",
    "libgcc-s1",
    "libstdc++6",
    "libbz2-1.0",
    "liblzma5",
    "libuuid1",
    "libsqlite3-0",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libcrypt1",
    "libnsl2",
    "libtirpc3",
    "libdb5.3",
    "libgomp1",
]
#: The device extras, pinned by .ci/constraints.txt when it is given.
WHEELS = ["numpy", "scipy", "tqdm", "ai-edge-litert", "onnxruntime"]
#: bookworm has glibc 2.36: every manylinux tag up to it is installable.
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{v}_aarch64" for v in range(17, 37)]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class TargetError(BiosigError):
    """The aarch64 environment cannot be assembled or run (a tool missing, offline)."""


def default_root() -> Path:
    return Path(os.environ.get("BIOSIG_EDGE_CACHE", Path.home() / ".cache" / "biosig-edge")) / "aarch64"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TargetError(f"{name} not found (Debian: {package})")
    return path


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise TargetError(f"{what} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
    return done


def prepare(root: Path | None = None, constraints: Path | None = None, log=print) -> Path:
    """Assemble (once; cached) the aarch64 Python; returns its folder.

    ``ROOT/sysroot`` holds the Debian packages, ``ROOT/site`` the unpacked wheels.
    """
    root = Path(root or default_root())
    if (root / ".complete").is_file():
        return root
    apt = _tool("apt-get", "apt (a Debian or Ubuntu machine)")
    dpkg = _tool("dpkg", "dpkg")
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("lists/partial", "cache/archives/partial", "debs", "sysroot", "site", "wheels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    opts = [
        "-q",
        "-oAPT::Architecture=arm64",
        "-oAPT::Architectures=arm64",
        f"-oDir::State::Lists={root / 'lists'}",
        f"-oDir::Cache={root / 'cache'}",
    ]
    log("aarch64: reading Debian's arm64 package lists")
    _run([apt, *opts, "update"], "apt-get update (arm64 lists)")
    log(f"aarch64: downloading {len(DEBIAN_PACKAGES)} Debian arm64 packages")
    _run([apt, *opts, "download", *DEBIAN_PACKAGES], "apt-get download", cwd=root / "debs")
    for deb in sorted((root / "debs").glob("*.deb")):
        _run([dpkg, "-x", str(deb), str(root / "sysroot")], f"dpkg -x {deb.name}")
    log("aarch64: downloading the device wheels for aarch64")
    pip = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        *[a for p in PLATFORMS for a in ("--platform", p)],
        "-d",
        str(root / "wheels"),
    ]
    if constraints:
        pip += ["-c", str(constraints)]
    _run([*pip, *WHEELS], "pip download (aarch64 wheels)")
    for wheel in sorted((root / "wheels").glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(root / "site")
    # zipfile drops permission bits; shared libraries in the wheels must stay loadable.
    for path in (root / "site").rglob("*.so*"):
        path.chmod(0o755)
    (root / ".complete").write_text("ok\n")
    return root


def python_command(root: Path) -> list[str]:
    """The command that starts the aarch64 Python under emulation, the project importable."""
    qemu = _tool("qemu-aarch64", "qemu-user from bookworm-backports")
    return [
        qemu,
        "-L",
        str(root / "sysroot"),
        "-E",
        f"PYTHONPATH={root / 'site'}:{PROJECT_ROOT}",
        str(root / "sysroot" / "usr" / "bin" / "python3.11"),
    ]


def measure_aarch64(root: Path, job: dict, timeout_s: float = 900) -> dict:
    """Run :mod:`pipeline.runtime.measure` on ``job`` under qemu-aarch64; returns its OUT."""
    with tempfile.TemporaryDirectory(prefix="biosig-a64-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        _run(
            [*python_command(root), "-m", "pipeline.runtime.measure", str(job_path), str(out_path)],
            f"{job['artifact']} under qemu-aarch64",
            timeout=timeout_s,
        )
        return json.loads(out_path.read_text())


def compare(folder: Path, artifacts: list[str], recordings: list[dict], root: Path, log=print) -> list[dict]:
    """Each artifact on the same recordings, on x86 (this machine) and aarch64 (emulated).

    Returns one row per artifact: decisions on each side, whether they are paired one to
    one, the agreement of decisions, the max abs difference of probabilities, and the
    limit it is held to: floats within 1e-5 with equal decisions; quantised ones at least
    as close to x86 as the export found them to float.
    """
    from pipeline.manifest import read_manifest
    from pipeline.runtime.measure import measure_in_child
    from pipeline.validate.score import decisions_from_events

    manifest = read_manifest(folder)
    ids = [r["id"] for r in recordings]
    entries = {a.name: a for a in manifest.artifacts}
    rows = []
    with tempfile.TemporaryDirectory(prefix="biosig-a64-cmp-") as tmp:
        for name in artifacts:
            sides = {}
            for arch in ("x86_64", "aarch64"):
                events = str(Path(tmp) / f"{name}.{arch}.jsonl")
                job = {
                    "folder": str(Path(folder).resolve()),
                    "artifact": name,
                    "chunk_s": 0.25,
                    "core": None,
                    "events_path": events,
                    "recordings": recordings,
                }
                out = measure_in_child(job) if arch == "x86_64" else measure_aarch64(root, job)
                decided = decisions_from_events(events, ids, len(manifest.classes))
                sides[arch] = (
                    [(rid, int(k)) for rid in ids for k in decided[rid][0]],
                    np.concatenate([decided[rid][1] for rid in ids]),
                    out["versions"],
                )
            k86, p86, _ = sides["x86_64"]
            ka, pa, va = sides["aarch64"]
            paired = k86 == ka
            entry = entries[name]
            precision = entry.precision
            row = {
                "artifact": name,
                "precision": precision,
                "decisions_x86": len(k86),
                "decisions_aarch64": len(ka),
                "paired": paired,
                "versions_aarch64": va,
            }
            if paired and len(k86):
                agreement = float((p86.argmax(1) == pa.argmax(1)).mean())
                row.update(agreement=agreement, max_abs_diff=float(np.abs(p86 - pa).max()))
                if precision == "float32":
                    row["limit"] = "equal decisions, max abs diff <= 1e-5"
                    row["passed"] = agreement == 1.0 and row["max_abs_diff"] <= 1e-5
                else:
                    recorded = (entry.vs_float or {}).get("agreement", 1.0)
                    row["limit"] = f"agreement >= {100 * recorded:.2f} % (int8 vs float at export)"
                    row["passed"] = agreement >= recorded
            else:
                row.update(
                    agreement=float("nan"),
                    max_abs_diff=float("nan"),
                    passed=False,
                    limit="the same decisions at the same samples",
                )
            log(
                f"  {name}: {row['decisions_aarch64']} decisions on aarch64, agreement "
                f"{100 * row['agreement']:.2f} %, max |dp| {row['max_abs_diff']:.1e}: "
                f"{'pass' if row['passed'] else 'FAIL'}"
            )
            rows.append(row)
    return rows


def recordings_for(manifest: Manifest, record: str | None, seconds: float, tmp: Path, data_dir=None) -> list[dict]:
    """One held-out recording (default: the first of the test split), as raw float32."""
    from pipeline.validate.heldout import heldout_ids, read_heldout

    rid = record or heldout_ids(manifest)[0]
    h = read_heldout(manifest, rid, data_dir, seconds)
    raw = tmp / "recording.f32"
    h.signal.astype(np.float32).tofile(raw)
    return [h.measure_entry(str(raw))]  # with its rate, channel names and units


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Run artifacts on aarch64 under qemu-aarch64 and compare "
        "their decisions with this machine's, decision by decision."
    )
    parser.add_argument("folder", type=Path, help="artifact folder from 'biosig-edge export'")
    parser.add_argument("--record", help="a held-out recording id (default: the first of the test split)")
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds of it to stream (default 120)")
    parser.add_argument("--artifacts", nargs="+", help="default: tflite and onnx, float and int8")
    parser.add_argument("--root", type=Path, help=f"where to assemble the aarch64 Python (default {default_root()})")
    parser.add_argument("--out", type=Path, help="write the comparison as JSON here")
    parser.add_argument(
        "--write",
        action="store_true",
        help="write the table into its block, aarch64-<dataset> (docs/deploying.md today; found by name)",
    )
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    from pipeline.manifest import read_manifest, shipping_artifacts

    try:
        manifest = read_manifest(args.folder)
        constraints = PROJECT_ROOT / ".ci" / "constraints.txt"
        root = prepare(args.root, constraints if constraints.is_file() else None)
        with tempfile.TemporaryDirectory() as tmp:
            recs = recordings_for(manifest, args.record, args.seconds, Path(tmp), args.data_dir)
            print(
                f"{manifest.task}: {recs[0]['id']}, first {args.seconds:.0f} s; x86_64 (this machine) vs "
                f"aarch64 (qemu-aarch64; timing under emulation is not speed)"
            )
            rows = compare(args.folder, args.artifacts or shipping_artifacts(manifest), recs, root)
    except BiosigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    lines = [
        f"{manifest.task}: {recs[0]['id']}, first {args.seconds:.0f} s, x86_64 (this machine) vs aarch64 "
        f"(qemu-aarch64, Debian's arm64 Python and the device wheels)",
        "",
        "| artifact | decisions (x86 / aarch64) | decisions equal % | max abs dp | limit | |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['artifact']} | {r['decisions_x86']} / {r['decisions_aarch64']} | "
            f"{100 * r['agreement']:.2f} | {r['max_abs_diff']:.1e} | {r['limit']} | "
            f"{'pass' if r['passed'] else 'FAIL'} |"
        )
    print("\n".join(lines[2:]))
    if args.write:
        from pipeline.readme import write_block

        write_block(
            f"aarch64-{manifest.dataset}", "\n".join(lines), "python -m pipeline.targets.aarch64 ARTIFACTS --write"
        )
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
