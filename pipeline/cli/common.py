"""What several commands share: the number types every numeric option takes, the
budget options of ``validate`` and ``run``, the run folder, the progress bar."""

from __future__ import annotations

import argparse
import math
import sys


def _progress(desc: str):
    """A tqdm progress bar on stderr when it is a terminal; silent otherwise."""

    def wrap(items):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="file", leave=False, disable=not sys.stderr.isatty())

    return wrap


def _run_dir(cfg, out: str | None):
    """The run folder: --out, or runs/<task>-<profile>-<time>."""
    import time
    from pathlib import Path

    return Path(out) if out else Path("runs") / f"{cfg.task}-{cfg.profile}-{time.strftime('%Y%m%d-%H%M%S')}"


def _budget_overrides(args) -> dict:
    """Budget limits set on the command line (they count like the user's own budget file)."""
    return {} if args.max_p99_latency_ms is None else {"max_p99_latency_ms": args.max_p99_latency_ms}


def _budget_exit(report: dict) -> int:
    """Name every budget miss on stderr (each makes its artifact not recommended, or is
    only reported); exit code 1 if a target is left without a recommendation."""
    from pipeline.validate.budgets import describe_miss

    for b in report["budget_results"]:
        if b["passed"]:
            continue
        if b.get("counted", True):
            print(f"BUDGET MISSED (not recommended): {b['artifact']}: {describe_miss(b)} ({b['key']})", file=sys.stderr)
        else:
            print(f"reported, not judged: {b['artifact']}: {describe_miss(b)} ({b.get('note', '')})", file=sys.stderr)
    for failure in report.get("failures", []):
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if report.get("failures") else 0


def _add_budget_options(p: argparse.ArgumentParser) -> None:
    """--budget, --target and --max-p99-latency-ms, shared by validate and run."""
    from pipeline.validate.budgets import TARGETS

    p.add_argument("--budget", help="TOML file of limits (default: pipeline/validate/budgets/<task>.toml)")
    p.add_argument(
        "--target",
        choices=list(TARGETS),
        help="judge absolute latency on this target: this run's latencies scaled by the calibration loop "
        "measured alongside them (the assumption is written in the report); without it, absolute latency "
        "is reported, not judged, unless you set it",
    )
    p.add_argument(
        "--max-p99-latency-ms",
        type=number(0.0, 1e6),
        help="hold every artifact to this p99 latency per decision (ms, on this machine or the --target)",
    )


#: The longest push ``--chunk-s`` may ask for: a push is held in memory whole (60 s of 21
#: channels at the highest rate the resampler takes is ~1 GB), and longer ones gain nothing.
MAX_CHUNK_S = 60.0


def number(low: float = -math.inf, high: float = math.inf, *, above: bool = True, integer: bool = False, nonzero=False):
    """An argparse ``type=`` for a numeric option: a finite number (an integer with
    ``integer``) above ``low`` (at least ``low`` with ``above=False``), at most ``high``,
    not 0 with ``nonzero``. NaN, infinity, a wrong sign or a size that would exhaust memory
    is refused by argparse in one line, exit 2, before any work; every subcommand's numeric
    options take one of these."""

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if integer else 'a number'}: {text!r}") from None
        if (
            math.isfinite(value)
            and (value > low if above else value >= low)
            and value <= high
            and not (nonzero and value == 0)
        ):
            return value
        bounds = []
        if low > -math.inf:
            bounds.append(f"{'above' if above else 'at least'} {low:g}")
        if high < math.inf:
            bounds.append(f"at most {high:g}")
        if nonzero:
            bounds.append("not 0")
        kind = "integer" if integer else "number"
        raise argparse.ArgumentTypeError(
            f"must be a finite {kind}{' ' if bounds else ''}{' and '.join(bounds)}, got {text!r}"
        )

    parse.__name__ = "integer" if integer else "number"
    return parse


def seconds(high: float = math.inf, *, zero: bool = False):
    """A duration option in seconds: finite, above 0 (or at least 0 with ``zero``), at most ``high``."""
    return number(0.0, high, above=not zero)
