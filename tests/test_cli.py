"""The data commands on the real databases; every numeric option refuses what is not a
sensible number in one line."""

import argparse
import contextlib
import io
import json
import math
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import build_parser, main


def test_data_summary_json_counts(capsys):
    assert main(["data", "summary", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["mitdb"]["per_split"]
    assert {c: m["DS1"][c] for c in "NSVF"} == {"N": 45866, "S": 944, "V": 3788, "F": 415}
    assert {c: m["test (DS2)"][c] for c in "NSVF"} == {"N": 44259, "S": 1837, "V": 3221, "F": 388}
    assert {c: m["train (DS1)"][c] + m["val (DS1)"][c] for c in "NSVF"} == {c: m["DS1"][c] for c in "NSVF"}
    assert out["bonn"]["samples_per_segment"] == {"4097": 500}
    assert {s: v["segments"] for s, v in out["bonn"]["per_set"].items()} == dict.fromkeys(
        ["A_Z", "B_O", "C_N", "D_F", "E_S"], 100
    )
    e = out["eegmat"]
    assert len(e["per_subject"]) == 24
    assert sum(v["subjects"] for v in e["per_split"].values()) == 24
    assert all(v["task_s"] == 62.0 for v in e["per_subject"].values())


def test_console_script_help_explains_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "data", "--help"], capture_output=True, text=True, check=True
    )
    for word in ("check", "summary", "fetch"):
        assert word in result.stdout


# ------------------------------------------------------------------- numeric options

#: Each subcommand with its positional arguments (never read: options fail first).
COMMANDS = {
    "stream": ["ART", "-"],
    "replay": ["ART", "100"],
    "validate": ["ART"],
    "export": ["RUN"],
    "run": ["ecg-mitdb"],
    "sweep": ["ecg-mitdb"],
}
#: Options where 0 means something (no wait, no linger, all windows, core 0).
ZERO_ALLOWED = ("--wait-s", "--linger-s", "--eval-limit", "--stream-eval", "--core")


def _numeric_options() -> list[tuple[str, str, object]]:
    """(subcommand, option, its type) for every option of every subcommand that takes a
    number: found in the parser, so that an option added later is held to the same rule."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for command in COMMANDS:
        for action in sub.choices[command]._actions:
            name = getattr(action.type, "__name__", "")
            if action.option_strings and name in ("number", "integer", "float", "int"):
                out.append((command, action.option_strings[0], action.type))
    return out


def _run(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    return code, err.getvalue()


def test_every_numeric_option_of_every_subcommand_is_checked_by_argparse():
    options = _numeric_options()
    assert len(options) >= 26
    # A bare float or int lets NaN, infinity and any sign through (reliability probe N6).
    assert [(c, o) for c, o, t in options if t in (float, int)] == []


@settings(max_examples=150, deadline=None)
@given(
    case=st.sampled_from(_numeric_options()),
    bad=st.one_of(
        st.sampled_from(["nan", "NaN", "inf", "-inf", "1e400", "-1", "-5", "0", "-0.0", "1e12", "abc", ""]),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-(10**15), 0).map(str),
    ),
)
def test_a_bad_number_for_any_numeric_option_is_one_error_line_and_exit_2(case, bad):
    command, option, parse = case
    try:
        parse(bad)  # what the option itself accepts ...
        accepted = True
    except argparse.ArgumentTypeError:
        accepted = False
    value = float(bad) if bad.strip() and bad not in ("abc",) else math.nan
    if accepted:
        # ... is finite, and above 0 unless it is --gain (any finite non-zero) or may be 0 (waits, lingers)
        assert math.isfinite(value)
        assert value != 0 or option in ZERO_ALLOWED
        assert value > 0 or option in ("--gain", *ZERO_ALLOWED)
        return
    code, err = _run([command, *COMMANDS[command], f"{option}={bad}"])
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and f"argument {option}" in lines[0], err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["stream", "ART", "-", "--chunk-s", "nan"],
            "argument --chunk-s: must be a finite number above 0 and at most 60",
        ),
        (["stream", "ART", "-", "--chunk-s", "1e12"], "at most 60, got '1e12'"),
        (["stream", "ART", "-", "--duration-s", "-1"], "argument --duration-s: must be a finite number above 0"),
        (["stream", "ART", "-", "--jsonl-max-mb", "inf"], "argument --jsonl-max-mb: must be a finite number above 0"),
        (["stream", "ART", "-", "--jsonl-keep", "-1"], "argument --jsonl-keep: must be a finite integer at least 1"),
        (["stream", "ART", "lsl:x", "--wait-s", "-5"], "argument --wait-s: must be a finite number at least 0"),
        (["replay", "ART", "100", "--speed", "0"], "argument --speed: must be a finite number above 0"),
        (["replay", "ART", "100", "--seconds", "-5"], "argument --seconds: must be a finite number above 0"),
    ],
)
def test_the_reliability_probes_numeric_options_are_refused_naming_the_option(argv, message):
    code, err = _run(argv)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_good_numbers_still_parse():
    args = build_parser().parse_args(
        ["stream", "ART", "-", "--chunk-s", "0.05", "--wait-s", "0", "--jsonl-keep", "3", "--gain", "-200"]
    )
    assert (args.chunk_s, args.wait_s, args.jsonl_keep, args.gain) == (0.05, 0.0, 3, -200.0)
    args = build_parser().parse_args(["replay", "ART", "100", "--speed", "20", "--linger-s", "0"])
    assert (args.speed, args.linger_s) == (20.0, 0.0)


# ------------------------------------------------------------------- help from the registries


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _task_configs() -> list[str]:
    """The task configs load_config reads: the registry the help must follow."""
    from pipeline.train.config import CONFIG_DIR

    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def test_the_help_of_every_task_taking_command_names_every_task_config(monkeypatch):
    # A wide terminal, so that argparse does not break a hyphenated task name over two lines.
    monkeypatch.setenv("COLUMNS", "1000")
    configs = _task_configs()
    assert len(configs) >= 4 and "ecg-mitdb-1lead" in configs
    taking = {
        name: p
        for name, p in _subcommands().items()
        if any(a.dest == "task" and not a.option_strings for a in p._actions)
    }
    assert set(taking) >= {"train", "sweep", "run"}
    for name, p in taking.items():
        named = set(re.findall(r"[\w-]+", p.format_help()))
        missing = [c for c in configs if c not in named]
        assert not missing, f"'biosig-edge {name} --help' does not name the task configs {missing}"


def test_the_command_line_reads_the_task_configs_load_config_reads():
    from pipeline.cli.common import task_configs

    assert list(task_configs()) == _task_configs()


def test_building_the_parser_imports_no_training_code():
    """The task names come from the config files without importing pipeline.train (it sets
    TensorFlow's environment and loads numpy and scipy): ``stream`` on a device and every
    ``--help`` start without them."""
    code = (
        "import sys\nfrom pipeline.cli import build_parser\nbuild_parser()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pipeline.train', 'tensorflow'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_every_shared_option_is_declared_once():
    # One parent parser per shared option: its help is the same text in every command.
    helps: dict[str, set[str]] = {}
    for p in [*_subcommands().values(), *_subcommands()["data"]._actions[-1].choices.values()]:
        for action in p._actions:
            for option in set(action.option_strings) & {"--data-dir", "--fs", "--units", "--gain", "--mat-var"}:
                helps.setdefault(option, set()).add(action.help.removeprefix("with --records: "))
    assert set(helps) == {"--data-dir", "--fs", "--units", "--gain", "--mat-var"}
    assert all(len(texts) == 1 for texts in helps.values()), helps
