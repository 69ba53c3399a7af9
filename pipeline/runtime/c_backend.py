"""The generated C as a CPU backend: a shared library loaded with ctypes.

``biosig-edge export`` compiles each generated model (``bse_float32.c``, ``bse_int8.c``)
with the runtime (``bse_lstm.c``) and the library entry points (``bse_shared.c``) for
x86-64 and aarch64, and lists each library in the manifest with its sha256, architecture,
compiler and flags. The device needs no compiler: it picks the library built for
``platform.machine()``, checks its hash, loads it, and holds the sizes the library reports
(``bse_info``) against the manifest before running anything. The float bits equal the
Cortex-M4 firmware's: the same C, compiled without floating-point contraction.

Two calls, the session's interface:
- ``predict({"signal": (n, n_steps, C), "side": (n, n_side)}) -> (n, n_classes)``: whole
  windows, each from zero state (ECG beats);
- ``step(feed) -> (probs (1, n_classes), [h_0, c_0, ...])``: one chunk from a given state
  (EEG windows carried chunk by chunk), the feed of the ``stream_*`` graphs.

Device side: numpy and ctypes only.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import tempfile
from pathlib import Path
from typing import Any, overload

import numpy as np

from pipeline.errors import BiosigError
from pipeline.manifest import ArtifactEntry, Manifest


class CBackendError(BiosigError):
    """A shared library that cannot be run here: another architecture, altered, a symbol
    missing, or sizes that disagree with the manifest."""


#: What ``<prefix>_info`` writes, in order (``runtime/bse_shared.c``), then one value per layer.
INFO_FIELDS = (
    "version",
    "dtype",
    "n_channels",
    "n_steps",
    "n_side",
    "n_classes",
    "n_layers",
    "n_dense",
    "n_state",
    "filter_sections",
    "decimate",
    "state_bytes",
    "filter_bytes",
)
INFO_VERSION = 1
DTYPES = {0: "float32", 1: "int8"}
#: ELF e_machine values -> platform.machine() names.
ELF_MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv64"}
_F32P = ctypes.POINTER(ctypes.c_float)


def elf_machine(data: bytes) -> str:
    """The architecture an ELF shared object was built for (``x86_64``, ``aarch64``, ...)."""
    if data[:4] != b"\x7fELF":
        raise CBackendError("not an ELF shared object")
    endian = "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", data[18:20])
    return ELF_MACHINES.get(machine, f"e_machine {machine}")


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(_F32P)


class CLibrary:
    """One generated model's shared library.

    Parameters
    ----------
    path : the ``.so`` file
    prefix : the generated C's prefix (``bse``: ``bse_info``, ``bse_predict``, ...)
    name : how errors name it (default: the file name)
    """

    SYMBOLS = ("info", "check", "predict", "step", "init", "push", "decision", "filter_init", "filter_push")

    def __init__(self, path: str | Path, prefix: str = "bse", name: str | None = None):
        path = Path(path)
        self.name = name or path.name
        here = platform.machine()
        built_for = elf_machine(path.read_bytes()[:64])
        if built_for != here:
            raise CBackendError(f"{self.name}: built for {built_for}, this machine is {here}; refusing to load it")
        try:
            self.lib = ctypes.CDLL(str(path))
        except OSError as err:
            raise CBackendError(f"{self.name}: cannot be loaded: {err}") from None
        fns = {}
        for sym in self.SYMBOLS:
            try:
                fns[sym] = getattr(self.lib, f"{prefix}_{sym}")
            except AttributeError:
                raise CBackendError(
                    f"{self.name}: missing symbol {prefix}_{sym} (not a biosig-edge model "
                    f"library, or built without bse_shared.c)"
                ) from None
        i32, vp, f32 = ctypes.c_int32, ctypes.c_void_p, ctypes.c_float
        fns["info"].argtypes, fns["info"].restype = [ctypes.POINTER(i32), i32], i32
        fns["check"].argtypes, fns["check"].restype = [], ctypes.c_int
        fns["predict"].argtypes, fns["predict"].restype = [vp, vp, i32, i32, vp], i32
        fns["step"].argtypes, fns["step"].restype = [vp, vp, vp, i32, vp, vp], i32
        fns["filter_init"].argtypes, fns["filter_init"].restype = [vp, f32], None
        fns["filter_push"].argtypes, fns["filter_push"].restype = [vp, vp, ctypes.c_int, vp], ctypes.c_int
        self._fns = fns
        status = fns["check"]()
        if status != 0:
            raise CBackendError(f"{self.name}: the model's own check failed (bse_lstm_status_t {status})")
        buf = (i32 * 64)()
        n = fns["info"](buf, 64)
        values = list(buf[:n])
        if n < len(INFO_FIELDS) or values[0] != INFO_VERSION:
            raise CBackendError(
                f"{self.name}: info layout version {values[0] if values else None}, this loader reads {INFO_VERSION}"
            )
        self.info: dict[str, Any] = dict(zip(INFO_FIELDS, values))
        self.info["dtype"] = DTYPES.get(self.info["dtype"], str(self.info["dtype"]))
        self.info["units"] = values[len(INFO_FIELDS) : len(INFO_FIELDS) + self.info["n_layers"]]
        self.units: list[int] = self.info["units"]
        self.n_channels, self.n_side, self.n_classes = (
            self.info["n_channels"],
            self.info["n_side"],
            self.info["n_classes"],
        )
        self._offsets = np.cumsum([0, *self.units])

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """{``signal``: (n, n_steps, C)[, ``side``: (n, n_side)]} -> (n, n_classes) float32."""
        x = np.ascontiguousarray(inputs["signal"], np.float32)
        if x.ndim != 3 or x.shape[2] != self.n_channels:
            raise CBackendError(f"{self.name}: signal must have shape (n, n_steps, {self.n_channels}), got {x.shape}")
        n = x.shape[0]
        side = None
        if self.n_side:
            side = np.ascontiguousarray(inputs["side"], np.float32)
            if side.shape != (n, self.n_side):
                raise CBackendError(f"{self.name}: side must have shape ({n}, {self.n_side}), got {side.shape}")
        out = np.empty((n, self.n_classes), np.float32)
        self._fns["predict"](x.ctypes.data, None if side is None else side.ctypes.data, n, x.shape[1], out.ctypes.data)
        return out

    def step(self, feed: dict) -> tuple[np.ndarray, list[np.ndarray]]:
        """One chunk: ``chunk`` (1, L, C), ``h_i``/``c_i`` (1, U_i)[, ``side`` (1, n_side)]
        -> probs (1, n_classes), [h_0, c_0, h_1, c_1, ...] each (1, U_i), float32."""
        chunk = np.ascontiguousarray(feed["chunk"], np.float32)
        k = len(self.units)
        h = np.concatenate([np.asarray(feed[f"h_{i}"], np.float32).reshape(-1) for i in range(k)])
        c = np.concatenate([np.asarray(feed[f"c_{i}"], np.float32).reshape(-1) for i in range(k)])
        side = feed.get("side") if self.n_side else None
        side = None if side is None else np.ascontiguousarray(side, np.float32)
        probs = np.empty((1, self.n_classes), np.float32)
        self._fns["step"](
            h.ctypes.data,
            c.ctypes.data,
            chunk.ctypes.data,
            chunk.shape[1],
            None if side is None else side.ctypes.data,
            probs.ctypes.data,
        )
        o = self._offsets
        states = [s[None, o[i] : o[i + 1]] for i in range(k) for s in (h, c)]
        return probs, states

    def filter(self, x: np.ndarray, chunks: list[int] | None = None) -> np.ndarray:
        """One channel at the input rate through the model's filter (steady-state start at
        x[0], pushed in ``chunks`` sizes, default whole) -> the kept, scaled samples."""
        x = np.ascontiguousarray(x, np.float32)
        state = ctypes.create_string_buffer(self.info["filter_bytes"])
        self._fns["filter_init"](ctypes.addressof(state), ctypes.c_float(float(x[0])))
        out = np.empty(len(x), np.float32)
        n_out, start = 0, 0
        for size in chunks or [len(x)]:
            piece = x[start : start + size]
            n_out += self._fns["filter_push"](
                ctypes.addressof(state), piece.ctypes.data, len(piece), out[n_out:].ctypes.data
            )
            start += size
        return out[:n_out]


#: The generated C artifacts a session can run, and the kind of library entry each has.
C_ARTIFACTS = ("c_float32", "c_int8")
LIBRARY_FORMAT = "shared-library"


def cpu_features() -> set[str]:
    """This CPU's features as Linux names them (``flags`` on x86, ``Features`` on arm);
    empty where unknown (then only baseline libraries are picked)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


