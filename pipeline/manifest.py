"""The contract between training and device: ``manifest.json`` in an artifact folder.

Written by ``biosig-edge export``; read by the device runtime and the validation report.
Needs only the standard library: a Raspberry Pi validates it before loading any model
(signature checks, when asked for, use the ``cryptography`` package).

Three layers of trust, each checked on load:

1. **Shape and values.** :meth:`Manifest.from_dict` checks every key the device uses, to
   its nested values (types, ranges, lengths that must agree, filter sections that must be
   stable), and raises :class:`ManifestError` naming the key. The JSON Schema
   ``pipeline/manifest.schema.json`` (draft 2020-12) states the same rules for other
   tools; a test keeps the two in step.
2. **Integrity.** ``digest`` is the sha256 of the manifest's canonical JSON (sorted keys,
   no blanks, every key but ``digest``), and every artifact file's size and sha256 is in
   the manifest: one changed byte anywhere in the folder is refused, naming the file.
3. **Authenticity (optional).** ``manifest.sig`` is an Ed25519 signature of the canonical
   manifest (``biosig-edge sign``). A device given a trusted public key (``--trusted-key``
   or ``$BIOSIG_EDGE_TRUSTED_KEY``) refuses a folder that is unsigned or signed by
   another key.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, Self, overload

from pipeline.errors import BiosigError

SCHEMA = "biosig-edge-manifest/2"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
SIGNATURE_FILE = "manifest.sig"
TRUSTED_KEY_ENV = "BIOSIG_EDGE_TRUSTED_KEY"
KINDS = ("ecg-beats", "eeg-windows")
FORMATS = ("tflite", "onnx", "c", "npz", "shared-library")
NORMALISATIONS = ("none", "zscore", "template")
#: Artifact files larger than this are refused before they are read (a model here is KBs).
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
#: manifest.json larger than this is refused before it is read (one is tens of KB).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: A PEM key file is a few hundred bytes; an Ed25519 signature in base64, 89.
MAX_KEY_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 4 * 1024


class ManifestError(BiosigError):
    """An artifact folder whose manifest, schema, signature or file hashes do not match."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    """The bytes a digest or signature covers: sorted keys, no blanks, ASCII, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def manifest_digest(manifest: dict) -> str:
    """sha256 of the canonical JSON of every key but ``digest``."""
    return sha256_bytes(canonical_json({k: v for k, v in manifest.items() if k != "digest"}))


def seal(manifest: dict) -> dict:
    """The manifest with its ``digest`` set (export's last step)."""
    out = {k: v for k, v in manifest.items() if k != "digest"}
    out["digest"] = manifest_digest(out)
    return out


def read_bounded(path: str | Path, limit_bytes: int, what: str, error=None) -> bytes:
    """The bytes of a regular file of at most ``limit_bytes``, or ``error`` (default
    :class:`ManifestError`) naming it: a FIFO, a device (``/dev/zero``) or a folder is
    refused before anything is read, and a file larger than the limit by its size (so an
    endless or huge file never reaches memory)."""
    import stat

    error = error or ManifestError
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise error(f"{path}: cannot read the {what}: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file; refusing to read it as the {what}")
        if info.st_size > limit_bytes:
            raise error(f"{path}: {info.st_size} bytes, too large for the {what} (at most {limit_bytes})")
        try:
            data = f.read(limit_bytes + 1)
        except OSError as err:
            raise error(f"{path}: cannot read the {what}: {err.strerror or err}") from None
    if len(data) > limit_bytes:  # grew since fstat
        raise error(f"{path}: more than {limit_bytes} bytes, too large for the {what}")
    return data


def parse_json(data: bytes | str, where: str, error=None):
    """JSON text -> Python objects, or ``error`` (default :class:`ManifestError`) in one
    line: besides bad syntax, valid JSON can still be beyond Python (nesting deeper than
    its recursion limit, integers longer than its digit limit)."""
    error = error or ManifestError
    try:
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise error(f"{where}: not valid JSON: {err}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply to be read") from None
    except (ValueError, UnicodeDecodeError) as err:  # e.g. an integer of 5000 digits
        raise error(f"{where}: cannot be read as JSON: {str(err).splitlines()[0][:200]}") from None


# --------------------------------------------------------------------------- checking


