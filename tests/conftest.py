"""Shared fixtures: the real recordings in ../shared/data (never modified by a test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.read.locate import SHARED_DATA


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (SHARED_DATA / "mitdb").is_dir():
        pytest.fail(f"the test recordings are expected in {SHARED_DATA} (see README, 'Data')")
    return SHARED_DATA


@pytest.fixture
def mitdb_copy(tmp_path, data_dir) -> Path:
    """A private copy of records 100 and 114 with their own checksum list, to damage."""
    folder = tmp_path / "mitdb"
    folder.mkdir()
    lines = []
    for line in (data_dir / "mitdb" / "SHA256SUMS.txt").read_text().splitlines():
        name = line.split()[-1]
        if name.split(".")[0] in ("100", "114"):
            shutil.copy(data_dir / "mitdb" / name, folder / name)
            lines.append(line)
    (folder / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    return folder
