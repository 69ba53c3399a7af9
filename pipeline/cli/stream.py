"""``biosig-edge stream``: samples through a device-side session, events out."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pipeline.cli.common import MAX_CHUNK_S, data_dir, number, seconds, signal_options
from pipeline.cli.inputs import channels_option, open_input
from pipeline.errors import BiosigError

if TYPE_CHECKING:
    from pipeline.runtime.sinks import Sink


def open_sinks(args, manifest, clock: str) -> list[Sink]:
    """Where ``stream`` sends its events: stdout (``--to jsonl``), ``--jsonl FILE`` (rotated)
    and ``--lsl-outlet NAME``."""
    from pipeline.runtime.sinks import JsonLinesSink, LSLOutletSink, RotatingJsonlSink

    if args.to == "none" and not (args.jsonl or args.lsl_outlet):
        raise BiosigError("--to none: the events would go nowhere; add --jsonl FILE or --lsl-outlet NAME")
    sinks: list[Sink] = [JsonLinesSink()] if args.to == "jsonl" else []
    if args.jsonl:
        sinks.append(RotatingJsonlSink(args.jsonl, int(args.jsonl_max_mb * 1e6), args.jsonl_keep))
    if args.lsl_outlet:
        sinks.append(
            LSLOutletSink(
                args.lsl_outlet,
                clock,
                {"kind": manifest.kind, "artifact": args.artifact or "", "classes": list(manifest.classes)},
            )
        )
    return sinks


def cmd_stream(args) -> int:
    from tqdm import tqdm

    from pipeline.manifest import read_manifest
    from pipeline.runtime.live import StreamRunner, format_summary
    from pipeline.runtime.session import open_session
    from pipeline.runtime.shipped import resolve_artifact_dir

    # A shipped model by name verifies against the key it ships with, unless the user names one.
    args.artifact_dir, shipped_key = resolve_artifact_dir(args.artifact_dir)
    manifest = read_manifest(args.artifact_dir, trusted_key=args.trusted_key or shipped_key)
    # Sinks first: an LSL outlet of decisions is announced before the source is waited for.
    sinks = open_sinks(args, manifest, "lsl" if args.record.lower().startswith("lsl:") else "unix")
    source = None
    try:
        from pipeline.read.files import input_notes

        with input_notes() as notes:
            source = open_input(args, manifest)
        for note in notes:
            print(f"biosig-edge: note: {note}", file=sys.stderr)
        _, mapping = channels_option(args.channels)
        from pipeline.runtime.sources import LiveSource

        # A live source arrives at its own pace: every chunk is processed as it comes (no
        # gathering of short pushes, which would only add latency there).
        live = isinstance(source, LiveSource) or args.realtime
        session = open_session(
            args.artifact_dir,
            args.artifact,
            source=source.spec,
            channel_map=mapping,
            withhold_unusable=args.withhold,
            manifest=manifest,
            **({"block_s": 0} if live else {}),
        )
        print(
            f"biosig-edge: {getattr(source, 'description', source.name)}: {session.describe_input()}; "
            f"model {session.artifact}",
            file=sys.stderr,
            flush=True,
        )
        bar = tqdm(unit="s", disable=not sys.stderr.isatty(), desc="streaming")

        def progress(seconds, counts):
            bar.update(seconds)
            bar.set_postfix(dict(counts))

        runner = StreamRunner(
            source,
            session,
            sinks,
            chunk_s=args.chunk_s,
            realtime=args.realtime,
            stall_s=args.stall_s,
            reconnect=args.reconnect,
            duration_s=args.duration_s,
            on_push=progress,
        )
        try:
            runner.run()
        finally:
            bar.close()
            for line in format_summary(runner.summary(), session.artifact):
                print(line, file=sys.stderr)
    finally:
        for sink in sinks:
            sink.close()
        if source is not None:
            source.close()
    return 0


#: ``stream --help``'s epilogue: what INPUT may be, in the order it is tried (``open_input``),
#: and what every event carries.
INPUT_RULES = """INPUT is, in this order:
  -              raw samples on stdin: needs --fs and --units (and --gain for converter counts);
                 columns are the model's channels in order unless --channels labels them
  DATASET:ID     a record of a built-in dataset: mitdb:100, bonn:E_S/S001, eegmat:Subject00
  a path         any file on disk: WFDB (dir/rec or dir/rec.hea, any database), EDF/BDF,
                 CSV/TXT (--fs, --units; a header row names the columns), NPY (--fs, --units),
                 MATLAB .mat v7 or older (--fs, --units; --mat-var if it holds several arrays)
  ID             a record of the model's own dataset (100 for an MIT-BIH model), if no file
                 of that name exists
  lsl:NAME       a Lab Streaming Layer stream by name, or lsl:QUERY (an XPath predicate such
                 as lsl:type='EEG'): rate, labels and units from its description
                 (irregular-rate streams are refused); LSL timestamps kept
  brainflow:BOARD[,key=value...]
                 a BrainFlow board (synthetic, CYTON_BOARD, ... or its id) with BrainFlow's
                 input parameters (serial_port=..., ip_address=...) and channels=eeg|ecg|...:
                 rate, rows and names from BrainFlow's board descriptor
  serial:DEVICE  a serial port (/dev/ttyACM0): needs --fs, --units, --channels; --format
                 text (lines) or i16le/f32le (frames: sync 0xA5, sequence byte, sample,
                 CRC-8; see pipeline/runtime/sources/serial.py); --baud

