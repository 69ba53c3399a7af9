"""Any recording on disk, one reader: WFDB (any database), EDF/BDF, CSV, NPY, MATLAB.

Every file comes back as a :class:`~pipeline.read.record.Record` that knows its rate,
channel labels and physical units, or the read is refused:

- WFDB and EDF/BDF carry them in their headers (WFDB: physical units from each signal's
  gain; a gain of 0 means "uncalibrated", and the WFDB spec's default of 200 ADC units per
  physical unit is assumed and reported, as WFDB's own tools do). Their converters' range
  becomes ``full_scale``, so clipped samples can be told.
- CSV, NPY and ``.mat`` files carry bare numbers: the rate and units must be given
  (``fs_hz``, ``units``; command line ``--fs``, ``--units``), the channel labels come
  from a CSV header row, ``channels`` or default to ``ch1``, ``ch2``, ...; ``gain`` divides
  raw converter counts into ``units``.
- MATLAB v7.3 files are HDF5, which ``scipy.io`` does not read: they are refused with the
  way out (save with ``-v7``, or as ``.npy``/CSV).

Reading a file never checks it against a dataset card it is not part of: no checksums,
no expected rates (that is for the datasets' own readers).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.errors import RecordError, SamplingRateError
from pipeline.read.record import Record, checked
from pipeline.read.units import UnitError, canonical_unit

WFDB_EXTENSIONS = {".hea", ".dat", ".atr"}
EDF_EXTENSIONS = {".edf", ".bdf"}
TEXT_EXTENSIONS = {".csv", ".txt", ".tsv"}
#: The WFDB default gain (DEFGAIN in wfdb.h) for a signal whose header gives 0 or none.
WFDB_DEFAULT_GAIN = 200.0


#: Warnings a library gives programmers about its own API: never about the user's file.
LIBRARY_NOTICES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


@contextlib.contextmanager
def input_notes() -> Iterator[list[str]]:
    """Collect, as notes for the user, the warnings raised while an input is read: those
    about the file (a gain of 0, flat or NaN stretches, a library's complaint about the
    data), never a library's notices about its own API (``LIBRARY_NOTICES``: pandas'
    "The inplace keyword ... is deprecated" under wfdb, on every WFDB read), which say
    nothing about the input and would bury what does.

    ``with input_notes() as notes: ...``: ``notes`` (a list of messages) is filled when the
    block ends.
    """
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category in LIBRARY_NOTICES:
            warnings.simplefilter("ignore", category)
        yield notes
    notes.extend(str(w.message) for w in caught)


@contextlib.contextmanager
def c_stdout_to_stderr(library: str = "pyedflib") -> Iterator[None]:
    """While the block runs, what C code writes to file descriptor 1 is caught and then
    given on stderr as one note line: pyedflib prints ``filesize ... != ...`` (without a
    newline) for a damaged EDF, and stdout carries the events as JSON lines."""
    import tempfile

    if sys.stdout is not None:
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (stdout closed): nothing to protect
        yield
        return
    with tempfile.TemporaryFile() as caught:
        try:
            os.dup2(caught.fileno(), 1)
            yield
        finally:
            try:
                import ctypes

                ctypes.CDLL(None).fflush(None)  # C's stdout buffer, before fd 1 is given back
            except (OSError, AttributeError):  # no C library to flush (not on this platform)
                pass
            os.dup2(saved, 1)
            os.close(saved)
            caught.seek(0)
            said = " ".join(caught.read(2000).decode("utf-8", errors="replace").split())
            if said:
                print(f"biosig-edge: note: {library} said: {said}", file=sys.stderr)


def is_recording_path(arg: str) -> Path | None:
    """The path ``arg`` names on disk (a file, or a WFDB record ``dir/rec`` with its
    ``.hea``), or None."""
    p = Path(arg)
    if p.is_file():
        return p
    if Path(str(p) + ".hea").is_file():
        return Path(str(p) + ".hea")
    return None


def read_recording(
    path: str | Path,
    *,
    fs_hz: float | None = None,
    units: str | None = None,
    channels: list[str] | None = None,
    gain: float | None = None,
    mat_var: str | None = None,
    annotator: str | None = "auto",
) -> Record:
    """Read one recording of any supported format.

    Parameters
    ----------
    path : a file; for WFDB the ``.hea`` (or the record name without extension)
    fs_hz, units, channels, gain : what bare-number formats (CSV, NPY, MAT) need;
        refused for formats whose header says it (a header is never overridden)
    mat_var : the variable of a ``.mat`` file holding the signal, when it has several
    annotator : WFDB annotation extension; ``"auto"`` reads ``.atr`` when it exists

    Returns
    -------
    Record with ``signal`` of shape (n_samples, n_channels), float32, in ``units``.
    """
    given = Path(path)
    found = is_recording_path(str(given))
    if found is None:
        raise RecordError(f"{given}: no such file (nor {given}.hea)")
    suffix = found.suffix.lower()
    try:
        if suffix in WFDB_EXTENSIONS or (suffix == ".mat" and found.with_suffix(".hea").is_file()):
            _no_options(found, "its WFDB header", fs_hz=fs_hz, units=units, gain=gain)
            return read_wfdb_any(found.with_suffix(""), channels, annotator)
        if suffix in EDF_EXTENSIONS:
            _no_options(found, "its EDF header", fs_hz=fs_hz, units=units, gain=gain)
            return read_edf_any(found, channels)
        if suffix in TEXT_EXTENSIONS:
            signal, names = _read_text(found)
        elif suffix == ".npy":
            signal, names = _read_npy(found), None
        elif suffix == ".mat":
            signal, names = _read_mat(found, mat_var), None
        else:
            raise RecordError(f"{found}: unknown format '{suffix}' (WFDB .hea/.dat, EDF/BDF, CSV/TXT, NPY, MAT)")
    except PermissionError as err:
        raise RecordError(f"{found}: cannot be read: {err.strerror}") from None
    return _bare(found, signal, names, fs_hz, units, channels, gain)


def _no_options(path: Path, source: str, **options) -> None:
    given = [k for k, v in options.items() if v is not None]
    if given:
        raise RecordError(
            f"{path}: {', '.join('--' + k.replace('_hz', '') for k in given)} given, but "
            f"{source} states them; leave them out"
        )


def _bare(path: Path, signal: np.ndarray, names, fs_hz, units, channels, gain) -> Record:
    """A Record from bare numbers and the options that explain them."""
    if fs_hz is None:
        raise SamplingRateError(f"{path}: a {path.suffix} file does not say its sampling rate: give --fs HZ")
    if units is None:
        raise UnitError(
            f"{path}: a {path.suffix} file does not say its units: give --units (mV, uV, ...; "
            f"with --gain for converter counts)"
        )
    n_channels = signal.shape[1]
    if channels is not None:
        if len(channels) != n_channels:
            raise RecordError(f"{path}: {len(channels)} channel names given for {n_channels} columns")
        names = list(channels)
    names = list(names) if names else [f"ch{i + 1}" for i in range(n_channels)]
    canonical_unit(units, str(path))
    if gain is not None:
        if not gain or not np.isfinite(gain):
            raise RecordError(f"{path}: --gain must be a finite, non-zero number of counts per {units}")
        signal = signal / gain
    record = Record(
        record_id=path.stem,
        subject_id=path.stem,
        signal=np.ascontiguousarray(signal, np.float32),
        fs_hz=float(fs_hz),
        channel_names=tuple(names),
        units=(units,) * n_channels,
        source=path,
    )
    return checked(record)


def _read_text(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Numbers separated by commas, tabs, semicolons or blanks; an optional header row of
    channel names. A line that is not numbers is refused, naming it."""
    # utf-8-sig: a spreadsheet's export begins with a byte-order mark, which would cling to
    # the first column's name; its names may be quoted ("MLII","V5").
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    rows: list[list[float]] = []
    names: list[str] | None = None
    width: int | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = [t.strip("\"'") for t in re.split(r"[,;\t ]+", line.strip()) if t.strip("\"'")]
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            if not rows and names is None:
                names = tokens  # a header row
                continue
            raise RecordError(f"{path}: line {number} is not numbers: {line[:60]!r}") from None
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise RecordError(f"{path}: line {number} has {len(values)} values, the lines before it {width}")
        rows.append(values)
    if not rows:
        raise RecordError(f"{path}: no samples")
    if names is not None and len(names) != width:
        raise RecordError(f"{path}: header names {len(names)} channels, the rows hold {width} values")
    return np.asarray(rows, dtype=np.float64), names