class _Check:
    """Read values from a dict, each checked, each failure naming its key path."""

    def __init__(self, data, path: str, where: str):
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: '{path}' must be an object, got {type(data).__name__}")
        self.data, self.path, self.where = data, path, where

    def fail(self, key: str, why: str) -> NoReturn:
        raise ManifestError(f"{self.where}: '{self._name(key)}' {why}")

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key: str, typ, optional: bool = False):
        if key not in self.data or (optional and self.data[key] is None):
            if optional:
                return None
            self.fail(key, "is missing")
        value = self.data[key]
        if typ is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        elif typ is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, typ)
        if not ok:
            self.fail(key, f"must be {getattr(typ, '__name__', typ)}, got {value!r:.60}")
        # The JSON's own number (an int stays an int): the typed manifest writes back the
        # bytes it read (``to_dict``), and an int is a float to every reader.
        return value

    # The readers' overloads tell the checker what ``optional`` means: a required value is
    # never None (a missing one raises), so a non-Optional field can take it.
    @overload
    def number(
        self,
        key: str,
        low: float | None = ...,
        high: float | None = ...,
        optional: Literal[False] = ...,
        strict_low: bool = ...,
    ) -> float: ...
    @overload
    def number(
        self, key: str, low: float | None = ..., high: float | None = ..., optional: bool = ..., strict_low: bool = ...
    ) -> float | None: ...
    def number(self, key: str, low=None, high=None, optional=False, strict_low=False) -> float | None:
        value = self.get(key, float, optional)
        if value is None:
            return None
        if low is not None and (value < low or (strict_low and value == low)):
            self.fail(key, f"must be {'>' if strict_low else '>='} {low}, got {value}")
        if high is not None and value > high:
            self.fail(key, f"must be <= {high}, got {value}")
        return value

    @overload
    def integer(self, key: str, low: int | None = ..., optional: Literal[False] = ...) -> int: ...
    @overload
    def integer(self, key: str, low: int | None = ..., optional: bool = ...) -> int | None: ...
    def integer(self, key: str, low=None, optional=False) -> int | None:
        value = self.get(key, int, optional)
        if value is not None and low is not None and value < low:
            self.fail(key, f"must be >= {low}, got {value}")
        return value

    @overload
    def strings(
        self, key: str, min_len: int = ..., unique: bool = ..., optional: Literal[False] = ...
    ) -> tuple[str, ...]: ...
    @overload
    def strings(
        self, key: str, min_len: int = ..., unique: bool = ..., optional: bool = ...
    ) -> tuple[str, ...] | None: ...
    def strings(self, key: str, min_len: int = 0, unique: bool = False, optional=False) -> tuple[str, ...] | None:
        value = self.get(key, list, optional)
        if value is None:
            return None
        if not all(isinstance(v, str) and v for v in value):
            self.fail(key, "must be a list of non-empty strings")
        if len(value) < min_len:
            self.fail(key, f"must hold at least {min_len} item(s), got {len(value)}")
        if unique and len(set(value)) != len(value):
            self.fail(key, f"holds a name twice: {value}")
        return tuple(value)

    def numbers(self, key: str, length: int | None = None) -> tuple[float, ...]:
        value = self.get(key, list)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            self.fail(key, "must be a list of finite numbers")
        if length is not None and len(value) != length:
            self.fail(key, f"must hold {length} numbers, got {len(value)}")
        return tuple(value)  # as read (see ``get``)

    @overload
    def sub(self, key: str, optional: Literal[False] = ...) -> "_Check": ...
    @overload
    def sub(self, key: str, optional: bool = ...) -> "_Check | None": ...
    def sub(self, key: str, optional: bool = False) -> "_Check | None":
        if optional and not self.has(key):
            return None
        return _Check(self.get(key, dict), self._name(key), self.where)


def _check_sos(c: _Check) -> tuple[tuple[float, ...], ...]:
    """Second-order sections, each finite and stable (both poles inside the unit circle):
    an unstable section would blow the stream up and report nothing."""
    rows = c.get("sos", list)
    out = []
    for i, row in enumerate(rows):
        if not (
            isinstance(row, list)
            and len(row) == 6
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row)
        ):
            c.fail("sos", f"row {i} must be 6 finite numbers [b0, b1, b2, a0, a1, a2]")
        b0, b1, b2, a0, a1, a2 = (float(v) for v in row)
        if a0 == 0:
            c.fail("sos", f"row {i}: a0 is 0")
        a1, a2 = a1 / a0, a2 / a0
        # Poles of z^2 + a1 z + a2 inside the unit circle (the stability triangle).
        if not (abs(a2) < 1 and abs(a1) < 1 + a2):
            c.fail("sos", f"row {i} is unstable (a1={a1:g}, a2={a2:g}): the filter would diverge")
        out.append((b0, b1, b2, a0, a1 * a0, a2 * a0))
    return tuple(out)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_rates(p: _Check, fs_in_hz: float, decimate: int) -> None:
    """What the device's preprocessing chain (``PreprocessSpec``) would refuse, refused
    here naming the key: decimation without a low-pass below the new Nyquist rate (it
    aliases), band-power bands outside (0, Nyquist) at the model's rate, and time
    constants that are not positive."""
    fs_out = fs_in_hz / decimate
    lowpass = p.data.get("lowpass_hz")
    if decimate > 1 and (lowpass is None or lowpass >= fs_out / 2):
        p.fail(
            "decimate",
            f"= {decimate} takes {fs_in_hz:g} Hz to {fs_out:g} Hz, which needs a low-pass below "
            f"{fs_out / 2:g} Hz (lowpass_hz is {lowpass}): it would alias",
        )
    p.number("running_norm_s", low=0, strict_low=True, optional=True)
    p.number("band_power_s", low=0, strict_low=True, optional=True)
    bands = p.get("bands_hz", list, optional=True)
    if bands is None:
        return
    if not bands:
        p.fail("bands_hz", "must hold at least one [low_hz, high_hz] band (or be null)")
    for k, band in enumerate(bands):
        if not (isinstance(band, list) and len(band) == 2 and all(_finite(v) for v in band)):
            p.fail("bands_hz", f"band {k} must be [low_hz, high_hz] (2 finite numbers), got {band!r:.60}")
        if not 0 < band[0] < band[1] < fs_out / 2:
            p.fail("bands_hz", f"band {k} {band} must lie in (0, {fs_out / 2:g}) Hz, low below high")


