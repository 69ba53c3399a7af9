"""Compile and run generated C: on the host (gcc) and on a Cortex-M4 (arm-none-eabi-gcc,
QEMU's mps2-an386 board with semihosting). Sizes from arm-none-eabi-size, instruction
counts from QEMU's SysTick under ``-icount shift=0``.

Tools come from Debian packages (``.ci/run`` installs them): gcc, gcc-arm-none-eabi,
libnewlib-arm-none-eabi, qemu-system-arm. A missing tool raises :class:`ToolMissing`
naming the package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import BiosigError

HARNESS = Path(__file__).parent / "harness"
COMMON_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-ffp-contract=off"]
M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
            "-ffunction-sections", "-fdata-sections"]
#: QEMU's mps2-an386 SysTick runs at 25 MHz; under -icount shift=0 an instruction takes 1 ns.
INSTRUCTIONS_PER_TICK = 40
PACKAGES = {"gcc": "gcc", "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
            "arm-none-eabi-size": "binutils-arm-none-eabi", "arm-none-eabi-nm": "binutils-arm-none-eabi",
            "qemu-system-arm": "qemu-system-arm"}


class ToolMissing(BiosigError):
    """A compiler or emulator this check needs is not installed."""


class BuildError(BiosigError):
    """Generated C failed to compile or its program failed."""


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} not found (Debian: apt-get install {PACKAGES.get(tool, tool)})")
    return path


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, **kw)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace") if isinstance(done.stderr, bytes) else done.stderr
        raise BuildError(f"{Path(cmd[0]).name} failed ({done.returncode}): {err.strip()[-2000:]}")
    return done


def _header_name(src: Path) -> str:
    return src.with_suffix(".h").name


# --------------------------------------------------------------------------- host

def build_host_driver(src: Path, workdir: Path) -> Path:
    """Compile the model with the stdin/stdout driver (warnings are errors)."""
    exe = Path(workdir) / f"{src.stem}_host"
    _run([require("gcc"), *COMMON_FLAGS, f"-DMODEL_HEADER=\"{_header_name(src)}\"", f"-I{src.parent}",
          str(HARNESS / "host_driver.c"), str(src), "-o", str(exe)])
    return exe


def host_classify(exe: Path, signal: np.ndarray, side: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Run whole windows (n, steps, C) [+ side (n, S)] through the host build -> (n, K) float32."""
    n, steps, _ = signal.shape
    parts = [np.array([0, n, steps], np.int32).tobytes()]
    sig = np.ascontiguousarray(signal, np.float32)
    sd = None if side is None or side.shape[1] == 0 else np.ascontiguousarray(side, np.float32)
    body = np.concatenate([sig.reshape(n, -1), sd], axis=1) if sd is not None else sig.reshape(n, -1)
    parts.append(np.ascontiguousarray(body, np.float32).tobytes())
    out = _run([str(exe)], input=b"".join(parts)).stdout
    return np.frombuffer(out, np.float32).reshape(n, n_classes)


def host_filter(exe: Path, x: np.ndarray) -> np.ndarray:
    """One channel at the input rate through the generated filter -> decimated output."""
    x = np.ascontiguousarray(x, np.float32)
    out = _run([str(exe)], input=np.array([1, len(x)], np.int32).tobytes() + x.tobytes()).stdout
    n_out = int(np.frombuffer(out[:4], np.int32)[0])
    return np.frombuffer(out[4:], np.float32)[:n_out]


# ----------------------------------------------------------------------- firmware

def write_windows_header(path: Path, signal: np.ndarray, side: np.ndarray | None) -> None:
    """Embed real windows (n, steps, C) and side features (n, S) as const arrays (flash)."""
    n, steps, ch = signal.shape
    n_side = 0 if side is None else side.shape[1]

    def rows(a):
        return ",\n".join("  {" + ", ".join(f"{float(v)!r}f" for v in r.ravel()) + "}" for r in a)

    text = ["/* Real held-out windows for the test firmware (written by firmware_export/build.py). */",
            f"#define TEST_N_WINDOWS {n}", f"#define TEST_N_STEPS {steps}",
            f"static const float test_x[{n}][{steps * ch}] = {{", rows(signal), "};"]
    side_rows = side if n_side else np.zeros((n, 1), np.float32)
    text += [f"static const float test_side[{n}][{max(n_side, 1)}] = {{", rows(side_rows), "};", ""]
    path.write_text("\n".join(text))