def library_entries(manifest: Manifest, artifact: str) -> list[ArtifactEntry]:
    """The shared libraries built from ``artifact``, every CPU target."""
    return [a for a in manifest.artifacts if a.format == LIBRARY_FORMAT and a.source == artifact and a.ok]


@overload
def pick_library(
    manifest: Manifest, artifact: str, machine: str | None = ..., features: set[str] | None = ...
) -> ArtifactEntry | None: ...
@overload
def pick_library(
    manifest: dict, artifact: str, machine: str | None = ..., features: set[str] | None = ...
) -> dict | None: ...
def pick_library(
    manifest: Manifest | dict, artifact: str, machine: str | None = None, features: set[str] | None = None
) -> ArtifactEntry | dict | None:
    """The library this machine runs: built for its architecture, needing no CPU feature
    it lacks, and of those the one that uses most (x86-64-v3 before the baseline).

    ``manifest`` as a dict: the sweep's list of export's CPU targets before anything is
    built (``{"artifacts": [{format, source, status, architecture, cpu_features,
    target}]}``), not a manifest read from a folder: the chosen candidate is returned."""
    machine = machine or platform.machine()
    features = cpu_features() if features is None else features
    if isinstance(manifest, dict):
        candidates = manifest["artifacts"]
        entries = [_candidate(a) for a in candidates]
        libraries = [a for a in entries if a.format == LIBRARY_FORMAT and a.source == artifact and a.ok]
    else:
        libraries = library_entries(manifest, artifact)
    fits = [a for a in libraries if a.architecture == machine and set(a.cpu_features) <= features]
    best = max(fits, key=lambda a: len(a.cpu_features), default=None)
    if isinstance(manifest, dict) and best is not None:
        return candidates[entries.index(best)]
    return best