# --------------------------------------------------------------------------- the typed manifest
#
# Every section is a frozen dataclass; what the checker does not type (reports: a
# comparison's numbers, a tool's version) rides along in ``extra``, and ``keys`` keeps the
# order the keys were read in. ``to_dict`` writes a section back: reading a manifest and
# writing it gives the same JSON, byte for byte (so digests and signatures still hold).


def _plain(value):
    """A typed value as JSON: sections by their ``to_dict``, tuples as lists."""
    if isinstance(value, _Section):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class _Section:
    """``to_dict`` for a section dataclass: its fields (a None one only where it was read,
    or, in a section built rather than read, where ``_ALWAYS`` says export writes a null),
    then ``extra``, in ``keys`` order (the order read; built: the fields' order)."""

    _ALWAYS: tuple[str, ...] = ()
    _FIELDS: tuple[str, ...] = ()
    # Every section dataclass has these two fields (declared here for the checker).
    extra: dict
    keys: tuple[str, ...]

    @classmethod
    def of(cls, **values: Any) -> Self:
        """A section built from its JSON keys, in the order given: typed keys to fields (a
        list as a tuple), the rest to ``extra`` (how export writes a section whose report
        keys sit between its typed ones, e.g. ``streaming``)."""
        typed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in cls._FIELDS}
        make: Any = cls  # a dataclass: its fields are the keywords
        return make(**typed, extra={k: v for k, v in values.items() if k not in cls._FIELDS}, keys=tuple(values))

    def to_dict(self) -> dict:
        keys, extra = self.keys, self.extra
        values = {}
        for name in self._FIELDS:
            value = getattr(self, name)
            # A null is kept where it was read, or (built, not read) where export writes one.
            if value is not None or name in keys or (not keys and name in self._ALWAYS):
                values[name] = _plain(value)
        values.update(extra)
        out = {k: values[k] for k in keys if k in values}
        out.update((k, v) for k, v in values.items() if k not in out)
        return out


def _rest(data: dict, fields: tuple[str, ...]) -> dict:
    """The keys of ``data`` no field types, in their order."""
    return {k: v for k, v in data.items() if k not in fields}


@dataclass(frozen=True)
class InputSpec(_Section):
    """What the model takes in: units, channels (with the names accepted for each), the
    lowest sampling rate its band allows, and the plausible range of a sample."""

    units: str
    channels: tuple[str, ...]
    channel_aliases: dict[str, list[str]]
    min_fs_hz: float
    valid_range: tuple[float, float]
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("units", "channels", "channel_aliases", "min_fs_hz", "valid_range")


@dataclass(frozen=True)
class WindowSpec(_Section):
    """The model's window, in samples at the model rate (``fs_out_hz``).

    ECG beats: ``n_before_samples`` before the R peak and ``n_after_samples`` from it on
    (their sum is ``n_steps``). EEG: a window of ``n_steps`` every ``hop_samples``.
    ``n_channels`` is the model input's, which ``normalise="template"`` doubles.
    """

    n_steps: int
    n_channels: int
    normalise: str
    n_before_samples: int | None = None
    n_after_samples: int | None = None
    hop_samples: int | None = None
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("n_steps", "n_channels", "normalise", "n_before_samples", "n_after_samples", "hop_samples")


@dataclass(frozen=True)
class SideFeatures(_Section):
    """The side input: feature names, and the mean and std (one each per name) that
    standardise them, clipped to +-``clip`` (None: not clipped)."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip: float | None
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("names", "mean", "std", "clip")
    _ALWAYS = ("clip",)


@dataclass(frozen=True)
class RRSpec(_Section):
    """:class:`pipeline.window.rr.RRFeatures` settings."""

    local_beats: int
    average_s: float
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("local_beats", "average_s")


@dataclass(frozen=True)
class TemplateSpec(_Section):
    """:class:`pipeline.window.template.BeatTemplate` settings."""

    alpha: float
    min_scale: float
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("alpha", "min_scale")


@dataclass(frozen=True)
class StreamingSpec(_Section):
    """Chunk-plus-state graphs: ``chunk_len`` model-rate samples per step, LSTM state
    sizes. ``extra``: what export measured (calibration, evaluated windows, tensor names)."""

    chunk_len: int
    state_sizes: tuple[int, ...]
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("chunk_len", "state_sizes")


@dataclass(frozen=True)
class SplitSpec(_Section):
    """The recordings (or subjects, ``by``) training, validation and test used."""

    by: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("by", "train", "val", "test")


@dataclass(frozen=True)
class SourceRun(_Section):
    """The run folder the artifacts were exported from and its model's sha256 (validate
    reads the run's training metrics; a shipped folder names the run, not its path)."""

    folder: str
    model_sha256: str
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("folder", "model_sha256")


