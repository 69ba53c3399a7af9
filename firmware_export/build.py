"""Compile and run generated C: on the host (gcc), on a Cortex-M4 (arm-none-eabi-gcc,
QEMU's mps2-an386 board with semihosting), and as a shared library for CPUs (x86-64 with
gcc, aarch64 with Debian's cross compiler). Sizes from arm-none-eabi-size, instruction
counts from QEMU's SysTick under ``-icount shift=0``.

Every build compiles the generated model file with the hand-written runtime
(``runtime/bse_lstm.c``) under emlearn's strict warnings, as errors, and without
floating-point contraction: ``-ffp-contract=off`` keeps gcc from fusing a multiply and an
add into one FMA instruction (it does by default on aarch64, and on x86 wherever FMA is
enabled), which would round once where the Cortex-M4 rounds twice. No ``-ffast-math`` (nor
``-fassociative-math``, ``-funsafe-math-optimizations``, ``-ffinite-math-only``): they let
the compiler reorder sums. With these flags x86-64, aarch64 and the Cortex-M4F compute the
same float bits (the tests check it).

Tools come from Debian packages (``.ci/run`` installs them): gcc, gcc-aarch64-linux-gnu,
gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm. A missing tool raises
:class:`ToolMissing` naming the package.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from firmware_export.c_model import PRECISIONS, RUNTIME_DIR
from pipeline.errors import BiosigError

HARNESS = Path(__file__).parent / "harness"
#: emlearn's warnings (as errors), C99, and no contraction: the same bits on every target.
#: -fno-math-errno lets sqrt be the (correctly rounded) instruction, without libm.
COMMON_FLAGS = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Wdouble-promotion",
    "-Wfloat-conversion",
    "-Werror",
    "-O2",
    "-ffp-contract=off",
    "-fno-math-errno",
]
M4_FLAGS = [
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
    "-ffunction-sections",
    "-fdata-sections",
]
#: The CPU shared library: the same warnings and contraction rule, at -O3. The runtime's
#: vector loops (GCC's vector extension) make each lane an independent output, so no sum is
#: reordered: the library's bits equal the Cortex-M4 build's (tests/test_c_backend.py,
#: tests/test_aarch64.py).
SHARED_FLAGS = [*(f for f in COMMON_FLAGS if f != "-O2"), "-O3", "-fPIC", "-shared", "-s"]
#: Compiler per target architecture (``platform.machine()`` names).
CPU_COMPILERS = {"x86_64": "gcc", "aarch64": "aarch64-linux-gnu-gcc"}
#: The libraries export builds: {target: (architecture, extra flags, the CPU features it
#: needs, as /proc/cpuinfo names)}. Each architecture's baseline (SSE2, NEON) runs on any
#: machine of it; x86-64-v3 (AVX2: 8 lanes instead of 4) where the CPU has those features,
#: and the loader prefers it there. -march=x86-64-v3 also enables FMA instructions, which
#: -ffp-contract=off keeps gcc from using.
CPU_LIBRARIES = {
    "x86_64": ("x86_64", [], []),
    "x86_64-v3": (
        "x86_64",
        ["-march=x86-64-v3"],
        ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"],
    ),
    "aarch64": ("aarch64", [], []),
}
#: QEMU's mps2-an386 SysTick runs at 25 MHz; under -icount shift=0 an instruction takes 1 ns.
INSTRUCTIONS_PER_TICK = 40
PACKAGES = {
    "gcc": "gcc",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
}


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


def model_prefix(src: Path) -> str:
    """``ecg_int8.c`` -> ``ecg``: generated files are named ``<prefix>_<precision>``."""
    stem = Path(src).stem
    for precision in PRECISIONS:
        if stem.endswith(f"_{precision}") and len(stem) > len(precision) + 1:
            return stem[: -len(precision) - 1]
    raise BuildError(f"{src}: not a generated model file (<prefix>_<{'|'.join(PRECISIONS)}>.c)")


def model_sources(src: Path) -> tuple[list[str], list[str]]:
    """(sources, flags) that build the model ``src``: its file and the runtime (the copy
    next to it, as export ships it, else the package's), its header and prefix named for
    the harness (``runtime/model_api.h``)."""
    src = Path(src)
    prefix = model_prefix(src)
    runtime = src.parent / "bse_lstm.c"
    if not runtime.is_file():
        runtime = RUNTIME_DIR / "bse_lstm.c"
    flags = [
        f'-DMODEL_HEADER="{src.with_suffix(".h").name}"',
        f"-DMODEL_PREFIX={prefix}",
        f"-DMODEL_PREFIX_UPPER={prefix.upper()}",
        f"-I{src.parent}",
        f"-I{runtime.parent}",
        f"-I{RUNTIME_DIR}",
    ]
    return [str(src), str(runtime)], flags


# --------------------------------------------------------------------------- host


def build_host_driver(src: Path, workdir: Path) -> Path:
    """Compile the model with the stdin/stdout driver (warnings are errors)."""
    exe = Path(workdir) / f"{Path(src).stem}_host"
    sources, flags = model_sources(src)
    _run([require("gcc"), *COMMON_FLAGS, *flags, str(HARNESS / "host_driver.c"), *sources, "-o", str(exe)])
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

    text = [
        "/* Real held-out windows for the test firmware (written by firmware_export/build.py). */",
        f"#define TEST_N_WINDOWS {n}",
        f"#define TEST_N_STEPS {steps}",
        f"static const float test_x[{n}][{steps * ch}] = {{",
        rows(signal),
        "};",
    ]
    side_rows = side if n_side else np.zeros((n, 1), np.float32)
    text += [f"static const float test_side[{n}][{max(n_side, 1)}] = {{", rows(side_rows), "};", ""]
    path.write_text("\n".join(text))


def build_firmware(
    src: Path, signal: np.ndarray, side: np.ndarray | None, workdir: Path, target: str = "cortex-m4"
) -> Path:
    """The test firmware (model + embedded windows) for ``cortex-m4`` or ``host``."""
    workdir, src = Path(workdir), Path(src)
    write_windows_header(workdir / "windows.h", signal, side)
    sources, model_flags = model_sources(src)
    flags = [*COMMON_FLAGS, *model_flags, f"-I{workdir}"]
    if target == "host":
        exe = workdir / f"{src.stem}_firmware_host"
        _run([require("gcc"), *flags, str(HARNESS / "firmware_main.c"), *sources, "-o", str(exe)])
        return exe
    elf = workdir / f"{src.stem}_firmware.elf"
    _run(
        [
            require("arm-none-eabi-gcc"),
            *M4_FLAGS,
            *flags,
            "--specs=rdimon.specs",
            "-nostartfiles",
            "-T",
            str(HARNESS / "link.ld"),
            "-Wl,--gc-sections",
            str(HARNESS / "startup_m4.c"),
            str(HARNESS / "firmware_main.c"),
            *sources,
            "-o",
            str(elf),
        ]
    )
    return elf


def run_firmware(exe: Path, target: str = "cortex-m4", timeout_s: float = 300) -> str:
    """Run the test firmware; returns what it printed."""
    if target == "host":
        return _run([str(exe)], text=True, timeout=timeout_s).stdout
    cmd = [
        require("qemu-system-arm"),
        "-M",
        "mps2-an386",
        "-nographic",
        "-semihosting",
        "-icount",
        "shift=0",
        "-kernel",
        str(exe),
    ]
    return _run(cmd, text=True, timeout=timeout_s).stdout


def parse_firmware_output(text: str, n_classes: int) -> dict:
    """Lines ``i best bits... ticks`` -> {best (n,), probs (n, K) float32, bits, instructions (n,)}."""
    rows = [line.split() for line in text.splitlines() if re.match(r"^\d+ \d+ ", line)]
    if not rows:
        raise BuildError(f"the firmware printed no decisions: {text[-500:]!r}")
    bits = np.array([[int(v, 16) for v in r[2 : 2 + n_classes]] for r in rows], np.uint32)
    return {
        "best": np.array([int(r[1]) for r in rows]),
        "bits": bits,
        "probs": bits.view(np.float32),
        "instructions": np.array([int(r[-1]) for r in rows]) * INSTRUCTIONS_PER_TICK,
    }


#: What the size probe calls: the whole API, so the link keeps exactly what a firmware using
#: the model keeps (with --gc-sections), nothing of the other precision's code.
_SIZE_PROBE = """#include "model_api.h"
model_state_t state_probe;
model_filter_t filter_probe;
float io_probe[MODEL_N_STEPS * MODEL_N_CHANNELS + MODEL_N_SIDE + MODEL_N_CLASSES];
int size_probe(void)
{
    model_filter_init(&filter_probe, io_probe[0]);
    model_filter_push(&filter_probe, io_probe, 1, io_probe);
    model_init(&state_probe);
    model_push(&state_probe, io_probe, MODEL_N_STEPS);
    return model_check() + model_decision(&state_probe, io_probe, io_probe);
}
"""
_PROBE_SYMBOLS = {"size_probe", "state_probe", "filter_probe", "io_probe"}


def m4_sizes(src: Path, workdir: Path) -> dict:
    """Flash and static RAM of the model with the runtime code it uses, for the Cortex-M4.

    The model, the runtime and a probe calling the whole API are linked with
    --gc-sections; what remains, less the probe's own symbols, is the model's: flash =
    text (code + const weights) + data; static RAM = data + bss + the caller's state
    struct; stack = the frames of the linked model and runtime functions summed
    (-fstack-usage: an upper bound on the deepest call chain).
    """
    workdir, src = Path(workdir), Path(src)
    sources, flags = model_sources(src)
    (workdir / "size_probe.c").write_text(_SIZE_PROBE)
    gcc = require("arm-none-eabi-gcc")
    objects = []
    for i, source in enumerate([*sources, str(workdir / "size_probe.c")]):
        obj = workdir / f"size_{i}_{Path(source).stem}.o"
        _run([gcc, *M4_FLAGS, *COMMON_FLAGS, *flags, "-fstack-usage", "-c", source, "-o", str(obj)])
        objects.append(obj)
    symbols = _m4_probe_symbols(gcc, objects, workdir / f"{src.stem}_size.elf", entry="size_probe")
    text_b = sum(n for name, (kind, n) in symbols.items() if kind in "tr" and name not in _PROBE_SYMBOLS)
    data_b = sum(n for name, (kind, n) in symbols.items() if kind == "d" and name not in _PROBE_SYMBOLS)
    bss_b = sum(n for name, (kind, n) in symbols.items() if kind == "b" and name not in _PROBE_SYMBOLS)
    state_b = symbols["state_probe"][1]
    stack_b = 0
    for obj in objects[:-1]:
        su = obj.with_suffix(".su")
        for line in su.read_text().splitlines() if su.exists() else []:
            function, frame = line.split("\t")[0].rsplit(":", 1)[-1], int(line.split("\t")[1])
            if function in symbols:
                stack_b += frame
    return {
        "text": text_b,
        "data": data_b,
        "bss": bss_b,
        "flash_bytes": text_b + data_b,
        "state_bytes": state_b,
        "stack_bytes": stack_b,
        "static_ram_bytes": data_b + bss_b + state_b,
        "ram_with_stack_bytes": data_b + bss_b + state_b + stack_b,
    }


def cortex_m4_check(src: Path, signal: np.ndarray, side: np.ndarray | None, n_classes: int) -> dict:
    """Build the model and its test firmware for host and Cortex-M4, run both, compare.

    Returns sizes, instructions per decision (mean / max), and whether the M4's decisions
    and probability bits equal the host build's.
    """
    with tempfile.TemporaryDirectory(prefix="biosig-m4-") as tmp_name:
        tmp = Path(tmp_name)
        host = parse_firmware_output(run_firmware(build_firmware(src, signal, side, tmp, "host"), "host"), n_classes)
        m4 = parse_firmware_output(run_firmware(build_firmware(src, signal, side, tmp, "cortex-m4")), n_classes)
        sizes = m4_sizes(src, tmp)
    return {
        "windows": int(len(m4["best"])),
        "decisions_equal_host": bool(np.array_equal(m4["best"], host["best"])),
        "bits_equal_host": bool(np.array_equal(m4["bits"], host["bits"])),
        "max_abs_diff_vs_host": float(np.abs(m4["probs"] - host["probs"]).max()),
        "instructions_mean": float(m4["instructions"].mean()),
        "instructions_max": int(m4["instructions"].max()),
        "m4": m4,
        "host": host,
        **sizes,
    }


# ------------------------------------------------------------------ CPU shared library


def compiler_version(compiler: str) -> str:
    """First line of ``compiler --version``."""
    return _run([require(compiler), "--version"], text=True).stdout.splitlines()[0].strip()


def build_shared_library(src: Path, out_dir: Path, target: str | None = None, extra_flags: tuple = ()) -> dict:
    """The model ``src`` with the runtime and ``runtime/bse_shared.c`` as a shared library
    for a CPU, ``<stem>.<target>.so`` in ``out_dir``; ``target`` is a :data:`CPU_LIBRARIES`
    key (default: this machine's baseline); ``extra_flags`` are added. Returns {path,
    target, architecture, cpu_features, compiler, flags}.

    The flags are the Cortex-M4 build's (strict warnings, ``-ffp-contract=off``) at -O3:
    the library's float bits equal the firmware's.
    """
    target = target or platform.machine()
    if target not in CPU_LIBRARIES:
        raise BuildError(f"no CPU library target {target!r} (known: {sorted(CPU_LIBRARIES)})")
    arch, target_flags, features = CPU_LIBRARIES[target]
    compiler = CPU_COMPILERS[arch] if arch != platform.machine() else "gcc"
    src, out_dir = Path(src), Path(out_dir)
    sources, flags = model_sources(src)
    path = out_dir / f"{src.stem}.{target}.so"
    lib_flags = [*SHARED_FLAGS, *target_flags, *extra_flags]
    _run([require(compiler), *lib_flags, *flags, *sources, str(RUNTIME_DIR / "bse_shared.c"), "-o", str(path)])
    return {
        "path": path,
        "target": target,
        "architecture": arch,
        "cpu_features": list(features),
        "compiler": compiler_version(compiler),
        "flags": lib_flags,
    }


def build_benchmark(src: Path, workdir: Path, target: str | None = None) -> Path:
    """The C microbenchmark (``harness/bench_main.c``) of model ``src`` for this machine,
    with the flags of the shared library ``target`` (a :data:`CPU_LIBRARIES` key, default
    this machine's baseline): the compute bound of one step and one decision."""
    src = Path(src)
    target = target or platform.machine()
    sources, flags = model_sources(src)
    exe = Path(workdir) / f"{src.stem}.{target}_bench"
    lib_flags = [f for f in SHARED_FLAGS if f not in ("-fPIC", "-shared")] + CPU_LIBRARIES[target][1]
    _run([require("gcc"), *lib_flags, *flags, str(HARNESS / "bench_main.c"), *sources, "-o", str(exe)])
    return exe


def run_benchmark(exe: Path, signal: np.ndarray, side: np.ndarray | None, reps: int = 200) -> dict:
    """Run the microbenchmark on real windows (n, n_steps, C) [+ side (n, S)] -> its JSON."""
    import json

    n, steps, _ = signal.shape
    body = np.ascontiguousarray(signal, np.float32).reshape(n, -1)
    if side is not None and side.shape[1]:
        body = np.concatenate([body, np.ascontiguousarray(side, np.float32)], axis=1)
    data = np.array([n, steps], np.int32).tobytes() + np.ascontiguousarray(body, np.float32).tobytes()
    return json.loads(_run([str(exe), str(reps)], input=data).stdout)


# ------------------------------------------------------------------ the signal chain in C


def _chain_sources(
    workdir: Path,
    configs: dict[str, float],
    beat_configs: dict[str, dict] | None = None,
    wqrs_configs: dict[str, float] | None = None,
) -> list[str]:
    """The chain's runtime sources and one generated file of QRS configurations
    ({C name: fs_hz}) and beat configurations ({C name: c_chain.beat_config(...)}) in
    ``workdir``."""
    from firmware_export.c_chain import CHAIN_SOURCES, beat_config_c, qrs_config_c, wqrs_config_c

    generated = Path(workdir) / "chain_config.c"
    generated.write_text(
        "\n".join(
            [
                *(qrs_config_c(fs_hz, name) for name, fs_hz in configs.items()),
                *(beat_config_c(cfg, name) for name, cfg in (beat_configs or {}).items()),
                *(wqrs_config_c(fs_hz, name) for name, fs_hz in (wqrs_configs or {}).items()),
            ]
        )
    )
    return [*(str(RUNTIME_DIR / name) for name in CHAIN_SOURCES), str(generated)]


def build_chain_library(
    out_dir: Path,
    configs: dict[str, float],
    extra_flags: tuple = (),
    beat_configs: dict[str, dict] | None = None,
    wqrs_configs: dict[str, float] | None = None,
) -> Path:
    """The QRS detector, RR features and beat windows (``runtime/bse_qrs.c``, ``bse_rr.c``,
    ``bse_beat.c``) with the QRS configurations ``configs`` ({C name: fs_hz}) and beat
    configurations ``beat_configs`` as a shared library for this machine, with the CPU
    library's flags (strict warnings as errors, no contraction, -O3)."""
    out_dir = Path(out_dir)
    path = out_dir / "bse_chain.so"
    sources = _chain_sources(out_dir, configs, beat_configs, wqrs_configs)
    _run([require("gcc"), *SHARED_FLAGS, *extra_flags, f"-I{RUNTIME_DIR}", *sources, "-o", str(path)])
    return path


def build_ecg_library(
    out_dir: Path, model_src: Path, manifest, extra_flags: tuple = (), config_name: str = "ecg_chain", **config
) -> Path:
    """The whole ECG chain (``runtime/bse_ecg.c`` with the detector, RR features, beat
    windows) and the generated model ``model_src`` (its ``.c``, compiled with bse_lstm.c) as
    a shared library for this machine, the chain configured for ``manifest`` as
    ``<config_name>`` (``config``: ``c_chain.ecg_config``'s options); the CPU library's flags."""
    from firmware_export.c_chain import ECG_SOURCES, ecg_config_c

    out_dir, model_src = Path(out_dir), Path(model_src)
    generated = out_dir / f"{config_name}.c"
    generated.write_text(ecg_config_c(manifest, config_name, model_prefix(model_src), **config))
    sources, flags = model_sources(model_src)
    path = out_dir / f"{config_name}.{model_src.stem}.so"
    chain = [str(RUNTIME_DIR / name) for name in ECG_SOURCES]
    _run([require("gcc"), *SHARED_FLAGS, *extra_flags, *flags, *sources, *chain, str(generated), "-o", str(path)])
    return path


_CHAIN_PROBE = """#include "bse_qrs.h"
#include "bse_rr.h"
extern const bse_qrs_config_t chain_qrs;
bse_qrs_state_t qrs_probe;
bse_rr_state_t rr_probe;
float x_probe[64], rr_out_probe[BSE_RR_N_FEATURES];
int32_t beats_probe[64];
int chain_probe(void)
{
    int32_t n = (int32_t)bse_qrs_init(&qrs_probe, &chain_qrs) + (int32_t)bse_rr_init(&rr_probe, 180.0f, 10, 300.0f);
    n += bse_qrs_push(&qrs_probe, x_probe, 64, beats_probe, 64);
    return (int)(n + bse_rr_push(&rr_probe, beats_probe[0], rr_out_probe));
}
"""


def chain_m4_sizes(workdir: Path, fs_hz: float, max_fs_hz: int) -> dict:
    """Flash and RAM of the QRS detector and RR features on the Cortex-M4 (-Os, the M4
    flags, warnings as errors), the detector's state sized for ``max_fs_hz``
    (``-DBSE_QRS_MAX_FS_HZ``) and configured for ``fs_hz``.

    Linked with a probe that calls the whole API, --gc-sections: text (code + the const
    configuration), data and bss as arm-none-eabi-size counts them less the probe's own
    objects; the state structs' sizes from the symbol table.
    """
    workdir = Path(workdir)
    gcc = require("arm-none-eabi-gcc")
    sources = _chain_sources(workdir, {"chain_qrs": fs_hz})
    (workdir / "chain_probe.c").write_text(_CHAIN_PROBE)
    flags = [*M4_FLAGS, *(f for f in COMMON_FLAGS if f != "-O2"), "-Os", f"-DBSE_QRS_MAX_FS_HZ={int(max_fs_hz)}"]
    objects = []
    for source in [*sources, str(workdir / "chain_probe.c")]:
        obj = workdir / f"{Path(source).stem}.m4.o"
        _run([gcc, *flags, f"-I{RUNTIME_DIR}", "-c", source, "-o", str(obj)])
        objects.append(obj)
    symbols = _m4_probe_symbols(gcc, objects, workdir / "chain_m4.elf", entry="chain_probe")
    probe = {"chain_probe", "qrs_probe", "rr_probe", "x_probe", "rr_out_probe", "beats_probe"}
    kinds = {"t": "text", "r": "text", "d": "data", "b": "bss"}
    sizes = {"text": 0, "data": 0, "bss": 0}
    for name, (kind, n) in symbols.items():
        if name not in probe and kind in kinds:
            sizes[kinds[kind]] += n
    return {
        **sizes,
        # software double arithmetic linked in (none: the M4's FPU is single precision)
        "double_helpers": sorted(n for n in symbols if re.match(r"__aeabi_(d|[a-z0-9]*2d)", n)),
        "qrs_state_bytes": symbols["qrs_probe"][1],
        "rr_state_bytes": symbols["rr_probe"][1],
        "config_bytes": symbols["chain_qrs"][1],
    }


def build_chain_firmware(
    workdir: Path, signal: np.ndarray, fs_hz: float, push_samples: int, target: str = "cortex-m4", max_fs_hz: int = 360
) -> Path:
    """The chain's test firmware (``harness/chain_main.c``): ``signal`` (n,) float32 at
    ``fs_hz`` embedded, pushed ``push_samples`` at a time through bse_qrs and bse_rr, for
    ``cortex-m4`` (-Os, the M4 flags; run with :func:`run_firmware`) or ``host``."""
    workdir = Path(workdir)
    x = np.ascontiguousarray(signal, np.float32).reshape(-1)
    body = ",\n".join(",".join(f"{v:.9e}f" for v in x[i : i + 8]) for i in range(0, len(x), 8))
    (workdir / "chain_signal.h").write_text(
        f"#define CHAIN_N_SAMPLES {len(x)}\n#define CHAIN_PUSH {int(push_samples)}\n"
        f"#define CHAIN_FS_HZ {float(fs_hz):.9e}f\nstatic const float chain_x[{len(x)}] = {{\n{body}\n}};\n"
    )
    sources = _chain_sources(workdir, {"chain_qrs": fs_hz})
    flags = [*COMMON_FLAGS, f"-DBSE_QRS_MAX_FS_HZ={int(max_fs_hz)}", f"-I{RUNTIME_DIR}", f"-I{workdir}"]
    main = str(HARNESS / "chain_main.c")
    if target == "host":
        exe = workdir / "chain_firmware_host"
        _run([require("gcc"), *flags, main, *sources, "-o", str(exe)])
        return exe
    elf = workdir / "chain_firmware.elf"
    m4_flags = [*M4_FLAGS, *(f for f in flags if f != "-O2"), "-Os"]
    _run(
        [
            require("arm-none-eabi-gcc"),
            *m4_flags,
            "--specs=rdimon.specs",
            "-nostartfiles",
            "-T",
            str(HARNESS / "link.ld"),
            "-Wl,--gc-sections",
            str(HARNESS / "startup_m4.c"),
            main,
            *sources,
            "-o",
            str(elf),
        ]
    )
    return elf


def parse_chain_output(text: str) -> dict:
    """What chain_main.c printed -> {beats: [sample], features: {beat: (7,) uint32 bits},
    instructions, longest_push_instructions, samples, dropped}."""
    beats, features, total = [], {}, None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "B":
            beats.append(int(parts[1]))
            if len(parts) > 2:
                features[beats[-1]] = np.array([int(v, 16) for v in parts[2:]], np.uint32)
        elif parts and parts[0] == "T":
            total = parts
    if total is None:
        raise BuildError(f"the chain firmware did not finish: {text[-500:]!r}")
    return {
        "beats": beats,
        "features": features,
        "instructions": int(total[1]) * INSTRUCTIONS_PER_TICK,
        "longest_push_instructions": int(total[2]) * INSTRUCTIONS_PER_TICK,
        "samples": int(total[3]),
        "dropped": int(total[5]),
    }


# ------------------------------------------------------------------ the whole ECG chain on the Cortex-M4


def model_capacities(model_src: Path) -> list[str]:
    """-D flags that size bse_ecg's model buffers and classes exactly for the generated model
    ``model_src`` (from its header's ``<PREFIX>_N_*``), instead of the defaults' headroom."""
    header = Path(model_src).with_suffix(".h").read_text()
    prefix = model_prefix(Path(model_src)).upper()
    values = {k: int(v) for k, v in re.findall(rf"#define {prefix}_(N_[A-Z]+) (\d+)", header)}
    names = {
        "N_CLASSES": "BSE_ECG_MAX_CLASSES",
        "N_STATE": "BSE_ECG_MAX_STATE",
        "N_SCRATCH": "BSE_ECG_MAX_SCRATCH",
        "N_FEATURES": "BSE_ECG_MAX_FEATURES",
        "N_QUANTISED": "BSE_ECG_MAX_QUANTISED",
    }
    return [f"-D{macro}={max(values.get(key, 1), 1)}" for key, macro in names.items()]


#: The Cortex-M4 build's capacities for the ECG task at 180 Hz: the detector's buffers for
#: 180 Hz, windows up to 128 steps, a 3.1 s ring of preprocessed samples (560: the window and
#: the 2.3 s quality lag need 541; the session keeps 12 s, so a beat the detector reports
#: more than 515 samples (2.9 s) after its R would be skipped here and not there: on the 22
#: DS2 records the latest report comes 337 samples (1.9 s) after its R), the RR average over
#: at most 1,001 intervals (300 s at 200 bpm; faster, it covers the last 1,001), 12 beats
#: awaiting their decision (the 2.3 s lag at 300 bpm holds 12), the model's input
#: normalised 4 rows at a time.
M4_ECG_DEFINES = (
    "-DBSE_QRS_MAX_FS_HZ=180",
    "-DBSE_BEAT_MAX_STEPS=128",
    "-DBSE_BEAT_RING_CAP=560",
    "-DBSE_RR_MAX_BPM=200",
    "-DBSE_ECG_PENDING_CAP=12",
    "-DBSE_ECG_ROWS=4",
)


def _ecg_sources(workdir: Path, model_src: Path, manifest, config: dict) -> tuple[list[str], list[str]]:
    from firmware_export.c_chain import ECG_SOURCES, ecg_config_c

    generated = Path(workdir) / "ecg_chain.c"
    generated.write_text(ecg_config_c(manifest, "ecg_chain", model_prefix(model_src), **config))
    sources, flags = model_sources(model_src)
    return [*sources, *(str(RUNTIME_DIR / name) for name in ECG_SOURCES), str(generated)], flags


def build_ecg_firmware(
    workdir: Path,
    model_src: Path,
    manifest,
    counts: np.ndarray,
    baseline: np.ndarray,
    gain: np.ndarray,
    push_samples: int,
    target: str = "cortex-m4",
    defines: tuple = M4_ECG_DEFINES,
    **config,
) -> Path:
    """The whole chain's test firmware (``harness/ecg_main.c``): raw converter counts (n,
    n_channels) int16 embedded with their ``baseline`` and ``gain`` (counts per model unit),
    pushed ``push_samples`` at a time through bse_ecg and the generated model ``model_src``;
    for ``cortex-m4`` (-Os, the M4 flags, ``defines`` and the model's exact buffer sizes;
    run with :func:`run_firmware`) or ``host`` (-O2, the same defines)."""
    workdir, model_src = Path(workdir), Path(model_src)
    counts = np.asarray(counts)
    if counts.dtype != np.int16 or counts.ndim != 2:
        raise BuildError(f"counts must be (n, channels) int16, got {counts.dtype} {counts.shape}")
    n, n_ch = counts.shape
    rows = ",\n".join(
        ",".join("{" + ",".join(str(int(v)) for v in row) + "}" for row in counts[i : i + 8]) for i in range(0, n, 8)
    )
    (workdir / "ecg_signal.h").write_text(
        f"#define ECG_N_SAMPLES {n}\n#define ECG_N_CHANNELS {n_ch}\n#define ECG_PUSH {int(push_samples)}\n"
        f"static const int16_t ecg_counts[{n}][{n_ch}] = {{\n{rows}\n}};\n"
        f"static const int32_t ecg_baseline[{n_ch}] = {{{', '.join(str(int(b)) for b in baseline)}}};\n"
        f"static const float ecg_gain[{n_ch}] = {{{', '.join(f'{float(g):.9e}f' for g in gain)}}};\n"
    )
    sources, model_flags = _ecg_sources(workdir, model_src, manifest, config)
    flags = [*COMMON_FLAGS, *model_flags, *defines, *model_capacities(model_src), f"-I{RUNTIME_DIR}", f"-I{workdir}"]
    main = str(HARNESS / "ecg_main.c")
    if target == "host":
        exe = workdir / "ecg_firmware_host"
        _run([require("gcc"), *flags, main, *sources, "-o", str(exe)])
        return exe
    elf = workdir / "ecg_firmware.elf"
    _run(
        [
            require("arm-none-eabi-gcc"),
            *M4_FLAGS,
            *(f for f in flags if f != "-O2"),
            "-Os",
            "--specs=rdimon.specs",
            "-nostartfiles",
            "-T",
            str(HARNESS / "link.ld"),
            "-Wl,--gc-sections",
            str(HARNESS / "startup_m4.c"),
            main,
            *sources,
            "-o",
            str(elf),
        ],
        timeout=600,
    )
    return elf


def parse_ecg_output(text: str) -> dict:
    """What ecg_main.c printed -> {events: [(kind, sample, class, flags, (probability bits))],
    instructions, longest_push_instructions, samples, dropped, max_report_lag, stack_bytes (the
    deepest the chain's pushes reached below main's stack pointer, painted and checked; 0 on
    the host)}."""
    events, total = [], None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "E":
            kind, sample, cls, flags = (int(v) for v in parts[1:5])
            events.append((kind, sample, cls, flags, tuple(int(v, 16) for v in parts[5:])))
        elif parts and parts[0] == "T":
            total = parts
    if total is None:
        raise BuildError(f"the ECG firmware did not finish: {text[-500:]!r}")
    return {
        "events": events,
        "instructions": int(total[1]) * INSTRUCTIONS_PER_TICK,
        "longest_push_instructions": int(total[2]) * INSTRUCTIONS_PER_TICK,
        "samples": int(total[3]),
        "dropped": int(total[4]),
        "max_report_lag": int(total[5]),
        "stack_bytes": int(total[6]),
    }


_ECG_PROBE = """#include "bse_ecg.h"
extern const bse_ecg_config_t ecg_chain;
bse_ecg_state_t ecg_probe;
bse_ecg_event_t events_probe[16];
float x_probe[64];
int ecg_probe_main(void)
{
    int32_t n = (int32_t)bse_ecg_init(&ecg_probe, &ecg_chain);
    n += bse_ecg_push(&ecg_probe, x_probe, 32, events_probe, 16);
    return (int)(n + bse_ecg_flush(&ecg_probe, events_probe, 16));
}
"""


def ecg_m4_sizes(workdir: Path, model_src: Path, manifest, defines: tuple = M4_ECG_DEFINES, **config) -> dict:
    """Flash and RAM of the whole ECG chain with the generated model ``model_src`` on the
    Cortex-M4 (-Os, the M4 flags, ``defines``, the model's exact buffer sizes): linked with a
    probe calling init, push and flush, --gc-sections; text (code + const data: weights,
    configurations), data, bss less the probe's own; the state struct from the symbol table;
    stack as the frames of every linked function summed (-fstack-usage: an upper bound on
    the deepest call chain)."""
    workdir, model_src = Path(workdir), Path(model_src)
    gcc = require("arm-none-eabi-gcc")
    sources, model_flags = _ecg_sources(workdir, model_src, manifest, config)
    (workdir / "ecg_probe.c").write_text(_ECG_PROBE)
    flags = [
        *M4_FLAGS,
        *(f for f in COMMON_FLAGS if f != "-O2"),
        "-Os",
        *model_flags,
        *defines,
        *model_capacities(model_src),
        f"-I{RUNTIME_DIR}",
        "-fstack-usage",
    ]
    objects = []
    for source in [*sources, str(workdir / "ecg_probe.c")]:
        obj = workdir / f"{Path(source).stem}.m4.o"
        _run([gcc, *flags, "-c", source, "-o", str(obj)])
        objects.append(obj)
    symbols = _m4_probe_symbols(gcc, objects, workdir / "ecg_m4.elf", entry="ecg_probe_main")
    probe = {"ecg_probe_main", "ecg_probe", "events_probe", "x_probe"}
    kinds = {"t": "text", "r": "text", "d": "data", "b": "bss"}
    sizes = {"text": 0, "data": 0, "bss": 0}
    for name, (kind, n) in symbols.items():
        if name not in probe and kind in kinds:
            sizes[kinds[kind]] += n
    stack = 0
    for obj in objects[:-1]:
        su = obj.with_suffix(".su")
        for line in su.read_text().splitlines() if su.exists() else []:
            function, frame = line.split("\t")[0].rsplit(":", 1)[-1], int(line.split("\t")[1])
            if function in symbols:
                stack += frame
    state = symbols["ecg_probe"][1]
    return {
        **sizes,
        "flash_bytes": sizes["text"] + sizes["data"],
        "state_bytes": state,
        "stack_bytes": stack,
        "ram_with_stack_bytes": sizes["data"] + sizes["bss"] + state + stack,
        "double_helpers": sorted(n for n in symbols if re.match(r"__aeabi_(d|[a-z0-9]*2d)", n)),
    }


def _m4_probe_symbols(gcc: str, objects: list[Path], elf: Path, entry: str) -> dict[str, tuple[str, int]]:
    """Link ``objects`` for the Cortex-M4 with ``entry`` as the only root (what it does not
    reach is dropped) and read the symbols' sizes: {name: (nm kind, lower case; bytes)}."""
    _run(
        [
            gcc,
            *M4_FLAGS,
            "-nostdlib",
            "-nostartfiles",
            "-Wl,--gc-sections",
            f"-Wl,-e,{entry}",
            *map(str, objects),
            "-lc",
            "-lgcc",
            "-o",
            str(elf),
        ]
    )
    nm = _run([require("arm-none-eabi-nm"), "-S", "--size-sort", str(elf)], text=True).stdout
    symbols = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4:
            symbols[parts[3]] = (parts[2].lower(), int(parts[1], 16))
    return symbols
