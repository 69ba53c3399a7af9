"""README figures live in blocks that scripts rewrite: the writer replaces exactly its block."""

import pytest

from pipeline.readme import ReadmeBlockError, read_block, write_block


def test_a_block_is_replaced_and_everything_else_is_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- BEGIN t (written by: old) -->\nold table\n<!-- END t -->\noutro\n")
    write_block("t", "| a |\n|---|\n| 1 |", "python -m x --write", readme)
    assert readme.read_text() == (
        "intro\n<!-- BEGIN t (written by: python -m x --write) -->\n| a |\n|---|\n| 1 |\n<!-- END t -->\noutro\n"
    )
    assert read_block("t", readme) == "| a |\n|---|\n| 1 |\n"


def test_a_missing_or_doubled_block_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no blocks here\n")
    with pytest.raises(ReadmeBlockError, match="no block 't'"):
        read_block("t", readme)
    block = "<!-- BEGIN t (written by: x) -->\n1\n<!-- END t -->\n"
    readme.write_text(block + block)
    with pytest.raises(ReadmeBlockError, match="exactly one block 't'"):
        write_block("t", "2", "x", readme)
