"""The CPU library's probabilities against the Cortex-M4 firmware's, on every held-out window.

    python -m pipeline.tools.m4_equality ARTIFACT_DIR [--batch 1000]

The tests compare the two on the 48 windows export keeps; this runs all of them: every
held-out test window of the run's split (pipeline/tools/identity_check.heldout_windows)
through the shared library for this machine (the device's ``c_float32`` / ``c_int8``
backend, loaded as the session loads it) and through the test firmware built for the
Cortex-M4 and run under QEMU, in batches that fit the board's 4 MB of code memory. Prints
windows compared and windows whose probability bits differ; exit 1 if any do.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np

from firmware_export import build


def m4_probability_bits(
    src: Path, signal: np.ndarray, side: np.ndarray | None, n_classes: int, batch: int = 1000, log=print
) -> np.ndarray:
    """(n, n_classes) uint32: the Cortex-M4 firmware's probability bits, batch by batch."""
    out = []
    with tempfile.TemporaryDirectory(prefix="biosig-m4-all-") as tmp:
        for start in range(0, len(signal), batch):
            stop = min(start + batch, len(signal))
            elf = build.build_firmware(
                src, signal[start:stop], None if side is None else side[start:stop], Path(tmp), "cortex-m4"
            )
            bits = build.parse_firmware_output(build.run_firmware(elf, timeout_s=3600), n_classes)["bits"]
            if len(bits) != stop - start:
                raise build.BuildError(f"the firmware printed {len(bits)} of {stop - start} decisions")
            out.append(bits)
            log(f"  {src.name}: {stop:,} of {len(signal):,} windows on the Cortex-M4")
    return np.concatenate(out)


def main(argv=None) -> int:
    from pipeline.runtime.c_backend import C_ARTIFACTS, open_library
    from pipeline.tools.identity_check import heldout_windows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batch", type=int, default=1000, help="windows per firmware image (default 1000)")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    x, side, _, manifest = heldout_windows(args.folder, args.data_dir)
    entries = {a.name: a for a in manifest.artifacts}
    k = len(manifest.classes)
    rows = []
    for name in C_ARTIFACTS:
        lib = open_library(args.folder, manifest, name)
        cpu = lib.predict({"signal": x, "side": side} if side is not None else {"signal": x}).view(np.uint32)
        m4 = m4_probability_bits(args.folder / entries[name].file, x, side, k, args.batch)
        rows.append((name, len(x), int((cpu != m4).any(axis=1).sum())))
    print(
        f"{manifest.task}: every held-out test window, {platform.machine()} shared library vs Cortex-M4 "
        f"firmware (QEMU mps2-an386)"
    )
    print("| artifact | windows | windows whose probability bits differ |")
    print("|---|---|---|")
    for name, n, differ in rows:
        print(f"| {name} | {n:,} | {differ} |")
    return 0 if all(r[2] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