def build_firmware(src: Path, signal: np.ndarray, side: np.ndarray | None, workdir: Path,
                   target: str = "cortex-m4") -> Path:
    """The test firmware (model + embedded windows) for ``cortex-m4`` or ``host``."""
    workdir = Path(workdir)
    write_windows_header(workdir / "windows.h", signal, side)
    flags = [*COMMON_FLAGS, f"-DMODEL_HEADER=\"{_header_name(src)}\"", f"-I{src.parent}", f"-I{workdir}"]
    if target == "host":
        exe = workdir / f"{src.stem}_firmware_host"
        _run([require("gcc"), *flags, str(HARNESS / "firmware_main.c"), str(src), "-o", str(exe)])
        return exe
    elf = workdir / f"{src.stem}_firmware.elf"
    _run([require("arm-none-eabi-gcc"), *M4_FLAGS, *flags, "--specs=rdimon.specs", "-nostartfiles",
          "-T", str(HARNESS / "link.ld"), "-Wl,--gc-sections", str(HARNESS / "startup_m4.c"),
          str(HARNESS / "firmware_main.c"), str(src), "-o", str(elf)])
    return elf


def run_firmware(exe: Path, target: str = "cortex-m4", timeout_s: float = 300) -> str:
    """Run the test firmware; returns what it printed."""
    if target == "host":
        return _run([str(exe)], text=True, timeout=timeout_s).stdout
    cmd = [require("qemu-system-arm"), "-M", "mps2-an386", "-nographic", "-semihosting",
           "-icount", "shift=0", "-kernel", str(exe)]
    return _run(cmd, text=True, timeout=timeout_s).stdout


def parse_firmware_output(text: str, n_classes: int) -> dict:
    """Lines ``i best bits... ticks`` -> {best (n,), probs (n, K) float32, bits, instructions (n,)}."""
    rows = [line.split() for line in text.splitlines() if re.match(r"^\d+ \d+ ", line)]
    if not rows:
        raise BuildError(f"the firmware printed no decisions: {text[-500:]!r}")
    bits = np.array([[int(v, 16) for v in r[2:2 + n_classes]] for r in rows], np.uint32)
    return {"best": np.array([int(r[1]) for r in rows]), "bits": bits,
            "probs": bits.view(np.float32), "instructions": np.array([int(r[-1]) for r in rows]) * INSTRUCTIONS_PER_TICK}


def m4_sizes(src: Path, workdir: Path) -> dict:
    """Flash and static RAM of the model alone, compiled for the Cortex-M4.

    flash = text (code + const weights) + data; static RAM = data + bss + the caller's
    state struct; stack = the model functions' frames summed (-fstack-usage: an upper
    bound on the deepest call chain).
    """
    workdir = Path(workdir)
    obj = workdir / f"{src.stem}_m4.o"
    _run([require("arm-none-eabi-gcc"), *M4_FLAGS, *COMMON_FLAGS, "-fstack-usage", "-c", str(src), "-o", str(obj)])
    out = _run([require("arm-none-eabi-size"), str(obj)], text=True).stdout.splitlines()[1].split()
    text_b, data_b, bss_b = (int(v) for v in out[:3])
    probe = workdir / "state_size.c"
    probe.write_text(f'#include "{_header_name(src)}"\nbse_state_t state_probe;\n')
    pobj = workdir / "state_size.o"
    _run([require("arm-none-eabi-gcc"), *M4_FLAGS, *COMMON_FLAGS, f"-I{src.parent}", "-c", str(probe), "-o", str(pobj)])
    nm = _run([require("arm-none-eabi-nm"), "-S", str(pobj)], text=True).stdout
    state_b = next(int(line.split()[1], 16) for line in nm.splitlines() if line.endswith("state_probe"))
    su = obj.with_suffix(".su")
    stack_b = sum(int(line.split("\t")[1]) for line in su.read_text().splitlines() if line.strip()) if su.exists() else 0
    return {"text": text_b, "data": data_b, "bss": bss_b, "flash_bytes": text_b + data_b,
            "state_bytes": state_b, "stack_bytes": stack_b,
            "static_ram_bytes": data_b + bss_b + state_b, "ram_with_stack_bytes": data_b + bss_b + state_b + stack_b}


def cortex_m4_check(src: Path, signal: np.ndarray, side: np.ndarray | None, n_classes: int) -> dict:
    """Build the model and its test firmware for host and Cortex-M4, run both, compare.

    Returns sizes, instructions per decision (mean / max), and whether the M4's decisions
    and probability bits equal the host build's.
    """
    with tempfile.TemporaryDirectory(prefix="biosig-m4-") as tmp:
        tmp = Path(tmp)
        host = parse_firmware_output(run_firmware(build_firmware(src, signal, side, tmp, "host"), "host"), n_classes)
        m4 = parse_firmware_output(run_firmware(build_firmware(src, signal, side, tmp, "cortex-m4")), n_classes)
        sizes = m4_sizes(src, tmp)
    return {"windows": int(len(m4["best"])), "decisions_equal_host": bool(np.array_equal(m4["best"], host["best"])),
            "bits_equal_host": bool(np.array_equal(m4["bits"], host["bits"])),
            "max_abs_diff_vs_host": float(np.abs(m4["probs"] - host["probs"]).max()),
            "instructions_mean": float(m4["instructions"].mean()), "instructions_max": int(m4["instructions"].max()),
            "m4": m4, "host": host, **sizes}
