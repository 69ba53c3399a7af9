"""``biosig-edge``: the command line.

Every user error (missing data, altered file, bad config) ends with a one-line message
naming the file and the problem, and exit code 2; no traceback.

One module per command (``data``, ``train``, ``sweep``, ``export``, ``stream``, ``replay``,
``validate``, ``keys``, ``sign``, ``run``), each with ``add_parser(sub)`` and its command
function; what several share is in :mod:`pipeline.cli.common` (numbers, budget options) and
:mod:`pipeline.cli.inputs` (INPUT resolution).
"""

from __future__ import annotations

import argparse
import sys

from pipeline.cli import data, export, keys, replay, run, sign, stream, sweep, train, validate
from pipeline.errors import BiosigError

#: The commands in the order ``biosig-edge --help`` lists them.
COMMANDS = (data, train, sweep, export, stream, replay, validate, keys, sign, run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biosig-edge", description="LSTM models of ECG and EEG recordings, from the recordings to small devices."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BiosigError as err:
        print(f"biosig-edge: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("biosig-edge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