Rate, units and channels are always known before a sample reaches the model: from the
file's header or from the options. Another rate is resampled to the model's (refused
below the lowest rate the model's band needs), units are converted, channels are taken
by name (the model's aliases, e.g. ECG1 for MLII) or by --channels.

Every event carries source_ts (the source's timestamp of its last input sample),
decided_at (local Unix time) and latency_s; the latency distribution is printed on exit.
SIGTERM/SIGINT flush the events, print the summary and exit 0. A live source that sends
nothing for --stall-s gives a "gap" event (the state restarts when samples return); one
that disappears ends the stream, or with --reconnect is reopened with backoff.

examples:
  biosig-edge stream ART 100
  biosig-edge stream ART lsl:OpenBCI --channels MLII=ExG1 --lsl-outlet decisions
  biosig-edge stream ART brainflow:synthetic --channels EEG=Fz --duration-s 60
  biosig-edge stream ART serial:/dev/ttyACM0 --fs 500 --units mV --channels ECG1,ECG2
      --format i16le --gain 200 --jsonl /var/log/biosig/events.jsonl --to none --reconnect
  biosig-edge stream ART holter/rec01 --channels MLII=ECG1,V1=ECG2
  biosig-edge stream ART - --fs 250 --units mV < samples.txt
  biosig-edge stream ART - --fs 500 --units uV --format i16le --gain 10 < frames.bin"""


def add_live_options(p: argparse.ArgumentParser) -> None:
    """What a live source or sink needs: where the events go (stdout, a rotated file, an LSL
    outlet), how long a silent source may stall, reconnection, serial speed, duration."""
    live = p.add_argument_group("live sources and sinks")
    live.add_argument(
        "--to",
        default="jsonl",
        choices=["jsonl", "none"],
        help="events as JSON lines on stdout (jsonl, default) or not at all (none: with --jsonl or --lsl-outlet)",
    )
    live.add_argument(
        "--jsonl",
        metavar="FILE",
        help="also append events to FILE, each line flushed; rotated by size (FILE.1, FILE.2 ...)",
    )
    live.add_argument(
        "--jsonl-max-mb", type=number(0.0, 1e6), default=50.0, help="rotate --jsonl FILE at this size (default 50)"
    )
    live.add_argument(
        "--jsonl-keep",
        type=number(1, 1000, above=False, integer=True),
        default=5,
        help="rotated files kept (default 5)",
    )
    live.add_argument(
        "--lsl-outlet",
        metavar="NAME",
        help="publish events as an LSL marker stream NAME (JSON strings: class, probs, quality ...), "
        "each timestamped with the LSL time of the decision's last input sample",
    )
    live.add_argument(
        "--stall-s",
        type=seconds(),
        default=5.0,
        help="a live source silent this long gives a 'gap' event and the state restarts (default 5)",
    )
    live.add_argument(
        "--reconnect",
        action="store_true",
        help="reopen a live source that disappears, with backoff (0.5 s doubling to 30 s); default: end cleanly",
    )
    live.add_argument(
        "--wait-s",
        type=seconds(zero=True),
        default=10.0,
        help="wait this long for an LSL stream to appear (default 10)",
    )
    live.add_argument("--baud", type=number(0, integer=True), default=115200, help="serial line speed (default 115200)")
    live.add_argument("--duration-s", type=seconds(), help="stop after this many seconds of signal")


def add_parser(sub) -> None:
    """``stream``, with INPUT's rules in the epilogue."""
    p = sub.add_parser(
        "stream",
        parents=[signal_options(), data_dir()],
        help="stream a recording (any file, a dataset record or stdin) through a model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stream samples through a device-side session (the model's causal filter; for ECG "
        "Pan-Tompkins beat detection, RR features and the beat template; the exported model) "
        "and print one JSON line per event: decisions, each with its quality, and "
        "signal-quality events.",
        epilog=INPUT_RULES,
    )
    p.add_argument(
        "artifact_dir",
        metavar="ART",
        help="artifact folder from 'biosig-edge export', or the name of a model shipped with the package "
        "(signed; e.g. ecg-mitdb-1lead: stream with no training)",
    )
    p.add_argument(
        "record",
        metavar="INPUT",
        help="'-', DATASET:ID, a file, an id of the model's dataset, lsl:NAME, "
        "brainflow:BOARD or serial:DEVICE (below)",
    )
    p.add_argument(
        "--artifact", default=None, help="model to run (default tflite_float32 for ECG, stream_tflite_float32 for EEG)"
    )
    p.add_argument(
        "--format",
        default="text",
        choices=["text", "f32le", "i16le"],
        help="stdin: text lines, or binary little-endian float32/int16 frames (default text)",
    )
    p.add_argument(
        "--bad-lines",
        default="error",
        choices=["error", "gap"],
        help="stdin text: a line that is not numbers stops the stream (error, exit 2, after "
        "everything before it) or becomes a gap (default error)",
    )
    p.add_argument(
        "--withhold",
        action="store_true",
        help="emit decisions judged unusable without class or probabilities (default: flag them)",
    )
    p.add_argument(
        "--trusted-key",
        help="Ed25519 public key (PEM) the artifact folder must be signed with (default $BIOSIG_EDGE_TRUSTED_KEY)",
    )
    p.add_argument(
        "--chunk-s",
        type=seconds(MAX_CHUNK_S),
        default=1.0,
        help=f"seconds per push (default 1.0, at most {MAX_CHUNK_S:g})",
    )
    p.add_argument("--realtime", action="store_true", help="pace the replay at the sampling rate")
    add_live_options(p)
    p.set_defaults(func=cmd_stream)
