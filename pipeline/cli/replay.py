"""``biosig-edge replay``: a recording published as an LSL stream."""

from __future__ import annotations

import sys

from pipeline.cli.common import MAX_CHUNK_S, data_dir, number, seconds, signal_options
from pipeline.cli.inputs import open_input
from pipeline.errors import BiosigError


def cmd_replay(args) -> int:
    import signal

    from pipeline.manifest import read_manifest
    from pipeline.runtime.live import replay_to_lsl
    from pipeline.runtime.sources import RecordSource, is_live

    manifest = read_manifest(args.artifact_dir)
    source = None if args.record == "-" or is_live(args.record) else open_input(args, manifest)
    if not isinstance(source, RecordSource):
        raise BiosigError(
            f"{args.record}: replay publishes a recording (a file or a dataset record), not a live source or stdin"
        )
    record = source.record
    kind = "ECG" if manifest.kind == "ecg-beats" else "EEG"
    stop = {"reason": None}

    def on_signal(signum, frame):
        stop["reason"] = signal.Signals(signum).name

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done = replay_to_lsl(
            record,
            args.name or f"biosig-edge-{record.record_id}".replace("/", "-"),
            kind,
            speed=args.speed,
            chunk_s=args.chunk_s,
            wait_s=args.wait_s,
            seconds=args.seconds,
            linger_s=args.linger_s,
            stop=lambda: stop["reason"] is not None,
        )
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    print(
        f"published {done['seconds']:.1f} s of {record.record_id} in {done['elapsed_s']:.1f} s"
        + (f" (stopped by {stop['reason']})" if stop["reason"] else ""),
        file=sys.stderr,
    )
    return 0


def add_parser(sub) -> None:
    """``replay``."""
    p = sub.add_parser(
        "replay",
        parents=[signal_options(), data_dir()],
        help="publish a recording as an LSL stream at its real pace (or N times it)",
        description="Publish a recording (any INPUT 'stream' reads except stdin and live sources) "
        "as an LSL outlet: its channels, labels, units and rate in the stream's "
        "description, each sample timestamped on the LSL clock when it is pushed, at "
        "the recording's pace times --speed. For demos and tests: "
        "'biosig-edge stream ART lsl:NAME' reads it back.",
        epilog="example: biosig-edge replay ART mitdb:100 --speed 20 --name ecg-demo",
    )
    p.add_argument(
        "artifact_dir",
        help="artifact folder (its dataset resolves bare record ids; its kind sets the stream type ECG/EEG)",
    )
    p.add_argument("record", metavar="RECORD", help="DATASET:ID, a file, or an id of the model's dataset")
    p.add_argument("--to", default="lsl", choices=["lsl"], help="where to publish (lsl)")
    p.add_argument("--name", help="LSL stream name (default biosig-edge-RECORD)")
    p.add_argument("--speed", type=number(0.0, 1e6), default=1.0, help="times real time (default 1)")
    p.add_argument(
        "--chunk-s", type=seconds(MAX_CHUNK_S), default=0.02, help="seconds of signal per push (default 0.02)"
    )
    p.add_argument("--seconds", type=seconds(), help="only the first SECONDS of the recording")
    p.add_argument(
        "--wait-s",
        type=seconds(zero=True),
        default=0.0,
        help="wait up to this long for a consumer before the first sample (default: start at once)",
    )
    p.add_argument(
        "--linger-s",
        type=seconds(zero=True),
        default=2.0,
        help="keep the outlet this long after the last sample, so that inlets drain it (default 2)",
    )
    p.set_defaults(func=cmd_replay, format="text", bad_lines="error", baud=115200)