@dataclass(frozen=True)
class QualitySpec(_Section):
    """What the training windows looked like: ``amplitude_p999`` (model units), the
    99.9th percentile of |sample|, for the device's amplitude check."""

    amplitude_p999: float | None = None
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("amplitude_p999",)


def _typed_or_none(value, typ):
    return value if isinstance(value, typ) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ArtifactEntry(_Section):
    """One file of the folder. ``extra`` keeps every other key (comparisons, ops, ...);
    the properties below read the ones the loaders and reports use, typed."""

    name: str
    file: str
    format: str
    precision: str
    status: str
    graph: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    _FIELDS = ("name", "file", "format", "precision", "status", "graph", "sha256", "bytes")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def source(self) -> str | None:
        """The artifact a shared library was built from (``c_float32``)."""
        return _typed_or_none(self.extra.get("source"), str)

    @property
    def architecture(self) -> str | None:
        """A shared library's machine (``platform.machine()``'s name: x86_64, aarch64)."""
        return _typed_or_none(self.extra.get("architecture"), str)

    @property
    def target(self) -> str | None:
        """A shared library's CPU target (``x86_64-v3``)."""
        return _typed_or_none(self.extra.get("target"), str)

    @property
    def cpu_features(self) -> tuple[str, ...]:
        """The CPU features (Linux names) a shared library needs."""
        return tuple(self.extra.get("cpu_features") or ())

    @property
    def prefix(self) -> str | None:
        """The generated C's function prefix (``bse``)."""
        return _typed_or_none(self.extra.get("prefix"), str)

    @property
    def reason(self) -> str | None:
        """Why a failed artifact failed."""
        return _typed_or_none(self.extra.get("reason"), str)

    @property
    def vs_float(self) -> dict | None:
        """Export's comparison with the float reference (agreement, max_abs_diff, ...)."""
        return _typed_or_none(self.extra.get("vs_float"), dict)

    @property
    def meets_agreement_target(self) -> bool | None:
        value = self.extra.get("meets_agreement_target")
        return value if isinstance(value, bool) else None

    @property
    def inputs(self) -> list[dict]:
        """The tensors it takes (name, dtype, shape), as export listed them."""
        return list(self.extra.get("inputs") or [])

    @property
    def outputs(self) -> list[dict]:
        return list(self.extra.get("outputs") or [])

    @classmethod
    def from_dict(cls, data, where: str = "manifest.json", i: int = 0) -> "ArtifactEntry":
        """One checked entry (export's steps make theirs as dicts)."""
        return _artifact(data, i, where)


_ARTIFACT_KEYS = ArtifactEntry._FIELDS


def _artifact(data, i: int, where: str) -> ArtifactEntry:
    c = _Check(data, f"artifacts[{i}]", where)
    name = c.get("name", str)
    c.path = f"artifacts[{i}] ({name})"
    file = c.get("file", str)
    if "/" in file or "\\" in file or "\x00" in file or file.startswith(".") or not file:
        c.fail("file", f"'{file}' must be a plain file name")
    fmt = c.get("format", str)
    if fmt not in FORMATS:
        c.fail("format", f"must be one of {FORMATS}, got '{fmt}'")
    status = c.get("status", str)
    if status not in ("ok", "failed"):
        c.fail("status", f"must be 'ok' or 'failed', got '{status}'")
    sha, size = None, None
    # A failed entry's hash and size (export lists a C file that did not check) are kept
    # as written, unchecked: they describe no file the device loads.
    unchecked = {}
    if status != "ok":
        sha = data.get("sha256") if isinstance(data.get("sha256"), str) else None
        size = data.get("bytes") if type(data.get("bytes")) is int else None
        for key, typed in (("sha256", sha), ("bytes", size)):
            if typed is None and data.get(key) is not None:  # of another type: rides in extra
                unchecked[key] = data[key]
    if status == "ok":
        sha = c.get("sha256", str)
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            c.fail("sha256", "must be 64 lower-case hex digits")
        size = c.integer("bytes", low=1)
        c.get("inputs", list)
        c.get("outputs", list)
    return ArtifactEntry(
        name=name,
        file=file,
        format=fmt,
        precision=c.get("precision", str),
        status=status,
        graph=c.get("graph", str, optional=True),
        sha256=sha,
        bytes=size,
        extra={**_rest(data, _ARTIFACT_KEYS), **unchecked},
        keys=tuple(data),
    )


