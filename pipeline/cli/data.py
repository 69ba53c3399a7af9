"""``biosig-edge data check|summary|fetch``: the recordings."""

from __future__ import annotations

import argparse
import json

from pipeline.cli.common import data_dir, progress_bar
from pipeline.read.cards import DATASETS


def cmd_data_check(args) -> int:
    from pipeline.read.summary import check_dataset

    bad = 0
    for name in args.datasets or DATASETS:
        result = check_dataset(name, args.data_dir, progress=progress_bar(f"checking {name}"))
        status = "OK" if not result["problems"] else f"{len(result['problems'])} problem(s)"
        print(f"{name}: {status}  ({result['folder']}, against {result['checksum_list']})")
        for problem in result["problems"]:
            print(f"  {problem}")
        bad += len(result["problems"])
    return 1 if bad else 0


def cmd_data_summary(args) -> int:
    from pipeline.read.summary import SUMMARIES, format_summary

    out = {}
    for name in args.datasets or DATASETS:
        out[name] = SUMMARIES[name](args.data_dir, progress=progress_bar(f"reading {name}"))
        if not args.json:
            print(format_summary(out[name]), end="\n\n")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def cmd_data_fetch(args) -> int:
    from pipeline.read.cards import load_card
    from pipeline.read.locate import cache_root, fetch

    for name in args.datasets or DATASETS:
        target = cache_root() / name
        if target.is_dir() and any(target.iterdir()):
            print(f"{name}: already in {target}")
            continue
        print(f"{name}: downloading into {target} ...")
        fetch(load_card(name), target)
        print(f"{name}: done")
    return 0


def add_parser(sub) -> None:
    """``data`` and its three subcommands."""
    data = sub.add_parser(
        "data",
        help="check, summarise or fetch the recordings",
        description=f"Work with the databases: {', '.join(DATASETS)}.",
    )
    data_sub = data.add_subparsers(dest="data_command", required=True)
    common = argparse.ArgumentParser(add_help=False, parents=[data_dir()])
    common.add_argument(
        "datasets",
        nargs="*",
        choices=[[], *DATASETS],
        metavar="DATASET",
        help=f"one or more of {', '.join(DATASETS)} (default: all)",
    )

    p = data_sub.add_parser(
        "check",
        parents=[common],
        help="verify every file against its sha256",
        description="Verify every file of each dataset against the checksum "
        "list named in its card (datasets/*.toml). Exit 1 if any "
        "file is missing or altered.",
    )
    p.set_defaults(func=cmd_data_check)
    p = data_sub.add_parser(
        "summary",
        parents=[common],
        help="counts per class, per record or subject, per split",
        description="Counts per class, per record or subject, and per train/val/test split, read from the recordings.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=cmd_data_summary)
    p = data_sub.add_parser(
        "fetch",
        parents=[common],
        help="download from the publishers into the cache",
        description="Download datasets from their publishers into the cache "
        "folder ($BIOSIG_EDGE_CACHE or ~/.cache/biosig-edge). "
        "Needs internet access.",
    )
    p.set_defaults(func=cmd_data_fetch)
