"""INPUT resolution for ``stream`` and ``replay`` (and ``validate --records``' channels):
a file, a dataset record, stdin or a live source, with its rate, units and channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.errors import BiosigError
from pipeline.read.cards import DATASETS

if TYPE_CHECKING:
    from pipeline.manifest import Manifest
    from pipeline.runtime.sources import Source


def channels_option(text: str | None) -> tuple[list[str] | None, dict[str, str]]:
    """``--channels``: input labels (``ECG1,ECG2``) or a mapping (``MLII=ECG1,V1=ECG2``),
    whose values, in order, also label a bare input's columns."""
    from pipeline.errors import ChannelError
    from pipeline.read.channels import parse_mapping

    if not text:
        return None, {}
    items = [t.strip() for t in text.split(",") if t.strip()]
    with_eq = [t for t in items if "=" in t]
    if with_eq and len(with_eq) != len(items):
        raise ChannelError(f"--channels '{text}': either labels (ECG1,ECG2) or a mapping (MLII=ECG1,V1=ECG2), not both")
    if with_eq:
        mapping = parse_mapping(text)
        return list(mapping.values()), mapping
    return items, {}


def open_input(args, manifest: Manifest) -> "Source":
    """The source ``args.record`` names (see ``stream --help`` for the rule), with its
    rate, units and channels declared."""
    from pipeline.errors import SamplingRateError
    from pipeline.read.record import SignalSpec
    from pipeline.read.units import UnitError
    from pipeline.runtime.sources import RecordSource, StdinSource, is_live

    labels, _ = channels_option(args.channels)
    arg = args.record
    if is_live(arg):
        return open_live_input(args, manifest)
    if arg == "-":
        if args.fs is None:
            raise SamplingRateError(
                "stdin does not say its sampling rate: give --fs HZ (the rate the "
                "samples were taken at; they are resampled to the model's if it differs)"
            )
        if args.units is None:
            raise UnitError(
                f"stdin does not say its units: give --units (the model takes {manifest.input.units}; "
                f"mV, uV, V ...; with --gain for converter counts)"
            )
        labels = labels or list(manifest.channels)
        try:
            spec = SignalSpec(float(args.fs), tuple(labels), (args.units,) * len(labels))
        except ValueError as err:
            raise SamplingRateError(f"stdin: {err}") from None
        return StdinSource(spec, args.format, args.gain, args.bad_lines)
    from pipeline.read.files import is_recording_path, read_recording

    try:
        if ":" in arg and arg.split(":")[0] in DATASETS:
            from pipeline.read.datasets import dataset_record

            return RecordSource(dataset_record(arg, data_dir=args.data_dir))
        path = is_recording_path(arg)
        if path is not None:
            wanted = labels
            if path.suffix.lower() in (".edf", ".bdf"):
                # Read only the channels the model takes (others may run at other rates).
                from pipeline.read.channels import resolve_channels
                from pipeline.read.files import recording_channels

                have = recording_channels(path)
                _, mapping = channels_option(args.channels)
                idx = resolve_channels(
                    list(manifest.channels), have, manifest.input.channel_aliases, mapping, str(path)
                )
                wanted = [have[i] for i in idx]
            return RecordSource(
                read_recording(
                    path,
                    fs_hz=args.fs,
                    units=args.units,
                    gain=args.gain,
                    channels=wanted,
                    mat_var=args.mat_var,
                    annotator=None,
                )
            )
        from pipeline.read.datasets import ADAPTERS, dataset_record

        own = manifest.dataset
        if own in ADAPTERS and ADAPTERS[own].is_id(arg):
            return RecordSource(dataset_record(arg, own, args.data_dir))
    except ImportError as err:
        raise BiosigError(
            f"{arg}: reading it needs the readers of the 'data' extra (pip install 'biosig-edge[data]'): {err}"
        ) from None
    from pathlib import Path

    hint = f" or a record of {own} ({own}:{ADAPTERS[own].example})" if own in ADAPTERS else ""
    raise BiosigError(f"{arg}: no such file (nor {Path(arg).name}.hea){hint}")


def open_live_input(args, manifest: Manifest) -> "Source":
    """A live source (``lsl:``, ``brainflow:``, ``serial:``): what it is comes from its own
    description where it has one, from --fs/--units/--channels/--format/--gain where not."""
    from pipeline.runtime.sources import open_live

    labels, mapping = channels_option(args.channels)
    return open_live(
        args.record,
        fs_hz=args.fs,
        units=args.units,
        labels=labels,
        labels_map=bool(mapping),
        fmt=args.format,
        gain=args.gain,
        baud=args.baud,
        wait_s=args.wait_s,
        group="ecg" if manifest.kind == "ecg-beats" else "eeg",
    )