@dataclass(frozen=True)
class Manifest(_Section):
    """A checked manifest, every key the device, export, validate and the tools use as a
    typed attribute; the report sections (``evaluation``, ``firmware``, ``targets``,
    ``tools``, ``representative``, ``shipped``) are the JSON objects export wrote.
    ``to_dict`` gives the JSON back (:func:`write_manifest` seals and writes it)."""

    task: str
    kind: str
    classes: tuple[str, ...]
    preprocess: dict
    input: InputSpec
    window: WindowSpec
    side_features: SideFeatures
    rr: RRSpec | None
    template: TemplateSpec | None
    streaming: StreamingSpec | None
    split: SplitSpec
    artifacts: tuple[ArtifactEntry, ...]
    tools: dict
    created_utc: str
    digest: str = ""
    schema: str = SCHEMA
    dataset: str | None = None
    positive_class: str | None = None
    evaluation: dict | None = None
    quality: QualitySpec | None = None
    representative: dict | None = None
    firmware: dict | None = None
    targets: dict | None = None
    source_run: SourceRun | None = None
    shipped: dict | None = None
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    # Export's order of the keys (``to_dict`` of a manifest built, not read).
    _FIELDS = (
        "schema",
        "task",
        "dataset",
        "kind",
        "classes",
        "positive_class",
        "input",
        "preprocess",
        "window",
        "side_features",
        "rr",
        "template",
        "split",
        "evaluation",
        "quality",
        "representative",
        "streaming",
        "artifacts",
        "firmware",
        "targets",
        "source_run",
        "tools",
        "created_utc",
        "shipped",
        "digest",
    )
    _ALWAYS = ("positive_class",)

    def to_dict(self) -> dict:
        """The manifest as JSON objects (``digest`` left out while it is empty: unsealed)."""
        out = super().to_dict()
        if not self.digest:
            out.pop("digest", None)
        return out

    @property
    def fs_in_hz(self) -> float:
        """The rate the model's input is sampled at (stored once, in ``preprocess``)."""
        return float(self.preprocess["fs_in_hz"])

    @property
    def fs_out_hz(self) -> float:
        """The model's own rate, after decimation."""
        return self.fs_in_hz / self.preprocess["decimate"]

    @property
    def decimate(self) -> int:
        return int(self.preprocess["decimate"])

    @property
    def channels(self) -> tuple[str, ...]:
        return self.input.channels

    @property
    def amplitude_p999(self) -> float | None:
        """The training windows' 99.9th percentile of |sample| (None: not recorded)."""
        return None if self.quality is None else self.quality.amplitude_p999

    @property
    def arena_bytes(self) -> int | None:
        """TFLite Micro's arena for the full-int8 model (None: no such model)."""
        value = (self.firmware or {}).get("arena_bytes")
        return value if isinstance(value, int) else None

    def artifact(self, name: str) -> ArtifactEntry | None:
        return next((a for a in self.artifacts if a.name == name), None)

    @classmethod
    def from_dict(cls, data, where: str = "manifest.json") -> "Manifest":
        """Check every key the device relies on; raise :class:`ManifestError` naming it."""
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: not a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            old = isinstance(schema, str) and schema.startswith("biosig-edge-manifest/")
            raise ManifestError(
                f"{where}: schema is {schema!r}, this runtime reads {SCHEMA!r}"
                + (
                    "; the folder was made by another biosig-edge version: export the run "
                    "again ('biosig-edge export RUN_DIR')"
                    if old
                    else ""
                )
            )
        c = _Check(data, "", where)
        # Integrity first: an edited manifest is refused as altered, whatever it now says.
        digest = c.get("digest", str)
        try:
            actual = manifest_digest(data)
        except ValueError:  # NaN or infinity in the JSON
            raise ManifestError(f"{where}: holds NaN or infinite numbers") from None
        except RecursionError:
            raise ManifestError(f"{where}: nested too deeply to be a manifest") from None
        if digest != actual:
            raise ManifestError(
                f"{where}: content does not match its digest (sha256 {actual[:16]}..., "
                f"recorded {digest[:16]}...): the manifest was altered; refusing it"
            )
        task = c.get("task", str)
        kind = c.get("kind", str)
        if kind not in KINDS:
            c.fail("kind", f"must be one of {KINDS}, got '{kind}'")
        classes = c.strings("classes", min_len=2, unique=True)

        p = c.sub("preprocess")
        fs_in = p.number("fs_in_hz", low=0, strict_low=True)
        decimate = p.integer("decimate", low=1)
        p.integer("order", low=1)
        for key in ("highpass_hz", "lowpass_hz", "notch_hz"):
            if key not in p.data:
                p.fail(key, "is missing (null when there is no such filter)")
            p.number(key, low=0, strict_low=True, optional=True)
        gain = p.number("gain")
        if gain == 0:
            p.fail("gain", "must not be 0")
        _check_sos(p)
        _check_rates(p, fs_in, decimate)

        i = c.sub("input")
        units = i.get("units", str)
        from pipeline.read.units import UnitError, canonical_unit

        try:
            canonical_unit(units, where)
        except UnitError as err:
            i.fail("units", f"is not a voltage unit ({err})")
        channels = i.strings("channels", min_len=1, unique=True)
        aliases = i.get("channel_aliases", dict)
        for key, names in aliases.items():
            if not (isinstance(names, list) and all(isinstance(n, str) and n for n in names)):
                i.fail("channel_aliases", f"'{key}' must map to a list of names")
        min_fs = i.number("min_fs_hz", low=0, strict_low=True)
        valid = i.numbers("valid_range", length=2)
        if not valid[0] < valid[1]:
            i.fail("valid_range", f"must be [low, high] with low < high, got {list(valid)}")

        w = c.sub("window")
        normalise = w.get("normalise", str)
        if normalise not in NORMALISATIONS:
            w.fail("normalise", f"must be one of {NORMALISATIONS}, got '{normalise}'")
        window = WindowSpec(
            n_steps=w.integer("n_steps", low=1),
            n_channels=w.integer("n_channels", low=1),
            normalise=normalise,
            n_before_samples=w.integer("n_before_samples", low=0, optional=kind != "ecg-beats"),
            n_after_samples=w.integer("n_after_samples", low=1, optional=kind != "ecg-beats"),
            hop_samples=w.integer("hop_samples", low=1, optional=kind != "eeg-windows"),
            extra=_rest(w.data, WindowSpec._FIELDS),
            keys=tuple(w.data),
        )
        n_before, n_after = window.n_before_samples, window.n_after_samples  # required for beats, read above
        if (
            kind == "ecg-beats"
            and n_before is not None
            and n_after is not None
            and n_before + n_after != window.n_steps
        ):
            w.fail(
                "n_steps",
                f"must equal n_before_samples + n_after_samples "
                f"({window.n_before_samples} + {window.n_after_samples}), got {window.n_steps}",
            )
        # What preprocessing makes of the input channels (a band-power front end: one
        # channel per band and input channel, plus the normalised signal), then the
        # template's doubling.
        bands = p.data.get("bands_hz")
        per_input = (len(bands) + (1 if data["preprocess"].get("running_norm_s") else 0)) if bands else 1
        expected_channels = len(channels) * per_input * (2 if normalise == "template" else 1)
        if window.n_channels != expected_channels:
            w.fail(
                "n_channels",
                f"must be {expected_channels} for {len(channels)} input channel(s) with "
                f"{f'{len(bands)} bands and ' if bands else ''}normalise '{normalise}', "
                f"got {window.n_channels}",
            )

        s = c.sub("side_features")
        names = s.strings("names", unique=True)
        # The device computes these itself (RR intervals of the beats it detects); an EEG
        # session feeds its model no side input at all.
        from pipeline.window.rr import RR_FEATURE_NAMES

        known = RR_FEATURE_NAMES if kind == "ecg-beats" else ()
        unknown = [n for n in names if n not in known]
        if unknown:
            s.fail("names", f"names {unknown}, which an {kind} session does not compute (it knows {list(known)})")
        side = SideFeatures(
            names=names,
            mean=s.numbers("mean", len(names)),
            std=s.numbers("std", len(names)),
            clip=s.number("clip", low=0, strict_low=True, optional=True),
            extra=_rest(s.data, SideFeatures._FIELDS),
            keys=tuple(s.data),
        )
        if any(v <= 0 for v in side.std):
            s.fail("std", "must be positive")

        rr = template = None
        if kind == "ecg-beats":
            r = c.sub("rr")
            rr = RRSpec(
                local_beats=r.integer("local_beats", low=1),
                average_s=r.number("average_s", low=0, strict_low=True),
                extra=_rest(r.data, RRSpec._FIELDS),
                keys=tuple(r.data),
            )
            t = c.sub("template")
            template = TemplateSpec(
                alpha=t.number("alpha", low=0, high=1, strict_low=True),
                min_scale=t.number("min_scale", low=0, strict_low=True),
                extra=_rest(t.data, TemplateSpec._FIELDS),
                keys=tuple(t.data),
            )
        streaming = None
        st = c.sub("streaming", optional=True)
        if st is not None:
            chunk = st.integer("chunk_len", low=1)
            sizes = st.get("state_sizes", list)
            if not sizes or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in sizes):
                st.fail("state_sizes", "must be a list of positive integers")
            if window.n_steps % chunk:
                st.fail("chunk_len", f"must divide the window's {window.n_steps} steps, got {chunk}")
            if kind == "eeg-windows" and window.hop_samples is not None and window.hop_samples % chunk:
                st.fail("chunk_len", f"must divide the hop's {window.hop_samples} samples, got {chunk}")
            streaming = StreamingSpec(
                chunk_len=chunk,
                state_sizes=tuple(sizes),
                extra=_rest(st.data, StreamingSpec._FIELDS),
                keys=tuple(st.data),
            )

        sp = c.sub("split")
        split = SplitSpec(
            by=sp.get("by", str),
            train=sp.strings("train"),
            val=sp.strings("val"),
            test=sp.strings("test"),
            extra=_rest(sp.data, SplitSpec._FIELDS),
            keys=tuple(sp.data),
        )
        artifacts = tuple(_artifact(a, k, where) for k, a in enumerate(c.get("artifacts", list)))
        names_seen = [a.name for a in artifacts]
        files_seen = [a.file for a in artifacts if a.ok]
        for listed in (names_seen, files_seen):
            twice = sorted({n for n in listed if listed.count(n) > 1})
            if twice:
                c.fail("artifacts", f"list {twice} twice")
        # The run the folder was exported from (validate reads its training metrics).
        run = c.sub("source_run", optional=True)
        source_run = None
        if run is not None:
            source_run = SourceRun(
                folder=run.get("folder", str),
                model_sha256=run.get("model_sha256", str),
                extra=_rest(run.data, SourceRun._FIELDS),
                keys=tuple(run.data),
            )
            if not re.fullmatch(r"[0-9a-f]{64}", source_run.model_sha256):
                run.fail("model_sha256", "must be 64 lower-case hex digits")
        q = c.sub("quality", optional=True)
        quality = None
        if q is not None:
            quality = QualitySpec(
                amplitude_p999=q.number("amplitude_p999", low=0, optional=True),
                extra=_rest(q.data, QualitySpec._FIELDS),
                keys=tuple(q.data),
            )
        return cls(
            task=task,
            kind=kind,
            classes=classes,
            preprocess=dict(data["preprocess"]),
            input=InputSpec(
                units=units,
                channels=channels,
                channel_aliases=dict(aliases),
                min_fs_hz=min_fs,
                valid_range=(valid[0], valid[1]),
                extra=_rest(i.data, InputSpec._FIELDS),
                keys=tuple(i.data),
            ),
            window=window,
            side_features=side,
            rr=rr,
            template=template,
            streaming=streaming,
            split=split,
            artifacts=artifacts,
            tools=c.get("tools", dict),
            created_utc=c.get("created_utc", str),
            digest=digest,
            schema=schema,
            dataset=c.get("dataset", str, optional=True),
            positive_class=c.get("positive_class", str, optional=True),
            evaluation=c.get("evaluation", dict, optional=True),
            quality=quality,
            representative=c.get("representative", dict, optional=True),
            firmware=c.get("firmware", dict, optional=True),
            targets=c.get("targets", dict, optional=True),
            source_run=source_run,
            shipped=c.get("shipped", dict, optional=True),
            extra=_rest(data, Manifest._FIELDS),
            keys=tuple(data),
        )


