"""Figures in the README and docs/ live in blocks that scripts rewrite: the writer finds its
block on whichever page holds it and replaces exactly that block; every block names a
command that exists and writes it; the README's headline is the rows it quotes, as they are."""

import importlib.util
import re

import pytest

from pipeline import readme
from pipeline.readme import ReadmeBlockError, find_block, headline, pages, read_block, write_block

MARKER = re.compile(r"<!-- BEGIN (\S+) \(written by: ([^\n]*?)\) -->")


def test_a_block_is_replaced_and_everything_else_is_kept(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("intro\n<!-- BEGIN t (written by: old) -->\nold table\n<!-- END t -->\noutro\n")
    write_block("t", "| a |\n|---|\n| 1 |", "python -m x --write", page)
    assert page.read_text() == (
        "intro\n<!-- BEGIN t (written by: python -m x --write) -->\n| a |\n|---|\n| 1 |\n<!-- END t -->\noutro\n"
    )
    assert read_block("t", page) == "| a |\n|---|\n| 1 |\n"


def test_a_missing_or_doubled_block_is_refused(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("no blocks here\n")
    with pytest.raises(ReadmeBlockError, match="no block 't'"):
        read_block("t", page)
    block = "<!-- BEGIN t (written by: x) -->\n1\n<!-- END t -->\n"
    page.write_text(block + block)
    with pytest.raises(ReadmeBlockError, match="exactly one block 't'"):
        write_block("t", "2", "x", page)


def test_a_writer_finds_its_block_on_whichever_page_holds_it(tmp_path, monkeypatch):
    monkeypatch.setattr(readme, "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# r\n")
    page = tmp_path / "docs" / "results.md"
    page.write_text("x\n<!-- BEGIN t (written by: old) -->\nold\n<!-- END t -->\n")
    write_block("t", "new", "python -m x --write")
    assert read_block("t") == "new\n"
    assert "new" in page.read_text() and (tmp_path / "README.md").read_text() == "# r\n"


def test_a_block_on_two_pages_or_on_none_is_refused_naming_them(tmp_path, monkeypatch):
    monkeypatch.setattr(readme, "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    block = "<!-- BEGIN t (written by: x) -->\n1\n<!-- END t -->\n"
    (tmp_path / "README.md").write_text(block)
    (tmp_path / "docs" / "a.md").write_text(block)
    with pytest.raises(ReadmeBlockError, match=r"exactly one page.*README.md, docs/a.md"):
        write_block("t", "2", "x")
    with pytest.raises(ReadmeBlockError, match="found on: none"):
        read_block("u")


def _blocks() -> list[tuple[str, str, str]]:
    return [(m[1], m[2], page.name) for page in pages() for m in MARKER.finditer(page.read_text())]


def test_every_block_names_a_command_that_exists_and_writes_it():
    blocks = _blocks()
    assert len(blocks) >= 14  # the headline and the 13 figures' blocks
    for name, command, page in blocks:
        module = re.search(r"python -m (\S+)", command)
        assert module, f"{page}: block '{name}' names no 'python -m MODULE' command: {command}"
        spec = importlib.util.find_spec(module[1])
        assert spec is not None and spec.origin, f"{page}: block '{name}': no module {module[1]}"
        source = open(spec.origin).read()
        assert "--write" not in command or '"--write"' in source, f"{module[1]} has no --write option"
        # The writer names the block literally or builds it as f"<head>-{...}" (results-{task}).
        heads = [name[:i] for i, c in enumerate(name) if c == "-"]
        assert f'"{name}"' in source or any(f'f"{h}-{{' in source for h in heads), (
            f"{page}: block '{name}' says it is written by {module[1]}, which does not write it"
        )


def test_every_block_is_on_exactly_one_page():
    for name, _, _ in _blocks():
        find_block(name)


def test_the_readme_headline_is_the_rows_it_quotes_as_they_are():
    assert find_block("headline").name == "README.md"
    assert read_block("headline") == headline(), "run: python -m pipeline.readme --write"


def test_writing_a_quoted_block_rewrites_the_headline(tmp_path, monkeypatch):
    monkeypatch.setattr(readme, "ROOT", tmp_path)
    monkeypatch.setattr(readme, "HEADLINE", (("ECG", "r", (("kappa", ("mean",), "kappa {}"),)),))
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("<!-- BEGIN headline (written by: x) -->\nold\n<!-- END headline -->\n")
    (tmp_path / "docs" / "results.md").write_text("<!-- BEGIN r (written by: y) -->\n<!-- END r -->\n")
    write_block("r", "| metric | mean |\n|---|---|\n| kappa | 0.61 |\n", "y")
    assert read_block("headline") == (
        "| | held-out figure | from |\n|---|---|---|\n| ECG | kappa 0.61 | [docs/results.md](docs/results.md) |\n"
    )


def test_the_readme_stays_a_front_door_and_links_every_docs_page():
    text = (readme.ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250, "README.md is the front door: move reference material to docs/"
    for page in sorted((readme.ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in text, f"README.md does not link docs/{page.name}"


def test_no_written_block_names_a_path_of_the_machine_that_wrote_it():
    """What a script writes into README.md or docs/ is read on other machines: a run folder
    or a report is named by its folder name, never by an absolute path of the writer's."""
    import re

    from pipeline.readme import ROOT, pages

    absolute = re.compile(r"(?<![\w.~-])/(?:work|home|tmp|root|Users|mnt|opt|var)/[\w./-]+")
    block = re.compile(r"<!-- BEGIN (\S+) \(written by: [^\n]*?\) -->\n(.*?)<!-- END \1 -->", re.S)
    found = [
        f"{page.relative_to(ROOT)}: {name}: {hit}"
        for page in pages(ROOT)
        for name, body in block.findall(page.read_text())
        for hit in absolute.findall(body)
    ]
    assert not found, found
