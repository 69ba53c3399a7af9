"""sha256 verification against a dataset's ``SHA256SUMS``-style list."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from pipeline.errors import ChecksumError


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks. A file that cannot be read raises
    :class:`ChecksumError` naming it."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            while block := fh.read(chunk_bytes):
                digest.update(block)
    except OSError as err:
        raise ChecksumError(f"{path}: cannot be read: {err.strerror or err}") from None
    return digest.hexdigest()


@lru_cache(maxsize=None)
def read_checksum_list(list_path: Path) -> dict[str, str]:
    """Parse ``<hex>  <relative path>`` lines into {relative path: hex}."""
    sums: dict[str, str] = {}
    for line_no, line in enumerate(Path(list_path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ChecksumError(f"{list_path}:{line_no}: not a '<sha256>  <file>' line")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


# Hashing the same file twice in one process is wasted work: remember what was verified,
# keyed by (path, size, mtime) so that a file changed on disk is hashed again.
_verified: set[tuple[str, int, int]] = set()


def verify_file(path: Path, root: Path, list_path: Path) -> None:
    """Check one file under ``root`` against the checksum list.

    Raises :class:`ChecksumError` naming the file if it is missing, not listed, or altered.
    """
    path = Path(path)
    rel = path.relative_to(root).as_posix()
    if not path.is_file():
        raise ChecksumError(f"{path}: file is missing")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    sums = read_checksum_list(Path(list_path))
    if rel not in sums:
        raise ChecksumError(f"{path}: not listed in {list_path}")
    actual = sha256_file(path)
    if actual != sums[rel]:
        raise ChecksumError(
            f"{path}: sha256 {actual[:16]}... does not match {sums[rel][:16]}... in "
            f"{list_path}: the file was altered or damaged"
        )
    _verified.add(key)


def verify_tree(root: Path, list_path: Path, progress=None) -> list[str]:
    """Verify every file of a checksum list; return one problem string per bad file."""
    problems = []
    items = sorted(read_checksum_list(Path(list_path)))
    for rel in progress(items) if progress else items:
        try:
            verify_file(Path(root) / rel, Path(root), list_path)
        except ChecksumError as err:
            problems.append(str(err))
    return problems
