"""README blocks written by scripts, never by hand.

Every figure in the README comes from a run: a script that measures something renders a
Markdown block and replaces the README's block of the same name, between markers::

    <!-- BEGIN results-training (written by: python -m pipeline.tools.train_benchmark --write) -->
    ...
    <!-- END results-training -->

The BEGIN line says which command writes the block, so a reader knows how to refresh it,
and ``git diff`` shows what a new run changed.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import BiosigError

README = Path(__file__).resolve().parents[1] / "README.md"


class ReadmeBlockError(BiosigError):
    """The README has no block of that name, or its markers are broken."""


def _pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- BEGIN {re.escape(name)} \(written by: [^\n]*?\) -->\n)(.*?)(<!-- END {re.escape(name)} -->)", re.S
    )


def read_block(name: str, path: Path = README) -> str:
    """The current text of block ``name`` (without its markers)."""
    match = _pattern(name).search(Path(path).read_text())
    if match is None:
        raise ReadmeBlockError(
            f"{path}: no block '{name}' (markers <!-- BEGIN {name} (written by: ...) --> ... <!-- END {name} -->)"
        )
    return match.group(2)


def write_block(name: str, text: str, command: str, path: Path = README) -> None:
    """Replace block ``name`` of the README with ``text``; the BEGIN marker names ``command``."""
    path = Path(path)
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