def _as_samples(path: Path, array, what: str) -> np.ndarray:
    a = np.asarray(array)
    if a.dtype.kind not in "fiu" or a.size < 2:
        raise RecordError(f"{path}: {what} is not a numeric signal (dtype {a.dtype}, shape {a.shape})")
    a = np.squeeze(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise RecordError(f"{path}: {what} has shape {np.shape(array)}; expected (n_samples, n_channels)")
    if a.shape[0] < a.shape[1]:
        raise RecordError(
            f"{path}: {what} has shape {a.shape}: more channels than samples; store it as (n_samples, n_channels)"
        )
    return a.astype(np.float64)


def _read_npy(path: Path) -> np.ndarray:
    import math

    # The header's shape is held against the file's size before numpy allocates it: a
    # header may claim (10**12, 2) over a 160-byte body.
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(f)
            body = path.stat().st_size - f.tell()
    except ValueError as err:
        raise RecordError(f"{path}: not a plain numeric .npy array ({err})") from None
    if not dtype.hasobject:
        declared = math.prod(shape) * dtype.itemsize
        if declared > body:
            raise RecordError(
                f"{path}: its header declares an array of shape {tuple(shape)} ({dtype}, {declared} bytes), "
                f"but the file holds {body} bytes of data: truncated or damaged"
            )
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise RecordError(f"{path}: not a plain numeric .npy array ({err})") from None
    return _as_samples(path, array, "the array")


def _read_mat(path: Path, mat_var: str | None) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(128)
    if b"MATLAB 7.3" in head or head.startswith(b"\x89HDF"):
        raise RecordError(
            f"{path}: a MATLAB v7.3 (HDF5) file, which scipy.io cannot read: save it with "
            f"save(..., '-v7') or export the signal as .npy or CSV"
        )
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except Exception as err:  # scipy raises several types for damaged files
        raise RecordError(f"{path}: not a readable MATLAB file: {err}") from None
    arrays = {
        k: v
        for k, v in data.items()
        if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "fiu" and v.size > 1
    }
    if mat_var is not None:
        if mat_var not in data:
            raise RecordError(
                f"{path}: no variable '{mat_var}' (variables: {sorted(k for k in data if not k.startswith('__'))})"
            )
        return _as_samples(path, data[mat_var], f"variable '{mat_var}'")
    if not arrays:
        raise RecordError(
            f"{path}: no numeric array in the file (variables: {sorted(k for k in data if not k.startswith('__'))})"
        )
    if len(arrays) > 1:
        raise RecordError(f"{path}: several numeric arrays {sorted(arrays)}: name the signal with --mat-var")
    name, array = next(iter(arrays.items()))
    return _as_samples(path, array, f"variable '{name}'")


# --------------------------------------------------------------------------- WFDB, EDF


def _uncalibrated(hea: Path) -> list[int]:
    """Indices of signals whose header gain is 0 or missing (the WFDB "uncalibrated")."""
    out, k = [], 0
    lines = [ln for ln in hea.read_text(errors="replace").splitlines() if ln.strip() and not ln.startswith("#")]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 2:
            continue
        gain = fields[2].split("(")[0].split("/")[0] if len(fields) > 2 else ""
        try:
            if float(gain or 0) == 0:
                out.append(k)
        except ValueError:
            pass
        k += 1
    return out


def read_wfdb_any(record_path: Path, channels: list[str] | None = None, annotator: str | None = "auto") -> Record:
    """A WFDB record of any database: physical units, converter range, annotations if any."""
    from dataclasses import replace

    import wfdb

    from pipeline.read.mitdb import read_wfdb

    ann = annotator
    if annotator == "auto":
        ann = "atr" if record_path.with_suffix(".atr").is_file() else None
    record = read_wfdb(record_path, channels=None, annotator=ann)
    hea = record_path.with_suffix(".hea")
    header = wfdb.rdheader(str(record_path))
    full_scale: list[tuple[float, float]] = []
    for res, zero, base, gain in zip(header.adc_res, header.adc_zero, header.baseline, header.adc_gain):
        bits = res or 12
        lo, hi = zero - 2 ** (bits - 1), zero + 2 ** (bits - 1) - 1
        full_scale.append(((lo - base) / gain, (hi - base) / gain))
    units = list(record.units)
    for k in _uncalibrated(hea):
        warnings.warn(
            f"{hea}: signal {record.channel_names[k]} has gain 0 (uncalibrated); "
            f"assumed {WFDB_DEFAULT_GAIN:g} ADC units per {units[k] or 'mV'}, as the WFDB spec says",
            stacklevel=2,
        )
        units[k] = units[k] or "mV"
    record = replace(record, units=tuple(u or "mV" for u in units), full_scale=tuple(full_scale))
    if channels is not None:
        idx = [record.channel_index(c) for c in channels]
        record = replace(
            record,
            signal=np.ascontiguousarray(record.signal[:, idx]),
            channel_names=tuple(record.channel_names[i] for i in idx),
            units=tuple(record.units[i] for i in idx),
            full_scale=tuple(full_scale[i] for i in idx),
        )
    return record


def read_edf_any(path: Path, channels: list[str] | None = None) -> Record:
    """Every channel of an EDF/BDF file (or ``channels``, by label), with its physical
    units and range. Channels at different rates cannot stream together: the chosen
    channels must share one rate (or the file is refused, naming the rates)."""
    from pipeline.read.eegmat import read_edf

    with c_stdout_to_stderr():
        return read_edf(path, channels=channels, full_labels=True)


def recording_channels(path: str | Path) -> list[str]:
    """The channel labels of an EDF/BDF recording, from its header (the samples are not
    read: its channels may run at several rates). Any other file is refused, naming it:
    bare-number files name their columns only once read (:func:`read_recording`)."""
    found = is_recording_path(str(path))
    if found is None:
        raise RecordError(f"{path}: no such file")
    if found.suffix.lower() not in EDF_EXTENSIONS:
        raise RecordError(f"{found}: channel labels are read from an EDF/BDF header, not a {found.suffix} file")
    import pyedflib

    try:
        with c_stdout_to_stderr(), pyedflib.EdfReader(str(found)) as reader:
            return [label.strip() for label in reader.getSignalLabels()]
    except OSError as err:
        raise RecordError(f"{found}: not a readable EDF file: {err}") from None