def check_manifest(manifest: dict, where: str = "manifest.json") -> Manifest:
    """Raise :class:`ManifestError` naming the first key that breaks the contract."""
    return Manifest.from_dict(manifest, where)


def manifest_json(manifest: Manifest, indent: int = 2) -> str:
    """The one writer of ``manifest.json``: the manifest sealed (its ``digest`` set over
    ``to_dict``), checked as a device would read it, as JSON text (``json.dumps``,
    ``indent`` spaces; no trailing newline, as export has always written it)."""
    sealed = seal(manifest.to_dict())
    check_manifest(sealed)
    return json.dumps(sealed, indent=indent)


def write_manifest(folder: str | Path, manifest: Manifest, indent: int = 2, newline: bool = False) -> Path:
    """Write ``folder/manifest.json`` (:func:`manifest_json`; ``newline``: end the file
    with one, as shipped folders do). Returns the path."""
    path = Path(folder) / "manifest.json"
    path.write_text(manifest_json(manifest, indent) + ("\n" if newline else ""))
    return path


# --------------------------------------------------------------------------- loading


def read_manifest(
    folder: str | Path,
    verify_files: bool = True,
    trusted_key: str | Path | None = None,
    check_signature: bool = True,
) -> Manifest:
    """Read, check and (with a trusted key) authenticate ``folder/manifest.json``; verify
    every artifact's size and sha256 (the one reader: export, validate, the tools and the
    C loader all take the :class:`Manifest` it returns).

    ``trusted_key``: an Ed25519 public key (PEM) the folder must be signed with; default
    ``$BIOSIG_EDGE_TRUSTED_KEY`` if set, else no signature is required.
    ``check_signature=False``: no signature is asked for, whatever the environment says
    (``sign`` checks a folder before it has one).
    """
    folder = Path(folder)
    path = folder / "manifest.json"
    try:
        missing = not path.is_file()
    except OSError as err:  # a folder on the way that cannot be searched
        raise ManifestError(f"{path}: cannot be read: {err.strerror or err}") from None
    if missing:
        raise ManifestError(f"{path}: missing (is {folder} an artifact folder from 'biosig-edge export'?)")
    data = parse_json(read_bounded(path, MAX_MANIFEST_BYTES, "manifest"), str(path))
    manifest = Manifest.from_dict(data, str(path))
    key = (trusted_key or os.environ.get(TRUSTED_KEY_ENV) or None) if check_signature else None
    if key:
        verify_signature(folder, data, key)
    if verify_files:
        for art in manifest.artifacts:
            if art.ok:
                verify_artifact(folder, art)
    return manifest


