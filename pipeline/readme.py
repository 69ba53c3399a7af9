"""Figures in the README and the docs, written by scripts, never by hand.

Every figure comes from a run: a script that measures something renders a Markdown block
and replaces the block of the same name, between markers, wherever it lives (README.md or
one of docs/*.md: the writer finds it, so a block can move between pages without touching
its script)::

    <!-- BEGIN results-ecg-mitdb (written by: python -m pipeline.tools.train_benchmark --tasks ecg-mitdb --write) -->
    ...
    <!-- END results-ecg-mitdb -->

The BEGIN line says which command writes the block, so a reader knows how to refresh it,
and ``git diff`` shows what a new run changed.

The README's ``headline`` block quotes a few rows of other blocks (:data:`HEADLINE`); it is
rewritten whenever one of them is, and by ``python -m pipeline.readme --write``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pipeline.errors import BiosigError

ROOT = Path(__file__).resolve().parents[1]

#: The command that rewrites the headline block.
HEADLINE_COMMAND = "python -m pipeline.readme --write"


class ReadmeBlockError(BiosigError):
    """No page has a block of that name, more than one has, or its markers are broken."""


def pages(root: Path | None = None) -> list[Path]:
    """The pages that may hold blocks: README.md, then docs/*.md by name."""
    root = ROOT if root is None else root
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- BEGIN {re.escape(name)} \(written by: [^\n]*?\) -->\n)(.*?)(<!-- END {re.escape(name)} -->)", re.S
    )


def find_block(name: str, root: Path | None = None) -> Path:
    """The one page (README.md or docs/*.md under ``root``, default the repository) that
    holds block ``name``."""
    root = ROOT if root is None else root
    begin = f"<!-- BEGIN {name} (written by:"
    found = [page for page in pages(root) if begin in page.read_text()]
    if len(found) != 1:
        where = ", ".join(str(p.relative_to(root)) for p in found) or "none of README.md, docs/*.md"
        raise ReadmeBlockError(
            f"block '{name}' must be on exactly one page (markers <!-- BEGIN {name} (written by: ...) --> "
            f"... <!-- END {name} -->); found on: {where}"
        )
    return found[0]


def read_block(name: str, path: Path | None = None) -> str:
    """The current text of block ``name`` (without its markers), from ``path`` or the page
    that holds it."""
    path = find_block(name) if path is None else Path(path)
    match = _pattern(name).search(path.read_text())
    if match is None:
        raise ReadmeBlockError(
            f"{path}: no block '{name}' (markers <!-- BEGIN {name} (written by: ...) --> ... <!-- END {name} -->)"
        )
    return match.group(2)


def write_block(name: str, text: str, command: str, path: Path | None = None) -> None:
    """Replace block ``name`` with ``text`` (in ``path``, or the page that holds it); the
    BEGIN marker names ``command``. A block found by name that the headline quotes
    refreshes the headline too."""
    found = path is None
    path = find_block(name) if path is None else Path(path)
    source = path.read_text()
    pattern = _pattern(name)
    if len(pattern.findall(source)) != 1:
        raise ReadmeBlockError(
            f"{path}: expected exactly one block '{name}' (markers <!-- BEGIN {name} "
            f"(written by: ...) --> ... <!-- END {name} -->)"
        )
    body = text if text.endswith("\n") else text + "\n"
    begin = f"<!-- BEGIN {name} (written by: {command}) -->\n"
    path.write_text(pattern.sub(lambda m: begin + body + m.group(3), source, count=1))
    if found and name in {quote[1] for quote in HEADLINE}:
        try:
            write_block("headline", headline(), HEADLINE_COMMAND)
        except BiosigError as err:  # the block itself is written; say why the summary is not
            print(f"biosig-edge: note: the README's headline was not refreshed: {err}", file=sys.stderr)


# --- the headline: rows quoted from other blocks -------------------------------------------


_CELL = re.compile(r"(?<!\\)\|")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _CELL.split(line.strip().strip("|"))]


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``text``: a list of rows, each {header: cell}."""
    out: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    i = 0
    while i + 1 < len(lines):
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            header = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = _cells(lines[i])
                rows.append(dict(zip(header, cells)))
                i += 1
            out.append(rows)
        else:
            i += 1
    return out


def quote(block: str, row: str, columns: tuple[str, ...]) -> list[str]:
    """The cells ``columns`` of the row whose first cell is ``row``, in any table of block
    ``block``."""
    for table in tables(read_block(block)):
        for cells in table:
            if next(iter(cells.values()), None) == row and all(c in cells for c in columns):
                return [cells[c] for c in columns]
    raise ReadmeBlockError(f"block '{block}' has no table row '{row}' with columns {', '.join(columns)}")


#: The headline's rows: (what, block, [(row, columns, format)]); ``format`` is filled with
#: the quoted cells in order, and the link goes to whichever page holds the block.
HEADLINE = (
    (
        "ECG beat classes, MIT-BIH inter-patient, MLII only: the lead set the CV prefers (unseen DS2 "
        "patients; mean ± std over seeds)",
        "results-ecg-mitdb-1lead",
        (
            ("kappa", ("mean", "std"), "kappa {} ± {}"),
            ("V Se", ("mean",), "V Se {} %"),
            ("S Se", ("mean",), "S Se {} %"),
            ("accuracy", ("mean",), "accuracy {} %"),
        ),
    ),
    (
        "EEG seizure vs rest, Bonn (unseen segments; mean over seeds)",
        "results-eeg-bonn",
        (
            ("E vs rest Se (segments)", ("mean",), "Se {} %"),
            ("E vs rest Sp (segments)", ("mean",), "Sp {} %"),
            ("5-class accuracy (segments)", ("mean",), "5-class accuracy {} %"),
        ),
    ),
    (
        "EEG rest vs mental arithmetic, EEGMAT (unseen subjects; mean over seeds)",
        "results-eeg-eegmat",
        (
            ("k-fold accuracy (windows)", ("mean",), "4-fold accuracy {} %"),
            ("held-out accuracy (recordings)", ("mean",), "held-out accuracy {} % (recordings)"),
        ),
    ),
    (
        "QRS detection, every MIT-BIH record",
        "detection",
        (("Pan-Tompkins (the session's)", ("Se %", "+P %"), "Se {} %, +P {} %"),),
    ),
    (
        "Raspberry-Pi-class CPU: that ECG model streamed over DS2 by the device session, recommended",
        "validation-mitdb",
        (("Raspberry-Pi-class CPU", ("artifact", "why"), "`{}`: {}"),),
    ),
    (
        "Microcontroller (a Cortex-M4 under QEMU): the same model, recommended",
        "validation-mitdb",
        (("microcontroller", ("artifact", "why"), "`{}`: {}"),),
    ),
)


def headline() -> str:
    """The headline table, quoted from the blocks :data:`HEADLINE` names."""
    lines = ["| | held-out figure | from |", "|---|---|---|"]
    for what, block, items in HEADLINE:
        parts = []
        for row, columns, fmt in items:
            cells = quote(block, row, columns)
            # A long explanation keeps its first clause: the headline is one line per result.
            parts.append(fmt.format(*(c.split("; ")[0] for c in cells)))
        page = find_block(block).relative_to(ROOT).as_posix()  # README.md links from the root
        lines.append(f"| {what} | {'; '.join(parts)} | [{page}]({page}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.readme [--write]``: print the headline quoted from the blocks, or
    write it into the README's ``headline`` block."""
    import argparse

    parser = argparse.ArgumentParser(description=(main.__doc__ or "").splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write it into the README's headline block")
    args = parser.parse_args(argv)
    text = headline()
    print(text, end="")
    if args.write:
        write_block("headline", text, HEADLINE_COMMAND)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BiosigError as err:
        print(f"biosig-edge: {err}", file=sys.stderr)
        raise SystemExit(2) from None