def _candidate(target: dict) -> ArtifactEntry:
    """A library export would build (the sweep's candidates), as the entry it would list."""
    name = f"{target.get('source')}.{target.get('target')}"
    return ArtifactEntry(
        name=name,
        file=f"{name}.so",
        format=target["format"],
        precision="any",
        status=target["status"],
        extra={k: v for k, v in target.items() if k not in ("format", "status")},
    )


def has_library(manifest: Manifest, artifact: str, machine: str | None = None) -> bool:
    """Whether ``artifact`` has a library this machine (default: this one) runs."""
    return pick_library(manifest, artifact, machine) is not None


def expected_sizes(manifest: Manifest, entry: ArtifactEntry) -> dict:
    """What the manifest says the library of ``entry`` must compute with."""
    out: dict[str, object] = {
        "dtype": entry.precision,
        "n_channels": manifest.window.n_channels,
        "n_steps": manifest.window.n_steps,
        "n_side": len(manifest.side_features.names),
        "n_classes": len(manifest.classes),
        "filter_sections": len(manifest.preprocess["sos"]),
        "decimate": manifest.decimate,
    }
    if manifest.streaming is not None and manifest.streaming.state_sizes:
        out["units"] = list(manifest.streaming.state_sizes)
    return out


def open_library(folder: str | Path, manifest: Manifest, artifact: str) -> CLibrary:
    """Load the library built from ``artifact`` (``c_float32`` / ``c_int8``) for this
    machine (:func:`pick_library`): hash checked against the manifest, the checked bytes loaded (a private copy,
    so a file changed after the check is never run), its sizes held against the manifest.

    Raises :class:`CBackendError` (exit 2) naming the file and the problem.
    """
    from pipeline.manifest import ManifestError, verify_artifact

    folder = Path(folder)
    machine = platform.machine()
    entry = pick_library(manifest, artifact, machine)
    if entry is None:
        have = sorted({a.target or a.architecture or a.name for a in library_entries(manifest, artifact)})
        raise CBackendError(
            f"{folder}: no {artifact} library for this machine ({machine}); the folder has "
            f"{have or 'none'} (re-export with the cross compiler installed)"
        )
    try:
        data = verify_artifact(folder, entry)
    except ManifestError as err:
        raise CBackendError(str(err)) from None
    built_for = elf_machine(data[:64])
    if built_for != machine:
        raise CBackendError(f"{folder / entry.file}: built for {built_for}, listed for {machine}; refusing to load it")
    with tempfile.TemporaryDirectory(prefix="biosig-c-") as tmp:
        private = Path(tmp) / entry.file
        private.write_bytes(data)
        os.chmod(private, 0o500)
        lib = CLibrary(private, entry.prefix or "bse", name=str(folder / entry.file))
    # dlopen keeps the mapping; the private copy's name may go.
    for key, want in expected_sizes(manifest, entry).items():
        got = lib.info["units"] if key == "units" else lib.info[key]
        if got != want:
            raise CBackendError(
                f"{folder / entry.file}: the library computes with {key}={got}, manifest.json "
                f"says {want}; refusing to run a model that disagrees with its manifest"
            )
    return lib


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.runtime.c_backend FOLDER ARTIFACT WINDOWS.npz OUT.npy``: whole
    windows (``signal``, optional ``side``) through this machine's library -> probabilities
    (the aarch64 check runs it under emulation)."""
    import sys

    folder, artifact, windows, out = argv if argv is not None else sys.argv[1:]
    from pipeline.manifest import read_manifest

    try:
        manifest = read_manifest(folder)
        lib = open_library(folder, manifest, artifact)
    except BiosigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with np.load(windows, allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files if k in ("signal", "side")}
    np.save(out, lib.predict(inputs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