def load_manifest(folder: str | Path, verify_files: bool = True, trusted_key: str | Path | None = None) -> Manifest:
    """:func:`read_manifest` (the name older callers use)."""
    return read_manifest(folder, verify_files, trusted_key)


def verify_artifact(folder: Path, art: ArtifactEntry) -> bytes:
    """Return the file's bytes after checking its size (before reading) and sha256."""
    path = Path(folder) / art.file
    try:
        if not path.is_file():
            raise ManifestError(f"{path}: missing or not a regular file (listed in manifest.json)")
        size = path.stat().st_size
        if size != art.bytes:
            raise ManifestError(f"{path}: {size} bytes, manifest.json says {art.bytes}")
        if size > MAX_ARTIFACT_BYTES:
            raise ManifestError(f"{path}: {size} bytes, larger than any artifact ({MAX_ARTIFACT_BYTES})")
        data = path.read_bytes()
    except OSError as err:
        raise ManifestError(f"{path}: cannot be read: {err.strerror or err}") from None
    digest = sha256_bytes(data)
    if digest != art.sha256 or len(data) != art.bytes:
        raise ManifestError(
            f"{path}: sha256 {digest[:16]}... does not match manifest.json "
            f"({str(art.sha256)[:16]}...): the file was altered; refusing to load it"
        )
    return data


