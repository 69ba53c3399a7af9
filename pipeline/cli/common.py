"""What several commands share: the number types every numeric option takes, the parent
parsers of options several commands declare alike (``--data-dir``, the task, the profile, the
run folder, a bare-number input's rate, units, gain and channels, the budget options), and
the help they take from the registries: the task configs and the dataset cards.

A parent parser is a function returning a fresh ``ArgumentParser(add_help=False)``, so that a
command takes it with ``sub.add_parser(..., parents=[data_dir(), task(...)])`` and an option
is declared once.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tomllib
from pathlib import Path

from pipeline.read.cards import DATASETS


def progress_bar(desc: str):
    """A tqdm progress bar on stderr when it is a terminal; silent otherwise."""

    def wrap(items):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="file", leave=False, disable=not sys.stderr.isatty())

    return wrap


def run_folder(cfg, out: str | None):
    """The run folder: --out, or runs/<task>-<profile>-<time>."""
    import time
    from pathlib import Path

    return Path(out) if out else Path("runs") / f"{cfg.task}-{cfg.profile}-{time.strftime('%Y%m%d-%H%M%S')}"


def budget_overrides(args) -> dict:
    """Budget limits set on the command line (they count like the user's own budget file)."""
    return {} if args.max_p99_latency_ms is None else {"max_p99_latency_ms": args.max_p99_latency_ms}


def budget_exit(report: dict) -> int:
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


# --- the registries the help is generated from -------------------------------------------


def task_configs() -> dict[str, Path]:
    """Every task config, name -> TOML file, sorted by name: the files ``load_config`` reads
    (``pipeline/train/configs/*.toml``, ``pipeline.train.config.CONFIG_DIR``), so a new config
    appears in every command's help with no edit here.

    Found with ``find_spec``, without importing ``pipeline.train``: its import sets
    TensorFlow's environment variables and loads numpy and scipy (0.3 s on every command,
    ``stream`` on a device included) for what is only a help string.
    """
    spec = importlib.util.find_spec("pipeline.train")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "configs"
    return {path.stem: path for path in sorted(folder.glob("*.toml"), key=lambda path: path.stem)}


def tasks_setting(section: str, key: str) -> list[str]:
    """The tasks whose config sets ``[section] key`` (outside its profiles)."""
    out = []
    for name, path in task_configs().items():
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue  # load_config names the broken file when the task is used
        if key in raw.get(section, {}):
            out.append(name)
    return out


def one_of(names: list[str]) -> str:
    """``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# --- parent parsers ---------------------------------------------------------------------


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def data_dir() -> argparse.ArgumentParser:
    """``--data-dir``: where the recordings are (every command that reads them)."""
    p = _parent()
    p.add_argument(
        "--data-dir",
        help=f"folder holding {', '.join(f'{d}/' for d in DATASETS)} "
        "(default: $BIOSIG_EDGE_DATA, then ../shared/data, then the cache)",
    )
    return p


def task(note: str = "") -> argparse.ArgumentParser:
    """The ``task`` positional (``train``, ``sweep``, ``run``), its help naming every task
    config. Not argparse ``choices``: an unknown task stays ``load_config``'s one-line error
    (exit 2, the tasks named), and a TOML path is still taken as a task's config."""
    p = _parent()
    names = list(task_configs())
    p.add_argument("task", help=f"{one_of(names)} (configs in pipeline/train/configs/){note}")
    return p


def profile(default: str, note: str = "") -> argparse.ArgumentParser:
    """``--profile quick|full`` (every task config has both)."""
    p = _parent()
    p.add_argument(
        "--profile",
        default=default,
        choices=["quick", "full"],
        help=f"{note}quick: minutes on 2 cores; full: the benchmark run (default {default})",
    )
    return p


def run_out() -> argparse.ArgumentParser:
    """``--out`` of the commands that train (``train``, ``run``): the run folder."""
    p = _parent()
    p.add_argument("--out", help="run folder (default: runs/<task>-<profile>-<time>)")
    return p


def signal_options(context: str = "", mat_var: bool = True) -> argparse.ArgumentParser:
    """What a bare-number input (stdin, CSV/TXT, NPY, MAT, a serial port) does not say
    itself: ``--fs``, ``--units``, ``--gain``, ``--channels`` (``stream``, ``replay``,
    ``validate --records``, where ``context`` says so), and ``--mat-var``."""
    p = _parent()
    g = p.add_argument_group("an input that does not state its rate, units or channels")
    g.add_argument("--fs", type=number(0.0), help=f"{context}sampling rate, Hz")
    g.add_argument("--units", help=f"{context}units (mV, uV, V; converter counts: with --gain)")
    g.add_argument(
        "--gain",
        type=number(nonzero=True),
        help=f"{context}converter counts per unit (i16le frames, or counts in text/CSV/NPY/MAT)",
    )
    g.add_argument(
        "--channels",
        help=f"{context}input labels (ECG1,ECG2) or a mapping MODEL=INPUT (MLII=ECG1,V1=ECG2; "
        "EEG=ch1 for a bare file's first column)",
    )
    if mat_var:
        g.add_argument("--mat-var", help="the variable of a .mat file holding the signal")
    return p


def budget_options() -> argparse.ArgumentParser:
    """--budget, --target and --max-p99-latency-ms, shared by validate and run."""
    from pipeline.validate.budgets import TARGETS

    p = _parent()
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
    return p