# --------------------------------------------------------------------------- signatures


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ManifestError("signatures need the 'cryptography' package: pip install 'biosig-edge[sign]'") from None
    return serialization, ed25519, InvalidSignature


def _read_key(path: str | Path, private: bool):
    serialization, ed25519, _ = _crypto()
    path = Path(path)
    data = read_bounded(path, MAX_KEY_BYTES, "key")
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as err:  # TypeError: a key that wants a password
        raise ManifestError(f"{path}: not a PEM {'private' if private else 'public'} key: {err}") from None
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise ManifestError(f"{path}: not an Ed25519 {'private' if private else 'public'} key")
    return key


def new_keypair(folder: str | Path, name: str = "biosig-edge") -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.pub`` (public) PEM files."""
    serialization, ed25519, _ = _crypto()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # FileExistsError: FOLDER is a file
        raise ManifestError(f"{folder}: cannot be the key folder: {err.strerror or err}") from None
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    for p in (private, public):
        if p.exists() or p.is_symlink():
            raise ManifestError(f"{p}: exists; refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    except OSError as err:
        raise ManifestError(f"{folder}: cannot write the keys: {err.strerror or err}") from None
    return private, public


def sign_folder(folder: str | Path, private_key: str | Path) -> Path:
    """Sign ``folder/manifest.json`` (its canonical JSON) into ``folder/manifest.sig``.

    The manifest is checked first, files included: a folder is signed only as it is."""
    import base64

    folder = Path(folder)
    # Not signed yet: a trusted key in the environment must not ask for a signature here.
    manifest = read_manifest(folder, check_signature=False)
    key = _read_key(private_key, private=True)
    sig = folder / SIGNATURE_FILE
    try:
        sig.write_text(base64.b64encode(key.sign(canonical_json(manifest.to_dict()))).decode() + "\n")
    except OSError as err:
        raise ManifestError(f"{sig}: cannot be written: {err.strerror or err}") from None
    return sig


def verify_signature(folder: str | Path, manifest: dict, trusted_key: str | Path) -> None:
    """Refuse unless ``folder/manifest.sig`` is a valid signature of ``manifest`` by the
    trusted key."""
    import base64
    import binascii

    _, _, invalid = _crypto()
    key = _read_key(trusted_key, private=False)
    sig_path = Path(folder) / SIGNATURE_FILE
    if not sig_path.is_file():
        raise ManifestError(
            f"{sig_path}: missing: a trusted key is configured ({trusted_key}), so the "
            f"folder must be signed ('biosig-edge sign FOLDER --key KEY')"
        )
    text = read_bounded(sig_path, MAX_SIGNATURE_BYTES, "signature")
    try:
        signature = base64.b64decode(text.strip(), validate=True)
        key.verify(signature, canonical_json(manifest))
    except (invalid, binascii.Error, ValueError):
        raise ManifestError(
            f"{sig_path}: not a valid signature of this manifest by {trusted_key}: "
            f"the folder was altered or signed by another key; refusing it"
        ) from None


# --------------------------------------------------------------------------- helpers


def shipping_artifacts(manifest: Manifest) -> list[str]:
    """The float32 and int8 model of each interpreter (LiteRT, ONNX Runtime) that the
    task's streaming session runs, those that exported: what one would put on a device.

    ECG sessions classify whole beat windows; EEG sessions carry windows chunk by chunk
    through the ``stream_*`` graphs.
    """
    prefix = "" if manifest.kind == "ecg-beats" else "stream_"
    ok = {a.name for a in manifest.artifacts if a.ok}
    names = [f"{prefix}{n}" for n in ("tflite_float32", "tflite_int8", "onnx_float32", "onnx_dynamic_int8")]
    return [n for n in names if n in ok]
